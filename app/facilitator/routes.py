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
from app.bodies import read_json_object
from app.deps import get_facilitator
from app.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized, error_responses
from app.facilitator.schemas import FacilitatorRequestBody
from app.facilitator.service import Facilitator
from app.openapi import body_of
from app.protocol import (
    ProtocolError,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
    parse_facilitator_request,
)

router = APIRouter(tags=["facilitator"])


@router.get("/supported", summary="The (x402Version, scheme, network) kinds this facilitator settles",
            responses={200: {"model": SupportedResponse}})
async def supported(facilitator: Facilitator = Depends(get_facilitator)) -> JSONResponse:
    return JSONResponse(facilitator.supported().to_wire())


_PAYMENT_BODY = body_of(FacilitatorRequestBody, description="the x402 facilitator request (v2 or v1)")
_REFUSED = error_responses(BadRequest, Unauthorized, Forbidden, PayloadTooLarge)


@router.post("/verify", dependencies=[Depends(require_facilitator_caller)], summary="Verify a payment",
             openapi_extra=_PAYMENT_BODY, responses={200: {"model": VerifyResponse}, **_REFUSED})
async def verify(request: Request, facilitator: Facilitator = Depends(get_facilitator)) -> JSONResponse:
    body = await read_json_object(request)
    try:
        payment = parse_facilitator_request(body)
    except ProtocolError as error:
        return JSONResponse(VerifyResponse(is_valid=False, invalid_reason=error.reason,
                                           invalid_message=error.message).to_wire())
    return JSONResponse((await facilitator.verify(payment)).to_wire())


@router.post("/settle", dependencies=[Depends(require_facilitator_caller)], summary="Settle a payment on-chain",
             openapi_extra=_PAYMENT_BODY, responses={200: {"model": SettleResponse}, **_REFUSED})
async def settle(request: Request, facilitator: Facilitator = Depends(get_facilitator)) -> JSONResponse:
    body = await read_json_object(request)
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
