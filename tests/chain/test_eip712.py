"""Our hand-rolled EIP-712 digest and coincurve recovery agree with documented vectors and eth_account."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.chain.eip712 import (
    EIP712_DOMAIN_TYPEHASH,
    TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
    domain_separator,
    transfer_authorization_digest,
    transfer_authorization_struct_hash,
)
from app.chain.signatures import SECP256K1_N, SignatureError, recover_signer
from tests.support.eip3009 import AUTHORIZATION_TYPE, EIP712_DOMAIN_TYPE

UINT256_MAX = 2**256 - 1

# reference/x402-protocol.md §7: the spec example domain (Base Sepolia USDC)
SPEC_DOMAIN = ("USDC", "2", 84532, "0x036CbD53842c5426634e7929541eC2318f3dCF7e")
SPEC_DOMAIN_SEPARATOR = "71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818"
SPEC_PAYER = "0x857b06519E91e3A54538791bDbb0E22373e36b66"
SPEC_DIGEST = "f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6"
SPEC_SIGNATURE = bytes.fromhex(
    "2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c"
)

# reference/x402-protocol.md §7: generated with Hardhat key #0 on the Base mainnet USDC domain
HARDHAT_KEY_0_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
BASE_DOMAIN = ("USD Coin", "2", 8453, "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913")
BASE_DOMAIN_SEPARATOR = "02fa7265e7c5d81118673727957699e4d68f74cd74b7db77da710fe8a2c7834f"
BASE_MESSAGE = {
    "payer": HARDHAT_KEY_0_ADDRESS,
    "to": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "value": 10000,
    "valid_after": 0,
    "valid_before": 1740672154,
    "nonce": (1).to_bytes(32, "big"),
}
BASE_DIGEST = "db73ebca5483cced78441c9145a8c701945a33dfa5faa83b89f3238c95c47437"
BASE_SIGNATURE = bytes.fromhex(
    "6eebf10956f469f3a9f56434c58bab12132124547438f0eafda63178b00b74bc"
    "7d5cbd3affd743e90ed300322ba8ed7f90fd27cf9bd66e764ee6da04635f116e1b"
)


def test_type_hashes() -> None:
    assert TRANSFER_WITH_AUTHORIZATION_TYPEHASH.hex() == (
        "7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267"
    )
    expected = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    assert expected == EIP712_DOMAIN_TYPEHASH


def test_spec_example_domain_separator() -> None:
    assert domain_separator(*SPEC_DOMAIN).hex() == SPEC_DOMAIN_SEPARATOR
    assert domain_separator("USDC", "2", 84532, SPEC_DOMAIN[3].lower()).hex() == SPEC_DOMAIN_SEPARATOR


def test_spec_example_signature_recovers_to_the_documented_payer_on_the_fast_path() -> None:
    # The payment payload example of the x402 specs (v1 and v2, exact scheme on Base Sepolia).
    digest = transfer_authorization_digest(
        domain_separator(*SPEC_DOMAIN),
        SPEC_PAYER,
        "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        10000,
        1740672089,
        1740672154,
        bytes.fromhex("f3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"),
    )
    assert digest.hex() == SPEC_DIGEST
    assert recover_signer(digest, SPEC_SIGNATURE) == SPEC_PAYER


def test_spec_example_signature_fails_under_another_domain() -> None:
    for other in (("USD Coin", "2", 84532, SPEC_DOMAIN[3]), ("USDC", "2", 8453, SPEC_DOMAIN[3])):
        digest = transfer_authorization_digest(
            domain_separator(*other), SPEC_PAYER, "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", 10000,
            1740672089, 1740672154, bytes.fromhex("f3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"),
        )
        assert recover_signer(digest, SPEC_SIGNATURE) != SPEC_PAYER


def test_generated_base_mainnet_vector() -> None:
    separator = domain_separator(*BASE_DOMAIN)
    assert separator.hex() == BASE_DOMAIN_SEPARATOR
    digest = transfer_authorization_digest(separator, **BASE_MESSAGE)
    assert digest.hex() == BASE_DIGEST
    assert recover_signer(digest, BASE_SIGNATURE) == HARDHAT_KEY_0_ADDRESS


def test_vector_signature_does_not_recover_the_payer_under_another_domain() -> None:
    for other in (("USDC", "2", 8453, BASE_DOMAIN[3]), ("USD Coin", "2", 84532, BASE_DOMAIN[3])):
        digest = transfer_authorization_digest(domain_separator(*other), **BASE_MESSAGE)
        assert recover_signer(digest, BASE_SIGNATURE) != HARDHAT_KEY_0_ADDRESS


def test_domain_separator_is_cached() -> None:
    assert domain_separator(*BASE_DOMAIN) is domain_separator(*BASE_DOMAIN)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("value", -1), ("value", 2**256), ("valid_before", 2**256), ("nonce", b"\x01" * 31), ("to", "0x1234")],
)
def test_out_of_range_fields_are_refused(field: str, bad: object) -> None:
    with pytest.raises(ValueError):
        transfer_authorization_struct_hash(**{**BASE_MESSAGE, field: bad})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ property tests

private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
uint256 = st.integers(min_value=0, max_value=UINT256_MAX)


def eth_account_message(name: str, version: str, chain_id: int, contract: str, message: dict) -> dict:
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "TransferWithAuthorization": AUTHORIZATION_TYPE},
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": contract},
        "message": message,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=private_keys,
    to=addresses,
    value=uint256,
    valid_after=uint256,
    valid_before=uint256,
    nonce=st.binary(min_size=32, max_size=32),
    name=st.text(max_size=40),
    version=st.text(max_size=10),
    chain_id=uint256,
    contract=addresses,
)
def test_digest_and_recovery_match_eth_account(
    key: bytes,
    to: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: bytes,
    name: str,
    version: str,
    chain_id: int,
    contract: str,
) -> None:
    account = Account.from_key(key)
    message = {
        "from": account.address,
        "to": to,
        "value": value,
        "validAfter": valid_after,
        "validBefore": valid_before,
        "nonce": nonce,
    }
    signable = encode_typed_data(full_message=eth_account_message(name, version, chain_id, contract, message))
    signed = account.sign_message(signable)

    ours = transfer_authorization_digest(
        domain_separator(name, version, chain_id, contract),
        account.address,
        to,
        value,
        valid_after,
        valid_before,
        nonce,
    )
    assert ours == bytes(signed.message_hash)

    signature = bytes(signed.signature)
    expected = Account.recover_message(signable, signature=signature)
    assert recover_signer(ours, signature) == expected == account.address
    # v as 0/1 (what some wallets send) recovers the same address
    assert recover_signer(ours, signature[:64] + bytes((signature[64] - 27,))) == account.address

    # the malleable twin (s' = n - s, v flipped) is valid for bare ecrecover but refused here (EIP-2)
    high_s = (SECP256K1_N - signed.s).to_bytes(32, "big")
    twin = signature[:32] + high_s + bytes((55 - signature[64],))
    with pytest.raises(SignatureError) as raised:
        recover_signer(ours, twin)
    assert raised.value.kind == "high_s"
