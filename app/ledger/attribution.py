"""Cost attribution from the journal: net spend, settlement count and network fees per group and time bucket.

- ``amount``: net agent spend in the payment token's atomic units: debits minus credits on the
  ``agent_spend`` accounts, so a reversal subtracts in the bucket it was booked in (a bucket may be
  negative when a payment of an earlier bucket is reversed in it).
- ``count``: settlements with net spend: payment debits minus reversed payment debits.
- ``fees``: net ``agent_fees`` (wei of the chain's native asset) of the same settlements.
- ``asset``: the payment token of the settlement (fee lines are booked in the native asset, but are
  reported on the row of the token they settled).

PostgreSQL answers with one ``GROUP BY`` (``date_trunc`` and ``SUM`` over NUMERIC in the server).
SQLite cannot add 78-digit TEXT exactly, so there the matching lines are streamed and added in Python.
The SQL for both is in :class:`app.ledger.repository.LedgerRepository`.
Both give the same rows in the same order: bucket, then group, then asset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy.engine import Engine

from app.db.clock import as_utc
from app.ledger.repository import SPEND, LedgerRepository
from app.settlement.models import EntryType, SettlementState, Side


class GroupBy(StrEnum):
    AGENT = "agent"
    TEAM = "team"
    COST_CENTER = "cost_center"
    CAPABILITY = "capability"
    PROVIDER = "provider"


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


GROUP_COLUMNS: dict[GroupBy, str] = {
    GroupBy.AGENT: "agent_id",
    GroupBy.TEAM: "team",
    GroupBy.COST_CENTER: "cost_center",
    GroupBy.CAPABILITY: "capability_id",
    GroupBy.PROVIDER: "provider",
}


class AttributionQueryError(ValueError):
    """A parameter of an attribution read is not valid; the message says which and why."""


@dataclass(frozen=True)
class AttributionRow:
    bucket: datetime  # start of the bucket, UTC
    group: str
    asset: str
    amount: int  # net spend, atomic units of ``asset`` (may be negative in a bucket holding reversals)
    count: int  # settlements with net spend
    fees: int  # net network fees, wei of the native asset


def parse_group_by(value: str | GroupBy) -> GroupBy:
    try:
        return GroupBy(value)
    except ValueError:
        allowed = ", ".join(g.value for g in GroupBy)
        raise AttributionQueryError(f"group_by must be one of {allowed}; got {value!r}") from None


def parse_bucket(value: str | Bucket) -> Bucket:
    try:
        return Bucket(value)
    except ValueError:
        allowed = ", ".join(b.value for b in Bucket)
        raise AttributionQueryError(f"bucket must be one of {allowed}; got {value!r}") from None


def parse_states(values: Iterable[str | SettlementState] | None) -> tuple[SettlementState, ...] | None:
    """Settlement states from repeated or comma-separated values; None (no filter) when empty."""
    if values is None:
        return None
    states: list[SettlementState] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                state = SettlementState(part)
            except ValueError:
                allowed = ", ".join(s.value for s in SettlementState)
                raise AttributionQueryError(f"state must be one of {allowed}; got {part!r}") from None
            if state not in states:
                states.append(state)
    return tuple(states) or None


def check_window(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    start, end = as_utc(start), as_utc(end)
    if start is not None and end is not None and end < start:
        raise AttributionQueryError(f"'to' ({end.isoformat()}) is before 'from' ({start.isoformat()})")
    return start, end


def truncate(moment: datetime, bucket: Bucket) -> datetime:
    """The start of ``moment``'s bucket in UTC (SQLite stores naive UTC wall-clock time)."""
    moment = as_utc(moment)  # type: ignore[assignment]
    if bucket is Bucket.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    if bucket is Bucket.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def attribution(
    engine: Engine,
    *,
    group_by: GroupBy | str,
    bucket: Bucket | str,
    start: datetime | None = None,
    end: datetime | None = None,
    states: Sequence[SettlementState | str] | None = None,
) -> list[AttributionRow]:
    """Totals per (bucket, group, asset) over journal lines booked in ``[start, end)``.

    ``states`` keeps only lines of settlements currently in one of those states. Raises
    :class:`AttributionQueryError` for a parameter it cannot use.
    """
    group = parse_group_by(group_by)
    size = parse_bucket(bucket)
    wanted_states = parse_states(states)
    start, end = check_window(start, end)
    repository = LedgerRepository(engine)
    column = GROUP_COLUMNS[group]
    if repository.sums_exactly:
        sums = repository.attribution_sums(column, size.value, start, end, wanted_states)
        # Sorted here, not by the server, so the order is code-point order whatever the database collation.
        return sorted(
            (AttributionRow(bucket=as_utc(moment), group=name, asset=asset, amount=_exact(total),  # type: ignore[arg-type]
                            count=int(count or 0), fees=_exact(fees))
             for moment, name, asset, total, count, fees in sums),
            key=lambda row: (row.bucket, row.group, row.asset),
        )
    return _add_up(repository.attribution_lines(column, start, end, wanted_states), size)


def _exact(value: Decimal | int | None) -> int:
    if value is None:
        return 0
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise ValueError(f"a sum of atomic units returned a fraction: {value}")
    return int(value)


def _add_up(lines: Iterable[tuple[datetime, str, str, str, str, str, int]], size: Bucket) -> list[AttributionRow]:
    """Totals per (bucket, group, asset) of journal lines, added exactly in Python (for SQLite)."""
    totals: dict[tuple[datetime, str, str], list[int]] = {}
    for booked_at, name, asset, kind, side, entry_type, value in lines:
        key = (truncate(booked_at, size), name, asset)
        entry = totals.get(key)
        if entry is None:
            entry = totals[key] = [0, 0, 0]
        signed = value if side == Side.DEBIT.value else -value
        if kind == SPEND:
            entry[0] += signed
            if entry_type == EntryType.PAYMENT.value and side == Side.DEBIT.value:
                entry[1] += 1
            elif entry_type == EntryType.REVERSAL.value and side == Side.CREDIT.value:
                entry[1] -= 1
        else:
            entry[2] += signed
    return [
        AttributionRow(bucket=key[0], group=key[1], asset=key[2], amount=entry[0], count=entry[1], fees=entry[2])
        for key, entry in sorted(totals.items())
    ]
