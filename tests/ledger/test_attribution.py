"""Attribution rollups: buckets, windows, state filter, reversals and order, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.db.schema import create_schema
from app.ledger.attribution import AttributionQueryError, AttributionRow, attribution
from app.settlement.models import SettlementState
from tests.ledger.builders import USDC, confirm, fail, reverse, settlement

OTHER_TOKEN = "0x0000000000000000000000000000000000000Abc"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture
def ledger(engine):
    """Four payments over two months, hours and teams; one reversed in a later month; one failure."""
    create_schema(engine)
    confirm(engine, settlement(value=100, agent_id="a1", team="blue", capability_id="maps"),
            gas_used=21_000, gas_price=10, booked_at=at(2026, 1, 5, 10, 15))
    confirm(engine, settlement(value=250, agent_id="a2", team="blue", capability_id="search"),
            gas_used=21_000, gas_price=20, booked_at=at(2026, 1, 5, 10, 59, 59))
    reversed_one = confirm(engine, settlement(value=7, agent_id="a3", team="red", capability_id="maps"),
                           booked_at=at(2026, 1, 5, 11, 0))
    confirm(engine, settlement(value=2**255, agent_id="a3", team="red", capability_id="maps"),
            gas_used=50_000, gas_price=3, booked_at=at(2026, 2, 1, 0, 0))
    confirm(engine, settlement(value=1, agent_id="a1", team="blue", capability_id="maps", asset=OTHER_TOKEN),
            booked_at=at(2026, 1, 6, 0, 0))
    reverse(engine, reversed_one.id, booked_at=at(2026, 2, 3, 12, 0))
    fail(engine, settlement(value=999, agent_id="a1", team="blue"))
    return engine


def test_by_team_per_month_nets_reversals_in_the_month_they_are_booked(ledger):
    rows = attribution(ledger, group_by="team", bucket="month")
    assert rows == [
        AttributionRow(at(2026, 1, 1), "blue", OTHER_TOKEN, 1, 1, 0),
        AttributionRow(at(2026, 1, 1), "blue", USDC, 350, 2, 21_000 * 30),
        AttributionRow(at(2026, 1, 1), "red", USDC, 7, 1, 0),
        AttributionRow(at(2026, 2, 1), "red", USDC, 2**255 - 7, 0, 150_000),
    ]


def test_by_agent_per_hour(ledger):
    rows = attribution(ledger, group_by="agent", bucket="hour", end=at(2026, 2, 1))
    assert [(r.bucket, r.group, r.asset, r.amount, r.count, r.fees) for r in rows] == [
        (at(2026, 1, 5, 10), "a1", USDC, 100, 1, 210_000),
        (at(2026, 1, 5, 10), "a2", USDC, 250, 1, 420_000),
        (at(2026, 1, 5, 11), "a3", USDC, 7, 1, 0),
        (at(2026, 1, 6, 0), "a1", OTHER_TOKEN, 1, 1, 0),
    ]


def test_by_capability_per_day_with_a_window(ledger):
    rows = attribution(ledger, group_by="capability", bucket="day", start=at(2026, 1, 5, 11), end=at(2026, 2, 2))
    assert [(r.bucket, r.group, r.asset, r.amount, r.count) for r in rows] == [
        (at(2026, 1, 5), "maps", USDC, 7, 1),
        (at(2026, 1, 6), "maps", OTHER_TOKEN, 1, 1),
        (at(2026, 2, 1), "maps", USDC, 2**255, 1),
    ]


def test_window_bounds_are_inclusive_start_exclusive_end(ledger):
    rows = attribution(ledger, group_by="team", bucket="hour", start=at(2026, 1, 5, 10, 59, 59),
                       end=at(2026, 1, 5, 11))
    assert [(r.group, r.amount) for r in rows] == [("blue", 250)]


def test_naive_times_are_taken_as_utc(ledger):
    naive = attribution(ledger, group_by="team", bucket="day", start=datetime(2026, 2, 1), end=datetime(2026, 3, 1))
    aware = attribution(ledger, group_by="team", bucket="day", start=at(2026, 2, 1), end=at(2026, 3, 1))
    assert naive == aware and len(aware) == 2


def test_state_filter_follows_the_settlement(ledger):
    confirmed = attribution(ledger, group_by="provider", bucket="month", states=[SettlementState.CONFIRMED])
    assert sum(r.amount for r in confirmed) == 350 + 1 + 2**255
    failed = attribution(ledger, group_by="provider", bucket="month", states=["failed"])
    assert [(r.bucket, r.amount, r.count) for r in failed] == [(at(2026, 1, 1), 7, 1), (at(2026, 2, 1), -7, -1)]
    assert attribution(ledger, group_by="provider", bucket="month", states=["finalized"]) == []


def test_totals_agree_across_groupings(ledger):
    totals = {
        group_by: sum(r.amount for r in attribution(ledger, group_by=group_by, bucket="day"))
        for group_by in ("agent", "team", "cost_center", "capability", "provider")
    }
    assert set(totals.values()) == {350 + 1 + 2**255}


def test_order_is_stable_bucket_group_asset(ledger):
    rows = attribution(ledger, group_by="agent", bucket="day")
    keys = [(r.bucket, r.group, r.asset) for r in rows]
    assert keys == sorted(keys)
    assert rows == attribution(ledger, group_by="agent", bucket="day")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"group_by": "bogus", "bucket": "day"}, "group_by must be one of"),
        ({"group_by": "team", "bucket": "week"}, "bucket must be one of"),
        ({"group_by": "team", "bucket": "day", "states": ["settled"]}, "state must be one of"),
        ({"group_by": "team", "bucket": "day", "start": at(2026, 2, 1), "end": at(2026, 1, 1)}, "before"),
    ],
)
def test_bad_parameters_are_named(engine, parameters, message):
    with pytest.raises(AttributionQueryError, match=message):
        attribution(engine, **parameters)
