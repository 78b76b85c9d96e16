"""Validation of registry input (agents and capabilities), shared by the CLI and the HTTP routes.

Pure: no I/O, no database. Each ``validate_*`` function takes a mapping as it arrived (a CSV row, a
YAML/JSON object, a request body; camelCase or snake_case keys) and returns a normalised model, or
raises :class:`FieldError` (a ``ValueError``) whose message starts with the field name.

Normalisation: addresses are stored EIP-55 checksummed (a mixed-case address must carry a valid
checksum: a wrong one is more likely a typo than a style); prices are ``int`` atomic units; methods
are upper case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from app.config import NetworkConfig, known_networks
from app.db.types import UINT256_MAX
from app.registry.models import Agent, Capability, CapabilityStatus
from app.validation import FieldError, validate_address, validate_name, validate_slug

CAIP2 = re.compile(r"^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$")
MIME = re.compile(r"^[\w.+-]+/[\w.+-]+(?:\s*;.*)?$")
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

AGENT_FIELDS = ("agent_id", "wallet", "name", "team", "cost_center", "owner", "labels")
CAPABILITY_FIELDS = (
    "id", "provider_team", "name", "description", "price", "asset", "network", "pay_to",
    "route", "upstream_url", "method", "mime_type", "status",
)


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def normalize_keys(data: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """``data`` with camelCase keys turned snake_case; unknown or repeated keys are refused.

    Unknown keys are an error rather than ignored so that a typo (``upstreamURL``) does not silently
    drop a value.
    """
    if not isinstance(data, Mapping):
        raise FieldError("body", f"expected an object, got {type(data).__name__}")
    allowed = tuple(allowed)
    result: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise FieldError(str(key), "field names must be strings")
        name = _snake(key.strip())
        if name not in allowed:
            raise FieldError(key, f"unknown field; expected one of {', '.join(allowed)}")
        if name in result:
            raise FieldError(name, "given twice (camelCase and snake_case)")
        result[name] = value
    return result


def _text(data: Mapping[str, Any], field: str, *, required: bool = False, default: str = "",
          max_length: int | None = None) -> str:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldError(field, "is required")
        return default
    if not isinstance(value, str):
        raise FieldError(field, f"must be text, got {type(value).__name__}")
    value = value.strip()
    if max_length is not None and len(value) > max_length:
        raise FieldError(field, f"at most {max_length} characters, got {len(value)}")
    return value


def validate_price(value: Any, field: str = "price") -> int:
    """Atomic units: an ``int`` or a string of decimal digits, ``0 <= price < 2**256``. Never a float."""
    if isinstance(value, bool) or value is None:
        raise FieldError(field, "is required (an integer count of atomic units)")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        number = int(value)
    else:
        raise FieldError(
            field, f"must be a non-negative integer of atomic units, got {value!r}"
        )
    if not 0 <= number <= UINT256_MAX:
        raise FieldError(field, f"must be between 0 and 2**256 - 1, got {number}")
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
                raise FieldError(field, f"{part.strip()!r} is not key=value")
            pairs.append((key, item))
    else:
        raise FieldError(field, f"expected k=v;k2=v2 or an object, got {type(value).__name__}")
    labels: dict[str, str] = {}
    for key, item in pairs:
        name = str(key).strip()
        if not name:
            raise FieldError(field, "a label has an empty key")
        if name in labels:
            raise FieldError(field, f"label {name!r} given twice")
        if not isinstance(item, str | int | float | bool):
            raise FieldError(field, f"label {name!r} must be text")
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
        raise FieldError(field, f"{value!r} is not one of {choices}") from None


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
        raise FieldError("network", f"{network!r} is not a CAIP-2 id such as eip155:8453")
    if network not in networks:
        raise FieldError("network", f"{network!r} is not a known network; known: "
                                      f"{', '.join(sorted(networks))}")
    route = _text(fields, "route", max_length=500) or None
    upstream_url = _text(fields, "upstream_url", max_length=2000) or None
    if route is None and upstream_url is None:
        raise FieldError("route", "give a route or an upstream_url (or both)")
    if route is not None and (not route.startswith("/") or any(char.isspace() for char in route)):
        raise FieldError("route", f"{route!r} must be a path starting with /")
    if upstream_url is not None:
        parsed = urlparse(upstream_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FieldError("upstream_url", f"{upstream_url!r} is not an http(s) URL")
    method = _text(fields, "method", default="GET").upper()
    if method not in HTTP_METHODS:
        raise FieldError("method", f"{method!r} is not one of {', '.join(sorted(HTTP_METHODS))}")
    mime_type = _text(fields, "mime_type", default="application/json", max_length=100)
    if not MIME.match(mime_type):
        raise FieldError("mime_type", f"{mime_type!r} is not a MIME type such as application/json")
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
