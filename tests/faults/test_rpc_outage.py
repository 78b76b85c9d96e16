"""The chain node goes away under load (a TCP forwarder between the service and anvil is cut): callers get
``settlement_pending`` or a clear error, never a 5xx; nothing is lost; and once the node is back every
payment settles, exactly once, without restarting the service."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from app.main import create_app
from tests.support.forwarder import TcpForwarder
from tests.support.payments import BASE_SEPOLIA, paid_body
from tests.support.servers import serve

PRICE = 2_000
CLEAR_ERRORS = {"settlement_pending", "unexpected_verify_error", "unexpected_settle_error"}
FINAL_WITHIN_SECONDS = 60


async def _settle(session: aiohttp.ClientSession, url: str, body: dict) -> tuple[int, dict]:
    async with session.post(f"{url}/settle", json=body) as response:
        return response.status, await response.json(content_type=None)


async def _until_final(session: aiohttp.ClientSession, url: str, body: dict) -> list[dict]:
    """Retry as a client does while the answer is not final (pending, or the chain was unreachable)."""
    answers: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINAL_WITHIN_SECONDS
    while loop.time() < deadline:
        status, answer = await _settle(session, url, body)
        assert status == 200, (status, answer)
        answers.append(answer)
        if answer["success"] or answer["errorReason"] not in CLEAR_ERRORS:
            return answers
        await asyncio.sleep(0.5)
    raise AssertionError(f"no final answer within {FINAL_WITHIN_SECONDS} s: {answers[-3:]}")


async def _under_load(url: str, bodies: list[dict], disturb) -> tuple[list[tuple[int, dict]], list[list[dict]]]:  # type: ignore[no-untyped-def]
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        sending = asyncio.gather(*(_settle(session, url, body) for body in bodies))
        await disturb()
        first = await sending
        after = await asyncio.gather(*(_until_final(session, url, body) for body in bodies))
    return first, after


def _check_each_settled_once(first, after, bodies, watched, payee) -> None:  # type: ignore[no-untyped-def]
    assert {status for status, _ in first} == {200}  # never a 5xx
    for (_, early), answers in zip(first, after, strict=True):
        assert early["success"] or early["errorReason"] in CLEAR_ERRORS, early
        successes = [answer for answer in [early, *answers] if answer["success"]]
        assert len(successes) == 1, (early, answers)  # settled, and the success answered once
        assert answers[-1]["success"] or answers[-1]["errorReason"] == "invalid_exact_evm_nonce_already_used"
    total = sum(int(body["paymentRequirements"]["amount"]) for body in bodies)
    assert watched.moved()[payee] == total  # each authorization moved money exactly once


@pytest.fixture
def outage_settings(facilitator_settings, anvil):  # type: ignore[no-untyped-def]
    forwarder = TcpForwarder("127.0.0.1", anvil.port)
    with forwarder:
        yield forwarder, facilitator_settings.model_copy(update={
            "rpc_urls": {BASE_SEPOLIA: forwarder.url}, "maintenance_seconds": 1.0,
            "settle_receipt_timeout_seconds": 2.0})


def test_a_ten_second_outage_under_load_loses_nothing_and_everything_settles_after_it(
    outage_settings, dev_deployment, payee, balances
):
    forwarder, settings = outage_settings
    agents = dev_deployment.wallets.agents
    bodies = [paid_body(agents[index % len(agents)], payee, PRICE + index) for index in range(40)]
    watched = balances(payee)

    async def outage() -> None:
        await asyncio.sleep(0.3)
        forwarder.cut()
        await asyncio.sleep(10)
        forwarder.restore()

    with serve(create_app(settings)) as url:
        first, after = asyncio.run(_under_load(url, bodies, outage))
    _check_each_settled_once(first, after, bodies, watched, payee)


def test_a_flapping_node_under_load_does_not_strand_a_failed_broadcast_until_a_restart(
    outage_settings, dev_deployment, payee, balances
):
    """Twenty cuts of 0.3 s while payments are sent: a broadcast that failed in a cut is resent by the
    running service (its maintenance pass), not left pending until the next restart."""
    forwarder, settings = outage_settings
    agents = dev_deployment.wallets.agents
    bodies = [paid_body(agents[index % len(agents)], payee, PRICE + index) for index in range(200)]
    watched = balances(payee)

    async def flapping() -> None:
        for _ in range(20):
            await asyncio.sleep(0.2)
            forwarder.cut()
            await asyncio.sleep(0.3)
            forwarder.restore()

    with serve(create_app(settings)) as url:
        first, after = asyncio.run(_under_load(url, bodies, flapping))
    _check_each_settled_once(first, after, bodies, watched, payee)
