"""Reading a token's history back from the chain: EIP-3009 events, transactions and receipts.

Used by reconciliation, which compares the ledger with what the chain says happened. Everything
here is read-only JSON-RPC: ``eth_getLogs`` in block chunks (halved when a node refuses a range as
too large), and ``eth_getTransactionByHash`` / ``eth_getTransactionReceipt`` in batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.chain.eip712 import keccak256
from app.chain.eip3009 import TRANSFER_TOPIC
from app.chain.receipts import Receipt, decode_receipt
from app.chain.rpc import RpcClient, RpcError, RpcUnavailable, quantity
from app.chain.signatures import to_checksum

AUTHORIZATION_USED_TOPIC = "0x" + keccak256(b"AuthorizationUsed(address,bytes32)").hex()
DEFAULT_CHUNK = 2000
BATCH_SIZE = 100  # calls per JSON-RPC batch: public endpoints commonly cap batches near this


@dataclass(frozen=True)
class TokenEvent:
    """One log of the token, where it sits on the chain."""

    token: str  # checksummed
    block_number: int
    block_hash: str  # 0x, lowercase
    tx_hash: str  # 0x, lowercase
    log_index: int


@dataclass(frozen=True)
class TransferEvent(TokenEvent):
    """ERC-20 ``Transfer(address indexed from, address indexed to, uint256 value)``."""

    sender: str  # checksummed
    recipient: str  # checksummed
    value: int


@dataclass(frozen=True)
class AuthorizationUsedEvent(TokenEvent):
    """EIP-3009 ``AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)``."""

    authorizer: str  # checksummed
    nonce: str  # 0x + 64 lowercase hex


@dataclass(frozen=True)
class TransactionInfo:
    tx_hash: str
    sender: str  # checksummed ``from``
    to: str | None
    block_number: int | None  # None while pending


def _topic_address(topic: str) -> str:
    return to_checksum("0x" + topic[-40:])


def decode_log(log: dict[str, Any]) -> TokenEvent | None:
    """A Transfer or AuthorizationUsed event from a raw log; None for any other log (or a removed one)."""
    if log.get("removed"):
        return None
    topics = [str(topic).lower() for topic in log.get("topics") or []]
    if not topics:
        return None
    common = {
        "token": to_checksum(str(log["address"])),
        "block_number": quantity(log["blockNumber"]),
        "block_hash": str(log["blockHash"]).lower(),
        "tx_hash": str(log["transactionHash"]).lower(),
        "log_index": quantity(log["logIndex"]),
    }
    if topics[0] == TRANSFER_TOPIC and len(topics) == 3:
        data = str(log.get("data") or "0x")
        raw = bytes.fromhex(data[2:])
        if len(raw) != 32:
            return None  # an ERC-721 style Transfer or garbage: not a token amount
        return TransferEvent(**common, sender=_topic_address(topics[1]), recipient=_topic_address(topics[2]),
                             value=int.from_bytes(raw, "big"))
    if topics[0] == AUTHORIZATION_USED_TOPIC and len(topics) == 3:
        return AuthorizationUsedEvent(**common, authorizer=_topic_address(topics[1]), nonce=topics[2])
    return None


async def latest_block(rpc: RpcClient) -> int:
    return quantity(await rpc.call("eth_blockNumber", []))


async def fetch_token_events(
    rpc: RpcClient, token: str, from_block: int, to_block: int, *, chunk: int = DEFAULT_CHUNK
) -> list[TokenEvent]:
    """Every Transfer and AuthorizationUsed log of ``token`` in ``[from_block, to_block]``, in chain order.

    The range is read ``chunk`` blocks at a time; a chunk the node refuses with a JSON-RPC error
    (typically "too many results" or "range too large") is split in two and retried, down to one block.
    """
    if chunk < 1:
        raise ValueError("chunk must be at least 1 block")
    address = to_checksum(token)
    events: list[TokenEvent] = []
    start = from_block
    while start <= to_block:
        end = min(start + chunk - 1, to_block)
        events.extend(await _logs_in(rpc, address, start, end))
        start = end + 1
    events.sort(key=lambda event: (event.block_number, event.log_index))
    return events


async def _logs_in(rpc: RpcClient, address: str, start: int, end: int) -> list[TokenEvent]:
    query = {"address": address, "fromBlock": hex(start), "toBlock": hex(end),
             "topics": [[TRANSFER_TOPIC, AUTHORIZATION_USED_TOPIC]]}
    try:
        logs = await rpc.call("eth_getLogs", [query])
    except RpcError:
        if start == end:
            raise
        middle = (start + end) // 2
        return [*await _logs_in(rpc, address, start, middle), *await _logs_in(rpc, address, middle + 1, end)]
    if not isinstance(logs, list):
        raise RpcUnavailable(f"eth_getLogs: malformed reply {logs!r:.200}")
    return [event for event in (decode_log(log) for log in logs if isinstance(log, dict)) if event is not None]


async def _batched(rpc: RpcClient, method: str, tx_hashes: Iterable[str]) -> dict[str, Any]:
    """``method(hash)`` for each distinct hash, BATCH_SIZE per round trip; JSON-RPC errors are raised."""
    unique = list(dict.fromkeys(tx_hash.lower() for tx_hash in tx_hashes))
    results: dict[str, Any] = {}
    for offset in range(0, len(unique), BATCH_SIZE):
        group = unique[offset:offset + BATCH_SIZE]
        replies = await rpc.batch([(method, [tx_hash]) for tx_hash in group])
        for tx_hash, reply in zip(group, replies, strict=True):
            if isinstance(reply, RpcError):
                raise reply
            results[tx_hash] = reply
    return results


async def fetch_transactions(rpc: RpcClient, tx_hashes: Iterable[str]) -> dict[str, TransactionInfo | None]:
    """Who sent each transaction (``eth_getTransactionByHash``, batched); None for a hash the node does not know."""
    found: dict[str, TransactionInfo | None] = {}
    for tx_hash, tx in (await _batched(rpc, "eth_getTransactionByHash", tx_hashes)).items():
        if not isinstance(tx, dict):
            found[tx_hash] = None
            continue
        block = tx.get("blockNumber")
        found[tx_hash] = TransactionInfo(
            tx_hash=tx_hash,
            sender=to_checksum(str(tx["from"])),
            to=to_checksum(str(tx["to"])) if tx.get("to") else None,
            block_number=quantity(block) if block is not None else None,
        )
    return found


async def fetch_receipts(rpc: RpcClient, tx_hashes: Iterable[str]) -> dict[str, Receipt | None]:
    """Each transaction's receipt (``eth_getTransactionReceipt``, batched); None when not mined or unknown."""
    return {tx_hash: decode_receipt(receipt)
            for tx_hash, receipt in (await _batched(rpc, "eth_getTransactionReceipt", tx_hashes)).items()}
