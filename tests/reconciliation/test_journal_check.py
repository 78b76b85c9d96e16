"""Reconciliation's reading of the journal, without a chain: each checked settlement has exactly the lines its
state books, and the hash chain over them verifies. On SQLite and PostgreSQL; attacks are raw SQL with the
append-only guard dropped (tests/support/tamper.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import text

from app.db.schema import create_schema
from app.ledger.integrity import verify_journal
from app.ledger.repository import LedgerRepository
from app.reconciliation.journal import check_journal
from app.settlement.repository import SettlementRepository
from tests.ledger.builders import confirm, fail, record, reverse, settlement, submit
from tests.support.tamper import rechain, tamper


@dataclass(frozen=True)
class Ledger:
    confirmed: int  # 4 lines (payment + network fee)
    finalized: int  # 2 lines (no fee)
    reversed: int  # 4 lines and 4 reversals
    failed: int  # none
    submitted: int  # none

    @property
    def ids(self) -> list[int]:
        return [self.confirmed, self.finalized, self.reversed, self.failed, self.submitted]


@pytest.fixture
def ledger(engine) -> Ledger:
    create_schema(engine)
    repository = SettlementRepository(engine)
    confirmed = confirm(engine, settlement(value=12_345, agent_id="fleet-7"), gas_used=21_000, gas_price=3).id
    finalized = confirm(engine, settlement(value=500)).id
    assert repository.mark_finalized(finalized)
    reversed_ = confirm(engine, settlement(value=777), gas_used=30_000, gas_price=2).id
    reverse(engine, reversed_)
    failed = fail(engine, settlement(value=9)).id
    submitted = record(engine, settlement(value=11)).id
    assert submit(engine, submitted)
    return Ledger(confirmed, finalized, reversed_, failed, submitted)


def _lines(engine, settlement_id: int) -> list:
    with LedgerRepository(engine).journal_snapshot() as journal:
        return journal.lines_of([settlement_id])


def _stored(engine, amount: int) -> object:
    return amount if engine.dialect.name == "postgresql" else f"{amount:078d}"


def _kinds(check) -> list[tuple[str, int | None]]:
    return sorted((item.kind.value, item.settlement_id) for item in check.discrepancies)


def test_an_untouched_ledger_is_clean(engine, ledger):
    check = check_journal(engine, ledger.ids)
    assert check.discrepancies == []
    assert check.lines == 4 + 2 + 8


def test_the_issues_attack_one_more_on_both_payment_lines_is_found(engine, ledger):
    debit, credit = [line.id for line in _lines(engine, ledger.confirmed) if line.entry_type == "payment"]
    tamper(engine, "UPDATE journal_lines SET amount = :amount WHERE id IN (:debit, :credit)",
           amount=_stored(engine, 12_346), debit=debit, credit=credit)

    check = check_journal(engine, ledger.ids)
    assert _kinds(check) == [("journal_mismatch", ledger.confirmed), ("journal_tampered", ledger.confirmed)]
    mismatch, tampered = sorted(check.discrepancies, key=lambda item: item.kind.value)
    assert "debit agent:fleet-7:spend 12345" in mismatch.expected and "credit provider:" in mismatch.expected
    assert f"line {debit}: payment debit agent:fleet-7:spend 12346" in mismatch.actual
    assert f"line {credit}: payment credit" in mismatch.actual
    assert tampered.line_id == debit and "changed after it was booked" in tampered.message


def test_a_line_moved_to_another_agent_is_found(engine, ledger):
    tamper(engine, "UPDATE journal_lines SET agent_id = 'someone-else' WHERE settlement_id = :id",
           id=ledger.finalized)
    check = check_journal(engine, ledger.ids)
    assert _kinds(check) == [("journal_mismatch", ledger.finalized), ("journal_tampered", ledger.finalized)]


def test_a_forger_who_rewrites_the_whole_chain_is_still_caught_by_the_settlement(engine, ledger):
    tamper(engine, "UPDATE journal_lines SET amount = :amount WHERE settlement_id = :id AND entry_type = 'payment'",
           amount=_stored(engine, 12_346), id=ledger.confirmed)
    rechain(engine)
    assert verify_journal(engine).intact  # the chain alone cannot tell: its hashes are public
    check = check_journal(engine, ledger.ids)
    assert _kinds(check) == [("journal_mismatch", ledger.confirmed)]


def test_a_line_cut_off_the_end_is_found(engine, ledger):
    last = _lines(engine, ledger.reversed)[-1]  # the reversals were booked last
    tamper(engine, "DELETE FROM journal_lines WHERE id = :id", id=last.id)
    check = check_journal(engine, ledger.ids)
    assert _kinds(check) == [("journal_mismatch", ledger.reversed), ("journal_tampered", None)]
    mismatch = next(item for item in check.discrepancies if item.kind.value == "journal_mismatch")
    assert mismatch.expected == f"the reversal of line {last.reverses_id}"
    tampered = next(item for item in check.discrepancies if item.kind.value == "journal_tampered")
    assert "does not end at the journal head" in tampered.message


def test_a_settlement_failed_behind_the_ledgers_back_without_reversing_its_lines_is_found(engine, ledger):
    tamper(engine, "UPDATE settlements SET state = 'failed' WHERE id = :id", id=ledger.confirmed)
    check = check_journal(engine, ledger.ids)
    assert _kinds(check) == [("journal_mismatch", ledger.confirmed)]
    assert check.discrepancies[0].expected.count("the reversal of line") == 4


def test_lines_of_a_settlement_that_books_nothing_are_found(engine, ledger):
    tamper(engine, "UPDATE settlements SET state = 'submitted' WHERE id = :id", id=ledger.finalized)
    check = check_journal(engine, ledger.ids)
    assert _kinds(check) == [("journal_mismatch", ledger.finalized)]
    found = check.discrepancies[0]
    assert found.expected is None and found.actual.count("line ") == 2 and "books (nothing)" in found.message


def test_a_reversal_that_does_not_mirror_its_line_is_found(engine, ledger):
    reversal = next(line for line in _lines(engine, ledger.reversed) if line.reverses_id is not None)
    same_side_as_its_original = "debit" if reversal.side == "credit" else "credit"
    tamper(engine, "UPDATE journal_lines SET side = :side WHERE id = :id", side=same_side_as_its_original,
           id=reversal.id)
    check = check_journal(engine, ledger.ids)
    assert _kinds(check) == [("journal_mismatch", ledger.reversed), ("journal_tampered", ledger.reversed)]
    mismatch = next(item for item in check.discrepancies if item.kind.value == "journal_mismatch")
    assert mismatch.expected == f"the reversal of line {reversal.reverses_id}"
    assert mismatch.actual.startswith(f"line {reversal.id}: reversal")


def test_only_the_checked_settlements_lines_are_read_the_whole_chain_is_ledger_verifys(engine, ledger):
    line = _lines(engine, ledger.confirmed)[0]
    tamper(engine, "UPDATE journal_lines SET memo = 'x' WHERE id = :id", id=line.id)
    assert check_journal(engine, [ledger.reversed]).discrepancies == []  # its lines and their links verify
    assert [item.line_id for item in check_journal(engine, [ledger.confirmed]).discrepancies] == [line.id]
    assert verify_journal(engine).broken.line_id == line.id


def test_reads_see_one_moment(engine, ledger):
    # A snapshot does not see a booking that commits while it is open, so head and lines always agree.
    with LedgerRepository(engine).journal_snapshot() as journal:
        head = journal.head()
        confirm(engine, settlement(value=1))
        assert journal.head() == head
        assert [line.id for line in journal.lines()][-1] == head.last_line_id
    with engine.connect() as connection:
        assert connection.execute(text("SELECT last_line_id FROM journal_head")).scalar_one() > head.last_line_id
