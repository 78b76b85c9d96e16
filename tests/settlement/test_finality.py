"""Confirmed settlements become finalized only under the chain's finalized block, in the block we recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.chain.rpc import RpcClient
from app.config import Settings
from app.db.engine import make_engine
from app.db.schema import create_schema
from app.main import create_app
from app.settlement.finality import FinalityPass, FinalityWatcher
from app.settlement.models import Settlement, SettlementState
from app.settlement.repository import SettlementRepository
from tests.ledger.builders import record, settlement, submit
from tests.support.payments import BASE_SEPOLIA, paid_body

PRICE = 7_000
EPOCHS = 70  # anvil's finalized block trails the latest by 64 (two epochs of 32 slots)


# ------------------------------------------------------------------------------------ repository


def confirmed_at_block(repository: SettlementRepository, engine, block_number: int, **fields) -> Settlement:
    row = record(engine, settlement(value=1, **fields))
    assert submit(engine, row.id)
    assert repository.mark_confirmed(row.id, block_number=block_number, block_hash=f"0x{block_number:064x}")
    return row


def test_confirmed_rows_are_listed_up_to_a_block_per_network_with_a_cursor(engine):
    create_schema(engine)
    repository = SettlementRepository(engine)
    low = confirmed_at_block(repository, engine, 10)
    middle = confirmed_at_block(repository, engine, 20)
    confirmed_at_block(repository, engine, 30)
    confirmed_at_block(repository, engine, 5, network="eip155:8453")
    finalized = confirmed_at_block(repository, engine, 1)
    assert repository.mark_finalized(finalized.id)

    listed = repository.confirmed_through(BASE_SEPOLIA, 20, limit=10)
    assert [row.id for row in listed] == [low.id, middle.id]
    assert [row.id for row in repository.confirmed_through(BASE_SEPOLIA, 20, after_id=low.id, limit=10)] == [middle.id]
    assert [row.id for row in repository.confirmed_through(BASE_SEPOLIA, 20, limit=1)] == [low.id]
    stamped = repository.get(finalized.id)
    assert stamped.state == SettlementState.FINALIZED and stamped.finalized_at is not None


# ------------------------------------------------------------------------------------ on the chain


@pytest.fixture
def settings(facilitator_settings: Settings) -> Settings:
    facilitator_settings.finality_poll_seconds = 0  # the tests run passes themselves
    return facilitator_settings


def settle(settings: Settings, payer, payee, count: int = 1) -> list[str]:
    with TestClient(create_app(settings)) as client:
        hashes = []
        for _ in range(count):
            answer = client.post("/settle", json=paid_body(payer, payee, PRICE)).json()
            assert answer["success"] is True, answer
            hashes.append(answer["transaction"])
    return hashes


class Watcher:
    """A FinalityWatcher on its own event loop, driven synchronously by the test, pass by pass."""

    def __init__(self, settings: Settings, rpc_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._engine = make_engine(settings.database_url)
        self._rpc = RpcClient(rpc_url, timeout=2)
        self._watcher = FinalityWatcher(networks=settings.enabled_networks(), rpc={BASE_SEPOLIA: self._rpc},
                                        settlements=SettlementRepository(self._engine))

    def run_once(self) -> dict[str, FinalityPass]:
        return self._loop.run_until_complete(self._watcher.run_once())

    def close(self) -> None:
        self._loop.run_until_complete(self._rpc.close())
        self._loop.close()
        self._engine.dispose()


@pytest.fixture
def watcher(settings: Settings, anvil) -> Iterator[Watcher]:
    watching = Watcher(settings, anvil.rpc_url)
    yield watching
    watching.close()


def states(settings: Settings) -> dict[str, str]:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return {row.tx_hash: row.state for row in session.exec(select(Settlement)).all()}
    finally:
        engine.dispose()


def test_a_settlement_is_finalized_once_the_finalized_block_covers_it_and_only_once(
    settings, watcher, anvil, payer, payee
):
    hashes = settle(settings, payer, payee, count=2)
    first = watcher.run_once()[BASE_SEPOLIA]
    assert first.finalized == 0 and first.displaced == []  # the transfers are newer than the finalized block
    assert set(states(settings).values()) == {"confirmed"}

    anvil.rpc("anvil_mine", [hex(EPOCHS)])
    second = watcher.run_once()[BASE_SEPOLIA]
    assert second.finalized == 2 and second.displaced == []
    assert states(settings) == dict.fromkeys(hashes, "finalized")
    assert watcher.run_once()[BASE_SEPOLIA].finalized == 0  # nothing left to do


def test_a_settlement_whose_block_was_reorganised_away_is_not_finalized_and_is_reported(
    settings, watcher, anvil, payer, payee
):
    before = anvil.rpc("evm_snapshot", [])
    (tx_hash,) = settle(settings, payer, payee)
    anvil.rpc("evm_revert", [before])  # the chain forgets the block; the ledger still holds it confirmed
    anvil.rpc("anvil_mine", [hex(EPOCHS)])
    checked = watcher.run_once()[BASE_SEPOLIA]
    assert checked.finalized == 0
    assert checked.displaced == [tx_hash]
    assert states(settings) == {tx_hash: "confirmed"}  # left for reconciliation: its money is booked


def test_an_unreachable_node_skips_the_pass_without_failing(settings):
    unreachable = Watcher(settings, "http://127.0.0.1:9")
    try:
        assert unreachable.run_once() == {}
    finally:
        unreachable.close()


def test_the_service_finalizes_in_the_background(settings, anvil, payer, payee):
    settings.finality_poll_seconds = 0.2
    with TestClient(create_app(settings)) as client:
        answer = client.post("/settle", json=paid_body(payer, payee, PRICE)).json()
        assert answer["success"] is True
        anvil.rpc("anvil_mine", [hex(EPOCHS)])
        deadline = time.monotonic() + 10
        while states(settings)[answer["transaction"]] != "finalized":
            assert time.monotonic() < deadline, "not finalized in 10 s"
            time.sleep(0.1)
