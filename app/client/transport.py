"""httpx transports that pay x402 ``402 Payment Required`` answers automatically, under a spend policy.

Flow for one request: send it; on 402 read the requirements (the v2 ``PAYMENT-REQUIRED`` header, else
a JSON body with ``x402Version: 1``); choose with the :class:`SpendPolicy` (refusals raise before any
signing); sign an EIP-3009 authorization; retry ONCE with ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT``
(v1); decode the receipt (``PAYMENT-RESPONSE`` / ``X-PAYMENT-RESPONSE``) into
``response.extensions["x402_receipt"]`` (see :func:`receipt_of`, :func:`payment_of`).

Never twice for one request:
- a request that already carries ``PAYMENT-SIGNATURE`` or ``X-PAYMENT`` is sent as is, never paid;
- a 402 answering the paid retry is returned to the caller, not paid again.
(A redirect followed by ``httpx.Client(follow_redirects=True)`` is a new request to another resource,
and a 402 there is paid on its own; the conveniences below leave redirects off, httpx's default.)

Budget accounting: the authorization is written to the :class:`SpendLedger` (amount, asset, network,
payee, nonce, ``validBefore``) in the same booking as the policy check and BEFORE it is signed, so
concurrent requests (threads, or processes sharing a :class:`SqliteSpendLedger`) cannot overshoot a
limit together. Once signed it counts whatever the server answers: the entry is marked *settled* (a
response below 400 with a successful receipt), *refused* (a 402 without settlement) or *unconfirmed*
(anything else, or the connection failed), and every status counts. A 402 does not prove the server
will not cash the authorization it now holds; only an authorization that was never signed (the signer
failed) is released. ``validBefore`` is capped by the policy's ``max_validity_seconds``.

Request bodies must be replayable: a body already in memory is reused; a streamed body is read into
memory first, up to ``max_body_bytes`` (1 MiB by default), and a larger one is refused with
:class:`RequestBodyTooLarge` before anything is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from app.client.ledger import SpendEntry, SpendLedger
from app.client.policy import (
    Choice,
    ClientPaymentError,
    SpendPolicy,
    reserve_payment,
)
from app.client.signer import PaymentSigner
from app.protocol import (
    PaymentRequired,
    PaymentRequiredV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ProtocolError,
    Reason,
    SettleResponse,
    decode_header,
    encode_header,
)
from app.protocol.codec import loads_object
from app.protocol.headers import PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, X_PAYMENT, X_PAYMENT_RESPONSE

RECEIPT_EXTENSION = "x402_receipt"
PAYMENT_EXTENSION = "x402_payment"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_MAX_402_BODY_BYTES = 1024 * 1024


class RequestBodyTooLarge(ClientPaymentError):
    """A streamed request body is too large to hold in memory for the paid retry."""


class InvalidPaymentRequired(ClientPaymentError):
    """The server's 402 claims to be x402 but its requirements cannot be read."""


@dataclass(frozen=True)
class PaymentMade:
    """What the transport paid for one request (``response.extensions["x402_payment"]``)."""

    version: Literal[1, 2]
    requirement: PaymentRequirements | PaymentRequirementsV1
    amount: int
    network: str  # CAIP-2
    payer: str
    pay_to: str
    nonce: str
    capability: str | None
    ledger_entry: str
    valid_before: int
    outcome: Literal["settled", "refused", "unconfirmed"]


@dataclass(frozen=True)
class _Offer:
    version: Literal[1, 2]
    accepts: list[PaymentRequirements] | list[PaymentRequirementsV1]
    resource: dict[str, Any] | None
    resource_url: str | None


@dataclass(frozen=True)
class _Attempt:
    offer: _Offer
    choice: Choice
    entry: SpendEntry
    payload: dict[str, Any]

    @property
    def header(self) -> str:
        return PAYMENT_SIGNATURE if self.offer.version == 2 else X_PAYMENT


def receipt_of(response: httpx.Response) -> SettleResponse | None:
    """The decoded settlement receipt of a paid response, or None (not paid, or no/unreadable receipt)."""
    return response.extensions.get(RECEIPT_EXTENSION)


def payment_of(response: httpx.Response) -> PaymentMade | None:
    """What the transport paid for this response, or None when it paid nothing."""
    return response.extensions.get(PAYMENT_EXTENSION)


def _already_paying(request: httpx.Request) -> bool:
    return PAYMENT_SIGNATURE in request.headers or X_PAYMENT in request.headers


def _declared_length(request: httpx.Request) -> int | None:
    try:
        return int(request.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _too_large(limit: int) -> RequestBodyTooLarge:
    return RequestBodyTooLarge(
        f"the streamed request body is larger than {limit} bytes; a paying client must be able to resend it "
        "after a 402, so pass the body as bytes or raise max_body_bytes"
    )


def _read_offer(response: httpx.Response, request: httpx.Request) -> _Offer | None:
    """The requirements of a 402 (already read): v2 header first, else a v1 JSON body; None if not x402."""
    header = response.headers.get(PAYMENT_REQUIRED)
    if header is not None:
        try:
            required = PaymentRequired.model_validate(decode_header(header))
        except (ProtocolError, ValueError) as error:
            raise InvalidPaymentRequired(f"unreadable {PAYMENT_REQUIRED} header: {str(error)[:300]}") from None
        return _Offer(version=2, accepts=required.accepts, resource=required.resource.to_wire(),
                      resource_url=required.resource.url or str(request.url))
    try:
        body = loads_object(response.content, reason=Reason.invalid_payload, what="402 body")
    except ProtocolError:
        return None
    if body.get("x402Version") != 1:
        return None
    try:
        required_v1 = PaymentRequiredV1.model_validate(body)
    except ValueError as error:
        raise InvalidPaymentRequired(f"unreadable x402 v1 402 body: {str(error)[:300]}") from None
    return _Offer(version=1, accepts=required_v1.accepts, resource=None, resource_url=None)


def _read_receipt(response: httpx.Response) -> SettleResponse | None:
    raw = response.headers.get(PAYMENT_RESPONSE) or response.headers.get(X_PAYMENT_RESPONSE)
    if raw is None:
        return None
    try:
        return SettleResponse.model_validate(decode_header(raw))
    except (ProtocolError, ValueError):
        return None


class _Payer:
    """What the sync and async transports share: choose, sign, build the retry, account for it."""

    def __init__(self, signer: PaymentSigner, policy: SpendPolicy, ledger: SpendLedger | None,
                 clock: Callable[[], float], max_body_bytes: int) -> None:
        self.signer = signer
        self.policy = policy
        self.ledger = ledger if ledger is not None else SpendLedger()
        self.clock = clock
        self.max_body_bytes = max_body_bytes

    def check_declared_length(self, request: httpx.Request) -> None:
        length = _declared_length(request)
        if length is not None and length > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)

    def attempt(self, offer: _Offer) -> _Attempt:
        """Choose and record under the policy (raises before signing), then sign exactly what was recorded."""
        now = self.clock()
        choice, entry = reserve_payment(offer.accepts, self.policy, self.ledger, now,
                                        resource_url=offer.resource_url, payer=self.signer.address)
        try:
            payload = self.signer.sign_exact(choice.requirement, version=offer.version, resource=offer.resource,
                                             now=now, valid_before=entry.valid_before,
                                             nonce=bytes.fromhex(entry.nonce[2:]))
        except BaseException:
            self.ledger.release(entry.id)  # nothing was signed (or it never left this process)
            raise
        return _Attempt(offer=offer, choice=choice, entry=entry, payload=payload)

    def unknown_outcome(self, attempt: _Attempt) -> None:
        """The paid retry failed in transit: the server may hold (and settle) the authorization."""
        self.ledger.mark(attempt.entry.id, "unconfirmed")

    def paid_request(self, request: httpx.Request, body: bytes, attempt: _Attempt) -> httpx.Request:
        headers = httpx.Headers(request.headers)
        headers[attempt.header] = encode_header(attempt.payload)
        return httpx.Request(request.method, request.url, headers=headers, stream=httpx.ByteStream(body),
                             extensions=dict(request.extensions))

    def account(self, attempt: _Attempt, response: httpx.Response) -> None:
        """Note what the server answered; the entry keeps counting whatever it was (see the module docstring)."""
        receipt = _read_receipt(response)
        outcome: Literal["settled", "refused", "unconfirmed"]
        if response.status_code < 400 and receipt is not None and receipt.success:
            outcome = "settled"
        elif response.status_code == 402 and (receipt is None or (not receipt.success and not receipt.transaction)):
            outcome = "refused"
        else:
            outcome = "unconfirmed"
        self.ledger.mark(attempt.entry.id, outcome)
        authorization = attempt.payload["payload"]["authorization"]
        choice = attempt.choice
        response.extensions[RECEIPT_EXTENSION] = receipt
        response.extensions[PAYMENT_EXTENSION] = PaymentMade(
            version=attempt.offer.version, requirement=choice.requirement, amount=choice.amount,
            network=choice.network, payer=authorization["from"], pay_to=authorization["to"],
            nonce=authorization["nonce"], capability=choice.capability_id or choice.resource_url,
            ledger_entry=attempt.entry.id, valid_before=attempt.entry.valid_before, outcome=outcome,
        )


class _BodyBuffer:
    """The request body read once into memory (bounded), so the paid retry can send it again."""

    def __init__(self, payer: _Payer, request: httpx.Request) -> None:
        self._limit = payer.max_body_bytes
        self._chunks: list[bytes] = []
        self._size = 0
        try:
            self.body: bytes | None = request.content
        except httpx.RequestNotRead:
            self.body = None
            payer.check_declared_length(request)

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise _too_large(self._limit)
        self._chunks.append(chunk)

    def finish(self, request: httpx.Request) -> bytes:
        if self.body is None:
            self.body = b"".join(self._chunks)
            request.stream = httpx.ByteStream(self.body)
        return self.body


class _LedgerAccess:
    _payer: _Payer

    @property
    def ledger(self) -> SpendLedger:
        """The spend ledger this transport books against (share it between one agent's transports)."""
        return self._payer.ledger


class PaymentTransport(_LedgerAccess, httpx.BaseTransport):
    """A sync httpx transport that pays 402s once per request, within ``policy``.

    ``ledger`` (shared between transports of one agent to share its budget) defaults to a new in-memory
    one; a :class:`SqliteSpendLedger` shares it with the agent's other processes and keeps it across a
    restart. ``clock`` returns Unix seconds (injectable for tests).
    """

    def __init__(
        self,
        signer: PaymentSigner,
        policy: SpendPolicy,
        *,
        inner: httpx.BaseTransport | None = None,
        ledger: SpendLedger | None = None,
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._payer = _Payer(signer, policy, ledger, clock, max_body_bytes)

    def _buffer(self, request: httpx.Request) -> bytes:
        buffer = _BodyBuffer(self._payer, request)
        if buffer.body is None:
            for chunk in request.stream:  # type: ignore[union-attr]
                buffer.add(chunk)
        return buffer.finish(request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if _already_paying(request):
            return self._inner.handle_request(request)
        body = self._buffer(request)
        response = self._inner.handle_request(request)
        if response.status_code != 402:
            return response
        response.read()
        offer = _read_offer(response, request)
        if offer is None:
            return response
        response.close()
        attempt = self._payer.attempt(offer)
        try:
            paid = self._inner.handle_request(self._payer.paid_request(request, body, attempt))
        except BaseException:
            self._payer.unknown_outcome(attempt)
            raise
        self._payer.account(attempt, paid)
        return paid

    def close(self) -> None:
        self._inner.close()


class AsyncPaymentTransport(_LedgerAccess, httpx.AsyncBaseTransport):
    """The async twin of :class:`PaymentTransport` (same arguments, same guarantees)."""

    def __init__(
        self,
        signer: PaymentSigner,
        policy: SpendPolicy,
        *,
        inner: httpx.AsyncBaseTransport | None = None,
        ledger: SpendLedger | None = None,
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._payer = _Payer(signer, policy, ledger, clock, max_body_bytes)

    async def _buffer(self, request: httpx.Request) -> bytes:
        buffer = _BodyBuffer(self._payer, request)
        if buffer.body is None:
            async for chunk in request.stream:  # type: ignore[union-attr]
                buffer.add(chunk)
        return buffer.finish(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _already_paying(request):
            return await self._inner.handle_async_request(request)
        body = await self._buffer(request)
        response = await self._inner.handle_async_request(request)
        if response.status_code != 402:
            return response
        await response.aread()
        offer = _read_offer(response, request)
        if offer is None:
            return response
        await response.aclose()
        attempt = self._payer.attempt(offer)
        try:
            paid = await self._inner.handle_async_request(self._payer.paid_request(request, body, attempt))
        except BaseException:
            self._payer.unknown_outcome(attempt)
            raise
        self._payer.account(attempt, paid)
        return paid

    async def aclose(self) -> None:
        await self._inner.aclose()


_TRANSPORT_OPTIONS = ("verify", "cert", "trust_env", "http1", "http2", "limits", "proxy", "retries")


def _split_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    transport_kwargs = {key: kwargs.pop(key) for key in _TRANSPORT_OPTIONS if key in kwargs}
    if "trust_env" in transport_kwargs:
        kwargs["trust_env"] = transport_kwargs["trust_env"]
    return transport_kwargs, kwargs


def paying_client(
    signer: PaymentSigner,
    policy: SpendPolicy,
    *,
    ledger: SpendLedger | None = None,
    inner: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    **httpx_kwargs: Any,
) -> httpx.Client:
    """An ``httpx.Client`` that pays 402s with ``signer`` within ``policy``.

    Connection options (verify, cert, http1, http2, limits, proxy, retries, trust_env) go to the inner
    ``httpx.HTTPTransport``; everything else (base_url, timeout, headers, ...) to the client.
    """
    transport_kwargs, client_kwargs = _split_kwargs(dict(httpx_kwargs))
    inner = inner if inner is not None else httpx.HTTPTransport(**transport_kwargs)
    transport = PaymentTransport(signer, policy, inner=inner, ledger=ledger, clock=clock)
    return httpx.Client(transport=transport, **client_kwargs)


def async_paying_client(
    signer: PaymentSigner,
    policy: SpendPolicy,
    *,
    ledger: SpendLedger | None = None,
    inner: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    **httpx_kwargs: Any,
) -> httpx.AsyncClient:
    """The async twin of :func:`paying_client`."""
    transport_kwargs, client_kwargs = _split_kwargs(dict(httpx_kwargs))
    inner = inner if inner is not None else httpx.AsyncHTTPTransport(**transport_kwargs)
    transport = AsyncPaymentTransport(signer, policy, inner=inner, ledger=ledger, clock=clock)
    return httpx.AsyncClient(transport=transport, **client_kwargs)
