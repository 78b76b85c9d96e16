"""Finance exports: journal lines or attribution rollups, streamed as CSV, JSON Lines or Parquet.

The column schema is versioned (:data:`EXPORT_SCHEMA_VERSION`) and documented in
``docs/export-schema.md``, which :func:`schema_markdown` renders (a test keeps the two equal).
Amounts appear twice, side by side: the integer count of atomic units as a decimal string, and the
exact decimal amount in the token's unit, computed with integer arithmetic (never float).

Rows are read from a streaming cursor (a server-side cursor on PostgreSQL) and written out in
chunks, so memory stays flat however many lines the ledger holds. This module holds the only SQL
of the journal export.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.engine import Engine

from app.config import NetworkConfig, Settings, known_networks
from app.db.clock import as_utc, wire_time
from app.ledger.attribution import (
    AttributionQueryError,
    AttributionRow,
    Bucket,
    GroupBy,
    attribution,
    check_window,
    parse_bucket,
    parse_group_by,
    parse_states,
)
from app.ledger.repository import LedgerRepository
from app.settlement.models import NATIVE_ASSET, SettlementState

EXPORT_SCHEMA_VERSION = "1"
NATIVE_DECIMALS = 18
DEFAULT_NATIVE_SYMBOL = "ETH"
# The gas currency of the known networks whose native asset is not ether.
NATIVE_SYMBOLS: dict[str, str] = {"eip155:137": "POL", "eip155:43114": "AVAX", "eip155:43113": "AVAX"}
ROW_GROUP_SIZE = 50_000  # Parquet rows per row group
FETCH_ROWS = 5_000  # rows per round trip of the streaming cursor
_ARROW_BATCH_ROWS = 5_000  # Python rows turned into a compact Arrow batch at a time
_TEXT_CHUNK_ROWS = 2_000  # CSV / JSON Lines rows per yielded chunk


class ExportKind(StrEnum):
    JOURNAL = "journal"
    ROLLUP = "rollup"


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


MEDIA_TYPES: dict[ExportFormat, str] = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSONL: "application/x-ndjson",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class ExportColumn:
    name: str
    type: str  # integer | string | timestamp
    description: str


JOURNAL_COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn("line_id", "integer", "Journal line id; unique, increasing in booking order."),
    ExportColumn("settlement_id", "integer", "Id of the settlement the line belongs to."),
    ExportColumn("booked_at", "timestamp", "When the line was booked, UTC."),
    ExportColumn("entry_type", "string", "`payment`, `network_fee` or `reversal`."),
    ExportColumn("account", "string", "Ledger account, e.g. `agent:<agent id>:spend`, `provider:<team>:revenue`."),
    ExportColumn("account_kind", "string",
                 "`agent_spend`, `provider_revenue`, `agent_fees` or `facilitator_gas`."),
    ExportColumn("side", "string", "`debit` or `credit`. Per asset, debits equal credits."),
    ExportColumn("amount_atomic", "string", "Amount in atomic units of the asset, as an integer in decimal digits."),
    ExportColumn("amount", "string",
                 "Exact decimal amount in the asset's unit, with all of its decimals (USDC 6, native 18); "
                 "empty when the asset's decimals are not configured."),
    ExportColumn("asset", "string", "Token contract address (checksummed), or `native` for the chain's gas currency."),
    ExportColumn("asset_symbol", "string", "Token symbol from the networks configuration, e.g. `USDC`, `ETH`; "
                 "empty when unknown."),
    ExportColumn("network", "string", "CAIP-2 network id, e.g. `eip155:84532`."),
    ExportColumn("agent_id", "string", "Paying agent, or `unregistered`."),
    ExportColumn("team", "string", "Team of the agent when the line was booked."),
    ExportColumn("cost_center", "string", "Cost centre of the agent when the line was booked."),
    ExportColumn("capability_id", "string", "Capability paid for, or `unregistered`."),
    ExportColumn("provider", "string", "Provider team of the capability, or `unregistered`."),
    ExportColumn("tx_hash", "string", "Settlement transaction hash; empty if none."),
    ExportColumn("payer", "string", "Payer wallet (checksummed)."),
    ExportColumn("payee", "string", "Payee wallet (checksummed)."),
    ExportColumn("reverses_line_id", "integer", "For a reversal, the id of the line it cancels; empty otherwise."),
    ExportColumn("schema_version", "string", "Version of this column schema."),
)

ROLLUP_COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn("bucket", "timestamp", "Start of the time bucket (hour, day or month), UTC."),
    ExportColumn("group_by", "string", "`agent`, `team`, `cost_center`, `capability` or `provider`."),
    ExportColumn("group", "string", "The agent id, team, cost centre, capability id or provider team."),
    ExportColumn("asset", "string", "Payment token address (checksummed)."),
    ExportColumn("asset_symbol", "string", "Token symbol, e.g. `USDC`; empty when unknown."),
    ExportColumn("amount_atomic", "string",
                 "Net spend in atomic units (payments minus reversals booked in the bucket); may be negative."),
    ExportColumn("amount", "string", "The same, as an exact decimal in the token's unit; empty when decimals "
                 "are unknown."),
    ExportColumn("count", "integer", "Settlements with net spend: payments minus reversed payments."),
    ExportColumn("fees_atomic", "string", "Net network fees paid to settle them, in wei of the native asset."),
    ExportColumn("fees", "string", "The same, as an exact decimal with 18 decimals."),
    ExportColumn("schema_version", "string", "Version of this column schema."),
)

COLUMNS: dict[ExportKind, tuple[ExportColumn, ...]] = {
    ExportKind.JOURNAL: JOURNAL_COLUMNS,
    ExportKind.ROLLUP: ROLLUP_COLUMNS,
}


class ExportError(ValueError):
    """An export parameter cannot be used; the message says which and why."""


# -- assets and amounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetInfo:
    symbol: str
    decimals: int


def asset_table(networks: Iterable[NetworkConfig], extra: Iterable[tuple[str, str, int]] = ()) -> dict[str, AssetInfo]:
    """Token address (lower case) -> symbol and decimals, from network configurations."""
    table: dict[str, AssetInfo] = {}
    for network in networks:
        for asset in network.assets:
            table[asset.address.lower()] = AssetInfo(asset.symbol, asset.decimals)
    for address, symbol, decimals in extra:
        table[address.lower()] = AssetInfo(symbol, decimals)
    return table


def asset_table_from_settings(settings: Settings) -> dict[str, AssetInfo]:
    """Every known network's tokens plus the configured extra ones (history may name networks not enabled now)."""
    extra = [(asset.address, asset.symbol, asset.decimals) for asset in settings.extra_assets]
    return asset_table(known_networks(settings.networks_file).values(), extra)


def describe_asset(assets: Mapping[str, AssetInfo], network: str, asset: str) -> AssetInfo | None:
    if asset == NATIVE_ASSET:
        return AssetInfo(NATIVE_SYMBOLS.get(network, DEFAULT_NATIVE_SYMBOL), NATIVE_DECIMALS)
    return assets.get(asset.lower())


def format_units(atomic: int, decimals: int) -> str:
    """Exact decimal text of ``atomic / 10**decimals`` with all ``decimals`` places (integer arithmetic)."""
    if decimals < 0:
        raise ValueError("decimals must not be negative")
    sign = "-" if atomic < 0 else ""
    whole, fraction = divmod(abs(atomic), 10**decimals)
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{decimals}d}"


# -- reading --------------------------------------------------------------------------------------


def count_journal_lines(
    engine: Engine, *, start: datetime | None = None, end: datetime | None = None,
    states: Sequence[SettlementState] | None = None,
) -> int:
    """How many lines a journal export with these filters writes (for a progress bar)."""
    return LedgerRepository(engine).count_journal_lines(as_utc(start), as_utc(end), states)


def journal_rows(
    engine: Engine, assets: Mapping[str, AssetInfo], *, start: datetime | None = None, end: datetime | None = None,
    states: Sequence[SettlementState] | None = None, batch: int = FETCH_ROWS,
) -> Iterator[tuple[Any, ...]]:
    """Journal export rows in :data:`JOURNAL_COLUMNS` order, by line id, from a streaming cursor."""
    described: dict[tuple[str, str], AssetInfo | None] = {}
    lines = LedgerRepository(engine).journal_lines(as_utc(start), as_utc(end), states, batch)
    for (line_id, settlement_id, booked_at, entry_type, account, account_kind, side, amount, asset, network,
         agent_id, team, cost_center, capability_id, provider, tx_hash, payer, payee, reverses_id) in lines:
        key = (network, asset)
        info = described[key] if key in described else described.setdefault(
            key, describe_asset(assets, network, asset))
        yield (
            line_id, settlement_id, booked_at, entry_type, account, account_kind, side, str(amount),
            format_units(amount, info.decimals) if info else "", asset, info.symbol if info else "",
            network, agent_id, team, cost_center, capability_id, provider, tx_hash or "", payer, payee,
            reverses_id, EXPORT_SCHEMA_VERSION,
        )


def rollup_rows(
    rows: Iterable[AttributionRow], group_by: GroupBy, assets: Mapping[str, AssetInfo]
) -> Iterator[tuple[Any, ...]]:
    """Attribution rows in :data:`ROLLUP_COLUMNS` order."""
    for row in rows:
        info = assets.get(row.asset.lower())
        yield (
            row.bucket, group_by.value, row.group, row.asset, info.symbol if info else "", str(row.amount),
            format_units(row.amount, info.decimals) if info else "", row.count, str(row.fees),
            format_units(row.fees, NATIVE_DECIMALS), EXPORT_SCHEMA_VERSION,
        )


# -- writing --------------------------------------------------------------------------------------

ProgressCallback = Callable[[int], None]


def _text_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return wire_time(value)
    return str(value)


def csv_chunks(rows: Iterable[Sequence[Any]], columns: Sequence[ExportColumn],
               on_rows: ProgressCallback | None = None) -> Iterator[bytes]:
    """RFC 4180: a header row, CRLF line ends, fields quoted when they hold a comma, quote or line break."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([column.name for column in columns])
    pending = 0
    for row in rows:
        writer.writerow([_text_value(value) for value in row])
        pending += 1
        if pending >= _TEXT_CHUNK_ROWS:
            yield _drain(buffer)
            if on_rows:
                on_rows(pending)
            pending = 0
    yield _drain(buffer)
    if on_rows and pending:
        on_rows(pending)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return wire_time(value)
    return value


def jsonl_chunks(rows: Iterable[Sequence[Any]], columns: Sequence[ExportColumn],
                 on_rows: ProgressCallback | None = None) -> Iterator[bytes]:
    """One JSON object per line (``\\n``); integers as numbers, amounts as strings, missing values as null."""
    names = [column.name for column in columns]
    lines: list[str] = []
    for row in rows:
        lines.append(json.dumps(dict(zip(names, map(_json_value, row), strict=True)), ensure_ascii=False,
                                separators=(",", ":")))
        if len(lines) >= _TEXT_CHUNK_ROWS:
            yield ("\n".join(lines) + "\n").encode()
            if on_rows:
                on_rows(len(lines))
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()
        if on_rows:
            on_rows(len(lines))


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data


class _ChunkSink:
    """A write-only file that hands what was written back as chunks (so Parquet can stream)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def parquet_schema(columns: Sequence[ExportColumn]):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    types = {"integer": pa.int64(), "string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.schema([pa.field(column.name, types[column.type], metadata={"description": column.description})
                      for column in columns],
                     metadata={"x402_export_schema_version": EXPORT_SCHEMA_VERSION})


def parquet_chunks(rows: Iterable[Sequence[Any]], columns: Sequence[ExportColumn],
                   on_rows: ProgressCallback | None = None, row_group_size: int = ROW_GROUP_SIZE) -> Iterator[bytes]:
    """Parquet written one row group at a time; amounts are strings so they stay exact."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(columns)
    sink = _ChunkSink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    step = min(_ARROW_BATCH_ROWS, row_group_size)
    try:
        # Python rows become Arrow batches every few thousand rows (compact); the batches become one
        # row group when they hold ``row_group_size`` rows. Peak: one row group in Arrow memory.
        batches: list[Any] = []
        grouped = 0
        values: list[list[Any]] = [[] for _ in columns]
        pending = 0
        for row in rows:
            for column, value in zip(values, row, strict=True):
                column.append(value)
            pending += 1
            if pending == step or grouped + pending == row_group_size:
                batches.append(pa.record_batch(values, schema=schema))
                grouped += pending
                values, pending = [[] for _ in columns], 0
                if grouped == row_group_size:
                    writer.write_table(pa.Table.from_batches(batches, schema=schema), row_group_size=row_group_size)
                    batches, grouped = [], 0
                    if on_rows:
                        on_rows(row_group_size)
                    yield sink.drain()
        if pending:
            batches.append(pa.record_batch(values, schema=schema))
            grouped += pending
        if grouped:
            writer.write_table(pa.Table.from_batches(batches, schema=schema), row_group_size=row_group_size)
            if on_rows:
                on_rows(grouped)
    finally:
        writer.close()
    yield sink.drain()


WRITERS: dict[ExportFormat, Callable[..., Iterator[bytes]]] = {
    ExportFormat.CSV: csv_chunks,
    ExportFormat.JSONL: jsonl_chunks,
    ExportFormat.PARQUET: parquet_chunks,
}


# -- one export -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    """A validated export: build it with :func:`prepare_export`, then iterate :meth:`chunks`."""

    engine: Engine
    assets: Mapping[str, AssetInfo]
    kind: ExportKind
    format: ExportFormat
    start: datetime | None
    end: datetime | None
    group_by: GroupBy
    bucket: Bucket
    states: tuple[SettlementState, ...] | None

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def columns(self) -> tuple[ExportColumn, ...]:
        return COLUMNS[self.kind]

    def filename(self, now: datetime) -> str:
        stamp = as_utc(now).strftime("%Y%m%dT%H%M%SZ")  # type: ignore[union-attr]
        detail = "" if self.kind is ExportKind.JOURNAL else f"-{self.group_by.value}-{self.bucket.value}"
        return f"x402-ledger-{self.kind.value}{detail}-{stamp}.{self.format.value}"

    def count_rows(self) -> int | None:
        """Rows a journal export will write; None for a rollup (its size is known only once computed)."""
        if self.kind is ExportKind.JOURNAL:
            return count_journal_lines(self.engine, start=self.start, end=self.end, states=self.states)
        return None

    def rows(self) -> Iterator[tuple[Any, ...]]:
        if self.kind is ExportKind.JOURNAL:
            return journal_rows(self.engine, self.assets, start=self.start, end=self.end, states=self.states)
        totals = attribution(self.engine, group_by=self.group_by, bucket=self.bucket, start=self.start,
                             end=self.end, states=self.states)
        return rollup_rows(totals, self.group_by, self.assets)

    def chunks(self, on_rows: ProgressCallback | None = None) -> Iterator[bytes]:
        return WRITERS[self.format](self.rows(), self.columns, on_rows)


def prepare_export(
    engine: Engine, assets: Mapping[str, AssetInfo], *, format: str | ExportFormat = ExportFormat.CSV,
    kind: str | ExportKind = ExportKind.JOURNAL, start: datetime | None = None, end: datetime | None = None,
    group_by: str | GroupBy = GroupBy.AGENT, bucket: str | Bucket = Bucket.DAY,
    states: Sequence[str | SettlementState] | None = None,
) -> ExportRequest:
    """Validate every parameter up front (so an HTTP caller gets a 400, not a broken stream)."""
    try:
        export_format = ExportFormat(format)
    except ValueError:
        raise ExportError(f"format must be one of {', '.join(f.value for f in ExportFormat)}; got {format!r}") from None
    try:
        export_kind = ExportKind(kind)
    except ValueError:
        raise ExportError(f"kind must be one of {', '.join(k.value for k in ExportKind)}; got {kind!r}") from None
    try:
        start, end = check_window(start, end)
        return ExportRequest(
            engine=engine, assets=assets, kind=export_kind, format=export_format, start=start, end=end,
            group_by=parse_group_by(group_by), bucket=parse_bucket(bucket), states=parse_states(states),
        )
    except AttributionQueryError as error:
        raise ExportError(str(error)) from None


def stream_export(engine: Engine, assets: Mapping[str, AssetInfo], *, on_rows: ProgressCallback | None = None,
                  **parameters: Any) -> Iterator[bytes]:
    """Shortcut: :func:`prepare_export` then its chunks."""
    return prepare_export(engine, assets, **parameters).chunks(on_rows)


# -- documentation --------------------------------------------------------------------------------


def schema_markdown() -> str:
    """The text of ``docs/export-schema.md``."""
    lines = [
        "# Ledger export schema",
        "",
        "<!-- Generated from app/ledger/exports.py (schema_markdown); tests/ledger keeps it equal. -->",
        "",
        f"Schema version: **{EXPORT_SCHEMA_VERSION}** (every row carries it in `schema_version`). "
        "A column is only ever added at the end under the same version; renaming, removing or "
        "changing the meaning of one bumps the version.",
        "",
        "Exports: `GET /ledger/export?format=csv|jsonl|parquet&kind=journal|rollup&from=&to=&state=&group_by=&bucket=` "
        "(finance scope) or `x402-settle export --format ... --kind ... --output FILE`.",
        "",
        "Formats:",
        "",
        "- **csv**: RFC 4180, UTF-8, a header row, CRLF line ends; fields holding a comma, a double quote "
        "or a line break are quoted, quotes doubled. Empty field: no value.",
        "- **jsonl**: one JSON object per line (LF); `integer` columns are numbers, the others strings; "
        "no value is `null`.",
        "- **parquet**: `integer` is int64, `string` is UTF-8 string, `timestamp` is timestamp[us, UTC]; "
        "written in row groups of 50,000 rows; each field carries its description in its metadata.",
        "",
        "Types: `timestamp` is ISO-8601 UTC text with microseconds and a `Z` (e.g. "
        "`2026-01-31T23:59:59.000001Z`) in CSV and JSON Lines. Amounts are never floats: `*_atomic` is the "
        "integer count of the asset's atomic units in decimal digits, the amount beside it the exact "
        "decimal value with all of the token's decimals (USDC 6, native gas asset 18).",
        "",
    ]
    for kind, title in ((ExportKind.JOURNAL, "kind=journal: one row per journal line"),
                        (ExportKind.ROLLUP, "kind=rollup: one row per bucket, group and asset")):
        lines += [f"## {title}", "", "| # | column | type | description |", "|---|---|---|---|"]
        lines += [f"| {index} | `{column.name}` | {column.type} | {column.description} |"
                  for index, column in enumerate(COLUMNS[kind], start=1)]
        lines.append("")
    return "\n".join(lines)
