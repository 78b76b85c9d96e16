"""Wire models: camelCase, None omitted, extensions kept, and the same shapes as the official SDK."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError
from x402.schemas import PaymentPayload as SdkPaymentPayload
from x402.schemas import PaymentRequired as SdkPaymentRequired
from x402.schemas import PaymentRequirements as SdkPaymentRequirements
from x402.schemas import ResourceInfo as SdkResourceInfo
from x402.schemas import SettleResponse as SdkSettleResponse
from x402.schemas import SupportedKind as SdkSupportedKind
from x402.schemas import SupportedResponse as SdkSupportedResponse
from x402.schemas import VerifyResponse as SdkVerifyResponse
from x402.schemas.v1 import PaymentPayloadV1 as SdkPaymentPayloadV1
from x402.schemas.v1 import PaymentRequiredV1 as SdkPaymentRequiredV1
from x402.schemas.v1 import PaymentRequirementsV1 as SdkPaymentRequirementsV1

from app.protocol import (
    ExactEvmAuthorization,
    ExactEvmPayload,
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequired,
    PaymentRequiredV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ResourceInfo,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)
from tests.protocol.vectors import PAYMENT_REQUIRED_JSON, PAYMENT_SIGNATURE_JSON

ASSET = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"


def requirements(**overrides: object) -> PaymentRequirements:
    fields: dict = {
        "scheme": "exact",
        "network": "eip155:84532",
        "amount": "10000",
        "asset": ASSET,
        "pay_to": PAY_TO,
        "max_timeout_seconds": 300,
        "extra": {"name": "USDC", "version": "2"},
    }
    fields.update(overrides)
    return PaymentRequirements(**fields)


# --- our dumps validate with the SDK ----------------------------------------------------------------


def test_payment_required_dump_validates_with_sdk() -> None:
    ours = PaymentRequired(
        error="Payment required",
        resource=ResourceInfo(url="https://api.example.com/x", description="X", mime_type="application/json"),
        accepts=[requirements()],
    )
    wire = ours.to_wire()
    sdk = SdkPaymentRequired.model_validate(wire)
    assert sdk.model_dump(by_alias=True, exclude_none=True) == wire
    assert wire["x402Version"] == 2
    assert wire["accepts"][0]["payTo"] == PAY_TO
    assert wire["accepts"][0]["maxTimeoutSeconds"] == 300
    assert wire["resource"]["mimeType"] == "application/json"


def test_payment_payload_dump_validates_with_sdk() -> None:
    ours = PaymentPayload.model_validate(PAYMENT_SIGNATURE_JSON)
    wire = ours.to_wire()
    assert wire == PAYMENT_SIGNATURE_JSON
    sdk = SdkPaymentPayload.model_validate(wire)
    assert sdk.model_dump(by_alias=True, exclude_none=True) == wire


def test_v1_dumps_validate_with_sdk() -> None:
    req = PaymentRequirementsV1(
        scheme="exact",
        network="base-sepolia",
        max_amount_required="10000",
        asset=ASSET,
        pay_to=PAY_TO,
        resource="https://api.example.com/x",
        description="X",
        max_timeout_seconds=60,
        extra={"name": "USDC", "version": "2"},
    )
    required = PaymentRequiredV1(error="X-PAYMENT header is required", accepts=[req])
    wire = required.to_wire()
    assert SdkPaymentRequiredV1.model_validate(wire).model_dump(by_alias=True, exclude_none=True) == wire
    assert wire["accepts"][0]["maxAmountRequired"] == "10000"

    payload = PaymentPayloadV1(scheme="exact", network="base-sepolia", payload=PAYMENT_SIGNATURE_JSON["payload"])
    wire = payload.to_wire()
    assert wire["x402Version"] == 1
    assert SdkPaymentPayloadV1.model_validate(wire).model_dump(by_alias=True, exclude_none=True) == wire


def test_responses_validate_with_sdk() -> None:
    verify = VerifyResponse(is_valid=False, invalid_reason="invalid_payload", invalid_message="m", payer="0x01")
    assert (
        SdkVerifyResponse.model_validate(verify.to_wire()).model_dump(by_alias=True, exclude_none=True)
        == verify.to_wire()
    )

    settle = SettleResponse(success=True, payer="0x01", transaction="0xab", network="eip155:84532", amount="5")
    assert (
        SdkSettleResponse.model_validate(settle.to_wire()).model_dump(by_alias=True, exclude_none=True)
        == settle.to_wire()
    )

    supported = SupportedResponse(
        kinds=[SupportedKind(x402_version=2, scheme="exact", network="eip155:84532")],
        extensions=["bazaar"],
        signers={"eip155:*": ["0x01"]},
    )
    sdk = SdkSupportedResponse.model_validate(supported.to_wire())
    assert sdk.model_dump(by_alias=True, exclude_none=True) == supported.to_wire()


# --- SDK dumps parse with ours ----------------------------------------------------------------------


def test_sdk_dumps_parse_with_ours() -> None:
    sdk_req = SdkPaymentRequirements(
        scheme="exact",
        network="eip155:84532",
        asset=ASSET,
        amount="10000",
        pay_to=PAY_TO,
        max_timeout_seconds=300,
        extra={"name": "USDC", "version": "2"},
    )
    sdk_required = SdkPaymentRequired(
        resource=SdkResourceInfo(url="https://a/b", service_name="svc", tags=["t"], icon_url="https://a/i.png"),
        accepts=[sdk_req],
        extensions={"bazaar": {"info": {}, "schema": {}}},
    )
    wire = sdk_required.model_dump(by_alias=True, exclude_none=True)
    ours = PaymentRequired.model_validate(wire)
    assert ours.resource.service_name == "svc"
    assert ours.resource.icon_url == "https://a/i.png"
    assert ours.accepts[0].pay_to == PAY_TO
    assert ours.to_wire() == wire

    sdk_payload = SdkPaymentPayload(payload={"signature": "0x00"}, accepted=sdk_req)
    wire = sdk_payload.model_dump(by_alias=True, exclude_none=True)
    assert PaymentPayload.model_validate(wire).to_wire() == wire

    sdk_v1 = SdkPaymentRequirementsV1(
        scheme="exact",
        network="base",
        max_amount_required="1",
        resource="https://a/b",
        pay_to=PAY_TO,
        max_timeout_seconds=60,
        asset=ASSET,
        output_schema={"type": "object"},
    )
    wire = sdk_v1.model_dump(by_alias=True, exclude_none=True)
    parsed = PaymentRequirementsV1.model_validate(wire)
    assert parsed.output_schema == {"type": "object"}
    assert parsed.description == ""

    kinds = SdkSupportedResponse(kinds=[SdkSupportedKind(x402_version=1, scheme="exact", network="base")])
    wire = kinds.model_dump(by_alias=True, exclude_none=True)
    assert SupportedResponse.model_validate(wire).to_wire() == wire


def test_spec_payment_required_example_round_trips() -> None:
    assert PaymentRequired.model_validate(PAYMENT_REQUIRED_JSON).to_wire() == PAYMENT_REQUIRED_JSON


# --- extensions, nulls, names -----------------------------------------------------------------------


def test_unknown_fields_survive_a_round_trip() -> None:
    wire = copy.deepcopy(PAYMENT_SIGNATURE_JSON)
    wire["extensions"] = {"payment-identifier": {"id": "abc"}}
    wire["futureTopLevel"] = {"k": [1, 2]}
    wire["accepted"]["futureField"] = "kept"
    wire["accepted"]["extra"]["assetTransferMethod"] = "eip3009"
    wire["resource"]["futureResourceField"] = 7
    assert PaymentPayload.model_validate(wire).to_wire() == wire


def test_null_fields_are_omitted() -> None:
    wire = PaymentRequired(resource=ResourceInfo(url="https://a"), accepts=[requirements(extra=None)]).to_wire()
    assert "error" not in wire
    assert "extensions" not in wire
    assert wire["resource"] == {"url": "https://a"}
    assert "extra" not in wire["accepts"][0]

    failure = SettleResponse(success=False, error_reason="transaction_failed", network="eip155:84532").to_wire()
    assert failure == {
        "success": False,
        "errorReason": "transaction_failed",
        "transaction": "",
        "network": "eip155:84532",
    }
    assert VerifyResponse(is_valid=True, payer="0x01").to_wire() == {"isValid": True, "payer": "0x01"}


def test_supported_defaults() -> None:
    assert SupportedResponse(kinds=[]).to_wire() == {"kinds": [], "extensions": [], "signers": {}}


def test_snake_case_names_are_accepted_too() -> None:
    req = PaymentRequirements.model_validate(
        {
            "scheme": "exact",
            "network": "eip155:1",
            "amount": "1",
            "asset": ASSET,
            "pay_to": PAY_TO,
            "max_timeout_seconds": 5,
        }
    )
    assert req.to_wire()["payTo"] == PAY_TO


def test_exact_evm_payload_shape_uses_from_on_the_wire() -> None:
    shape = ExactEvmPayload.model_validate(PAYMENT_SIGNATURE_JSON["payload"])
    assert isinstance(shape.authorization, ExactEvmAuthorization)
    assert shape.authorization.from_ == "0x857b06519E91e3A54538791bDbb0E22373e36b66"
    assert shape.authorization.valid_before == "1740672154"
    assert shape.to_wire() == PAYMENT_SIGNATURE_JSON["payload"]


# --- field validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["-1", "1.5", "", "+1", "0x10", str(2**256), 10000, " 1"])
def test_requirement_amount_must_be_a_uint256_decimal_string(amount: object) -> None:
    with pytest.raises(ValidationError):
        requirements(amount=amount)


@pytest.mark.parametrize("timeout", ["300", 300.0, True, -1])
def test_max_timeout_seconds_is_a_non_negative_json_integer(timeout: object) -> None:
    with pytest.raises(ValidationError):
        requirements(max_timeout_seconds=timeout)


@pytest.mark.parametrize("version", [1, True, 2.0, "2", 3])
def test_v2_models_require_version_2(version: object) -> None:
    wire = dict(PAYMENT_SIGNATURE_JSON, x402Version=version)
    with pytest.raises(ValidationError):
        PaymentPayload.model_validate(wire)


def test_v1_models_require_version_1() -> None:
    with pytest.raises(ValidationError):
        PaymentPayloadV1.model_validate({"x402Version": 2, "scheme": "exact", "network": "base", "payload": {}})
    with pytest.raises(ValidationError):
        PaymentRequiredV1.model_validate({"x402Version": True, "accepts": []})
