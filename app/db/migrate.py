"""Schema migrations (Alembic), one history for SQLite and PostgreSQL.

The service upgrades to the latest revision at start-up; ``new_revision`` is the maintainer's tool
for writing the next migration from the tables (``app.tables.metadata()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: object, target_metadata: MetaData | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = target_metadata
    return config


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for migrations: committed whole, or rolled back whole.

    SQLite needs two things more. Its driver begins a transaction only before DML, so DDL would commit
    statement by statement and a failed migration would leave half a schema: the transaction is begun
    explicitly. And a migration that changes a table copies it and drops the original (Alembic's batch
    mode); the drop fails a foreign-key check when rows reference that table (journal lines reference the
    lines they reverse), so foreign keys are switched off around the migration, where SQLite allows it
    (outside a transaction), and every reference is checked before the commit, which is SQLite's own
    procedure for changing a table.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            yield connection
        return
    with engine.connect() as connection:
        _sqlite_foreign_keys(connection, on=False)
        try:
            with connection.begin():
                connection.exec_driver_sql("BEGIN")
                yield connection
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration would leave rows with dangling references: {broken[:5]}")
        finally:
            _sqlite_foreign_keys(connection, on=True)


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()


def upgrade_schema(engine: Engine) -> None:
    """Bring the database to the latest revision (idempotent)."""
    with _migrating(engine) as connection:
        command.upgrade(_config(connection), "head")


def new_revision(engine: Engine, message: str, target_metadata: MetaData) -> None:
    """Autogenerate a migration from the difference between ``target_metadata`` (every table:
    ``app.tables.metadata()``) and ``engine``'s database."""
    with engine.begin() as connection:
        command.revision(_config(connection, target_metadata), message=message, autogenerate=True)


def downgrade_schema(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (an operator's rollback; the tests use it to age a database)."""
    with _migrating(engine) as connection:
        command.downgrade(_config(connection), revision)


def head_revision() -> str:
    """The newest revision in the migration history."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head
