"""Alembic environment: migrations run on the connection the service hands over (see app.ledger.migrate)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from app.gateway import models as gateway_tables
from app.ledger import models as ledger_tables
from app.settlement import models as settlement_tables

# Importing the table modules registers their tables on SQLModel.metadata.
REGISTERED_TABLE_MODULES = (gateway_tables, ledger_tables, settlement_tables)
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through app.ledger.migrate.upgrade_schema(engine)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
