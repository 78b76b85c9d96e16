"""``x402-settle export``: write a ledger export to a file, with a progress bar.

The function is typer-style so the main CLI registers it as is: ``cli.command("export")(export_command)``.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.config import Settings
from app.db.engine import make_engine
from app.ledger.exports import ExportError, ExportKind, asset_table_from_settings, prepare_export


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
