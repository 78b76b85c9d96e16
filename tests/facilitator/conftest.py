"""A facilitator app on the session's anvil chain, with a fresh ledger and a clean chain per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

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
