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

Two stores share one interface:

- :class:`SpendLedger` keeps entries in memory for one process (the default);
- :class:`SqliteSpendLedger` keeps them in a SQLite file that several processes of one agent share, so
  their spend adds up, atomically, and survives a restart (a restart is not a fresh day).

Reserving is one *booking*: the policy reads what is counted and adds the new entry while no other
booking (thread or process) can run, so two payments can never both fit into the same remaining budget.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger(__name__)

DAY_SECONDS = 24 * 60 * 60

SpendStatus = Literal["reserved", "settled", "refused", "unconfirmed"]
_STATUSES: tuple[SpendStatus, ...] = ("reserved", "settled", "refused", "unconfirmed")

#: The largest amount the SQLite store holds in its INTEGER column (SQLite integers are signed 64-bit).
MAX_STORED_AMOUNT = 2**63 - 1


class SpendLedgerError(Exception):
    """The spend ledger cannot record or read spend (e.g. an unknown file format); nothing was signed."""


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
    """In-memory, thread-safe record of one process's signed authorizations (the default store).

    A new process starts with an empty one; use :class:`SqliteSpendLedger` for spend that several
    processes share or that must survive a restart.
    """

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


# ------------------------------------------------------------------------------------ SQLite store


_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS authorizations (
    id            TEXT PRIMARY KEY,
    signed_at     REAL NOT NULL,
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    asset         TEXT NOT NULL,
    network       TEXT NOT NULL,
    capability_id TEXT,
    resource_url  TEXT,
    payee         TEXT NOT NULL,
    payer         TEXT,
    nonce         TEXT NOT NULL UNIQUE,
    valid_before  INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('reserved', 'settled', 'refused', 'unconfirmed'))
);
CREATE INDEX IF NOT EXISTS authorizations_signed_at ON authorizations (signed_at);
CREATE INDEX IF NOT EXISTS authorizations_valid_before ON authorizations (valid_before);
"""
_COLUMNS = ("id", "signed_at", "amount", "capability_id", "resource_url", "asset", "network", "payee", "payer",
            "nonce", "valid_before", "status")
# An entry counts while now < signed_at + window OR now < valid_before (SpendEntry.counts_at).
_COUNTED = "(signed_at > :cutoff OR valid_before > :now)"


def _entry_of(row: Sequence[object]) -> SpendEntry:
    return SpendEntry(**dict(zip(_COLUMNS, row, strict=True)))  # type: ignore[arg-type]


class _SqliteBooking:
    """A booking inside one ``BEGIN IMMEDIATE`` transaction: sums read and the insert see the same data."""

    def __init__(self, connection: sqlite3.Connection, now: float, cutoff: float) -> None:
        self._connection = connection
        self._params = {"now": now, "cutoff": cutoff}

    def spent(self) -> int:
        row = self._connection.execute(
            f"SELECT COALESCE(SUM(amount), 0) FROM authorizations WHERE {_COUNTED}", self._params).fetchone()
        return int(row[0])

    def spent_on(self, key: str) -> int:
        # A key with :// is a resource URL prefix, compared exactly (LIKE would treat % and _ as wildcards).
        where = "substr(resource_url, 1, length(:key)) = :key" if "://" in key else "capability_id = :key"
        row = self._connection.execute(
            f"SELECT COALESCE(SUM(amount), 0) FROM authorizations WHERE {_COUNTED} AND {where}",
            {**self._params, "key": key}).fetchone()
        return int(row[0])

    def add(self, entry: SpendEntry) -> None:
        _insert(self._connection, entry)


def _insert(connection: sqlite3.Connection, entry: SpendEntry) -> None:
    if not 0 <= entry.amount <= MAX_STORED_AMOUNT:
        raise SpendLedgerError(f"an amount of {entry.amount} atomic units does not fit the spend ledger file")
    placeholders = ", ".join(f":{name}" for name in _COLUMNS)
    values = {name: getattr(entry, name) for name in _COLUMNS}
    connection.execute(f"INSERT INTO authorizations ({', '.join(_COLUMNS)}) VALUES ({placeholders})", values)


class SqliteSpendLedger(SpendLedger):
    """The spend ledger in a SQLite file that every process of one agent opens (one row per authorization).

    Why each piece:

    - ``BEGIN IMMEDIATE`` for a booking takes the file's write lock before the totals are read, so the
      read-check-insert of two processes cannot interleave: the second waits, then sees the first's row.
      Within a process a lock serializes the threads on the one connection.
    - WAL lets readers (``entries``, ``spent``) run while a booking holds the write lock; the busy timeout
      makes a booking wait for another process's booking instead of failing at once. A booking that
      still cannot get the lock raises ``sqlite3.OperationalError`` before anything is signed.
    - ``synchronous=FULL``: a committed row survives a power cut, so a crash never forgets spend.
    - Rows that stopped counting a window ago are deleted inside bookings: the file is a budget, not an
      audit trail (the facilitator's ledger is that).
    - A connection is never carried across ``fork``: a child process opens its own.

    Bookings are synchronous (SQLite has no async driver in the standard library); in the async client
    a booking waiting for another process blocks the event loop for up to ``busy_timeout_seconds``.
    """

    def __init__(self, path: str | os.PathLike[str], *, window_seconds: float = DAY_SECONDS,
                 busy_timeout_seconds: float = 30.0) -> None:
        super().__init__(window_seconds)
        self.path = Path(path)
        self.busy_timeout_seconds = busy_timeout_seconds
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._connect_lock = threading.Lock()
        with self._transaction():
            pass  # create the file and its table now, so a wrong path fails here and not at the first payment

    def _connect(self) -> sqlite3.Connection:
        with self._connect_lock:
            if self._connection is not None and self._pid == os.getpid():
                return self._connection
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout_seconds, isolation_level=None,
                                         check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_seconds * 1000)}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                connection.close()
                raise SpendLedgerError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("BEGIN IMMEDIATE")
            try:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, _SCHEMA_VERSION):
                    raise SpendLedgerError(f"{self.path}: spend ledger format {version}, this client reads "
                                           f"{_SCHEMA_VERSION}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                connection.close()
                raise
            # An inherited connection (after fork) is dropped, never closed: closing it could release
            # the parent's locks.
            self._connection, self._pid = connection, os.getpid()
            return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextmanager
    def booking(self, now: float) -> Iterator[Booking]:
        """One write transaction: prune, read the totals, add the new entry.

        Pruning deletes only rows that stopped counting a whole window ago, so a process whose clock is
        behind this one's (by less than a window) never loses a row it still counts.
        """
        cutoff = now - self.window_seconds
        with self._transaction() as connection:
            connection.execute(f"DELETE FROM authorizations WHERE NOT {_COUNTED}",
                               {"now": cutoff, "cutoff": cutoff - self.window_seconds})
            yield _SqliteBooking(connection, now, cutoff)

    def entries(self, now: float | None = None) -> list[SpendEntry]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._connect().execute(
                f"SELECT {', '.join(_COLUMNS)} FROM authorizations WHERE {_COUNTED} ORDER BY signed_at, rowid",
                {"now": now, "cutoff": now - self.window_seconds}).fetchall()
        return [_entry_of(row) for row in rows]

    def spent(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            return _SqliteBooking(self._connect(), now, now - self.window_seconds).spent()

    def spent_on(self, key: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            return _SqliteBooking(self._connect(), now, now - self.window_seconds).spent_on(key)

    def mark(self, entry_id: str, status: SpendStatus) -> None:
        """Note the server's answer, best effort: the status changes no total, and failing here (the file
        busy past the timeout) would turn a paid response into an error the caller might retry and pay again.
        """
        if status not in _STATUSES:
            raise ValueError(f"unknown spend status {status!r}")
        try:
            with self._lock:
                self._connect().execute("UPDATE authorizations SET status = ? WHERE id = ?", (status, entry_id))
        except sqlite3.OperationalError as error:
            log.warning("spend ledger %s: could not mark entry %s %s (%s); it counts all the same",
                        self.path, entry_id, status, error)

    def release(self, entry_id: str) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM authorizations WHERE id = ?", (entry_id,))

    def close(self) -> None:
        """Close this process's connection (a later use opens a new one)."""
        with self._lock, self._connect_lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None


def open_spend_ledger(path: str | os.PathLike[str] | None, *, window_seconds: float = DAY_SECONDS) -> SpendLedger:
    """The SQLite ledger at ``path``, or a new in-memory one when ``path`` is None (the default store)."""
    if path is None:
        return SpendLedger(window_seconds)
    return SqliteSpendLedger(path, window_seconds=window_seconds)
