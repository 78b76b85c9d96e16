"""Async chain tests run on asyncio (anyio's pytest plugin) with an RpcClient on the session anvil."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.chain.rpc import RpcClient
from app.dev.devchain import DevChain


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def rpc(anyio_backend: str, anvil: DevChain) -> AsyncIterator[RpcClient]:
    client = RpcClient(anvil.rpc_url)
    try:
        yield client
    finally:
        await client.close()
