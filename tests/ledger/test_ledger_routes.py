"""/ledger routes: finance scope required, parameters checked (400, never 500), bodies exact."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.config import Settings
from app.db.schema import create_schema
from app.ledger.routes import router
from app.main import create_app
from tests.ledger.builders import USDC, confirm, reverse, settlement

HUGE = 2**255 + 12345


@pytest.fixture
def service(engine, database_url, tmp_path):
    create_schema(engine)
    confirm(engine, settlement(value=HUGE, agent_id="a1", team="blue"), gas_used=21_000, gas_price=3)
    confirm(engine, settlement(value=5, agent_id="a2", team="red"))
    reverse(engine, confirm(engine, settlement(value=9, agent_id="a2", team="red")).id)
    keys = ApiKeyRepository(engine)
    _, finance = keys.create("finance", [Scope.FINANCE])
    _, admin = keys.create("admin", [Scope.ADMIN])
    _, provider = keys.create("provider", [Scope.PROVIDER], provider_team="maps")
    app = create_app(Settings(data_dir=tmp_path, database_url=database_url))
    if not any(getattr(route, "path", "").startswith("/ledger") for route in app.routes):
        app.include_router(router)
    with TestClient(app) as client:
        yield client, {"finance": finance, "admin": admin, "provider": provider}


def _get(service, path, key="finance", **params):
    client, keys = service
    headers = {"Authorization": f"Bearer {keys[key]}"} if key else {}
    return client.get(path, params=params, headers=headers)


@pytest.mark.parametrize("path", ["/ledger/attribution", "/ledger/settlements", "/ledger/export"])
def test_access_needs_the_finance_scope(service, path):
    missing = _get(service, path, key=None)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    client, _ = service
    wrong = client.get(path, headers={"Authorization": "Bearer x402_not-a-key"})
    assert wrong.status_code == 401
    forbidden = _get(service, path, key="provider")
    assert forbidden.status_code == 403 and "finance" in forbidden.json()["message"]
    assert _get(service, path, key="finance").status_code == 200
    assert _get(service, path, key="admin").status_code == 200


def test_attribution_body(service):
    response = _get(service, "/ledger/attribution", group_by="team", bucket="month", state="confirmed,failed")
    assert response.status_code == 200
    body = response.json()
    assert body["groupBy"] == "team" and body["bucket"] == "month"
    rows = body["rows"]
    assert [(r["group"], r["asset"], r["amount"], r["count"]) for r in rows] == [
        ("blue", USDC, str(HUGE), 1), ("red", USDC, "5", 1),
    ]
    assert rows[0]["fees"] == str(63_000) and rows[0]["bucket"].endswith("-01T00:00:00.000000Z")  # one wire form
    assert _get(service, "/ledger/attribution", group_by="team", state="failed").json()["rows"][0]["amount"] == "0"


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/ledger/attribution", {"group_by": "bogus"}, "group_by must be one of"),
        ("/ledger/attribution", {"bucket": "week"}, "bucket must be one of"),
        ("/ledger/attribution", {"state": "settled"}, "state must be one of"),
        ("/ledger/attribution", {"from": "yesterday"}, "from"),
        ("/ledger/attribution", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "before"),
        ("/ledger/settlements", {"limit": "0"}, "limit"),
        ("/ledger/settlements", {"limit": "many"}, "limit"),
        ("/ledger/settlements", {"cursor": "garbage!"}, "cursor"),
        ("/ledger/settlements", {"payer": "0xnope"}, "payer"),
        ("/ledger/export", {"format": "xlsx"}, "format"),
        ("/ledger/export", {"kind": "rollup", "group_by": "bogus"}, "group_by"),
    ],
)
def test_bad_parameters_are_400(service, path, params, message):
    response = _get(service, path, **params)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_request"
    assert message in response.json()["message"]


def test_settlements_pages(service):
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = _get(service, "/ledger/settlements", **params).json()
        seen += body["items"]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert [item["id"] for item in seen] == [1, 2, 3]
    assert seen[0]["value"] == str(HUGE)
    assert [i["id"] for i in _get(service, "/ledger/settlements", agent_id="a2", state="failed").json()["items"]] == [3]


def test_export_csv_download(service):
    response = _get(service, "/ledger/export", format="csv", kind="journal")
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="x402-ledger-journal-') and disposition.endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert sum(int(r["amount_atomic"]) * (1 if r["side"] == "debit" else -1)
               for r in rows if r["account_kind"] == "agent_spend") == HUGE + 5


def test_export_jsonl_and_parquet_rollups(service):
    jsonl = _get(service, "/ledger/export", format="jsonl", kind="rollup", group_by="agent", bucket="hour")
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    assert 'filename="x402-ledger-rollup-agent-hour-' in jsonl.headers["content-disposition"]
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert sum(int(r["amount_atomic"]) for r in rows) == HUGE + 5
    parquet = _get(service, "/ledger/export", format="parquet", kind="rollup", group_by="team")
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(pa.BufferReader(parquet.content))
    assert sum(int(v) for v in table.column("amount_atomic").to_pylist()) == HUGE + 5
