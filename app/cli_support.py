"""Shared pieces of the operator commands (registry, keys, export, reconcile): the database, errors, progress bars.

Conventions: results go to stdout (so ``--json`` output and a new key can be piped), messages and
progress bars to stderr. Exit status 2 means the input was refused and nothing was written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine

from app.config import Settings
from app.db.engine import make_engine
from app.db.schema import create_schema

INPUT_REFUSED = 2

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="ledger database URL (default: X402_DATABASE_URL, else an SQLite file in X402_DATA_DIR)",
        show_default=False,
    ),
]


@contextmanager
def open_database(database_url: str | None) -> Iterator[Engine]:
    """An engine on the service's database, its schema brought to the latest migration; disposed on exit."""
    engine = make_engine(database_url or Settings().database_url)
    try:
        create_schema(engine)
        yield engine
    finally:
        engine.dispose()


def refuse(message: str, code: int = INPUT_REFUSED) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def progress_bar() -> Progress:
    """A progress bar on stderr (so it never mixes with output meant for a pipe)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def stdout_console() -> Console:
    """Tables on stdout; when piped, wide enough that no cell is cut (a terminal gets its own width)."""
    return Console(width=None if sys.stdout.isatty() else 1000)
