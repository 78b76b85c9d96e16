"""End to end on anvil: our paying client against the official SDK's FastAPI server (v2) and a v1-only
server, both settling through OUR facilitator over loopback HTTP. Balances are read back from the chain.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from web3 import Web3

from app.client import (
    PaymentSigner,
    PolicyViolation,
    SpendLedger,
    SpendPolicy,
    async_paying_client,
    paying_client,
    payment_of,
    receipt_of,
)
from tests.support.loopback import WEATHER, sdk_resource_server
from tests.support.payments import BASE_SEPOLIA, USDC, requirements_v1
from tests.support.servers import serve

PRICE = 10_000  # "$0.01" of the 6-decimal USDC




class Counting(httpx.BaseTransport):
    """Wraps the real transport and records, per request sent, whether it carried a payment."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[bool] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append("PAYMENT-SIGNATURE" in request.headers or "X-PAYMENT" in request.headers)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def signer_of(agent: LocalAccount) -> PaymentSigner:
    return PaymentSigner.from_key(agent.key)


def assert_paid(response: httpx.Response, agent: LocalAccount, w3: Web3, payee: str, network: str) -> str:
    assert response.status_code == 200, response.text
    receipt = receipt_of(response)
    assert receipt is not None and receipt.success, receipt
    assert (receipt.payer, receipt.network) == (agent.address, network)
    chain_receipt = w3.eth.get_transaction_receipt(receipt.transaction)
    assert chain_receipt["status"] == 1 and chain_receipt["to"] == USDC
    assert payment_of(response).pay_to == payee
    return receipt.transaction


def test_our_sync_client_pays_the_official_sdk_server_once_per_request(
    facilitator_url, facilitator_key, agent, provider, ledger, w3
):
    watched = ledger()
    counting = Counting()
    spend = SpendLedger()
    policy = SpendPolicy(max_per_payment=PRICE, allowed_networks=frozenset({BASE_SEPOLIA}),
                         allowed_assets=frozenset({USDC}), allowed_payees=frozenset({provider}))
    with sdk_resource_server(facilitator_url, provider, facilitator_key) as base, \
            paying_client(signer_of(agent), policy, ledger=spend, inner=counting, timeout=30) as http:
        first = http.get(f"{base}/weather")
        assert counting.sent == [False, True]  # one unpaid request, one paid retry
        assert first.json() == WEATHER
        tx1 = assert_paid(first, agent, w3, provider, BASE_SEPOLIA)
        assert watched.moved() == {agent.address: -PRICE, provider: PRICE}

        second = http.get(f"{base}/weather")
        tx2 = assert_paid(second, agent, w3, provider, BASE_SEPOLIA)

    assert counting.sent == [False, True, False, True]
    assert tx1 != tx2 and payment_of(first).nonce != payment_of(second).nonce
    assert watched.moved() == {agent.address: -2 * PRICE, provider: 2 * PRICE}
    assert [(e.amount, e.status) for e in spend.entries()] == [(PRICE, "settled"), (PRICE, "settled")]


def test_our_async_client_pays_the_official_sdk_server(facilitator_url, facilitator_key, agent, provider, ledger, w3):
    watched = ledger()

    async def calls(base: str) -> list[httpx.Response]:
        async with async_paying_client(signer_of(agent), SpendPolicy(), timeout=30) as http:
            return [await http.get(f"{base}/weather") for _ in range(2)]

    with sdk_resource_server(facilitator_url, provider, facilitator_key) as base:
        responses = asyncio.run(calls(base))
    transactions = {assert_paid(r, agent, w3, provider, BASE_SEPOLIA) for r in responses}
    assert len(transactions) == 2
    assert watched.moved() == {agent.address: -2 * PRICE, provider: 2 * PRICE}


def test_a_payment_the_server_rejects_is_not_paid_again_and_nothing_moves(
    facilitator_url, facilitator_key, agent, provider, ledger
):
    """The price exceeds the agent's balance: verify fails, the SDK answers 402 again, we return it.

    The signed authorization still counts (issue 10): the server holds it and could cash it until it expires.
    """
    watched = ledger()
    counting = Counting()
    spend = SpendLedger()
    unlimited = SpendPolicy(max_per_payment=None, max_per_day=None)  # the default limits would refuse $5000
    with sdk_resource_server(facilitator_url, provider, facilitator_key, price="$5000") as base, \
            paying_client(signer_of(agent), unlimited, ledger=spend, inner=counting, timeout=30) as http:
        response = http.get(f"{base}/weather")
    assert response.status_code == 402
    assert counting.sent == [False, True]
    assert payment_of(response).outcome == "refused"
    assert spend.spent() == 5_000_000_000
    assert watched.moved() == {}


def test_an_agent_over_its_daily_limit_is_refused_by_its_own_policy_before_signing(
    facilitator_url, facilitator_key, agent, provider, ledger
):
    watched = ledger()
    counting = Counting()
    policy = SpendPolicy(max_per_day=PRICE + PRICE // 2)
    with sdk_resource_server(facilitator_url, provider, facilitator_key) as base, \
            paying_client(signer_of(agent), policy, inner=counting, timeout=30) as http:
        assert http.get(f"{base}/weather").status_code == 200
        with pytest.raises(PolicyViolation) as caught:
            http.get(f"{base}/weather")
    error = caught.value
    assert (error.limit, error.allowed, error.already_spent, error.excess) == (
        "max_per_day", PRICE + PRICE // 2, PRICE, PRICE // 2)
    assert counting.sent == [False, True, False]  # the refused call never sent a payment
    assert watched.moved() == {agent.address: -PRICE, provider: PRICE}


# ------------------------------------------------------------------------------------- v1 server


def b64(data: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


@contextmanager
def v1_resource_server(facilitator_url: str, pay_to: str, key: str) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A v1-only server: 402 with a JSON body; with X-PAYMENT, /verify then /settle at our facilitator."""
    seen: list[dict[str, str]] = []
    app = FastAPI()

    @app.get("/report")
    async def report(request: Request) -> JSONResponse:
        requirements = requirements_v1(pay_to, PRICE, resource=str(request.url))
        seen.append(dict(request.headers))
        header = request.headers.get("X-PAYMENT")
        if header is None:
            return JSONResponse({"x402Version": 1, "error": "X-PAYMENT header is required",
                                 "accepts": [requirements]}, status_code=402)
        body = {"x402Version": 1, "paymentPayload": json.loads(base64.b64decode(header)),
                "paymentRequirements": requirements}
        async with httpx.AsyncClient(base_url=facilitator_url, timeout=30,
                                     headers={"Authorization": f"Bearer {key}"}) as facilitator:
            verified = (await facilitator.post("/verify", json=body)).json()
            if not verified.get("isValid"):
                return JSONResponse({"x402Version": 1, "error": verified.get("invalidReason"),
                                     "accepts": [requirements]}, status_code=402)
            settled = (await facilitator.post("/settle", json=body)).json()
        status = 200 if settled.get("success") else 402
        return JSONResponse({"report": "ok"} if status == 200 else {}, status_code=status,
                            headers={"X-PAYMENT-RESPONSE": b64(settled)})

    with serve(app) as url:
        yield url, seen


def test_a_v1_only_server_is_paid_with_x_payment(facilitator_url, facilitator_key, agent, provider, ledger, w3):
    watched = ledger()
    policy = SpendPolicy(allowed_networks=frozenset({"base-sepolia"}), max_per_payment=PRICE)
    with v1_resource_server(facilitator_url, provider, facilitator_key) as (base, seen), \
            paying_client(signer_of(agent), policy, timeout=30) as http:
        response = http.get(f"{base}/report")
    assert response.json() == {"report": "ok"}
    assert_paid(response, agent, w3, provider, "base-sepolia")
    assert payment_of(response).version == 1
    assert ["x-payment" in headers for headers in seen] == [False, True]
    assert not any("payment-signature" in headers for headers in seen)
    assert watched.moved() == {agent.address: -PRICE, provider: PRICE}
