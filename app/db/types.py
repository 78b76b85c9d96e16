"""Column types, exact on both SQLite and PostgreSQL: on-chain quantities and UTC moments.

An EVM ``uint256`` has up to 78 decimal digits: more than any SQL integer type holds.

- PostgreSQL stores it as ``NUMERIC(78, 0)``: exact, compared, ordered and summed by the server.
- SQLite stores it as TEXT, zero-padded to 78 digits, so that string equality and ordering are
  numeric equality and ordering. SQLite cannot add such strings exactly (``SUM`` goes through
  float), so totals go through :func:`sum_uint256`, which adds in Python there.

Python sees plain ``int`` either way.

Times are :class:`UtcDateTime`: stored with their zone on PostgreSQL, as UTC wall time on SQLite (which
has no zone), and always read back timezone-aware in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String, func, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

UINT256_MAX = 2**256 - 1
UINT256_DIGITS = 78  # len(str(2**256 - 1))


class Uint256(TypeDecorator[int]):
    """Python ``int`` in ``[0, 2**256 - 1]`` <-> NUMERIC(78,0) (PostgreSQL) or 78-digit TEXT (others)."""

    impl = String(UINT256_DIGITS)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(UINT256_DIGITS, 0, asdecimal=True))
        return dialect.type_descriptor(String(UINT256_DIGITS))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = _as_uint256(value)
        if dialect.name == "postgresql":
            return Decimal(number)
        return f"{number:0{UINT256_DIGITS}d}"

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        if value is None:
            return "NULL"
        bound = self.process_bind_param(value, dialect)
        return str(bound) if dialect.name == "postgresql" else f"'{bound}'"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError(f"uint256 column returned a fraction: {value}")
            return int(value)
        return int(value)  # TEXT on SQLite; also a SUM() over NUMERIC beyond 78 digits

    @property
    def python_type(self) -> type[int]:
        return int


def _as_uint256(value: Any) -> int:
    # Money is an int end to end: no bool, no str, no Decimal or float sneaking in.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"uint256 value must be an int, got {type(value).__name__}")
    if not 0 <= value <= UINT256_MAX:
        raise ValueError(f"uint256 value out of range: {value}")
    return value


def sum_uint256(
    session: Session | Connection,
    column: ColumnElement[int] | Any,
    where: ColumnElement[bool] | None = None,
) -> int:
    """Exact total of a :class:`Uint256` column (0 when no row matches).

    PostgreSQL sums NUMERIC in the server. SQLite's SUM over TEXT converts to float and loses
    digits, so there the matching values are fetched and added in Python.
    """
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        statement = select(func.sum(column))
        if where is not None:
            statement = statement.where(where)
        total = session.execute(statement).scalar_one()
        return 0 if total is None else int(total)
    statement = select(column)
    if where is not None:
        statement = statement.where(where)
    total = 0
    for value in session.execute(statement.execution_options(yield_per=1000)).scalars():
        if value is not None:
            total += value
    return total


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in UTC, timezone-aware in Python on every backend.

    SQLite keeps no zone and hands back naive values; PostgreSQL converts to the session's zone. Both
    are normalised here: an aware value is stored as UTC, a naive one is taken to be UTC already, and
    what is read back is always aware and in UTC, so no caller has to patch a missing ``tzinfo``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"a timestamp must be a datetime, got {type(value).__name__}")
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime
