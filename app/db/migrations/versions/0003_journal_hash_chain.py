"""journal hash chain: content and chain hashes on journal lines, the journal head, append-only triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 10:00:00.000000

Upgrade: adds ``content_hash`` and ``chain_hash`` to ``journal_lines``, fills them for the lines already
booked (in id order, from the genesis value), makes them NOT NULL, creates the one-row ``journal_head``
at the end of that chain, and installs triggers that refuse UPDATE and DELETE of journal lines:
on PostgreSQL a PL/pgSQL function raising an exception (also TRUNCATE; the trigger is ENABLE ALWAYS, so
``session_replication_role = replica`` does not skip it), on SQLite ``RAISE(ABORT, ...)`` triggers.

Note for later migrations: on SQLite, a batch operation that recreates ``journal_lines`` (most column
changes) drops its triggers with the old table; such a migration must create them again.
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from app.db.clock import utc_now, wire_time
from app.db.types import Uint256, UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

# Version 1 of the canonical content and the link, as app.settlement.journal defines them. Written out
# here because a migration must keep meaning what it meant when it ran (and db/ imports no domain);
# tests/db/test_journal_migration.py holds the lines it backfills to the application's own check.
GENESIS = "0" * 64
FIELDS = ("settlement_id", "entry_type", "account", "account_kind", "side", "amount", "asset", "network",
          "agent_id", "team", "cost_center", "capability_id", "provider", "reverses_id", "memo", "booked_at")

journal_lines = sa.table(
    "journal_lines",
    sa.column("id", sa.Integer()), sa.column("settlement_id", sa.Integer()), sa.column("entry_type", sa.String()),
    sa.column("account", sa.String()), sa.column("account_kind", sa.String()), sa.column("side", sa.String()),
    sa.column("amount", Uint256()), sa.column("asset", sa.String()), sa.column("network", sa.String()),
    sa.column("agent_id", sa.String()), sa.column("team", sa.String()), sa.column("cost_center", sa.String()),
    sa.column("capability_id", sa.String()), sa.column("provider", sa.String()),
    sa.column("reverses_id", sa.Integer()), sa.column("memo", sa.String()), sa.column("booked_at", UtcDateTime()),
    sa.column("content_hash", sa.String()), sa.column("chain_hash", sa.String()),
)
journal_head = sa.table(
    "journal_head", sa.column("id", sa.Integer()), sa.column("last_line_id", sa.Integer()),
    sa.column("chain_hash", sa.String()), sa.column("updated_at", UtcDateTime()),
)

PG_FUNCTION = """
CREATE FUNCTION journal_lines_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        RAISE EXCEPTION 'journal_lines is append-only: % of journal line % refused (book a reversing line instead)',
            TG_OP, OLD.id;
    END IF;
    RAISE EXCEPTION 'journal_lines is append-only: % refused (book a reversing line instead)', TG_OP;
END
$$
"""
PG_TRIGGERS = [
    "CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines "
    "FOR EACH ROW EXECUTE FUNCTION journal_lines_refuse_change()",
    "CREATE TRIGGER journal_lines_no_truncate BEFORE TRUNCATE ON journal_lines "
    "FOR EACH STATEMENT EXECUTE FUNCTION journal_lines_refuse_change()",
    "ALTER TABLE journal_lines ENABLE ALWAYS TRIGGER journal_lines_append_only",
    "ALTER TABLE journal_lines ENABLE ALWAYS TRIGGER journal_lines_no_truncate",
]
PG_DROP = [
    "DROP TRIGGER IF EXISTS journal_lines_no_truncate ON journal_lines",
    "DROP TRIGGER IF EXISTS journal_lines_append_only ON journal_lines",
    "DROP FUNCTION IF EXISTS journal_lines_refuse_change()",
]
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER journal_lines_refuse_{operation.lower()} BEFORE {operation} ON journal_lines "
    f"BEGIN SELECT RAISE(ABORT, 'journal_lines is append-only: {operation} refused "
    f"(book a reversing line instead)'); END"
    for operation in ("UPDATE", "DELETE")
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS journal_lines_refuse_update",
               "DROP TRIGGER IF EXISTS journal_lines_refuse_delete"]


def _field_text(name: str, value: object) -> str:
    if name == "booked_at":
        return wire_time(value) or ""  # type: ignore[arg-type]
    if value is None:
        return ""
    return str(value)


def _content_hash(row: sa.Row) -> str:
    parts = ["x402-journal-line/1\n"]
    for name in FIELDS:
        text = _field_text(name, getattr(row, name))
        parts.append(f"{name}={len(text.encode())}:{text}\n")
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def _chain_hash(previous: str, content: str) -> str:
    return hashlib.sha256(f"x402-journal-chain/1\n{previous}\n{content}\n".encode()).hexdigest()


def _backfill(connection: sa.Connection) -> tuple[int | None, str]:
    """Hash every existing line in id order, a page at a time; returns the last line id and chain hash."""
    last_id, previous = None, GENESIS
    update = (
        journal_lines.update().where(journal_lines.c.id == sa.bindparam("line_id"))
        .values(content_hash=sa.bindparam("content"), chain_hash=sa.bindparam("chain"))
    )
    while True:
        page = sa.select(journal_lines).order_by(journal_lines.c.id).limit(BATCH)
        if last_id is not None:
            page = page.where(journal_lines.c.id > last_id)
        rows = connection.execute(page).all()
        if not rows:
            return last_id, previous
        changes = []
        for row in rows:
            content = _content_hash(row)
            previous = _chain_hash(previous, content)
            changes.append({"line_id": row.id, "content": content, "chain": previous})
        connection.execute(update, changes)
        last_id = rows[-1].id


def upgrade() -> None:
    op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_line_id", sa.Integer(), nullable=True),
        sa.Column("chain_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_journal_head_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("journal_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("chain_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    connection = op.get_bind()
    last_id, end = _backfill(connection)
    with op.batch_alter_table("journal_lines", schema=None) as batch_op:
        for column in ("content_hash", "chain_hash"):
            batch_op.alter_column(column, existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
    connection.execute(journal_head.insert().values(id=1, last_line_id=last_id, chain_hash=end, updated_at=utc_now()))
    if connection.dialect.name == "postgresql":
        for statement in [PG_FUNCTION, *PG_TRIGGERS]:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    for statement in PG_DROP if op.get_bind().dialect.name == "postgresql" else SQLITE_DROP:
        op.execute(statement)
    with op.batch_alter_table("journal_lines", schema=None) as batch_op:
        batch_op.drop_column("chain_hash")
        batch_op.drop_column("content_hash")
    op.drop_table("journal_head")
