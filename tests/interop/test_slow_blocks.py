"""The official SDK's resource server on a chain with 3 s blocks: every payment it takes is served.

The SDK's server retries settle once after ``settlement_pending`` and answers 402 if the retry is still
pending. With a receipt wait shorter than a block (1 s against 3 s blocks) some payers were charged and
refused. Our wait follows the network's block time, so by default the first settle sees the payment
land; and where the wait is shorter than a block, the SDK's one retry gets the success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from web3 import Web3

from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.config import Settings
from app.db.engine import make_engine
from app.db.schema import create_schema
from app.dev.deploy import DevDeployment, token_contract
from app.dev.devchain import DevChain
from app.main import create_app
from tests.interop.test_official_sdk import get_paid
from tests.support.chain import interval_mining_chain
from tests.support.loopback import WEATHER, sdk_resource_server
from tests.support.payments import BASE_SEPOLIA
from tests.support.servers import serve

PRICE = 10_000  # "$0.01"


@pytest.fixture(scope="module")
def three_second_blocks() -> Iterator[tuple[DevChain, DevDeployment]]:
    with interval_mining_chain(3) as chain_and_deployment:
        yield chain_and_deployment


def _facilitator(chain: DevChain, deployment: DevDeployment, data_dir: Path, **settings: object
                 ) -> tuple[Settings, str]:
    configured = Settings(_env_file=None, data_dir=data_dir, rpc_urls={BASE_SEPOLIA: chain.rpc_url},  # type: ignore[call-arg]
                          facilitator_private_key=SecretStr(deployment.wallets.facilitator.key.hex()), **settings)
    engine = make_engine(configured.database_url)
    create_schema(engine)
    _row, key = ApiKeyRepository(engine).create("sdk-server", [Scope.FACILITATOR])
    engine.dispose()
    return configured, key


@pytest.mark.parametrize("receipt_wait", [None, 2.0], ids=["wait_follows_block_time", "wait_shorter_than_a_block"])
def test_every_payment_the_sdk_server_takes_is_served_and_paid_once(receipt_wait, three_second_blocks, tmp_path):
    chain, deployment = three_second_blocks
    token = token_contract(Web3(Web3.HTTPProvider(chain.rpc_url)), deployment.token_address)
    payee = deployment.wallets.providers[0].address
    agents = deployment.wallets.agents
    before = token.functions.balanceOf(payee).call()
    settings, key = _facilitator(chain, deployment, tmp_path, settle_receipt_timeout_seconds=receipt_wait)
    with serve(create_app(settings)) as facilitator_url, \
            sdk_resource_server(facilitator_url, payee, key) as resource_url:

        async def everyone_pays() -> list:
            return list(await asyncio.gather(*(get_paid(agent, f"{resource_url}/weather") for agent in agents)))

        responses = asyncio.run(everyone_pays())
    assert [response.status_code for response in responses] == [200] * len(agents), [r.text for r in responses]
    assert all(response.json() == WEATHER for response in responses)
    assert token.functions.balanceOf(payee).call() - before == PRICE * len(agents)
