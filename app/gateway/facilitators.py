"""One interface to a facilitator, in-process or remote, so the paywall does not care which."""

from __future__ import annotations

import json
from typing import Any, Protocol

import aiohttp

from app.facilitator.service import Facilitator
from app.protocol import ProtocolError, Reason, SettleResponse, VerifyResponse, parse_facilitator_request


class FacilitatorClient(Protocol):
    async def verify(self, body: dict[str, Any]) -> VerifyResponse: ...

    async def settle(self, body: dict[str, Any]) -> SettleResponse: ...


class LocalFacilitator:
    """This service's own facilitator, called without HTTP."""

    def __init__(self, facilitator: Facilitator) -> None:
        self._facilitator = facilitator

    async def verify(self, body: dict[str, Any]) -> VerifyResponse:
        try:
            payload, requirements = parse_facilitator_request(body)
        except ProtocolError as error:
            return VerifyResponse(is_valid=False, invalid_reason=error.reason, invalid_message=error.message)
        return await self._facilitator.verify(payload, requirements)

    async def settle(self, body: dict[str, Any]) -> SettleResponse:
        try:
            payload, requirements = parse_facilitator_request(body)
        except ProtocolError as error:
            return SettleResponse(success=False, error_reason=error.reason, error_message=error.message, network="")
        return await self._facilitator.settle(payload, requirements)


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

    async def verify(self, body: dict[str, Any]) -> VerifyResponse:
        try:
            return VerifyResponse.model_validate(await self._post("/verify", body))
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as error:
            return VerifyResponse(is_valid=False, invalid_reason=Reason.unexpected_verify_error,
                                  invalid_message=f"facilitator unavailable: {error}")

    async def settle(self, body: dict[str, Any]) -> SettleResponse:
        try:
            return SettleResponse.model_validate(await self._post("/settle", body))
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as error:
            return SettleResponse(success=False, error_reason=Reason.unexpected_settle_error,
                                  error_message=f"facilitator unavailable: {error}", network="")
