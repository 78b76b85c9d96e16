"""Confirmed -> finalized: a settlement becomes final once the chain's finalized block covers it.

``confirmed`` means we saw a successful receipt with the expected Transfer; a reorganisation can still
take that block away. ``finalized`` means the block holding the transfer is at or below the chain's own
``finalized`` block (the JSON-RPC block tag), and the transaction's receipt, read again now, still
names the very block hash we recorded. Only then is the row moved, by the same conditional UPDATE as
every other transition, so replicas doing the same pass cannot disagree.

A confirmed row whose receipt is gone, or now sits in another block, is *displaced*: it is left
confirmed, logged, and counted, because its money is already in the journal and only the
reconciliation (``x402-settle reconcile``) can say what the chain holds instead. Nothing here books or
reverses money.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from app.chain.blocks import finalized_head, receipts
from app.chain.receipts import Receipt
from app.chain.rpc import RpcClient, RpcUnavailable
from app.config import NetworkConfig
from app.settlement.models import Settlement
from app.settlement.repository import SettlementRepository

log = logging.getLogger(__name__)

BATCH_SIZE = 200  # receipts per JSON-RPC batch, rows per query


@dataclass
class FinalityPass:
    """What one pass over a network did."""

    finalized_block: int | None = None  # None: the node has no finalized block (or no such tag)
    finalized: int = 0
    displaced: list[str] = field(default_factory=list)  # tx hashes no longer where we recorded them


class FinalityWatcher:
    def __init__(self, *, networks: dict[str, NetworkConfig], rpc: dict[str, RpcClient],
                 settlements: SettlementRepository) -> None:
        self._networks = networks
        self._rpc = rpc
        self._settlements = settlements

    async def run_once(self) -> dict[str, FinalityPass]:
        """One pass over every network; a network whose node is unreachable is skipped this time."""
        passes: dict[str, FinalityPass] = {}
        for network in self._networks:
            try:
                passes[network] = await self._finalize_network(network)
            except RpcUnavailable as error:
                log.warning("finality check of %s skipped: %s", network, error)
        return passes

    async def run_forever(self, interval_seconds: float) -> None:
        """``run_once`` every ``interval_seconds`` until cancelled; a failed pass is logged, not fatal."""
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("finality pass failed")
            await asyncio.sleep(interval_seconds)

    async def _finalize_network(self, network: str) -> FinalityPass:
        rpc = self._rpc[network]
        head = await finalized_head(rpc)
        outcome = FinalityPass(finalized_block=head.number if head else None)
        if head is None:
            return outcome
        cursor = 0
        while True:
            rows = await run_in_threadpool(self._settlements.confirmed_through, network, head.number,
                                           after_id=cursor, limit=BATCH_SIZE)
            if not rows:
                return outcome
            cursor = max(row.id or 0 for row in rows)
            found = await receipts(rpc, [row.tx_hash or "" for row in rows])
            for row, receipt in zip(rows, found, strict=True):
                if _still_in_recorded_block(row, receipt):
                    if await run_in_threadpool(self._settlements.mark_finalized, row.id):
                        outcome.finalized += 1
                else:
                    outcome.displaced.append(row.tx_hash or "")
                    log.warning("settlement %s: transaction %s is no longer in block %s (%s); left confirmed "
                                "for reconciliation", row.id, row.tx_hash, row.block_hash,
                                "receipt gone" if receipt is None else f"now in {receipt.block_hash}")


def _still_in_recorded_block(row: Settlement, receipt: Receipt | None) -> bool:
    return (receipt is not None and row.block_hash is not None and receipt.succeeded
            and receipt.block_hash == row.block_hash.lower())
