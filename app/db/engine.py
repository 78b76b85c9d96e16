"""Database engines: SQLite (embedded default) and PostgreSQL (production), and the writers' turn.

Only repositories issue SQL; this module only knows how to connect, whether the store answers, and how
writers of one process take turns on SQLite.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine


def make_engine(url: str) -> Engine:
    """An engine configured for the backend named by ``url``.

    SQLite gets WAL and a busy timeout so the settlement worker and the API can share one file;
    its parent directory is created so a fresh checkout runs without a manual step.
    PostgreSQL URLs without a driver are pointed at psycopg 3.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def check_database(engine: Engine) -> str:
    """Round-trip a query; returns the backend name or raises the driver's error."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return engine.dialect.name


_sqlite_writers: dict[str, threading.Lock] = {}
_sqlite_writers_guard = threading.Lock()


@contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """On SQLite, wait for this process's writers to take turns; on PostgreSQL, nothing.

    SQLite admits one writer at a time; the others sleep and retry (up to 100 ms a try), which is unfair:
    under a burst of settlements an unlucky writer keeps missing its turn and its request's latency
    grows to seconds. Queuing on a lock wakes the next writer as soon as the last one commits.
    Readers never wait (WAL), and writers in other processes still wait through the busy timeout.
    PostgreSQL has row locks and needs none of this.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    key = str(engine.url)
    with _sqlite_writers_guard:
        lock = _sqlite_writers.setdefault(key, threading.Lock())
    with lock:
        yield


@contextmanager
def write_session(engine: Engine, **options: Any) -> Iterator[Session]:
    """An ORM session for a write transaction, in this process's writers' turn (``writer_turn``)."""
    with writer_turn(engine), Session(engine, **options) as session:
        yield session


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction (committed on exit, rolled back on error), in the writers' turn.

    For single statements (a conditional UPDATE, a nonce bump) the ORM session is overhead: a plain
    connection runs them in half the time (about 160 µs instead of 320 µs on SQLite).
    """
    with writer_turn(engine), engine.begin() as connection:
        yield connection


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection in one read transaction: every statement in the block sees the same moment.

    A check that reads a table in several statements (the journal head, then its lines) must not see a
    booking that lands between them, or it would report a break that is not there. PostgreSQL gets a
    REPEATABLE READ, READ ONLY transaction. SQLite's driver opens no transaction for reads on its own, so
    one is begun explicitly; in WAL mode it holds its snapshot without blocking any writer.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            snapshot = connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with snapshot.begin():
                yield snapshot
            return
        connection.exec_driver_sql("BEGIN")
        try:
            yield connection
        finally:
            connection.rollback()
