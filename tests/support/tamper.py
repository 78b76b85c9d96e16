"""Attacks on the journal behind the service's back, for tests that show they are caught.

The database refuses UPDATE and DELETE on ``journal_lines`` (migration 0003's triggers); an attacker with
the rights to drop those triggers gets past that, so a test that plays one drops them first.
"""

from __future__ import annotations

from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine

from app.settlement.journal import GENESIS, seal
from app.settlement.models import JournalHead, JournalLine

GUARDS = {
    "postgresql": ["DROP TRIGGER IF EXISTS journal_lines_append_only ON journal_lines",
                   "DROP TRIGGER IF EXISTS journal_lines_no_truncate ON journal_lines"],
    "sqlite": ["DROP TRIGGER IF EXISTS journal_lines_refuse_update",
               "DROP TRIGGER IF EXISTS journal_lines_refuse_delete"],
}


def drop_journal_guard(engine: Engine) -> None:
    """Remove the triggers that keep journal lines append-only (as an attacker with DDL rights could)."""
    with engine.begin() as connection:
        for statement in GUARDS[engine.dialect.name]:
            connection.execute(text(statement))


def tamper(engine: Engine, statement: str, **params: object) -> int:
    """Run one raw statement on the ledger, with the guard dropped; returns the rows it changed."""
    drop_journal_guard(engine)
    with engine.begin() as connection:
        return connection.execute(text(statement), params).rowcount


def rechain(engine: Engine) -> None:
    """Recompute every line's hashes and the journal head from the rows as they now are: the strongest
    attacker, who rewrites the whole chain after editing it (the guard is dropped)."""
    drop_journal_guard(engine)
    with engine.begin() as connection:
        lines = [JournalLine(**row._mapping) for row in connection.execute(
            select(*JournalLine.__table__.columns).order_by(JournalLine.id))]
        end = seal(lines, GENESIS)
        for line in lines:
            connection.execute(update(JournalLine).where(JournalLine.id == line.id)
                               .values(content_hash=line.content_hash, chain_hash=line.chain_hash))
        connection.execute(update(JournalHead).values(chain_hash=end, last_line_id=lines[-1].id if lines else None))
