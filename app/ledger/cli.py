"""``x402-settle export``: write a ledger export to a file, with a progress bar; ``x402-settle ledger verify``:
walk the journal's hash chain.

``export_command`` is typer-style so the main CLI registers it as is: ``cli.command("export")(export_command)``;
``ledger_cli`` is a group (``x402-settle ledger verify``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.cli_support import DatabaseUrlOption
from app.config import Settings
from app.db.engine import make_engine
from app.db.schema import SCHEMA_REVISION, schema_revision
from app.ledger.exports import ExportError, ExportKind, asset_table_from_settings, prepare_export
from app.ledger.integrity import JournalUnreadable, JournalVerdict, verify_journal

EXIT_INTACT = 0
EXIT_BROKEN = 1
EXIT_CANNOT_RUN = 2


def export_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write (replaced atomically)")],
    format: Annotated[str, typer.Option("--format", help="csv | jsonl | parquet")] = "csv",
    kind: Annotated[str, typer.Option("--kind", help="journal (one row per line) | rollup (attribution)")] = "journal",
    start: Annotated[datetime | None, typer.Option("--from", help="inclusive start, UTC (booked_at)")] = None,
    end: Annotated[datetime | None, typer.Option("--to", help="exclusive end, UTC (booked_at)")] = None,
    group_by: Annotated[str, typer.Option("--group-by", help="rollup: agent|team|cost_center|capability|provider")]
    = "agent",
    bucket: Annotated[str, typer.Option("--bucket", help="rollup: hour | day | month")] = "day",
    state: Annotated[list[str] | None, typer.Option("--state", help="only settlements in this state (repeatable)")]
    = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="default: X402_DATABASE_URL")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Export journal lines or attribution rollups as CSV, JSON Lines or Parquet (docs/export-schema.md)."""
    settings = Settings()
    engine = make_engine(database_url or settings.database_url)
    console = Console(stderr=True, quiet=quiet)
    try:
        try:
            request = prepare_export(engine, asset_table_from_settings(settings), format=format, kind=kind,
                                     start=start, end=end, group_by=group_by, bucket=bucket, states=state)
        except ExportError as error:
            typer.secho(f"export: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        total = request.count_rows() if request.kind is ExportKind.JOURNAL else None
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".partial")
        written = 0
        columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn()]
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"{request.kind.value} -> {output.name}", total=total)

            def advance(rows: int) -> None:
                nonlocal written
                written += rows
                progress.advance(task, rows)

            try:
                with partial.open("wb") as handle:
                    for chunk in request.chunks(on_rows=advance):
                        handle.write(chunk)
                os.replace(partial, output)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        typer.echo(f"wrote {written} rows to {output}", err=True)
    finally:
        engine.dispose()


ledger_cli = typer.Typer(no_args_is_help=True)


@ledger_cli.command("verify")
def verify_command(
    database_url: DatabaseUrlOption = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="lines read per round trip")] = 10_000,
) -> None:
    """Walk the whole journal in id order and check every line's hashes and where the chain ends.

    Exit 0 when the chain verifies, 1 naming the first broken line, 2 when it cannot run.
    """
    engine = make_engine(database_url or Settings().database_url)
    try:
        verdict = _verify(engine, batch)
    finally:
        engine.dispose()
    typer.echo(verdict.describe())
    raise typer.Exit(EXIT_INTACT if verdict.intact else EXIT_BROKEN)


def _verify(engine: Engine, batch: int) -> JournalVerdict:
    """The verdict, or exit 2 with the reason it could not be reached. The database is only read: a
    check must not migrate what it checks."""
    try:
        revision = schema_revision(engine)
        if revision != SCHEMA_REVISION:
            _cannot_run(f"the database is at schema revision {revision or 'none'}, this x402-settle expects "
                        f"{SCHEMA_REVISION}: migrate it first (x402-settle serve does at start-up)")
        return verify_journal(engine, batch)
    except JournalUnreadable as error:
        _cannot_run(str(error))
    except SQLAlchemyError as error:
        _cannot_run(f"cannot read the ledger database ({type(error).__name__}): {error.__cause__ or error}")


def _cannot_run(message: str) -> NoReturn:
    typer.secho(f"ledger verify: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(EXIT_CANNOT_RUN)
