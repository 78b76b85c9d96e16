"""What a reconciliation can find: the kinds of discrepancy and one finding, shared by the comparison with
the chain (``service``) and the comparison of the journal (``journal``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class DiscrepancyKind(StrEnum):
    MISSING_ON_CHAIN = "missing_on_chain"
    MISSING_IN_LEDGER = "missing_in_ledger"
    OUTSIDE_SERVICE = "outside_service"
    AMOUNT_MISMATCH = "amount_mismatch"
    PAYER_MISMATCH = "payer_mismatch"
    PAYEE_MISMATCH = "payee_mismatch"
    NONCE_MISMATCH = "nonce_mismatch"
    TX_MISMATCH = "tx_mismatch"
    BLOCK_MISMATCH = "block_mismatch"
    STATE_MISMATCH = "state_mismatch"
    JOURNAL_MISMATCH = "journal_mismatch"  # a settlement's journal lines are not what its state books
    JOURNAL_TAMPERED = "journal_tampered"  # the journal's hash chain does not verify
    NOT_MINED = "not_mined"  # a transaction sent long ago (many blocks) that the chain has not mined
    NONCE_GAP = "nonce_gap"  # a hot wallet's ledger handed out nonces the node holds no transaction for


@dataclass(frozen=True)
class Discrepancy:
    kind: DiscrepancyKind
    message: str
    settlement_id: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    expected: str | None = None  # what the ledger says (or should say); journal kinds: what the settlement books
    actual: str | None = None  # what the chain says; journal kinds: what the journal holds
    asset: str | None = None
    payer: str | None = None
    nonce: str | None = None
    line_id: int | None = None  # journal kinds: the (first) journal line concerned

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "settlementId": self.settlement_id, "txHash": self.tx_hash,
            "blockNumber": self.block_number, "expected": self.expected, "actual": self.actual,
            "asset": self.asset, "payer": self.payer, "nonce": self.nonce, "lineId": self.line_id,
            "message": self.message,
        }
