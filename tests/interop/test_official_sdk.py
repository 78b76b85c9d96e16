"""Interop with the official Python SDK (x402==2.25.0): its clients, its resource server, our facilitator.

Nothing here is mocked: the SDK signs with eth-account, its FastAPI middleware calls our facilitator
over loopback HTTP, and our facilitator settles on the session's anvil chain, where the balances are
read back. The SDK is imported only here (app/ never imports it).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from x402 import x402Client, x402ResourceServer
from x402.http import HTTPFacilitatorClient
from x402.http.clients import wrapHttpxWithPayment
from x402.http.clients.httpx import PaymentError
from x402.http.middleware.fastapi import payment_middleware
from x402.http.types import PaymentOption, RouteConfig
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.http.x402_http_client import x402HTTPClient
from x402.mechanisms.evm.exact import ExactEvmScheme, ExactEvmServerScheme
from x402.mechanisms.evm.exact.v1 import ExactEvmSchemeV1
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1

from app.chain.eip3009 import TRANSFER_TOPIC
from app.dev.deploy import DevDeployment
from app.protocol import decode_header
from tests.support.loopback import WEATHER, SdkWantedToExit, sdk_facilitator_config, sdk_resource_server
from tests.support.payments import BASE_SEPOLIA, USDC

PRICE_USD = "$0.01"
PRICE = 10_000  # atomic units of the 6-decimal USDC: what "$0.01" becomes


# ------------------------------------------------------------------------------------------- helpers




def paying_client(agent: LocalAccount) -> x402Client:
    """The SDK client exactly as its README shows: default spend controls ($1 cap, default assets only)."""
    return x402Client().register(BASE_SEPOLIA, ExactEvmScheme(signer=agent))


async def get_paid(agent: LocalAccount, url: str) -> httpx.Response:
    async with wrapHttpxWithPayment(paying_client(agent), timeout=30) as http:
        return await http.get(url)


def transfers_in(receipt: Any) -> list[tuple[str, str, str, int]]:
    """(token, from, to, value) of every ERC-20 Transfer log in a receipt."""
    found = []
    for log in receipt["logs"]:
        if log["topics"] and "0x" + log["topics"][0].hex().removeprefix("0x") == TRANSFER_TOPIC:
            found.append((
                log["address"],
                Web3.to_checksum_address(log["topics"][1][-20:]),
                Web3.to_checksum_address(log["topics"][2][-20:]),
                int.from_bytes(log["data"], "big"),
            ))
    return found


def assert_settled_on_chain(
    w3: Web3, tx_hash: str, *, facilitator: str, payer: str, payee: str, value: int
) -> None:
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    assert receipt["from"] == facilitator, "the settlement must be sent by our facilitator's hot wallet"
    assert receipt["to"] == USDC
    assert transfers_in(receipt) == [(USDC, payer, payee, value)]


def requirements_v2(pay_to: str, amount: int = PRICE) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact", network=BASE_SEPOLIA, asset=USDC, amount=str(amount), pay_to=pay_to,
        max_timeout_seconds=300, extra={"name": "USDC", "version": "2"},
    )


async def sdk_signed_v2(agent: LocalAccount, requirements: PaymentRequirements) -> PaymentPayload:
    required = PaymentRequired(
        accepts=[requirements], resource=ResourceInfo(url="http://provider.test/weather", description="Weather data"),
    )
    payload = await paying_client(agent).create_payment_payload(required)
    assert isinstance(payload, PaymentPayload)
    return payload


# ------------------------------------------------------------- 1. v2 end to end through the SDK


def test_an_unpaid_request_to_the_sdk_server_gets_402_with_payment_required(facilitator_url, facilitator_key, provider):
    with sdk_resource_server(facilitator_url, provider, facilitator_key) as resource_url:
        response = httpx.get(f"{resource_url}/weather")

    assert response.status_code == 402
    header = response.headers["PAYMENT-REQUIRED"]
    ours = decode_header(header)
    assert ours["x402Version"] == 2
    assert ours["resource"]["url"] == f"{resource_url}/weather"
    assert ours["accepts"] == [{
        "scheme": "exact", "network": BASE_SEPOLIA, "asset": USDC, "amount": str(PRICE), "payTo": provider,
        "maxTimeoutSeconds": 300, "extra": {"name": "USDC", "version": "2"},
    }]
    theirs = decode_payment_required_header(header)
    assert isinstance(theirs, PaymentRequired)
    assert theirs.accepts[0].amount == str(PRICE)


def test_the_sdk_client_pays_the_sdk_server_and_our_facilitator_settles_on_chain(
    facilitator_url, facilitator_key, agent, provider, ledger, w3, dev_deployment: DevDeployment
):
    watched = ledger()
    with sdk_resource_server(facilitator_url, provider, facilitator_key) as resource_url:
        response = asyncio.run(get_paid(agent, f"{resource_url}/weather"))

    assert response.status_code == 200, response.text
    assert response.json() == WEATHER

    header = response.headers["PAYMENT-RESPONSE"]
    ours = decode_header(header)
    assert ours["success"] is True
    assert ours["network"] == BASE_SEPOLIA
    assert ours["payer"] == agent.address
    theirs = decode_payment_response_header(header)
    assert (theirs.success, theirs.network, theirs.payer, theirs.transaction) == (
        True, BASE_SEPOLIA, agent.address, ours["transaction"]
    )
    assert theirs.error_reason is None

    assert_settled_on_chain(w3, ours["transaction"], facilitator=dev_deployment.wallets.facilitator.address,
                            payer=agent.address, payee=provider, value=PRICE)
    assert watched.moved() == {agent.address: -PRICE, provider: PRICE}


def test_the_sdk_client_refuses_a_price_above_its_default_one_dollar_cap_and_nothing_moves(
    facilitator_url, facilitator_key, agent, provider, ledger
):
    watched = ledger()
    with sdk_resource_server(facilitator_url, provider, facilitator_key, price="$1.01") as resource_url, \
            pytest.raises(PaymentError, match=r"max_amount_per_payment"):
        asyncio.run(get_paid(agent, f"{resource_url}/weather"))
    assert watched.moved() == {}


# ------------------------------------------------------------ 2. v1 against our /verify and /settle


def requirements_v1(pay_to: str, amount: int = PRICE) -> PaymentRequirementsV1:
    return PaymentRequirementsV1(
        scheme="exact", network="base-sepolia", max_amount_required=str(amount),
        resource="http://provider.test/weather", description="Weather data", mime_type="application/json",
        pay_to=pay_to, max_timeout_seconds=300, asset=USDC, extra={"name": "USDC", "version": "2"},
    )


def test_a_v1_payment_made_by_the_sdk_verifies_and_settles_through_the_sdk_facilitator_client(
    facilitator_url, facilitator_key, agent, provider, ledger, w3, dev_deployment: DevDeployment
):
    requirements = requirements_v1(provider)
    client = x402Client().register_v1("base-sepolia", ExactEvmSchemeV1(signer=agent))

    async def scenario() -> tuple[PaymentPayloadV1, Any, Any]:
        payload = await client.create_payment_payload(PaymentRequiredV1(accepts=[requirements]))
        async with HTTPFacilitatorClient(sdk_facilitator_config(facilitator_url, facilitator_key)) as facilitator:
            verified = await facilitator.verify(payload, requirements)
            settled = await facilitator.settle(payload, requirements)
        return payload, verified, settled

    watched = ledger()
    payload, verified, settled = asyncio.run(scenario())

    # What the SDK put on the wire as X-PAYMENT is the v1 shape, and our codec reads it.
    headers = x402HTTPClient(client).encode_payment_signature_header(payload)
    assert list(headers) == ["X-PAYMENT"]
    wire = decode_header(headers["X-PAYMENT"])
    assert {key: wire[key] for key in ("x402Version", "scheme", "network")} == {
        "x402Version": 1, "scheme": "exact", "network": "base-sepolia"
    }
    assert wire["payload"]["authorization"]["from"] == agent.address
    assert wire["payload"]["authorization"]["value"] == str(PRICE)

    assert verified.is_valid is True, verified
    assert verified.payer == agent.address
    assert settled.success is True, settled
    assert settled.network == "base-sepolia"  # answered in the requirements' own (v1) vocabulary
    assert settled.payer == agent.address
    assert_settled_on_chain(w3, settled.transaction, facilitator=dev_deployment.wallets.facilitator.address,
                            payer=agent.address, payee=provider, value=PRICE)
    assert watched.moved() == {agent.address: -PRICE, provider: PRICE}


# ------------------------------------------------------ 3. the SDK's facilitator client against our API


def test_the_sdk_parses_our_supported_and_finds_the_v2_exact_kind(facilitator_url, facilitator_key, dev_deployment):
    supported = HTTPFacilitatorClient(sdk_facilitator_config(facilitator_url, facilitator_key)).get_supported()
    kinds = {(kind.x402_version, kind.scheme, kind.network) for kind in supported.kinds}
    assert (2, "exact", BASE_SEPOLIA) in kinds
    assert (1, "exact", "base-sepolia") in kinds
    assert supported.signers == {BASE_SEPOLIA: [dev_deployment.wallets.facilitator.address]}


def test_the_sdk_server_refuses_to_start_for_a_network_our_supported_does_not_list(
    facilitator_url, facilitator_key, provider
):
    """The start-up check really reads our /supported: Base mainnet is not enabled here, so the SDK exits."""
    server = x402ResourceServer(HTTPFacilitatorClient(sdk_facilitator_config(facilitator_url, facilitator_key)))
    server.register("eip155:8453", ExactEvmServerScheme())
    routes = {"GET /weather": RouteConfig(
        accepts=PaymentOption(scheme="exact", pay_to=provider, price=PRICE_USD, network="eip155:8453"),
    )}
    with pytest.raises(SdkWantedToExit):
        payment_middleware(routes, server)


def test_the_sdk_facilitator_client_verifies_an_sdk_signed_v2_payment(
    facilitator_url, facilitator_key, agent, provider, ledger
):
    requirements = requirements_v2(provider)

    async def scenario():
        payload = await sdk_signed_v2(agent, requirements)
        async with HTTPFacilitatorClient(sdk_facilitator_config(facilitator_url, facilitator_key)) as facilitator:
            return await facilitator.verify(payload, requirements)

    watched = ledger()
    verified = asyncio.run(scenario())
    assert verified.is_valid is True, verified
    assert verified.payer == agent.address
    assert verified.invalid_reason is None
    assert watched.moved() == {}


def _flip_signature(payload: dict[str, Any], requirements: dict[str, Any], _other: str) -> None:
    signature = payload["payload"]["signature"]
    payload["payload"]["signature"] = signature[:10] + ("0" if signature[10] != "0" else "1") + signature[11:]


def _raise_amount(payload: dict[str, Any], requirements: dict[str, Any], _other: str) -> None:
    """Pay more than was signed: value, accepted and requirements all agree, the signature does not."""
    payload["payload"]["authorization"]["value"] = str(PRICE * 100)
    payload["accepted"]["amount"] = requirements["amount"] = str(PRICE * 100)


def _redirect_payment(payload: dict[str, Any], requirements: dict[str, Any], other: str) -> None:
    """The requirements (and the accepted copy) name another payee than the signed authorization."""
    payload["accepted"]["payTo"] = requirements["payTo"] = other


def _lower_amount(payload: dict[str, Any], requirements: dict[str, Any], _other: str) -> None:
    payload["payload"]["authorization"]["value"] = str(PRICE - 1)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_flip_signature, "invalid_exact_evm_payload_signature"),
        (_raise_amount, "invalid_exact_evm_payload_signature"),
        (_redirect_payment, "invalid_exact_evm_payload_recipient_mismatch"),
        (_lower_amount, "invalid_exact_evm_payload_authorization_value_mismatch"),
    ],
    ids=["signature", "amount-raised", "payee", "value-vs-requirements"],
)
def test_a_tampered_sdk_payment_is_invalid_with_our_reason_not_an_exception(
    facilitator_url, facilitator_key, agent, provider, dev_deployment, ledger, tamper, reason
):
    other_payee = dev_deployment.wallets.providers[1].address

    async def scenario():
        signed = await sdk_signed_v2(agent, requirements_v2(provider))
        payload_dict = signed.model_dump(by_alias=True, exclude_none=True)
        requirements_dict = requirements_v2(provider).model_dump(by_alias=True, exclude_none=True)
        tamper(payload_dict, requirements_dict, other_payee)
        payload = PaymentPayload.model_validate(payload_dict)
        requirements = PaymentRequirements.model_validate(requirements_dict)
        async with HTTPFacilitatorClient(sdk_facilitator_config(facilitator_url, facilitator_key)) as facilitator:
            return await facilitator.verify(payload, requirements), await facilitator.settle(payload, requirements)

    watched = ledger()
    verified, settled = asyncio.run(scenario())
    assert verified.is_valid is False
    assert verified.invalid_reason == reason
    assert verified.invalid_message
    assert settled.success is False
    assert settled.error_reason == reason
    assert settled.transaction == ""
    assert watched.moved() == {}


def test_the_sdk_header_encoding_of_a_v2_payment_is_read_by_our_codec(agent, provider):
    payload = asyncio.run(sdk_signed_v2(agent, requirements_v2(provider)))
    wire = decode_header(encode_payment_signature_header(payload))
    assert wire["x402Version"] == 2
    assert wire["accepted"] == requirements_v2(provider).model_dump(by_alias=True, exclude_none=True)
    assert wire["payload"]["authorization"]["to"] == provider
    assert wire["payload"]["authorization"]["validAfter"] == "0"
