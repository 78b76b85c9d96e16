"""The gateway's documented shapes: the discovery list (x402 bazaar) and the answers of a paid route."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from app.protocol import PaymentRequirements, PaymentRequirementsV1
from app.wire import WireSchema


class DiscoveryMetadata(WireSchema):
    name: str
    description: str
    provider_team: str
    capability_id: str
    method: str
    mime_type: str


class DiscoveryItem(WireSchema):
    resource: str = Field(description="where an agent calls it: its route here, or /cap/<id> for a proxied one")
    type: Literal["http"]
    x402_version: Literal[2]
    accepts: list[PaymentRequirements] = Field(description="exactly what the gateway offers in its 402")
    last_updated: str
    description: str
    mime_type: str
    metadata: DiscoveryMetadata


class Pagination(WireSchema):
    limit: int
    offset: int
    total: int


class DiscoveryList(WireSchema):
    x402_version: Literal[2]
    items: list[DiscoveryItem]
    pagination: Pagination


class PaymentRequiredBody(WireSchema):
    """The body of a 402 (x402 v1 clients read it; v2 clients read the PAYMENT-REQUIRED header)."""

    model_config = ConfigDict(extra="allow")

    x402_version: int
    error: str
    accepts: list[PaymentRequirementsV1]
