"""Our ABI codec is eth-abi's, byte for byte, for every type the facilitator uses, and strict on input."""

from __future__ import annotations

import eth_abi
import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from app.chain.abi import AbiError, decode, encode

VALUES = {
    "address": st.binary(min_size=20, max_size=20),
    "bool": st.booleans(),
    "bytes32": st.binary(min_size=32, max_size=32),
    "uint8": st.integers(min_value=0, max_value=2**8 - 1),
    "uint64": st.integers(min_value=0, max_value=2**64 - 1),
    "uint256": st.integers(min_value=0, max_value=2**256 - 1),
    "bytes": st.binary(max_size=200),
    "string": st.text(max_size=80),
}


@st.composite
def typed_values(draw):
    types = draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=8))
    return types, [draw(VALUES[abi_type]) for abi_type in types]


def as_eth_abi(abi_type, value):
    """eth-abi takes addresses as checksummed text; we take text or bytes."""
    return to_checksum_address(value) if abi_type == "address" else value


def decoded_as_eth_abi(types, values):
    """eth-abi decodes an address to lowercase text; we decode it to its 20 bytes."""
    return tuple("0x" + v.hex() if t == "address" else v for t, v in zip(types, values, strict=True))


@given(typed=typed_values())
def test_encoding_equals_eth_abi(typed):
    types, values = typed
    theirs = eth_abi.encode(types, [as_eth_abi(t, v) for t, v in zip(types, values, strict=True)])
    assert encode(types, values) == theirs


@given(typed=typed_values())
def test_decoding_inverts_encoding_as_eth_abi_does(typed):
    types, values = typed
    data = encode(types, values)
    assert decode(types, data) == tuple(values)
    assert decoded_as_eth_abi(types, decode(types, data)) == eth_abi.decode(types, data)


@given(typed=typed_values(), position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_a_corrupted_encoding_decodes_as_eth_abi_decodes_it_or_is_refused(typed, position, byte):
    types, values = typed
    data = bytearray(encode(types, values))
    if not data:
        return
    data[position % len(data)] = byte
    try:
        ours = decode(types, bytes(data))
    except AbiError:
        return  # refusing is always safe; accepting must agree with eth-abi
    assert decoded_as_eth_abi(types, ours) == eth_abi.decode(types, bytes(data))


def test_addresses_are_taken_as_text_or_bytes():
    raw = bytes.fromhex("857b06519e91e3a54538791bdbb0e22373e36b66")
    assert encode(["address"], ["0x857B06519E91e3A54538791bDbb0E22373e36b66"]) == encode(["address"], [raw])


@pytest.mark.parametrize(("types", "values"), [
    (["uint8"], [256]), (["uint256"], [-1]), (["uint256"], [2**256]), (["uint256"], [True]),
    (["bool"], [1]), (["bytes32"], [b"\x00" * 31]), (["address"], ["0x1234"]), (["address"], ["not hex at all"]),
    (["bytes"], ["text"]), (["string"], [b"bytes"]), (["int256"], [1]), (["uint7"], [1]), (["address[]"], [[]]),
    (["uint256", "uint256"], [1]),
])
def test_a_value_its_type_cannot_hold_is_refused(types, values):
    with pytest.raises(AbiError):
        encode(types, values)


@pytest.mark.parametrize(("types", "data", "problem"), [
    (["uint256"], b"\x00" * 31, "ends"),
    (["uint8"], (256).to_bytes(32, "big"), "out of range"),
    (["bool"], (2).to_bytes(32, "big"), "neither"),
    (["address"], b"\x01" + b"\x00" * 31, "padding"),
    (["bytes"], (32).to_bytes(32, "big") + (5).to_bytes(32, "big") + b"hello" + b"\x01" * 27, "padding"),
    (["bytes"], (32).to_bytes(32, "big") + (64).to_bytes(32, "big") + b"\x00" * 32, "runs past"),
    (["bytes"], (2**255).to_bytes(32, "big"), "ends"),
    (["string"], (32).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\xff" + b"\x00" * 31, "UTF-8"),
])
def test_data_that_is_not_a_strict_encoding_is_refused_with_a_reason(types, data, problem):
    with pytest.raises(AbiError, match=problem):
        decode(types, data)
