"""Header codec: standard base64 of compact UTF-8 JSON, decoded strictly."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_signature_header,
    encode_payment_required_header,
    encode_payment_response_header,
    encode_payment_signature_header,
)
from x402.schemas import PaymentPayload as SdkPaymentPayload
from x402.schemas import PaymentRequired as SdkPaymentRequired
from x402.schemas import SettleResponse as SdkSettleResponse

from app.protocol import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    PaymentRequired,
    ProtocolError,
    Reason,
    SettleResponse,
    decode_header,
    decode_json_body,
    encode_header,
)
from tests.protocol.vectors import HEADER_VECTORS, PAYMENT_REQUIRED_JSON, PAYMENT_SIGNATURE_JSON


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def reason_of(value: str, **kwargs: int) -> Reason:
    with pytest.raises(ProtocolError) as info:
        decode_header(value, **kwargs)
    return info.value.reason


# --- spec vectors and the official SDK ------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), HEADER_VECTORS)
def test_spec_header_vectors_decode_to_the_spec_json(header: str, expected: dict) -> None:
    assert decode_header(header) == expected


@pytest.mark.parametrize(("header", "expected"), HEADER_VECTORS)
def test_encoding_the_spec_json_gives_the_spec_header_byte_for_byte(header: str, expected: dict) -> None:
    assert encode_header(expected) == header


def test_sdk_encoded_headers_decode_with_ours() -> None:
    required = SdkPaymentRequired.model_validate(PAYMENT_REQUIRED_JSON)
    payload = SdkPaymentPayload.model_validate(PAYMENT_SIGNATURE_JSON)
    receipt = SdkSettleResponse(success=True, transaction="0xab", network="eip155:84532", payer="0x01")

    assert decode_header(encode_payment_required_header(required)) == PAYMENT_REQUIRED_JSON
    assert decode_header(encode_payment_signature_header(payload)) == PAYMENT_SIGNATURE_JSON
    assert decode_header(encode_payment_response_header(receipt)) == {
        "success": True,
        "payer": "0x01",
        "transaction": "0xab",
        "network": "eip155:84532",
    }


def test_our_encoded_headers_decode_with_the_sdk() -> None:
    ours = PaymentRequired.model_validate(PAYMENT_REQUIRED_JSON)
    sdk_required = decode_payment_required_header(encode_header(ours))
    assert sdk_required.model_dump(by_alias=True, exclude_none=True) == PAYMENT_REQUIRED_JSON

    sdk_payload = decode_payment_signature_header(encode_header(PAYMENT_SIGNATURE_JSON))
    assert sdk_payload.model_dump(by_alias=True, exclude_none=True) == PAYMENT_SIGNATURE_JSON


# --- encoding -------------------------------------------------------------------------------------


def test_encode_is_standard_padded_base64_of_compact_json() -> None:
    header = encode_header({"a": 1, "b": [1, 2], "c": "x y", "d": {}})
    assert header == b64('{"a":1,"b":[1,2],"c":"x y","d":{}}')
    assert header.endswith("==")


def test_encode_model_uses_camel_case_and_omits_none() -> None:
    receipt = SettleResponse(success=False, error_reason="transaction_failed", network="eip155:84532")
    assert json.loads(base64.b64decode(encode_header(receipt))) == {
        "success": False,
        "errorReason": "transaction_failed",
        "transaction": "",
        "network": "eip155:84532",
    }


def test_encode_keeps_non_ascii_as_utf8() -> None:
    header = encode_header({"description": "café ☕"})
    assert base64.b64decode(header) == '{"description":"café ☕"}'.encode()


def test_encode_mapping_keeps_explicit_nulls() -> None:
    assert decode_header(encode_header({"a": None})) == {"a": None}


def test_encode_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        encode_header([1, 2])  # type: ignore[arg-type]


# --- round trips ----------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=8)


@given(json_objects)
def test_decode_inverts_encode_for_any_json_object(obj: dict) -> None:
    assert decode_header(encode_header(obj), max_bytes=10**7) == obj


@given(json_objects)
def test_decode_reads_any_standard_base64_json_object(obj: dict) -> None:
    header = b64(json.dumps(obj))  # non-compact, ASCII-escaped: still valid input
    assert decode_header(header, max_bytes=10**7) == obj


# --- strict decoding: which reason ----------------------------------------------------------------


def test_oversized_header_is_request_too_large() -> None:
    header = encode_header({"pad": "x" * MAX_HEADER_BYTES})
    assert len(header) > MAX_HEADER_BYTES
    assert reason_of(header) is Reason.request_too_large


def test_max_bytes_is_inclusive_and_configurable() -> None:
    header = encode_header({"a": "b" * 30})
    assert decode_header(header, max_bytes=len(header)) == {"a": "b" * 30}
    assert reason_of(header, max_bytes=len(header) - 1) is Reason.request_too_large


def test_default_limits() -> None:
    assert MAX_HEADER_BYTES == 16 * 1024
    assert MAX_BODY_BYTES == 64 * 1024


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("eyJhIjoxfQ", "base64"),  # {"a":1} without its padding
        ("eyJhIjoxfQ=", "base64"),  # half the padding
        ("eyJhIjoxfQ===", "base64"),  # too much padding
        ("eyJh Ijox fQ==", "base64"),  # inner whitespace
        ("eyJhIjoxfQ==\n", "base64"),  # trailing newline
        ("eyJhIjo*fQ==", "base64"),  # outside the alphabet
        ("ey==JhIjoxfQ", "base64"),  # padding in the middle
        ("eyJhIjoxfR==", "canonical"),  # non-zero padding bits
        ("eyJhIjoxfQ==é", "non-ASCII"),
    ],
)
def test_malformed_base64_is_invalid_payload(header: str, says: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_header(header)
    assert info.value.reason is Reason.invalid_payload
    assert says in info.value.message


def test_url_safe_alphabet_is_rejected() -> None:
    text = '{"k":"\u00ff\u00fe>?"}'  # encodes with '+' and '/' in standard base64
    standard = b64(text)
    assert "+" in standard or "/" in standard
    url_safe = base64.urlsafe_b64encode(text.encode()).decode()
    assert url_safe != standard
    assert decode_header(standard) == json.loads(text)
    with pytest.raises(ProtocolError) as info:
        decode_header(url_safe)
    assert info.value.reason is Reason.invalid_payload
    assert "URL-safe" in info.value.message


def test_surrounding_http_whitespace_is_ignored() -> None:
    assert decode_header(" \t" + encode_header({"a": 1}) + " ") == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\xff\xfe{}", "UTF-8"),
        (b"not json", "not valid JSON"),
        (b'{"a":1', "not valid JSON"),
        (b'{"a":NaN}', "not valid JSON"),
        (b'{"a":Infinity}', "not valid JSON"),
        (b'{"a":1,"a":2}', "duplicate JSON key"),
        (b"[1,2]", "JSON array"),
        (b'"text"', "JSON string"),
        (b"42", "JSON number"),
        (b"null", "JSON null"),
        (b"true", "JSON boolean"),
        (b"[" * 5000 + b"]" * 5000, "JSON"),
        (b'{"a":' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_bad_content_is_invalid_payload(raw: bytes, says: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_header(base64.b64encode(raw).decode(), max_bytes=10**6)
    assert info.value.reason is Reason.invalid_payload
    assert says in info.value.message


def test_error_messages_do_not_echo_the_header() -> None:
    secret = "0x" + "ab" * 200
    with pytest.raises(ProtocolError) as info:
        decode_header(b64(f'["{secret}"]'))
    assert secret not in str(info.value)


# --- request bodies -------------------------------------------------------------------------------


def test_body_is_parsed_strictly() -> None:
    assert decode_json_body(b'{"x402Version":2}') == {"x402Version": 2}
    for raw in (b"", b"[]", b'{"a":1,"a":1}', b"\xc3("):
        with pytest.raises(ProtocolError) as info:
            decode_json_body(raw)
        assert info.value.reason is Reason.malformed_request


def test_body_over_the_limit_is_request_too_large() -> None:
    body = b'{"a":"' + b"x" * MAX_BODY_BYTES + b'"}'
    with pytest.raises(ProtocolError) as info:
        decode_json_body(body)
    assert info.value.reason is Reason.request_too_large
    assert decode_json_body(body, max_bytes=len(body)) == {"a": "x" * MAX_BODY_BYTES}
