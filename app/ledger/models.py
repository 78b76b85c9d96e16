"""Ledger tables: who agents are, what capabilities cost, and the append-only journal of money.

Money rows are never updated or deleted: a correction is a reversing line. Attribution fields
(agent, team, cost centre, capability, provider) are copied onto each journal line when it is
booked, so a later re-organisation does not rewrite history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, UniqueConstraint
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


class EntryType(StrEnum):
    PAYMENT = "payment"  # the agent's spend, the provider's revenue
    NETWORK_FEE = "network_fee"  # gas the facilitator paid to settle, attributed to the same agent
    REVERSAL = "reversal"  # undoes one earlier line, side swapped


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


NATIVE_ASSET = "native"  # the chain's gas currency (wei), for network-fee lines


class JournalLine(SQLModel, table=True):
    """One line of double entry. Per asset, debits equal credits over every settlement."""

    __tablename__ = "journal_lines"
    __table_args__ = (
        Index("ix_journal_booked_at", "booked_at"),
        Index("ix_journal_account_kind_booked", "account_kind", "booked_at"),
        UniqueConstraint("reverses_id", name="uq_journal_reversed_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    settlement_id: int = Field(sa_column=Column(Integer, ForeignKey("settlements.id"), nullable=False, index=True))
    entry_type: str = Field(max_length=16)
    account: str = Field(max_length=200)  # e.g. agent:fleet-7:spend, provider:maps:revenue
    account_kind: str = Field(max_length=32)  # agent_spend | provider_revenue | agent_fees | facilitator_gas
    side: str = Field(max_length=6)
    amount: int = Field(sa_type=Uint256)
    asset: str = Field(max_length=42)  # token address, or "native" for gas
    network: str = Field(max_length=64)
    agent_id: str = Field(max_length=64)
    team: str = Field(max_length=64)
    cost_center: str = Field(max_length=64)
    capability_id: str = Field(max_length=64)
    provider: str = Field(max_length=64)
    reverses_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("journal_lines.id"), nullable=True)
    )
    memo: str = Field(default="", max_length=500)
    booked_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


class ApiKey(SQLModel, table=True):
    """A caller's key, stored only as its SHA-256 digest, with the scopes it grants."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=12)  # first characters, to recognise a key in listings
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    provider_team: str | None = Field(default=None, max_length=64)  # for the provider scope
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
