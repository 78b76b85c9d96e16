"""The standard facilitator API: POST /verify, POST /settle, GET /supported.

An invalid payment is an answer, not an error: HTTP 200 with ``isValid:false`` / ``success:false``
and a reason code, as the official SDK clients expect (they raise on any non-200). Only a body
that is not JSON, not an object or too large is a 400 / 413.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from app.access.dependencies import require_facilitator_caller
from app.deps import get_facilitator
from app.errors import BadRequest, PayloadTooLarge
from app.facilitator.service import Facilitator
from app.protocol import (
    MAX_BODY_BYTES,
    ProtocolError,
    Reason,
    SettleResponse,
    VerifyResponse,
    decode_json_body,
    parse_facilitator_request,
)

router = APIRouter(tags=["facilitator"])


async def _read_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is {declared} bytes, more than the limit of {MAX_BODY_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body is more than the limit of {MAX_BODY_BYTES} bytes")
    try:
        return decode_json_body(bytes(body))
    except ProtocolError as error:
        if error.reason == Reason.request_too_large:
            raise PayloadTooLarge(error.message) from None
        raise BadRequest(error.message, reason=error.reason) from None


@router.get("/supported", summary="The (x402Version, scheme, network) kinds this facilitator settles")
async def supported(facilitator: Facilitator = Depends(get_facilitator)) -> JSONResponse:
    return JSONResponse(facilitator.supported().to_wire())


@router.post("/verify", dependencies=[Depends(require_facilitator_caller)], summary="Verify a payment")
async def verify(request: Request, facilitator: Facilitator = Depends(get_facilitator)) -> JSONResponse:
    body = await _read_body(request)
    try:
        payment = parse_facilitator_request(body)
    except ProtocolError as error:
        return JSONResponse(VerifyResponse(is_valid=False, invalid_reason=error.reason,
                                           invalid_message=error.message).to_wire())
    return JSONResponse((await facilitator.verify(payment)).to_wire())


@router.post("/settle", dependencies=[Depends(require_facilitator_caller)], summary="Settle a payment on-chain")
async def settle(request: Request, facilitator: Facilitator = Depends(get_facilitator)) -> JSONResponse:
    body = await _read_body(request)
    try:
        payment = parse_facilitator_request(body)
    except ProtocolError as error:
        network = _network_hint(body)
        return JSONResponse(SettleResponse(success=False, error_reason=error.reason, error_message=error.message,
                                           network=network).to_wire())
    return JSONResponse((await facilitator.settle(payment)).to_wire())


def _network_hint(body: dict[str, Any]) -> str:
    requirements = body.get("paymentRequirements")
    network = requirements.get("network") if isinstance(requirements, dict) else None
    return network if isinstance(network, str) and len(network) <= 64 else ""
