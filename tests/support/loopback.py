"""Pytest plugin: our facilitator on a real loopback port, for the official x402 SDK and our own client.

Used by tests/interop (the SDK against us) and tests/client (our client against the SDK's server), which
also share ``sdk_resource_server``: the SDK's own FastAPI middleware gating ``GET /weather`` through us.
The two guards are not autouse here; each of those directories' conftest turns them on for its tests:

- ``sdk_cannot_kill_pytest``: the SDK's ``os._exit`` becomes a test failure;
- ``no_threads_left_behind``: every server a test started is gone when it ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from web3.contract import Contract
from x402 import x402ResourceServer
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.facilitator_client_base import AuthHeaders
from x402.http.middleware.fastapi import payment_middleware
from x402.http.types import PaymentOption, RouteConfig
from x402.mechanisms.evm.exact import ExactEvmServerScheme

from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.config import Settings
from app.db.engine import make_engine
from app.db.schema import create_schema
from app.dev.deploy import DevDeployment
from app.main import create_app
from tests.support.payments import BASE_SEPOLIA
from tests.support.servers import serve


class SdkWantedToExit(RuntimeError):
    """The SDK tried to end the process (``os._exit(1)``); here it fails the test instead."""


@pytest.fixture
def sdk_cannot_kill_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start-up capability mismatch makes the SDK's middleware call ``os._exit(1)``.

    That would end the whole pytest run with no report; raise instead so the test fails and says why.
    """
    import x402.http.background_init as background_init

    def refuse(code: int) -> None:
        raise SdkWantedToExit(f"the x402 SDK called os._exit({code}): our /supported lacks a route's kind")

    monkeypatch.setattr(background_init, "_process_exit", refuse)


@pytest.fixture
def no_threads_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    while leftover and time.monotonic() < deadline:
        time.sleep(0.05)  # worker threads of a just-closed event loop take a moment to see the stop
        leftover = [t for t in leftover if t.is_alive()]
    assert not leftover, f"threads left running after the test: {[t.name for t in leftover]}"


@pytest.fixture
def facilitator_key(facilitator_settings: Settings) -> str:
    """An API key with the facilitator scope, in the ledger the facilitator below serves from."""
    engine = make_engine(facilitator_settings.database_url)
    try:
        create_schema(engine)
        _row, key = ApiKeyRepository(engine).create("sdk-resource-server", [Scope.FACILITATOR])
    finally:
        engine.dispose()
    return key


@pytest.fixture
def facilitator_url(facilitator_settings: Settings, facilitator_key: str) -> Iterator[str]:
    """Our facilitator (the real app, lifespan included) on a loopback port, as production runs it: /verify
    and /settle need ``facilitator_key``."""
    with serve(create_app(facilitator_settings.model_copy(update={"facilitator_require_api_key": True}))) as url:
        yield url


class BearerKey:
    """The SDK's ``AuthProvider``: our API key on /verify and /settle, as a resource server sends it."""

    def __init__(self, key: str) -> None:
        self._headers = {"Authorization": f"Bearer {key}"}

    def get_auth_headers(self) -> AuthHeaders:
        return AuthHeaders(verify=dict(self._headers), settle=dict(self._headers))


def sdk_facilitator_config(url: str, key: str) -> FacilitatorConfig:
    """How a resource server built on the official SDK points at our facilitator, key included."""
    return FacilitatorConfig(url=url, auth_provider=BearerKey(key))


@pytest.fixture
def agent(payer: LocalAccount) -> LocalAccount:
    """The paying agent, by the name the client and SDK tests use."""
    return payer


@pytest.fixture
def provider(payee: str) -> str:
    """The paid provider, by the name the client and SDK tests use."""
    return payee


class Ledger:
    """Every dev wallet's token balance plus the total supply, read from the chain before and after."""

    def __init__(self, token: Contract, addresses: list[str]) -> None:
        self._token = token
        self._addresses = addresses
        self.before = self.read()

    def read(self) -> dict[str, int]:
        balances = {address: self._token.functions.balanceOf(address).call() for address in self._addresses}
        balances["totalSupply"] = self._token.functions.totalSupply().call()
        return balances

    def moved(self) -> dict[str, int]:
        """Only the non-zero changes: anything beyond payer and payee shows up here."""
        after = self.read()
        return {key: after[key] - self.before[key] for key in after if after[key] != self.before[key]}


@pytest.fixture
def ledger(token: Contract, dev_deployment: DevDeployment):
    wallets = dev_deployment.wallets
    addresses = [w.address for w in wallets.agents] + [w.address for w in wallets.providers]
    addresses.append(wallets.facilitator.address)
    return lambda: Ledger(token, addresses)


WEATHER = {"city": "Lisbon", "forecast": "sunny", "celsius": 24}


@contextmanager
def sdk_resource_server(facilitator_url: str, pay_to: str, key: str, price: str = "$0.01") -> Iterator[str]:
    """A FastAPI app gated by the SDK's own middleware, using our facilitator with ``key``; yields its base URL."""
    facilitator = HTTPFacilitatorClient(sdk_facilitator_config(facilitator_url, key))
    server = x402ResourceServer(facilitator)
    server.register(BASE_SEPOLIA, ExactEvmServerScheme())
    routes = {
        "GET /weather": RouteConfig(
            accepts=PaymentOption(scheme="exact", pay_to=pay_to, price=price, network=BASE_SEPOLIA),
            description="Weather data",
            mime_type="application/json",
        )
    }
    middleware = payment_middleware(routes, server)  # GETs our /supported right now, synchronously

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:  # the SDK client's httpx.AsyncClient lives on this server's event loop
            await facilitator.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.middleware("http")
    async def x402_gate(request, call_next):
        return await middleware(request, call_next)

    @app.get("/weather")
    async def weather() -> dict[str, Any]:
        return WEATHER

    with serve(app) as url:
        yield url
