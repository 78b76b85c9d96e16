"""Property: over random settlements, reversals and failures, the books balance and every grouping agrees.

Each example gets a fresh schema (a new SQLite file, or a new PostgreSQL database on the session
cluster), built through the settlement repository exactly as the service books money.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.db.engine import make_engine
from app.db.schema import create_schema
from app.ledger.attribution import attribution
from app.settlement.models import JournalLine
from tests.ledger.builders import confirm, fail, reverse, settlement

AGENTS = {"a1": "blue", "a2": "blue", "a3": "red", "a4": "green", "a5": "red"}  # agent -> team
CAPABILITIES = {"maps": "geo", "search": "web", "ocr": "vision"}  # capability -> provider

_databases = itertools.count(1)

payments = st.lists(
    st.fixed_dictionaries({
        "agent": st.sampled_from(sorted(AGENTS)),
        "capability": st.sampled_from(sorted(CAPABILITIES)),
        "value": st.one_of(st.integers(0, 10**9), st.integers(0, 2**255)),
        "gas_used": st.integers(0, 300_000),
        "gas_price": st.integers(0, 10**12),
        "outcome": st.sampled_from(["confirmed", "confirmed", "reversed", "failed"]),
    }),
    max_size=12,
)


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], AbstractContextManager[Engine]]:
    """A factory of fresh, migrated databases on one backend (one per hypothesis example)."""
    backend = request.param
    cluster = request.getfixturevalue("postgres_cluster") if backend == "postgresql" else None

    @contextmanager
    def new() -> Iterator[Engine]:
        number = next(_databases)
        if cluster is None:
            url = f"sqlite:///{tmp_path / f'ledger-{number}.db'}"
        else:
            url = cluster.create_database(f"property_{os.getpid()}_{number}")
        engine = make_engine(url)
        try:
            create_schema(engine)
            yield engine
        finally:
            engine.dispose()

    return new


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payments=payments)
def test_books_balance_and_groupings_agree(fresh_engine, payments):
    with fresh_engine() as engine:
        expected_amount = expected_count = expected_fees = 0
        for payment in payments:
            row = settlement(value=payment["value"], agent_id=payment["agent"], team=AGENTS[payment["agent"]],
                             cost_center=f"cc-{AGENTS[payment['agent']]}", capability_id=payment["capability"],
                             provider=CAPABILITIES[payment["capability"]])
            if payment["outcome"] == "failed":
                fail(engine, row)
                continue
            confirmed = confirm(engine, row, gas_used=payment["gas_used"], gas_price=payment["gas_price"])
            if payment["outcome"] == "reversed":
                reverse(engine, confirmed.id)
                continue
            expected_amount += payment["value"]
            expected_count += 1
            expected_fees += payment["gas_used"] * payment["gas_price"]

        balances: dict[str, int] = defaultdict(int)
        with Session(engine) as session:
            for line in session.exec(select(JournalLine)).scalars():
                balances[line.asset] += line.amount if line.side == "debit" else -line.amount
        assert all(balance == 0 for balance in balances.values()), balances

        for group_by in ("agent", "team", "capability", "cost_center", "provider"):
            rows = attribution(engine, group_by=group_by, bucket="day")
            assert sum(r.amount for r in rows) == expected_amount, group_by
            assert sum(r.count for r in rows) == expected_count, group_by
            assert sum(r.fees for r in rows) == expected_fees, group_by
