"""A facilitator app on the session's anvil chain, with a fresh ledger and a clean chain per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from web3.contract import Contract

from app.chain.deploy import DevDeployment
from app.config import Settings
from app.main import create_app


@pytest.fixture
def client(facilitator_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(facilitator_settings)) as test_client:
        yield test_client


@pytest.fixture
def payer(dev_deployment: DevDeployment) -> LocalAccount:
    return dev_deployment.wallets.agents[0]


@pytest.fixture
def payee(dev_deployment: DevDeployment) -> str:
    return dev_deployment.wallets.providers[0].address


class Balances:
    """Token balances read straight from the chain, to prove what moved (or that nothing did)."""

    def __init__(self, token: Contract, *addresses: str) -> None:
        self._token = token
        self._addresses = addresses
        self.before = self.read()

    def read(self) -> dict[str, int]:
        return {address: self._token.functions.balanceOf(address).call() for address in self._addresses}

    def moved(self) -> dict[str, int]:
        after = self.read()
        return {address: after[address] - self.before[address] for address in self._addresses}


@pytest.fixture
def balances(token: Contract):
    return lambda *addresses: Balances(token, *addresses)
