"""``GET /discovery/resources``: only payable capabilities, in the bazaar shape, filtered and paginated;
a malformed query is a 400."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.registry.models import Capability, CapabilityStatus
from tests.gateway.conftest import FORECAST_PRICE, offered
from tests.support.payments import BASE_SEPOLIA, USDC

URL = "/discovery/resources"


@pytest.fixture
def catalogue(registry, dev_deployment):
    """forecast (approved, in-process route) and maps (approved, behind the proxy) are listed; the rest not."""
    first, second = (w.address for w in dev_deployment.wallets.providers[:2])

    def add(capability_id: str, pay_to: str = second, **fields) -> None:
        values = {"provider_team": "geo", "name": capability_id.title(), "description": f"{capability_id} data",
                  "price": 1_000, "asset": USDC, "network": BASE_SEPOLIA, "pay_to": pay_to, "status": "approved",
                  "upstream_url": "http://maps.internal:8080/v1", "method": "POST", **fields}
        registry.put_capability(Capability(id=capability_id, **values))

    add("maps")
    add("pending-one", status="pending")
    add("suspended-one", status="suspended")
    add("elsewhere", network="eip155:8453")  # Base mainnet: not enabled in this service
    add("odd-asset", asset="0x0000000000000000000000000000000000000001")  # not a configured token
    add("nowhere", upstream_url=None)  # neither a route nor an upstream: no URL to call
    return first, second


def resources(gateway, **params) -> list[str]:
    response = gateway.get(URL, params=params)
    assert response.status_code == 200, response.text
    return [item["metadata"]["capabilityId"] for item in response.json()["items"]]


def test_only_approved_payable_capabilities_are_listed_in_the_bazaar_shape(gateway, catalogue):
    first, second = catalogue
    response = gateway.get(URL)  # public: no key
    assert response.status_code == 200
    body = response.json()
    assert body["x402Version"] == 2
    assert body["pagination"] == {"limit": 20, "offset": 0, "total": 2}
    forecast, maps = body["items"]

    assert set(forecast) == {"resource", "type", "x402Version", "accepts", "lastUpdated", "description", "mimeType",
                             "metadata"}
    assert forecast["resource"] == "http://testserver/examples/forecast"
    assert (forecast["type"], forecast["x402Version"]) == ("http", 2)
    assert forecast["accepts"] == [offered(gateway.get("/examples/forecast"))]  # exactly what the 402 offers
    assert forecast["accepts"][0]["amount"] == str(FORECAST_PRICE) and forecast["accepts"][0]["payTo"] == first
    assert datetime.fromisoformat(forecast["lastUpdated"]).tzinfo is not None
    assert forecast["metadata"] == {"name": "Forecast", "description": "A paid forecast", "providerTeam": "weather",
                                    "capabilityId": "forecast", "method": "GET", "mimeType": "application/json"}

    assert maps["resource"] == "http://testserver/cap/maps"
    assert maps["accepts"] == [offered(gateway.get("/cap/maps"))]
    assert maps["accepts"][0]["payTo"] == second
    assert maps["metadata"]["method"] == "POST" and maps["metadata"]["providerTeam"] == "geo"


def test_a_status_change_shows_in_the_next_listing(gateway, registry, catalogue):
    registry.set_capability_status("maps", CapabilityStatus.SUSPENDED)
    registry.set_capability_status("pending-one", CapabilityStatus.APPROVED)
    assert resources(gateway) == ["forecast", "pending-one"]


def test_filters(gateway, catalogue):
    first, second = catalogue
    assert resources(gateway, payTo=second) == ["maps"]
    assert resources(gateway, payTo=first.lower()) == ["forecast"]  # addresses compare case-insensitively
    assert resources(gateway, payTo="0x" + "ab" * 20) == []
    assert resources(gateway, network=BASE_SEPOLIA) == ["forecast", "maps"]
    assert resources(gateway, network="base-sepolia") == ["forecast", "maps"]  # a v1 name is understood
    assert resources(gateway, network="eip155:8453") == []
    assert resources(gateway, scheme="exact") == ["forecast", "maps"]
    assert resources(gateway, scheme="upto") == []
    assert resources(gateway, type="http") == ["forecast", "maps"]
    assert resources(gateway, type="mcp") == []
    assert resources(gateway, extensions="bazaar") == []
    assert resources(gateway, payTo=second, network=BASE_SEPOLIA, scheme="exact", type="http") == ["maps"]


def test_pagination(gateway, catalogue):
    page = gateway.get(URL, params={"limit": 1, "offset": 1}).json()
    assert [item["metadata"]["capabilityId"] for item in page["items"]] == ["maps"]
    assert page["pagination"] == {"limit": 1, "offset": 1, "total": 2}
    assert resources(gateway, limit=1) == ["forecast"]
    assert resources(gateway, limit=100) == ["forecast", "maps"]
    beyond = gateway.get(URL, params={"offset": 5}).json()
    assert beyond["items"] == [] and beyond["pagination"] == {"limit": 20, "offset": 5, "total": 2}


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}, {"offset": "1.5"},
    {"network": "not-a-network"}, {"payTo": "0x1234"}, {"payTo": "z" * 42}, {"type": "x" * 100},
], ids=lambda params: "-".join(f"{k}={v}" for k, v in params.items())[:40])
def test_a_malformed_query_is_a_400(gateway, catalogue, params):
    response = gateway.get(URL, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"] and response.json()["message"]
