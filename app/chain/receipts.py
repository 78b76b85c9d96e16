"""Receipts: decoded into one typed record, and waited for with one poller per network, each poll one batch.

Every settlement waits for its receipt. Polled one by one, N settlements in flight cost N requests per
poll interval: on a chain with 2-second blocks and a 50 ms interval, forty requests per settlement, which a
paid RPC provider bills and rate-limits. Here all the hashes waited for on a network are asked for in a
single batch per poll. A poll runs as soon as a new hash arrives (so a chain that mines on arrival answers
at once) and otherwise every ``poll_interval`` seconds; polls are never closer than ``min_gap`` seconds,
so a burst of arrivals shares one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from app.chain.rpc import RpcClient, RpcError, RpcUnavailable, quantity
from app.chain.signatures import to_checksum

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """What the chain says about a mined transaction, decoded from ``eth_getTransactionReceipt``."""

    tx_hash: str  # lowercase 0x-hex
    status: int  # 1 success, 0 reverted
    tx_type: int  # the EIP-2718 envelope: 2 for EIP-1559
    block_number: int
    block_hash: str  # lowercase 0x-hex
    gas_used: int
    effective_gas_price: int  # wei per gas actually paid (0 when the node does not report it)
    sender: str | None  # checksummed ``from``, when the node reports it
    logs: tuple[dict[str, Any], ...]

    @property
    def succeeded(self) -> bool:
        return self.status == 1

    @property
    def fee(self) -> int:
        """The network fee the sender paid, in wei."""
        return self.gas_used * self.effective_gas_price


def decode_receipt(raw: Any) -> Receipt | None:
    """The receipt a JSON-RPC node returned, typed; None when the transaction is not mined (or unknown).

    Raises RpcUnavailable for a receipt that lacks a field every node reports, rather than guessing.
    """
    if not isinstance(raw, dict) or raw.get("blockNumber") is None:
        return None
    try:
        sender = raw.get("from")
        return Receipt(
            tx_hash=str(raw["transactionHash"]).lower(),
            status=quantity(raw.get("status", "0x0")),
            tx_type=quantity(raw.get("type", "0x0")),
            block_number=quantity(raw["blockNumber"]),
            block_hash=str(raw["blockHash"]).lower(),
            gas_used=quantity(raw.get("gasUsed", "0x0")),
            effective_gas_price=quantity(raw.get("effectiveGasPrice", "0x0")),
            sender=to_checksum(str(sender)) if sender else None,
            logs=tuple(log for log in raw.get("logs") or [] if isinstance(log, dict)),
        )
    except (KeyError, TypeError) as error:
        raise RpcUnavailable(f"malformed receipt in an RPC reply: missing or wrong {error}") from None


class ReceiptWatcher:
    def __init__(self, rpc: RpcClient, *, poll_interval: float = 0.05, min_gap: float = 0.005,
                 max_batch: int = 500) -> None:
        self._rpc = rpc
        self._poll_interval = poll_interval
        self._min_gap = min_gap
        self._max_batch = max_batch
        self._pending: dict[str, asyncio.Future[Receipt]] = {}
        self._waiters: dict[str, int] = {}
        self._arrival = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._unreachable = False
        self._refused: set[str] = set()  # hashes whose receipt request the node answered with an error

    async def wait(self, tx_hash: str, *, timeout: float) -> Receipt | None:
        """The receipt of ``tx_hash``, or None when ``timeout`` seconds pass first (the outcome is then
        unknown: the node may be down or the transaction not mined yet). Callers waiting for the same
        hash share one slot in the batch."""
        key = tx_hash.lower()
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            self._arrival.set()
        self._waiters[key] = self._waiters.get(key, 0) + 1
        self._ensure_poller()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None
        finally:
            self._waiters[key] -= 1
            if self._waiters[key] == 0:
                del self._waiters[key]
                if self._pending.get(key) is future:
                    del self._pending[key]
                self._refused.discard(key)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_while_waited_for(), name="receipt-watcher")

    async def _poll_while_waited_for(self) -> None:
        while self._pending:
            self._arrival.clear()
            await self._poll_once()
            await asyncio.sleep(self._min_gap)
            if not self._pending:
                return
            with contextlib.suppress(TimeoutError):  # a new hash, or the interval: poll either way
                await asyncio.wait_for(self._arrival.wait(), self._poll_interval)

    async def _poll_once(self) -> None:
        """Ask for every pending receipt, ``max_batch`` hashes per request, so none waits behind others."""
        waiting = [key for key, future in self._pending.items() if not future.done()]
        for start in range(0, len(waiting), self._max_batch):
            if not await self._poll_batch(waiting[start:start + self._max_batch]):
                return  # the node is unreachable: the next poll tries again

    async def _poll_batch(self, hashes: list[str]) -> bool:
        """One batched request; False when the node could not be reached."""
        try:
            results = await self._rpc.batch([("eth_getTransactionReceipt", [tx_hash]) for tx_hash in hashes])
        except RpcUnavailable as error:
            if not self._unreachable:  # once per outage, not once per poll
                log.warning("receipt polls failing (%d transactions waiting): %s", len(hashes), error)
            self._unreachable = True
            return False
        if self._unreachable:
            log.warning("receipt polls answered again")
            self._unreachable = False
        for tx_hash, result in zip(hashes, results, strict=True):
            future = self._pending.get(tx_hash)
            if future is None or future.done():
                continue
            if isinstance(result, RpcError):
                if tx_hash not in self._refused:  # once per transaction, not once per poll
                    self._refused.add(tx_hash)
                    log.warning("receipt of %s: %s", tx_hash, result)
            elif isinstance(result, dict):
                try:
                    receipt = decode_receipt(result)
                except RpcUnavailable as error:
                    log.warning("receipt of %s: %s", tx_hash, error)
                    continue
                if receipt is not None:
                    future.set_result(receipt)
        return True
