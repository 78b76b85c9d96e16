"""The journal against the settlements a reconciliation checks, and against its own hash chain.

Attribution and exports read ``journal_lines``, not the settlement rows, so comparing the rows with the
chain is not enough: a line changed behind the service's back would move an agent's spend while the rows
still match the chain. For each checked settlement (read again, with its lines, in one snapshot):

- confirmed / finalized: exactly the lines its confirmation books (``settlement_lines``): same entry types,
  accounts, sides, amounts, assets and attribution, and no reversal;
- failed with lines (a reversed settlement): those same lines, each reversed exactly once by a line that
  mirrors it (same account, amount and attribution, opposite side);
- any other state (or failed without lines): no line at all;

and the hash chain from the line before their first line to the line after their last (or to the journal
head when their last line ends the journal) verifies. ``x402-settle ledger verify`` walks the whole chain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from sqlalchemy.engine import Engine, Row

from app.ledger.repository import JournalSnapshot, LedgerRepository
from app.reconciliation.discrepancies import Discrepancy, DiscrepancyKind
from app.settlement.journal import GENESIS, BreakReason, LineContent, settlement_lines, walk_chain
from app.settlement.models import SUCCESS_STATES, EntryType, Settlement, SettlementState, Side

# What a line books: compared between the journal and what the settlement's state books.
BOOKING_FIELDS = ("entry_type", "account", "account_kind", "side", "amount", "asset", "network", "agent_id", "team",
                  "cost_center", "capability_id", "provider")
# What a reversal must copy from the line it reverses (its side is the opposite one).
_MIRRORED = tuple(name for name in BOOKING_FIELDS if name not in ("entry_type", "side"))


@dataclass(frozen=True)
class JournalCheck:
    lines: int  # journal lines of the checked settlements
    discrepancies: list[Discrepancy]


def check_journal(engine: Engine, settlement_ids: Iterable[int]) -> JournalCheck:
    """Compare the journal lines of these settlements with what their states book, and verify the chain
    over them; everything is read in one snapshot, so a booking landing meanwhile is no false alarm."""
    ids = sorted(set(settlement_ids))
    with LedgerRepository(engine).journal_snapshot() as journal:
        rows = journal.settlements(ids)
        lines = journal.lines_of(ids)
        found = line_discrepancies(rows, lines)
        broken = _chain_discrepancy(journal, lines, {row.id: row for row in rows})
    return JournalCheck(len(lines), found + ([broken] if broken is not None else []))


# ------------------------------------------------------------------------------- lines vs settlements


def line_discrepancies(rows: Sequence[Settlement], lines: Sequence[Row[Any]]) -> list[Discrepancy]:
    """One ``journal_mismatch`` per settlement whose lines are not what its state books."""
    by_settlement: dict[int, list[Row[Any]]] = {row.id: [] for row in rows if row.id is not None}
    for line in lines:
        by_settlement.setdefault(line.settlement_id, []).append(line)
    found = []
    for row in rows:
        difference = compare_lines(row, by_settlement.get(row.id or 0, []))
        if difference is not None:
            found.append(difference)
    return found


def booking(line: LineContent) -> tuple[Any, ...]:
    return tuple(getattr(line, name) for name in BOOKING_FIELDS)


def compare_lines(row: Settlement, lines: Sequence[Row[Any]]) -> Discrepancy | None:
    """The settlement's lines against what its state books; None when they are exactly that."""
    state = SettlementState(row.state)
    originals = [line for line in lines if line.reverses_id is None]
    reversals = [line for line in lines if line.reverses_id is not None]
    books = state in SUCCESS_STATES or (state is SettlementState.FAILED and bool(lines))
    missing, unexpected = _difference(settlement_lines(row) if books else [], originals)
    if state is SettlementState.FAILED:
        lost, stray = _reversal_difference(originals, reversals)
        missing, unexpected = missing + lost, unexpected + stray
    else:
        unexpected += [_described(line) for line in reversals]
    if not missing and not unexpected:
        return None
    return _mismatch(row, state, books, missing, unexpected, [line.id for line in lines])


def _difference(expected: Sequence[LineContent], actual: Sequence[Row[Any]]) -> tuple[list[str], list[str]]:
    """Lines expected but not booked, and lines booked but not expected, compared as multisets."""
    wanted = Counter(booking(line) for line in expected)
    missing = [_describe(key) for key in (wanted - Counter(booking(line) for line in actual)).elements()]
    unexpected = []
    for line in actual:
        key = booking(line)
        if wanted[key] > 0:
            wanted[key] -= 1
        else:
            unexpected.append(_described(line))
    return missing, unexpected


def _reversal_difference(originals: Sequence[Row[Any]], reversals: Sequence[Row[Any]]) -> tuple[list[str], list[str]]:
    """Originals without their one mirroring reversal, and reversals that mirror no original of theirs."""
    by_id = {line.id: line for line in originals}
    reversed_ids = set()
    stray = []
    for reversal in reversals:
        original = by_id.get(reversal.reverses_id)
        if original is None or reversal.reverses_id in reversed_ids or not _mirrors(reversal, original):
            stray.append(_described(reversal))
        else:
            reversed_ids.add(original.id)
    lost = [f"the reversal of line {line.id}" for line in originals if line.id not in reversed_ids]
    return lost, stray


def _mirrors(reversal: Row[Any], original: Row[Any]) -> bool:
    opposite = Side.CREDIT.value if original.side == Side.DEBIT.value else Side.DEBIT.value
    return (reversal.entry_type == EntryType.REVERSAL.value and reversal.side == opposite
            and all(getattr(reversal, name) == getattr(original, name) for name in _MIRRORED))


def _describe(key: tuple[Any, ...]) -> str:
    fields = dict(zip(BOOKING_FIELDS, key, strict=True))
    attribution = "/".join(str(fields[name]) for name in ("agent_id", "team", "cost_center", "capability_id",
                                                          "provider"))
    return (f"{fields['entry_type']} {fields['side']} {fields['account']} {fields['amount']} {fields['asset']} "
            f"on {fields['network']} [{attribution}]")


def _described(line: Row[Any]) -> str:
    return f"line {line.id}: {_describe(booking(line))}"


def _mismatch(row: Settlement, state: SettlementState, books: bool, missing: list[str], unexpected: list[str],
              line_ids: list[int]) -> Discrepancy:
    what = (("its confirmation books" if state in SUCCESS_STATES else "its confirmation and reversal book")
            if books else "a settlement in this state books (nothing)")
    message = (f"settlement {row.id} is {state.value}, but its journal lines are not what {what}: "
               f"{len(missing)} missing, {len(unexpected)} unexpected")
    first_line = min(line_ids) if line_ids else None
    return _discrepancy(DiscrepancyKind.JOURNAL_MISMATCH, message, row, first_line,
                        expected="; ".join(missing) or None, actual="; ".join(unexpected) or None)


def _discrepancy(kind: DiscrepancyKind, message: str, row: Settlement | None, line_id: int | None, *,
                 expected: str | None, actual: str | None) -> Discrepancy:
    return Discrepancy(
        kind=kind, message=message, settlement_id=row.id if row else None, tx_hash=row.tx_hash if row else None,
        block_number=row.block_number if row else None, expected=expected, actual=actual,
        asset=row.asset if row else None, payer=row.payer if row else None, nonce=row.nonce if row else None,
        line_id=line_id,
    )


# --------------------------------------------------------------------------------------- the chain


def _chain_discrepancy(journal: JournalSnapshot, lines: Sequence[Row[Any]], rows: dict[int | None, Settlement]
                       ) -> Discrepancy | None:
    """A ``journal_tampered`` when the chain over the checked lines does not verify.

    The walk starts from the chain hash of the line before the first checked line and takes in the line
    after the last one (whose link covers it), or, when the last one ends the journal, the journal head.
    """
    if not lines:
        return None
    first, last = lines[0].id, lines[-1].id
    previous = journal.chain_hash_before(first) or GENESIS
    after = journal.line_after(last)
    head = journal.head() if after is None else None
    if after is None and head is None:
        return _discrepancy(DiscrepancyKind.JOURNAL_TAMPERED, "the journal head row is missing", None, last,
                            expected="a journal head", actual=None)
    segment: Iterator[Row[Any]] = chain(journal.lines(first_id=first, last_id=last), [after] if after else [])
    walk = walk_chain(segment, previous, head.chain_hash if head is not None else None)
    if walk.broken is None:
        return None
    if walk.broken.reason is BreakReason.HEAD:
        message = (f"the journal's hash chain ends at line {walk.last_line_id}, but the journal head says line "
                   f"{head.last_line_id if head else None}: {walk.broken.meaning}")
        return _discrepancy(DiscrepancyKind.JOURNAL_TAMPERED, message, None, walk.last_line_id,
                            expected=head.chain_hash if head else None, actual=walk.end)
    line_id, settlement_id = walk.broken.line_id, walk.broken.settlement_id
    message = f"journal line {line_id} (settlement {settlement_id}) breaks the hash chain: {walk.broken.meaning}"
    return _discrepancy(DiscrepancyKind.JOURNAL_TAMPERED, message, rows.get(settlement_id), line_id,
                        expected="an unbroken hash chain", actual=f"{walk.broken.reason.value} hash mismatch")
