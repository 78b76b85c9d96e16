"""The settlement state machine: every named transition from every state, on SQLite and PostgreSQL.

A transition moves a row only from its source states (``TRANSITIONS``), stamps the moment it happened,
and books or reverses money exactly when it moves; from any other state it changes nothing and says so
(False), which is how a second owner learns that someone else got there first.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.db.schema import create_schema
from app.settlement.models import STATE_STAMPS, TRANSITIONS, JournalLine, SettlementState, Transition
from app.settlement.repository import SettlementRepository
from tests.ledger.builders import SIGNER, record, settlement, submit

NAMED: dict[Transition, Callable[[Engine, int], bool]] = {
    Transition.SUBMIT: lambda engine, row_id: submit(engine, row_id),
    Transition.CONFIRM: lambda engine, row_id: SettlementRepository(engine).mark_confirmed(
        row_id, block_number=12, block_hash="0x" + "cd" * 32, gas_used=50_000, effective_gas_price=3),
    Transition.FAIL: lambda engine, row_id: SettlementRepository(engine).mark_failed(
        row_id, reason="transaction_failed", message="reverted"),
    Transition.EXPIRE: lambda engine, row_id: SettlementRepository(engine).mark_expired(row_id, reason="expired",
                                                                          message="window closed"),
    Transition.FINALIZE: lambda engine, row_id: SettlementRepository(engine).mark_finalized(row_id),
    Transition.REVERSE: lambda engine, row_id: SettlementRepository(engine).mark_reversed(row_id, reason="reorged",
                                                                            memo="block reorged away"),
}
CASES = list(product(Transition, SettlementState))
BOOKED = (SettlementState.CONFIRMED, SettlementState.FINALIZED)  # states whose rows carry journal lines


def _lines(engine, settlement_id: int) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).where(JournalLine.settlement_id == settlement_id)).one()[0]


def test_every_transition_has_its_named_method_and_a_row_in_the_table():
    assert set(NAMED) == set(Transition) == set(TRANSITIONS)


@pytest.mark.parametrize(("transition", "state"), CASES, ids=[f"{t.value}-from-{s.value}" for t, s in CASES])
def test_a_transition_moves_a_row_only_from_its_source_states(engine, transition, state):
    create_schema(engine)
    repository = SettlementRepository(engine)
    row = settlement(value=1_000)
    row.state = (SettlementState.SUBMITTED if state in BOOKED else state).value
    row.gas_used, row.effective_gas_price, row.signer = 21_000, 2, SIGNER  # so a reversal has lines to undo
    created = record(engine, row)
    if state in BOOKED:
        _reach_booked_state(repository, created.id, state)
    lines_before = _lines(engine, created.id)
    before = repository.get(created.id)

    sources, target = TRANSITIONS[transition]
    moved = NAMED[transition](engine, created.id)
    after = repository.get(created.id)

    assert moved is (state in sources)
    if not moved:
        assert after.state == state and after.updated_at == before.updated_at
        assert _lines(engine, created.id) == lines_before
        return
    assert after.state == target
    assert getattr(after, STATE_STAMPS[target]) is not None and after.updated_at >= before.updated_at
    if transition is Transition.CONFIRM:
        assert _lines(engine, created.id) == 4  # payment and network fee, each a debit and a credit
    elif transition is Transition.REVERSE:
        assert _lines(engine, created.id) == 2 * lines_before  # each line and its reversal
    else:
        assert _lines(engine, created.id) == lines_before


def _reach_booked_state(repository: SettlementRepository, settlement_id: int, state: SettlementState) -> None:
    """Take a row recorded as submitted to ``state`` (confirmed or finalized) the way the service does, so
    it has the journal lines its confirmation books: lines are only ever booked by the repository."""
    assert repository.mark_confirmed(settlement_id, block_number=11, gas_used=21_000, effective_gas_price=2)
    if state is SettlementState.FINALIZED:
        assert repository.mark_finalized(settlement_id)
