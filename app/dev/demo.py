"""The dev stack and its demo: the whole product working on one machine.

``x402-settle dev`` starts a dev chain with our USDC, the service (SQLite ledger, example routes), an
example upstream behind the reverse proxy, registers a fleet of agents in two teams and two
capabilities, lets the agents pay for calls with our client under their spend policies, prints
the attribution per agent and per team, writes a CSV export, and keeps serving.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from app.client.policy import ClientPaymentError, PolicyViolation, SpendPolicy
from app.client.signer import PaymentSigner
from app.client.transport import async_paying_client, receipt_of
from app.config import Settings
from app.dev.deploy import DevDeployment
from app.dev.devchain import free_port
from app.ledger.attribution import attribution
from app.ledger.exports import asset_table_from_settings, format_units, stream_export
from app.registry.models import Agent, Capability
from app.registry.repository import RegistryRepository

USDC_DECIMALS = 6
FORECAST_PRICE = 5_000  # 0.005 USDC
TRANSLATE_PRICE = 2_000  # 0.002 USDC
CALLS_PER_AGENT = 6
TEAMS = ("research", "research", "research", "ops", "ops", "ops")
THRIFTY_AGENT = 5  # its daily limit is low on purpose: the demo shows its own policy refusing


@contextmanager
def background_server(app: Any, *, host: str = "127.0.0.1", port: int | None = None,
                      ready_timeout: float = 30.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread; yields its base URL, stops it on exit."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def register_demo_registry(engine: Engine, deployment: DevDeployment, upstream_url: str) -> list[Capability]:
    """Six agents in two teams, and two capabilities: an in-process route and a proxied upstream."""
    registry = RegistryRepository(engine)
    registry.upsert_agents(
        Agent(agent_id=f"agent-{index}", wallet=account.address, name=f"{team} agent {index}", team=team,
              cost_center=f"cc-{team}", owner=f"{team}-lead@example.com")
        for index, (account, team) in enumerate(zip(deployment.wallets.agents, TEAMS, strict=True))
    )
    weather, lang = (provider.address for provider in deployment.wallets.providers)
    common = {"asset": deployment.token_address, "network": f"eip155:{deployment.chain_id}", "status": "approved"}
    capabilities = [
        Capability(id="forecast", provider_team="weather", name="Forecast", description="Weather forecast",
                   price=FORECAST_PRICE, pay_to=weather, route="/examples/forecast", **common),
        Capability(id="translate", provider_team="lang", name="Translate", description="Translation",
                   price=TRANSLATE_PRICE, pay_to=lang, upstream_url=upstream_url, **common),
    ]
    registry.upsert_capabilities(capabilities)
    return capabilities


def policy_for(index: int) -> SpendPolicy:
    daily = 12_000 if index == THRIFTY_AGENT else 10**6  # 0.012 USDC vs 1 USDC a day
    return SpendPolicy(max_per_payment=10_000, max_per_day=daily)


@dataclass
class FleetResult:
    paid: int = 0
    refused: int = 0
    failed: int = 0
    spent: Counter[str] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)


async def run_fleet(base_url: str, agents: list[LocalAccount], *, calls_per_agent: int = CALLS_PER_AGENT,
                    on_progress: Callable[[FleetResult, int], None] | None = None) -> FleetResult:
    """Every agent makes its calls concurrently with a paying client under its own policy."""
    result = FleetResult()
    total = len(agents) * calls_per_agent
    paths = ["/examples/forecast?city={city}", "/cap/translate/translate?text=hello+{city}"]
    cities = ["Lisbon", "Porto", "Faro", "Braga", "Coimbra", "Evora"]

    async def agent_calls(index: int, account: LocalAccount) -> None:
        async with async_paying_client(PaymentSigner(account), policy_for(index), base_url=base_url,
                                       timeout=60) as client:
            for call in range(calls_per_agent):
                path = paths[(index + call) % 2].format(city=cities[(index + call) % len(cities)])
                try:
                    response = await client.get(path)
                except PolicyViolation as refused:
                    result.refused += 1
                    result.refusals.append(f"agent-{index}: {refused}")
                except ClientPaymentError:
                    result.failed += 1
                else:
                    receipt = receipt_of(response)
                    if response.status_code == 200 and receipt is not None and receipt.success:
                        result.paid += 1
                        result.spent[f"agent-{index}"] += FORECAST_PRICE if "forecast" in path else TRANSLATE_PRICE
                    else:
                        result.failed += 1
                if on_progress:
                    on_progress(result, total)

    await asyncio.gather(*(agent_calls(index, account) for index, account in enumerate(agents)))
    return result


def usdc(atomic: int) -> str:
    return format_units(atomic, USDC_DECIMALS)


def attribution_tables(engine: Engine) -> list[Table]:
    tables = []
    for group_by, title in (("agent", "Spend per agent"), ("team", "Spend per team"),
                            ("capability", "Spend per capability")):
        totals: dict[str, list[int]] = {}
        for row in attribution(engine, group_by=group_by, bucket="month"):
            entry = totals.setdefault(row.group, [0, 0, 0])
            entry[0] += row.count
            entry[1] += row.amount
            entry[2] += row.fees
        table = Table(title=title)
        table.add_column(group_by)
        table.add_column("paid calls", justify="right")
        table.add_column("USDC", justify="right")
        table.add_column("network fees (ETH)", justify="right")
        for group, (count, amount, fees) in sorted(totals.items()):
            table.add_row(group, str(count), usdc(amount), format_units(fees, 18))
        table.add_row("total", str(sum(v[0] for v in totals.values())),
                      usdc(sum(v[1] for v in totals.values())), format_units(sum(v[2] for v in totals.values()), 18),
                      style="bold")
        tables.append(table)
    return tables


def write_csv_export(engine: Engine, settings: Settings, path: Path) -> int:
    """The journal as CSV (the finance export); returns the number of bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("wb") as file:
        for chunk in stream_export(engine, asset_table_from_settings(settings), format="csv", kind="journal"):
            file.write(chunk)
            written += len(chunk)
    return written


def run_demo(console: Console, base_url: str, settings: Settings, engine: Engine, deployment: DevDeployment,
             upstream_url: str, export_path: Path) -> FleetResult:
    register_demo_registry(engine, deployment, upstream_url)
    agents = list(deployment.wallets.agents)
    console.print(f"fleet: {len(agents)} agents in teams {sorted(set(TEAMS))} pay for "
                  f"'forecast' ({usdc(FORECAST_PRICE)} USDC, in-process route) and "
                  f"'translate' ({usdc(TRANSLATE_PRICE)} USDC, upstream behind the reverse proxy)", soft_wrap=True)

    def progress(result: FleetResult, total: int) -> None:
        done = result.paid + result.refused + result.failed
        line = (f"  calls {done}/{total} · paid {result.paid} · {usdc(sum(result.spent.values()))} USDC settled"
                f" · refused by policy {result.refused} · failed {result.failed}")
        if console.is_terminal:  # one live line; a log file gets a line per quarter instead
            console.print("\r" + line + "   ", end="", soft_wrap=True)
        elif done == total or done % max(1, total // 4) == 0:
            console.print(line, soft_wrap=True)

    result = asyncio.run(run_fleet(base_url, agents, on_progress=progress))
    if console.is_terminal:
        console.print()
    for refusal in result.refusals[:3]:
        console.print(f"  refused before signing: {refusal}", soft_wrap=True)
    for table in attribution_tables(engine):
        console.print(table)
    size = write_csv_export(engine, settings, export_path)
    console.print(f"finance export (journal, CSV): {export_path} ({size:,} bytes)")
    return result
