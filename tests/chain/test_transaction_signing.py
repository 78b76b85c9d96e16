"""The facilitator signs its EIP-1559 transactions without eth-account: byte for byte what eth-account signs.

eth-account (a test dependency here, and still the agent side's signer) is the oracle: the same key
and fields must give the same raw transaction and the same hash, for any values a transaction can hold.
"""

from __future__ import annotations

import pytest
import rlp as reference_rlp
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from app.chain import rlp
from app.chain.keys import HotWallet
from app.chain.sender import sign_transaction

KEY = bytes.fromhex("4c" * 32)
UINT256 = st.integers(min_value=0, max_value=2**256 - 1)
rlp_items = st.recursive(
    st.integers(min_value=0, max_value=2**300) | st.binary(max_size=80),
    lambda children: st.lists(children, max_size=6),
    max_leaves=25,
)


@given(item=rlp_items)
def test_rlp_encoding_equals_the_reference_library(item):
    assert rlp.encode(item) == reference_rlp.encode(item)


@pytest.mark.parametrize(("item", "encoded"), [
    # Yellow Paper appendix B and the Ethereum wiki's RLP examples
    (b"dog", bytes.fromhex("83646f67")),
    ([b"cat", b"dog"], bytes.fromhex("c88363617483646f67")),
    (b"", bytes.fromhex("80")),
    ([], bytes.fromhex("c0")),
    (0, bytes.fromhex("80")),
    (15, bytes.fromhex("0f")),
    (1024, bytes.fromhex("820400")),
    ([[], [[]], [[], [[]]]], bytes.fromhex("c7c0c1c0c3c0c1c0")),
    (b"Lorem ipsum dolor sit amet, consectetur adipisicing elit",
     bytes.fromhex("b838") + b"Lorem ipsum dolor sit amet, consectetur adipisicing elit"),
])
def test_rlp_matches_the_specification_examples(item, encoded):
    assert rlp.encode(item) == encoded


@pytest.mark.parametrize("item", [-1, True, "text"])
def test_rlp_refuses_what_it_cannot_encode(item):
    with pytest.raises((ValueError, TypeError)):
        rlp.encode(item)


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32).filter(lambda k: 0 < int.from_bytes(k, "big") < 2**256 - 2**129),
    chain_id=st.integers(min_value=1, max_value=2**64),
    nonce=st.integers(min_value=0, max_value=2**64 - 2),
    to=st.binary(min_size=20, max_size=20),
    data=st.binary(max_size=300),
    gas=st.integers(min_value=21_000, max_value=2**63),
    max_fee=UINT256,
    tip=UINT256,
)
def test_a_signed_transaction_is_byte_for_byte_what_eth_account_signs(key, chain_id, nonce, to, data, gas, max_fee,
                                                                      tip):
    ours = sign_transaction(HotWallet.from_key(key), chain_id=chain_id, nonce=nonce, to="0x" + to.hex(), data=data,
                            gas=gas, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
    theirs = Account.from_key(key).sign_transaction({
        "type": 2, "chainId": chain_id, "nonce": nonce, "to": to_checksum_address(to), "value": 0, "data": data,
        "gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
    })
    assert ours.raw == bytes(theirs.raw_transaction)
    assert ours.hash == "0x" + bytes(theirs.hash).hex()


def test_a_hot_wallet_has_the_address_eth_account_derives_and_never_shows_its_key():
    wallet = HotWallet.from_key("0x" + KEY.hex())
    assert wallet.address == Account.from_key(KEY).address
    assert HotWallet.from_key(KEY) == wallet and HotWallet.from_key(KEY.hex()) == wallet
    assert KEY.hex() not in repr(wallet) and KEY.hex() not in str(wallet)


@pytest.mark.parametrize("key", ["0x1234", "0x" + "00" * 32, "0x" + "ff" * 32, "0x" + "zz" * 32, b"\x01" * 31])
def test_a_hot_wallet_refuses_what_is_not_a_private_key(key):
    with pytest.raises(ValueError):
        HotWallet.from_key(key)
