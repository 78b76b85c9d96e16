"""The negative catalogue: named ways a payment request can be wrong, each with the answer it gets.

Every case starts from a valid v2 or v1 body and changes one thing, and says at which stage the
service refuses it. ``test_negative_catalogue`` sends each to /verify and /settle on a real chain;
``test_prepare_payment`` runs the I/O-free ones against the parsing and ``prepare_payment`` directly.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from app.dev.deploy import send_transaction
from app.protocol import Reason
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
    w3: Web3 | None  # None in the pure tests, which build no case that needs the chain
    token: Contract | None


Body = dict[str, Any] | bytes


class Stage(StrEnum):
    """Where the service refuses a case: what that refusal costs and needs."""

    HTTP = "http"  # the body is not a JSON object, or too large: a 400 / 413 before any parsing
    PARSE = "parse"  # the x402 envelope (parse_facilitator_request): no I/O
    PREPARE = "prepare"  # prepare_payment's I/O-free checks (domain, amounts, window, payload fields)
    CHAIN = "chain"  # only the chain can tell (signature by code, balance, nonce state)


@dataclass(frozen=True)
class Case:
    """One line of the catalogue: ``build`` the request, expect ``status`` and ``reason`` at ``stage``."""

    id: str
    build: Callable[[World], Body]
    status: int
    reason: str
    stage: Stage
    needs_chain_setup: bool = False  # build sends transactions first (the pure tests leave these out)


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


def pays_itself(world: World) -> dict[str, Any]:
    """The payer pays itself: nothing moves but the gas the facilitator would pay."""
    return body_v2(signed(world, to=world.payer.address), requirements_v2(world.payer.address, PRICE))


def zero_value(world: World) -> dict[str, Any]:
    return body_v2(signed(world, value=0), requirements_v2(world.payee, 0))


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
S = Stage
SIGNATURE = R.invalid_exact_evm_payload_signature
VALUE_MISMATCH = R.invalid_exact_evm_payload_authorization_value_mismatch
VALID_BEFORE = R.invalid_exact_evm_payload_authorization_valid_before
VALID_AFTER = R.invalid_exact_evm_payload_authorization_valid_after
INVALID = R.invalid_payload

CATALOGUE = [
    Case("amount_above", lambda w: amount(w, PRICE + 1), 200, VALUE_MISMATCH, S.PREPARE),
    Case("amount_below", lambda w: amount(w, PRICE - 1), 200, VALUE_MISMATCH, S.PREPARE),
    Case("wrong_pay_to", wrong_pay_to, 200, R.invalid_exact_evm_payload_recipient_mismatch, S.PREPARE),
    Case("wrong_asset", wrong_asset, 200, R.asset_mismatch, S.PREPARE),
    Case("network_mismatch", network_mismatch, 200, R.network_mismatch, S.PREPARE),
    Case("network_not_enabled", network_not_enabled, 200, R.invalid_network, S.PREPARE),
    Case("network_not_enabled_v1", network_not_enabled_v1, 200, R.invalid_network, S.PREPARE),
    Case("signed_for_another_chain_id", lambda w: valid_v2(w, chain_id=8453), 200, SIGNATURE, S.CHAIN),
    Case("wrong_domain_name", domain(name="USD Coin", version="2"), 200, R.invalid_exact_evm_token_name_mismatch,
         S.PREPARE),
    Case("wrong_domain_version", domain(name="USDC", version="1"), 200, R.invalid_exact_evm_token_version_mismatch,
         S.PREPARE),
    Case("signed_with_wrong_domain_name", lambda w: valid_v2(w, name="USD Coin"), 200, SIGNATURE, S.CHAIN),
    Case("missing_eip712_domain", domain(), 200, R.missing_eip712_domain, S.PREPARE),
    Case("expired", lambda w: valid_v2(w, valid_before=now() - 60), 200, VALID_BEFORE, S.PREPARE),
    Case("expiring_within_6s", lambda w: valid_v2(w, valid_before=now() + 3), 200, VALID_BEFORE, S.PREPARE),
    Case("not_yet_valid", lambda w: valid_v2(w, valid_after=now() + 120), 200, VALID_AFTER, S.PREPARE),
    Case("flipped_signature_byte", lambda w: with_signature(w, flip_byte), 200, SIGNATURE, S.CHAIN),
    Case("high_s", lambda w: with_signature(w, high_s), 200, SIGNATURE, S.CHAIN),
    Case("wrong_signature_length_64", lambda w: with_signature(w, lambda sig: sig[:64]), 200, SIGNATURE, S.CHAIN),
    Case("wrong_signature_length_66", lambda w: with_signature(w, lambda sig: sig + b"\x00"), 200, SIGNATURE, S.CHAIN),
    Case("signed_by_someone_else", signed_by_someone_else, 200, SIGNATURE, S.CHAIN),
    Case("unfunded_payer", unfunded_payer, 200, R.invalid_exact_evm_insufficient_balance, S.CHAIN),
    Case("nonce_already_used", nonce_used_on_chain, 200, R.invalid_exact_evm_nonce_already_used, S.CHAIN,
         needs_chain_setup=True),
    Case("nonce_cancelled", nonce_cancelled_on_chain, 200, R.invalid_exact_evm_nonce_already_used, S.CHAIN,
         needs_chain_setup=True),
    Case("malformed_json", lambda w: b"{not json", 400, R.malformed_request, S.HTTP),
    Case("json_array_body", lambda w: json.dumps([valid_v2(w)]).encode(), 400, R.malformed_request, S.HTTP),
    Case("missing_fields", lambda w: with_authorization(w, nonce=None), 200, INVALID, S.PREPARE),
    Case("missing_payment_requirements", without_requirements, 200, R.invalid_payment_requirements, S.PARSE),
    Case("body_over_64kib", padded_over_limit, 413, R.request_too_large, S.HTTP),
    Case("value_2_pow_256", value_two_pow_256, 200, INVALID, S.PARSE),
    Case("value_2_pow_256_in_authorization", lambda w: with_authorization(w, value=TWO_POW_256), 200, INVALID,
         S.PREPARE),
    Case("negative_value", lambda w: with_authorization(w, value="-1"), 200, INVALID, S.PREPARE),
    Case("pays_itself", pays_itself, 200, R.payer_is_payee, S.PREPARE),
    Case("zero_value", zero_value, 200, R.amount_below_minimum, S.PREPARE),
    Case("unsupported_scheme", upto_scheme, 200, R.unsupported_scheme, S.PREPARE),
    Case("v1_payload_with_v2_requirements", v1_payload_with_v2_requirements, 200, R.invalid_payment_requirements,
         S.PARSE),
    Case("wrong_x402_version", x402_version_3, 200, R.invalid_x402_version, S.PARSE),
    Case("non_hex_nonce", lambda w: with_authorization(w, nonce="0x" + "zz" * 32), 200, INVALID, S.PREPARE),
    Case("value_as_float", lambda w: with_authorization(w, value=1.5), 200, INVALID, S.PREPARE),
]
