"""Alembic environment: migrations run on the connection the service hands over (see app.db.migrate).

Upgrades need no table metadata (each revision says what it does). Autogenerating a new revision
compares the database with the tables' metadata, which the caller passes in (``app.tables``), so
this package imports no domain.
"""

from __future__ import annotations

from alembic import context


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through app.db.migrate.upgrade_schema(engine)")
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes.get("target_metadata"),
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
