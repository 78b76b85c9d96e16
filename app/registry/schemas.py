"""The registry's wire forms: camelCase JSON, prices as decimal strings (as x402 amounts are) so no
uint256 loses digits in a JSON reader that uses floats, times in the one wire form."""

from __future__ import annotations

from typing import Any

from app.db.clock import wire_time
from app.registry.models import Agent, Capability


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
