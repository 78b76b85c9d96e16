"""Finance's read of settlements: filters and cursor pagination (the SQL is the ledger repository's).

The cursor is opaque to callers: URL-safe base64 of the last id returned. Pages are ordered by id,
so rows inserted while a caller pages through appear at the end and no row is seen twice.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from app.db.clock import as_utc
from app.ledger.repository import LedgerRepository
from app.settlement.models import Settlement, SettlementState
from app.validation import FieldError, validate_address

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_CURSOR_PREFIX = "s1:"


class SettlementQueryError(ValueError):
    """A filter, cursor or limit cannot be used; the message says which and why."""


@dataclass(frozen=True)
class SettlementFilters:
    agent_id: str | None = None
    team: str | None = None
    capability_id: str | None = None
    provider: str | None = None
    state: str | None = None
    network: str | None = None
    payer: str | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive


@dataclass(frozen=True)
class SettlementPage:
    items: list[Settlement]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SettlementQueryError("cursor is not one this service issued") from None
    if not raw.startswith(_CURSOR_PREFIX) or not raw[len(_CURSOR_PREFIX):].isdigit():
        raise SettlementQueryError("cursor is not one this service issued")
    return int(raw[len(_CURSOR_PREFIX):])


def normalize_filters(filters: SettlementFilters) -> SettlementFilters:
    """Validated filters: known state, checksummed payer, UTC times in order."""
    state = filters.state
    if state is not None:
        try:
            state = SettlementState(state).value
        except ValueError:
            allowed = ", ".join(s.value for s in SettlementState)
            raise SettlementQueryError(f"state must be one of {allowed}; got {state!r}") from None
    payer = filters.payer
    if payer is not None:
        try:
            payer = validate_address(payer, "payer")
        except FieldError as error:
            raise SettlementQueryError(str(error)) from None
    created_from, created_to = as_utc(filters.created_from), as_utc(filters.created_to)
    if created_from is not None and created_to is not None and created_to < created_from:
        raise SettlementQueryError("'to' is before 'from'")
    return SettlementFilters(
        agent_id=filters.agent_id, team=filters.team, capability_id=filters.capability_id,
        provider=filters.provider, state=state, network=filters.network, payer=payer,
        created_from=created_from, created_to=created_to,
    )


class SettlementQuery:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def page(
        self, filters: SettlementFilters, *, cursor: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> SettlementPage:
        if not 1 <= limit <= MAX_LIMIT:
            raise SettlementQueryError(f"limit must be between 1 and {MAX_LIMIT}; got {limit}")
        after = decode_cursor(cursor) if cursor else None
        filters = normalize_filters(filters)
        equal = {
            "agent_id": filters.agent_id, "team": filters.team, "capability_id": filters.capability_id,
            "provider": filters.provider, "state": filters.state, "network": filters.network, "payer": filters.payer,
        }
        rows = LedgerRepository(self._engine).settlements_page(
            {column: value for column, value in equal.items() if value is not None},
            filters.created_from, filters.created_to, after, limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].id) if more and rows[-1].id is not None else None
        return SettlementPage(items=rows, next_cursor=next_cursor)
