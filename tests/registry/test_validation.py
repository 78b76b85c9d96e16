"""The pure registry validation shared by the CLI and the routes (no database)."""

from __future__ import annotations

import pytest

from app.registry.models import Agent
from app.registry.validation import check_agent_batch, parse_labels, validate_capability, validate_price
from app.validation import FieldError, validate_address, validate_slug

USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"


def test_addresses_are_checksummed_and_a_wrong_checksum_is_refused():
    assert validate_address(USDC.lower(), "asset") == USDC
    assert validate_address("0x" + USDC[2:].upper(), "asset") == USDC
    with pytest.raises(FieldError, match=r"asset: .* invalid EIP-55 checksum"):
        validate_address(USDC.replace("C", "c", 1), "asset")


@pytest.mark.parametrize("value", [0, "0", 2**256 - 1, str(2**256 - 1), " 42 "])
def test_prices_in_range_are_ints(value):
    assert validate_price(value) == int(value)


@pytest.mark.parametrize("value", [-1, 2**256, "1e6", "0x10", 1.0, True, None, "", "1_000"])
def test_prices_out_of_range_or_not_integers_are_refused(value):
    with pytest.raises(FieldError) as error:
        validate_price(value)
    assert error.value.field == "price"


@pytest.mark.parametrize("slug", ["a", "fleet-7", "x" * 64, "0-a"])
def test_slugs(slug):
    assert validate_slug(slug, "agent_id") == slug


@pytest.mark.parametrize("slug", ["", "A", "-a", "a-", "a_b", "x" * 65, "a b", 7])
def test_not_slugs(slug):
    with pytest.raises(FieldError, match="agent_id"):
        validate_slug(slug, "agent_id")


def test_labels_from_text_or_mapping():
    assert parse_labels("env=prod; tier = gold;") == {"env": "prod", "tier": "gold"}
    assert parse_labels({"n": 3}) == {"n": "3"}
    assert parse_labels("") == {}
    with pytest.raises(FieldError, match="given twice"):
        parse_labels("a=1;a=2")


def test_capability_keys_in_either_case_and_defaults():
    capability = validate_capability({
        "id": "geo", "providerTeam": "maps", "name": "Geo", "price": "5", "asset": USDC.lower(),
        "network": "eip155:84532", "pay_to": USDC, "upstreamUrl": "http://geo.internal",
    })
    assert capability.asset == USDC and capability.price == 5
    assert (capability.method, capability.mime_type, capability.status) == ("GET", "application/json", "pending")
    assert capability.route is None and capability.upstream_url == "http://geo.internal"
    with pytest.raises(FieldError, match="pay_to: given twice"):
        validate_capability({"payTo": USDC, "pay_to": USDC})


def test_agent_batch_collisions():
    wallet_a, wallet_b = "0x" + "aa" * 20, "0x" + "bb" * 20
    existing = [Agent(agent_id="old", wallet=wallet_a, team="t")]
    rows = [
        (2, Agent(agent_id="old", wallet=wallet_b, team="t")),  # moves old to b: frees a
        (3, Agent(agent_id="new", wallet=wallet_a, team="t")),  # takes the freed wallet: fine
        (4, Agent(agent_id="new", wallet="0x" + "cc" * 20, team="t")),  # id repeated
    ]
    assert [(r.where, r.reason) for r in check_agent_batch(rows, existing)] == [(4, "agent_id: 'new' also on line 3")]
    clash = check_agent_batch([(2, Agent(agent_id="new", wallet=wallet_a, team="t"))], existing)
    expected = f"wallet: {wallet_a} also belongs to agent 'old' (the registry)"
    assert [(r.where, r.reason) for r in clash] == [(2, expected)]
