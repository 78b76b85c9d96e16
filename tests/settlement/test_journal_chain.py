"""The journal's hash chain, as pure functions: what a line's content is, and that any single edit,
deletion, insertion or reordering of a chain is found, at the position where it first shows."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from app.settlement.journal import (
    CONTENT_FIELDS,
    GENESIS,
    BreakReason,
    canonical_content,
    chain_hash,
    content_hash,
    seal,
    verify_chain,
    walk_chain,
)
from app.settlement.models import JournalLine

UINT256 = st.integers(min_value=0, max_value=2**256 - 1)
IDS = st.integers(min_value=1, max_value=2**31 - 1)
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
TEXT = st.text(max_size=12)
FIELD_VALUES = {
    "settlement_id": IDS, "amount": UINT256, "reverses_id": st.none() | IDS, "booked_at": MOMENTS,
    **{name: TEXT for name in CONTENT_FIELDS if name not in ("settlement_id", "amount", "reverses_id", "booked_at")},
}
LINES = st.fixed_dictionaries(FIELD_VALUES).map(lambda fields: JournalLine(**fields))


def _sealed(lines: list[JournalLine]) -> tuple[list[JournalLine], str]:
    """Lines with ids 1..n, chained from the genesis value; and the head (the last chain hash)."""
    for line_id, line in enumerate(lines, start=1):
        line.id = line_id
    return lines, seal(lines, GENESIS)


def _line(**changes: object) -> JournalLine:
    fields = {"settlement_id": 7, "entry_type": "payment", "account": "agent:fleet-7:spend",
              "account_kind": "agent_spend", "side": "debit", "amount": 12_345,
              "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "network": "eip155:84532", "agent_id": "fleet-7",
              "team": "research", "cost_center": "cc-42", "capability_id": "forecast", "provider": "maps",
              "reverses_id": None, "memo": "", "booked_at": datetime(2026, 12, 2, 17, 43, 0, 123456, tzinfo=UTC)}
    return JournalLine(**{**fields, **changes})


# ----------------------------------------------------------------------------- the content of a line


def test_the_canonical_content_is_the_documented_length_prefixed_form():
    # Written out by hand from the format in app/settlement/journal.py: a verifier in any language can
    # rebuild these bytes; a change of format would orphan every stored hash, so it must fail here first.
    values = ["7", "payment", "agent:fleet-7:spend", "agent_spend", "debit", "12345",
              "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "eip155:84532", "fleet-7", "research", "cc-42", "forecast",
              "maps", "", "", "2026-12-02T17:43:00.123456Z"]
    expected = "x402-journal-line/1\n" + "".join(
        f"{name}={len(value.encode())}:{value}\n" for name, value in zip(CONTENT_FIELDS, values, strict=True))
    assert canonical_content(_line()) == expected.encode()
    assert content_hash(_line()) == hashlib.sha256(expected.encode()).hexdigest()
    assert chain_hash(GENESIS, "ab" * 32) == hashlib.sha256(
        f"x402-journal-chain/1\n{GENESIS}\n{'ab' * 32}\n".encode()).hexdigest()


def test_every_field_that_matters_is_in_the_content():
    assert set(CONTENT_FIELDS) == set(JournalLine.model_fields) - {"id", "content_hash", "chain_hash"}


@given(name=st.sampled_from(CONTENT_FIELDS), data=st.data())
def test_changing_any_field_changes_the_content_hash(name, data):
    line = _line()
    other = data.draw(FIELD_VALUES[name].filter(lambda value: value != getattr(line, name)))
    assert content_hash(_line(**{name: other})) != content_hash(line)


def test_amounts_are_exact_integers_at_any_size():
    huge = 2**256 - 1
    assert f"amount=78:{huge}\n".encode() in canonical_content(_line(amount=huge))
    assert content_hash(_line(amount=huge)) != content_hash(_line(amount=huge - 1))


def test_one_moment_has_one_content_whatever_zone_it_is_written_in():
    moment = datetime(2026, 12, 2, 17, 43, 0, 123456, tzinfo=UTC)
    three_hours_behind = moment.astimezone(timezone(timedelta(hours=-3)))
    naive_utc = moment.replace(tzinfo=None)  # SQLite hands naive UTC back; UtcDateTime makes it aware again
    assert content_hash(_line(booked_at=three_hours_behind)) == content_hash(_line(booked_at=moment))
    assert content_hash(_line(booked_at=naive_utc)) == content_hash(_line(booked_at=moment))
    assert content_hash(_line(booked_at=moment + timedelta(microseconds=1))) != content_hash(_line(booked_at=moment))


def test_text_cannot_pass_itself_off_as_the_fields_after_it():
    # Without the length prefixes both would read "provider=maps\nreverses_id=\nmemo=refund\nreverses_id=\nmemo=\n".
    smuggled = _line(provider="maps\nreverses_id=\nmemo=refund", memo="")
    honest = _line(provider="maps", memo="refund\nreverses_id=\nmemo=")
    assert canonical_content(smuggled) != canonical_content(honest)
    assert content_hash(smuggled) != content_hash(honest)


def test_a_missing_reversed_line_is_not_line_zero():
    assert content_hash(_line(reverses_id=None)) != content_hash(_line(reverses_id=0))


# ---------------------------------------------------------------------------------------- the chain


@given(lines=st.lists(LINES, max_size=8))
def test_an_untouched_chain_verifies_and_ends_at_its_head(lines):
    sealed, head = _sealed(lines)
    walk = walk_chain(sealed, GENESIS, head)
    assert walk.broken is None and walk.lines == len(lines) and walk.end == head
    assert verify_chain(sealed, GENESIS, head) is None
    assert head == (sealed[-1].chain_hash if sealed else GENESIS)


@given(lines=st.lists(LINES, min_size=1, max_size=8), data=st.data())
def test_an_edited_line_breaks_at_that_line(lines, data):
    sealed, head = _sealed(lines)
    position = data.draw(st.integers(0, len(sealed) - 1))
    name = data.draw(st.sampled_from(CONTENT_FIELDS))
    victim = sealed[position]
    setattr(victim, name, data.draw(FIELD_VALUES[name].filter(lambda value: value != getattr(victim, name))))
    broken = walk_chain(sealed, GENESIS, head).broken
    assert broken is not None and broken.position == position
    assert broken.reason is BreakReason.CONTENT and broken.line_id == victim.id


@given(lines=st.lists(LINES, min_size=1, max_size=8), data=st.data())
def test_an_edited_line_with_its_own_hashes_recomputed_breaks_at_the_next(lines, data):
    sealed, head = _sealed(lines)
    position = data.draw(st.integers(0, len(sealed) - 1))
    victim = sealed[position]
    victim.amount = victim.amount + 1 if victim.amount < 2**256 - 1 else 0
    previous = sealed[position - 1].chain_hash if position else GENESIS
    seal([victim], previous)  # a forger who cannot rewrite the lines after it (nor the head)
    broken = walk_chain(sealed, GENESIS, head).broken
    assert broken is not None and broken.position == position + 1
    assert broken.reason is (BreakReason.HEAD if position == len(sealed) - 1 else BreakReason.LINK)


@given(lines=st.lists(LINES, min_size=1, max_size=8), data=st.data())
def test_a_deleted_line_breaks_where_it_was(lines, data):
    sealed, head = _sealed(lines)
    position = data.draw(st.integers(0, len(sealed) - 1))
    del sealed[position]
    broken = walk_chain(sealed, GENESIS, head).broken
    assert broken is not None and broken.position == position
    assert broken.reason is (BreakReason.HEAD if position == len(sealed) else BreakReason.LINK)


@given(lines=st.lists(LINES, max_size=8), extra=LINES, data=st.data())
def test_an_inserted_line_breaks_at_it_or_at_the_first_line_after_it(lines, extra, data):
    sealed, head = _sealed(lines)
    position = data.draw(st.integers(0, len(sealed)))
    copied = data.draw(st.integers(0, len(sealed) - 1)) if sealed and data.draw(st.booleans()) else None
    if copied is None:  # forged: linked to the line before it, so only the next line's link gives it away
        seal([extra], sealed[position - 1].chain_hash if position else GENESIS)
    else:  # a copy of a line, hashes and all: out of place at once, unless put just before its original
        extra = copy.copy(sealed[copied])
    sealed.insert(position, extra)
    shows_at = position if copied is not None and copied != position else position + 1
    assert verify_chain(sealed, GENESIS, head) == shows_at


@given(lines=st.lists(LINES, min_size=2, max_size=8), data=st.data())
def test_reordered_lines_break_at_the_first_moved_position(lines, data):
    sealed, head = _sealed(lines)
    first = data.draw(st.integers(0, len(sealed) - 2))
    second = data.draw(st.integers(first + 1, len(sealed) - 1))
    sealed[first], sealed[second] = sealed[second], sealed[first]
    broken = walk_chain(sealed, GENESIS, head).broken
    assert broken is not None and broken.position == first and broken.reason is BreakReason.LINK


@given(lines=st.lists(LINES, min_size=1, max_size=8), cut=st.integers(1, 8))
def test_a_part_of_the_chain_verifies_from_the_line_before_it(lines, cut):
    sealed, head = _sealed(lines)
    start = min(cut, len(sealed)) - 1
    anchor = sealed[start - 1].chain_hash if start else GENESIS
    assert verify_chain(sealed[start:], anchor, head) is None
    assert verify_chain(sealed[start:], GENESIS if start else "f" * 64, head) == 0
