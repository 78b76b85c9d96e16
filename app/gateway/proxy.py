"""Reverse proxy: ``/cap/{capability_id}/...`` charges for a capability, then forwards to its upstream.

A provider in any language adopts x402 with no code change: it registers its capability with an
``upstream_url`` and agents call ``/cap/<id>/<path>`` here instead.

- The payment is admitted by the same :class:`PaymentGate` as the in-process paywall (price, payee and
  status from the registry), and the admitted payment is put in the ASGI scope, so ``PaymentMiddleware``
  settles it when the response starts: below 400 it is settled, otherwise the claim is released.
- Bodies are streamed both ways (``request.stream()`` upstream, the upstream's raw bytes back), so a
  large response never sits in memory.
- Hop-by-hop headers (RFC 9110 section 7.6.1, plus those the ``Connection`` header names) are dropped both
  ways, as are the payment headers: the upstream never sees the agent's signed authorization, and cannot
  forge our receipt. The upstream learns who paid from ``X-Payer-Address`` and ``X-Agent-Id``, which are
  always ours (a caller's own values are removed).
- An upstream status is passed on as is (a 5xx is not settled, being >= 400). An upstream that cannot
  be reached answers 502 ``upstream_unavailable``; one too slow to answer 504 ``upstream_timeout``;
  neither is settled. A failure after the response started (the body stopped mid-way) cannot change the
  status any more: the connection is aborted so the caller sees a truncated body, not a clean end.

The upstream HTTP client is one ``aiohttp.ClientSession`` per app, created on first use and stored on
``app.state`` (the ``Service`` in ``app.wiring`` is built elsewhere and does not know about it); this router's
lifespan, merged into the app's by ``include_router``, closes it on shutdown. aiohttp rather than
httpx because the JSON-RPC client already uses it: one HTTP stack in the serving process instead of
two (httpx also imports rich for its command line, about 7 MB of resident memory between them). The
timeouts are the module constants below, read at each request (tests lower them).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from app.deps import get_payment_gate, get_registry
from app.errors import BadRequest, Forbidden, NotFound, ServiceError, ServiceUnavailable, error_responses
from app.gateway.paywall import RESPONDER_KEY, SCOPE_KEY, AdmittedPayment, PaymentGate, admit_into_scope
from app.gateway.schemas import PaymentRequiredBody
from app.protocol.headers import PAYMENT_HEADERS
from app.registry.models import Capability
from app.registry.service import RegistryService

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0  # to open a connection to the upstream
POOL_TIMEOUT_SECONDS = 5.0  # waiting for a free connection when all MAX_CONNECTIONS are busy
READ_TIMEOUT_SECONDS = 30.0  # between two reads of the upstream's response, not for the whole body
MAX_CONNECTIONS = 200

PAYER_HEADER = "X-Payer-Address"
AGENT_HEADER = "X-Agent-Id"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "trailers", "transfer-encoding",
    "upgrade", "host", "expect",
})
_PAYMENT_HEADERS = frozenset(name.lower() for name in PAYMENT_HEADERS)
_IDENTITY_HEADERS = frozenset({PAYER_HEADER.lower(), AGENT_HEADER.lower()})
# Set by our own server on the way out (the body is re-framed, uvicorn adds Date and Server): the
# upstream's copies would be duplicates.
_OWN_RESPONSE_HEADERS = frozenset({"content-length", "date", "server"})
# Headers aiohttp would otherwise invent: the caller's own are forwarded, none are added.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_CLIENT_STATE = "x402_proxy_client"
_PATH_SAFE = "/:@!$&'()*+,;=-._~"  # RFC 3986 pchar and "/": kept as they are when re-quoting the path


class UpstreamTimeout(ServiceError):
    status_code = 504
    reason = "upstream_timeout"


class UpstreamUnavailable(ServiceError):
    status_code = 502
    reason = "upstream_unavailable"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        client: aiohttp.ClientSession | None = getattr(app.state, _CLIENT_STATE, None)
        if client is not None:
            setattr(app.state, _CLIENT_STATE, None)
            await client.close()


router = APIRouter(tags=["gateway"], lifespan=_lifespan)


def upstream_client(app: Any) -> aiohttp.ClientSession:
    """The app's shared upstream client, created on first use (so on the serving event loop).

    It never decompresses (the body and its Content-Encoding go on together), keeps no cookies (one
    session serves every caller) and reads no proxy from the environment (the upstream is named in the
    registry).
    """
    client: aiohttp.ClientSession | None = getattr(app.state, _CLIENT_STATE, None)
    if client is None or client.closed:
        client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_NO_AUTO_HEADERS,
            trust_env=False,
        )
        setattr(app.state, _CLIENT_STATE, client)
    return client


def _timeout() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=POOL_TIMEOUT_SECONDS + CONNECT_TIMEOUT_SECONDS,
                                 sock_connect=CONNECT_TIMEOUT_SECONDS, sock_read=READ_TIMEOUT_SECONDS)


async def proxied_capability(
    request: Request,
    capability_id: str,
    registry: RegistryService = Depends(get_registry),
    gate: PaymentGate = Depends(get_payment_gate),
) -> Capability:
    """The capability behind ``/cap/{capability_id}``, paid for by this request.

    A path with dot segments (which could climb out of the upstream's base path) is a 400, and a
    capability that is unknown or has no upstream a 404, before any payment is asked for. The
    payment is then admitted by the gate (402/403/400 as ``GatewayRefusal``) and put in the scope, where
    ``PaymentMiddleware`` settles or releases it when the response starts.
    """
    if not request.scope.get(RESPONDER_KEY):
        raise RuntimeError("the reverse proxy needs PaymentMiddleware installed on the app to settle payments")
    path = request.path_params.get("path")
    if path is not None and any(segment in (".", "..") for segment in path.split("/")):
        raise BadRequest("the path may not contain '.' or '..' segments", reason="invalid_path")
    capability = await run_in_threadpool(registry.capability, capability_id)
    if capability is None:
        raise NotFound(f"no capability {capability_id!r}", reason="capability_not_found")
    if not capability.upstream_url:
        raise NotFound(f"capability {capability_id!r} has no upstream URL, so it is not served through /cap/; "
                       "call it at its own route" + (f" ({capability.route})" if capability.route else ""),
                       reason="capability_not_proxied")
    payment = await admit_into_scope(gate, request.scope, capability_id)
    return payment.capability


@router.api_route("/cap/{capability_id}", methods=METHODS, include_in_schema=False)
async def proxy_root(request: Request, capability: Capability = Depends(proxied_capability)) -> StreamingResponse:
    return await _forward(request, capability, None)


async def proxy_path(path: str, request: Request, capability: Capability = Depends(proxied_capability)
                     ) -> StreamingResponse:
    return await _forward(request, capability, path)


PROXY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the upstream's answer, streamed as it is (any status, headers and body it gives)",
          "content": {"*/*": {"schema": {}}}},
    402: {"model": PaymentRequiredBody, "description": "reason codes: payment required (no or a refused payment), "
          "with the offer in the PAYMENT-REQUIRED header"},
    **error_responses((BadRequest, "invalid_path"), (BadRequest, "invalid_payload"), (NotFound, "capability_not_found"),
                      (NotFound, "capability_not_proxied"), (Forbidden, "capability_not_available"),
                      UpstreamUnavailable, (ServiceUnavailable, "capability_misconfigured"), UpstreamTimeout),
}

for _method in METHODS:  # one route per method, so each has its own OpenAPI operation id
    router.add_api_route("/cap/{capability_id}/{path:path}", proxy_path, methods=[_method],
                         operation_id=f"proxy_{_method.lower()}", responses=PROXY_RESPONSES,
                         summary="Pay for a capability and reach its upstream (reverse proxy)")


def upstream_target(upstream_url: str, path: str | None, query: str) -> str:
    """``upstream_url`` joined with the path below ``/cap/{id}`` and the query string."""
    target = upstream_url if path is None else upstream_url.rstrip("/") + "/" + quote(path, safe=_PATH_SAFE)
    return f"{target}?{query}" if query else target


def _connection_listed(headers: list[tuple[bytes, bytes]]) -> set[str]:
    """Header names the ``Connection`` header declares hop-by-hop."""
    listed: set[str] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            listed.update(token.strip().lower() for token in value.decode("latin-1").split(",") if token.strip())
    return listed


def _end_to_end(headers: list[tuple[bytes, bytes]], *, also_drop: frozenset[str]) -> list[tuple[bytes, bytes]]:
    listed = _connection_listed(headers)
    kept = []
    for name, value in headers:
        lowered = name.decode("latin-1").lower()
        if lowered in _HOP_BY_HOP or lowered.startswith("proxy-") or lowered in listed or lowered in also_drop:
            continue
        kept.append((lowered.encode("latin-1"), value))
    return kept


def _request_headers(request: Request, payment: AdmittedPayment) -> list[tuple[str, str]]:
    dropped = _PAYMENT_HEADERS | _IDENTITY_HEADERS | {"x-forwarded-host", "x-forwarded-proto"}
    headers = [(name.decode("latin-1"), value.decode("latin-1"))
               for name, value in _end_to_end(request.headers.raw, also_drop=dropped)]
    headers.append((PAYER_HEADER.lower(), payment.payer))
    headers.append((AGENT_HEADER.lower(), payment.agent_id))
    client = request.client.host if request.client else None
    if client:
        forwarded_for = next((value for name, value in headers if name == "x-forwarded-for"), None)
        headers = [(name, value) for name, value in headers if name != "x-forwarded-for"]
        headers.append(("x-forwarded-for", f"{forwarded_for}, {client}" if forwarded_for else client))
    headers.append(("x-forwarded-host", request.headers.get("host", "")))
    headers.append(("x-forwarded-proto", request.url.scheme))
    return headers


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length.strip() != "0")


async def _forward(request: Request, capability: Capability, path: str | None) -> StreamingResponse:
    payment: AdmittedPayment = request.scope[SCOPE_KEY]
    assert capability.upstream_url  # checked by the dependency
    target = upstream_target(capability.upstream_url, path, request.url.query)
    try:
        upstream = await upstream_client(request.app).request(
            request.method, target, headers=_request_headers(request, payment),
            data=request.stream() if _has_body(request) else None, timeout=_timeout(), allow_redirects=False,
        )
    except (aiohttp.InvalidURL, ValueError) as error:
        raise UpstreamUnavailable(f"capability {capability.id!r} has an invalid upstream URL: {error}") from None
    except TimeoutError as error:  # aiohttp's timeouts (ServerTimeoutError, ConnectionTimeoutError) are these
        log.warning("upstream of %s timed out: %s", capability.id, type(error).__name__)
        raise UpstreamTimeout(f"the upstream of capability {capability.id!r} did not answer in time "
                              f"({type(error).__name__}); you were not charged") from None
    except aiohttp.ClientError as error:
        log.warning("upstream of %s unavailable: %s: %s", capability.id, type(error).__name__, error)
        raise UpstreamUnavailable(f"the upstream of capability {capability.id!r} cannot be reached "
                                  f"({type(error).__name__}); you were not charged") from None

    response = StreamingResponse(_relay(upstream, capability.id), status_code=upstream.status,
                                 background=BackgroundTask(upstream.release))
    response.raw_headers = _end_to_end(list(upstream.raw_headers),
                                       also_drop=_PAYMENT_HEADERS | _OWN_RESPONSE_HEADERS)
    return response


async def _relay(upstream: aiohttp.ClientResponse, capability_id: str) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives, undecoded (its Content-Encoding is passed on with it).

    aiohttp stops reading the socket while its buffer holds more than a few chunks, so a slow caller
    slows the upstream down instead of filling our memory.
    """
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("upstream of %s failed mid-body: %s", capability_id, type(error).__name__)
        raise  # the status is already sent: abort the connection rather than end the body cleanly
    finally:
        upstream.release()
