"""Smoke tests of the storage layer on both backends (SQLite file and throwaway PostgreSQL).

What the settlement ledger relies on: the natural key ``(network, asset, payer, nonce)`` is unique
even under concurrent writers, rollbacks leave nothing behind, and uint256 amounts are exact.
The table here lives in its own registry so the app's ``SQLModel.metadata`` stays untouched.
"""

from __future__ import annotations

import os
import pwd
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, UniqueConstraint, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, func, select

from app.db.engine import check_database, write_connection, write_session
from app.db.types import UINT256_MAX, Uint256, sum_uint256
from tests.support import postgres as postgres_support
from tests.support.postgres import ThrowawayPostgres

NETWORK = "eip155:84532"
USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
NONCE = "0x" + "ab" * 32

_smoke_registry = registry()


class _SmokeModel(SQLModel, registry=_smoke_registry):
    pass


class SmokeAuthorization(_SmokeModel, table=True):
    __tablename__ = "smoke_authorization"
    __table_args__ = (
        UniqueConstraint("network", "asset", "payer", "nonce", name="uq_smoke_authorization_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    network: str
    asset: str
    payer: str
    nonce: str
    value: int = Field(sa_column=Column(Uint256(), nullable=False))


def _authorization(value: int = 1, nonce: str = NONCE, payer: str = PAYER) -> SmokeAuthorization:
    return SmokeAuthorization(network=NETWORK, asset=USDC, payer=payer, nonce=nonce, value=value)


def _count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(SmokeAuthorization)).one()


@pytest.fixture
def tables(engine: Engine) -> Iterator[Engine]:
    _smoke_registry.metadata.create_all(engine)
    yield engine


def test_test_tables_stay_out_of_the_app_metadata() -> None:
    assert "smoke_authorization" not in SQLModel.metadata.tables
    assert "smoke_authorization" in _smoke_registry.metadata.tables


def test_check_database_names_the_dialect(engine: Engine, database_url: str) -> None:
    expected = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    assert check_database(engine) == expected


def test_duplicate_natural_key_is_rejected_and_first_row_kept(tables: Engine) -> None:
    with Session(tables) as session:
        session.add(_authorization(value=111))
        session.commit()
    with Session(tables) as session:
        session.add(_authorization(value=222))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        # a different nonce from the same payer is a different authorization
        session.add(_authorization(value=333, nonce="0x" + "cd" * 32))
        session.commit()
    with Session(tables) as session:
        rows = session.exec(select(SmokeAuthorization).where(SmokeAuthorization.nonce == NONCE)).all()
    assert [row.value for row in rows] == [111]
    assert _count(tables) == 2


def test_rolled_back_transaction_leaves_nothing(tables: Engine) -> None:
    with Session(tables) as session:
        session.add(_authorization())
        session.flush()
        assert session.exec(select(func.count()).select_from(SmokeAuthorization)).one() == 1
        session.rollback()
    with pytest.raises(RuntimeError), tables.begin() as connection:
        connection.execute(
            SmokeAuthorization.__table__.insert(),  # type: ignore[attr-defined]
            {"network": NETWORK, "asset": USDC, "payer": PAYER, "nonce": NONCE, "value": 5},
        )
        raise RuntimeError("abort the transaction")
    assert _count(tables) == 0


def test_concurrent_inserts_of_one_natural_key_produce_one_row(tables: Engine) -> None:
    threads = 20
    barrier = threading.Barrier(threads)
    lock = threading.Lock()
    outcomes: list[str] = []

    def insert(value: int) -> None:
        try:
            with Session(tables) as session:
                session.add(_authorization(value=value))
                barrier.wait(timeout=30)
                session.commit()
            result = "ok"
        except IntegrityError:
            result = "integrity"
        except Exception as error:
            result = f"unexpected {type(error).__name__}: {error}"
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=insert, args=(value,)) for value in range(1, threads + 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers)
    assert sorted(outcomes) == ["integrity"] * (threads - 1) + ["ok"], outcomes
    assert _count(tables) == 1


UINT256_VALUES = [0, 1, 2**63 - 1, 2**64, 2**255, 10**77, UINT256_MAX]  # ascending


def test_uint256_round_trips_compares_and_orders(tables: Engine, database_url: str) -> None:
    with Session(tables) as session:
        for index, value in enumerate(reversed(UINT256_VALUES)):
            session.add(_authorization(value=value, nonce=f"0x{index:064x}"))
        session.commit()
    value_column = SmokeAuthorization.value
    with Session(tables) as session:
        ordered = session.exec(select(SmokeAuthorization.value).order_by(value_column)).all()
        assert ordered == UINT256_VALUES
        assert all(type(value) is int for value in ordered)
        top = session.exec(select(SmokeAuthorization).where(value_column == UINT256_MAX)).one()
        assert top.value == UINT256_MAX
        above = session.exec(
            select(SmokeAuthorization.value).where(value_column > 2**64).order_by(value_column.desc())
        ).all()
        assert above == [UINT256_MAX, 10**77, 2**255]
        assert session.exec(select(func.max(value_column))).one() == UINT256_MAX
        assert session.exec(select(func.min(value_column))).one() == 0

    with tables.connect() as connection:
        if database_url.startswith("sqlite"):
            stored = connection.execute(
                text("SELECT value FROM smoke_authorization WHERE value = :v"), {"v": "0" * 77 + "1"}
            ).scalar_one()
            assert stored == "0" * 77 + "1"  # zero-padded TEXT: string order is numeric order
        else:
            column = next(c for c in inspect(connection).get_columns("smoke_authorization")
                          if c["name"] == "value")
            assert (column["type"].precision, column["type"].scale) == (78, 0)


@pytest.mark.parametrize("bad", [-1, UINT256_MAX + 1])
def test_uint256_rejects_out_of_range_values(tables: Engine, bad: int) -> None:
    with Session(tables) as session:
        session.add(_authorization(value=bad))
        with pytest.raises(StatementError, match="out of range"):
            session.commit()
    assert _count(tables) == 0


def test_sum_uint256_is_exact_beyond_int64_and_float(tables: Engine) -> None:
    other_payer = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    with Session(tables) as session:
        session.add(_authorization(value=2**255, nonce="0x01"))
        session.add(_authorization(value=2**255 - 1, nonce="0x02"))
        session.add(_authorization(value=UINT256_MAX, nonce="0x03", payer=other_payer))
        session.add(_authorization(value=UINT256_MAX, nonce="0x04", payer=other_payer))
        session.commit()

    value_column = SmokeAuthorization.value
    with Session(tables) as session:
        assert sum_uint256(session, value_column, SmokeAuthorization.payer == PAYER) == UINT256_MAX
        # totals may exceed uint256 itself: still exact
        assert sum_uint256(session, value_column, SmokeAuthorization.payer == other_payer) == 2 * UINT256_MAX
        assert sum_uint256(session, value_column) == 3 * UINT256_MAX
        assert sum_uint256(session, value_column, SmokeAuthorization.payer == "nobody") == 0
    with tables.connect() as connection:
        assert sum_uint256(connection, value_column, SmokeAuthorization.payer == PAYER) == UINT256_MAX


@pytest.mark.postgres
def test_throwaway_postgres_runs_as_non_root(postgres_cluster: ThrowawayPostgres) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(postgres_cluster.url())
    try:
        with engine.connect() as connection:
            data_directory = connection.execute(text("SELECT current_setting('data_directory')")).scalar_one()
            server_user = connection.execute(text("SELECT current_user")).scalar_one()
    finally:
        engine.dispose()
    assert server_user == "postgres"
    owner = Path(data_directory).stat().st_uid
    status = Path(f"/proc/{postgres_cluster.server_pid()}/status").read_text()
    process_uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    assert process_uid == owner
    if os.geteuid() == 0:
        assert owner != 0
        assert owner == pwd.getpwnam("postgres").pw_uid
    else:
        assert owner == os.geteuid()


def test_missing_server_binaries_are_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres_support.shutil, "which", lambda _name: None)
    monkeypatch.setattr(postgres_support.glob, "glob", lambda _pattern: [])
    with pytest.raises(RuntimeError, match="Install PostgreSQL 15"):
        ThrowawayPostgres()


@pytest.mark.parametrize("open_writer", [write_session, write_connection], ids=["session", "connection"])
def test_sqlite_writers_of_one_process_take_turns_and_postgresql_writers_do_not_wait(engine: Engine,
                                                                                     open_writer) -> None:
    # On SQLite a second writer queues on the process's lock until the first one's session closes,
    # instead of sleeping in SQLite's busy handler; PostgreSQL has row locks and no such queue.
    first_inside, release_first = threading.Event(), threading.Event()
    events: list[str] = []

    def first() -> None:
        with open_writer(engine):
            first_inside.set()
            release_first.wait(5)
            events.append("first leaves")

    def second() -> None:
        with open_writer(engine):
            events.append("second enters")

    holder = threading.Thread(target=first)
    holder.start()
    assert first_inside.wait(5)
    waiter = threading.Thread(target=second)
    waiter.start()
    if engine.dialect.name == "sqlite":
        waiter.join(0.3)
        assert events == []  # still queued behind the first writer
    else:
        waiter.join(5)  # in straight away, however slowly its connection opens
    release_first.set()
    holder.join(5)
    waiter.join(5)
    if engine.dialect.name == "sqlite":
        assert events == ["first leaves", "second enters"]
    else:
        assert events == ["second enters", "first leaves"]


def test_many_concurrent_writers_all_commit(tables: Engine) -> None:
    def insert(index: int) -> None:
        with write_session(tables) as session:
            session.add(_authorization(value=index, nonce=f"0x{index:064x}"))
            session.commit()

    threads = [threading.Thread(target=insert, args=(index,)) for index in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert _count(tables) == 40
