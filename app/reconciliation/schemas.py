"""POST /ledger/reconcile: its request, and the report it answers with."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.reconciliation.discrepancies import DiscrepancyKind
from app.wire import WireSchema


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    network: str = Field(min_length=1, max_length=64)
    from_block: int = Field(alias="fromBlock", ge=0, strict=True)
    to_block: Annotated[int, Field(strict=True, ge=0)] | Literal["latest"] = Field(default="latest", alias="toBlock")


class DiscrepancyOut(WireSchema):
    kind: DiscrepancyKind
    settlement_id: int | None
    tx_hash: str | None
    block_number: int | None
    expected: str | None = Field(description="what the ledger says (or should say); journal kinds: what the "
                                             "settlement books")
    actual: str | None = Field(description="what the chain says; journal kinds: what the journal holds")
    asset: str | None
    payer: str | None
    nonce: str | None
    line_id: int | None = Field(description="journal kinds: the (first) journal line concerned")
    message: str


class ReconciliationReportOut(WireSchema):
    network: str
    from_block: int
    to_block: int
    checked_rows: int
    checked_events: int
    checked_journal_lines: int = Field(description="journal lines of the checked settlements")
    clean: bool
    signers: list[str]
    counts: dict[str, int] = Field(description="discrepancies by kind")
    discrepancies: list[DiscrepancyOut]
