"""Schema migrations (Alembic), one history for SQLite and PostgreSQL.

The service upgrades to the latest revision at start-up; ``new_revision`` is the maintainer's tool
for writing the next migration from the tables (``app.tables.metadata()``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: object, target_metadata: MetaData | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = target_metadata
    return config


def upgrade_schema(engine: Engine) -> None:
    """Bring the database to the latest revision (idempotent)."""
    with engine.begin() as connection:
        command.upgrade(_config(connection), "head")


def new_revision(engine: Engine, message: str, target_metadata: MetaData) -> None:
    """Autogenerate a migration from the difference between ``target_metadata`` (every table:
    ``app.tables.metadata()``) and ``engine``'s database."""
    with engine.begin() as connection:
        command.revision(_config(connection, target_metadata), message=message, autogenerate=True)


def downgrade_schema(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (an operator's rollback; the tests use it to age a database)."""
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def head_revision() -> str:
    """The newest revision in the migration history."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head
