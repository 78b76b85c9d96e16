"""Pytest plugin: one anvil per test session with our USDC placed at Base Sepolia's address.

Starting anvil and deploying takes well under a second, so one chain serves the whole session and
``chain_snapshot`` gives each test that writes to it a clean slate. A missing anvil binary is an
error (``DevChainError`` names the fix), never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from web3 import Web3
from web3.contract import Contract

from app.dev.deploy import DevDeployment, setup_dev_chain, token_contract
from app.dev.devchain import DevChain, start_anvil


@pytest.fixture(scope="session")
def anvil() -> Iterator[DevChain]:
    """A running anvil on a free loopback port (chain id 84532), stopped at session end."""
    chain = start_anvil()
    try:
        yield chain
    finally:
        chain.stop()


@pytest.fixture(scope="session")
def dev_deployment(anvil: DevChain) -> DevDeployment:
    """The dev chain after setup: USDC at its Base Sepolia address, agents funded, facilitator has gas."""
    return setup_dev_chain(anvil)


@pytest.fixture(scope="session")
def w3(anvil: DevChain) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.rpc_url))


@pytest.fixture(scope="session")
def token(w3: Web3, dev_deployment: DevDeployment) -> Contract:
    """The dev USDC as a web3 contract object."""
    return token_contract(w3, dev_deployment.token_address)


@pytest.fixture
def chain_snapshot(anvil: DevChain, dev_deployment: DevDeployment) -> Iterator[str]:
    """Revert the chain after the test, so moved balances, used nonces and shifted time don't leak.

    Depends on ``dev_deployment`` so the deployment is part of every snapshot, never reverted away.
    """
    snapshot_id = str(anvil.rpc("evm_snapshot"))
    try:
        yield snapshot_id
    finally:
        if anvil.rpc("evm_revert", [snapshot_id]) is not True:
            raise RuntimeError(f"evm_revert({snapshot_id}) failed: later chain tests would see this test's state")


@contextmanager
def interval_mining_chain(block_seconds: float) -> Iterator[tuple[DevChain, DevDeployment]]:
    """A chain of its own that makes a block every ``block_seconds`` (set up with automine, then switched):
    for tests that need real block times, which the session chain's automine does not have."""
    chain = start_anvil()
    try:
        deployment = setup_dev_chain(chain)
        chain.rpc("evm_setAutomine", [False])
        chain.rpc("evm_setIntervalMining", [block_seconds])
        yield chain, deployment
    finally:
        chain.stop()
