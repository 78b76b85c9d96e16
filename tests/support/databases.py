"""Pytest plugin: every test that takes ``database_url`` or ``engine`` runs on SQLite and PostgreSQL.

- ``postgres_cluster`` (session): one throwaway cluster, started on first use, stopped at the end.
- ``database_url`` (function): ``sqlite`` -> a file in ``tmp_path``; ``postgresql`` -> a fresh
  database on the session cluster. The PostgreSQL case carries the ``postgres`` marker, so
  ``-m "not postgres"`` deselects it; it is never skipped for a missing server.
- ``engine`` (function): ``make_engine(database_url)``, disposed after the test.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from app.db.engine import make_engine
from tests.support.postgres import ThrowawayPostgres

_database_counter = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    with cluster:
        yield cluster


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    cluster: ThrowawayPostgres = request.getfixturevalue("postgres_cluster")
    name = f"test_{os.getpid()}_{next(_database_counter)}"
    return cluster.create_database(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = make_engine(database_url)
    try:
        yield created
    finally:
        created.dispose()
