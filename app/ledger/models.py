"""The journal: append-only double entry of money, one set of lines per confirmed settlement.

Money rows are never updated or deleted: a correction is a reversing line. Attribution fields
(agent, team, cost centre, capability, provider) are copied onto each journal line when it is
booked, so a later re-organisation does not rewrite history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db.clock import utc_now
from app.db.types import Uint256, UtcDateTime


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
