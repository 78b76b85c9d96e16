"""Validation of registry input (agents and capabilities), shared by the CLI and the HTTP routes.

Pure: no I/O, no database. Each ``validate_*`` function takes a mapping as it arrived (a CSV row, a
YAML/JSON object, a request body; camelCase or snake_case keys) and returns a normalised model, or
raises :class:`RegistryValidationError` (a ``ValueError``) whose message starts with the field name.

Normalisation: addresses are stored EIP-55 checksummed (a mixed-case address must carry a valid
checksum: a wrong one is more likely a typo than a style); prices are ``int`` atomic units; methods
are upper case. The ``*_to_json`` functions give the camelCase wire form used by ``--json`` listings
and the API, with prices as decimal strings (as x402 amounts are) so that no uint256 loses digits in
a JSON reader that uses floats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from app.chain.signatures import to_checksum
from app.config import NetworkConfig, known_networks
from app.db.clock import wire_time
from app.db.types import UINT256_MAX
from app.ledger.models import Agent, Capability, CapabilityStatus

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
CAIP2 = re.compile(r"^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$")
MIME = re.compile(r"^[\w.+-]+/[\w.+-]+(?:\s*;.*)?$")
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

AGENT_FIELDS = ("agent_id", "wallet", "name", "team", "cost_center", "owner", "labels")
CAPABILITY_FIELDS = (
    "id", "provider_team", "name", "description", "price", "asset", "network", "pay_to",
    "route", "upstream_url", "method", "mime_type", "status",
)


class RegistryValidationError(ValueError):
    """Input the registry refuses; ``field`` names the offending field (snake_case)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def normalize_keys(data: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """``data`` with camelCase keys turned snake_case; unknown or repeated keys are refused.

    Unknown keys are an error rather than ignored so that a typo (``upstreamURL``) does not silently
    drop a value.
    """
    if not isinstance(data, Mapping):
        raise RegistryValidationError("body", f"expected an object, got {type(data).__name__}")
    allowed = tuple(allowed)
    result: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise RegistryValidationError(str(key), "field names must be strings")
        name = _snake(key.strip())
        if name not in allowed:
            raise RegistryValidationError(key, f"unknown field; expected one of {', '.join(allowed)}")
        if name in result:
            raise RegistryValidationError(name, "given twice (camelCase and snake_case)")
        result[name] = value
    return result


def _text(data: Mapping[str, Any], field: str, *, required: bool = False, default: str = "",
          max_length: int | None = None) -> str:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RegistryValidationError(field, "is required")
        return default
    if not isinstance(value, str):
        raise RegistryValidationError(field, f"must be text, got {type(value).__name__}")
    value = value.strip()
    if max_length is not None and len(value) > max_length:
        raise RegistryValidationError(field, f"at most {max_length} characters, got {len(value)}")
    return value


def _required_text(value: Any, field: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RegistryValidationError(field, "is required")
    if not isinstance(value, str):
        raise RegistryValidationError(field, f"must be text, got {type(value).__name__} {value!r}")
    return value.strip()


def validate_slug(value: Any, field: str) -> str:
    """Lowercase letters, digits and dashes, 1 to 64 characters, not starting or ending with a dash."""
    slug = _required_text(value, field)
    if not SLUG.match(slug):
        raise RegistryValidationError(
            field, f"{slug!r} is not a slug (lowercase letters, digits and dashes, 1-64 characters)"
        )
    return slug


def validate_name(value: Any, field: str) -> str:
    """A team or cost-centre name: non-empty, at most 64 characters, no whitespace."""
    name = _required_text(value, field)
    if len(name) > 64 or any(char.isspace() for char in name):
        raise RegistryValidationError(field, f"{name!r} must be 1-64 characters without spaces")
    return name


def validate_address(value: Any, field: str) -> str:
    """``0x`` + 40 hex digits, returned checksummed; a mixed-case address must have a valid checksum."""
    address = _required_text(value, field)
    if not ADDRESS.fullmatch(address):
        raise RegistryValidationError(field, f"{address!r} is not an address (0x followed by 40 hex digits)")
    digits, checksummed = address[2:], to_checksum(address)
    if digits != digits.lower() and digits != digits.upper() and address != checksummed:
        raise RegistryValidationError(field, f"{address} has an invalid EIP-55 checksum (a typo?)")
    return checksummed


def validate_price(value: Any, field: str = "price") -> int:
    """Atomic units: an ``int`` or a string of decimal digits, ``0 <= price < 2**256``. Never a float."""
    if isinstance(value, bool) or value is None:
        raise RegistryValidationError(field, "is required (an integer count of atomic units)")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        number = int(value)
    else:
        raise RegistryValidationError(
            field, f"must be a non-negative integer of atomic units, got {value!r}"
        )
    if not 0 <= number <= UINT256_MAX:
        raise RegistryValidationError(field, f"must be between 0 and 2**256 - 1, got {number}")
    return number


def parse_labels(value: Any, field: str = "labels") -> dict[str, str]:
    """Labels from a mapping or from text ``k=v;k2=v2`` (empty text: none). Keys are unique and non-empty."""
    if value is None or value == "":
        return {}
    pairs: list[tuple[Any, Any]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for part in value.split(";"):
            if not part.strip():
                continue
            key, sep, item = part.partition("=")
            if not sep:
                raise RegistryValidationError(field, f"{part.strip()!r} is not key=value")
            pairs.append((key, item))
    else:
        raise RegistryValidationError(field, f"expected k=v;k2=v2 or an object, got {type(value).__name__}")
    labels: dict[str, str] = {}
    for key, item in pairs:
        name = str(key).strip()
        if not name:
            raise RegistryValidationError(field, "a label has an empty key")
        if name in labels:
            raise RegistryValidationError(field, f"label {name!r} given twice")
        if not isinstance(item, str | int | float | bool):
            raise RegistryValidationError(field, f"label {name!r} must be text")
        labels[name] = str(item).strip()
    return labels


def validate_agent(data: Mapping[str, Any]) -> Agent:
    """A new :class:`Agent` from ``agent_id``, ``wallet`` and ``team`` (required), ``name``,
    ``cost_center``, ``owner`` and ``labels`` (optional)."""
    fields = normalize_keys(data, AGENT_FIELDS)
    cost_center = fields.get("cost_center")
    return Agent(
        agent_id=validate_slug(fields.get("agent_id"), "agent_id"),
        wallet=validate_address(fields.get("wallet"), "wallet"),
        name=_text(fields, "name", max_length=200),
        team=validate_name(fields.get("team"), "team"),
        cost_center=validate_name(cost_center, "cost_center") if cost_center not in (None, "") else "unregistered",
        owner=_text(fields, "owner", max_length=200),
        labels=parse_labels(fields.get("labels")),
    )


def validate_status(value: Any, field: str = "status") -> CapabilityStatus:
    try:
        return CapabilityStatus(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(status.value for status in CapabilityStatus)
        raise RegistryValidationError(field, f"{value!r} is not one of {choices}") from None


def validate_capability(
    data: Mapping[str, Any], *, networks: Mapping[str, NetworkConfig] | None = None
) -> Capability:
    """A :class:`Capability` ready to be upserted.

    Required: ``id`` (slug), ``provider_team``, ``name``, ``price``, ``asset``, ``network`` (CAIP-2,
    present in ``networks``, by default the networks file), ``pay_to``, and at least one of ``route``
    (a path starting with ``/``) and ``upstream_url`` (http or https). Defaults: ``method`` GET,
    ``mime_type`` application/json, ``status`` pending, ``description`` empty.
    """
    fields = normalize_keys(data, CAPABILITY_FIELDS)
    networks = known_networks() if networks is None else networks
    network = _text(fields, "network", required=True)
    if not CAIP2.match(network):
        raise RegistryValidationError("network", f"{network!r} is not a CAIP-2 id such as eip155:8453")
    if network not in networks:
        raise RegistryValidationError("network", f"{network!r} is not a known network; known: "
                                      f"{', '.join(sorted(networks))}")
    route = _text(fields, "route", max_length=500) or None
    upstream_url = _text(fields, "upstream_url", max_length=2000) or None
    if route is None and upstream_url is None:
        raise RegistryValidationError("route", "give a route or an upstream_url (or both)")
    if route is not None and (not route.startswith("/") or any(char.isspace() for char in route)):
        raise RegistryValidationError("route", f"{route!r} must be a path starting with /")
    if upstream_url is not None:
        parsed = urlparse(upstream_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RegistryValidationError("upstream_url", f"{upstream_url!r} is not an http(s) URL")
    method = _text(fields, "method", default="GET").upper()
    if method not in HTTP_METHODS:
        raise RegistryValidationError("method", f"{method!r} is not one of {', '.join(sorted(HTTP_METHODS))}")
    mime_type = _text(fields, "mime_type", default="application/json", max_length=100)
    if not MIME.match(mime_type):
        raise RegistryValidationError("mime_type", f"{mime_type!r} is not a MIME type such as application/json")
    status = fields.get("status")
    return Capability(
        id=validate_slug(fields.get("id"), "id"),
        provider_team=validate_name(fields.get("provider_team"), "provider_team"),
        name=_text(fields, "name", required=True, max_length=200),
        description=_text(fields, "description"),
        price=validate_price(fields.get("price")),
        asset=validate_address(fields.get("asset"), "asset"),
        network=network,
        pay_to=validate_address(fields.get("pay_to"), "pay_to"),
        route=route,
        upstream_url=upstream_url,
        method=method,
        mime_type=mime_type,
        status=(CapabilityStatus.PENDING if status in (None, "") else validate_status(status)).value,
    )


@dataclass(frozen=True)
class Rejection:
    """One refused input record: where it was (a line or item number) and why."""

    where: int
    reason: str


def check_agent_batch(
    rows: list[tuple[int, Agent]], existing: Iterable[Agent]
) -> list[Rejection]:
    """Rows of an import that would collide once the whole batch is applied over ``existing``.

    ``rows`` are (line number, agent) pairs that passed :func:`validate_agent`. An agent id given twice
    in the batch, or a wallet that would end up on two agents, rejects the later line(s).
    """
    final_wallet = {agent.agent_id: agent.wallet for agent in existing}
    seen_ids: dict[str, int] = {}
    rejections: list[Rejection] = []
    for line, agent in rows:
        if agent.agent_id in seen_ids:
            rejections.append(Rejection(line, f"agent_id: {agent.agent_id!r} also on line {seen_ids[agent.agent_id]}"))
            continue
        seen_ids[agent.agent_id] = line
        final_wallet[agent.agent_id] = agent.wallet
    owners: dict[str, list[str]] = {}
    for agent_id, wallet in final_wallet.items():
        owners.setdefault(wallet.lower(), []).append(agent_id)
    rejected = {rejection.where for rejection in rejections}
    for line, agent in rows:
        if line in rejected:
            continue
        others = [other for other in owners[agent.wallet.lower()] if other != agent.agent_id]
        if others:
            where = f"line {seen_ids[others[0]]}" if others[0] in seen_ids else "the registry"
            rejections.append(Rejection(line, f"wallet: {agent.wallet} also belongs to agent {others[0]!r} ({where})"))
    return sorted(rejections, key=lambda rejection: rejection.where)


def check_capability_batch(items: list[tuple[int, Capability]]) -> list[Rejection]:
    """Capability ids given twice in one import reject the later item(s)."""
    seen: dict[str, int] = {}
    rejections: list[Rejection] = []
    for where, capability in items:
        if capability.id in seen:
            rejections.append(Rejection(where, f"id: {capability.id!r} also at item {seen[capability.id]}"))
        else:
            seen[capability.id] = where
    return rejections


def agent_to_json(agent: Agent) -> dict[str, Any]:
    return {
        "agentId": agent.agent_id,
        "wallet": agent.wallet,
        "name": agent.name,
        "team": agent.team,
        "costCenter": agent.cost_center,
        "owner": agent.owner,
        "labels": dict(agent.labels),
        "createdAt": wire_time(agent.created_at),
    }


def capability_to_json(capability: Capability) -> dict[str, Any]:
    return {
        "id": capability.id,
        "providerTeam": capability.provider_team,
        "name": capability.name,
        "description": capability.description,
        "price": str(capability.price),
        "asset": capability.asset,
        "network": capability.network,
        "payTo": capability.pay_to,
        "route": capability.route,
        "upstreamUrl": capability.upstream_url,
        "method": capability.method,
        "mimeType": capability.mime_type,
        "status": capability.status,
        "createdAt": wire_time(capability.created_at),
        "updatedAt": wire_time(capability.updated_at),
    }
