"""Receipts of many transactions are awaited with one batched poll per network, not one request each."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.chain.keys import HotWallet
from app.chain.receipts import ReceiptWatcher
from app.chain.rpc import RpcClient
from app.chain.sender import FeePolicy, broadcast, pending_nonce, sign_transaction, suggest_fees
from app.dev.devchain import DevChain

pytestmark = [pytest.mark.chain]

CHAIN_ID = 84532
POLICY = FeePolicy(max_fee_per_gas_cap=100 * 10**9, priority_fee=10**9)


class CountingRpc(RpcClient):
    """The real client, recording the size of every batch it sends."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[list[str]] = []

    async def batch(self, calls):  # type: ignore[no-untyped-def]
        self.batches.append([params[0] for _, params in calls])
        return await super().batch(calls)


@pytest.fixture
async def counting(rpc: RpcClient) -> Any:
    client = CountingRpc(rpc.url)
    yield client
    await client.close()


async def send_transfers(rpc: RpcClient, anvil: DevChain, count: int) -> list[str]:
    """``count`` zero-value self-transfers from the facilitator, broadcast (mined only if automine is on)."""
    wallet = HotWallet.from_key(anvil.wallets.facilitator.key)
    first = await pending_nonce(rpc, wallet.address)
    max_fee, tip = await suggest_fees(rpc, POLICY)
    hashes = []
    for nonce in range(first, first + count):
        signed = sign_transaction(wallet, chain_id=CHAIN_ID, nonce=nonce, to=wallet.address, data=b"", gas=21_000,
                                  max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
        hashes.append(await broadcast(rpc, signed.raw))
    return hashes


@pytest.mark.anyio
async def test_many_waiters_are_answered_from_shared_batches(rpc, counting, anvil, chain_snapshot):
    anvil.rpc("evm_setAutomine", [False])
    try:
        hashes = await send_transfers(rpc, anvil, 12)
        watcher = ReceiptWatcher(counting, poll_interval=0.05)
        waits = [asyncio.create_task(watcher.wait(tx_hash, timeout=10)) for tx_hash in hashes]
        waits.append(asyncio.create_task(watcher.wait(hashes[0].upper().replace("0X", "0x"), timeout=10)))
        await asyncio.sleep(0.3)  # several polls find nothing: one request each, every hash in it
        anvil.rpc("evm_mine")
        receipts = await asyncio.gather(*waits)
    finally:
        anvil.rpc("evm_setAutomine", [True])
    assert [receipt.tx_hash for receipt in receipts] == [*hashes, hashes[0]]
    assert all(receipt.status == 1 for receipt in receipts)
    assert 2 <= len(counting.batches) <= 12  # one request per poll, not one per transaction per poll
    assert max(len(batch) for batch in counting.batches) == 12  # the duplicate waiter shares its slot
    assert not watcher._pending and not watcher._waiters  # nothing kept once everyone is answered


@pytest.mark.anyio
async def test_a_new_hash_is_polled_at_once_not_at_the_next_interval(rpc, anvil, chain_snapshot):
    watcher = ReceiptWatcher(rpc, poll_interval=5)
    never = asyncio.create_task(watcher.wait("0x" + "ef" * 32, timeout=8))  # the poller now sleeps 5 s
    await asyncio.sleep(0.1)
    (tx_hash,) = await send_transfers(rpc, anvil, 1)
    deadline = time.monotonic() + 5
    while await rpc.call("eth_getTransactionReceipt", [tx_hash]) is None:  # mined, asked for directly
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    started = time.monotonic()
    receipt = await watcher.wait(tx_hash, timeout=8)
    assert receipt is not None and receipt.tx_hash == tx_hash
    assert time.monotonic() - started < 1
    never.cancel()


@pytest.mark.anyio
async def test_more_pending_hashes_than_one_batch_holds_are_all_polled(rpc, counting, anvil, chain_snapshot):
    hashes = await send_transfers(rpc, anvil, 5)
    watcher = ReceiptWatcher(counting, max_batch=2)
    # Four hashes that are never mined come first; the mined ones behind them must not wait for them.
    waits = [watcher.wait("0x" + f"{index:064x}", timeout=2) for index in range(1, 5)]
    receipts = await asyncio.gather(*waits, *(watcher.wait(tx_hash, timeout=1) for tx_hash in hashes))
    assert receipts[:4] == [None] * 4
    assert [receipt.tx_hash for receipt in receipts[4:]] == hashes
    assert max(len(batch) for batch in counting.batches) == 2


@pytest.mark.anyio
async def test_an_unknown_transaction_times_out_as_none_and_is_forgotten(rpc):
    watcher = ReceiptWatcher(rpc, poll_interval=0.05)
    started = time.monotonic()
    assert await watcher.wait("0x" + "ab" * 32, timeout=0.3) is None
    assert 0.25 <= time.monotonic() - started < 2
    assert not watcher._pending and not watcher._waiters


@pytest.mark.anyio
async def test_an_unreachable_node_means_no_receipt_yet_not_an_error(anyio_backend):
    down = RpcClient("http://127.0.0.1:9", timeout=0.5)
    try:
        assert await ReceiptWatcher(down, poll_interval=0.05).wait("0x" + "cd" * 32, timeout=0.5) is None
    finally:
        await down.close()


@pytest.mark.anyio
async def test_a_cancelled_waiter_does_not_take_the_answer_from_another(rpc, anvil, chain_snapshot):
    anvil.rpc("evm_setAutomine", [False])
    try:
        (tx_hash,) = await send_transfers(rpc, anvil, 1)
        watcher = ReceiptWatcher(rpc, poll_interval=0.05)
        impatient = asyncio.create_task(watcher.wait(tx_hash, timeout=10))
        patient = asyncio.create_task(watcher.wait(tx_hash, timeout=10))
        await asyncio.sleep(0.1)
        impatient.cancel()
        anvil.rpc("evm_mine")
        receipt = await patient
    finally:
        anvil.rpc("evm_setAutomine", [True])
    assert receipt is not None and receipt.tx_hash == tx_hash
    assert impatient.cancelled()
