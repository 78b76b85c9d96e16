"""One interface to a facilitator, in-process or remote, so the paywall does not care which.

The paywall parses the payment once (a :class:`FacilitatorRequest`) and hands that on: the in-process
facilitator works on it directly and keeps what it prepared for verify (the recovered signer, the
digest) in the :class:`Verification`, so settling the same payment recovers nothing again. Only the
remote facilitator turns the request back into JSON, since it speaks HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from app.facilitator.service import Facilitator
from app.facilitator.verification import PaymentInvalid, PreparedPayment
from app.protocol import FacilitatorRequest, Reason, SettleResponse, VerifyResponse


@dataclass(frozen=True)
class Verification:
    """A facilitator's verdict on a payment, and what settling that same payment needs."""

    request: FacilitatorRequest
    response: VerifyResponse
    prepared: PreparedPayment | None = None  # the in-process facilitator's own work, reused by settle


class FacilitatorClient(Protocol):
    async def verify(self, request: FacilitatorRequest) -> Verification: ...

    async def settle(self, verification: Verification) -> SettleResponse: ...


class LocalFacilitator:
    """This service's own facilitator, called without HTTP."""

    def __init__(self, facilitator: Facilitator) -> None:
        self._facilitator = facilitator

    async def verify(self, request: FacilitatorRequest) -> Verification:
        try:
            prepared = self._facilitator.prepare(request)
        except PaymentInvalid as invalid:
            return Verification(request, VerifyResponse(is_valid=False, invalid_reason=invalid.reason,
                                                        invalid_message=invalid.message, payer=invalid.payer))
        return Verification(request, await self._facilitator.verify_prepared(prepared), prepared)

    async def settle(self, verification: Verification) -> SettleResponse:
        if verification.prepared is not None:
            return await self._facilitator.settle_prepared(verification.prepared)
        return await self._facilitator.settle(verification.request)


class RemoteFacilitator:
    """Any standard x402 facilitator over HTTP (ours on another host, or a third party's)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        self._url = url.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with self._session.post(f"{self._url}{path}", data=json.dumps(body), headers=self._headers) as reply:
            answer = await reply.json(content_type=None)
            if reply.status != 200 or not isinstance(answer, dict):
                raise RuntimeError(f"facilitator {path} answered HTTP {reply.status}")
            return answer

    async def verify(self, request: FacilitatorRequest) -> Verification:
        try:
            response = VerifyResponse.model_validate(await self._post("/verify", request.to_wire()))
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as error:
            response = VerifyResponse(is_valid=False, invalid_reason=Reason.unexpected_verify_error,
                                      invalid_message=f"facilitator unavailable: {error}")
        return Verification(request, response)

    async def settle(self, verification: Verification) -> SettleResponse:
        try:
            return SettleResponse.model_validate(await self._post("/settle", verification.request.to_wire()))
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as error:
            return SettleResponse(success=False, error_reason=Reason.unexpected_settle_error,
                                  error_message=f"facilitator unavailable: {error}", network="")
