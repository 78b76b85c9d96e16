"""Settlement listing: filters and cursor pagination that visits every row exactly once."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from app.db.schema import create_schema
from app.ledger.schemas import SettlementOut
from app.ledger.settlements import (
    MAX_LIMIT,
    SettlementFilters,
    SettlementQuery,
    SettlementQueryError,
    decode_cursor,
    encode_cursor,
)
from app.settlement.models import Settlement
from tests.ledger.builders import PAYER, confirm, fail, record, settlement

OTHER_PAYER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


@pytest.fixture
def ledger(engine):
    create_schema(engine)
    for index in range(23):
        row = settlement(value=index, agent_id=f"a{index % 3}", team="blue" if index % 2 else "red",
                         capability_id=f"cap{index % 4}", payer=OTHER_PAYER if index % 5 == 0 else PAYER)
        if index % 7 == 0:
            fail(engine, row)
        elif index % 3 == 0:
            record(engine, row)
        else:
            confirm(engine, row)
    return engine


def _all_pages(query: SettlementQuery, filters: SettlementFilters, limit: int) -> list[list[Settlement]]:
    pages, cursor = [], None
    while True:
        page = query.page(filters, cursor=cursor, limit=limit)
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 5, 23, 100])
def test_pages_visit_every_row_once_in_id_order(ledger, limit):
    pages = _all_pages(SettlementQuery(ledger), SettlementFilters(), limit)
    ids = [row.id for page in pages for row in page]
    assert len(ids) == 23 and ids == sorted(set(ids))
    assert all(len(page) <= limit for page in pages)
    assert all(pages)  # no empty trailing page: the cursor is null as soon as nothing follows


def test_filtered_pages_visit_exactly_the_matching_rows(ledger):
    filters = SettlementFilters(team="blue", state="confirmed")
    ids = [row.id for page in _all_pages(SettlementQuery(ledger), filters, 2) for row in page]
    with Session(ledger) as session:
        everything = list(session.exec(select(Settlement).order_by(Settlement.id)).scalars())
    assert ids == [row.id for row in everything if row.team == "blue" and row.state == "confirmed"]
    assert ids


def test_each_filter(ledger):
    query = SettlementQuery(ledger)
    with Session(ledger) as session:
        everything = list(session.exec(select(Settlement).order_by(Settlement.id)).scalars())

    def ids(**filters):
        return [row.id for row in query.page(SettlementFilters(**filters), limit=MAX_LIMIT).items]

    assert ids(agent_id="a1") == [r.id for r in everything if r.agent_id == "a1"]
    assert ids(capability_id="cap2") == [r.id for r in everything if r.capability_id == "cap2"]
    assert ids(provider="prov-1") == [r.id for r in everything]
    assert ids(state="failed") == [r.id for r in everything if r.state == "failed"]
    assert ids(network="eip155:1") == []
    assert ids(payer=OTHER_PAYER.lower()) == [r.id for r in everything if r.payer == OTHER_PAYER]


def test_created_window(ledger):
    base = datetime(2026, 3, 1, tzinfo=UTC)
    with Session(ledger) as session:
        for settlement_id in range(1, 24):
            session.exec(update(Settlement).where(Settlement.id == settlement_id)
                         .values(created_at=base + timedelta(hours=settlement_id)))
        session.commit()
    page = SettlementQuery(ledger).page(SettlementFilters(created_from=base + timedelta(hours=5),
                                                          created_to=datetime(2026, 3, 1, 8)))
    assert [row.id for row in page.items] == [5, 6, 7]


def test_cursor_is_opaque_base64_of_the_last_id():
    assert decode_cursor(encode_cursor(12345)) == 12345
    assert "12345" not in encode_cursor(12345)


@pytest.mark.parametrize("cursor", ["!!!", base64.urlsafe_b64encode(b"42").decode(), "czE6LTE"])
def test_a_foreign_cursor_is_refused(ledger, cursor):
    with pytest.raises(SettlementQueryError, match="cursor"):
        SettlementQuery(ledger).page(SettlementFilters(), cursor=cursor)


@pytest.mark.parametrize(
    ("filters", "limit", "message"),
    [
        (SettlementFilters(), 0, "limit"),
        (SettlementFilters(), MAX_LIMIT + 1, "limit"),
        (SettlementFilters(state="settled"), 10, "state"),
        (SettlementFilters(payer="0x123"), 10, "payer"),
    ],
)
def test_bad_parameters_are_named(ledger, filters, limit, message):
    with pytest.raises(SettlementQueryError, match=message):
        SettlementQuery(ledger).page(filters, limit=limit)


def test_json_view_keeps_big_values_exact(engine):
    create_schema(engine)
    row = confirm(engine, settlement(value=2**256 - 1), gas_used=21_000, gas_price=2**200)
    item = SettlementOut.of(SettlementQuery(engine).page(SettlementFilters()).items[0]).model_dump(mode="json")
    assert item["id"] == row.id
    assert item["value"] == str(2**256 - 1)
    assert item["effectiveGasPrice"] == str(2**200)
    assert item["state"] == "confirmed" and item["confirmedAt"].endswith("Z")
    assert "signature" not in item and "rawTransaction" not in item
