"""x402 wire models (v1 and v2), the validated EIP-3009 authorization, and request parsing.

Models are camelCase on the wire and tolerate unknown fields (``extra="allow"``) so extensions survive
a round trip; :meth:`WireModel.to_wire` dumps them with ``None`` fields omitted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError
from pydantic.alias_generators import to_camel

from app.protocol.errors import ProtocolError
from app.protocol.networks import normalize_network
from app.protocol.reasons import Reason

UINT256_MAX = 2**256 - 1
_UINT_DIGITS = 78  # len(str(UINT256_MAX)); longer decimal strings (even zero-padded) are refused

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
_BYTES32_RE = re.compile(r"0x[0-9a-fA-F]{64}", re.ASCII)
_HEX_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})+", re.ASCII)
_DECIMAL_RE = re.compile(r"[0-9]+", re.ASCII)


# --------------------------------------------------------------------------------------------------
# Scalar checks shared by the models and the authorization parser


def _decimal_uint256_or_none(value: object) -> int | None:
    """The int a JSON decimal string or JSON integer stands for, if it is in [0, 2**256-1]; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= UINT256_MAX else None
    if isinstance(value, str) and len(value) <= _UINT_DIGITS and _DECIMAL_RE.fullmatch(value):
        number = int(value)
        return number if number <= UINT256_MAX else None
    return None


def _check_atomic_amount(value: str) -> str:
    if _decimal_uint256_or_none(value) is None:
        raise ValueError("must be a decimal string of atomic units in [0, 2**256-1]")
    return value


def _require_plain_int(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a JSON integer")
    return value


AtomicAmount = Annotated[str, AfterValidator(_check_atomic_amount)]
Version1 = Annotated[Literal[1], BeforeValidator(_require_plain_int)]
Version2 = Annotated[Literal[2], BeforeValidator(_require_plain_int)]
TimeoutSeconds = Annotated[StrictInt, Field(ge=0)]


# --------------------------------------------------------------------------------------------------
# Wire models


class WireModel(BaseModel):
    """Base of every x402 wire model: camelCase aliases, snake_case names accepted, extensions kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready dict: camelCase keys, ``None`` fields omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ResourceInfo(WireModel):
    url: str
    description: str | None = None
    mime_type: str | None = None
    service_name: str | None = None
    tags: list[str] | None = None
    icon_url: str | None = None


class PaymentRequirements(WireModel):
    """v2 requirements: one entry of ``accepts``; ``network`` is CAIP-2, ``amount`` atomic units."""

    scheme: str
    network: str
    amount: AtomicAmount
    asset: str
    pay_to: str
    max_timeout_seconds: TimeoutSeconds
    extra: dict[str, Any] | None = None


class PaymentRequirementsV1(WireModel):
    """v1 requirements: ``network`` is a v1 name, the amount is ``maxAmountRequired``."""

    scheme: str
    network: str
    max_amount_required: AtomicAmount
    asset: str
    pay_to: str
    resource: str
    description: str = ""
    mime_type: str | None = None
    output_schema: dict[str, Any] | None = None
    max_timeout_seconds: TimeoutSeconds
    extra: dict[str, Any] | None = None


class PaymentRequired(WireModel):
    """v2 ``PAYMENT-REQUIRED`` header content."""

    x402_version: Version2 = 2
    error: str | None = None
    resource: ResourceInfo
    accepts: list[PaymentRequirements]
    extensions: dict[str, Any] | None = None


class PaymentRequiredV1(WireModel):
    """v1 402 JSON body."""

    x402_version: Version1 = 1
    error: str | None = None
    accepts: list[PaymentRequirementsV1]


class PaymentPayload(WireModel):
    """v2 ``PAYMENT-SIGNATURE`` header content: scheme and network live in ``accepted``."""

    x402_version: Version2 = 2
    payload: dict[str, Any]
    accepted: PaymentRequirements
    resource: ResourceInfo | None = None
    extensions: dict[str, Any] | None = None


class PaymentPayloadV1(WireModel):
    """v1 ``X-PAYMENT`` header content."""

    x402_version: Version1 = 1
    scheme: str
    network: str
    payload: dict[str, Any]


class ExactEvmAuthorization(WireModel):
    """Shape of ``payload.authorization`` for the EVM ``exact`` scheme (EIP-3009); all decimal strings."""

    from_: str = Field(alias="from")
    to: str
    value: str
    valid_after: str
    valid_before: str
    nonce: str


class ExactEvmPayload(WireModel):
    """Shape of ``payload`` for the EVM ``exact`` scheme (EIP-3009)."""

    signature: str
    authorization: ExactEvmAuthorization


class VerifyResponse(WireModel):
    is_valid: bool
    invalid_reason: str | None = None
    invalid_message: str | None = None
    payer: str | None = None


class SettleResponse(WireModel):
    success: bool
    error_reason: str | None = None
    error_message: str | None = None
    payer: str | None = None
    transaction: str = ""
    network: str
    amount: str | None = None


class SupportedKind(WireModel):
    x402_version: int
    scheme: str
    network: str
    extra: dict[str, Any] | None = None


class SupportedResponse(WireModel):
    kinds: list[SupportedKind]
    extensions: list[str] = Field(default_factory=list)
    signers: dict[str, list[str]] = Field(default_factory=dict)


AnyPaymentPayload = PaymentPayload | PaymentPayloadV1
AnyPaymentRequirements = PaymentRequirements | PaymentRequirementsV1


# --------------------------------------------------------------------------------------------------
# Validated EIP-3009 authorization


@dataclass(frozen=True, slots=True)
class Authorization:
    """A strictly validated EVM ``exact`` (EIP-3009) payload.

    ``payer`` and ``to`` keep the sender's spelling (0x + 40 hex, any case); compare them case-insensitively.
    """

    payer: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes
    signature: bytes


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(Reason.invalid_payload, message)


def _field(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise _invalid(f"missing field {path}.{key}")
    return obj[key]


def _address(obj: dict[str, Any], key: str, path: str) -> str:
    value = _field(obj, key, path)
    if not isinstance(value, str) or _ADDRESS_RE.fullmatch(value) is None:
        raise _invalid(f"{path}.{key} must be an address: 0x followed by 40 hex digits")
    return value


def _uint256(obj: dict[str, Any], key: str, path: str) -> int:
    value = _field(obj, key, path)
    number = _decimal_uint256_or_none(value)
    if number is None:
        raise _invalid(f"{path}.{key} must be a decimal string of an integer in [0, 2**256-1]")
    return number


def parse_exact_evm_payload(payload: dict[str, Any]) -> Authorization:
    """Validate ``paymentPayload.payload`` of the EVM ``exact`` scheme (EIP-3009) strictly.

    Raises ProtocolError(invalid_payload) naming the missing or malformed field. Signatures of any
    non-empty, even length are accepted (EIP-1271 and ERC-6492 signatures are not 65 bytes).
    """
    if not isinstance(payload, dict):
        raise _invalid("payload must be a JSON object")
    signature = _field(payload, "signature", "payload")
    if not isinstance(signature, str) or _HEX_RE.fullmatch(signature) is None:
        raise _invalid("payload.signature must be 0x followed by a non-empty, even number of hex digits")
    authorization = _field(payload, "authorization", "payload")
    if not isinstance(authorization, dict):
        raise _invalid("payload.authorization must be a JSON object")
    path = "payload.authorization"
    payer = _address(authorization, "from", path)
    to = _address(authorization, "to", path)
    value = _uint256(authorization, "value", path)
    valid_after = _uint256(authorization, "validAfter", path)
    valid_before = _uint256(authorization, "validBefore", path)
    nonce = _field(authorization, "nonce", path)
    if not isinstance(nonce, str) or _BYTES32_RE.fullmatch(nonce) is None:
        raise _invalid(f"{path}.nonce must be 0x followed by 64 hex digits (32 bytes)")
    return Authorization(
        payer=payer,
        to=to,
        value=value,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce=bytes.fromhex(nonce[2:]),
        signature=bytes.fromhex(signature[2:]),
    )


# --------------------------------------------------------------------------------------------------
# /verify and /settle request bodies


_MAX_REPORTED_ERRORS = 3


def _describe_validation_error(exc: ValidationError, prefix: str) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for error in errors[:_MAX_REPORTED_ERRORS]:
        where = ".".join([prefix, *(str(part) for part in error["loc"])])
        if error["type"] == "missing":
            parts.append(f"missing field {where}")
        else:
            parts.append(f"{where}: {error['msg']}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)


def _validate(model: type[WireModel], data: dict[str, Any], reason: Reason, prefix: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(reason, _describe_validation_error(exc, prefix)) from None


def _protocol_version(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2):
        shown = repr(value) if len(repr(value)) <= 20 else repr(value)[:17] + "..."
        raise ProtocolError(Reason.invalid_x402_version, f"{where} must be 1 or 2, got {shown}")
    return value


@dataclass(frozen=True)
class FacilitatorRequest:
    """A parsed ``/verify`` or ``/settle`` body: the payment and the requirements it claims to satisfy.

    Parsed once where it arrives (the facilitator's route, or the gateway's payment header) and
    handed on as it is: only a remote facilitator turns it back into JSON (:meth:`to_wire`).
    """

    payload: PaymentPayload | PaymentPayloadV1
    requirements: PaymentRequirements | PaymentRequirementsV1

    @cached_property
    def authorization(self) -> Authorization:
        """The EVM ``exact`` payload's signed authorization, parsed on first use and then kept.
        Raises ProtocolError(invalid_payload) for a malformed one."""
        return parse_exact_evm_payload(self.payload.payload)

    @property
    def x402_version(self) -> int:
        return self.payload.x402_version

    def to_wire(self) -> dict[str, Any]:
        return {"x402Version": self.payload.x402_version, "paymentPayload": self.payload.to_wire(),
                "paymentRequirements": self.requirements.to_wire()}


def parse_facilitator_request(body: dict[str, Any]) -> FacilitatorRequest:
    """Parse a ``/verify`` or ``/settle`` body ``{x402Version, paymentPayload, paymentRequirements}``.

    The protocol version is ``paymentPayload.x402Version``; the requirements are parsed with the same
    version's model. Raises ProtocolError with reason malformed_request (body not an object),
    invalid_x402_version, invalid_payload or invalid_payment_requirements.
    """
    if not isinstance(body, dict):
        raise ProtocolError(Reason.malformed_request, "body must be a JSON object")
    if "paymentPayload" not in body:
        raise ProtocolError(Reason.invalid_payload, "missing field paymentPayload")
    raw_payload = body["paymentPayload"]
    if not isinstance(raw_payload, dict):
        raise ProtocolError(Reason.invalid_payload, "paymentPayload must be a JSON object")
    if "x402Version" not in raw_payload:
        raise ProtocolError(Reason.invalid_x402_version, "missing field paymentPayload.x402Version")
    version = _protocol_version(raw_payload["x402Version"], "paymentPayload.x402Version")
    if "x402Version" in body and _protocol_version(body["x402Version"], "x402Version") != version:
        raise ProtocolError(
            Reason.invalid_x402_version,
            f"x402Version {body['x402Version']} differs from paymentPayload.x402Version {version}",
        )
    if "paymentRequirements" not in body:
        raise ProtocolError(Reason.invalid_payment_requirements, "missing field paymentRequirements")
    raw_requirements = body["paymentRequirements"]
    if not isinstance(raw_requirements, dict):
        raise ProtocolError(Reason.invalid_payment_requirements, "paymentRequirements must be a JSON object")

    _refuse_unstorable_text(raw_payload, "paymentPayload", Reason.invalid_payload)
    _refuse_unstorable_text(raw_requirements, "paymentRequirements", Reason.invalid_payment_requirements)

    if version == 1:
        if "maxAmountRequired" not in raw_requirements and "amount" in raw_requirements:
            raise ProtocolError(
                Reason.invalid_payment_requirements,
                "x402 v1 payment with v2-shaped paymentRequirements (amount instead of maxAmountRequired)",
            )
        payload_v1 = _validate(PaymentPayloadV1, raw_payload, Reason.invalid_payload, "paymentPayload")
        requirements_v1 = _validate(
            PaymentRequirementsV1, raw_requirements, Reason.invalid_payment_requirements, "paymentRequirements"
        )
        return FacilitatorRequest(payload_v1, requirements_v1)

    if "amount" not in raw_requirements and "maxAmountRequired" in raw_requirements:
        raise ProtocolError(
            Reason.invalid_payment_requirements,
            "x402 v2 payment with v1-shaped paymentRequirements (maxAmountRequired instead of amount)",
        )
    payload_v2 = _validate(PaymentPayload, raw_payload, Reason.invalid_payload, "paymentPayload")
    requirements_v2 = _validate(
        PaymentRequirements, raw_requirements, Reason.invalid_payment_requirements, "paymentRequirements"
    )
    return FacilitatorRequest(payload_v2, requirements_v2)


_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_unstorable_text(value: Any, path: str, reason: Reason) -> None:
    """Refuse text a ledger cannot store or a JSON answer cannot carry: a NUL character (PostgreSQL text
    refuses it) or an unpaired UTF-16 surrogate (not encodable as UTF-8, which both databases and every
    HTTP answer need), in any key or string of the document. Refused here, where the request is parsed, so
    /verify and /settle (and the gateway) give the same answer instead of a verify that passes and a settle
    that can never record it.
    """
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ProtocolError(reason, f"{where} contains a NUL character")
            if _UNPAIRED_SURROGATE.search(item):
                raise ProtocolError(reason, f"{where} contains an unpaired surrogate (not valid Unicode text)")
        elif isinstance(item, dict):
            for key, child in item.items():
                pending.append((key, f"{where} (a key)"))
                pending.append((child, f"{where}.{key}" if _printable_key(key) else f"{where}.<key>"))
        elif isinstance(item, list):
            pending.extend((child, f"{where}[{index}]") for index, child in enumerate(item))


def _printable_key(key: Any) -> bool:
    return isinstance(key, str) and len(key) <= 40 and key.isprintable() and not _UNPAIRED_SURROGATE.search(key)


# --------------------------------------------------------------------------------------------------
# Version-independent accessors


def requirement_amount(req: PaymentRequirements | PaymentRequirementsV1) -> str:
    """The amount in atomic units: ``amount`` (v2) or ``maxAmountRequired`` (v1)."""
    if isinstance(req, PaymentRequirementsV1):
        return req.max_amount_required
    return req.amount


def _caip2_for(network: str, version: int, where: str) -> str:
    if version == 2 and ":" not in network:
        raise ProtocolError(Reason.invalid_network, f"{where} must be a CAIP-2 identifier in x402 v2")
    return normalize_network(network)


def requirement_network(req: PaymentRequirements | PaymentRequirementsV1) -> str:
    """The requirements' network as CAIP-2 (v1 names converted). ProtocolError(invalid_network) if unknown."""
    if isinstance(req, PaymentRequirementsV1):
        return _caip2_for(req.network, 1, "paymentRequirements.network")
    return _caip2_for(req.network, 2, "paymentRequirements.network")


def payload_scheme(p: PaymentPayload | PaymentPayloadV1) -> str:
    """The payment's scheme: ``scheme`` (v1) or ``accepted.scheme`` (v2)."""
    if isinstance(p, PaymentPayloadV1):
        return p.scheme
    return p.accepted.scheme


def payload_network(p: PaymentPayload | PaymentPayloadV1) -> str:
    """The payment's network as CAIP-2: ``accepted.network`` (v2) or the converted v1 name."""
    if isinstance(p, PaymentPayloadV1):
        return _caip2_for(p.network, 1, "paymentPayload.network")
    return _caip2_for(p.accepted.network, 2, "paymentPayload.accepted.network")
