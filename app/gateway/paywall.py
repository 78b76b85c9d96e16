"""The 402 paywall: admit a paid request before its handler runs, settle it when the response starts.

Flow for a gated request (dependency or middleware, same core):
1. the capability comes from the registry (price, network, asset, payTo), so a price change or a
   suspension applies to the next request; only ``approved`` capabilities are payable;
2. no payment header: 402 with ``PAYMENT-REQUIRED`` (v2) and a v1 JSON body, so both generations pay;
3. a payment (``PAYMENT-SIGNATURE`` or ``X-PAYMENT``) must match what was offered, then is verified by
   the facilitator, then claimed in the database (one authorization serves one request, even replayed
   concurrently or on another replica);
4. the handler runs; when its response starts with a status below 400 the payment is settled and the
   receipt goes out in ``PAYMENT-RESPONSE`` (v2) / ``X-PAYMENT-RESPONSE`` (v1); a failed settlement
   replaces the response with a 402 carrying the failure receipt; a settlement still pending after
   a second wait is served with its pending receipt (transaction hash included), never turned into
   a 402 that would make the agent pay twice; a status of 400 or more settles nothing and releases
   the claim.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.chain.signatures import to_checksum
from app.config import NetworkConfig
from app.gateway.facilitators import FacilitatorClient, Verification
from app.gateway.models import PaymentClaim
from app.gateway.offers import Offer, OfferError, PaymentMismatch, make_offer, requirements_for
from app.gateway.payment_ids import DECLARATION, EXTENSION, KeptAnswer, PaymentIdRefused, PaymentIds, payment_id_of
from app.gateway.repository import ClaimRepository
from app.protocol import (
    FacilitatorRequest,
    ProtocolError,
    Reason,
    SettleResponse,
    decode_header,
    encode_header,
    parse_facilitator_request,
)
from app.protocol.headers import (
    EXPOSED_HEADERS,
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X_PAYMENT,
    X_PAYMENT_RESPONSE,
)
from app.registry.models import UNREGISTERED, Capability, CapabilityStatus
from app.registry.repository import RegistryRepository

SCOPE_KEY = "x402.payment"  # the admitted payment, in the ASGI scope
RESPONDER_KEY = "x402.responder"  # set by PaymentMiddleware: proof that someone will settle


@dataclass
class AdmittedPayment:
    """A verified, claimed payment; handlers see it as ``request.state.x402`` / the dependency's value."""

    capability: Capability
    payer: str
    agent_id: str
    version: int
    request_id: str
    verification: Verification = field(repr=False)
    receipt: SettleResponse | None = None
    kept: KeptAnswer | None = field(default=None, repr=False)  # kept for its payment identifier, if it has one

    @property
    def receipt_header(self) -> str:
        return PAYMENT_RESPONSE if self.version == 2 else X_PAYMENT_RESPONSE


class GatewayRefusal(Exception):
    """The request is not admitted; the response to send instead of running the handler."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}

    async def send(self, send: Send) -> None:
        await _send_json(send, self.status, self.body, self.headers)


class PaymentGate:
    def __init__(
        self,
        *,
        registry: RegistryRepository,
        claims: ClaimRepository,
        facilitator: FacilitatorClient,
        networks: dict[str, NetworkConfig],
        payment_ids: PaymentIds | None = None,
    ) -> None:
        self._registry = registry
        self._claims = claims
        self._payment_ids = payment_ids
        self._facilitator = facilitator
        self._networks = networks

    async def admit(self, capability_id: str, url: str, headers: dict[str, str]) -> AdmittedPayment:
        """The payment for this request, verified and claimed; GatewayRefusal otherwise."""
        capability = await run_in_threadpool(self._registry.capability, capability_id)
        if capability is None:
            raise GatewayRefusal(404, {"error": "capability_not_found",
                                       "message": f"no capability {capability_id!r}"})
        if capability.status != CapabilityStatus.APPROVED:
            raise GatewayRefusal(403, {"error": "capability_not_available",
                                       "message": f"capability {capability_id!r} is {capability.status}"})
        try:
            offer = make_offer(capability, url, self._networks)
        except OfferError as error:
            raise GatewayRefusal(503, {"error": "capability_misconfigured", "message": str(error)}) from None
        header = headers.get(PAYMENT_SIGNATURE.lower()) or headers.get(X_PAYMENT.lower())
        if not header:
            raise _payment_required(offer, "Payment required")
        request = _parse_payment(header, offer)
        request_id = uuid.uuid4().hex
        kept = await self._begin_answer(request, capability.id, request_id)  # before verifying anything
        try:
            return await self._admit(capability, offer, request, request_id, kept)
        except GatewayRefusal:
            if kept is not None:
                await self._payment_ids.forget(kept)  # type: ignore[union-attr]
            raise

    async def _begin_answer(self, request: FacilitatorRequest, capability_id: str, request_id: str
                            ) -> KeptAnswer | None:
        if self._payment_ids is None:
            return None
        try:
            payment_id = payment_id_of(request)
        except ValueError as error:
            raise GatewayRefusal(400, {"error": Reason.invalid_payload, "message": str(error)}) from None
        if payment_id is None:
            return None
        return await self._payment_ids.begin(payment_id, request, capability_id, request_id)

    async def _admit(self, capability: Capability, offer: Offer, request: FacilitatorRequest, request_id: str,
                     kept: KeptAnswer | None) -> AdmittedPayment:
        try:
            requirements_for(request.payload, offer)
        except PaymentMismatch as mismatch:
            raise _payment_required(offer, f"{mismatch.reason}: {mismatch.message}") from None
        verification = await self._facilitator.verify(request)
        verdict = verification.response
        if not verdict.is_valid:
            raise _payment_required(offer, f"{verdict.invalid_reason}: {verdict.invalid_message or 'invalid payment'}")
        try:
            authorization = request.authorization  # parsed once, by the facilitator's checks already
        except ProtocolError as error:
            raise _payment_required(offer, f"{error.reason}: {error.message}") from None
        payer = to_checksum(authorization.payer)  # the claim key must not depend on how the header spells it
        claimed = await run_in_threadpool(self._claims.claim, PaymentClaim(
            network=offer.v2.network, asset=offer.v2.asset, payer=payer, nonce="0x" + authorization.nonce.hex(),
            capability_id=capability.id, request_id=request_id,
        ))
        if not claimed:
            raise _payment_required(offer, f"{Reason.invalid_exact_evm_nonce_already_used}: this payment was "
                                           "already used for an earlier request; sign a new one")
        agent = await run_in_threadpool(self._registry.agent_by_wallet, payer)
        return AdmittedPayment(capability=capability, payer=payer, agent_id=agent.agent_id if agent else UNREGISTERED,
                               version=request.x402_version, request_id=request_id, verification=verification,
                               kept=kept)

    async def settle(self, payment: AdmittedPayment) -> SettleResponse:
        payment.receipt = await self._facilitator.settle(payment.verification)
        return payment.receipt

    async def release(self, payment: AdmittedPayment) -> None:
        """Nothing was served: the authorization (and its payment identifier) may be used again."""
        await run_in_threadpool(self._claims.release, payment.request_id)
        if payment.kept is not None and self._payment_ids is not None:
            await self._payment_ids.forget(payment.kept)

    async def keep(self, payment: AdmittedPayment) -> None:
        """The answer is sent whole: keep it for a resend of the same payment."""
        if payment.kept is not None and self._payment_ids is not None:
            await self._payment_ids.keep(payment.kept)


async def admit_into_scope(gate: PaymentGate, scope: Scope, capability_id: str) -> AdmittedPayment:
    """Admit the request's payment for ``capability_id`` and put it where the settling middleware and the
    handler find it (``scope[SCOPE_KEY]``, ``request.state.x402``). The one way in for the middleware's
    gated paths, the ``require_payment`` dependency and the reverse proxy. Raises GatewayRefusal."""
    request = Request(scope)
    payment = await gate.admit(capability_id, str(request.url), {k.lower(): v for k, v in request.headers.items()})
    scope[SCOPE_KEY] = payment
    scope.setdefault("state", {})["x402"] = payment
    return payment


def _payment_required(offer: Offer, error: str) -> GatewayRefusal:
    offered = offer.payment_required(error, extensions={EXTENSION: DECLARATION})
    return GatewayRefusal(402, offer.v1_body(error),
                          {PAYMENT_REQUIRED: encode_header(offered), "Cache-Control": "no-store"})


def _parse_payment(header: str, offer: Offer) -> FacilitatorRequest:
    """The payment header, decoded and parsed once, paired with what this offer requires of its version."""
    try:
        payload = decode_header(header)
        version = payload.get("x402Version")
        requirements = offer.v1.to_wire() if version == 1 and offer.v1 is not None else offer.v2.to_wire()
        return parse_facilitator_request(
            {"x402Version": version, "paymentPayload": payload, "paymentRequirements": requirements}
        )
    except ProtocolError as error:
        raise GatewayRefusal(400, {"error": error.reason, "message": f"payment header: {error.message}"}) from None


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    start, whole = _json_answer(status, body, headers)
    await send(start)
    await send(whole)


def _json_answer(status: int, body: dict[str, Any], headers: dict[str, str]) -> tuple[Message, Message]:
    all_headers = {"Content-Type": "application/json", "Access-Control-Expose-Headers": EXPOSED_HEADERS, **headers}
    return ({"type": "http.response.start", "status": status,
             "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()]},
            {"type": "http.response.body", "body": json.dumps(body).encode()})


GateResolver = Callable[[Scope], PaymentGate]
Route = tuple[str, str]  # (METHOD, path prefix)


class PaymentMiddleware:
    """ASGI middleware: settles admitted payments when the response starts, and optionally gates
    whole paths itself (``routes``: ``{("GET", "/weather"): "weather-capability"}``, prefix match)."""

    def __init__(self, app: ASGIApp, *, gate: GateResolver, routes: dict[Route, str] | None = None) -> None:
        self._app = app
        self._gate = gate
        self._routes = routes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        scope[RESPONDER_KEY] = True
        capability_id = self._route_capability(scope)
        if capability_id is not None:
            try:
                await admit_into_scope(self._gate(scope), scope, capability_id)
            except (GatewayRefusal, PaymentIdRefused) as refusal:
                await refusal.send(send)
                return
        await self._app(scope, receive, _SettlingSend(scope, send, self._gate))

    def _route_capability(self, scope: Scope) -> str | None:
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        for (route_method, prefix), capability_id in self._routes.items():
            if route_method in (method, "*") and (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
                return capability_id
        return None


class _SettlingSend:
    """Wraps ``send``: at response start, settle (status < 400) or release (>= 400) the payment."""

    def __init__(self, scope: Scope, send: Send, gate: GateResolver) -> None:
        self._scope = scope
        self._send = send
        self._gate = gate
        self._replaced = False

    async def __call__(self, message: Message) -> None:
        if self._replaced:
            return  # the handler's body after a failed settlement is dropped: the client got a 402
        payment: AdmittedPayment | None = self._scope.get(SCOPE_KEY)
        if payment is None or message["type"] != "http.response.start":
            await self._send(message)
            if payment is not None and message["type"] == "http.response.body" and payment.kept is not None:
                await self._keep_body(payment, message)
            return
        gate = self._gate(self._scope)
        headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
        headers.append((b"access-control-expose-headers", EXPOSED_HEADERS.encode()))
        if message["status"] >= 400:
            await gate.release(payment)
            payment.kept = None  # forgotten with the claim: nothing to keep
            await self._send({**message, "headers": headers})
            return
        receipt = await gate.settle(payment)
        if _pending(receipt):
            receipt = await gate.settle(payment)  # one more wait on the same transaction, as reference servers do
        receipt_header = (payment.receipt_header.lower().encode(), encode_header(receipt).encode())
        if not receipt.success and not _pending(receipt):
            self._replaced = True
            answer = _json_answer(402, {"x402Version": payment.version, "error": receipt.error_reason,
                                        "message": receipt.error_message or "settlement failed"},
                                  {payment.receipt_header: encode_header(receipt), "Cache-Control": "no-store"})
            await self._send(answer[0])
            await self._send(answer[1])
            if payment.kept is not None:
                payment.kept.start(402, answer[0]["headers"])
                await self._keep_body(payment, answer[1])
            return
        headers += [receipt_header, (b"cache-control", b"private")]
        if payment.kept is not None:
            payment.kept.start(message["status"], headers)
        await self._send({**message, "headers": headers})

    async def _keep_body(self, payment: AdmittedPayment, message: Message) -> None:
        assert payment.kept is not None
        payment.kept.add_body(message.get("body", b""))
        if not message.get("more_body", False):
            await self._gate(self._scope).keep(payment)


def _pending(receipt: SettleResponse) -> bool:
    """Broadcast and recorded, receipt not in yet: the money is on its way (the facilitator finishes it
    exactly once), so the response is served with the pending receipt and its transaction hash rather
    than turned into a 402 that would invite the agent to pay again."""
    return not receipt.success and receipt.error_reason == Reason.settlement_pending and bool(receipt.transaction)


def require_payment(capability_id: str) -> Callable[[Request], Awaitable[AdmittedPayment]]:
    """FastAPI dependency gating one route by capability id. Needs ``PaymentMiddleware`` on the app,
    which settles at response start; without it the dependency refuses to admit (fail closed)."""

    async def dependency(request: Request) -> AdmittedPayment:
        if not request.scope.get(RESPONDER_KEY):
            raise RuntimeError("require_payment needs PaymentMiddleware installed on the app to settle payments")
        return await admit_into_scope(request.app.state.x402_gate(request.scope), request.scope, capability_id)

    return dependency


def payment_of(request: Request) -> AdmittedPayment | None:
    payment = request.scope.get(SCOPE_KEY)
    return payment if isinstance(payment, AdmittedPayment) else None


def refusal_response_handler() -> Callable[[Request, Exception], Awaitable[Any]]:
    """Exception handler rendering GatewayRefusal raised from the dependency."""
    from starlette.responses import JSONResponse

    async def handler(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, GatewayRefusal)
        return JSONResponse(error.body, status_code=error.status,
                            headers={"Access-Control-Expose-Headers": EXPOSED_HEADERS, **error.headers})

    return handler



async def kept_answer_handler(_request: Request, error: Exception) -> Any:
    """Exception handler rendering the answer due to a payment identifier (from the dependency or the proxy)."""
    from starlette.responses import Response

    assert isinstance(error, PaymentIdRefused)
    response = Response(error.body, status_code=error.status)
    response.raw_headers = [*error.headers, (b"content-length", str(len(error.body)).encode())]
    return response


def install_paywall(app: Any, gate: PaymentGate | GateResolver, routes: dict[Route, str] | None = None) -> None:
    """Make a FastAPI/Starlette app charge for capabilities: ``require_payment`` on routes, and/or
    ``routes`` gated wholesale. ``gate`` is a PaymentGate or a function of the ASGI scope giving one."""
    resolver: GateResolver = gate if callable(gate) and not isinstance(gate, PaymentGate) else (lambda _scope: gate)
    app.add_middleware(PaymentMiddleware, gate=resolver, routes=routes)
    app.add_exception_handler(GatewayRefusal, refusal_response_handler())
    app.add_exception_handler(PaymentIdRefused, kept_answer_handler)
    app.state.x402_gate = resolver  # how require_payment finds the gate
