"""A lean asynchronous JSON-RPC client: the one door through which the service talks to a chain.

Built on aiohttp rather than web3's provider stack because the facilitator's hot path makes
many small calls per second: aiohttp keeps ~14k req/s at concurrency 32 on the dev box where
httpx's async pool stays under 600 (reference/toolchain.md §6), and raw JSON-RPC avoids web3's
per-call middleware. ABI encoding stays with eth-abi.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import aiohttp


class RpcError(Exception):
    """The node answered with a JSON-RPC error (e.g. a revert) — the call reached the chain."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class RpcUnavailable(Exception):
    """The node could not be reached or answered garbage: the chain state is unknown."""


class RpcClient:
    """JSON-RPC over one pooled HTTP session per client (per network)."""

    def __init__(self, url: str, *, timeout: float = 10.0, max_connections: int = 64) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        reply = await self._post(request)
        if not isinstance(reply, dict):
            raise RpcUnavailable(f"{method}: malformed reply {reply!r:.200}")
        return _result_of(method, reply)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any | RpcError]:
        """Several calls in one HTTP round trip; each slot holds its result or its RpcError."""
        if not calls:
            return []
        first_id = next(self._ids)
        requests = [
            {"jsonrpc": "2.0", "id": first_id + index, "method": method, "params": list(params)}
            for index, (method, params) in enumerate(calls)
        ]
        self._ids = itertools.count(first_id + len(calls))
        replies = await self._post(requests)
        if not isinstance(replies, list):
            raise RpcUnavailable(f"batch: malformed reply {replies!r:.200}")
        by_id = {reply.get("id"): reply for reply in replies if isinstance(reply, dict)}
        results: list[Any | RpcError] = []
        for request in requests:
            reply = by_id.get(request["id"])
            if reply is None:
                raise RpcUnavailable(f"batch: no reply for {request['method']}")
            try:
                results.append(_result_of(request["method"], reply))
            except RpcError as error:
                results.append(error)
        return results

    async def _post(self, payload: object) -> Any:
        try:
            async with self._http().post(
                self.url, data=json.dumps(payload), headers={"Content-Type": "application/json"}
            ) as response:
                if response.status != 200:
                    raise RpcUnavailable(f"HTTP {response.status} from the RPC endpoint")
                return await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError, ValueError) as error:
            raise RpcUnavailable(f"RPC endpoint unreachable: {type(error).__name__}: {error}") from error


def _result_of(method: str, reply: dict[str, Any]) -> Any:
    error = reply.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise RpcError(method, -1, str(error))
        raise RpcError(method, int(error.get("code", -1)), str(error.get("message", "")), error.get("data"))
    if "result" not in reply:
        raise RpcUnavailable(f"{method}: reply without result")
    return reply["result"]


def quantity(value: Any) -> int:
    """A JSON-RPC quantity (``0x``-hex text; an int is taken as is). A malformed one is the node's fault."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcUnavailable(f"malformed quantity in an RPC reply: {value!r:.80}")
    try:
        return int(value, 16)
    except ValueError:
        raise RpcUnavailable(f"malformed quantity in an RPC reply: {value!r:.80}") from None
