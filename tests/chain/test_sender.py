"""The transaction sender on anvil: EIP-1559 fees, local signing, broadcast errors, receipt polling."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from eth_account import Account
from web3 import Web3
from web3.contract import Contract

from app.chain.eip3009 import find_transfer, transfer_with_authorization_calldata
from app.chain.keys import HotWallet
from app.chain.receipts import ReceiptWatcher
from app.chain.rpc import RpcClient
from app.chain.sender import (
    BroadcastError,
    FeeCapExceeded,
    FeeOracle,
    FeePolicy,
    SignedTx,
    broadcast,
    classify_broadcast_error,
    pending_nonce,
    sign_transaction,
    suggest_fees,
)
from app.dev.devchain import DevChain
from tests.support.eip3009 import sign_transfer_authorization

pytestmark = [pytest.mark.chain]

CHAIN_ID = 84532
AMOUNT = 3_000_000
GWEI = 10**9
POLICY = FeePolicy(max_fee_per_gas_cap=100 * GWEI, priority_fee=GWEI)


async def base_fee(rpc: RpcClient) -> int:
    return int((await rpc.call("eth_getBlockByNumber", ["latest", False]))["baseFeePerGas"], 16)


def transfer_calldata(w3: Web3, token: Contract, anvil: DevChain) -> bytes:
    payer, payee = anvil.wallets.agents[0], anvil.wallets.providers[0]
    auth = sign_transfer_authorization(
        payer,
        token_address=token.address,
        chain_id=CHAIN_ID,
        to=payee.address,
        value=AMOUNT,
        valid_after=0,
        valid_before=int(w3.eth.get_block("latest")["timestamp"]) + 3600,
        nonce=secrets.token_bytes(32),
    )
    return transfer_with_authorization_calldata(*auth.message_args(), auth.signature)


async def signed_transfer(rpc: RpcClient, w3: Web3, token: Contract, anvil: DevChain, *, nonce: int) -> SignedTx:
    max_fee, tip = await suggest_fees(rpc, POLICY)
    return sign_transaction(
        HotWallet.from_key(anvil.wallets.facilitator.key),
        chain_id=CHAIN_ID,
        nonce=nonce,
        to=token.address,
        data=transfer_calldata(w3, token, anvil),
        gas=POLICY.gas_limit,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
    )


# ------------------------------------------------------------------------------------------ pure


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("nonce too low", "nonce_too_low"),
        ("Nonce too low. Expected nonce to be 5 but got 4.", "nonce_too_low"),
        ("already known", "already_known"),
        ("transaction already imported", "already_known"),
        ("replacement transaction underpriced", "replacement_underpriced"),
        ("Insufficient funds for gas * price + value", "insufficient_funds"),
        ("max fee per gas less than block base fee", "fee_too_low"),
        ("transaction underpriced", "fee_too_low"),
        ("something else", "rejected"),
    ],
)
def test_broadcast_errors_are_classified(message: str, kind: str) -> None:
    assert classify_broadcast_error(message) == kind


# ------------------------------------------------------------------------------------------ anvil


@pytest.mark.anyio
async def test_fees_follow_the_base_fee_within_the_cap(rpc: RpcClient) -> None:
    base = await base_fee(rpc)
    assert await suggest_fees(rpc, POLICY) == (2 * base + GWEI, GWEI)
    capped = FeePolicy(max_fee_per_gas_cap=base + 1, priority_fee=GWEI)
    assert await suggest_fees(rpc, capped) == (base + 1, min(GWEI, base + 1))
    tiny_cap = FeePolicy(max_fee_per_gas_cap=base, priority_fee=10 * base)
    assert await suggest_fees(rpc, tiny_cap) == (base, base)  # the tip never exceeds the max fee


@pytest.mark.anyio
async def test_a_cap_below_the_base_fee_raises(rpc: RpcClient) -> None:
    base = await base_fee(rpc)
    assert base > 0
    with pytest.raises(FeeCapExceeded) as raised:
        await suggest_fees(rpc, FeePolicy(max_fee_per_gas_cap=base - 1, priority_fee=1))
    assert (raised.value.base_fee, raised.value.cap) == (base, base - 1)


@pytest.mark.anyio
async def test_a_signed_transfer_is_mined_and_moves_the_tokens(
    rpc: RpcClient, w3: Web3, token: Contract, anvil: DevChain, chain_snapshot: str
) -> None:
    payer, payee = anvil.wallets.agents[0], anvil.wallets.providers[0]
    before = [token.functions.balanceOf(a).call() for a in (payer.address, payee.address)]
    nonce = await pending_nonce(rpc, anvil.wallets.facilitator.address)
    assert nonce == w3.eth.get_transaction_count(anvil.wallets.facilitator.address, "pending")

    signed = await signed_transfer(rpc, w3, token, anvil, nonce=nonce)
    tx_hash = await broadcast(rpc, signed.raw)
    assert tx_hash == signed.hash

    receipt = await ReceiptWatcher(rpc).wait(tx_hash, timeout=10)
    assert receipt is not None
    assert receipt.status == 1 and receipt.tx_type == 2
    assert receipt.sender.lower() == anvil.wallets.facilitator.address.lower()
    assert find_transfer(list(receipt.logs), token.address, payer.address, payee.address, AMOUNT)
    after = [token.functions.balanceOf(a).call() for a in (payer.address, payee.address)]
    assert after == [before[0] - AMOUNT, before[1] + AMOUNT]
    assert await pending_nonce(rpc, anvil.wallets.facilitator.address) == nonce + 1


@pytest.mark.anyio
async def test_the_fee_oracle_reads_the_chain_once_per_interval_for_any_number_of_callers(rpc: RpcClient) -> None:
    counting = CountingRpc(rpc.url)
    try:
        oracle = FeeOracle(counting, POLICY, max_age=60)
        fees = await asyncio.gather(*[oracle.fees() for _ in range(20)])
        assert set(fees) == {await suggest_fees(rpc, POLICY)}
        assert counting.calls == 1
        stale = FeeOracle(counting, POLICY, max_age=0)
        await stale.fees()
        await stale.fees()
        assert counting.calls == 3
        too_low = FeeOracle(counting, FeePolicy(max_fee_per_gas_cap=1, priority_fee=1), max_age=60)
        for _ in range(2):  # a refusal is raised each time, never cached
            with pytest.raises(FeeCapExceeded):
                await too_low.fees()
        assert counting.calls == 5
    finally:
        await counting.close()


class CountingRpc(RpcClient):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls = 0

    async def call(self, method, params=()):  # type: ignore[no-untyped-def]
        self.calls += 1
        return await super().call(method, params)


@pytest.mark.anyio
async def test_a_reused_nonce_is_refused_as_nonce_too_low(
    rpc: RpcClient, w3: Web3, token: Contract, anvil: DevChain, chain_snapshot: str
) -> None:
    nonce = await pending_nonce(rpc, anvil.wallets.facilitator.address)
    first = await signed_transfer(rpc, w3, token, anvil, nonce=nonce)
    assert await ReceiptWatcher(rpc).wait(await broadcast(rpc, first.raw), timeout=10) is not None

    second = await signed_transfer(rpc, w3, token, anvil, nonce=nonce)
    with pytest.raises(BroadcastError) as raised:
        await broadcast(rpc, second.raw)
    assert raised.value.kind == "nonce_too_low"
    assert raised.value.method == "eth_sendRawTransaction"


@pytest.mark.anyio
async def test_a_wallet_without_gas_money_is_refused_as_insufficient_funds(
    rpc: RpcClient, token: Contract, chain_snapshot: str
) -> None:
    pauper = HotWallet.from_key(Account.create().key)
    max_fee, tip = await suggest_fees(rpc, POLICY)
    signed = sign_transaction(
        pauper,
        chain_id=CHAIN_ID,
        nonce=0,
        to=token.address,
        data=b"",
        gas=50_000,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
    )
    with pytest.raises(BroadcastError) as raised:
        await broadcast(rpc, signed.raw)
    assert raised.value.kind == "insufficient_funds"
