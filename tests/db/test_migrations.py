"""The migration history builds exactly the schema the SQLModel tables describe, on both backends."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db.migrate import downgrade_schema, head_revision
from app.db.schema import SCHEMA_REVISION, create_schema, schema_revision
from app.tables import metadata


def test_migrations_create_every_table_and_match_the_models(engine):
    create_schema(engine)
    create_schema(engine)  # idempotent: a restart does not fail on an up-to-date database
    tables = set(inspect(engine).get_table_names())
    assert {"agents", "capabilities", "settlements", "journal_lines", "api_keys", "signer_nonces",
            "payment_claims"} <= tables
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata()) == []


def test_the_revision_the_service_checks_at_start_up_is_the_newest_migration():
    # create_schema skips Alembic when the database is at SCHEMA_REVISION: a new migration must move it
    assert head_revision() == SCHEMA_REVISION


def test_an_empty_database_has_no_revision_and_a_migrated_one_is_at_the_head(engine):
    assert schema_revision(engine) is None
    create_schema(engine)
    assert schema_revision(engine) == SCHEMA_REVISION


def test_a_database_at_an_older_revision_is_upgraded_at_start_up(engine):
    create_schema(engine)
    downgrade_schema(engine, "0001")
    assert "payment_claims" not in inspect(engine).get_table_names()
    create_schema(engine)
    assert schema_revision(engine) == SCHEMA_REVISION
    assert "payment_claims" in inspect(engine).get_table_names()
