"""Double-entry lines for a settlement and the journal's hash chain, as pure functions (the repository
writes them).

Per confirmed settlement, two balanced pairs:
- payment: debit ``agent:<id>:spend``, credit ``provider:<team>:revenue``, in the token;
- network fee: debit ``agent:<id>:network_fees``, credit ``facilitator:<signer>:gas``, in wei of the
  native asset: the gas the facilitator paid, attributed to the agent whose payment it carried.
A reversal copies a line with the side swapped and points at it.

The chain. Each line carries ``content_hash``, the SHA-256 of its canonical content, and ``chain_hash``,
the SHA-256 over the previous line's chain hash and its own content hash (the first line links to
``GENESIS``). Lines are chained in id order. Changing any field that matters breaks the line's content
hash; deleting, inserting or reordering lines breaks the link of the first line after the change; lines
cut off the end (or appended behind the booking's back) no longer end at the journal head. Anyone can
recompute the chain from the rows alone, so it proves the journal was not changed *without* rewriting
every later hash and the head: an attacker with full write access can still do that, which is why
reconciliation also compares the lines with their settlements and the settlements with the chain.

Canonical content (version 1), UTF-8: the line ``x402-journal-line/1``, then for each field of
``CONTENT_FIELDS`` in that order the line ``<name>=<byte length>:<value>``, each line ending in ``\\n``.
Integers (ids, amounts) are exact decimal strings, a missing ``reverses_id`` is empty, ``booked_at`` is
``app.db.clock.wire_time``. The length prefix makes the encoding unambiguous whatever a value contains,
and it is simple to reproduce outside Python (no escaping rules, unlike JSON or ``repr``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from operator import attrgetter
from typing import Protocol

from app.db.clock import utc_now, wire_time
from app.settlement.models import NATIVE_ASSET, EntryType, JournalLine, Settlement, Side

GENESIS = "0" * 64  # what the first line links to
CONTENT_VERSION = "x402-journal-line/1"
CHAIN_VERSION = "x402-journal-chain/1"
CONTENT_FIELDS = (
    "settlement_id", "entry_type", "account", "account_kind", "side", "amount", "asset", "network", "agent_id",
    "team", "cost_center", "capability_id", "provider", "reverses_id", "memo", "booked_at",
)


def _line(settlement: Settlement, *, entry_type: EntryType, account: str, account_kind: str, side: Side,
          amount: int, asset: str, booked_at: datetime) -> JournalLine:
    assert settlement.id is not None
    return JournalLine(
        settlement_id=settlement.id, entry_type=entry_type.value, account=account, account_kind=account_kind,
        side=side.value, amount=amount, asset=asset, network=settlement.network, agent_id=settlement.agent_id,
        team=settlement.team, cost_center=settlement.cost_center, capability_id=settlement.capability_id,
        provider=settlement.provider, booked_at=booked_at,
    )


def settlement_lines(settlement: Settlement, booked_at: datetime | None = None) -> list[JournalLine]:
    """The lines booked when a settlement is confirmed on-chain, all at one moment (default: now)."""
    moment = booked_at or utc_now()
    payment = {"entry_type": EntryType.PAYMENT, "amount": settlement.value, "asset": settlement.asset,
               "booked_at": moment}
    lines = [
        _line(settlement, account=f"agent:{settlement.agent_id}:spend", account_kind="agent_spend",
              side=Side.DEBIT, **payment),
        _line(settlement, account=f"provider:{settlement.provider}:revenue", account_kind="provider_revenue",
              side=Side.CREDIT, **payment),
    ]
    fee = (settlement.gas_used or 0) * (settlement.effective_gas_price or 0)
    if fee:
        network_fee = {"entry_type": EntryType.NETWORK_FEE, "amount": fee, "asset": NATIVE_ASSET,
                       "booked_at": moment}
        lines += [
            _line(settlement, account=f"agent:{settlement.agent_id}:network_fees", account_kind="agent_fees",
                  side=Side.DEBIT, **network_fee),
            _line(settlement, account=f"facilitator:{settlement.signer}:gas", account_kind="facilitator_gas",
                  side=Side.CREDIT, **network_fee),
        ]
    return lines


def reversal_of(line: JournalLine, memo: str, booked_at: datetime | None = None) -> JournalLine:
    """The line that cancels ``line``: same account and amount, opposite side, booked at ``booked_at``
    (default: now)."""
    assert line.id is not None
    opposite = Side.CREDIT if line.side == Side.DEBIT else Side.DEBIT
    return JournalLine(
        settlement_id=line.settlement_id, entry_type=EntryType.REVERSAL.value, account=line.account,
        account_kind=line.account_kind, side=opposite.value, amount=line.amount, asset=line.asset,
        network=line.network, agent_id=line.agent_id, team=line.team, cost_center=line.cost_center,
        capability_id=line.capability_id, provider=line.provider, reverses_id=line.id, memo=memo[:500],
        booked_at=booked_at or utc_now(),
    )


# ------------------------------------------------------------------------------------- the chain


class LineContent(Protocol):
    """What the content hash covers: a ``JournalLine`` or a row read with the same column names."""

    settlement_id: int
    entry_type: str
    account: str
    account_kind: str
    side: str
    amount: int
    asset: str
    network: str
    agent_id: str
    team: str
    cost_center: str
    capability_id: str
    provider: str
    reverses_id: int | None
    memo: str
    booked_at: datetime


class ChainedLine(LineContent, Protocol):
    """A line as stored: its content, its id and the two hashes the booking gave it."""

    @property
    def id(self) -> int | None: ...

    content_hash: str
    chain_hash: str


def _integer(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an id or amount must be an int, got {type(value).__name__}")
    return str(value)


def _optional_integer(value: object) -> str:
    return "" if value is None else _integer(value)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a text field must be a str, got {type(value).__name__}")
    return str(value)  # a StrEnum member becomes its plain value


def _moment(value: object) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"booked_at must be a datetime, got {type(value).__name__}")
    return wire_time(value) or ""


# How each field of CONTENT_FIELDS is written: exact integers, wire time, plain text; never ``repr``.
_WRITERS = tuple(
    _integer if name in ("settlement_id", "amount") else _optional_integer if name == "reverses_id"
    else _moment if name == "booked_at" else _text
    for name in CONTENT_FIELDS
)
_read_fields = attrgetter(*CONTENT_FIELDS)  # one call per line: a walk reads millions


def canonical_content(line: LineContent) -> bytes:
    """The bytes the content hash is taken over (format in the module docstring)."""
    parts = [CONTENT_VERSION, "\n"]
    for name, write, value in zip(CONTENT_FIELDS, _WRITERS, _read_fields(line), strict=True):
        text = write(value)
        parts.append(f"{name}={len(text.encode())}:{text}\n")
    return "".join(parts).encode()


def content_hash(line: LineContent) -> str:
    """Hex SHA-256 of the line's canonical content."""
    return hashlib.sha256(canonical_content(line)).hexdigest()


def chain_hash(previous: str, content: str) -> str:
    """Hex SHA-256 linking a line (its content hash) to the chain hash of the line before it."""
    return hashlib.sha256(f"{CHAIN_VERSION}\n{previous}\n{content}\n".encode()).hexdigest()


def seal(lines: Iterable[JournalLine], previous: str) -> str:
    """Give each line, in order, its content hash and its link to ``previous``; returns the new end.

    The booking calls this under the journal head's lock, with the head's chain hash as ``previous``.
    """
    for line in lines:
        line.content_hash = content_hash(line)
        line.chain_hash = previous = chain_hash(previous, line.content_hash)
    return previous


class BreakReason(StrEnum):
    CONTENT = "content"  # the line's fields no longer give its content hash: edited after booking
    LINK = "link"  # the line does not follow from the one before it: lines deleted, inserted or reordered
    HEAD = "head"  # the chain does not end where the journal head says: lines cut off or added at the end


BREAK_MEANING = {
    BreakReason.CONTENT: "its fields no longer match its content hash (the line was changed after it was booked)",
    BreakReason.LINK: "its chain hash does not follow from the line before it (a line was deleted, inserted or "
                      "reordered before it, or its hashes were rewritten)",
    BreakReason.HEAD: "the chain does not end at the journal head (lines were cut off the end, or added to it "
                      "without the booking)",
}


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain does not verify."""

    position: int  # 0-based, in the order walked; for HEAD, the number of lines walked
    reason: BreakReason
    line_id: int | None = None  # the broken line (None for HEAD)
    settlement_id: int | None = None

    @property
    def meaning(self) -> str:
        return BREAK_MEANING[self.reason]


@dataclass(frozen=True)
class ChainWalk:
    """What a walk over (part of) the chain found."""

    lines: int  # lines that verified (all of them, or those before the break)
    end: str  # the chain hash of the last line that verified (``previous`` when none did)
    last_line_id: int | None = None  # the id of that line
    broken: ChainBreak | None = None


def walk_chain(lines: Iterable[ChainedLine], previous: str = GENESIS, head: str | None = None) -> ChainWalk:
    """Walk ``lines`` (in id order, consumed once: they may be streamed) from ``previous``.

    Stops at the first line whose content hash or link is wrong. With ``head`` (the journal head's chain
    hash) the walk must also end exactly there, which catches lines cut off or appended at the end.
    """
    walked, last_id = 0, None
    for line in lines:
        content = content_hash(line)
        reason = (BreakReason.CONTENT if content != line.content_hash
                  else BreakReason.LINK if chain_hash(previous, content) != line.chain_hash else None)
        if reason is not None:
            return ChainWalk(walked, previous, last_id, ChainBreak(walked, reason, line.id, line.settlement_id))
        previous, last_id, walked = line.chain_hash, line.id, walked + 1
    if head is not None and head != previous:
        return ChainWalk(walked, previous, last_id, ChainBreak(walked, BreakReason.HEAD))
    return ChainWalk(walked, previous, last_id)


def verify_chain(lines: Iterable[ChainedLine], previous: str = GENESIS, head: str | None = None) -> int | None:
    """The position of the first break in ``lines`` (see ``walk_chain``), or None when the chain verifies."""
    broken = walk_chain(lines, previous, head).broken
    return None if broken is None else broken.position
