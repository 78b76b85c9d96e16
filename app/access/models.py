"""The API-key table and the scopes a key can grant."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.db.clock import utc_now
from app.db.types import UtcDateTime


class Scope(StrEnum):
    ADMIN = "admin"  # everything, including registry writes for any provider
    FINANCE = "finance"  # ledger reads, exports, reconciliation
    PROVIDER = "provider"  # registry writes for the key's own provider team
    FACILITATOR = "facilitator"  # /verify and /settle


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
