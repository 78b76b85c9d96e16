"""Pytest plugin: settings for a facilitator on the session anvil, with a fresh ledger per test.

Depends on ``chain_snapshot``, so whatever the test settles is reverted from the chain afterwards.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from app.config import Settings
from app.dev.deploy import DevDeployment
from tests.support.payments import BASE_SEPOLIA


@pytest.fixture
def payer(dev_deployment: DevDeployment) -> LocalAccount:
    """The agent wallet that pays in single-payer tests."""
    return dev_deployment.wallets.agents[0]


@pytest.fixture
def payee(dev_deployment: DevDeployment) -> str:
    """The provider address that is paid in single-payee tests."""
    return dev_deployment.wallets.providers[0].address


@pytest.fixture
def facilitator_settings(tmp_path, anvil, dev_deployment: DevDeployment, chain_snapshot) -> Settings:
    return Settings(
        data_dir=tmp_path,
        rpc_urls={BASE_SEPOLIA: anvil.rpc_url},
        facilitator_private_key=dev_deployment.wallets.facilitator.key.hex(),
        settle_receipt_timeout_seconds=10,
        facilitator_require_api_key=False,  # the auth tests turn it on
    )


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
