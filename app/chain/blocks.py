"""Block references and receipts read in bulk: what finality and reconciliation need from the chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.chain.rpc import RpcClient, RpcError


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str


async def finalized_head(rpc: RpcClient) -> BlockRef | None:
    """The chain's ``finalized`` block (JSON-RPC block tag, EIP-1898 era nodes); None when the node has
    no such block yet or does not know the tag, in which case nothing can be called final."""
    try:
        block = await rpc.call("eth_getBlockByNumber", ["finalized", False])
    except RpcError:
        return None
    if not isinstance(block, dict) or block.get("number") is None:
        return None
    return BlockRef(number=int(block["number"], 16), hash=str(block["hash"]))


async def receipts(rpc: RpcClient, tx_hashes: Sequence[str]) -> list[dict[str, Any] | None]:
    """The receipts of ``tx_hashes`` in one batch, in order; None for a transaction the chain does not
    (or no longer) include. A JSON-RPC error in any slot is raised."""
    if not tx_hashes:
        return []
    results = await rpc.batch([("eth_getTransactionReceipt", [tx_hash]) for tx_hash in tx_hashes])
    found: list[dict[str, Any] | None] = []
    for result in results:
        if isinstance(result, RpcError):
            raise result
        found.append(dict(result) if isinstance(result, dict) else None)
    return found
