"""One error hierarchy: each error knows its HTTP status and its machine-readable reason code.

Routers never invent a status; they raise one of these and the handler installed by
``install_error_handlers`` renders ``{"error": <reason>, "message": <text>}``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class ServiceError(Exception):
    status_code = 500
    reason = "internal_error"

    def __init__(self, message: str, *, reason: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.headers = headers or {}


class BadRequest(ServiceError):
    status_code = 400
    reason = "malformed_request"


class Unauthorized(ServiceError):
    status_code = 401
    reason = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = 403
    reason = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    reason = "not_found"


class Conflict(ServiceError):
    status_code = 409
    reason = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    reason = "request_too_large"


class ServiceUnavailable(ServiceError):
    """A dependency (the chain's RPC endpoint, the database) cannot be reached right now: retry later."""

    status_code = 503
    reason = "service_unavailable"


class ErrorBody(BaseModel):
    """Every error answer: a machine-readable reason code and a sentence for a person."""

    error: str = Field(description="the reason code, e.g. malformed_request, unauthorized, capability_not_found")
    message: str = Field(description="what was wrong, naming the field or the limit")


ErrorSpec = type[ServiceError] | tuple[type[ServiceError], str]


def error_responses(*errors: ErrorSpec) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the errors a route may answer, each status listing its reason codes.

    An entry is an error class (its own status and reason) or ``(class, reason)`` for a reason given
    where the error is raised.
    """
    reasons: dict[int, list[str]] = defaultdict(list)
    for spec in errors:
        error, reason = spec if isinstance(spec, tuple) else (spec, spec.reason)
        if reason not in reasons[error.status_code]:
            reasons[error.status_code].append(reason)
    return {status: {"model": ErrorBody, "description": "reason codes: " + ", ".join(codes)}
            for status, codes in sorted(reasons.items())}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        return JSONResponse(
            {"error": error.reason, "message": error.message}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(part) for part in e.get("loc", ())) for e in error.errors()[:5])
        return JSONResponse({"error": "malformed_request", "message": f"invalid fields: {fields}"}, status_code=400)
