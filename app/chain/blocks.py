"""Block references, the chain's head and receipts read in bulk: what health, finality, reconciliation and
crash recovery need from the chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.chain.receipts import Receipt, decode_receipt
from app.chain.rpc import RpcClient, RpcError, quantity


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


@dataclass(frozen=True)
class ChainHead:
    """Where a node's chain is: its id, its latest block and its finalized block (None: no finality tag)."""

    chain_id: int
    latest_block: int
    finalized_block: int | None


async def chain_head(rpc: RpcClient) -> ChainHead:
    """One batch: chain id, latest block, finalized block. Raises RpcError/RpcUnavailable when the node
    cannot say its chain id or latest block; a missing finalized block is not an error."""
    chain_id, latest, finalized = await rpc.batch(
        [("eth_chainId", []), ("eth_blockNumber", []), ("eth_getBlockByNumber", ["finalized", False])]
    )
    for result in (chain_id, latest):
        if isinstance(result, Exception):
            raise result
    finalized_number = finalized.get("number") if isinstance(finalized, dict) else None
    return ChainHead(chain_id=quantity(chain_id), latest_block=quantity(latest),
                     finalized_block=quantity(finalized_number) if isinstance(finalized_number, str) else None)


async def receipt(rpc: RpcClient, tx_hash: str) -> Receipt | None:
    """The receipt of one transaction; None while it is not mined (or unknown to the node)."""
    return decode_receipt(await rpc.call("eth_getTransactionReceipt", [tx_hash]))


async def is_known(rpc: RpcClient, tx_hash: str) -> bool:
    """Whether the node knows the transaction at all (pending or mined)."""
    return await rpc.call("eth_getTransactionByHash", [tx_hash]) is not None


async def receipts(rpc: RpcClient, tx_hashes: Sequence[str]) -> list[Receipt | None]:
    """The receipts of ``tx_hashes`` in one batch, in order; None for a transaction the chain does not
    (or no longer) include. A JSON-RPC error in any slot is raised."""
    if not tx_hashes:
        return []
    results = await rpc.batch([("eth_getTransactionReceipt", [tx_hash]) for tx_hash in tx_hashes])
    found: list[Receipt | None] = []
    for result in results:
        if isinstance(result, RpcError):
            raise result
        found.append(decode_receipt(result))
    return found
