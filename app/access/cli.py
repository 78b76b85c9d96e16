"""``x402-settle keys ...``: create, revoke and list API keys.

A key is printed once, when it is created, and only its SHA-256 digest is stored: listings show its
name, prefix, scopes, team and dates, never the key or the digest.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.access.schemas import key_to_json
from app.cli_support import DatabaseUrlOption, open_database, refuse, stdout_console
from app.db.errors import DuplicateError
from app.validation import FieldError, validate_name

keys_cli = typer.Typer(help="API keys: scopes admin, finance, provider, facilitator; stored only as hashes.",
                       no_args_is_help=True)


@keys_cli.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="a unique name for the key, e.g. finance-reports")],
    scope: Annotated[list[Scope], typer.Option(help="granted scope, repeatable", show_default=False)],
    provider_team: Annotated[
        str | None, typer.Option(help="the team a provider key may write capabilities for")
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a key and print it once: it is not stored, so keep it now."""
    name = name.strip()
    if not name or len(name) > 100:
        refuse("name: 1-100 characters")
    scopes = sorted(set(scope), key=lambda item: item.value)
    if provider_team is not None:
        if Scope.PROVIDER not in scopes:
            refuse("provider_team: only a key with the provider scope has a provider team")
        try:
            provider_team = validate_name(provider_team, "provider_team")
        except FieldError as error:
            refuse(str(error))
    with open_database(database_url) as engine:
        try:
            row, key = ApiKeyRepository(engine).create(name, scopes, provider_team)
        except DuplicateError as error:
            refuse(str(error))
        except ValueError as error:  # a provider key without its team
            refuse(f"provider_team: {error}")
    team = f", provider team {row.provider_team}" if row.provider_team else ""
    typer.secho(f"created key {row.name!r} with scope(s) {', '.join(row.scopes)}{team}", err=True)
    typer.secho("This is the only time the key is shown: it is not stored. Keep it now.",
                fg=typer.colors.YELLOW, err=True)
    typer.echo(key)


@keys_cli.command("revoke")
def revoke_key(
    name: Annotated[str, typer.Argument(help="the key's name", show_default=False)],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a key: from now on it authenticates nothing."""
    with open_database(database_url) as engine:
        repository = ApiKeyRepository(engine)
        if not repository.revoke(name):
            known = any(row.name == name for row in repository.list())
            refuse(f"key {name!r} is already revoked" if known else f"no key named {name!r}", code=1)
    typer.echo(f"revoked key {name!r}")


@keys_cli.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Every key, active and revoked, by name."""
    with open_database(database_url) as engine:
        rows = ApiKeyRepository(engine).list()
    if as_json:
        typer.echo(json.dumps([key_to_json(row) for row in rows], indent=2))
        return
    table = Table("name", "prefix", "scopes", "provider team", "created", "revoked", title=f"{len(rows)} keys")
    for row in rows:
        shown = key_to_json(row)
        table.add_row(row.name, f"{row.prefix}...", ", ".join(row.scopes), row.provider_team or "",
                      str(shown["createdAt"])[:19].replace("T", " "),
                      str(shown["revokedAt"])[:19].replace("T", " ") if row.revoked_at else "")
    stdout_console().print(table)
