"""The settlement engine: carries each recorded authorization to its outcome on chain, exactly once.

The facilitator records an authorization (a ``verified`` row, leased to this process) and hands it here.
From then on every step is durable before the next one starts, so a crash anywhere leaves a row the
next pass can finish:

1. a nonce is allocated *onto the row* (``NonceManager.allocate_to``): every transaction ever signed for
   this authorization uses it, so at most one of them is mined;
2. the transaction is signed and its hash and raw bytes are stored (verified -> submitted) *before* it is
   broadcast: no hash is ever lost, and a transaction the node does not hold can be resent as it is;
3. it is broadcast, and its receipt is awaited for the network's receipt wait; then the outcome is
   recorded (confirmed with its journal lines, or failed) in one transaction.

A process works on a row under a lease it renews; another process takes a ``verified`` row over only
when the lease has run out (its owner died). :meth:`SettlementEngine.maintain` runs at start-up and
periodically: it repairs each hot wallet's nonces against the chain, records receipts that arrived after
their callers stopped waiting, resends what the node lost, and takes over abandoned rows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from starlette.concurrency import run_in_threadpool

from app.chain import blocks, eip3009, sender
from app.chain.keys import HotWallet
from app.chain.receipts import Receipt, ReceiptWatcher
from app.chain.rpc import RpcClient, RpcError, RpcUnavailable
from app.config import NetworkConfig, Settings
from app.faults import crash_point
from app.protocol import Reason
from app.settlement.gas import GasBudget, GasBudgetExhausted
from app.settlement.models import SUCCESS_STATES, Settlement, SettlementState
from app.settlement.nonces import NonceManager, SignerStatus
from app.settlement.repository import GasSpendRepository, SettlementRepository, SignerNonceRepository

log = logging.getLogger(__name__)

# The authorization must stay valid this long after it is sent, for the transaction to be mined in time.
VALID_BEFORE_MARGIN_SECONDS = 6
MAINTENANCE_CONCURRENCY = 64  # rows a maintenance pass carries on at once
STUCK_AFTER_BLOCKS = 5  # a transaction unmined for this many blocks (and 10 s at least) means a stuck wallet


@dataclass(frozen=True)
class EnginePolicy:
    fees: sender.FeePolicy
    lease_seconds: float
    gas_budgets: dict[str, int | None]  # wei per hour per network; None: no cap

    @classmethod
    def from_settings(cls, settings: Settings, networks: dict[str, NetworkConfig]) -> EnginePolicy:
        return cls(
            fees=sender.FeePolicy(max_fee_per_gas_cap=settings.max_fee_per_gas_wei,
                                  priority_fee=settings.priority_fee_wei, gas_limit=settings.settle_gas_limit),
            lease_seconds=settings.settlement_lease_seconds,
            gas_budgets={network: settings.gas_budget(network) for network in networks},
        )


@dataclass(frozen=True)
class Outcome:
    """Where a settlement stands after the engine acted: ``state`` confirmed or finalized (success),
    submitted (pending: the receipt is not in yet), failed or expired."""

    state: SettlementState
    tx_hash: str = ""
    reason: str | None = None
    message: str | None = None

    @classmethod
    def of(cls, row: Settlement) -> Outcome:
        return cls(SettlementState(row.state), row.tx_hash or "", row.error_reason, row.error_message)

    @property
    def succeeded(self) -> bool:
        return self.state in SUCCESS_STATES


class NotSent(Exception):
    """The engine would not send the transaction now (the row stays verified, to be sent later)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SettlementEngine:
    def __init__(
        self,
        *,
        networks: dict[str, NetworkConfig],
        rpc: dict[str, RpcClient],
        settlements: SettlementRepository,
        nonces: SignerNonceRepository,
        gas: GasSpendRepository,
        signer: HotWallet | None,
        policy: EnginePolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._networks = networks
        self._rpc = rpc
        self._settlements = settlements
        self.signer = signer
        self._policy = policy
        self._clock = clock
        self.owner = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # leases name it
        self._fees = {name: sender.FeeOracle(rpc[name], policy.fees) for name in networks if name in rpc}
        self._receipts = {name: ReceiptWatcher(rpc[name]) for name in networks if name in rpc}
        self._nonces = NonceManager(nonces, settlements, rpc=rpc, fees=self._fees)
        self._gas = GasBudget(gas, policy.gas_budgets, clock=clock)
        self.signer_status: dict[str, SignerStatus] = {}  # per network, as the last maintenance pass saw it

    async def close(self) -> None:
        """Stop the receipt pollers (the RPC clients belong to the caller)."""
        for watcher in self._receipts.values():
            await watcher.close()

    def lease(self) -> dict[str, object]:
        """The lease a row is recorded under by this process."""
        return {"lease_owner": self.owner, "lease_until": self._lease_until()}

    # ------------------------------------------------------------------------------------ settle

    async def submit(self, row: Settlement, *, wait: bool = True) -> Outcome:
        """Sign the row's transaction under its nonce, store it, broadcast it, and (``wait``) await its
        receipt. Raises NotSent when the gas budget has no room (nothing is allocated then)."""
        assert self.signer is not None and row.id is not None
        network = self._networks[row.network]
        if not await self._keep_lease(row):
            return await self.follow(await self._get(row.id), wait=wait)
        if row.tx_nonce is None:
            max_fee, tip = await self._fees[network.network].fees()
            await self._reserve_gas(network, max_fee)
            nonce = await self._nonces.allocate_to(network, self.signer, row.id)
            if nonce is None:  # someone else moved the row meanwhile
                return await self.follow(await self._get(row.id), wait=wait)
            crash_point("nonce_allocated")
        elif row.signer != self.signer.address:
            return await self._fail(row, Reason.unexpected_settle_error,
                                    f"the row's nonce belongs to signer {row.signer}, not the configured one")
        else:
            nonce = row.tx_nonce  # ours already: whatever happened before, this is the only nonce it may use
            max_fee, tip = await self._fees[network.network].fees()
        signed = sender.sign_transaction(
            self.signer, chain_id=network.chain_id, nonce=nonce, to=row.asset, data=_calldata_of(row),
            gas=self._policy.fees.gas_limit, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip,
        )
        crash_point("signed")
        stored = await run_in_threadpool(
            partial(self._settlements.mark_submitted, row.id, signer=self.signer.address, tx_nonce=nonce,
                    tx_hash=signed.hash, raw_transaction="0x" + signed.raw.hex())
        )
        if not stored:  # someone else stored a transaction (under this same nonce) or closed the row
            return await self.follow(await self._get(row.id), wait=wait)
        crash_point("hash_stored")
        rpc = self._rpc[network.network]
        try:
            await sender.broadcast(rpc, signed.raw)
        except sender.BroadcastError as refused:
            if not await self._went_out_anyway(rpc, signed.hash, refused):
                return await self._refused(row, nonce, refused)
        except RpcUnavailable:
            # Unknown whether it went out: it is stored, and maintenance resends it if the node lacks it.
            return Outcome(SettlementState.SUBMITTED, signed.hash)
        crash_point("broadcast")
        if not wait:
            return Outcome(SettlementState.SUBMITTED, signed.hash)
        return await self._await_outcome(row, signed.hash)

    async def follow(self, row: Settlement, *, wait: bool = True) -> Outcome:
        """Carry on with a row someone recorded, sending nothing new unless its owner is gone: wait for a
        live lease, take over an expired one, await a stored transaction's receipt, or report the end."""
        assert row.id is not None
        while row.state == SettlementState.VERIFIED and self._lease_live(row):
            await asyncio.sleep(0.05)  # its owner is signing: wait for the stored transaction
            row = await self._get(row.id)
        if row.state == SettlementState.VERIFIED:
            return await self._take_over(row, wait=wait)
        if row.state == SettlementState.SUBMITTED and row.tx_hash and wait:
            return await self._await_outcome(row, row.tx_hash)
        return Outcome.of(row)

    async def _take_over(self, row: Settlement, *, wait: bool) -> Outcome:
        assert row.id is not None
        now = datetime.fromtimestamp(self._clock(), UTC)
        if not await run_in_threadpool(partial(self._settlements.take_over, row.id, owner=self.owner, now=now,
                                               until=self._lease_until())):
            return await self.follow(await self._get(row.id), wait=wait)
        row = await self._get(row.id)
        if row.valid_before < int(self._clock()) + VALID_BEFORE_MARGIN_SECONDS:
            return await self._expire(row)
        return await self.submit(row, wait=wait)

    async def _expire(self, row: Settlement) -> Outcome:
        """Close an authorization whose window passed unsent, and fill its nonce if it had one (else
        every later transaction of the wallet would wait behind it)."""
        assert row.id is not None
        await run_in_threadpool(partial(
            self._settlements.mark_expired, row.id,
            reason=Reason.invalid_exact_evm_payload_authorization_valid_before.value,
            message="the authorization expired before it could be submitted"))
        if row.tx_nonce is not None and self.signer is not None and row.signer == self.signer.address:
            await self._nonces.fill(self._networks[row.network], self.signer, row.tx_nonce)
        return Outcome.of(await self._get(row.id))

    async def _reserve_gas(self, network: NetworkConfig, max_fee: int) -> None:
        try:
            await self._gas.reserve(network.network, max_fee * self._policy.fees.gas_limit)
        except GasBudgetExhausted as exhausted:
            raise NotSent(Reason.gas_budget_exhausted, str(exhausted)) from None

    async def _went_out_anyway(self, rpc: RpcClient, tx_hash: str, refused: sender.BroadcastError) -> bool:
        """A refusal that still means our transaction is on its way: the node already holds it, or the nonce
        is used because this very transaction (resent by maintenance) was mined."""
        if refused.kind == "already_known":
            return True
        return refused.kind == "nonce_too_low" and await blocks.is_known(rpc, tx_hash)

    async def _refused(self, row: Settlement, nonce: int, refused: sender.BroadcastError) -> Outcome:
        assert self.signer is not None
        network = self._networks[row.network]
        log.warning("broadcast of settlement %s refused (%s): %s", row.id, refused.kind, refused.message)
        outcome = await self._fail(row, Reason.unexpected_settle_error, f"broadcast refused: {refused.kind}")
        if refused.kind == "nonce_too_low":
            self._nonces.chain_moved_ahead(network, self.signer)  # another transaction took the nonce
        else:
            await self._nonces.fill(network, self.signer, nonce)  # nothing else will ever use it
        return outcome

    async def _fail(self, row: Settlement, reason: Reason, message: str) -> Outcome:
        assert row.id is not None
        await run_in_threadpool(partial(self._settlements.mark_failed, row.id, reason=reason.value, message=message))
        return Outcome.of(await self._get(row.id))  # ours, or whatever moved it first

    async def _await_outcome(self, row: Settlement, tx_hash: str) -> Outcome:
        timeout = self._networks[row.network].receipt_timeout_seconds
        receipt = await self._receipts[row.network].wait(tx_hash, timeout=timeout)
        if receipt is None:
            return Outcome(SettlementState.SUBMITTED, tx_hash)
        return await self._record_receipt(row, tx_hash, receipt)

    async def _record_receipt(self, row: Settlement, tx_hash: str, receipt: Receipt) -> Outcome:
        assert row.id is not None
        block = {"block_number": receipt.block_number, "block_hash": receipt.block_hash,
                 "gas_used": receipt.gas_used, "effective_gas_price": receipt.effective_gas_price}
        transferred = receipt.succeeded and eip3009.find_transfer(
            list(receipt.logs), row.asset, row.payer, row.payee, row.value
        )
        if transferred:
            moved = await run_in_threadpool(partial(self._settlements.mark_confirmed, row.id, **block))
            outcome = Outcome(SettlementState.CONFIRMED, tx_hash)
        else:
            if receipt.succeeded:
                reason, message = Reason.invalid_exact_evm_transfer_event_mismatch, "no matching Transfer event"
            else:
                reason, message = Reason.transaction_failed, "the settlement transaction reverted"
            moved = await run_in_threadpool(partial(self._settlements.mark_failed, row.id, reason=reason.value,
                                                    message=message, **block))
            outcome = Outcome(SettlementState.FAILED, tx_hash, reason.value, message)
        if moved:  # the process that recorded the receipt books its gas, once
            crash_point("receipt_recorded")
            await self._gas.book(row.network, receipt.fee)
            return outcome
        return Outcome.of(await self._get(row.id))  # someone else recorded it first: theirs is the answer

    # ------------------------------------------------------------------------------- maintenance

    async def maintain(self) -> int:
        """One pass: repair each wallet's nonces against the chain, then finish every row left open by a
        caller that stopped waiting, a broadcast that failed, or a process that died. Returns how many
        rows it looked at."""
        if self.signer is None:
            return 0
        for network in self._networks.values():
            try:
                status = await self._nonces.repair(network, self.signer, resend=self._resend_allocated)
            except (RpcUnavailable, RpcError) as error:
                log.warning("nonce repair of %s skipped: %s", network.network, error)
                continue
            self.signer_status[network.network] = status
        rows = await run_in_threadpool(self._settlements.in_states,
                                       [SettlementState.SUBMITTED, SettlementState.VERIFIED])
        turns = asyncio.Semaphore(MAINTENANCE_CONCURRENCY)
        await asyncio.gather(*(self._finish_in_turn(row, turns) for row in rows if row.network in self._networks))
        return len(rows)

    async def _finish_in_turn(self, row: Settlement, turns: asyncio.Semaphore) -> None:
        async with turns:  # receipts are awaited together (one batched poll), the rest takes turns
            try:
                await self._finish(row)
            except (RpcUnavailable, RpcError, NotSent) as error:
                log.warning("could not finish settlement %s: %s", row.id, error)

    def stuck(self, network: str) -> str | None:
        """Why the hot wallet on ``network`` cannot settle now, per the last maintenance pass; None if it can."""
        status = self.signer_status.get(network)
        if status is None:
            return None
        if status.gaps:
            return f"{status.gaps} nonce(s) of {status.address} missing from the node (being made good)"
        limit = max(10.0, STUCK_AFTER_BLOCKS * self._networks[network].block_time_seconds)
        if status.oldest_pending_seconds is not None and status.oldest_pending_seconds > limit:
            return f"the oldest transaction of {status.address} has waited {status.oldest_pending_seconds:.0f} s"
        return None

    async def _finish(self, row: Settlement) -> None:
        if row.state == SettlementState.SUBMITTED:
            timeout = self._networks[row.network].receipt_timeout_seconds
            if _seconds_since(row.submitted_at, self._clock) >= timeout:  # its caller stopped waiting
                await self._resume_submitted(row)
        elif not self._lease_live(row):
            await self._take_over(row, wait=True)

    async def _resend_allocated(self, row: Settlement) -> bool:
        """For the nonce repair: a verified row holding a nonce the node lacks is sent again under that
        nonce, once its owner's lease is gone."""
        if self._lease_live(row):
            return False
        await self._take_over(row, wait=False)
        return True

    async def _resume_submitted(self, row: Settlement) -> None:
        assert row.tx_hash is not None
        rpc = self._rpc[row.network]
        receipt = await blocks.receipt(rpc, row.tx_hash)
        if receipt is not None:
            await self._record_receipt(row, row.tx_hash, receipt)
            return
        if row.raw_transaction and not await blocks.is_known(rpc, row.tx_hash):
            try:
                await sender.broadcast(rpc, bytes.fromhex(row.raw_transaction[2:]))
            except sender.BroadcastError as refused:
                log.warning("resending %s refused (%s)", row.tx_hash, refused.kind)
                return
        await self._await_outcome(row, row.tx_hash)

    # ------------------------------------------------------------------------------------ helpers

    async def _get(self, settlement_id: int) -> Settlement:
        row = await run_in_threadpool(self._settlements.get, settlement_id)
        assert row is not None, f"settlement {settlement_id} vanished"
        return row

    async def _keep_lease(self, row: Settlement) -> bool:
        """Renew this process's lease on the row when less than half of it is left; False when the lease
        is gone (another process took the row over: follow it instead of racing it)."""
        assert row.id is not None
        if row.lease_owner != self.owner or row.lease_until is None:
            return True  # a row recorded without a lease, or taken over: the conditional updates decide
        if row.lease_until.timestamp() - self._clock() > self._policy.lease_seconds / 2:
            return True
        return await run_in_threadpool(partial(self._settlements.renew_lease, row.id, owner=self.owner,
                                               until=self._lease_until()))

    def _lease_until(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC) + timedelta(seconds=self._policy.lease_seconds)

    def _lease_live(self, row: Settlement) -> bool:
        return row.lease_until is not None and row.lease_until.timestamp() > self._clock()


def _seconds_since(moment: datetime | None, clock: Callable[[], float]) -> float:
    return float("inf") if moment is None else clock() - moment.timestamp()


def _calldata_of(row: Settlement) -> bytes:
    return eip3009.transfer_with_authorization_calldata(
        row.payer, row.payee, row.value, row.valid_after, row.valid_before, bytes.fromhex(row.nonce[2:]),
        bytes.fromhex(row.signature[2:]),
    )
