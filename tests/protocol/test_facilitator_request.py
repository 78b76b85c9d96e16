"""parse_facilitator_request: the /verify and /settle body, v1 and v2."""

from __future__ import annotations

import copy

import pytest

from app.protocol import (
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ProtocolError,
    Reason,
    parse_exact_evm_payload,
    parse_facilitator_request,
    payload_network,
    payload_scheme,
    requirement_amount,
    requirement_network,
)
from tests.protocol.vectors import PAYMENT_SIGNATURE_JSON

V2_REQUIREMENTS = PAYMENT_SIGNATURE_JSON["accepted"]
V1_REQUIREMENTS = {
    "scheme": "exact",
    "network": "base-sepolia",
    "maxAmountRequired": "10000",
    "resource": "https://api.example.com/premium-data",
    "description": "Access to premium market data",
    "mimeType": "application/json",
    "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "maxTimeoutSeconds": 60,
    "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    "extra": {"name": "USDC", "version": "2"},
}
V1_PAYLOAD = {
    "x402Version": 1,
    "scheme": "exact",
    "network": "base-sepolia",
    "payload": PAYMENT_SIGNATURE_JSON["payload"],
}


def v2_body() -> dict:
    # Separate copies: one deepcopy of both would keep accepted and paymentRequirements the same object.
    return {
        "x402Version": 2,
        "paymentPayload": copy.deepcopy(PAYMENT_SIGNATURE_JSON),
        "paymentRequirements": copy.deepcopy(V2_REQUIREMENTS),
    }


def v1_body() -> dict:
    return {
        "x402Version": 1,
        "paymentPayload": copy.deepcopy(V1_PAYLOAD),
        "paymentRequirements": copy.deepcopy(V1_REQUIREMENTS),
    }


def rejection(body: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_facilitator_request(body)  # type: ignore[arg-type]
    return info.value


# --- accepted --------------------------------------------------------------------------------------


def test_v2_body() -> None:
    request = parse_facilitator_request(v2_body())
    payload, req = request.payload, request.requirements
    assert isinstance(payload, PaymentPayload)
    assert isinstance(req, PaymentRequirements)
    assert payload_scheme(payload) == "exact"
    assert payload_network(payload) == "eip155:84532"
    assert requirement_amount(req) == "10000"
    assert requirement_network(req) == "eip155:84532"
    assert parse_exact_evm_payload(payload.payload).value == 10000


def test_v1_body() -> None:
    request = parse_facilitator_request(v1_body())
    payload, req = request.payload, request.requirements
    assert isinstance(payload, PaymentPayloadV1)
    assert isinstance(req, PaymentRequirementsV1)
    assert payload_scheme(payload) == "exact"
    assert payload_network(payload) == "eip155:84532"
    assert requirement_amount(req) == "10000"
    assert requirement_network(req) == "eip155:84532"


def test_top_level_version_may_be_absent() -> None:
    body = v2_body()
    del body["x402Version"]
    assert isinstance(parse_facilitator_request(body).payload, PaymentPayload)


# --- versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 3, "2", 2.0, True, None, [2]])
def test_payload_version_other_than_1_or_2_is_invalid_x402_version(version: object) -> None:
    body = v2_body()
    body["paymentPayload"]["x402Version"] = version
    assert rejection(body).reason is Reason.invalid_x402_version


def test_missing_payload_version_is_invalid_x402_version() -> None:
    body = v2_body()
    del body["paymentPayload"]["x402Version"]
    error = rejection(body)
    assert error.reason is Reason.invalid_x402_version
    assert "paymentPayload.x402Version" in error.message


def test_top_level_version_disagreeing_with_payload_is_rejected() -> None:
    body = v2_body()
    body["x402Version"] = 1
    assert rejection(body).reason is Reason.invalid_x402_version
    body["x402Version"] = 7
    assert rejection(body).reason is Reason.invalid_x402_version


def test_v1_payload_with_v2_requirements_is_invalid_payment_requirements() -> None:
    body = v1_body()
    body["paymentRequirements"] = copy.deepcopy(V2_REQUIREMENTS)
    error = rejection(body)
    assert error.reason is Reason.invalid_payment_requirements
    assert "maxAmountRequired" in error.message


def test_v2_payload_with_v1_requirements_is_invalid_payment_requirements() -> None:
    body = v2_body()
    body["paymentRequirements"] = copy.deepcopy(V1_REQUIREMENTS)
    error = rejection(body)
    assert error.reason is Reason.invalid_payment_requirements
    assert "amount" in error.message


def test_v2_payload_shape_with_version_1_is_invalid_payload() -> None:
    body = v1_body()
    body["paymentPayload"] = dict(copy.deepcopy(PAYMENT_SIGNATURE_JSON), x402Version=1)
    error = rejection(body)
    assert error.reason is Reason.invalid_payload
    assert "paymentPayload.scheme" in error.message


# --- missing and malformed fields -----------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], "x", 1])
def test_body_must_be_an_object(body: object) -> None:
    assert rejection(body).reason is Reason.malformed_request


def test_missing_payment_payload() -> None:
    body = v2_body()
    del body["paymentPayload"]
    error = rejection(body)
    assert (error.reason, error.message) == (Reason.invalid_payload, "missing field paymentPayload")


def test_missing_payment_requirements() -> None:
    body = v2_body()
    del body["paymentRequirements"]
    error = rejection(body)
    assert (error.reason, error.message) == (Reason.invalid_payment_requirements, "missing field paymentRequirements")


@pytest.mark.parametrize("value", [None, [], "x"])
def test_non_object_parts(value: object) -> None:
    body = v2_body()
    body["paymentPayload"] = value
    assert rejection(body).reason is Reason.invalid_payload
    body = v2_body()
    body["paymentRequirements"] = value
    assert rejection(body).reason is Reason.invalid_payment_requirements


@pytest.mark.parametrize("field", ["scheme", "network", "amount", "asset", "payTo", "maxTimeoutSeconds"])
def test_missing_requirement_field_is_named(field: str) -> None:
    body = v2_body()
    del body["paymentRequirements"][field]
    if field == "amount":
        body["paymentRequirements"].pop("maxAmountRequired", None)
    error = rejection(body)
    assert error.reason is Reason.invalid_payment_requirements
    assert f"missing field paymentRequirements.{field}" in error.message


@pytest.mark.parametrize("field", ["payload", "accepted"])
def test_missing_v2_payload_field_is_named(field: str) -> None:
    body = v2_body()
    del body["paymentPayload"][field]
    error = rejection(body)
    assert error.reason is Reason.invalid_payload
    assert f"missing field paymentPayload.{field}" in error.message


def test_missing_nested_accepted_field_is_named() -> None:
    body = v2_body()
    del body["paymentPayload"]["accepted"]["payTo"]
    error = rejection(body)
    assert error.reason is Reason.invalid_payload
    assert "paymentPayload.accepted.payTo" in error.message


@pytest.mark.parametrize("field", ["scheme", "network", "payload"])
def test_missing_v1_payload_field_is_named(field: str) -> None:
    body = v1_body()
    del body["paymentPayload"][field]
    error = rejection(body)
    assert error.reason is Reason.invalid_payload
    assert f"missing field paymentPayload.{field}" in error.message


@pytest.mark.parametrize("field", ["resource", "maxAmountRequired", "payTo"])
def test_missing_v1_requirement_field_is_named(field: str) -> None:
    body = v1_body()
    del body["paymentRequirements"][field]
    error = rejection(body)
    assert error.reason is Reason.invalid_payment_requirements
    assert f"missing field paymentRequirements.{field}" in error.message


@pytest.mark.parametrize("amount", [str(2**256), "-1", 10000])
def test_bad_required_amount_is_invalid_payment_requirements(amount: object) -> None:
    body = v2_body()
    body["paymentRequirements"]["amount"] = amount
    error = rejection(body)
    assert error.reason is Reason.invalid_payment_requirements
    assert "paymentRequirements.amount" in error.message


@pytest.mark.parametrize("value", [str(2**256), "-1", -1, 2**256])
def test_authorization_value_out_of_range_is_invalid_payload(value: object) -> None:
    body = v2_body()
    body["paymentPayload"]["payload"]["authorization"]["value"] = value
    payload = parse_facilitator_request(body).payload  # the envelope is well-formed ...
    with pytest.raises(ProtocolError) as info:  # ... the scheme payload is not
        parse_exact_evm_payload(payload.payload)
    assert info.value.reason is Reason.invalid_payload
    assert "payload.authorization.value" in info.value.message


def test_error_messages_are_short_and_free_of_pydantic_noise() -> None:
    body = v2_body()
    body["paymentRequirements"] = {"junk": "x" * 5000}
    error = rejection(body)
    assert error.reason is Reason.invalid_payment_requirements
    assert "x" * 100 not in error.message
    assert "errors.pydantic.dev" not in error.message
    assert "Traceback" not in error.message
    assert "more" in error.message  # six missing fields, three reported
    assert len(error.message) < 300


# --- network accessors ----------------------------------------------------------------------------


def test_v2_network_must_be_caip2() -> None:
    body = v2_body()
    body["paymentRequirements"]["network"] = "base-sepolia"
    body["paymentPayload"]["accepted"]["network"] = "base-sepolia"
    request = parse_facilitator_request(body)
    payload, req = request.payload, request.requirements
    for call in (lambda: requirement_network(req), lambda: payload_network(payload)):
        with pytest.raises(ProtocolError) as info:
            call()
        assert info.value.reason is Reason.invalid_network


def test_v1_unknown_network_name_is_invalid_network() -> None:
    body = v1_body()
    body["paymentRequirements"]["network"] = "base-mainnet"
    body["paymentPayload"]["network"] = "base-mainnet"
    request = parse_facilitator_request(body)
    payload, req = request.payload, request.requirements
    for call in (lambda: requirement_network(req), lambda: payload_network(payload)):
        with pytest.raises(ProtocolError) as info:
            call()
        assert info.value.reason is Reason.invalid_network


@pytest.mark.parametrize("text", ["a\x00b", "\udfff"], ids=["nul", "lone_surrogate"])
def test_text_a_ledger_cannot_store_is_refused_in_either_part_naming_where(text):
    payload_body = v2_body()
    payload_body["paymentPayload"]["resource"] = {"url": text}
    with pytest.raises(ProtocolError) as refused:
        parse_facilitator_request(payload_body)
    assert refused.value.reason == Reason.invalid_payload and "paymentPayload.resource.url" in refused.value.message
    requirements_body = v2_body()
    requirements_body["paymentRequirements"]["extra"] = {"name": "USDC", "version": "2", text: "x"}
    with pytest.raises(ProtocolError) as refused:
        parse_facilitator_request(requirements_body)
    assert refused.value.reason == Reason.invalid_payment_requirements and "(a key)" in refused.value.message
