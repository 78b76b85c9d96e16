"""Gateway claims: which request an authorization paid for, so one payment serves one request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db.clock import utc_now
from app.db.types import UtcDateTime


class PaymentClaim(SQLModel, table=True):
    """An authorization presented to the gateway, claimed by one request before its handler runs.

    Unique on the authorization's natural key, so a replayed payment header (sequential, concurrent,
    or on another replica) finds the claim and is refused instead of being served again.
    """

    __tablename__ = "payment_claims"
    __table_args__ = (UniqueConstraint("network", "asset", "payer", "nonce", name="uq_claim_authorization"),)

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=64)
    asset: str = Field(max_length=42)
    payer: str = Field(max_length=42)
    nonce: str = Field(max_length=66)
    capability_id: str = Field(max_length=64)
    request_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
