"""JSON request bodies read by hand: bounded in size, one JSON object, or a clear 413 / 400.

For the routes that parse their own bodies (the facilitator's hot path, and bodies validated by rules
shared with the command line). Their schema is declared with ``app.openapi.body_of``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.errors import BadRequest, PayloadTooLarge
from app.protocol import MAX_BODY_BYTES, ProtocolError, Reason, decode_json_body


async def read_json_object(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object; 413 beyond ``limit`` bytes (checked as it streams in), 400 otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is {declared} bytes, more than the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"body is more than the limit of {limit} bytes")
    try:
        return decode_json_body(bytes(body))
    except ProtocolError as error:
        if error.reason == Reason.request_too_large:
            raise PayloadTooLarge(error.message) from None
        raise BadRequest(error.message, reason=error.reason) from None


async def json_object_body(request: Request) -> dict[str, Any]:
    """FastAPI dependency: :func:`read_json_object` with the default limit."""
    return await read_json_object(request)
