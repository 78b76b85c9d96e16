"""The standard facilitator API: POST /verify, POST /settle, GET /supported.

An invalid payment is an answer, not an error: HTTP 200 with ``isValid:false`` / ``success:false``
and a reason code, as the official SDK clients expect (they raise on any non-200). Only a body
that is not JSON, not an object or too large is a 400 / 413.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.access.dependencies import bearer_key
from app.access.keys import ApiKeyRepository, Scope, hash_key
from app.context import ServiceContext, get_context
from app.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized
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


async def require_facilitator_caller(request: Request, context: ServiceContext = Depends(get_context)) -> None:
    """Bearer-key check for /verify and /settle, when enabled (production).

    A key passes when its SHA-256 digest is in ``X402_FACILITATOR_API_KEY_HASHES`` (no database
    round trip: the hot path) or when it is an unrevoked API key with the facilitator (or admin) scope.
    """
    settings = context.settings
    if not settings.facilitator_require_api_key and not settings.facilitator_api_key_hashes:
        return
    key = bearer_key(request)
    if key is None:
        raise Unauthorized("this facilitator requires an API key: send 'Authorization: Bearer <key>'")
    digest = hash_key(key)
    if any(hmac.compare_digest(digest, candidate.lower()) for candidate in settings.facilitator_api_key_hashes):
        return
    row = await run_in_threadpool(ApiKeyRepository(context.engine).active_by_key, key)
    if row is None:
        raise Unauthorized("the API key is not valid or has been revoked")
    if not {Scope.FACILITATOR.value, Scope.ADMIN.value} & set(row.scopes):
        raise Forbidden(f"the key {row.name!r} lacks the facilitator scope")


async def get_facilitator(context: ServiceContext = Depends(get_context)) -> Facilitator:
    return context.facilitator_service


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
        payload, requirements = parse_facilitator_request(body)
    except ProtocolError as error:
        return JSONResponse(VerifyResponse(is_valid=False, invalid_reason=error.reason,
                                           invalid_message=error.message).to_wire())
    return JSONResponse((await facilitator.verify(payload, requirements)).to_wire())


@router.post("/settle", dependencies=[Depends(require_facilitator_caller)], summary="Settle a payment on-chain")
async def settle(request: Request, facilitator: Facilitator = Depends(get_facilitator)) -> JSONResponse:
    body = await _read_body(request)
    try:
        payload, requirements = parse_facilitator_request(body)
    except ProtocolError as error:
        network = _network_hint(body)
        return JSONResponse(SettleResponse(success=False, error_reason=error.reason, error_message=error.message,
                                           network=network).to_wire())
    return JSONResponse((await facilitator.settle(payload, requirements)).to_wire())


def _network_hint(body: dict[str, Any]) -> str:
    requirements = body.get("paymentRequirements")
    network = requirements.get("network") if isinstance(requirements, dict) else None
    return network if isinstance(network, str) and len(network) <= 64 else ""
