"""`x402-settle keys create|revoke|list`: a key is shown once, authenticates until revoked, and
listings never show the key or its digest. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from app.access.cli import keys_cli
from app.access.keys import hash_key
from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.db.engine import make_engine

cli = typer.Typer()
cli.add_typer(keys_cli, name="keys")
runner = CliRunner()


def run(database_url: str, *args: str):
    return runner.invoke(cli, ["keys", *args, "--database-url", database_url])


def create(database_url: str, *args: str) -> str:
    result = run(database_url, "create", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def active(database_url: str, key: str):
    engine = make_engine(database_url)
    try:
        return ApiKeyRepository(engine).active_by_key(key)
    finally:
        engine.dispose()


def test_created_key_authenticates_until_revoked(database_url):
    result = run(database_url, "create", "--name", "maps-ci", "--scope", "provider", "--provider-team", "maps")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("x402_") and "\n" not in key  # stdout is the key alone, ready for a pipe
    assert "only time the key is shown: it is not stored" in result.stderr
    row = active(database_url, key)
    assert row is not None
    assert (row.name, row.scopes, row.provider_team) == ("maps-ci", ["provider"], "maps")
    assert row.key_hash == hash_key(key) and key not in (row.key_hash, row.prefix)

    revoked = run(database_url, "revoke", "maps-ci")
    assert revoked.exit_code == 0, revoked.output
    assert active(database_url, key) is None
    again = run(database_url, "revoke", "maps-ci")
    assert again.exit_code == 1 and "already revoked" in again.stderr


def test_several_scopes_and_listing_never_shows_key_or_hash(database_url):
    finance = create(database_url, "--name", "finance", "--scope", "finance", "--scope", "admin", "--scope", "finance")
    provider = create(database_url, "--name", "maps", "--scope", "provider", "--provider-team", "maps")
    assert active(database_url, finance).scopes == [Scope.ADMIN.value, Scope.FINANCE.value]
    run(database_url, "revoke", "maps")

    listed = run(database_url, "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["finance"]["scopes"] == ["admin", "finance"] and rows["finance"]["revokedAt"] is None
    assert rows["maps"]["providerTeam"] == "maps" and rows["maps"]["revokedAt"] is not None
    assert rows["maps"]["prefix"] == provider[:9]
    assert rows["finance"]["createdAt"].endswith("Z")  # the one wire form of time
    table = run(database_url, "list")
    assert table.exit_code == 0 and "finance" in table.stdout and "maps" in table.stdout
    for output in (listed.output, table.output):
        for key in (finance, provider):
            assert key not in output
            assert hash_key(key) not in output
        assert "key_hash" not in output and "keyHash" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "p", "--scope", "provider"], "provider_team: a provider key needs the provider team"),
        (["--name", "f", "--scope", "finance", "--provider-team", "maps"], "only a key with the provider scope"),
        (["--name", "p", "--scope", "provider", "--provider-team", "two words"], "provider_team:"),
        (["--name", "  ", "--scope", "admin"], "name: 1-100 characters"),
    ],
)
def test_invalid_key_requests_are_refused(tmp_path, args, message):
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(database_url, "create", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert json.loads(run(database_url, "list", "--json").stdout) == []


def test_unknown_scope_and_duplicate_name_are_refused(database_url):
    assert run(database_url, "create", "--name", "x", "--scope", "root").exit_code == 2
    create(database_url, "--name", "ops", "--scope", "admin")
    duplicate = run(database_url, "create", "--name", "ops", "--scope", "finance")
    assert duplicate.exit_code == 2 and "an API key named 'ops' exists" in duplicate.stderr
    missing = run(database_url, "revoke", "nobody")
    assert missing.exit_code == 1 and "no key named 'nobody'" in missing.stderr
