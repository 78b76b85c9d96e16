"""Registry API: capabilities (read by any key, written by admins and their own provider) and agents.

Bodies are camelCase JSON (snake_case is accepted too); prices are integers of atomic units, sent as
a number or a decimal string, and returned as a decimal string. Validation errors are 400 naming
the field; a provider writing another team's capability is 403 naming the team.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from app.access.dependencies import Principal, authenticate, require_scope
from app.access.models import Scope
from app.config import Settings, known_networks
from app.deps import get_registry, get_settings
from app.errors import BadRequest
from app.registry.schemas import agent_to_json, capability_to_json
from app.registry.service import RegistryService, RegistryWriter
from app.registry.validation import validate_agent, validate_capability, validate_status

router = APIRouter(tags=["registry"])


def _writer(principal: Principal) -> RegistryWriter:
    return RegistryWriter(name=principal.name, is_admin=Scope.ADMIN in principal.scopes,
                          provider_team=principal.provider_team)


@router.get("/capabilities", summary="Capabilities in the registry (any valid key)")
async def list_capabilities(
    status: str | None = Query(default=None, description="approved, pending or suspended"),
    provider_team: str | None = Query(default=None, alias="providerTeam"),
    _principal: Principal = Depends(authenticate),
    registry: RegistryService = Depends(get_registry),
) -> list[dict[str, Any]]:
    wanted = validate_status(status) if status is not None else None
    rows = await run_in_threadpool(registry.list_capabilities, status=wanted, provider_team=provider_team)
    return [capability_to_json(row) for row in rows]


@router.put("/capabilities/{capability_id}", summary="Create or replace a capability (admin or its provider)")
async def put_capability(
    capability_id: str,
    response: Response,
    body: dict[str, Any] = Body(..., examples=[{
        "providerTeam": "maps", "name": "Geocode", "price": "10000", "network": "eip155:84532",
        "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "payTo": "0x" + "ab" * 20, "route": "/geocode",
        "status": "approved",
    }]),
    principal: Principal = Depends(require_scope(Scope.ADMIN, Scope.PROVIDER)),
    registry: RegistryService = Depends(get_registry),
    settings: Settings = Depends(get_settings),
) -> dict[str, Any]:
    """A whole replace: fields not given take their defaults (method GET, mimeType application/json,
    status pending); the creation time is kept. 201 when created, 200 when replaced."""
    writer = _writer(principal)
    writer.team_limit()  # a provider key without a team is refused before its body is read
    if "id" in body and body["id"] != capability_id:
        raise BadRequest(f"id: the body names {body['id']!r}, the path {capability_id!r}")
    networks = known_networks(settings.networks_file)
    capability = validate_capability({**body, "id": capability_id}, networks=networks)
    row, created = await run_in_threadpool(registry.put_capability, capability, writer)
    response.status_code = 201 if created else 200
    return capability_to_json(row)


@router.post("/capabilities/{capability_id}/status", summary="Approve, suspend or re-open a capability")
async def set_capability_status(
    capability_id: str,
    body: dict[str, Any] = Body(..., examples=[{"status": "suspended"}]),
    principal: Principal = Depends(require_scope(Scope.ADMIN, Scope.PROVIDER)),
    registry: RegistryService = Depends(get_registry),
) -> dict[str, Any]:
    writer = _writer(principal)
    writer.team_limit()
    unknown = set(body) - {"status"}
    if unknown:
        raise BadRequest(f"{sorted(unknown)[0]}: unknown field; the body is {{\"status\": ...}}")
    status = validate_status(body.get("status"))
    row = await run_in_threadpool(registry.set_capability_status, capability_id, status, writer)
    return capability_to_json(row)


@router.get("/agents", summary="Registered agents (finance or admin)")
async def list_agents(
    _principal: Principal = Depends(require_scope(Scope.FINANCE)),
    registry: RegistryService = Depends(get_registry),
) -> list[dict[str, Any]]:
    rows = await run_in_threadpool(registry.list_agents)
    return [agent_to_json(row) for row in rows]


@router.put("/agents/{agent_id}", summary="Create or update an agent (admin)")
async def put_agent(
    agent_id: str,
    response: Response,
    body: dict[str, Any] = Body(..., examples=[{
        "wallet": "0x" + "cd" * 20, "name": "Fleet 7", "team": "logistics", "costCenter": "cc-1200",
        "owner": "ops@example.com", "labels": {"env": "prod"},
    }]),
    _principal: Principal = Depends(require_scope(Scope.ADMIN)),
    registry: RegistryService = Depends(get_registry),
) -> dict[str, Any]:
    """A whole replace of the agent's fields; 201 when created, 200 when updated; 409 when the wallet
    belongs to another agent."""
    given = body.get("agentId", body.get("agent_id", agent_id))
    if given != agent_id:
        raise BadRequest(f"agent_id: the body names {given!r}, the path {agent_id!r}")
    fields = {key: value for key, value in body.items() if key not in ("agentId", "agent_id")}
    agent = validate_agent({**fields, "agent_id": agent_id})
    stored, created = await run_in_threadpool(registry.put_agent, agent)
    response.status_code = 201 if created else 200
    return agent_to_json(stored)
