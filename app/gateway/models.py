"""Gateway claims: which request an authorization paid for, so one payment serves one request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
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


class PaymentResponse(SQLModel, table=True):
    """The answer given to a payment that carried a payment identifier (x402 ``payment-identifier``
    extension), kept so a resend of the same payment gets the same answer instead of being served again.

    The identifier is bound to the exact payment (``fingerprint``: SHA-256 of the canonical payment
    payload): the same identifier on another payment is a conflict.
    """

    __tablename__ = "payment_responses"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: str = Field(max_length=128, unique=True)
    fingerprint: str = Field(max_length=64)
    capability_id: str = Field(max_length=64)
    request_id: str = Field(max_length=64)
    complete: bool = False  # False while the original request is in flight
    status: int | None = None
    headers: list[list[str]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
