"""Registry tables: who agents are (and which team and cost centre pay for them), what capabilities cost.

The gateway reads a capability's price, asset, network and payTo from here at every request, and the
facilitator attributes every settlement to an agent and a capability from here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.db.clock import utc_now
from app.db.types import Uint256, UtcDateTime

UNREGISTERED = "unregistered"  # attribution of a payer or resource we do not know


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: int | None = Field(default=None, primary_key=True)
    agent_id: str = Field(max_length=64, unique=True)  # slug
    wallet: str = Field(max_length=42, unique=True)  # checksummed
    name: str = Field(default="", max_length=200)
    team: str = Field(default=UNREGISTERED, max_length=64, index=True)
    cost_center: str = Field(default=UNREGISTERED, max_length=64)
    owner: str = Field(default="", max_length=200)
    labels: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


class CapabilityStatus(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"
    SUSPENDED = "suspended"


class Capability(SQLModel, table=True):
    """A paid capability in the registry; the gateway reads price, asset, network and payTo from here."""

    __tablename__ = "capabilities"

    id: str = Field(primary_key=True, max_length=64)  # slug, e.g. "weather-forecast"
    provider_team: str = Field(max_length=64, index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="")
    price: int = Field(sa_type=Uint256)  # atomic units of the asset
    asset: str = Field(max_length=42)
    network: str = Field(max_length=64)
    pay_to: str = Field(max_length=42, index=True)
    route: str | None = Field(default=None, max_length=500)  # in-process route, e.g. /weather
    upstream_url: str | None = Field(default=None, max_length=2000)  # reverse-proxy target
    method: str = Field(default="GET", max_length=10)
    mime_type: str = Field(default="application/json", max_length=100)
    status: str = Field(default=CapabilityStatus.PENDING, max_length=16)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
