"""The agent's spend ledger: every authorization it signed, counted against its limits.

Why a signed authorization counts whatever the server answered: an EIP-3009 authorization is a bearer
instrument. Whoever holds it can submit it on chain until ``validBefore``, and a server that answers
``402`` (or an error, or drops the connection) may still hold it and cash it. So the client never
forgets one because of what the server said. An entry counts from the moment it is written (before
the signature exists) for the rolling window (24 h), and for as long as the authorization can still be
used if that is longer: ``now < max(signed_at + window, valid_before)``. It is removed early only when
it was never signed (the signer failed), see :meth:`SpendLedger.release`.

Why the whole window and not just until ``validBefore``: once an authorization has expired we cannot
tell, without asking the chain, whether the server cashed it before it expired; if it did, that is real
spend of the day. Counting it for the day keeps the daily limit a bound on what can leave the wallet.

Reserving is one *booking*: the policy reads what is counted and adds the new entry while no other
booking can run, so two payments can never both fit into the same remaining budget.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal, Protocol

DAY_SECONDS = 24 * 60 * 60

SpendStatus = Literal["reserved", "settled", "refused", "unconfirmed"]


@dataclass(frozen=True)
class SpendEntry:
    """One authorization this client signed (or is about to sign), with everything needed to count it.

    ``status`` only says what the server answered (``reserved`` until it answers, then ``settled``,
    ``refused`` for a 402 without settlement, or ``unconfirmed`` when the outcome is unknown); every
    status counts the same, see the module docstring.
    """

    id: str
    signed_at: float  # Unix seconds, the client's clock when the entry was written
    amount: int  # atomic units of ``asset``
    capability_id: str | None
    resource_url: str | None
    asset: str = ""
    network: str = ""  # CAIP-2
    payee: str = ""
    payer: str | None = None
    nonce: str = ""  # 0x + 64 hex digits: the EIP-3009 nonce, unique per authorization
    valid_before: int = 0  # the authorization's validBefore (Unix seconds)
    status: SpendStatus = "reserved"

    @property
    def capability(self) -> str | None:
        """The payment's capability key: the capability id if known, else the resource URL."""
        return self.capability_id or self.resource_url

    def counts_at(self, now: float, window_seconds: float) -> bool:
        """Whether this entry still counts at ``now``: inside the window, or the authorization still usable."""
        return now < self.signed_at + window_seconds or now < self.valid_before

    def matches(self, key: str) -> bool:
        """Whether a ``max_per_capability`` key (a capability id, or a resource URL prefix) covers this entry."""
        if "://" in key:
            return self.resource_url is not None and self.resource_url.startswith(key)
        return self.capability_id == key


def new_entry(amount: int, *, now: float, capability_id: str | None, resource_url: str | None, asset: str = "",
              network: str = "", payee: str = "", payer: str | None = None, nonce: str | None = None,
              valid_before: int | None = None) -> SpendEntry:
    """A fresh entry with a random id (and a random nonce unless given).

    ``valid_before`` defaults to ``int(now)``: an entry recorded without one counts for the window only.
    """
    return SpendEntry(
        id=uuid.uuid4().hex, signed_at=now, amount=amount, capability_id=capability_id, resource_url=resource_url,
        asset=asset, network=network, payee=payee, payer=payer,
        nonce=nonce if nonce is not None else "0x" + os.urandom(32).hex(),
        valid_before=int(now) if valid_before is None else valid_before,
    )


class Booking(Protocol):
    """What the policy sees while it reserves: the counted totals, and a way to add the new entry.

    Only valid inside :meth:`SpendLedger.booking`; nothing else books in between.
    """

    def spent(self) -> int:
        """Atomic units counted now (every status)."""
        ...

    def spent_on(self, key: str) -> int:
        """Atomic units counted now for one ``max_per_capability`` key."""
        ...

    def add(self, entry: SpendEntry) -> None:
        """Record ``entry``; it counts as soon as the booking ends (and for the rest of this booking)."""
        ...


class _ListBooking:
    """A booking over a list of the entries that count now (the in-memory store)."""

    def __init__(self, counted: list[SpendEntry]) -> None:
        self._counted = counted

    def spent(self) -> int:
        return sum(entry.amount for entry in self._counted)

    def spent_on(self, key: str) -> int:
        return sum(entry.amount for entry in self._counted if entry.matches(key))

    def add(self, entry: SpendEntry) -> None:
        self._counted.append(entry)


class SpendLedger:
    """In-memory, thread-safe record of one process's signed authorizations."""

    def __init__(self, window_seconds: float = DAY_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._entries: list[SpendEntry] = []
        self._lock = threading.RLock()

    @contextmanager
    def booking(self, now: float) -> Iterator[Booking]:
        """Hold the ledger while the policy checks and reserves, so concurrent payments are serialized."""
        with self._lock:
            self._entries = [entry for entry in self._entries if entry.counts_at(now, self.window_seconds)]
            yield _ListBooking(self._entries)

    def entries(self, now: float | None = None) -> list[SpendEntry]:
        """The entries that count at ``now``, oldest first."""
        now = time.time() if now is None else now
        with self._lock:
            return [entry for entry in self._entries if entry.counts_at(now, self.window_seconds)]

    def spent(self, now: float | None = None) -> int:
        """Atomic units counted at ``now`` (every status)."""
        return sum(entry.amount for entry in self.entries(now))

    def spent_on(self, key: str, now: float | None = None) -> int:
        """Atomic units counted at ``now`` for one ``max_per_capability`` key (a capability id or a URL prefix)."""
        return sum(entry.amount for entry in self.entries(now) if entry.matches(key))

    def record(self, entry: SpendEntry) -> SpendEntry:
        """Add an entry outside a policy check (e.g. spend signed by another tool with the same key)."""
        with self.booking(entry.signed_at) as book:
            book.add(entry)
        return entry

    def reserve(self, amount: int, *, capability_id: str | None, resource_url: str | None, now: float,
                **details: object) -> SpendEntry:
        """Record ``amount`` as spent at ``now`` (no policy check); ``details`` are :func:`new_entry`'s."""
        return self.record(new_entry(amount, now=now, capability_id=capability_id, resource_url=resource_url,
                                     **details))  # type: ignore[arg-type]

    def mark(self, entry_id: str, status: SpendStatus) -> None:
        """Note what the server answered; the entry keeps counting whatever the status."""
        with self._lock:
            self._entries = [replace(entry, status=status) if entry.id == entry_id else entry
                             for entry in self._entries]

    def release(self, entry_id: str) -> None:
        """Forget an entry whose authorization was NEVER signed (signing failed after the reservation).

        Never call this for a signed authorization, whatever the server answered: whoever holds it can
        still use it.
        """
        with self._lock:
            self._entries = [entry for entry in self._entries if entry.id != entry_id]
