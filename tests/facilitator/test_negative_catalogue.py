"""The negative catalogue: named ways a payment request can be wrong, each with the answer it gets.

Every case starts from a valid v2 or v1 body and changes one thing. Both /verify and /settle must
refuse it with the expected reason, as a 200 answer (an invalid payment is an answer, not an error)
or a 400 / 413 (a body that is not a JSON object, or is too large); never a 5xx, and no money moves.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from app.dev.deploy import send_transaction
from app.protocol import ProtocolError, Reason, decode_header
from tests.support.eip3009 import sign_cancel_authorization, sign_transfer_authorization
from tests.support.payments import (
    USDC,
    Signed,
    body_v1,
    body_v2,
    requirements_v1,
    requirements_v2,
    sign_exact,
)

PRICE = 12_345
CHAIN_ID = 84532
FUJI = "eip155:43113"
OTHER_TOKEN = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"  # USDC on Base mainnet: not enabled here
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
TWO_POW_256 = "115792089237316195423570985008687907853269984665640564039457584007913129639936"
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class World:
    """What a case may use to build its request: the parties, and the chain for on-chain setup."""

    payer: LocalAccount
    payee: str
    deployer: LocalAccount
    w3: Web3
    token: Contract


Body = dict[str, Any] | bytes


@dataclass(frozen=True)
class Case:
    """One line of the catalogue: ``build`` the request, expect ``status`` and ``reason``."""

    id: str
    build: Callable[[World], Body]
    status: int
    reason: str


# ------------------------------------------------------------------------------------------ builders


def now() -> int:
    return int(time.time())


def signed(world: World, **sign_args: Any) -> Signed:
    sign_args.setdefault("to", world.payee)
    sign_args.setdefault("value", PRICE)
    return sign_exact(world.payer, **sign_args)


def valid_v2(world: World, **sign_args: Any) -> dict[str, Any]:
    return body_v2(signed(world, **sign_args), requirements_v2(world.payee, PRICE))


def with_signature(world: World, mangle: Callable[[bytes], bytes]) -> dict[str, Any]:
    body = valid_v2(world)
    payload = body["paymentPayload"]["payload"]
    payload["signature"] = "0x" + mangle(bytes.fromhex(payload["signature"][2:])).hex()
    return body


def with_authorization(world: World, **fields: Any) -> dict[str, Any]:
    """A valid v2 body whose authorization then gets ``fields`` (a value of None removes the field)."""
    body = valid_v2(world)
    authorization = body["paymentPayload"]["payload"]["authorization"]
    for key, value in fields.items():
        if value is None:
            del authorization[key]
        else:
            authorization[key] = value
    return body


def with_requirements(world: World, signed_payment: Signed | None = None, **overrides: Any) -> dict[str, Any]:
    """Requirements (and the accepted copy) overridden, paid by ``signed_payment`` or a valid one."""
    return body_v2(signed_payment or signed(world), requirements_v2(world.payee, PRICE, **overrides))


def flip_byte(signature: bytes) -> bytes:
    index = 10  # inside r
    return signature[:index] + bytes([signature[index] ^ 0x01]) + signature[index + 1 :]


def high_s(signature: bytes) -> bytes:
    """The malleable twin of a signature: s' = n - s and v toggled; recovers the same key."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28


def amount(world: World, value: int) -> dict[str, Any]:
    return body_v2(signed(world, value=value), requirements_v2(world.payee, PRICE))


def wrong_pay_to(world: World) -> dict[str, Any]:
    return body_v2(signed(world, to=Account.create().address), requirements_v2(world.payee, PRICE))


def wrong_asset(world: World) -> dict[str, Any]:
    return with_requirements(world, signed(world, token=OTHER_TOKEN), asset=OTHER_TOKEN)


def network_mismatch(world: World) -> dict[str, Any]:
    body = valid_v2(world)
    body["paymentPayload"]["accepted"]["network"] = FUJI
    return body


def network_not_enabled(world: World) -> dict[str, Any]:
    return with_requirements(world, signed(world, chain_id=43113), network=FUJI)


def network_not_enabled_v1(world: World) -> dict[str, Any]:
    return body_v1(signed(world, chain_id=43113), requirements_v1(world.payee, PRICE, network="avalanche-fuji"))


def domain(**extra: str) -> Callable[[World], dict[str, Any]]:
    return lambda world: with_requirements(world, extra=extra)


def signed_by_someone_else(world: World) -> dict[str, Any]:
    stranger = Account.create()
    payment = sign_exact(stranger, to=world.payee, value=PRICE, from_address=world.payer.address)
    return body_v2(payment, requirements_v2(world.payee, PRICE))


def unfunded_payer(world: World) -> dict[str, Any]:
    payment = sign_exact(Account.create(), to=world.payee, value=PRICE)
    return body_v2(payment, requirements_v2(world.payee, PRICE))


def nonce_used_on_chain(world: World) -> dict[str, Any]:
    """The payer's nonce already consumed on-chain by a different authorization (other payee, amount)."""
    nonce = os.urandom(32)
    other = sign_transfer_authorization(
        world.payer, token_address=USDC, chain_id=CHAIN_ID, to=world.deployer.address, value=PRICE + 1,
        valid_after=0, valid_before=2**40, nonce=nonce,
    )
    transfer = world.token.get_function_by_signature(
        "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
    )(*other.vrs_args())
    send_transaction(world.w3, world.deployer, transfer.build_transaction({"from": world.deployer.address}))
    return valid_v2(world, nonce=nonce)


def nonce_cancelled_on_chain(world: World) -> dict[str, Any]:
    nonce = os.urandom(32)
    cancel = sign_cancel_authorization(world.payer, token_address=USDC, chain_id=CHAIN_ID, nonce=nonce)
    call = world.token.get_function_by_signature("cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)")(
        world.payer.address, nonce, cancel.v, cancel.r, cancel.s
    )
    send_transaction(world.w3, world.deployer, call.build_transaction({"from": world.deployer.address}))
    return valid_v2(world, nonce=nonce)


def without_requirements(world: World) -> dict[str, Any]:
    body = valid_v2(world)
    del body["paymentRequirements"]
    return body


def padded_over_limit(world: World) -> bytes:
    body = valid_v2(world)
    body["padding"] = "x" * (MAX_BODY_BYTES + 1)
    return json.dumps(body).encode()


def value_two_pow_256(world: World) -> dict[str, Any]:
    requirements = requirements_v2(world.payee, PRICE)
    requirements["amount"] = TWO_POW_256
    body = body_v2(signed(world), requirements)
    body["paymentPayload"]["payload"]["authorization"]["value"] = TWO_POW_256
    return body


def upto_scheme(world: World) -> dict[str, Any]:
    return with_requirements(world, scheme="upto")


def v1_payload_with_v2_requirements(world: World) -> dict[str, Any]:
    body = body_v1(signed(world), requirements_v1(world.payee, PRICE))
    body["paymentRequirements"] = requirements_v2(world.payee, PRICE)
    return body


def x402_version_3(world: World) -> dict[str, Any]:
    body = valid_v2(world)
    body["x402Version"] = 3
    body["paymentPayload"]["x402Version"] = 3
    return body


# ------------------------------------------------------------------------------------------ the table

R = Reason
SIGNATURE = R.invalid_exact_evm_payload_signature
VALUE_MISMATCH = R.invalid_exact_evm_payload_authorization_value_mismatch
VALID_BEFORE = R.invalid_exact_evm_payload_authorization_valid_before
VALID_AFTER = R.invalid_exact_evm_payload_authorization_valid_after
INVALID = R.invalid_payload

CATALOGUE = [
    Case("amount_above", lambda w: amount(w, PRICE + 1), 200, VALUE_MISMATCH),
    Case("amount_below", lambda w: amount(w, PRICE - 1), 200, VALUE_MISMATCH),
    Case("wrong_pay_to", wrong_pay_to, 200, R.invalid_exact_evm_payload_recipient_mismatch),
    Case("wrong_asset", wrong_asset, 200, R.asset_mismatch),
    Case("network_mismatch", network_mismatch, 200, R.network_mismatch),
    Case("network_not_enabled", network_not_enabled, 200, R.invalid_network),
    Case("network_not_enabled_v1", network_not_enabled_v1, 200, R.invalid_network),
    Case("signed_for_another_chain_id", lambda w: valid_v2(w, chain_id=8453), 200, SIGNATURE),
    Case("wrong_domain_name", domain(name="USD Coin", version="2"), 200, R.invalid_exact_evm_token_name_mismatch),
    Case("wrong_domain_version", domain(name="USDC", version="1"), 200, R.invalid_exact_evm_token_version_mismatch),
    Case("signed_with_wrong_domain_name", lambda w: valid_v2(w, name="USD Coin"), 200, SIGNATURE),
    Case("missing_eip712_domain", domain(), 200, R.missing_eip712_domain),
    Case("expired", lambda w: valid_v2(w, valid_before=now() - 60), 200, VALID_BEFORE),
    Case("expiring_within_6s", lambda w: valid_v2(w, valid_before=now() + 3), 200, VALID_BEFORE),
    Case("not_yet_valid", lambda w: valid_v2(w, valid_after=now() + 120), 200, VALID_AFTER),
    Case("flipped_signature_byte", lambda w: with_signature(w, flip_byte), 200, SIGNATURE),
    Case("high_s", lambda w: with_signature(w, high_s), 200, SIGNATURE),
    Case("wrong_signature_length_64", lambda w: with_signature(w, lambda sig: sig[:64]), 200, SIGNATURE),
    Case("wrong_signature_length_66", lambda w: with_signature(w, lambda sig: sig + b"\x00"), 200, SIGNATURE),
    Case("signed_by_someone_else", signed_by_someone_else, 200, SIGNATURE),
    Case("unfunded_payer", unfunded_payer, 200, R.invalid_exact_evm_insufficient_balance),
    Case("nonce_already_used", nonce_used_on_chain, 200, R.invalid_exact_evm_nonce_already_used),
    Case("nonce_cancelled", nonce_cancelled_on_chain, 200, R.invalid_exact_evm_nonce_already_used),
    Case("malformed_json", lambda w: b"{not json", 400, R.malformed_request),
    Case("json_array_body", lambda w: json.dumps([valid_v2(w)]).encode(), 400, R.malformed_request),
    Case("missing_fields", lambda w: with_authorization(w, nonce=None), 200, INVALID),
    Case("missing_payment_requirements", without_requirements, 200, R.invalid_payment_requirements),
    Case("body_over_64kib", padded_over_limit, 413, R.request_too_large),
    Case("value_2_pow_256", value_two_pow_256, 200, INVALID),
    Case("value_2_pow_256_in_authorization", lambda w: with_authorization(w, value=TWO_POW_256), 200, INVALID),
    Case("negative_value", lambda w: with_authorization(w, value="-1"), 200, INVALID),
    Case("unsupported_scheme", upto_scheme, 200, R.unsupported_scheme),
    Case("v1_payload_with_v2_requirements", v1_payload_with_v2_requirements, 200, R.invalid_payment_requirements),
    Case("wrong_x402_version", x402_version_3, 200, R.invalid_x402_version),
    Case("non_hex_nonce", lambda w: with_authorization(w, nonce="0x" + "zz" * 32), 200, INVALID),
    Case("value_as_float", lambda w: with_authorization(w, value=1.5), 200, INVALID),
]


def test_the_catalogue_has_at_least_twenty_uniquely_named_cases():
    ids = [case.id for case in CATALOGUE]
    assert len(ids) >= 20
    assert len(set(ids)) == len(ids)


# ------------------------------------------------------------------------------------------ the test


def post(client, path: str, body: Body):
    if isinstance(body, bytes):
        return client.post(path, content=body, headers={"content-type": "application/json"})
    return client.post(path, json=body)


def reason_of(path: str, response) -> tuple[str, str]:
    """(reason, message) of an answer: the x402 fields for a 200, the error object otherwise."""
    body = response.json()
    if response.status_code != 200:
        return body["error"], body["message"]
    if path == "/verify":
        assert body["isValid"] is False, body
        return body["invalidReason"], body["invalidMessage"]
    assert body["success"] is False, body
    assert body["transaction"] == "", body
    return body["errorReason"], body["errorMessage"]


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.id for case in CATALOGUE])
def test_an_invalid_request_is_refused_by_verify_and_settle_and_moves_no_money(
    case: Case, client, payer, payee, dev_deployment, w3, token, balances
):
    world = World(payer=payer, payee=payee, deployer=dev_deployment.wallets.deployer, w3=w3, token=token)
    body = case.build(world)
    watched = balances(payer.address, payee)  # after any on-chain setup the case needed

    for path in ("/verify", "/settle"):
        response = post(client, path, body)
        assert response.status_code == case.status, (path, response.status_code, response.text)
        reason, message = reason_of(path, response)
        assert reason == case.reason, (path, response.json())
        assert isinstance(message, str) and message, (path, response.json())

    assert watched.moved() == {payer.address: 0, payee: 0}


# ------------------------------------------------------------------------------------------ header codec


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


URL_SAFE_JSON = '{"note":"~~~>>>???"}'  # its standard base64 holds '+' and '/'
PADDED_JSON = '{"x402Version":2}'  # 17 bytes: its base64 ends in '='


def test_the_header_fixtures_exercise_what_they_claim():
    assert {"+", "/"} <= set(b64(URL_SAFE_JSON))
    assert b64(PADDED_JSON).endswith("=")
    assert decode_header(b64(URL_SAFE_JSON)) == {"note": "~~~>>>???"}
    assert decode_header(b64(PADDED_JSON)) == {"x402Version": 2}


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("not base64!!", id="not_base64"),
        pytest.param(base64.urlsafe_b64encode(URL_SAFE_JSON.encode()).decode(), id="url_safe_alphabet"),
        pytest.param(b64(PADDED_JSON).rstrip("="), id="truncated_padding"),
        pytest.param(b64("this is not json"), id="base64_of_non_json"),
    ],
)
def test_a_malformed_payment_header_is_an_invalid_payload(header: str):
    with pytest.raises(ProtocolError) as raised:
        decode_header(header)
    assert raised.value.reason == Reason.invalid_payload
