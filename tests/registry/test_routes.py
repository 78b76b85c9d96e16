"""Registry API on SQLite and PostgreSQL: who may read and write capabilities and agents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.config import Settings
from app.db.schema import create_schema
from app.main import create_app
from app.registry.repository import RegistryRepository
from app.registry.routes import router as registry_router

USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
NETWORK = "eip155:84532"
PAY_TO = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def capability_body(**overrides) -> dict:
    body = {"providerTeam": "maps", "name": "Geocode", "price": "10000", "asset": USDC, "network": NETWORK,
            "payTo": PAY_TO.lower(), "route": "/geocode", "status": "pending"}
    body.update(overrides)
    return body


@pytest.fixture
def keys(engine) -> dict[str, str]:
    create_schema(engine)
    repository = ApiKeyRepository(engine)
    made = {
        "admin": repository.create("admin", [Scope.ADMIN])[1],
        "finance": repository.create("finance", [Scope.FINANCE])[1],
        "maps": repository.create("maps-provider", [Scope.PROVIDER], "maps")[1],
        "search": repository.create("search-provider", [Scope.PROVIDER], "search")[1],
        "facilitator": repository.create("facilitator", [Scope.FACILITATOR])[1],
    }
    made["revoked"] = repository.create("revoked", [Scope.ADMIN])[1]
    repository.revoke("revoked")
    return made


@pytest.fixture
def client(tmp_path, database_url, keys) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path, database_url=database_url))
    if not any(getattr(route, "path", None) == "/capabilities" for route in app.routes):
        app.include_router(registry_router)
    with TestClient(app) as test_client:
        yield test_client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_registry_route_needs_a_key(client, keys):
    for method, path in [("GET", "/capabilities"), ("PUT", "/capabilities/geocode"),
                         ("POST", "/capabilities/geocode/status"), ("GET", "/agents"), ("PUT", "/agents/a1")]:
        response = client.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    for key in ("x402_not-a-key", keys["revoked"]):
        wrong = client.get("/capabilities", headers=auth(key))
        assert wrong.status_code == 401 and "not valid or has been revoked" in wrong.json()["message"]


def test_the_key_is_checked_before_the_body_is_read(client):
    for method, path in [("PUT", "/capabilities/geocode"), ("POST", "/capabilities/geocode/status"),
                         ("PUT", "/agents/a1")]:
        for body in (b"not json", b"x" * (64 * 1024 + 1)):
            response = client.request(method, path, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 401, (method, path, response.status_code)


def test_admin_creates_and_replaces_a_capability(client, engine, keys):
    created = client.put("/capabilities/geocode", json=capability_body(), headers=auth(keys["admin"]))
    assert created.status_code == 201, created.json()
    assert created.json()["payTo"] == PAY_TO and created.json()["price"] == "10000"
    big = str(2**256 - 1)
    replaced = client.put("/capabilities/geocode", json=capability_body(price=big, name="Geocode v2"),
                          headers=auth(keys["admin"]))
    assert replaced.status_code == 200, replaced.json()
    assert replaced.json()["createdAt"] == created.json()["createdAt"]
    stored = RegistryRepository(engine).capability("geocode")
    assert (stored.price, stored.name, stored.pay_to) == (2**256 - 1, "Geocode v2", PAY_TO)
    listed = client.get("/capabilities", headers=auth(keys["facilitator"]))  # any valid key may read
    assert listed.status_code == 200 and [c["price"] for c in listed.json()] == [big]


def test_finance_key_cannot_write_capabilities(client, keys):
    response = client.put("/capabilities/geocode", json=capability_body(), headers=auth(keys["finance"]))
    assert response.status_code == 403
    assert response.json()["message"] == "the key 'finance' lacks the admin or provider scope"


def test_provider_writes_only_its_own_team(client, engine, keys):
    own = client.put("/capabilities/geocode", json=capability_body(), headers=auth(keys["maps"]))
    assert own.status_code == 201, own.json()
    again = client.put("/capabilities/geocode", json=capability_body(price=5), headers=auth(keys["maps"]))
    assert again.status_code == 200
    # Another team's provider can neither create for the maps team nor take over maps' capability.
    for_other_team = client.put("/capabilities/tiles", json=capability_body(route="/tiles"),
                                headers=auth(keys["search"]))
    assert for_other_team.status_code == 403
    assert "'maps'" in for_other_team.json()["message"] and "'search'" in for_other_team.json()["message"]
    take_over = client.put("/capabilities/geocode", json=capability_body(providerTeam="search"),
                           headers=auth(keys["search"]))
    assert take_over.status_code == 403
    assert "capability 'geocode' belongs to team 'maps'" in take_over.json()["message"]
    # Nor can the owner give it away to another team's id space by renaming the team.
    give_away = client.put("/capabilities/geocode", json=capability_body(providerTeam="search"),
                           headers=auth(keys["maps"]))
    assert give_away.status_code == 403
    assert RegistryRepository(engine).capability("geocode").provider_team == "maps"
    assert RegistryRepository(engine).capability("geocode").price == 5
    assert RegistryRepository(engine).capability("tiles") is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"price": "1.5"}, "price"),
        ({"price": 1.5}, "price"),
        ({"price": -1}, "price"),
        ({"price": str(2**256)}, "price"),
        ({"price": True}, "price"),
        ({"payTo": "0x1234"}, "pay_to"),
        ({"asset": "0x" + "g" * 40}, "asset"),
        ({"network": "eip155:1234567"}, "network"),
        ({"route": None}, "route"),
        ({"status": "live"}, "status"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_capability_is_400_naming_the_field(client, engine, keys, overrides, field):
    response = client.put("/capabilities/geocode", json=capability_body(**overrides), headers=auth(keys["admin"]))
    assert response.status_code == 400, response.json()
    assert response.json()["error"] == "malformed_request"
    assert response.json()["message"].startswith(f"{field}:")
    assert RegistryRepository(engine).capability("geocode") is None


def test_body_id_must_match_the_path(client, keys):
    response = client.put("/capabilities/geocode", json=capability_body(id="other"), headers=auth(keys["admin"]))
    assert response.status_code == 400 and response.json()["message"].startswith("id:")


def test_status_change_persists_and_is_limited_to_admin_and_owner(client, engine, keys):
    client.put("/capabilities/geocode", json=capability_body(), headers=auth(keys["admin"]))
    other = client.post("/capabilities/geocode/status", json={"status": "suspended"}, headers=auth(keys["search"]))
    assert other.status_code == 403 and "belongs to team 'maps'" in other.json()["message"]
    finance = client.post("/capabilities/geocode/status", json={"status": "suspended"}, headers=auth(keys["finance"]))
    assert finance.status_code == 403
    owner = client.post("/capabilities/geocode/status", json={"status": "suspended"}, headers=auth(keys["maps"]))
    assert owner.status_code == 200 and owner.json()["status"] == "suspended"
    assert RegistryRepository(engine).capability("geocode").status == "suspended"
    suspended = client.get("/capabilities", params={"status": "suspended"}, headers=auth(keys["finance"]))
    assert [c["id"] for c in suspended.json()] == ["geocode"]
    assert client.get("/capabilities", params={"status": "approved"}, headers=auth(keys["finance"])).json() == []
    admin = client.post("/capabilities/geocode/status", json={"status": "approved"}, headers=auth(keys["admin"]))
    assert admin.status_code == 200 and RegistryRepository(engine).capability("geocode").status == "approved"
    bad = client.post("/capabilities/geocode/status", json={"status": "gone"}, headers=auth(keys["admin"]))
    assert bad.status_code == 400 and bad.json()["message"].startswith("status:")
    missing = client.post("/capabilities/nope/status", json={"status": "approved"}, headers=auth(keys["admin"]))
    assert missing.status_code == 404
    assert client.get("/capabilities", params={"status": "x"}, headers=auth(keys["admin"])).status_code == 400


def test_agents_are_read_by_finance_and_written_by_admin_only(client, keys):
    body = {"wallet": WALLET.lower(), "name": "Fleet 7", "team": "logistics", "costCenter": "cc-1200",
            "labels": {"env": "prod"}}
    for key in ("finance", "maps"):
        denied = client.put("/agents/fleet-7", json=body, headers=auth(keys[key]))
        assert denied.status_code == 403 and "lacks the admin scope" in denied.json()["message"]
    created = client.put("/agents/fleet-7", json=body, headers=auth(keys["admin"]))
    assert created.status_code == 201, created.json()
    assert created.json()["wallet"] == WALLET and created.json()["labels"] == {"env": "prod"}
    updated = client.put("/agents/fleet-7", json={**body, "team": "search"}, headers=auth(keys["admin"]))
    assert updated.status_code == 200 and updated.json()["team"] == "search"
    clash = client.put("/agents/other", json={**body}, headers=auth(keys["admin"]))
    assert clash.status_code == 409 and WALLET in clash.json()["message"]
    bad = client.put("/agents/Bad_Id", json=body, headers=auth(keys["admin"]))
    assert bad.status_code == 400 and bad.json()["message"].startswith("agent_id:")
    assert client.get("/agents", headers=auth(keys["maps"])).status_code == 403
    for key in ("finance", "admin"):
        listed = client.get("/agents", headers=auth(keys[key]))
        assert listed.status_code == 200
        assert [(a["agentId"], a["team"], a["costCenter"]) for a in listed.json()] == [("fleet-7", "search", "cc-1200")]


def test_only_an_admin_makes_a_capability_payable(client, engine, keys):
    assert client.put("/capabilities/geocode", json=capability_body(), headers=auth(keys["maps"])).status_code == 201
    self_approved = client.post("/capabilities/geocode/status", json={"status": "approved"},
                                headers=auth(keys["maps"]))
    assert self_approved.status_code == 403
    assert "an admin approves" in self_approved.json()["message"]
    put_approved = client.put("/capabilities/geocode", json=capability_body(status="approved"),
                              headers=auth(keys["maps"]))
    assert put_approved.status_code == 403
    assert RegistryRepository(engine).capability("geocode").status == "pending"
    approved = client.post("/capabilities/geocode/status", json={"status": "approved"}, headers=auth(keys["admin"]))
    assert approved.status_code == 200
    # Once approved, the provider may re-price it without losing the approval, and may suspend it.
    repriced = client.put("/capabilities/geocode", json=capability_body(status="approved", price="20000"),
                          headers=auth(keys["maps"]))
    assert repriced.status_code == 200
    suspended = client.post("/capabilities/geocode/status", json={"status": "suspended"},
                            headers=auth(keys["maps"]))
    assert suspended.status_code == 200
    assert RegistryRepository(engine).capability("geocode").status == "suspended"
