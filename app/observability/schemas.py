"""The shape of GET /health (built as plain JSON on the probe path; this documents it)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from app.wire import WireSchema

Status = Literal["ok", "error"]


class _Exact(WireSchema):
    model_config = ConfigDict(extra="forbid")  # the report has exactly these fields: a new one is documented


class DatabaseHealth(_Exact):
    status: Status
    backend: str | None = Field(default=None, description="sqlite or postgresql, when it answers")
    error: str | None = Field(default=None, description="the driver's error kind and first line")


class TokenHealth(_Exact):
    address: str
    name: str
    version: str
    decimals: int


class SignerHealth(_Exact):
    address: str
    mined_nonce: int = Field(description="the hot wallet's transactions in the latest block")
    pending_nonce: int = Field(description="mined + the unbroken run of pending ones")
    allocated_nonce: int | None = Field(description="the next nonce the ledger hands out")
    stuck: str | None = Field(description="why it cannot settle now (a nonce missing, a transaction waiting too "
                                          "long); null when it can")


class NetworkHealth(_Exact):
    status: Status
    chain_id: int | None = None
    latest_block: int | None = None
    finalized_block: int | None = Field(default=None, description="null: the node has no finality tag yet")
    tokens: list[TokenHealth] | None = None
    signer: SignerHealth | None = None
    error: str | None = None


class HealthReport(_Exact):
    status: Status = Field(description="ok only when the database and every network are ok (else HTTP 503)")
    database: DatabaseHealth
    networks: dict[str, NetworkHealth] = Field(description="by CAIP-2 network id")
    facilitator: str | None = Field(default=None, description="the hot wallet that pays gas to settle")
