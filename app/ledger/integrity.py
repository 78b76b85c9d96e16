"""The whole journal against its own hash chain: what ``x402-settle ledger verify`` runs.

Reconciliation checks the lines of the settlements in a block range; this walks every line from the
first, in id order, streamed (one batch in memory at a time), inside one read snapshot so bookings that
commit meanwhile never look like a break. The walk must end at the journal head.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from app.ledger.repository import STREAM_BATCH, LedgerRepository
from app.settlement.journal import GENESIS, BreakReason, ChainBreak, walk_chain


class JournalUnreadable(Exception):
    """The journal cannot be checked (no head row: the database is not migrated to the chained schema)."""


@dataclass(frozen=True)
class JournalVerdict:
    lines: int  # lines that verified
    last_line_id: int | None  # the last of them
    head_line_id: int | None  # where the journal head says the chain ends
    head_hash: str
    broken: ChainBreak | None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def describe(self) -> str:
        """One sentence for an operator: what verified, or the first broken line and what is wrong with it."""
        if self.broken is None:
            where = f"line {self.head_line_id}" if self.head_line_id is not None else "the genesis value (empty)"
            return f"journal intact: {self.lines} lines verified; the chain ends at {where}, hash {self.head_hash}"
        if self.broken.reason is BreakReason.HEAD:
            walked = f"line {self.last_line_id}" if self.last_line_id is not None else "no line"
            return (f"journal broken at its end: the chain verifies through {walked} ({self.lines} lines), but the "
                    f"journal head says it ends at line {self.head_line_id} with hash {self.head_hash}: "
                    f"{self.broken.meaning}")
        return (f"journal broken at line {self.broken.line_id} (settlement {self.broken.settlement_id}, "
                f"{self.lines} lines before it verified): {self.broken.meaning}")


def verify_journal(engine: Engine, batch: int = STREAM_BATCH) -> JournalVerdict:
    """Walk the whole journal from the genesis value to the journal head; raises ``JournalUnreadable``
    when there is no head to walk to."""
    with LedgerRepository(engine).journal_snapshot() as journal:
        head = journal.head()
        if head is None:
            raise JournalUnreadable("the journal has no head row: migrate the database (revision 0003 or later)")
        walk = walk_chain(journal.lines(batch=batch), GENESIS, head.chain_hash)
    return JournalVerdict(lines=walk.lines, last_line_id=walk.last_line_id, head_line_id=head.last_line_id,
                          head_hash=head.chain_hash, broken=walk.broken)
