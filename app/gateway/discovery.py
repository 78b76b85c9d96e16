"""``GET /discovery/resources``: the approved capabilities in the x402 "bazaar" list shape. Public.

Shape (x402 v2 specification section 8, bazaar extension)::

    {"x402Version": 2,
     "items": [{"resource": <absolute URL>, "type": "http", "x402Version": 2, "accepts": [<v2 requirement>],
                "lastUpdated": <ISO 8601>, "description", "mimeType", "metadata": {...}}],
     "pagination": {"limit", "offset", "total"}}

Only capabilities that are payable right now are listed: status ``approved``, priced on an enabled
network in a configured asset, and reachable at a known URL (their in-process ``route``, or
``/cap/<id>`` when they have an upstream). ``accepts`` is exactly what the gateway offers in its 402.
Filters: ``type``, ``payTo``, ``network`` (CAIP-2 or a v1 name), ``scheme``, ``extensions`` (no listed
capability carries an extension yet, so any value matches none); ``limit`` 1-100 (default 20) and
``offset`` >= 0. A malformed value is a 400, never a 500.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from app.config import NetworkConfig
from app.db.clock import wire_time
from app.deps import get_networks, get_registry
from app.errors import BadRequest, error_responses
from app.gateway.offers import Offer, OfferError, make_offer
from app.gateway.schemas import DiscoveryList
from app.protocol import ProtocolError, normalize_network
from app.registry.models import Capability, CapabilityStatus
from app.registry.service import RegistryService

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
RESOURCE_TYPE = "http"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")

router = APIRouter(tags=["discovery"])


def resource_url(capability: Capability, base_url: str) -> str | None:
    """Where an agent calls the capability, or None when it has no known URL."""
    base = base_url.rstrip("/")
    if capability.route:
        if capability.route.startswith(("http://", "https://")):
            return capability.route
        return base + "/" + capability.route.lstrip("/")
    if capability.upstream_url:
        return f"{base}/cap/{capability.id}"
    return None


def _item(offer: Offer, url: str) -> dict[str, Any]:
    capability = offer.capability
    return {
        "resource": url,
        "type": RESOURCE_TYPE,
        "x402Version": 2,
        "accepts": [offer.v2.to_wire()],
        "lastUpdated": wire_time(capability.updated_at),
        "description": capability.description or capability.name,
        "mimeType": capability.mime_type,
        "metadata": {
            "name": capability.name,
            "description": capability.description,
            "providerTeam": capability.provider_team,
            "capabilityId": capability.id,
            "method": capability.method,
            "mimeType": capability.mime_type,
        },
    }


def _network_filter(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_network(value)
    except ProtocolError as error:
        raise BadRequest(f"network: {error.message}", reason="invalid_network") from None


def _pay_to_filter(value: str | None) -> str | None:
    if value is None:
        return None
    if not _ADDRESS.match(value):
        raise BadRequest("payTo must be a 0x-prefixed 20-byte hex address")
    return value.lower()


@router.get("/discovery/resources", summary="Paid capabilities in the x402 bazaar discovery shape",
            response_model=DiscoveryList, response_model_exclude_none=True, responses=error_responses(BadRequest))
async def list_resources(
    request: Request,
    registry: Annotated[RegistryService, Depends(get_registry)],
    networks: Annotated[dict[str, NetworkConfig], Depends(get_networks)],
    resource_type: Annotated[str | None, Query(alias="type", max_length=32)] = None,
    pay_to: Annotated[str | None, Query(alias="payTo", max_length=42)] = None,
    network: Annotated[str | None, Query(max_length=64)] = None,
    scheme: Annotated[str | None, Query(max_length=32)] = None,
    extensions: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    wanted_network = _network_filter(network)
    wanted_pay_to = _pay_to_filter(pay_to)
    capabilities = await run_in_threadpool(registry.list_capabilities,
                                           status=CapabilityStatus.APPROVED)
    base = str(request.base_url)
    items = []
    for capability in capabilities:
        url = resource_url(capability, base)
        if url is None:
            continue
        try:
            offer = make_offer(capability, url, networks)
        except OfferError:
            continue  # not payable here (network not enabled, asset not configured)
        if resource_type is not None and resource_type != RESOURCE_TYPE:
            continue
        if scheme is not None and scheme != offer.v2.scheme:
            continue
        if wanted_network is not None and wanted_network != offer.v2.network:
            continue
        if wanted_pay_to is not None and wanted_pay_to != offer.v2.pay_to.lower():
            continue
        if extensions:
            continue  # no capability declares an extension
        items.append(_item(offer, url))
    return {
        "x402Version": 2,
        "items": items[offset:offset + limit],
        "pagination": {"limit": limit, "offset": offset, "total": len(items)},
    }
