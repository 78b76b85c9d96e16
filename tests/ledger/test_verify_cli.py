"""``x402-settle ledger verify``: walks the whole journal's hash chain; exit 0 intact, 1 naming the first
broken line and what is wrong with it, 2 when it cannot run. On SQLite and PostgreSQL."""

from __future__ import annotations

import tracemalloc

import typer
from sqlalchemy import insert, inspect
from typer.testing import CliRunner

from app.db.engine import make_engine
from app.db.schema import create_schema
from app.dev.devchain import free_port
from app.ledger.cli import ledger_cli
from app.ledger.integrity import verify_journal
from app.ledger.repository import LedgerRepository
from app.settlement.journal import reversal_of, seal
from app.settlement.models import JournalLine
from tests.ledger.builders import confirm, reverse, settlement
from tests.support.tamper import tamper

cli = typer.Typer()
cli.add_typer(ledger_cli, name="ledger")


def _verify(database_url: str, *extra: str):
    return CliRunner().invoke(cli, ["ledger", "verify", "--database-url", database_url, *extra])


def _ledger(engine) -> list[int]:
    """Three settlements (4, 2 and 4 lines), the first reversed (4 more): the ids of the settlements."""
    create_schema(engine)
    first = confirm(engine, settlement(value=5_000), gas_used=21_000, gas_price=3)
    second = confirm(engine, settlement(value=7_000))
    third = confirm(engine, settlement(value=9_000), gas_used=30_000, gas_price=2)
    reverse(engine, first.id)
    return [first.id, second.id, third.id]


def _line_ids(engine, settlement_id: int) -> list[int]:
    with LedgerRepository(engine).journal_snapshot() as journal:
        return [line.id for line in journal.lines_of([settlement_id])]


def test_an_intact_journal_exits_0(engine, database_url):
    _ledger(engine)
    result = _verify(database_url)
    assert result.exit_code == 0, result.output
    assert "journal intact: 14 lines verified" in result.output


def test_an_empty_journal_exits_0(engine, database_url):
    create_schema(engine)
    result = _verify(database_url)
    assert result.exit_code == 0, result.output
    assert "journal intact: 0 lines verified" in result.output


def test_the_issues_attack_one_more_on_both_lines_of_a_payment_exits_1_naming_the_first(engine, database_url):
    _first, second, _third = _ledger(engine)
    debit, credit = _line_ids(engine, second)
    assert tamper(engine, "UPDATE journal_lines SET amount = :amount WHERE id IN (:debit, :credit)",
                  amount=_stored_amount(engine, 7_001), debit=debit, credit=credit) == 2
    result = _verify(database_url)
    assert result.exit_code == 1, result.output
    assert f"journal broken at line {debit} (settlement {second}, 4 lines before it verified)" in result.output
    assert "changed after it was booked" in result.output


def test_a_line_deleted_from_the_middle_exits_1_naming_the_line_after_it(engine, database_url):
    _first, second, third = _ledger(engine)
    _debit, credit = _line_ids(engine, second)
    tamper(engine, "DELETE FROM journal_lines WHERE id = :id", id=credit)
    result = _verify(database_url)
    assert result.exit_code == 1, result.output
    assert f"journal broken at line {_line_ids(engine, third)[0]} (settlement {third}" in result.output
    assert "deleted, inserted or reordered" in result.output


def test_lines_cut_off_the_end_exit_1_at_its_end(engine, database_url):
    first, _second, _third = _ledger(engine)
    last = _line_ids(engine, first)[-1]  # the reversals were booked last
    tamper(engine, "DELETE FROM journal_lines WHERE id = :id", id=last)
    result = _verify(database_url)
    assert result.exit_code == 1, result.output
    assert f"journal broken at its end: the chain verifies through line {last - 1} (13 lines)" in result.output
    assert f"the journal head says it ends at line {last}" in result.output


def test_a_line_appended_behind_the_bookings_back_exits_1_even_with_forged_hashes(engine, database_url):
    first, _second, _third = _ledger(engine)
    with LedgerRepository(engine).journal_snapshot() as journal:
        head = journal.head()
        original = JournalLine(**journal.lines_of([first])[0]._mapping)
    forged = reversal_of(original, "a second refund")  # links correctly to the last line, head untouched
    forged.reverses_id = None
    seal([forged], head.chain_hash)
    with engine.begin() as connection:
        connection.execute(insert(JournalLine), [forged.model_dump(exclude={"id"})])
    result = _verify(database_url)
    assert result.exit_code == 1, result.output
    assert "journal broken at its end: the chain verifies through line 15 (15 lines)" in result.output


def test_it_exits_2_on_a_database_it_cannot_read_and_changes_nothing(database_url):
    result = _verify(database_url)  # an empty database: not migrated
    assert result.exit_code == 2, result.output
    assert "schema revision none" in result.output and "migrate it first" in result.output
    engine = make_engine(database_url)
    try:
        assert inspect(engine).get_table_names() == []  # a check does not migrate what it checks
    finally:
        engine.dispose()
    nowhere = _verify(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/ledger")
    assert nowhere.exit_code == 2 and "cannot read the ledger database" in nowhere.output


def test_the_walk_holds_one_batch_of_lines_not_the_journal(engine):
    create_schema(engine)
    for number in range(300):
        confirm(engine, settlement(value=1_000 + number), gas_used=21_000, gas_price=1)  # 1,200 lines
    verify_journal(engine, batch=50)  # warm: statement caches and the like are not what is measured

    tracemalloc.start()
    try:
        verdict = verify_journal(engine, batch=50)
        _current, streamed = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with LedgerRepository(engine).journal_snapshot() as journal:
            held = list(journal.lines(batch=50))
        _current, whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.intact and verdict.lines == len(held) == 1_200
    assert streamed * 4 < whole, (streamed, whole)


def _stored_amount(engine, amount: int) -> object:
    """``amount`` as the backend stores it (PostgreSQL NUMERIC, SQLite 78-digit text), for raw SQL."""
    return amount if engine.dialect.name == "postgresql" else f"{amount:078d}"
