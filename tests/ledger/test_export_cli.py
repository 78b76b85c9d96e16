"""``export`` command: writes the file the API would stream, refuses bad options with exit code 2."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from app.db.schema import create_schema
from app.ledger.cli import export_command
from tests.ledger.builders import confirm, settlement

HUGE = 2**255

app = typer.Typer()
app.command("export")(export_command)
app.command("noop")(lambda: None)  # two commands, so "export" stays a subcommand as in x402-settle


@pytest.fixture
def ledger(engine):
    create_schema(engine)
    confirm(engine, settlement(value=HUGE, agent_id="a1", team="blue"), gas_used=21_000, gas_price=3)
    confirm(engine, settlement(value=5, agent_id="a2", team="red"))
    return engine


def _run(*args: str):
    return CliRunner().invoke(app, ["export", *args])


def test_journal_csv(ledger, database_url, tmp_path):
    output = tmp_path / "out" / "journal.csv"
    result = _run("--format", "csv", "--kind", "journal", "--output", str(output), "--database-url", database_url)
    assert result.exit_code == 0, result.output
    assert "wrote 6 rows" in result.output
    rows = list(csv.DictReader(output.open(newline="")))
    assert len(rows) == 6
    assert sum(int(r["amount_atomic"]) for r in rows if r["account_kind"] == "agent_spend") == HUGE + 5
    assert not (tmp_path / "out" / "journal.csv.partial").exists()


def test_rollup_parquet_with_window(ledger, database_url, tmp_path):
    output = tmp_path / "rollup.parquet"
    result = _run("--format", "parquet", "--kind", "rollup", "--group-by", "team", "--bucket", "month",
                  "--from", "2000-01-01", "--to", "2100-01-01", "--output", str(output),
                  "--database-url", database_url)
    assert result.exit_code == 0, result.output
    rows = pq.read_table(output).to_pylist()
    assert [(r["group"], r["amount_atomic"]) for r in rows] == [("blue", str(HUGE)), ("red", "5")]


def test_jsonl_state_filter(ledger, database_url, tmp_path):
    output = tmp_path / "journal.jsonl"
    result = _run("--format", "jsonl", "--state", "failed", "--output", str(output), "--database-url", database_url,
                  "--quiet")
    assert result.exit_code == 0, result.output
    assert output.read_text() == ""
    assert [json.loads(line) for line in output.read_text().splitlines()] == []


def test_bad_option_exits_2_without_a_file(ledger, database_url, tmp_path):
    output = tmp_path / "x.csv"
    result = _run("--format", "xlsx", "--output", str(output), "--database-url", database_url)
    assert result.exit_code == 2
    assert "format must be one of" in result.output
    assert not output.exists()
