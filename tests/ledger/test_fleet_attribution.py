"""End to end: a fleet of agents in two teams pays three capabilities through /settle, and the
ledger's attribution equals an independent sum of the token's on-chain Transfer events."""

from __future__ import annotations

from collections import Counter

from fastapi.testclient import TestClient

from app.db.engine import make_engine
from app.db.schema import create_schema
from app.ledger.attribution import attribution
from app.main import create_app
from app.registry.models import Agent, Capability
from app.registry.repository import RegistryRepository
from tests.support.payments import BASE_SEPOLIA, USDC, body_v2, requirements_v2, sign_exact

TEAMS = ("research", "research", "research", "ops", "ops", "ops")


def _capabilities(providers) -> list[Capability]:
    geo, lang = providers[0].address, providers[1].address
    common = {"asset": USDC, "network": BASE_SEPOLIA, "status": "approved"}
    return [
        Capability(id="weather", provider_team="geo", name="Weather", price=1_000, pay_to=geo, route="/weather",
                   **common),
        Capability(id="maps", provider_team="geo", name="Maps", price=2_500, pay_to=geo, route="/maps", **common),
        Capability(id="translate", provider_team="lang", name="Translate", price=700, pay_to=lang,
                   route="/translate", **common),
    ]


def _totals(rows, key: str = "group") -> Counter:
    totals: Counter = Counter()
    for row in rows:
        totals[getattr(row, key)] += row.amount
    return totals


def test_fleet_spend_is_attributed_per_agent_team_and_capability_and_matches_the_chain(
    facilitator_settings, database_url, dev_deployment, token, w3
):
    facilitator_settings.database_url = database_url
    engine = make_engine(database_url)
    create_schema(engine)
    agents = dev_deployment.wallets.agents
    for index, (account, team) in enumerate(zip(agents, TEAMS, strict=True)):
        RegistryRepository(engine).add_agent(Agent(agent_id=f"agent-{index}", wallet=account.address,
                                                    name=f"Agent {index}", team=team, cost_center=f"cc-{team}"))
    capabilities = _capabilities(dev_deployment.wallets.providers)
    for capability in capabilities:
        RegistryRepository(engine).put_capability(capability)
    first_block = w3.eth.block_number + 1

    expected_by_agent: Counter = Counter()
    with TestClient(create_app(facilitator_settings)) as client:
        for round_ in range(2):
            for index, account in enumerate(agents):
                for capability in capabilities:
                    if (index + round_) % 3 == capabilities.index(capability) and round_:
                        continue  # not every agent calls everything every round
                    signed = sign_exact(account, to=capability.pay_to, value=capability.price)
                    body = body_v2(signed, requirements_v2(capability.pay_to, capability.price),
                                   resource={"url": f"http://provider.test{capability.route}?q={round_}"})
                    answer = client.post("/settle", json=body).json()
                    assert answer["success"] is True, answer
                    expected_by_agent[f"agent-{index}"] += capability.price

    # Independent truth: every Transfer of the token into the providers since the fleet started.
    payees = {capability.pay_to for capability in capabilities}
    transfers = token.events.Transfer().get_logs(from_block=first_block)
    on_chain_by_payer: Counter = Counter()
    for event in transfers:
        if event["args"]["to"] in payees:
            on_chain_by_payer[event["args"]["from"]] += event["args"]["value"]
    on_chain_total = sum(on_chain_by_payer.values())

    by_agent = _totals(attribution(engine, group_by="agent", bucket="day"))
    by_team = _totals(attribution(engine, group_by="team", bucket="day"))
    by_capability = _totals(attribution(engine, group_by="capability", bucket="day"))
    by_provider = _totals(attribution(engine, group_by="provider", bucket="month"))

    assert sum(by_agent.values()) == sum(by_team.values()) == sum(by_capability.values()) == on_chain_total
    assert sum(by_provider.values()) == on_chain_total
    assert by_agent == expected_by_agent
    assert by_agent == Counter({f"agent-{i}": on_chain_by_payer[a.address] for i, a in enumerate(agents)})
    assert set(by_team) == {"research", "ops"}
    assert set(by_capability) == {"weather", "maps", "translate"}
    assert set(by_provider) == {"geo", "lang"}
    engine.dispose()


def test_a_payer_we_do_not_know_is_recorded_and_attributed_to_unregistered(
    facilitator_settings, database_url, dev_deployment
):
    facilitator_settings.database_url = database_url
    payer, payee = dev_deployment.wallets.agents[5], dev_deployment.wallets.providers[1].address
    with TestClient(create_app(facilitator_settings)) as client:
        signed = sign_exact(payer, to=payee, value=777)
        assert client.post("/settle", json=body_v2(signed, requirements_v2(payee, 777))).json()["success"] is True
    engine = make_engine(database_url)
    try:
        for group_by in ("agent", "team", "cost_center", "capability", "provider"):
            rows = attribution(engine, group_by=group_by, bucket="day")
            assert [(row.group, row.amount, row.count) for row in rows] == [("unregistered", 777, 1)]
    finally:
        engine.dispose()
