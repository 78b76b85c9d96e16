"""Sending the facilitator's own transactions: EIP-1559 fees, local signing, broadcast, receipts.

No database here: the caller allocates the nonce durably (row lock per signer) and passes it in, and
decides from a ``BroadcastError``'s kind whether that nonce was consumed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.chain import rlp
from app.chain.eip712 import address_bytes, keccak256
from app.chain.keys import HotWallet
from app.chain.rpc import RpcClient, RpcError, quantity
from app.chain.signatures import to_checksum


@dataclass(frozen=True)
class FeePolicy:
    max_fee_per_gas_cap: int  # wei: never pay more than this per gas
    priority_fee: int  # wei: tip per gas
    gas_limit: int = 200_000


class FeeCapExceeded(RuntimeError):
    """The base fee alone is above the cap: a transaction within the cap could never be mined."""

    def __init__(self, base_fee: int, cap: int) -> None:
        super().__init__(f"base fee {base_fee} wei exceeds the max fee cap {cap} wei")
        self.base_fee = base_fee
        self.cap = cap


async def suggest_fees(rpc: RpcClient, policy: FeePolicy) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas): min(cap, 2·baseFee + tip), tip clipped to the max fee.

    Twice the base fee keeps the transaction includable through several full blocks of base-fee growth.
    """
    block = await rpc.call("eth_getBlockByNumber", ["latest", False])
    if not isinstance(block, dict) or block.get("baseFeePerGas") is None:
        raise ValueError("the latest block has no baseFeePerGas: the chain does not support EIP-1559")
    base_fee = int(block["baseFeePerGas"], 16)
    if base_fee > policy.max_fee_per_gas_cap:
        raise FeeCapExceeded(base_fee, policy.max_fee_per_gas_cap)
    max_fee = min(policy.max_fee_per_gas_cap, 2 * base_fee + policy.priority_fee)
    return max_fee, min(policy.priority_fee, max_fee)


class FeeOracle:
    """``suggest_fees`` for one network, reused for ``max_age`` seconds.

    Every settlement in a burst would otherwise read the same latest block. A fee up to a second old
    is safe: the max fee is twice the base fee, which covers several full blocks of base-fee growth.
    A failure (unreachable node, base fee above the cap) is raised to every caller and never cached.
    """

    def __init__(self, rpc: RpcClient, policy: FeePolicy, *, max_age: float = 1.0) -> None:
        self._rpc = rpc
        self._policy = policy
        self._max_age = max_age
        self._cached: tuple[float, tuple[int, int]] | None = None
        self._refresh = asyncio.Lock()

    async def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas), as ``suggest_fees`` gives them."""
        loop = asyncio.get_running_loop()
        if self._cached is not None and loop.time() - self._cached[0] < self._max_age:
            return self._cached[1]
        async with self._refresh:  # one read for all the callers that found the cache stale together
            if self._cached is not None and loop.time() - self._cached[0] < self._max_age:
                return self._cached[1]
            fees = await suggest_fees(self._rpc, self._policy)
            self._cached = (loop.time(), fees)
            return fees


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    hash: str  # 0x-hex; known before broadcast, so it can be stored first


def sign_transaction(
    wallet: HotWallet,
    *,
    chain_id: int,
    nonce: int,
    to: str,
    data: bytes,
    gas: int,
    max_fee_per_gas: int,
    max_priority_fee_per_gas: int,
) -> SignedTx:
    """A type-2 (EIP-1559) transaction with zero value and no access list, signed locally.

    Per EIP-1559 the signature covers ``keccak(0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas,
    maxFeePerGas, gas, to, value, data, accessList]))`` and the envelope appends ``yParity, r, s`` to
    that list; the hash is the keccak of the whole envelope.
    """
    fields = [chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas, gas, address_bytes(to), 0, bytes(data), []]
    y_parity, r, s = wallet.sign_digest(keccak256(_TYPE_EIP1559 + rlp.encode(fields)))
    raw = _TYPE_EIP1559 + rlp.encode([*fields, y_parity, r, s])
    return SignedTx(raw=raw, hash="0x" + keccak256(raw).hex())


_TYPE_EIP1559 = b"\x02"


class BroadcastError(RpcError):
    """The node refused ``eth_sendRawTransaction``. ``kind`` tells the caller what happened to the nonce:

    - ``nonce_too_low``: the nonce is already mined (by us, elsewhere): allocate past it;
    - ``already_known``: this very transaction is in the pool: treat as broadcast;
    - ``replacement_underpriced``: another transaction holds this nonce in the pool;
    - ``insufficient_funds``: the hot wallet lacks gas money: the nonce was not consumed;
    - ``fee_too_low``: max fee below the base fee / pool minimum: the nonce was not consumed;
    - ``rejected``: anything else.
    """

    def __init__(self, kind: str, error: RpcError) -> None:
        super().__init__(error.method, error.code, error.message, error.data)
        self.kind = kind


_BROADCAST_KINDS = (
    ("nonce too low", "nonce_too_low"),
    ("already known", "already_known"),
    ("already imported", "already_known"),
    ("replacement transaction underpriced", "replacement_underpriced"),
    ("insufficient funds", "insufficient_funds"),
    ("max fee per gas less than block base fee", "fee_too_low"),
    ("fee cap less than block base fee", "fee_too_low"),
    ("transaction underpriced", "fee_too_low"),
)


def classify_broadcast_error(message: str) -> str:
    lowered = message.lower()
    for fragment, kind in _BROADCAST_KINDS:
        if fragment in lowered:
            return kind
    return "rejected"


async def broadcast(rpc: RpcClient, raw: bytes) -> str:
    """``eth_sendRawTransaction``; returns the transaction hash. Refusals raise ``BroadcastError``;
    an unreachable node raises ``RpcUnavailable`` (outcome unknown: the transaction may have gone out)."""
    try:
        return str(await rpc.call("eth_sendRawTransaction", ["0x" + bytes(raw).hex()]))
    except RpcError as error:
        raise BroadcastError(classify_broadcast_error(error.message), error) from error


async def pending_nonce(rpc: RpcClient, address: str) -> int:
    """The next nonce per the node's pending pool (a starting point; the database owns allocation)."""
    return int(await rpc.call("eth_getTransactionCount", [to_checksum(address), "pending"]), 16)


async def nonce_counts(rpc: RpcClient, address: str) -> tuple[int, int]:
    """(mined, pending): the wallet's transaction count in the latest block and in the node's pending pool
    (mined plus the unbroken run of pending transactions after them: a gap stops the count)."""
    latest, pending = await rpc.batch([("eth_getTransactionCount", [to_checksum(address), "latest"]),
                                       ("eth_getTransactionCount", [to_checksum(address), "pending"])])
    for result in (latest, pending):
        if isinstance(result, Exception):
            raise result
    return quantity(latest), quantity(pending)
