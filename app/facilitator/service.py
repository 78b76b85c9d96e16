"""Verify and settle: the facilitator's use cases.

Settlement is exactly-once by construction: the authorization becomes a database row (unique on
network, asset, payer, nonce) before anything is signed; the signed transaction's hash and raw
bytes are stored before it is broadcast; and every later caller for the same authorization is
answered from that row (or from the in-flight task, inside one process) instead of sending again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

from starlette.concurrency import run_in_threadpool

from app.chain import blocks, eip3009, sender
from app.chain.eip712 import keccak256
from app.chain.keys import HotWallet
from app.chain.receipts import Receipt, ReceiptWatcher
from app.chain.rpc import RpcClient, RpcError, RpcUnavailable
from app.config import NetworkConfig, Settings
from app.facilitator.verification import (
    VALID_BEFORE_MARGIN_SECONDS,
    PaymentInvalid,
    PreparedPayment,
    check_on_chain,
    check_time_window,
    prepare_payment,
)
from app.protocol import (
    FacilitatorRequest,
    Reason,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)
from app.registry.attribution import Attribution, AttributionResolver
from app.settlement.models import SUCCESS_STATES, Settlement, SettlementState
from app.settlement.nonces import NonceManager
from app.settlement.repository import AuthorizationKey, SettlementRepository, SignerNonceRepository

log = logging.getLogger(__name__)

# A row still 'verified' this long after it was read has lost its owner (signing takes milliseconds).
TAKEOVER_AFTER_SECONDS = 2.0


@dataclass(frozen=True)
class SettlePolicy:
    receipt_timeout_seconds: float
    fees: sender.FeePolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> SettlePolicy:
        return cls(
            receipt_timeout_seconds=settings.settle_receipt_timeout_seconds,
            fees=sender.FeePolicy(
                max_fee_per_gas_cap=settings.max_fee_per_gas_wei,
                priority_fee=settings.priority_fee_wei,
                gas_limit=settings.settle_gas_limit,
            ),
        )


class Facilitator:
    def __init__(
        self,
        *,
        networks: dict[str, NetworkConfig],
        rpc: dict[str, RpcClient],
        settlements: SettlementRepository,
        nonces: SignerNonceRepository,
        attribution: AttributionResolver,
        signer: HotWallet | None,
        policy: SettlePolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._networks = networks
        self._rpc = rpc
        self._settlements = settlements
        self._attribution = attribution
        self._signer = signer
        self._policy = policy
        self._clock = clock
        # One task per exact authorization inside this process: concurrent callers share its answer.
        self._in_flight: dict[tuple[AuthorizationKey, bytes], asyncio.Task[SettleResponse]] = {}
        self._fees = {name: sender.FeeOracle(rpc[name], policy.fees) for name in networks if name in rpc}
        self._nonces = NonceManager(nonces, rpc=rpc, fees=self._fees)
        self._receipts = {name: ReceiptWatcher(rpc[name]) for name in networks if name in rpc}

    async def close(self) -> None:
        """Stop the receipt pollers (the RPC clients belong to the caller)."""
        for watcher in self._receipts.values():
            await watcher.close()

    # ------------------------------------------------------------------------------------ supported

    def supported(self) -> SupportedResponse:
        """Exactly the kinds we can settle: none without a signing key."""
        if self._signer is None:
            return SupportedResponse(kinds=[], extensions=[], signers={})
        kinds: list[SupportedKind] = []
        for network in self._networks.values():
            kinds.append(SupportedKind(x402_version=2, scheme="exact", network=network.network))
            if network.v1_name:
                kinds.append(SupportedKind(x402_version=1, scheme="exact", network=network.v1_name))
        signers = {network: [self._signer.address] for network in self._networks}
        return SupportedResponse(kinds=kinds, extensions=[], signers=signers)

    # -------------------------------------------------------------------------------------- prepare

    def prepare(self, request: FacilitatorRequest) -> PreparedPayment:
        """Every I/O-free check and the signature recovery, once: verify and settle take the result.
        Raises PaymentInvalid."""
        return prepare_payment(request, self._networks, int(self._clock()))

    # --------------------------------------------------------------------------------------- verify

    async def verify(self, request: FacilitatorRequest) -> VerifyResponse:
        try:
            payment = self.prepare(request)
        except PaymentInvalid as invalid:
            return _invalid(invalid)
        return await self.verify_prepared(payment)

    async def verify_prepared(self, payment: PreparedPayment) -> VerifyResponse:
        try:
            await self._check_chain(payment)
        except PaymentInvalid as invalid:
            return _invalid(invalid)
        return VerifyResponse(is_valid=True, payer=payment.payer)

    async def _check_chain(self, payment: PreparedPayment) -> None:
        try:
            await check_on_chain(payment, self._rpc[payment.network.network], self._simulation_sender())
        except RpcUnavailable as error:
            raise PaymentInvalid(Reason.unexpected_verify_error, f"chain unreachable: {error}", payment.payer) from None

    def _simulation_sender(self) -> str:
        # The simulation runs as the account that will send the transaction; without one, any
        # non-zero address works because transferWithAuthorization does not depend on msg.sender.
        return self._signer.address if self._signer else "0x000000000000000000000000000000000000dEaD"

    # --------------------------------------------------------------------------------------- settle

    async def settle(self, request: FacilitatorRequest) -> SettleResponse:
        """Settle exactly once; the answer names the network as the requirements did (v1 name or CAIP-2)."""
        try:
            payment = self.prepare(request)
        except PaymentInvalid as invalid:
            return _failure(invalid.reason, invalid.message, request.requirements.network, invalid.payer)
        return await self.settle_prepared(payment)

    async def settle_prepared(self, payment: PreparedPayment) -> SettleResponse:
        """Settle a payment prepared earlier (by ``prepare``, for a verify a moment ago): its time window is
        checked again, since the handler it paid for may have taken a while."""
        response = await self._settle(payment)
        return response.model_copy(update={"network": payment.request.requirements.network})

    async def _settle(self, payment: PreparedPayment) -> SettleResponse:
        network_id = payment.network.network
        try:
            check_time_window(payment.authorization, payment.payer, int(self._clock()))
        except PaymentInvalid as invalid:
            return _failure(invalid.reason, invalid.message, network_id, invalid.payer)
        if self._signer is None:
            return _failure(Reason.unexpected_settle_error, "this facilitator has no signing key", network_id,
                            payment.payer)
        key = _key_of(payment)
        flight = (key, payment.authorization.signature)
        task = self._in_flight.get(flight)
        if task is None:
            task = asyncio.ensure_future(self._settle_once(key, payment))
            self._in_flight[flight] = task
            task.add_done_callback(lambda _done: self._in_flight.pop(flight, None))
        try:
            response = await asyncio.shield(task)
        except Exception:
            log.exception("settlement of %s/%s failed unexpectedly", payment.payer, key.nonce)
            return _failure(Reason.unexpected_settle_error, "unexpected error while settling", network_id,
                            payment.payer)
        return _same_authorization_or_used(response, payment, await self._stored(key))

    async def _settle_once(self, key: AuthorizationKey, payment: PreparedPayment) -> SettleResponse:
        existing = await self._stored(key)
        if existing is not None:
            return await self._follow(existing)
        try:
            await self._check_chain(payment)
        except PaymentInvalid as invalid:
            # Another replica may have recorded and settled it between our read and our chain checks;
            # the chain then says "used", but the caller is owed that settlement's receipt.
            existing = await self._stored(key)
            if existing is not None:
                return await self._follow(existing)
            return _failure(invalid.reason, invalid.message, payment.network.network, invalid.payer)
        row = await run_in_threadpool(self._record, payment)
        if row is None:  # another replica recorded it between our read and our insert
            existing = await self._stored(key)
            assert existing is not None
            return await self._follow(existing)
        return await self._submit(row)

    def _record(self, payment: PreparedPayment) -> Settlement | None:
        """Attribute the payment and record its row (one worker-thread hop for both); None when another
        request or replica recorded this authorization first."""
        attribution = self._attribution.resolve(
            payer=payment.payer, payee=payment.payee, network=payment.network.network,
            asset=payment.asset.address, value=payment.authorization.value,
            resource_url=payment.resource_url, capability_hint=payment.capability_hint,
        )
        return self._settlements.create(_new_row(payment, attribution))

    async def _stored(self, key: AuthorizationKey) -> Settlement | None:
        return await run_in_threadpool(self._settlements.find, key)

    async def _submit(self, row: Settlement) -> SettleResponse:
        """Sign, store, then broadcast: the hash is durable before anything leaves the process."""
        assert self._signer is not None and row.id is not None
        network = self._networks[row.network]
        rpc = self._rpc[network.network]
        max_fee, tip = await self._fees[network.network].fees()
        nonce = await self._nonces.allocate(network, self._signer)
        signed = sender.sign_transaction(
            self._signer, chain_id=network.chain_id, nonce=nonce, to=row.asset, data=_calldata_of(row),
            gas=self._policy.fees.gas_limit, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip,
        )
        stored = await run_in_threadpool(
            partial(self._settlements.mark_submitted, row.id, signer=self._signer.address, tx_nonce=nonce,
                    tx_hash=signed.hash, raw_transaction="0x" + signed.raw.hex())
        )
        if not stored:  # someone else moved the row: hand the nonce back and follow them
            await self._nonces.release(network, self._signer, nonce)
            latest = await run_in_threadpool(self._settlements.get, row.id)
            assert latest is not None
            return await self._follow(latest)
        try:
            await sender.broadcast(rpc, signed.raw)
        except sender.BroadcastError as refused:
            if refused.kind != "already_known":
                return await self._broadcast_refused(row, nonce, signed.hash, refused)
        except RpcUnavailable:
            # Unknown whether it went out: the stored raw transaction is resent by resume_unfinished.
            return _pending(signed.hash, row)
        return await self._await_outcome(row, signed.hash)

    async def _broadcast_refused(
        self, row: Settlement, nonce: int, tx_hash: str, refused: sender.BroadcastError
    ) -> SettleResponse:
        assert row.id is not None and self._signer is not None
        network = self._networks[row.network]
        log.warning("broadcast of %s refused (%s): %s", tx_hash, refused.kind, refused.message)
        await run_in_threadpool(
            partial(self._settlements.mark_failed, row.id, reason=Reason.unexpected_settle_error.value,
                    message=f"broadcast refused: {refused.kind}")
        )
        if refused.kind == "nonce_too_low":
            self._nonces.chain_moved_ahead(network, self._signer)
        else:
            await self._nonces.release(network, self._signer, nonce)
        return _failure(Reason.unexpected_settle_error, f"the transaction was refused: {refused.kind}",
                        row.network, row.payer)

    async def _await_outcome(self, row: Settlement, tx_hash: str) -> SettleResponse:
        receipt = await self._receipts[row.network].wait(tx_hash, timeout=self._policy.receipt_timeout_seconds)
        if receipt is None:
            return _pending(tx_hash, row)
        return await self._record_receipt(row, tx_hash, receipt)

    async def _record_receipt(self, row: Settlement, tx_hash: str, receipt: Receipt) -> SettleResponse:
        assert row.id is not None
        block = {"block_number": receipt.block_number, "block_hash": receipt.block_hash,
                 "gas_used": receipt.gas_used, "effective_gas_price": receipt.effective_gas_price}
        transferred = receipt.succeeded and eip3009.find_transfer(
            list(receipt.logs), row.asset, row.payer, row.payee, row.value
        )
        if transferred:
            await run_in_threadpool(partial(self._settlements.mark_confirmed, row.id, **block))
            return SettleResponse(success=True, transaction=tx_hash, network=row.network, payer=row.payer,
                                  amount=str(row.value))
        if receipt.succeeded:
            reason, message = Reason.invalid_exact_evm_transfer_event_mismatch, "no matching Transfer event"
        else:
            reason, message = Reason.transaction_failed, "the settlement transaction reverted"
        await run_in_threadpool(
            partial(self._settlements.mark_failed, row.id, reason=reason.value, message=message, **block)
        )
        return _failure(reason, message, row.network, row.payer, transaction=tx_hash)

    async def _follow(self, row: Settlement) -> SettleResponse:
        """Answer for an authorization someone already recorded, sending nothing new.

        A row left ``verified`` past ``TAKEOVER_AFTER_SECONDS`` lost its owner (a crashed replica):
        it is taken over, which is safe because only one conditional verified -> submitted UPDATE can win.
        """
        assert row.id is not None
        while row.state == SettlementState.VERIFIED and self._seconds_since_update(row) < TAKEOVER_AFTER_SECONDS:
            await asyncio.sleep(0.05)  # its owner is signing: wait for the stored transaction
            row = await run_in_threadpool(self._settlements.get, row.id) or row
        if row.state == SettlementState.VERIFIED:
            return await self._take_over(row)
        if SettlementState(row.state) in SUCCESS_STATES:
            return _success_of(row)
        if row.state == SettlementState.SUBMITTED and row.tx_hash:
            return await self._await_outcome(row, row.tx_hash)
        return _failure(Reason(row.error_reason or Reason.unexpected_settle_error), row.error_message or "failed",
                        row.network, row.payer, transaction=row.tx_hash or "")

    def _seconds_since_update(self, row: Settlement) -> float:
        return self._clock() - row.updated_at.timestamp()

    async def _take_over(self, row: Settlement) -> SettleResponse:
        assert row.id is not None
        if row.valid_before < int(self._clock()) + VALID_BEFORE_MARGIN_SECONDS:
            await run_in_threadpool(
                partial(self._settlements.mark_expired, row.id,
                        reason=Reason.invalid_exact_evm_payload_authorization_valid_before.value,
                        message="the authorization expired before it could be submitted")
            )
            latest = await run_in_threadpool(self._settlements.get, row.id)
            assert latest is not None
            return await self._follow(latest)
        return await self._submit(row)

    async def resume_unfinished(self) -> int:
        """Finish what a previous run left open: settle ``submitted`` rows from the chain (resending the
        stored transaction if the node never saw it) and take over orphaned ``verified`` rows.

        Run at start-up; returns how many rows it looked at.
        """
        if self._signer is None:
            return 0
        rows = await run_in_threadpool(
            self._settlements.in_states, [SettlementState.SUBMITTED, SettlementState.VERIFIED]
        )
        for row in rows:
            if row.network not in self._networks:
                continue
            try:
                if row.state == SettlementState.SUBMITTED:
                    await self._resume_submitted(row)
                else:
                    await self._follow(row)
            except (RpcUnavailable, RpcError) as error:
                log.warning("could not resume settlement %s: %s", row.id, error)
        return len(rows)

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


def _key_of(payment: PreparedPayment) -> AuthorizationKey:
    return AuthorizationKey(
        network=payment.network.network,
        asset=payment.asset.address,
        payer=payment.payer,
        nonce="0x" + payment.authorization.nonce.hex(),
    )


def _new_row(payment: PreparedPayment, attribution: Attribution) -> Settlement:
    auth = payment.authorization
    return Settlement(
        network=payment.network.network, asset=payment.asset.address, payer=payment.payer, payee=payment.payee,
        nonce="0x" + auth.nonce.hex(), value=auth.value, valid_after=auth.valid_after,
        valid_before=auth.valid_before, signature="0x" + auth.signature.hex(),
        signature_hash="0x" + keccak256(auth.signature).hex(), x402_version=payment.x402_version,
        state=SettlementState.VERIFIED,
        resource_url=payment.resource_url[:2000] if payment.resource_url else None,
        **asdict(attribution),
    )


def _same_authorization_or_used(
    response: SettleResponse, payment: PreparedPayment, row: Settlement | None
) -> SettleResponse:
    """A receipt belongs to one exact authorization: a different one reusing the nonce gets 'used'."""
    auth = payment.authorization
    if row is None or (
        row.payee == payment.payee
        and row.value == auth.value
        and row.valid_after == auth.valid_after
        and row.valid_before == auth.valid_before
        and row.signature == "0x" + auth.signature.hex()
    ):
        return response
    return _failure(Reason.invalid_exact_evm_nonce_already_used,
                    "another authorization with this nonce was already settled", row.network, payment.payer)


def _invalid(invalid: PaymentInvalid) -> VerifyResponse:
    return VerifyResponse(is_valid=False, invalid_reason=invalid.reason, invalid_message=invalid.message,
                          payer=invalid.payer)


def _success_of(row: Settlement) -> SettleResponse:
    return SettleResponse(success=True, transaction=row.tx_hash or "", network=row.network, payer=row.payer,
                          amount=str(row.value))


def _pending(tx_hash: str, row: Settlement) -> SettleResponse:
    return _failure(Reason.settlement_pending, "submitted; the receipt is not in yet", row.network, row.payer,
                    transaction=tx_hash)


def _calldata_of(row: Settlement) -> bytes:
    return eip3009.transfer_with_authorization_calldata(
        row.payer, row.payee, row.value, row.valid_after, row.valid_before, bytes.fromhex(row.nonce[2:]),
        bytes.fromhex(row.signature[2:]),
    )


def _failure(
    reason: Reason, message: str, network: str, payer: str | None, *, transaction: str = ""
) -> SettleResponse:
    return SettleResponse(success=False, error_reason=reason, error_message=message, transaction=transaction,
                          network=network, payer=payer)
