"""``kill -9`` at each step of the settle path, on SQLite and PostgreSQL, on a chain with 1 s blocks.

The service runs as its own process with one crash point armed (``X402_CRASH_AT``, see app/faults.py):
payments are sent concurrently, the process dies at the first payment that reaches the point, and a new
process starts on the same ledger. Then, as clients would, each payment's ``/settle`` is retried until its
answer is final. Every authorization must be settled exactly once (one transfer, one success answered),
``x402-settle reconcile`` must find nothing, no nonce may be left as a gap, and new payments must settle.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from web3 import Web3

from app.dev.deploy import DevDeployment, token_contract
from app.dev.devchain import DevChain
from tests.support.chain import interval_mining_chain
from tests.support.payments import BASE_SEPOLIA, paid_body
from tests.support.service import X402_SETTLE, ServiceProcess

POINTS = ["recorded", "nonce_allocated", "signed", "hash_stored", "broadcast", "receipt_recorded"]
PRICE = 3_000
FINAL_WITHIN_SECONDS = 60


@pytest.fixture(scope="module")
def slow_chain() -> Iterator[tuple[DevChain, DevDeployment]]:
    """A chain of its own that makes a block every second."""
    with interval_mining_chain(1) as chain_and_deployment:
        yield chain_and_deployment


def service_env(chain: DevChain, deployment: DevDeployment, database_url: str) -> dict[str, str]:
    return {
        "X402_DATABASE_URL": database_url,
        "X402_RPC_URLS": json.dumps({BASE_SEPOLIA: chain.rpc_url}),
        "X402_FACILITATOR_PRIVATE_KEY": deployment.wallets.facilitator.key.hex(),
        "X402_FACILITATOR_REQUIRE_API_KEY": "false",
        "X402_SETTLE_RECEIPT_TIMEOUT_SECONDS": "3",
        "X402_SETTLEMENT_LEASE_SECONDS": "2",
        "X402_MAINTENANCE_SECONDS": "1",
        "X402_FINALITY_POLL_SECONDS": "0",
    }


def settle_all(service: ServiceProcess, bodies: list[dict]) -> list[dict | None]:
    """POST each body to /settle at once; None for a request the dying process never answered."""
    def settle(body: dict) -> dict | None:
        try:
            return service.post("/settle", body)[1]
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(settle, bodies))


def settle_until_final(service: ServiceProcess, body: dict) -> list[dict]:
    """Retry /settle as a client does while the answer is 'pending'; every answer, the final one last."""
    answers = []
    deadline = time.monotonic() + FINAL_WITHIN_SECONDS
    while time.monotonic() < deadline:
        _, answer = service.post("/settle", body)
        answers.append(answer)
        if answer["success"] or answer["errorReason"] != "settlement_pending":
            return answers
        time.sleep(0.5)
    raise AssertionError(f"no final answer within {FINAL_WITHIN_SECONDS} s: {answers[-3:]}")


def reconcile(env: dict[str, str], chain: DevChain, from_block: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(X402_SETTLE), "reconcile", "--network", BASE_SEPOLIA, "--from-block", str(from_block),
         "--rpc-url", chain.rpc_url, "--database-url", env["X402_DATABASE_URL"]],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_any_step_loses_nothing_and_each_authorization_settles_once(
    point: str, slow_chain: tuple[DevChain, DevDeployment], database_url: str, tmp_path: Path
):
    chain, deployment = slow_chain
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    token = token_contract(w3, deployment.token_address)
    payee = deployment.wallets.providers[0].address
    payers = deployment.wallets.agents[:3]
    facilitator = deployment.wallets.facilitator.address
    bodies = [paid_body(payer, payee, PRICE + index) for index, payer in enumerate(payers)]
    payee_before = token.functions.balanceOf(payee).call()
    env = service_env(chain, deployment, database_url)
    first_block = w3.eth.block_number + 1  # the chain is shared by the trials; this one's ledger starts here

    crashing = ServiceProcess({**env, "X402_CRASH_AT": point}, log_path=tmp_path / "crashing.log").start()
    try:
        before_crash = settle_all(crashing, bodies)
        assert crashing.wait_killed() == -9, crashing.log()[-2000:]
    finally:
        crashing.kill()

    restarted = ServiceProcess(env, log_path=tmp_path / "restarted.log").start()
    try:
        after = [settle_until_final(restarted, body) for body in bodies]
        for body, early, answers in zip(bodies, before_crash, after, strict=True):
            final = answers[-1]
            assert final["success"] or final["errorReason"] == "invalid_exact_evm_nonce_already_used", answers
            successes = [answer for answer in [early, *answers] if answer and answer["success"]]
            assert len(successes) == 1, (early, answers)  # exactly one success answered per authorization
            authorization = body["paymentPayload"]["payload"]["authorization"]
            assert token.functions.authorizationState(
                authorization["from"], bytes.fromhex(authorization["nonce"][2:])).call()
        assert token.functions.balanceOf(payee).call() - payee_before == sum(
            PRICE + index for index in range(len(payers)))  # each authorization moved money once

        fresh = settle_until_final(restarted, paid_body(payers[0], payee, PRICE + 99))
        assert fresh[-1]["success"], fresh  # new payments settle: nothing queues behind a gap
        assert w3.eth.get_transaction_count(facilitator, "latest") == w3.eth.get_transaction_count(
            facilitator, "pending")
    finally:
        restarted.stop()

    reconciled = reconcile(env, chain, first_block)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr  # no hash lost, ledger = chain
