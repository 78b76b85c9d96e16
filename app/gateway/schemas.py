"""The gateway's documented shapes: the discovery list (x402 bazaar) and the answers of a paid route."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.protocol import PaymentRequirements, PaymentRequirementsV1


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class DiscoveryMetadata(_Wire):
    name: str
    description: str
    provider_team: str
    capability_id: str
    method: str
    mime_type: str


class DiscoveryItem(_Wire):
    resource: str = Field(description="where an agent calls it: its route here, or /cap/<id> for a proxied one")
    type: Literal["http"]
    x402_version: Literal[2]
    accepts: list[PaymentRequirements] = Field(description="exactly what the gateway offers in its 402")
    last_updated: str
    description: str
    mime_type: str
    metadata: DiscoveryMetadata


class Pagination(_Wire):
    limit: int
    offset: int
    total: int


class DiscoveryList(_Wire):
    x402_version: Literal[2]
    items: list[DiscoveryItem]
    pagination: Pagination


class PaymentRequiredBody(_Wire):
    """The body of a 402 (x402 v1 clients read it; v2 clients read the PAYMENT-REQUIRED header)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    x402_version: int
    error: str
    accepts: list[PaymentRequirementsV1]
