"""The x402 ``payment-identifier`` extension at the resource server: a resent payment gets the first answer.

An agent whose response was lost (a timeout, a dropped connection) resends the same payment. Without an
identifier that resend is a replay the gateway refuses (the authorization is claimed), and the agent has
paid for nothing it received. With one, the gateway:

- advertises the extension in every 402 (``extensions["payment-identifier"]``, the id optional);
- looks the identifier up *before* verifying anything;
- binds it to the exact payment: the same identifier on another payment is a 409 ``payment_id_conflict``;
- answers a resend from the stored answer (status, headers with the receipt, and the body up to
  ``MAX_KEPT_BODY_BYTES``), for ``KEPT_FOR_SECONDS``; a body too large to keep is answered with a 409
  ``response_not_kept`` that still carries the receipt, so the agent knows what it paid;
- never runs a resend while the original is in flight (409 ``payment_in_progress``, retry after a second);
  an original that died in flight is taken over after ``IN_FLIGHT_FOR_SECONDS``.

A request that is not served (status 400 or more, nothing settled) forgets its identifier with its claim.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import Send

from app.db.clock import utc_now
from app.gateway.models import PaymentResponse
from app.gateway.repository import PaymentResponseRepository
from app.protocol import FacilitatorRequest, PaymentPayload
from app.protocol.headers import EXPOSED_HEADERS, PAYMENT_RESPONSE, X_PAYMENT_RESPONSE

EXTENSION = "payment-identifier"
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
MAX_KEPT_BODY_BYTES = 64 * 1024
KEPT_FOR_SECONDS = 3600.0
IN_FLIGHT_FOR_SECONDS = 120.0
PURGE_EVERY_SECONDS = 60.0
RECEIPT_HEADERS = frozenset({PAYMENT_RESPONSE.lower(), X_PAYMENT_RESPONSE.lower()})

# What a 402 advertises: the extension, the id optional, with the JSON schema of the client's ``info``.
DECLARATION: dict[str, Any] = {
    "info": {"required": False},
    "schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"required": {"type": "boolean"},
                       "id": {"type": "string", "minLength": 16, "maxLength": 128, "pattern": ID_PATTERN.pattern}},
        "required": ["required"],
    },
}


class PaymentIdRefused(Exception):
    """The request is answered without running it (a conflict, a resend in flight, a kept answer)."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def payment_id_of(request: FacilitatorRequest) -> str | None:
    """The identifier a v2 payment carries, or None. A malformed one is a ValueError (answered 400)."""
    payload = request.payload
    if not isinstance(payload, PaymentPayload) or not payload.extensions:
        return None
    extension = payload.extensions.get(EXTENSION)
    info = extension.get("info") if isinstance(extension, dict) else None
    identifier = info.get("id") if isinstance(info, dict) else None
    if identifier is None:
        return None
    if not isinstance(identifier, str) or not ID_PATTERN.fullmatch(identifier):
        raise ValueError("the payment-identifier id must be 16 to 128 letters, digits, '-' or '_'")
    return identifier


def fingerprint_of(request: FacilitatorRequest) -> str:
    """SHA-256 of the payment payload in one canonical JSON form: the identifier is bound to it."""
    canonical = json.dumps(request.payload.to_wire(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class KeptAnswer:
    """The answer of one request under a payment identifier, collected as it is sent."""

    payment_id: str
    request_id: str
    status: int = 0
    headers: list[list[str]] = field(default_factory=list)
    body: bytearray | None = field(default_factory=bytearray)

    def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers = [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers]

    def add_body(self, chunk: bytes) -> None:
        if self.body is not None:
            self.body += chunk
            if len(self.body) > MAX_KEPT_BODY_BYTES:
                self.body = None  # too large to keep: a resend learns the receipt, not the resource


class PaymentIds:
    def __init__(self, repository: PaymentResponseRepository) -> None:
        self._repository = repository
        self._purged_at = 0.0

    async def _purge_now_and_then(self) -> None:
        """Answers are kept for ``KEPT_FOR_SECONDS``: drop older ones, at most once a minute."""
        if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()
        await run_in_threadpool(self._repository.purge, utc_now() - timedelta(seconds=KEPT_FOR_SECONDS))

    async def begin(self, payment_id: str, request: FacilitatorRequest, capability_id: str, request_id: str
                    ) -> KeptAnswer:
        """Make this request the one that answers ``payment_id``, or raise PaymentIdRefused with the answer
        due instead (the kept one, a conflict, or 'in progress')."""
        await self._purge_now_and_then()
        fingerprint = fingerprint_of(request)
        record = PaymentResponse(payment_id=payment_id, fingerprint=fingerprint, capability_id=capability_id,
                                 request_id=request_id)
        if await run_in_threadpool(self._repository.begin, record):
            return KeptAnswer(payment_id, request_id)
        kept = await run_in_threadpool(self._repository.find, payment_id)
        if kept is None:  # forgotten meanwhile (its request was not served): this one goes ahead
            return await self.begin(payment_id, request, capability_id, request_id)
        if kept.fingerprint != fingerprint:
            raise _json_refusal(409, "payment_id_conflict", "this payment identifier was used with another payment")
        age = (utc_now() - kept.updated_at).total_seconds()
        stale = KEPT_FOR_SECONDS if kept.complete else IN_FLIGHT_FOR_SECONDS
        if age >= stale:
            stale_before = utc_now() - timedelta(seconds=stale)
            if await run_in_threadpool(self._repository.take_over, payment_id, fingerprint, request_id, stale_before):
                return KeptAnswer(payment_id, request_id)
        if not kept.complete:
            raise _json_refusal(409, "payment_in_progress", "the first request with this payment is still being "
                                "served; ask again in a moment", [(b"retry-after", b"1")])
        raise _replay(kept)

    async def keep(self, answer: KeptAnswer) -> None:
        body = bytes(answer.body) if answer.body is not None else None
        await run_in_threadpool(self._repository.answer, answer.payment_id, answer.request_id, answer.status,
                                answer.headers, body)

    async def forget(self, answer: KeptAnswer) -> None:
        await run_in_threadpool(self._repository.forget, answer.payment_id, answer.request_id)


def _replay(kept: PaymentResponse) -> PaymentIdRefused:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in kept.headers or []]
    if kept.body is None:
        receipts = [(name, value) for name, value in headers if name.decode("latin-1").lower() in RECEIPT_HEADERS]
        return _json_refusal(409, "response_not_kept", "this payment was served already; its response was too "
                             "large to keep, the receipt header says what was paid", receipts)
    return PaymentIdRefused(kept.status or 200, [*headers, (b"x-payment-replayed", b"true")], kept.body)


def _json_refusal(status: int, error: str, message: str, extra: list[tuple[bytes, bytes]] | None = None
                  ) -> PaymentIdRefused:
    headers = [(b"content-type", b"application/json"), (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
               *(extra or [])]
    return PaymentIdRefused(status, headers, json.dumps({"error": error, "message": message}).encode())
