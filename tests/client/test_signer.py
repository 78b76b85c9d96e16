"""The signer's payloads, checked with eth-account's generic EIP-712 encoder (an independent oracle)."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from app.client import PaymentSigner, SignerError
from app.protocol import PaymentPayload, PaymentPayloadV1, decode_header, encode_header, parse_exact_evm_payload
from tests.support.eip3009 import AUTHORIZATION_TYPE, EIP712_DOMAIN_TYPE
from tests.support.payments import USDC, requirements_v1, requirements_v2

KEY = "0x" + "4c" * 32
PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
NOW = 1_800_000_000


def recover(authorization: dict, signature: str, *, chain_id: int = 84532, token: str = USDC,
            name: str = "USDC", version: str = "2") -> str:
    message = encode_typed_data(full_message={
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "TransferWithAuthorization": AUTHORIZATION_TYPE},
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": token},
        "message": {
            "from": authorization["from"], "to": authorization["to"], "value": int(authorization["value"]),
            "validAfter": int(authorization["validAfter"]), "validBefore": int(authorization["validBefore"]),
            "nonce": bytes.fromhex(authorization["nonce"][2:]),
        },
    })
    return Account.recover_message(message, signature=signature)


def test_v2_payload_shape_and_signature():
    signer = PaymentSigner.from_key(KEY)
    requirement = requirements_v2(PAYEE, 10_000, maxTimeoutSeconds=120)
    resource = {"url": "http://provider.test/weather", "description": "Weather"}
    payload = signer.sign_exact(requirement, version=2, resource=resource, now=NOW)

    assert set(payload) == {"x402Version", "payload", "accepted", "resource"}
    assert payload["x402Version"] == 2
    assert payload["accepted"] == requirement
    assert payload["resource"] == resource
    authorization = payload["payload"]["authorization"]
    assert authorization == {
        "from": signer.address, "to": PAYEE, "value": "10000", "validAfter": "0",
        "validBefore": str(NOW + 120), "nonce": authorization["nonce"],
    }
    assert len(bytes.fromhex(authorization["nonce"][2:])) == 32
    assert recover(authorization, payload["payload"]["signature"]) == signer.address
    # Our own wire models and strict parser read it, through the header codec too.
    wire = decode_header(encode_header(payload))
    assert PaymentPayload.model_validate(wire).accepted.amount == "10000"
    assert parse_exact_evm_payload(wire["payload"]).value == 10_000


def test_v1_payload_shape_and_signature():
    signer = PaymentSigner.from_key(KEY)
    requirement = requirements_v1(PAYEE, 7_000, maxTimeoutSeconds=60)
    payload = signer.sign_exact(requirement, version=1, now=NOW)

    assert set(payload) == {"x402Version", "scheme", "network", "payload"}
    assert (payload["x402Version"], payload["scheme"], payload["network"]) == (1, "exact", "base-sepolia")
    authorization = payload["payload"]["authorization"]
    assert (authorization["value"], authorization["validAfter"], authorization["validBefore"]) == (
        "7000", str(NOW - 600), str(NOW + 60))
    assert recover(authorization, payload["payload"]["signature"]) == signer.address
    PaymentPayloadV1.model_validate(payload)


def test_the_domain_comes_from_extra_network_and_asset():
    signer = PaymentSigner.from_key(KEY)
    token = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    requirement = requirements_v2(PAYEE, 1, network="eip155:8453", asset=token,
                                  extra={"name": "USD Coin", "version": "2"})
    payload = signer.sign_exact(requirement, version=2, now=NOW)
    signature = payload["payload"]["signature"]
    authorization = payload["payload"]["authorization"]
    assert recover(authorization, signature, chain_id=8453, token=token, name="USD Coin") == signer.address
    assert recover(authorization, signature, chain_id=84532, token=token, name="USD Coin") != signer.address
    assert recover(authorization, signature, chain_id=8453, token=token, name="USDC") != signer.address


def test_every_signature_has_a_fresh_nonce():
    signer = PaymentSigner.from_key(KEY)
    requirement = requirements_v2(PAYEE, 1)
    nonces = {signer.sign_exact(requirement, version=2, now=NOW)["payload"]["authorization"]["nonce"]
              for _ in range(5)}
    assert len(nonces) == 5


def test_a_requirement_without_a_domain_is_refused():
    with pytest.raises(SignerError, match="EIP-712 domain"):
        PaymentSigner.from_key(KEY).sign_exact(requirements_v2(PAYEE, 1, extra={}), version=2)


def test_a_v1_requirement_cannot_be_paid_as_v2():
    with pytest.raises(SignerError):
        PaymentSigner.from_key(KEY).sign_exact(requirements_v1(PAYEE, 1), version=2)


def test_keystore_round_trip_and_no_key_in_errors_or_repr(tmp_path):
    account = Account.from_key(KEY)
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(Account.encrypt(KEY, "s3cret", kdf="pbkdf2", iterations=2)))
    signer = PaymentSigner.from_keystore(path, "s3cret")
    assert signer.address == account.address
    assert KEY[2:] not in repr(signer) and account.address in repr(signer)
    with pytest.raises(SignerError) as caught:
        PaymentSigner.from_keystore(path, "wrong")
    assert KEY[2:] not in str(caught.value)
    with pytest.raises(SignerError) as caught:
        PaymentSigner.from_key("0x1234")
    assert "1234" not in str(caught.value)



def test_without_an_explicit_valid_before_the_window_is_capped_at_300_seconds():
    """A server asking for 10**9 s (32 years) does not get a 32-year bearer authorization."""
    signer = PaymentSigner.from_key(KEY)
    payload = signer.sign_exact(requirements_v2(PAYEE, 1, maxTimeoutSeconds=10**9), version=2, now=NOW)
    authorization = payload["payload"]["authorization"]
    assert authorization["validBefore"] == str(NOW + 300)
    assert recover(authorization, payload["payload"]["signature"]) == signer.address


def test_an_explicit_valid_before_and_nonce_are_exactly_what_is_signed():
    signer = PaymentSigner.from_key(KEY)
    nonce = bytes(range(32))
    payload = signer.sign_exact(requirements_v2(PAYEE, 1), version=2, now=NOW, valid_before=NOW + 42, nonce=nonce)
    authorization = payload["payload"]["authorization"]
    assert (authorization["validBefore"], authorization["nonce"]) == (str(NOW + 42), "0x" + nonce.hex())
    assert recover(authorization, payload["payload"]["signature"]) == signer.address


@pytest.mark.parametrize(("arguments", "message"), [({"nonce": b"\x01" * 31}, "32 bytes"),
                                                     ({"valid_before": -1}, "valid_before")])
def test_a_malformed_nonce_or_valid_before_is_refused(arguments, message):
    with pytest.raises(SignerError, match=message):
        PaymentSigner.from_key(KEY).sign_exact(requirements_v2(PAYEE, 1), version=2, now=NOW, **arguments)
