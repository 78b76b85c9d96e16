"""SQL for finance's reads of the ledger: attribution sums, journal export lines, settlement pages, and the
journal as a hash chain (for ``x402-settle ledger verify`` and reconciliation).

Read-only, and the only SQL of the ledger package: attribution, exports, settlement queries and the
journal checks shape what these methods return.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Numeric, and_, case, cast, func, literal, select, text
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from app.db.engine import read_snapshot
from app.settlement.models import (
    JOURNAL_HEAD_ID,
    EntryType,
    JournalHead,
    JournalLine,
    Settlement,
    SettlementState,
    Side,
)

SPEND = "agent_spend"  # the account kind of an agent's spend
FEES = "agent_fees"  # the account kind of the network fees booked to an agent
STREAM_BATCH = 10_000  # rows per round trip of a streaming cursor
_SLICE = 400  # ids per IN (...): both backends cap the number of bound parameters
_LINE_COLUMNS = tuple(JournalLine.__table__.columns)


def _attribution_filters(
    start: datetime | None, end: datetime | None, states: Sequence[SettlementState] | None
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [JournalLine.account_kind.in_([SPEND, FEES])]
    return filters + _window_and_states(start, end, states)


def _window_and_states(
    start: datetime | None, end: datetime | None, states: Sequence[SettlementState] | None
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if start is not None:
        filters.append(JournalLine.booked_at >= start)
    if end is not None:
        filters.append(JournalLine.booked_at < end)
    if states:
        filters.append(Settlement.state.in_([s.value for s in states]))
    return filters


def _journal_statement(start: datetime | None, end: datetime | None, states: Sequence[SettlementState] | None
                       ) -> Any:
    return (
        select(
            JournalLine.id, JournalLine.settlement_id, JournalLine.booked_at, JournalLine.entry_type,
            JournalLine.account, JournalLine.account_kind, JournalLine.side, JournalLine.amount,
            JournalLine.asset, JournalLine.network, JournalLine.agent_id, JournalLine.team,
            JournalLine.cost_center, JournalLine.capability_id, JournalLine.provider,
            Settlement.tx_hash, Settlement.payer, Settlement.payee, JournalLine.reverses_id,
        )
        .select_from(JournalLine)
        .join(Settlement, Settlement.id == JournalLine.settlement_id)
        .where(*_window_and_states(start, end, states))
    )


class LedgerRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def sums_exactly(self) -> bool:
        """Whether the database adds uint256 amounts exactly (PostgreSQL's NUMERIC; SQLite's SUM is a float)."""
        return self._engine.dialect.name == "postgresql"

    # -------------------------------------------------------------------------------- attribution

    def attribution_sums(
        self, group_column: str, bucket: str, start: datetime | None, end: datetime | None,
        states: Sequence[SettlementState] | None,
    ) -> list[Row[Any]]:
        """(bucket start, group, asset, net spend, settlement count, net fees) per group, summed by the
        server in one pass. Only where :attr:`sums_exactly`."""
        numeric = Numeric(precision=None, scale=0, asdecimal=True)
        amount = cast(JournalLine.amount, numeric)
        is_spend = JournalLine.account_kind == SPEND
        is_fee = JournalLine.account_kind == FEES
        is_debit = JournalLine.side == Side.DEBIT.value
        zero = cast(literal(0), numeric)
        bucket_column = func.date_trunc(bucket, func.timezone("UTC", JournalLine.booked_at)).label("bucket")
        group = getattr(JournalLine, group_column).label("grp")
        statement = (
            select(
                bucket_column,
                group,
                Settlement.asset,
                func.sum(case((and_(is_spend, is_debit), amount), (is_spend, -amount), else_=zero)),
                func.sum(case(
                    (and_(is_spend, is_debit, JournalLine.entry_type == EntryType.PAYMENT.value), 1),
                    (and_(is_spend, JournalLine.entry_type == EntryType.REVERSAL.value, ~is_debit), -1),
                    else_=0,
                )),
                func.sum(case((and_(is_fee, is_debit), amount), (is_fee, -amount), else_=zero)),
            )
            .select_from(JournalLine)
            .join(Settlement, Settlement.id == JournalLine.settlement_id)
            .where(*_attribution_filters(start, end, states))
            .group_by(bucket_column, group, Settlement.asset)
        )
        with self._engine.begin() as connection:
            # JIT compilation costs more (~0.5 s) than it saves on this one-pass aggregate.
            connection.execute(text("SET LOCAL jit = off"))
            return list(connection.execute(statement).all())

    def attribution_lines(
        self, group_column: str, start: datetime | None, end: datetime | None,
        states: Sequence[SettlementState] | None,
    ) -> Iterator[tuple[datetime, str, str, str, str, str, int]]:
        """(booked at, group, asset, account kind, side, entry type, amount) of every spend and fee line,
        streamed, for adding up in Python."""
        statement = (
            select(
                JournalLine.booked_at,
                getattr(JournalLine, group_column),
                Settlement.asset,
                JournalLine.account_kind,
                JournalLine.side,
                JournalLine.entry_type,
                JournalLine.amount,
            )
            .select_from(JournalLine)
            .join(Settlement, Settlement.id == JournalLine.settlement_id)
            .where(*_attribution_filters(start, end, states))
        )
        with self._engine.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=STREAM_BATCH).execute(statement)
            for row in result:
                yield tuple(row)  # type: ignore[misc]

    # ----------------------------------------------------------------------------------- journal

    def count_journal_lines(self, start: datetime | None, end: datetime | None,
                            states: Sequence[SettlementState] | None) -> int:
        inner = _journal_statement(start, end, states).subquery()
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(inner)).scalar_one())

    def journal_lines(self, start: datetime | None, end: datetime | None,
                      states: Sequence[SettlementState] | None, batch: int) -> Iterator[Row[Any]]:
        """Each line with its settlement's transaction hash, payer and payee, by line id, streamed."""
        statement = _journal_statement(start, end, states).order_by(JournalLine.id)
        with self._engine.connect() as connection:
            yield from connection.execution_options(stream_results=True, yield_per=batch).execute(statement)

    # ------------------------------------------------------------------------------- settlements

    def settlements_page(self, equal: dict[str, object], created_from: datetime | None,
                         created_to: datetime | None, after_id: int | None, limit: int) -> list[Settlement]:
        """Up to ``limit`` settlements by id after ``after_id``, whose columns equal ``equal``."""
        statement = select(Settlement)
        for column, value in equal.items():
            statement = statement.where(getattr(Settlement, column) == value)
        if created_from is not None:
            statement = statement.where(Settlement.created_at >= created_from)
        if created_to is not None:
            statement = statement.where(Settlement.created_at < created_to)
        if after_id is not None:
            statement = statement.where(Settlement.id > after_id)
        statement = statement.order_by(Settlement.id).limit(limit)
        with Session(self._engine) as session:
            return list(session.exec(statement).scalars())

    # ---------------------------------------------------------------------------- journal chain

    @contextmanager
    def journal_snapshot(self) -> Iterator[JournalSnapshot]:
        """Reads of the journal (and its settlements) that all see one moment of the database."""
        with read_snapshot(self._engine) as connection:
            yield JournalSnapshot(connection)


@dataclass(frozen=True)
class JournalHeadRow:
    last_line_id: int | None
    chain_hash: str


def _slices(values: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(set(values))
    for offset in range(0, len(ordered), _SLICE):
        yield ordered[offset:offset + _SLICE]


class JournalSnapshot:
    """The journal's head and lines, read in one transaction (``read_snapshot``), so a booking that commits
    meanwhile is either wholly seen or not at all. Lines come back as rows with the journal's column names,
    which is what ``app.settlement.journal.walk_chain`` reads."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def head(self) -> JournalHeadRow | None:
        """The journal head; None when the table has no row (a database not migrated as it should be)."""
        statement = select(JournalHead.last_line_id, JournalHead.chain_hash).where(JournalHead.id == JOURNAL_HEAD_ID)
        row = self._connection.execute(statement).one_or_none()
        return None if row is None else JournalHeadRow(row.last_line_id, row.chain_hash)

    def lines(self, *, first_id: int | None = None, last_id: int | None = None,
              batch: int = STREAM_BATCH) -> Iterator[Row[Any]]:
        """Lines in id (chain) order, between ``first_id`` and ``last_id`` inclusive, streamed ``batch``
        rows per round trip so a walk over millions holds only one batch."""
        statement = select(*_LINE_COLUMNS).order_by(JournalLine.id)
        if first_id is not None:
            statement = statement.where(JournalLine.id >= first_id)
        if last_id is not None:
            statement = statement.where(JournalLine.id <= last_id)
        streamed = self._connection.execution_options(stream_results=True, yield_per=batch)
        yield from streamed.execute(statement)

    def chain_hash_before(self, line_id: int) -> str | None:
        """The chain hash of the line just before ``line_id``; None when it is the first line."""
        statement = (select(JournalLine.chain_hash).where(JournalLine.id < line_id)
                     .order_by(JournalLine.id.desc()).limit(1))
        return self._connection.execute(statement).scalar_one_or_none()

    def line_after(self, line_id: int) -> Row[Any] | None:
        """The line just after ``line_id``; None when it is the last."""
        statement = select(*_LINE_COLUMNS).where(JournalLine.id > line_id).order_by(JournalLine.id).limit(1)
        return self._connection.execute(statement).one_or_none()

    def lines_of(self, settlement_ids: Iterable[int]) -> list[Row[Any]]:
        """Every line of these settlements, in id order."""
        found: list[Row[Any]] = []
        for part in _slices(settlement_ids):
            statement = select(*_LINE_COLUMNS).where(JournalLine.settlement_id.in_(part))
            found += self._connection.execute(statement).all()
        return sorted(found, key=lambda line: line.id)

    def settlements(self, settlement_ids: Iterable[int]) -> list[Settlement]:
        """These settlements as the snapshot sees them, by id."""
        found: list[Settlement] = []
        for part in _slices(settlement_ids):
            rows = self._connection.execute(select(*Settlement.__table__.columns).where(Settlement.id.in_(part)))
            found += [Settlement(**row._mapping) for row in rows]
        return sorted(found, key=lambda row: row.id or 0)
