"""Exports: CSV (RFC 4180), JSON Lines and Parquet read back to the same rows and exact totals."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from app.config import Settings
from app.db.schema import create_schema
from app.ledger.attribution import attribution
from app.ledger.exports import (
    EXPORT_SCHEMA_VERSION,
    JOURNAL_COLUMNS,
    ROLLUP_COLUMNS,
    AssetInfo,
    ExportError,
    asset_table_from_settings,
    format_units,
    prepare_export,
    schema_markdown,
    stream_export,
)
from tests.ledger.builders import USDC, confirm, fail, reverse, settlement

DOC = Path(__file__).resolve().parents[2] / "docs" / "export-schema.md"
NIGHT_SHIFT = 'ops, "night"\nshift'
ASSETS = {USDC.lower(): AssetInfo("USDC", 6)}
HUGE = 2**255


@pytest.fixture
def ledger(engine):
    create_schema(engine)
    confirm(engine, settlement(value=HUGE, agent_id="a1", team=NIGHT_SHIFT), gas_used=21_000, gas_price=10**9)
    reversed_one = confirm(engine, settlement(value=1_500_000, agent_id="a2", team="blue"), gas_used=1, gas_price=7)
    confirm(engine, settlement(value=1, agent_id="a2", team="blue", capability_id="résumé"))
    reverse(engine, reversed_one.id)
    fail(engine, settlement(value=5, agent_id="a2", team="blue"))
    return engine


def _bytes(engine, **parameters) -> bytes:
    return b"".join(stream_export(engine, ASSETS, **parameters))


def _net_spend(rows) -> int:
    total = 0
    for row in rows:
        if row["account_kind"] == "agent_spend":
            total += int(row["amount_atomic"]) * (1 if row["side"] == "debit" else -1)
    return total


def test_schema_doc_matches_the_code():
    assert DOC.read_text() == schema_markdown(), "regenerate docs/export-schema.md from exports.schema_markdown()"
    for column in (*JOURNAL_COLUMNS, *ROLLUP_COLUMNS):
        assert f"`{column.name}`" in DOC.read_text()


@pytest.mark.parametrize(
    ("atomic", "decimals", "text"),
    [(0, 6, "0.000000"), (1, 6, "0.000001"), (1_500_000, 6, "1.500000"), (-7, 6, "-0.000007"), (42, 0, "42"),
     (HUGE, 6, f"{HUGE // 10**6}.{HUGE % 10**6:06d}"), (10**18, 18, "1.000000000000000000")],
)
def test_format_units_is_exact(atomic, decimals, text):
    assert format_units(atomic, decimals) == text


def test_csv_is_rfc4180_and_parses_back(ledger):
    data = _bytes(ledger, format="csv", kind="journal")
    text = data.decode()
    assert text.startswith(",".join(c.name for c in JOURNAL_COLUMNS) + "\r\n")
    assert '"ops, ""night""\nshift"' in text  # quoted, quotes doubled, the newline kept inside the field
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 2 * 3 + 2 * 2 + 4  # three payments, two with a fee pair, four reversal lines
    assert {row["team"] for row in rows} == {NIGHT_SHIFT, "blue"}
    assert [int(row["line_id"]) for row in rows] == sorted(int(row["line_id"]) for row in rows)
    assert _net_spend(rows) == HUGE + 1
    huge = next(row for row in rows if row["amount_atomic"] == str(HUGE))
    assert huge["amount"] == format_units(HUGE, 6) and huge["asset_symbol"] == "USDC"
    fee = next(row for row in rows if row["account_kind"] == "agent_fees" and row["team"] == NIGHT_SHIFT)
    assert (fee["asset"], fee["asset_symbol"], fee["amount"]) == ("native", "ETH", "0.000021000000000000")
    assert {row["schema_version"] for row in rows} == {EXPORT_SCHEMA_VERSION}
    reversal = next(row for row in rows if row["entry_type"] == "reversal")
    assert reversal["reverses_line_id"] and reversal["booked_at"].endswith("Z")
    assert all(row["reverses_line_id"] == "" for row in rows if row["entry_type"] != "reversal")
    assert all(row["tx_hash"].startswith("0x") and row["payer"] for row in rows)


def test_jsonl_parses_to_the_same_rows_as_csv(ledger):
    csv_rows = list(csv.DictReader(io.StringIO(_bytes(ledger, format="csv").decode(), newline="")))
    lines = _bytes(ledger, format="jsonl").decode().splitlines()
    objects = [json.loads(line) for line in lines]
    assert len(objects) == len(csv_rows)
    assert [list(o) for o in objects] == [[c.name for c in JOURNAL_COLUMNS]] * len(objects)
    as_text = [{k: "" if v is None else str(v) for k, v in o.items()} for o in objects]
    assert as_text == csv_rows
    assert isinstance(objects[0]["line_id"], int) and isinstance(objects[0]["amount_atomic"], str)


def test_parquet_reads_back_to_the_same_totals(ledger, tmp_path):
    path = tmp_path / "journal.parquet"
    path.write_bytes(_bytes(ledger, format="parquet"))
    table = pq.read_table(path)
    assert table.schema.names == [c.name for c in JOURNAL_COLUMNS]
    assert table.schema.metadata[b"x402_export_schema_version"] == EXPORT_SCHEMA_VERSION.encode()
    rows = table.to_pylist()
    assert _net_spend(rows) == HUGE + 1
    assert rows[0]["booked_at"].tzinfo is not None
    assert {row["team"] for row in rows} == {NIGHT_SHIFT, "blue"}


def test_parquet_streams_in_row_groups(ledger, tmp_path):
    request = prepare_export(ledger, ASSETS, format="parquet")
    from app.ledger import exports

    chunks = list(exports.parquet_chunks(request.rows(), request.columns, row_group_size=4))
    assert len(chunks) >= 3  # one chunk per row group, then the footer
    path = tmp_path / "groups.parquet"
    path.write_bytes(b"".join(chunks))
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == 14 and metadata.num_row_groups == 4


def test_empty_exports_are_valid_files(engine, tmp_path):
    create_schema(engine)
    assert _bytes(engine, format="csv").decode() == ",".join(c.name for c in JOURNAL_COLUMNS) + "\r\n"
    assert _bytes(engine, format="jsonl") == b""
    path = tmp_path / "empty.parquet"
    path.write_bytes(_bytes(engine, format="parquet"))
    assert pq.read_table(path).num_rows == 0


@pytest.mark.parametrize("export_format", ["csv", "jsonl", "parquet"])
def test_rollup_equals_attribution(ledger, tmp_path, export_format):
    data = _bytes(ledger, format=export_format, kind="rollup", group_by="team", bucket="month")
    if export_format == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    elif export_format == "jsonl":
        rows = [json.loads(line) for line in data.decode().splitlines()]
    else:
        (tmp_path / "r.parquet").write_bytes(data)
        rows = pq.read_table(tmp_path / "r.parquet").to_pylist()
    expected = attribution(ledger, group_by="team", bucket="month")
    assert [(r["group"], int(r["amount_atomic"]), int(r["count"]), int(r["fees_atomic"])) for r in rows] == [
        (e.group, e.amount, e.count, e.fees) for e in expected
    ]
    assert {r["group_by"] for r in rows} == {"team"}
    assert sum(int(r["amount_atomic"]) for r in rows) == HUGE + 1
    night = next(r for r in rows if r["group"] == NIGHT_SHIFT)
    assert night["amount"] == format_units(HUGE, 6) and night["fees"] == "0.000021000000000000"


def test_window_and_state_filters(ledger):
    future = datetime(2100, 1, 1, tzinfo=UTC)
    assert _bytes(ledger, format="jsonl", start=future) == b""
    failed = [json.loads(line) for line in _bytes(ledger, format="jsonl", states=["failed"]).decode().splitlines()]
    assert {row["agent_id"] for row in failed} == {"a2"} and len(failed) == 8


def test_assets_from_settings_cover_known_networks_and_extras(tmp_path):
    settings = Settings(data_dir=tmp_path, extra_assets=[
        {"network": "eip155:84532", "address": "0x00000000000000000000000000000000000000Ee", "symbol": "EURC",
         "name": "EURC", "version": "2", "decimals": 6},
    ])
    table = asset_table_from_settings(settings)
    assert table[USDC.lower()] == AssetInfo("USDC", 6)
    assert table["0x00000000000000000000000000000000000000ee"] == AssetInfo("EURC", 6)
    assert table["0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"].symbol == "USDC"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [({"format": "xlsx"}, "format"), ({"kind": "ledger"}, "kind"), ({"group_by": "x"}, "group_by"),
     ({"bucket": "year"}, "bucket"), ({"states": ["nope"]}, "state")],
)
def test_bad_parameters_are_refused_before_streaming(engine, parameters, message):
    with pytest.raises(ExportError, match=message):
        prepare_export(engine, ASSETS, **parameters)
