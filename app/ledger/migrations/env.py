"""Alembic environment: migrations run on the connection the service hands over (see app.ledger.migrate)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import app.ledger.models
import app.settlement.models  # noqa: F401  (registers the settlement tables)

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
