"""Registry API: capabilities (read by any key, written by admins and their own provider) and agents.

Bodies are camelCase JSON (snake_case is accepted too); prices are integers of atomic units, sent as
a number or a decimal string, and returned as a decimal string. Validation errors are 400 naming
the field; a provider writing another team's capability is 403 naming the team.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from app.access.dependencies import Principal, authenticate, require_scope
from app.access.models import Scope
from app.bodies import json_object_body
from app.config import Settings, known_networks
from app.deps import get_registry, get_settings
from app.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, error_responses
from app.openapi import body_of
from app.registry.schemas import AgentIn, AgentOut, CapabilityIn, CapabilityOut, CapabilityStatusIn
from app.registry.service import RegistryService, RegistryWriter
from app.registry.validation import validate_agent, validate_capability, validate_status

router = APIRouter(tags=["registry"])

_READ = error_responses(Unauthorized, Forbidden)
_WRITE = error_responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge)


def _writer(principal: Principal) -> RegistryWriter:
    return RegistryWriter(name=principal.name, is_admin=Scope.ADMIN in principal.scopes,
                          provider_team=principal.provider_team)


@router.get("/capabilities", summary="Capabilities in the registry (any valid key)",
            response_model=list[CapabilityOut], responses=_READ)
async def list_capabilities(
    status: str | None = Query(default=None, description="approved, pending or suspended"),
    provider_team: str | None = Query(default=None, alias="providerTeam"),
    _principal: Principal = Depends(authenticate),
    registry: RegistryService = Depends(get_registry),
) -> list[CapabilityOut]:
    wanted = validate_status(status) if status is not None else None
    rows = await run_in_threadpool(registry.list_capabilities, status=wanted, provider_team=provider_team)
    return [CapabilityOut.of(row) for row in rows]


@router.put("/capabilities/{capability_id}", summary="Create or replace a capability (admin or its provider)",
            response_model=CapabilityOut, responses={201: {"model": CapabilityOut, "description": "created"}, **_WRITE},
            openapi_extra=body_of(CapabilityIn))
async def put_capability(
    capability_id: str,
    response: Response,
    principal: Principal = Depends(require_scope(Scope.ADMIN, Scope.PROVIDER)),
    body: dict[str, Any] = Depends(json_object_body),
    registry: RegistryService = Depends(get_registry),
    settings: Settings = Depends(get_settings),
) -> CapabilityOut:
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
    return CapabilityOut.of(row)


@router.post("/capabilities/{capability_id}/status", summary="Approve, suspend or re-open a capability",
             response_model=CapabilityOut, responses=_WRITE, openapi_extra=body_of(CapabilityStatusIn))
async def set_capability_status(
    capability_id: str,
    principal: Principal = Depends(require_scope(Scope.ADMIN, Scope.PROVIDER)),
    body: dict[str, Any] = Depends(json_object_body),
    registry: RegistryService = Depends(get_registry),
) -> CapabilityOut:
    writer = _writer(principal)
    writer.team_limit()
    unknown = set(body) - {"status"}
    if unknown:
        raise BadRequest(f"{sorted(unknown)[0]}: unknown field; the body is {{\"status\": ...}}")
    status = validate_status(body.get("status"))
    row = await run_in_threadpool(registry.set_capability_status, capability_id, status, writer)
    return CapabilityOut.of(row)


@router.get("/agents", summary="Registered agents (finance or admin)", response_model=list[AgentOut],
            responses=_READ)
async def list_agents(
    _principal: Principal = Depends(require_scope(Scope.FINANCE)),
    registry: RegistryService = Depends(get_registry),
) -> list[AgentOut]:
    rows = await run_in_threadpool(registry.list_agents)
    return [AgentOut.of(row) for row in rows]


@router.put("/agents/{agent_id}", summary="Create or update an agent (admin)", response_model=AgentOut,
            responses={201: {"model": AgentOut, "description": "created"}, **_WRITE}, openapi_extra=body_of(AgentIn))
async def put_agent(
    agent_id: str,
    response: Response,
    _principal: Principal = Depends(require_scope(Scope.ADMIN)),
    body: dict[str, Any] = Depends(json_object_body),
    registry: RegistryService = Depends(get_registry),
) -> AgentOut:
    """A whole replace of the agent's fields; 201 when created, 200 when updated; 409 when the wallet
    belongs to another agent."""
    given = body.get("agentId", body.get("agent_id", agent_id))
    if given != agent_id:
        raise BadRequest(f"agent_id: the body names {given!r}, the path {agent_id!r}")
    fields = {key: value for key, value in body.items() if key not in ("agentId", "agent_id")}
    agent = validate_agent({**fields, "agent_id": agent_id})
    stored, created = await run_in_threadpool(registry.put_agent, agent)
    response.status_code = 201 if created else 200
    return AgentOut.of(stored)
