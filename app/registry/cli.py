"""``x402-settle agents ...`` and ``x402-settle capabilities ...``: the registry from the command line.

Imports are all-or-nothing: every record of the file is validated first (format, fields, and
collisions within the file and with the registry); if any is refused, each refusal is reported with
its line (CSV) or item number (YAML/JSON) and nothing is written (exit status 2). Otherwise all
records are written in one database transaction.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table
from sqlalchemy.engine import Engine

from app.cli_support import DatabaseUrlOption, open_database, progress_bar, refuse, stdout_console
from app.config import NetworkConfig, Settings, known_networks
from app.errors import ServiceError
from app.registry.models import Agent, Capability, CapabilityStatus
from app.registry.repository import RegistryRepository
from app.registry.schemas import agent_to_json, capability_to_json
from app.registry.service import RegistryService, RegistryWriter
from app.registry.validation import (
    AGENT_FIELDS,
    Rejection,
    check_capability_batch,
    validate_agent,
    validate_capability,
)
from app.validation import FieldError

agents_cli = typer.Typer(help="Agents: which wallet is which agent, team and cost centre.", no_args_is_help=True)
capabilities_cli = typer.Typer(
    help="Capabilities: the paid APIs in the registry, their price, asset, network and payTo.", no_args_is_help=True
)

ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False)]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _service(engine: Engine) -> RegistryService:
    return RegistryService(RegistryRepository(engine))


# --------------------------------------------------------------------------------------------- agents


@agents_cli.command("add")
def add_agent(
    agent_id: Annotated[str, typer.Option(help="slug: lowercase letters, digits and dashes, 1-64")],
    wallet: Annotated[str, typer.Option(help="the agent's paying address (0x + 40 hex)")],
    team: Annotated[str, typer.Option(help="the team the agent's spend is attributed to")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    cost_center: Annotated[str, typer.Option(help="cost centre (default: unregistered)")] = "",
    owner: Annotated[str, typer.Option(help="the person or group responsible")] = "",
    label: Annotated[list[str] | None, typer.Option(help="k=v, repeatable")] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Register a new agent. An agent id or a wallet already registered is refused (exit 2)."""
    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            refuse(f"labels: {item!r} is not key=value")
        if key.strip() in labels:
            refuse(f"labels: {key.strip()!r} given twice")
        labels[key.strip()] = value.strip()
    try:
        agent = validate_agent({"agent_id": agent_id, "wallet": wallet, "team": team, "name": name,
                                "cost_center": cost_center, "owner": owner, "labels": labels})
    except FieldError as error:
        refuse(str(error))
    with open_database(database_url) as engine:
        try:
            _service(engine).add_agent(agent)
        except ServiceError as error:
            refuse(error.message)
    typer.echo(f"added agent {agent.agent_id} ({agent.wallet}, team {agent.team})")


@agents_cli.command("list")
def list_agents(as_json: JsonFlag = False, database_url: DatabaseUrlOption = None) -> None:
    """The registered agents, by agent id."""
    with open_database(database_url) as engine:
        agents = _service(engine).list_agents()
    if as_json:
        typer.echo(json.dumps([agent_to_json(agent) for agent in agents], indent=2))
        return
    table = Table("agent id", "wallet", "name", "team", "cost centre", "owner", "labels", title=f"{len(agents)} agents")
    for agent in agents:
        labels = ";".join(f"{key}={value}" for key, value in sorted(agent.labels.items()))
        table.add_row(agent.agent_id, agent.wallet, agent.name, agent.team, agent.cost_center, agent.owner, labels)
    stdout_console().print(table)


@agents_cli.command("import")
def import_agents(file: ExistingFile, database_url: DatabaseUrlOption = None) -> None:
    """Create or update agents (by agent id) from a CSV file.

    The header names the columns: agent_id, wallet and team are required; name, cost_center, owner
    and labels (k=v;k2=v2) are optional. All rows are validated first, including against the
    registry (a wallet may belong to one agent only); if any row is refused, each is reported with
    its line number and nothing is written. Otherwise all rows are written in one transaction.
    """
    header, records = _read_csv(file)
    with open_database(database_url) as engine:
        service = _service(engine)
        valid: list[tuple[int, Agent]] = []
        rejections: list[Rejection] = []
        with progress_bar() as progress:
            task = progress.add_task("validating", total=len(records))
            for line, cells in records:
                if len(cells) != len(header):
                    rejections.append(Rejection(line, f"expected {len(header)} fields, got {len(cells)}"))
                else:
                    try:
                        valid.append((line, validate_agent(dict(zip(header, cells, strict=True)))))
                    except FieldError as error:
                        rejections.append(Rejection(line, str(error)))
                progress.advance(task)
        rejections += service.agent_import_collisions(valid)
        _refuse_rejections(rejections, len(records), "line")
        with progress_bar() as progress:
            task = progress.add_task("writing", total=len(valid))
            try:
                created, updated = service.import_agents(
                    (agent for _, agent in valid), on_row=lambda: progress.advance(task)
                )
            except ServiceError as error:
                refuse(f"{error.message}; nothing was written")
    typer.echo(f"agents: {created} created, {updated} updated, 0 rejected")


def _read_csv(file: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The normalised header and the non-blank records, each with the line it starts on."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            try:
                header = [column.strip().lower() for column in next(reader)]
            except StopIteration:
                refuse(f"{file}: empty file, expected a header ({','.join(AGENT_FIELDS)})")
            records: list[tuple[int, list[str]]] = []
            end_of_previous = reader.line_num
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    records.append((end_of_previous + 1, cells))
                end_of_previous = reader.line_num
    except csv.Error as error:
        refuse(f"{file}: line {reader.line_num}: malformed CSV ({error}); nothing was written")
    except UnicodeDecodeError as error:
        refuse(f"{file}: not UTF-8 text ({error.reason} at byte {error.start})")
    unknown = [column for column in header if column not in AGENT_FIELDS]
    if unknown:
        refuse(f"{file}: line 1: unknown column(s) {', '.join(unknown)}; expected {','.join(AGENT_FIELDS)}")
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        refuse(f"{file}: line 1: column(s) given twice: {', '.join(repeated)}")
    missing = [column for column in ("agent_id", "wallet", "team") if column not in header]
    if missing:
        refuse(f"{file}: line 1: missing required column(s) {', '.join(missing)}")
    return header, records


def _refuse_rejections(rejections: list[Rejection], total: int, unit: str) -> None:
    if not rejections:
        return
    for rejection in sorted(rejections, key=lambda rejection: rejection.where):
        typer.secho(f"{unit} {rejection.where}: {rejection.reason}", fg=typer.colors.RED, err=True)
    refused = len({rejection.where for rejection in rejections})
    typer.secho(f"0 created, 0 updated, {refused} rejected of {total}: nothing was written",
                fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


# --------------------------------------------------------------------------------------- capabilities


def _networks() -> dict[str, NetworkConfig]:
    return known_networks(Settings().networks_file)


@capabilities_cli.command("add")
def add_capability(
    capability_id: Annotated[str, typer.Option("--id", help="slug, e.g. weather-forecast")],
    provider_team: Annotated[str, typer.Option(help="the team that provides and is paid for it")],
    name: Annotated[str, typer.Option(help="display name")],
    price: Annotated[str, typer.Option(help="atomic units of the asset, an integer (USDC: 10000 = 0.01)")],
    asset: Annotated[str, typer.Option(help="token address")],
    network: Annotated[str, typer.Option(help="CAIP-2 network id, e.g. eip155:84532")],
    pay_to: Annotated[str, typer.Option(help="the address payments go to")],
    route: Annotated[str | None, typer.Option(help="in-process route, e.g. /weather")] = None,
    upstream_url: Annotated[str | None, typer.Option(help="reverse-proxy target URL")] = None,
    description: Annotated[str, typer.Option(help="what it does")] = "",
    method: Annotated[str, typer.Option(help="HTTP method")] = "GET",
    mime_type: Annotated[str, typer.Option(help="MIME type of the response")] = "application/json",
    status: Annotated[CapabilityStatus, typer.Option(help="registry status")] = CapabilityStatus.PENDING,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a capability, or replace the one with the same id.

    A replace is whole: every field takes the value given here or its default (the creation time
    is kept), it never merges with the stored capability.
    """
    try:
        capability = validate_capability(
            {"id": capability_id, "provider_team": provider_team, "name": name, "description": description,
             "price": price, "asset": asset, "network": network, "pay_to": pay_to, "route": route,
             "upstream_url": upstream_url, "method": method, "mime_type": mime_type, "status": status.value},
            networks=_networks(),
        )
    except FieldError as error:
        refuse(str(error))
    with open_database(database_url) as engine:
        _, created = _service(engine).put_capability(capability, RegistryWriter.operator())
    typer.echo(f"{'created' if created else 'replaced'} capability {capability.id} "
               f"({capability.price} atomic units on {capability.network}, {capability.status})")


@capabilities_cli.command("list")
def list_capabilities(
    as_json: JsonFlag = False,
    status: Annotated[CapabilityStatus | None, typer.Option(help="only capabilities with this status")] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """The capabilities in the registry, by id."""
    with open_database(database_url) as engine:
        capabilities = _service(engine).list_capabilities(status=status)
    if as_json:
        typer.echo(json.dumps([capability_to_json(capability) for capability in capabilities], indent=2))
        return
    table = Table("id", "provider", "name", "price (atomic)", "asset", "network", "pay to", "target", "method",
                  "status", title=f"{len(capabilities)} capabilities")
    for capability in capabilities:
        target = capability.route or ""
        if capability.upstream_url:
            target = f"{target} -> {capability.upstream_url}" if target else capability.upstream_url
        table.add_row(capability.id, capability.provider_team, capability.name, str(capability.price),
                      capability.asset, capability.network, capability.pay_to, target, capability.method,
                      capability.status)
    stdout_console().print(table)


@capabilities_cli.command("import")
def import_capabilities(file: ExistingFile, database_url: DatabaseUrlOption = None) -> None:
    """Create or replace capabilities (by id) from a YAML or JSON file holding a list of objects.

    Keys may be camelCase or snake_case: id, providerTeam, name, description, price, asset, network,
    payTo, route, upstreamUrl, method, mimeType, status. Every item is validated first; if any is
    refused, each is reported with its item number (and line, for YAML) and nothing is written.
    Otherwise all are written in one transaction, each a whole replace of the stored capability.
    """
    items, lines = _read_capability_file(file)
    networks = _networks()
    valid: list[tuple[int, Capability]] = []
    rejections: list[Rejection] = []
    with progress_bar() as progress:
        task = progress.add_task("validating", total=len(items))
        for number, item in enumerate(items, start=1):
            try:
                valid.append((number, validate_capability(item, networks=networks)))
            except FieldError as error:
                rejections.append(Rejection(number, str(error)))
            progress.advance(task)
    rejections += check_capability_batch(valid)
    if lines:  # YAML: say where each refused item starts
        rejections = [Rejection(r.where, f"{r.reason} (line {lines[r.where - 1]})") for r in rejections]
    _refuse_rejections(rejections, len(items), "item")
    with open_database(database_url) as engine, progress_bar() as progress:
        task = progress.add_task("writing", total=len(valid))
        try:
            created, updated = _service(engine).import_capabilities(
                (capability for _, capability in valid), on_row=lambda: progress.advance(task)
            )
        except ServiceError as error:
            refuse(f"{error.message}; nothing was written")
    typer.echo(f"capabilities: {created} created, {updated} updated, 0 rejected")


class _RegistryYamlLoader(yaml.SafeLoader):
    """YAML without YAML 1.1's surprises: ``0x036C...`` (an address) stays text instead of becoming a
    hexadecimal int, and ``010`` or ``1_000`` or ``1:30`` are not numbers; plain decimal digits are."""


_INT_TAG = "tag:yaml.org,2002:int"
_RegistryYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RegistryYamlLoader.add_implicit_resolver(_INT_TAG, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))


def _read_capability_file(file: Path) -> tuple[list[Any], list[int]]:
    """The items of the file's top-level list, and for YAML the line each starts on."""
    suffix = file.suffix.lower()
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        refuse(f"{file}: not UTF-8 text ({error.reason} at byte {error.start})")
    lines: list[int] = []
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.load(text, Loader=_RegistryYamlLoader)  # a SafeLoader subclass: no arbitrary objects
            node = yaml.compose(text, Loader=_RegistryYamlLoader)
        except yaml.YAMLError as error:
            refuse(f"{file}: malformed YAML: {error}")
        if isinstance(node, yaml.SequenceNode):
            lines = [item.start_mark.line + 1 for item in node.value]
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            refuse(f"{file}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}")
    else:
        refuse(f"{file}: expected a .yaml, .yml or .json file")
    if not isinstance(data, list):
        refuse(f"{file}: expected a list of capability objects at the top level, got {type(data).__name__}")
    return data, lines
