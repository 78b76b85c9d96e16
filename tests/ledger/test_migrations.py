"""The migration history builds exactly the schema the SQLModel tables describe, on both backends."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from app.ledger.database import create_schema


def test_migrations_create_every_table_and_match_the_models(engine):
    create_schema(engine)
    create_schema(engine)  # idempotent: a restart does not fail on an up-to-date database
    tables = set(inspect(engine).get_table_names())
    assert {"agents", "capabilities", "settlements", "journal_lines", "api_keys", "signer_nonces",
            "payment_claims"} <= tables
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
