"""Pytest plugin: settings for a facilitator on the session anvil, with a fresh ledger per test.

Depends on ``chain_snapshot``, so whatever the test settles is reverted from the chain afterwards.
"""

from __future__ import annotations

import pytest

from app.chain.deploy import DevDeployment
from app.config import Settings
from tests.support.payments import BASE_SEPOLIA


@pytest.fixture
def facilitator_settings(tmp_path, anvil, dev_deployment: DevDeployment, chain_snapshot) -> Settings:
    return Settings(
        data_dir=tmp_path,
        rpc_urls={BASE_SEPOLIA: anvil.rpc_url},
        facilitator_private_key=dev_deployment.wallets.facilitator.key.hex(),
        settle_receipt_timeout_seconds=10,
    )
