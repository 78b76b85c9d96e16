"""parse_exact_evm_payload: the strict, validated EIP-3009 authorization."""

from __future__ import annotations

import copy
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.protocol import UINT256_MAX, Authorization, ProtocolError, Reason, parse_exact_evm_payload
from tests.protocol.vectors import PAYMENT_SIGNATURE_JSON

SPEC_PAYLOAD = PAYMENT_SIGNATURE_JSON["payload"]


def payload_with(**authorization: object) -> dict:
    payload = copy.deepcopy(SPEC_PAYLOAD)
    payload["authorization"].update(authorization)
    return payload


def rejection(payload: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_exact_evm_payload(payload)  # type: ignore[arg-type]
    assert info.value.reason is Reason.invalid_payload
    return info.value


def test_spec_payload_parses() -> None:
    auth = parse_exact_evm_payload(SPEC_PAYLOAD)
    assert auth == Authorization(
        payer="0x857b06519E91e3A54538791bDbb0E22373e36b66",
        to="0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        value=10000,
        valid_after=1740672089,
        valid_before=1740672154,
        nonce=bytes.fromhex("f3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"),
        signature=bytes.fromhex(SPEC_PAYLOAD["signature"][2:]),
    )
    assert len(auth.signature) == 65
    assert len(auth.nonce) == 32


def test_authorization_is_frozen() -> None:
    auth = parse_exact_evm_payload(SPEC_PAYLOAD)
    with pytest.raises(FrozenInstanceError):
        auth.value = 1  # type: ignore[misc]


def test_addresses_keep_their_spelling() -> None:
    lower = "0x857b06519e91e3a54538791bdbb0e22373e36b66"
    assert parse_exact_evm_payload(payload_with(**{"from": lower})).payer == lower
    upper = "0x857B06519E91E3A54538791BDBB0E22373E36B66"
    assert parse_exact_evm_payload(payload_with(**{"from": upper})).payer == upper


def test_json_integers_are_accepted_for_numbers() -> None:
    auth = parse_exact_evm_payload(payload_with(value=10000, validAfter=0, validBefore=UINT256_MAX))
    assert (auth.value, auth.valid_after, auth.valid_before) == (10000, 0, UINT256_MAX)


def test_unknown_fields_are_tolerated() -> None:
    payload = payload_with(extraField="x")
    payload["note"] = 1
    assert parse_exact_evm_payload(payload).value == 10000


@given(st.integers(min_value=0, max_value=UINT256_MAX), st.sampled_from(["value", "validAfter", "validBefore"]))
def test_every_uint256_decimal_is_accepted(number: int, field: str) -> None:
    auth = parse_exact_evm_payload(payload_with(**{field: str(number)}))
    attribute = {"value": "value", "validAfter": "valid_after", "validBefore": "valid_before"}[field]
    assert getattr(auth, attribute) == number


@given(
    st.integers(min_value=UINT256_MAX + 1, max_value=2**300) | st.integers(max_value=-1, min_value=-(2**300)),
    st.sampled_from(["value", "validAfter", "validBefore"]),
    st.booleans(),
)
def test_every_out_of_range_integer_is_rejected(number: int, field: str, as_string: bool) -> None:
    error = rejection(payload_with(**{field: str(number) if as_string else number}))
    assert f"payload.authorization.{field}" in error.message


@pytest.mark.parametrize(
    "bad",
    [str(2**256), "-1", "+1", "1.0", "1e3", "0x10", " 1", "1 ", "", "١٢", "1_000", 1.0, True, None, [1], {"v": 1}],
)
@pytest.mark.parametrize("field", ["value", "validAfter", "validBefore"])
def test_malformed_numbers_are_rejected_naming_the_field(bad: object, field: str) -> None:
    error = rejection(payload_with(**{field: bad}))
    assert f"payload.authorization.{field}" in error.message


def test_zero_padded_decimal_within_78_digits_is_accepted() -> None:
    assert parse_exact_evm_payload(payload_with(value="000010000")).value == 10000
    rejection(payload_with(value="0" * 79))


@pytest.mark.parametrize("field", ["from", "to", "value", "validAfter", "validBefore", "nonce"])
def test_missing_authorization_field_is_named(field: str) -> None:
    payload = copy.deepcopy(SPEC_PAYLOAD)
    del payload["authorization"][field]
    error = rejection(payload)
    assert error.message == f"missing field payload.authorization.{field}"


@pytest.mark.parametrize("field", ["signature", "authorization"])
def test_missing_payload_field_is_named(field: str) -> None:
    payload = copy.deepcopy(SPEC_PAYLOAD)
    del payload[field]
    assert rejection(payload).message == f"missing field payload.{field}"


@pytest.mark.parametrize(
    "bad",
    [
        "0x857b06519E91e3A54538791bDbb0E22373e36b6",  # 39 hex digits
        "0x857b06519E91e3A54538791bDbb0E22373e36b666",  # 41
        "857b06519E91e3A54538791bDbb0E22373e36b66aa",  # no 0x
        "0X857b06519E91e3A54538791bDbb0E22373e36b66",
        "0x857b06519E91e3A54538791bDbb0E22373e36bgg",
        "0x857b06519E91e3A54538791bDbb0E22373e36b66\n",
        "",
        None,
        123,
    ],
)
@pytest.mark.parametrize("field", ["from", "to"])
def test_addresses_must_be_0x_and_40_hex(bad: object, field: str) -> None:
    assert f"payload.authorization.{field}" in rejection(payload_with(**{field: bad})).message


@pytest.mark.parametrize("bad", ["0x" + "ab" * 31, "0x" + "ab" * 33, "0x" + "zz" * 32, "ab" * 32 + "0x", 5, None])
def test_nonce_must_be_32_bytes_of_hex(bad: object) -> None:
    assert "payload.authorization.nonce" in rejection(payload_with(nonce=bad)).message


@pytest.mark.parametrize("bad", ["", "0x", "0xabc", "0xzz", "abcd", "0x 00", 12, None])
def test_signature_must_be_even_nonempty_hex(bad: object) -> None:
    payload = copy.deepcopy(SPEC_PAYLOAD)
    payload["signature"] = bad
    assert "payload.signature" in rejection(payload).message


@pytest.mark.parametrize("length", [1, 64, 65, 66, 500])
def test_signatures_of_any_even_length_are_accepted(length: int) -> None:
    payload = copy.deepcopy(SPEC_PAYLOAD)
    payload["signature"] = "0x" + "11" * length
    assert parse_exact_evm_payload(payload).signature == b"\x11" * length


@pytest.mark.parametrize("bad", [None, [], "x", {"signature": "0x00", "authorization": "x"}])
def test_payload_and_authorization_must_be_objects(bad: object) -> None:
    rejection(bad)
