"""`x402-settle agents|capabilities add|list|import` on SQLite and PostgreSQL.

Imports are all-or-nothing: a file with any refused record writes nothing and names each refused
line (CSV) or item (YAML/JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from app.db.engine import make_engine
from app.registry.cli import agents_cli, capabilities_cli
from app.registry.repository import RegistryRepository

USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
NETWORK = "eip155:84532"
WALLET_A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
WALLET_B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
WALLET_C = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
PAY_TO = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"

cli = typer.Typer()
cli.add_typer(agents_cli, name="agents")
cli.add_typer(capabilities_cli, name="capabilities")
runner = CliRunner()


def run(database_url: str, *args: str):
    return runner.invoke(cli, [*args, "--database-url", database_url])


def agents(database_url: str) -> dict[str, dict]:
    result = run(database_url, "agents", "list", "--json")
    assert result.exit_code == 0, result.output
    return {agent["agentId"]: agent for agent in json.loads(result.stdout)}


def capabilities(database_url: str, *args: str) -> dict[str, dict]:
    result = run(database_url, "capabilities", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return {capability["id"]: capability for capability in json.loads(result.stdout)}


# --------------------------------------------------------------------------------------------- agents


def test_add_and_list_agents(database_url):
    result = run(database_url, "agents", "add", "--agent-id", "fleet-7", "--wallet", WALLET_A.lower(),
                 "--name", "Fleet 7", "--team", "logistics", "--cost-center", "cc-1200", "--owner", "ops",
                 "--label", "env=prod", "--label", "region=eu")
    assert result.exit_code == 0, result.output
    assert "added agent fleet-7" in result.stdout
    listed = agents(database_url)
    assert listed["fleet-7"]["wallet"] == WALLET_A  # stored checksummed
    assert listed["fleet-7"]["team"] == "logistics"
    assert listed["fleet-7"]["costCenter"] == "cc-1200"
    assert listed["fleet-7"]["labels"] == {"env": "prod", "region": "eu"}
    table = run(database_url, "agents", "list")
    assert table.exit_code == 0, table.output
    assert "fleet-7" in table.stdout and "1 agents" in table.stdout


def test_duplicate_agent_id_or_wallet_is_refused_with_exit_2(database_url):
    assert run(database_url, "agents", "add", "--agent-id", "a1", "--wallet", WALLET_A, "--team", "t").exit_code == 0
    same_id = run(database_url, "agents", "add", "--agent-id", "a1", "--wallet", WALLET_B, "--team", "t")
    assert same_id.exit_code == 2
    assert "agent_id: 'a1' is already registered" in same_id.stderr
    upper = "0x" + WALLET_A[2:].upper()
    same_wallet = run(database_url, "agents", "add", "--agent-id", "a2", "--wallet", upper, "--team", "t")
    assert same_wallet.exit_code == 2
    assert f"wallet: {WALLET_A} is already registered to agent 'a1'" in same_wallet.stderr
    assert set(agents(database_url)) == {"a1"}
    assert agents(database_url)["a1"]["wallet"] == WALLET_A


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent-id", "Fleet_7", "--wallet", WALLET_A, "--team", "t"], "agent_id: 'Fleet_7' is not a slug"),
        (["--agent-id", "x" * 65, "--wallet", WALLET_A, "--team", "t"], "agent_id:"),
        (["--agent-id", "a", "--wallet", "0x1234", "--team", "t"], "wallet: '0x1234' is not an address"),
        (["--agent-id", "a", "--wallet", WALLET_A[:-1] + "9", "--team", "t"], "invalid EIP-55 checksum"),
        (["--agent-id", "a", "--wallet", WALLET_A, "--team", "t", "--label", "novalue"], "labels: 'novalue'"),
    ],
)
def test_invalid_agent_input_is_refused(tmp_path, args, message):
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(database_url, "agents", "add", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert agents(database_url) == {}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_agents_creates_and_updates(database_url, tmp_path):
    assert run(database_url, "agents", "add", "--agent-id", "a1", "--wallet", WALLET_A, "--team", "old").exit_code == 0
    csv_file = write(tmp_path, "agents.csv", (
        "agent_id,wallet,name,team,cost_center,owner,labels\n"
        f"a1,{WALLET_A},Agent one,payments,cc-1,alice,env=prod;tier=gold\n"
        f"a2,{WALLET_B.lower()},\"Agent, two\",payments,cc-1,bob,\n"
        "\n"
        f"a3,{WALLET_C},Agent three,search,cc-2,carol,env=dev\n"
    ))
    result = run(database_url, "agents", "import", str(csv_file))
    assert result.exit_code == 0, result.output
    assert "agents: 2 created, 1 updated, 0 rejected" in result.stdout
    listed = agents(database_url)
    assert set(listed) == {"a1", "a2", "a3"}
    assert listed["a1"]["team"] == "payments" and listed["a1"]["labels"] == {"env": "prod", "tier": "gold"}
    assert listed["a2"]["name"] == "Agent, two" and listed["a2"]["wallet"] == WALLET_B
    # Importing the same file again changes nothing but counts every row as an update.
    again = run(database_url, "agents", "import", str(csv_file))
    assert "agents: 0 created, 3 updated, 0 rejected" in again.stdout


def test_import_agents_with_bad_rows_names_each_line_and_writes_nothing(database_url, tmp_path):
    assert run(database_url, "agents", "add", "--agent-id", "known", "--wallet", WALLET_C, "--team", "t").exit_code == 0
    csv_file = write(tmp_path, "agents.csv", (
        "agent_id,wallet,team,name\n"                   # line 1
        f"ok-1,{WALLET_A},payments,\"multi\nline\"\n"   # lines 2-3
        "bad-wallet,0xnothex,payments,x\n"               # line 4
        f"ok-2,{WALLET_B},payments\n"                    # line 5: too few fields
        f"ok-1,{'0x' + '11' * 20},payments,again\n"      # line 6: agent id repeated
        f"BadSlug,{'0x' + '22' * 20},payments,x\n"       # line 7
        f"thief,{WALLET_C},payments,x\n"                 # line 8: wallet of a registered agent
        f"no-team,{'0x' + '33' * 20},,x\n"               # line 9
    ))
    result = run(database_url, "agents", "import", str(csv_file))
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "line 4: wallet: '0xnothex' is not an address" in err
    assert "line 5: expected 4 fields, got 3" in err
    assert "line 6: agent_id: 'ok-1' also on line 2" in err
    assert "line 7: agent_id: 'BadSlug' is not a slug" in err
    assert f"line 8: wallet: {WALLET_C} also belongs to agent 'known' (the registry)" in err
    assert "line 9: team: is required" in err
    assert "line 2:" not in err
    assert "6 rejected of 7: nothing was written" in err
    assert set(agents(database_url)) == {"known"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file, expected a header"),
        ("agent_id,wallet,team,colour\n", "line 1: unknown column(s) colour"),
        ("agent_id,team\n", "line 1: missing required column(s) wallet"),
        (f'agent_id,wallet,team\na1,{WALLET_A},"unterminated\n', "malformed CSV"),
    ],
)
def test_import_of_a_malformed_agents_file_is_refused(tmp_path, text, message):
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(database_url, "agents", "import", str(write(tmp_path, "agents.csv", text)))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert agents(database_url) == {}


def test_import_swapping_wallets_between_two_agents_is_refused_or_applied_whole(database_url, tmp_path):
    """Two agents exchanging wallets is valid once applied; whatever the backend decides mid-way, the
    registry ends either fully swapped or untouched, never half."""
    run(database_url, "agents", "add", "--agent-id", "a1", "--wallet", WALLET_A, "--team", "t")
    run(database_url, "agents", "add", "--agent-id", "a2", "--wallet", WALLET_B, "--team", "t")
    csv_file = write(tmp_path, "swap.csv", f"agent_id,wallet,team\na1,{WALLET_B},t\na2,{WALLET_A},t\n")
    result = run(database_url, "agents", "import", str(csv_file))
    listed = agents(database_url)
    wallets = (listed["a1"]["wallet"], listed["a2"]["wallet"])
    if result.exit_code == 0:
        assert wallets == (WALLET_B, WALLET_A)
    else:
        assert result.exit_code == 2 and "nothing was written" in result.stderr
        assert wallets == (WALLET_A, WALLET_B)


# --------------------------------------------------------------------------------------- capabilities


def capability_args(**overrides: str) -> list[str]:
    values = {"id": "geocode", "provider-team": "maps", "name": "Geocode", "price": "10000", "asset": USDC,
              "network": NETWORK, "pay-to": PAY_TO.lower(), "route": "/geocode"}
    values.update(overrides)
    args: list[str] = []
    for key, value in values.items():
        if value is not None:
            args += [f"--{key}", value]
    return args


def test_add_list_and_replace_capabilities(database_url):
    result = run(database_url, "capabilities", "add", *capability_args(), "--status", "approved",
                 "--description", "address to coordinates")
    assert result.exit_code == 0, result.output
    assert "created capability geocode" in result.stdout
    big = str(2**256 - 1)
    result = run(database_url, "capabilities", "add", *capability_args(id="tiles", price=big, route=None),
                 "--upstream-url", "https://tiles.internal/v1", "--method", "post", "--mime-type", "image/png")
    assert result.exit_code == 0, result.output
    listed = capabilities(database_url)
    assert listed["geocode"]["payTo"] == PAY_TO and listed["geocode"]["status"] == "approved"
    assert listed["geocode"]["price"] == "10000"
    assert listed["tiles"]["price"] == big  # uint256 round-trips exactly
    assert listed["tiles"]["method"] == "POST" and listed["tiles"]["route"] is None
    assert listed["tiles"]["status"] == "pending"
    assert set(capabilities(database_url, "--status", "approved")) == {"geocode"}
    assert set(capabilities(database_url, "--status", "pending")) == {"tiles"}
    # A replace is whole: the description given before is gone, the creation time is kept.
    replaced = run(database_url, "capabilities", "add", *capability_args(price="20000"))
    assert replaced.exit_code == 0 and "replaced capability geocode" in replaced.stdout
    after = capabilities(database_url)["geocode"]
    assert after["price"] == "20000" and after["description"] == "" and after["status"] == "pending"
    assert after["createdAt"] == listed["geocode"]["createdAt"]
    table = run(database_url, "capabilities", "list")
    assert table.exit_code == 0 and "geocode" in table.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"price": "1.5"}, "price: must be a non-negative integer of atomic units"),
        ({"price": "-1"}, "price: must be a non-negative integer"),
        ({"price": str(2**256)}, "price: must be between 0 and 2**256 - 1"),
        ({"network": "eip155:999999"}, "network: 'eip155:999999' is not a known network"),
        ({"network": "base-sepolia"}, "network: 'base-sepolia' is not a CAIP-2 id"),
        ({"asset": "0x12"}, "asset: '0x12' is not an address"),
        ({"pay-to": "nope"}, "pay_to: 'nope' is not an address"),
        ({"route": None}, "route: give a route or an upstream_url"),
        ({"route": "geocode"}, "route: 'geocode' must be a path starting with /"),
        ({"id": "Geo Code"}, "id: 'Geo Code' is not a slug"),
    ],
)
def test_invalid_capability_is_refused_naming_the_field(tmp_path, overrides, message):
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(database_url, "capabilities", "add", *capability_args(**overrides))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert capabilities(database_url) == {}


def test_unknown_status_is_refused(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(database_url, "capabilities", "add", *capability_args(), "--status", "live")
    assert result.exit_code == 2
    assert capabilities(database_url) == {}


CAPABILITIES_YAML = f"""\
# unquoted addresses must stay text (YAML 1.1 would read 0x... as a hexadecimal number)
- id: geocode
  providerTeam: maps
  name: Geocode
  price: 10000
  asset: {USDC}
  network: "{NETWORK}"
  payTo: {PAY_TO}
  route: /geocode
  status: approved
- id: search
  provider_team: search
  name: Web search
  description: ranked results
  price: "{2**200}"
  asset: {USDC.lower()}
  network: {NETWORK}
  pay_to: {PAY_TO}
  upstream_url: https://search.internal/q
  method: post
  mime_type: application/json
"""


def test_import_capabilities_from_yaml(database_url, tmp_path):
    result = run(database_url, "capabilities", "import", str(write(tmp_path, "caps.yaml", CAPABILITIES_YAML)))
    assert result.exit_code == 0, result.output
    assert "capabilities: 2 created, 0 updated, 0 rejected" in result.stdout
    listed = capabilities(database_url)
    assert listed["geocode"]["asset"] == USDC and listed["geocode"]["status"] == "approved"
    assert listed["search"]["price"] == str(2**200) and listed["search"]["asset"] == USDC
    assert listed["search"]["upstreamUrl"] == "https://search.internal/q" and listed["search"]["method"] == "POST"
    assert listed["search"]["status"] == "pending"


def test_import_capabilities_from_json_replaces_existing(database_url, tmp_path):
    run(database_url, "capabilities", "add", *capability_args(price="1"))
    items = [
        {"id": "geocode", "providerTeam": "maps", "name": "Geocode v2", "price": 25000, "asset": USDC,
         "network": NETWORK, "payTo": PAY_TO, "route": "/geocode", "status": "approved"},
        {"id": "route-plan", "providerTeam": "maps", "name": "Route planner", "price": "0", "asset": USDC,
         "network": NETWORK, "payTo": PAY_TO, "route": "/route", "mimeType": "application/geo+json"},
    ]
    result = run(database_url, "capabilities", "import", str(write(tmp_path, "caps.json", json.dumps(items))))
    assert result.exit_code == 0, result.output
    assert "capabilities: 1 created, 1 updated, 0 rejected" in result.stdout
    listed = capabilities(database_url)
    assert listed["geocode"]["price"] == "25000" and listed["geocode"]["name"] == "Geocode v2"
    assert listed["route-plan"]["price"] == "0" and listed["route-plan"]["mimeType"] == "application/geo+json"


def test_import_capabilities_with_bad_items_writes_nothing(database_url, tmp_path):
    yaml_text = CAPABILITIES_YAML + f"""\
- id: bad-price
  providerTeam: maps
  name: Bad
  price: 1.5
  asset: {USDC}
  network: {NETWORK}
  payTo: {PAY_TO}
  route: /bad
- id: geocode
  providerTeam: maps
  name: Again
  price: 1
  asset: {USDC}
  network: {NETWORK}
  payTo: {PAY_TO}
  route: /again
- id: typo
  providerTeam: maps
  payee: 0x0000000000000000000000000000000000000001
"""
    result = run(database_url, "capabilities", "import", str(write(tmp_path, "caps.yml", yaml_text)))
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "item 3: price: must be a non-negative integer of atomic units, got 1.5 (line 22)" in err
    assert "item 4: id: 'geocode' also at item 1 (line 30)" in err
    assert "item 5: payee: unknown field" in err
    assert "3 rejected of 5: nothing was written" in err
    assert capabilities(database_url) == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("caps.yaml", "id: geocode\n", "expected a list of capability objects"),
        ("caps.yaml", "- id: [unclosed\n", "malformed YAML"),
        ("caps.json", '[{"id": "x",}]', "malformed JSON at line 1"),
        ("caps.txt", "[]", "expected a .yaml, .yml or .json file"),
        ("caps.json", '["geocode"]', "item 1: body: expected an object, got str"),
    ],
)
def test_import_of_a_malformed_capabilities_file_is_refused(tmp_path, name, text, message):
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(database_url, "capabilities", "import", str(write(tmp_path, name, text)))
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_repositories_see_what_the_cli_wrote(database_url, tmp_path):
    run(database_url, "agents", "add", "--agent-id", "a1", "--wallet", WALLET_A.lower(), "--team", "t")
    run(database_url, "capabilities", "add", *capability_args())
    engine = make_engine(database_url)
    try:
        assert RegistryRepository(engine).agent_by_wallet(WALLET_A).agent_id == "a1"
        assert RegistryRepository(engine).capability("geocode").pay_to == PAY_TO
    finally:
        engine.dispose()
