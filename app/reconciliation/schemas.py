"""POST /ledger/reconcile: its request, and the report it answers with."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.reconciliation.service import DiscrepancyKind


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    network: str = Field(min_length=1, max_length=64)
    from_block: int = Field(alias="fromBlock", ge=0, strict=True)
    to_block: Annotated[int, Field(strict=True, ge=0)] | Literal["latest"] = Field(default="latest", alias="toBlock")


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class DiscrepancyOut(_Wire):
    kind: DiscrepancyKind
    settlement_id: int | None
    tx_hash: str | None
    block_number: int | None
    expected: str | None = Field(description="what the ledger says (or should say)")
    actual: str | None = Field(description="what the chain says")
    asset: str | None
    payer: str | None
    nonce: str | None
    message: str


class ReconciliationReportOut(_Wire):
    network: str
    from_block: int
    to_block: int
    checked_rows: int
    checked_events: int
    clean: bool
    signers: list[str]
    counts: dict[str, int] = Field(description="discrepancies by kind")
    discrepancies: list[DiscrepancyOut]
