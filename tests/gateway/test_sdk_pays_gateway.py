"""Interop, provider side: the official x402 Python SDK's httpx client (x402==2.25.0) pays our gateway (v2).

Our service is served on a loopback port with its in-process paid route; the SDK reads our 402, signs
with eth-account, retries with ``PAYMENT-SIGNATURE``, and our gateway verifies, serves and settles on the
session's anvil chain. Nothing is mocked.
"""

from __future__ import annotations

import asyncio

import httpx
from x402 import x402Client
from x402.http.clients import wrapHttpxWithPayment
from x402.http.utils import decode_payment_response_header
from x402.mechanisms.evm.exact import ExactEvmScheme

from app.main import create_app
from app.protocol import decode_header
from tests.gateway.conftest import FORECAST_PRICE
from tests.support.payments import BASE_SEPOLIA
from tests.support.servers import serve


async def two_paid_calls(agent, url: str) -> tuple[httpx.Response, httpx.Response]:
    client = x402Client().register(BASE_SEPOLIA, ExactEvmScheme(signer=agent))
    async with wrapHttpxWithPayment(client, timeout=30) as http:
        first = await http.get(f"{url}/examples/forecast", params={"city": "Porto"})
        second = await http.get(f"{url}/examples/forecast", params={"city": "Faro"})
    return first, second


def test_the_official_sdk_httpx_client_pays_our_gateway(gateway_settings, registry, dev_deployment, balances, w3):
    agent, provider = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(agent.address, provider)
    with serve(create_app(gateway_settings)) as url:
        unpaid = httpx.get(f"{url}/examples/forecast")
        first, second = asyncio.run(two_paid_calls(agent, url))

    assert unpaid.status_code == 402
    for response, city in ((first, "Porto"), (second, "Faro")):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["city"] == city and body["paidBy"] == "unregistered"
        assert {"forecast", "temperatureC"} <= set(body)
        ours = decode_header(response.headers["PAYMENT-RESPONSE"])
        theirs = decode_payment_response_header(response.headers["PAYMENT-RESPONSE"])
        assert ours["success"] is True and theirs.success is True
        assert theirs.payer == agent.address and theirs.network == BASE_SEPOLIA
        receipt = w3.eth.get_transaction_receipt(theirs.transaction)
        assert receipt["status"] == 1

    # Two authorizations, two settlements: each call signed a new one.
    assert first.headers["PAYMENT-RESPONSE"] != second.headers["PAYMENT-RESPONSE"]
    assert decode_header(first.headers["PAYMENT-RESPONSE"])["transaction"] != decode_header(
        second.headers["PAYMENT-RESPONSE"])["transaction"]
    assert watched.moved() == {agent.address: -2 * FORECAST_PRICE, provider: 2 * FORECAST_PRICE}
