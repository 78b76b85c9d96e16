"""Migration 0003 on both backends: lines booked before the chain existed get the hashes the booking would
have given them, the journal head ends that chain, and the append-only guard comes and goes with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from app.db.engine import make_engine
from app.db.migrate import downgrade_schema
from app.db.schema import SCHEMA_REVISION, create_schema, schema_revision
from app.ledger.integrity import verify_journal
from app.ledger.repository import JournalHeadRow, LedgerRepository
from app.settlement.journal import GENESIS, seal
from app.settlement.models import JournalLine
from tests.ledger.builders import confirm, record, reverse, settlement

HASHES = ("content_hash", "chain_hash")
UNCHAINED = sa.table("journal_lines", *[sa.column(column.name, column.type)
                                        for column in JournalLine.__table__.columns
                                        if column.name not in ("id", *HASHES)])


def _chain(engine) -> tuple[JournalHeadRow, list]:
    with LedgerRepository(engine).journal_snapshot() as journal:
        return journal.head(), list(journal.lines())


def _columns(engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def test_lines_booked_before_the_chain_get_the_hashes_the_booking_gives(engine):
    create_schema(engine)
    first = confirm(engine, settlement(value=5), gas_used=21_000, gas_price=3)
    confirm(engine, settlement(value=2**200))
    reverse(engine, first.id)
    booked_head, booked = _chain(engine)

    downgrade_schema(engine, "0002")
    assert not _columns(engine, "journal_lines") & set(HASHES)
    assert "journal_head" not in sa.inspect(engine).get_table_names()
    create_schema(engine)  # 0003 again: the backfill recomputes every hash

    head, backfilled = _chain(engine)
    assert [tuple(line) for line in backfilled] == [tuple(line) for line in booked]
    assert head == booked_head and verify_journal(engine).intact


def test_the_backfill_walks_a_journal_larger_than_its_page_in_id_order(engine):
    create_schema(engine)
    owner = record(engine, settlement(value=1))
    downgrade_schema(engine, "0002")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"settlement_id": owner.id, "entry_type": "payment", "account": f"agent:a:spend:{number}",
             "account_kind": "agent_spend", "side": "debit" if number % 2 else "credit", "amount": number * 10**18,
             "asset": "native", "network": "eip155:84532", "agent_id": "a", "team": "t", "cost_center": "c",
             "capability_id": "k", "provider": "p", "reverses_id": None, "memo": f"ünïcode {number}",
             "booked_at": start + timedelta(seconds=number)} for number in range(2_345)]  # the page is 1,000 lines
    with engine.begin() as connection:
        connection.execute(UNCHAINED.insert(), rows)

    create_schema(engine)
    head, lines = _chain(engine)
    expected = [JournalLine(**{column: getattr(line, column) for column in line._fields if column not in HASHES})
                for line in lines]
    end = seal(expected, GENESIS)  # what the application computes for the same lines in the same order
    assert [(line.content_hash, line.chain_hash) for line in lines] == [
        (line.content_hash, line.chain_hash) for line in expected]
    assert len(lines) == 2_345 and head == JournalHeadRow(last_line_id=lines[-1].id, chain_hash=end)
    assert verify_journal(engine, batch=700).intact


def test_the_append_only_guard_is_there_at_the_head_and_goes_with_a_downgrade(engine):
    create_schema(engine)
    confirm(engine, settlement(value=5))
    edit = sa.text("UPDATE journal_lines SET memo = 'edited'")
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(edit)

    downgrade_schema(engine, "0002")
    with engine.begin() as connection:
        assert connection.execute(edit).rowcount == 2  # the guard belonged to 0003

    create_schema(engine)
    assert schema_revision(engine) == SCHEMA_REVISION
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM journal_lines"))
    assert verify_journal(engine).intact  # the edited memo was hashed by the backfill


def test_after_migrating_references_are_enforced_again(engine):
    # SQLite migrates with foreign keys off (a batch copy of journal_lines needs it): the pooled connection
    # that ran it must enforce them again afterwards.
    create_schema(engine)
    downgrade_schema(engine, "0002")
    create_schema(engine)
    dangling = {column.name: None for column in UNCHAINED.columns} | {
        "settlement_id": 999_999, "entry_type": "payment", "account": "a", "account_kind": "agent_spend",
        "side": "debit", "amount": 1, "asset": "native", "network": "n", "agent_id": "a", "team": "t",
        "cost_center": "c", "capability_id": "k", "provider": "p", "memo": "", "booked_at": datetime.now(UTC),
        "content_hash": "0" * 64, "chain_hash": "0" * 64}
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(sa.insert(JournalLine), [dangling])


def test_a_failed_migration_leaves_sqlite_as_it_was(tmp_path):
    # The driver commits DDL statement by statement unless a transaction is begun: the migration begins one.
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        create_schema(engine)
        owner = record(engine, settlement(value=1))
        downgrade_schema(engine, "0002")
        line = {column.name: None for column in UNCHAINED.columns} | {
            "settlement_id": owner.id, "entry_type": "payment", "account": "a", "account_kind": "agent_spend",
            "side": "debit", "asset": "native", "network": "n", "agent_id": "a", "team": "t", "cost_center": "c",
            "capability_id": "k", "provider": "p", "memo": "", "booked_at": datetime.now(UTC)}
        with engine.begin() as connection:
            connection.execute(UNCHAINED.insert(), [line | {"amount": 5}])
            connection.execute(sa.text("UPDATE journal_lines SET amount = 'not a number'"))  # the backfill fails
        with pytest.raises(ValueError):
            create_schema(engine)
        assert schema_revision(engine) == "0002"
        assert "journal_head" not in sa.inspect(engine).get_table_names()
        assert not _columns(engine, "journal_lines") & set(HASHES)
    finally:
        engine.dispose()
