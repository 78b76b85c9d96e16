"""The clock and the one wire form of time.

Time is UTC everywhere, stored timezone-aware. On the wire (JSON, exports, listings) a moment is
ISO-8601 with microseconds and a ``Z`` suffix, e.g. ``2026-12-02T17:43:00.123456Z``: one spelling of
fixed width, so a client never has to handle both ``+00:00`` and ``Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC; a naive value is taken to be UTC already (what callers and SQLite hand over)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def wire_time(moment: datetime | None) -> str | None:
    """The wire form of ``moment`` (ISO-8601, UTC, ``Z``); None stays None."""
    aware = as_utc(moment)
    return None if aware is None else aware.isoformat(timespec="microseconds").replace("+00:00", "Z")
