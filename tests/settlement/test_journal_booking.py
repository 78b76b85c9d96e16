"""Booking appends to the journal's hash chain, on SQLite and PostgreSQL: every confirmation and reversal
extends one chain that ends at the journal head, also when replicas book at the same moment, and the
database refuses to rewrite or remove a booked line."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, NoResultFound

from app.db.clock import utc_now
from app.db.engine import make_engine
from app.db.schema import create_schema
from app.ledger.integrity import verify_journal
from app.ledger.repository import JournalHeadRow, LedgerRepository
from app.settlement.journal import GENESIS, chain_hash, content_hash
from app.settlement.models import SettlementState
from app.settlement.repository import SettlementRepository
from tests.ledger.builders import confirm, fail, record, reverse, settlement, submit


def _journal(engine: Engine) -> tuple[JournalHeadRow, list]:
    with LedgerRepository(engine).journal_snapshot() as journal:
        head = journal.head()
        assert head is not None
        return head, list(journal.lines())


def _submitted(engine: Engine, value: int) -> int:
    created = record(engine, settlement(value=value))
    assert submit(engine, created.id)
    return created.id


def test_an_empty_journal_is_intact_and_its_head_is_the_genesis_value(engine):
    create_schema(engine)
    head, lines = _journal(engine)
    assert lines == [] and head == JournalHeadRow(last_line_id=None, chain_hash=GENESIS)
    assert verify_journal(engine).intact


def test_every_booking_extends_one_chain_that_ends_at_the_head(engine):
    create_schema(engine)
    first = confirm(engine, settlement(value=5), gas_used=21_000, gas_price=3)
    second = confirm(engine, settlement(value=7))
    reverse(engine, first.id)
    fail(engine, settlement(value=9))  # books nothing

    head, lines = _journal(engine)
    assert [line.settlement_id for line in lines] == [first.id] * 4 + [second.id] * 2 + [first.id] * 4
    assert all(line.content_hash == content_hash(line) for line in lines)
    previous = GENESIS
    for line in lines:
        assert line.chain_hash == chain_hash(previous, line.content_hash)
        previous = line.chain_hash
    assert head == JournalHeadRow(last_line_id=lines[-1].id, chain_hash=lines[-1].chain_hash)
    verdict = verify_journal(engine)
    assert verdict.intact and verdict.lines == 10 and verdict.last_line_id == lines[-1].id


def test_lines_are_booked_at_the_moment_given_or_now(engine):
    create_schema(engine)
    confirmed_at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    reversed_at = confirmed_at + timedelta(days=2)
    before = utc_now()
    dated = confirm(engine, settlement(value=5), gas_used=21_000, gas_price=3, booked_at=confirmed_at)
    reverse(engine, dated.id, booked_at=reversed_at)
    undated = confirm(engine, settlement(value=6))

    _head, lines = _journal(engine)
    originals = [line for line in lines if line.settlement_id == dated.id and line.reverses_id is None]
    reversals = [line for line in lines if line.reverses_id is not None]
    now_booked = [line for line in lines if line.settlement_id == undated.id]
    assert len(originals) == len(reversals) == 4 and len(now_booked) == 2
    assert {line.booked_at for line in originals} == {confirmed_at}
    assert {line.booked_at for line in reversals} == {reversed_at}
    assert all(before <= line.booked_at <= utc_now() for line in now_booked)
    assert verify_journal(engine).intact


def test_a_confirmation_that_cannot_book_is_not_confirmed(engine):
    # The lines are booked in the confirmation's own transaction: without a journal head to link them to,
    # the confirmation is undone with them, and the row stays for whoever retries.
    create_schema(engine)
    settlement_id = _submitted(engine, 5)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM journal_head"))
    with pytest.raises(NoResultFound):
        SettlementRepository(engine).mark_confirmed(settlement_id, block_number=3)
    assert SettlementRepository(engine).get(settlement_id).state == SettlementState.SUBMITTED
    with LedgerRepository(engine).journal_snapshot() as journal:
        assert journal.lines_of([settlement_id]) == []


def test_the_database_refuses_to_rewrite_or_remove_a_booked_line(engine):
    create_schema(engine)
    confirm(engine, settlement(value=5))
    _head, before = _journal(engine)
    target = before[0].id
    refusals = {
        "UPDATE": "UPDATE journal_lines SET memo = 'edited' WHERE id = :id",
        "DELETE": "DELETE FROM journal_lines WHERE id = :id",
    }
    for operation, statement in refusals.items():
        with pytest.raises(DBAPIError, match=f"journal_lines is append-only: {operation}"), \
                engine.begin() as connection:
            connection.execute(text(statement), {"id": target})
    _head, after = _journal(engine)
    assert [tuple(line) for line in after] == [tuple(line) for line in before]
    assert verify_journal(engine).intact


@pytest.mark.postgres
def test_postgresql_refuses_truncate_and_replica_mode_does_not_bypass_the_guard(postgres_cluster):
    engine = make_engine(postgres_cluster.create_database("journal_guard"))
    try:
        create_schema(engine)
        confirm(engine, settlement(value=5))
        with pytest.raises(DBAPIError, match="append-only: TRUNCATE refused"), engine.begin() as connection:
            connection.execute(text("TRUNCATE journal_lines"))
        with pytest.raises(DBAPIError, match=r"append-only: UPDATE of journal line \d+ refused"), \
                engine.begin() as connection:
            connection.execute(text("SET LOCAL session_replication_role = replica"))  # skips ordinary triggers
            connection.execute(text("UPDATE journal_lines SET amount = amount + 1"))
        assert verify_journal(engine).intact
    finally:
        engine.dispose()


def test_replicas_booking_at_the_same_moment_make_one_unbroken_chain(database_url):
    """Threads on three engines (three replicas' pools) confirm and reverse at once, each booking in its
    own transaction; a fork (two bookings linked to one previous line) would break the walk."""
    replicas = [make_engine(database_url) for _ in range(3)]
    try:
        create_schema(replicas[0])
        to_reverse = [confirm(replicas[0], settlement(value=1_000 + n), gas_used=21_000, gas_price=2).id
                      for n in range(8)]
        to_confirm = [_submitted(replicas[0], 2_000 + n) for n in range(24)]
        workers = 8
        start = threading.Barrier(workers)
        failures: list[BaseException] = []

        def book(worker: int) -> None:
            repository = SettlementRepository(replicas[worker % len(replicas)])
            try:
                start.wait(timeout=30)
                for settlement_id in to_confirm[worker::workers]:
                    assert repository.mark_confirmed(settlement_id, block_number=9, gas_used=21_000,
                                                     effective_gas_price=2)
                for settlement_id in to_reverse[worker::workers]:
                    assert repository.mark_reversed(settlement_id, reason="reorged", memo="test")
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=book, args=(worker,)) for worker in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads) and failures == []

        head, lines = _journal(replicas[0])
        expected = 8 * 4 + 24 * 4 + 8 * 4  # confirmed first, then the concurrent confirmations and reversals
        assert len(lines) == expected and len({line.chain_hash for line in lines}) == expected
        verdict = verify_journal(replicas[0])
        assert verdict.broken is None, verdict.describe()
        assert verdict.lines == expected and head.last_line_id == lines[-1].id
    finally:
        for replica in replicas:
            replica.dispose()
