"""The registry's wire forms: camelCase JSON, prices as decimal strings (as x402 amounts are) so no
uint256 loses digits in a JSON reader that uses floats, times in the one wire form.

The ``*In`` models document the request bodies. The bodies themselves are checked by
``app.registry.validation``, the same rules and messages as the command line's imports (camelCase or
snake_case keys, a price as a number or a decimal string, an error naming the field).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from app.db.clock import wire_time
from app.registry.models import Agent, Capability
from app.wire import WireSchema

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
StatusName = Literal["approved", "pending", "suspended"]


class AgentOut(WireSchema):
    agent_id: str
    wallet: str = Field(description="checksummed address the agent pays from")
    name: str
    team: str
    cost_center: str
    owner: str
    labels: dict[str, str]
    created_at: str = Field(description="ISO-8601 UTC, e.g. 2026-12-02T17:43:00.000000Z")

    @classmethod
    def of(cls, agent: Agent) -> AgentOut:
        return cls(agent_id=agent.agent_id, wallet=agent.wallet, name=agent.name, team=agent.team,
                   cost_center=agent.cost_center, owner=agent.owner, labels=dict(agent.labels),
                   created_at=wire_time(agent.created_at) or "")


class CapabilityOut(WireSchema):
    id: str
    provider_team: str
    name: str
    description: str
    price: str = Field(description="atomic units of the asset, a decimal string")
    asset: str
    network: str = Field(description="CAIP-2, e.g. eip155:84532")
    pay_to: str
    route: str | None
    upstream_url: str | None
    method: str
    mime_type: str
    status: StatusName
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, capability: Capability) -> CapabilityOut:
        return cls(id=capability.id, provider_team=capability.provider_team, name=capability.name,
                   description=capability.description, price=str(capability.price), asset=capability.asset,
                   network=capability.network, pay_to=capability.pay_to, route=capability.route,
                   upstream_url=capability.upstream_url, method=capability.method, mime_type=capability.mime_type,
                   status=capability.status, created_at=wire_time(capability.created_at) or "",  # type: ignore[arg-type]
                   updated_at=wire_time(capability.updated_at) or "")


def agent_to_json(agent: Agent) -> dict[str, Any]:
    """The wire form of an agent, for ``--json`` listings."""
    return AgentOut.of(agent).model_dump(mode="json")


def capability_to_json(capability: Capability) -> dict[str, Any]:
    """The wire form of a capability, for ``--json`` listings."""
    return CapabilityOut.of(capability).model_dump(mode="json")


class CapabilityIn(WireSchema):
    """PUT /capabilities/{id}: a whole replace (fields not given take their defaults). snake_case keys are
    accepted too; an unknown key is refused."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"providerTeam": "maps", "name": "Geocode", "price": "10000", "network": "eip155:84532",
                      "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "payTo": "0x" + "ab" * 20,
                      "route": "/geocode", "status": "pending"}]})

    id: str | None = Field(default=None, pattern=SLUG_PATTERN, description="must equal the path's id")
    provider_team: str = Field(max_length=64)
    name: str = Field(max_length=200)
    description: str = ""
    price: int | str = Field(description="atomic units: an integer, or its decimal string (up to 2**256 - 1)")
    asset: str = Field(pattern=ADDRESS_PATTERN)
    network: str = Field(description="a known CAIP-2 network id")
    pay_to: str = Field(pattern=ADDRESS_PATTERN)
    route: str | None = Field(default=None, max_length=500, description="in-process path; route or upstreamUrl")
    upstream_url: str | None = Field(default=None, max_length=2000, description="http(s) URL of the upstream")
    method: str = "GET"
    mime_type: str = Field(default="application/json", max_length=100)
    status: StatusName = Field(default="pending", description="only an admin approves")


class CapabilityStatusIn(WireSchema):
    """POST /capabilities/{id}/status."""

    model_config = ConfigDict(extra="forbid")

    status: StatusName


class AgentIn(WireSchema):
    """PUT /agents/{agent_id}: a whole replace of the agent's fields."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"wallet": "0x" + "cd" * 20, "name": "Fleet 7", "team": "logistics", "costCenter": "cc-1200",
                      "owner": "ops@example.com", "labels": {"env": "prod"}}]})

    agent_id: str | None = Field(default=None, pattern=SLUG_PATTERN, description="must equal the path's agent id")
    wallet: str = Field(pattern=ADDRESS_PATTERN)
    team: str = Field(max_length=64)
    name: str = Field(default="", max_length=200)
    cost_center: str | None = Field(default=None, max_length=64)
    owner: str = Field(default="", max_length=200)
    labels: dict[str, str] | str = Field(default_factory=dict, description="an object, or text k=v;k2=v2")
