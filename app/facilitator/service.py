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

from starlette.concurrency import run_in_threadpool

from app.chain import eip3009, sender
from app.chain.eip712 import keccak256
from app.chain.keys import HotWallet
from app.chain.receipts import ReceiptWatcher
from app.chain.rpc import RpcClient, RpcError, RpcUnavailable
from app.config import NetworkConfig, Settings
from app.facilitator.verification import (
    VALID_BEFORE_MARGIN_SECONDS,
    PaymentInvalid,
    PreparedPayment,
    check_on_chain,
    prepare_payment,
)
from app.protocol import (
    AnyPaymentPayload,
    AnyPaymentRequirements,
    PaymentPayload,
    PaymentRequirementsV1,
    Reason,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)
from app.registry.attribution import Attribution, AttributionResolver
from app.settlement.models import SUCCESS_STATES, Settlement, SettlementState
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
        self._nonces = nonces
        self._attribution = attribution
        self._signer = signer
        self._policy = policy
        self._clock = clock
        # One task per exact authorization inside this process: concurrent callers share its answer.
        self._in_flight: dict[tuple[AuthorizationKey, bytes], asyncio.Task[SettleResponse]] = {}
        self._nonce_floors: set[str] = set()
        self._fees = {name: sender.FeeOracle(rpc[name], policy.fees) for name in networks if name in rpc}
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

    # --------------------------------------------------------------------------------------- verify

    async def verify(self, payload: AnyPaymentPayload, requirements: AnyPaymentRequirements) -> VerifyResponse:
        try:
            payment = await self._verify(payload, requirements)
        except PaymentInvalid as invalid:
            return VerifyResponse(
                is_valid=False, invalid_reason=invalid.reason, invalid_message=invalid.message, payer=invalid.payer
            )
        return VerifyResponse(is_valid=True, payer=payment.payer)

    async def _verify(self, payload: AnyPaymentPayload, requirements: AnyPaymentRequirements) -> PreparedPayment:
        payment = prepare_payment(payload, requirements, self._networks, int(self._clock()))
        rpc = self._rpc[payment.network.network]
        try:
            await check_on_chain(payment, rpc, self._simulation_sender())
        except RpcUnavailable as error:
            raise PaymentInvalid(Reason.unexpected_verify_error, f"chain unreachable: {error}", payment.payer) from None
        return payment

    def _simulation_sender(self) -> str:
        # The simulation runs as the account that will send the transaction; without one, any
        # non-zero address works because transferWithAuthorization does not depend on msg.sender.
        return self._signer.address if self._signer else "0x000000000000000000000000000000000000dEaD"

    # --------------------------------------------------------------------------------------- settle

    async def settle(self, payload: AnyPaymentPayload, requirements: AnyPaymentRequirements) -> SettleResponse:
        """Settle exactly once; the answer names the network as the requirements did (v1 name or CAIP-2)."""
        response = await self._settle(payload, requirements)
        return response.model_copy(update={"network": requirements.network})

    async def _settle(self, payload: AnyPaymentPayload, requirements: AnyPaymentRequirements) -> SettleResponse:
        network_id = requirements.network
        try:
            payment = prepare_payment(payload, requirements, self._networks, int(self._clock()))
        except PaymentInvalid as invalid:
            return _failure(invalid.reason, invalid.message, network_id, invalid.payer)
        network_id = payment.network.network
        if self._signer is None:
            return _failure(Reason.unexpected_settle_error, "this facilitator has no signing key", network_id,
                            payment.payer)
        key = _key_of(payment)
        flight = (key, payment.authorization.signature)
        task = self._in_flight.get(flight)
        if task is None:
            task = asyncio.ensure_future(self._settle_once(key, payment, payload, requirements))
            self._in_flight[flight] = task
            task.add_done_callback(lambda _done: self._in_flight.pop(flight, None))
        try:
            response = await asyncio.shield(task)
        except Exception:
            log.exception("settlement of %s/%s failed unexpectedly", payment.payer, key.nonce)
            return _failure(Reason.unexpected_settle_error, "unexpected error while settling", network_id,
                            payment.payer)
        return _same_authorization_or_used(response, payment, await self._stored(key))

    async def _settle_once(
        self,
        key: AuthorizationKey,
        payment: PreparedPayment,
        payload: AnyPaymentPayload,
        requirements: AnyPaymentRequirements,
    ) -> SettleResponse:
        existing = await self._stored(key)
        if existing is not None:
            return await self._follow(existing)
        try:
            await self._verify(payload, requirements)
        except PaymentInvalid as invalid:
            # Another replica may have recorded and settled it between our read and our chain checks;
            # the chain then says "used", but the caller is owed that settlement's receipt.
            existing = await self._stored(key)
            if existing is not None:
                return await self._follow(existing)
            return _failure(invalid.reason, invalid.message, payment.network.network, invalid.payer)
        row = await run_in_threadpool(self._record, payment, payload, requirements)
        if row is None:  # another replica recorded it between our read and our insert
            existing = await self._stored(key)
            assert existing is not None
            return await self._follow(existing)
        return await self._submit(row)

    def _record(
        self, payment: PreparedPayment, payload: AnyPaymentPayload, requirements: AnyPaymentRequirements
    ) -> Settlement | None:
        """Attribute the payment and record its row (one worker-thread hop for both); None when another
        request or replica recorded this authorization first."""
        hint = (requirements.extra or {}).get("capabilityId")
        resource_url = _resource_url(payload, requirements)
        attribution = self._attribution.resolve(
            payer=payment.payer, payee=payment.payee, network=payment.network.network,
            asset=payment.asset.address, value=payment.authorization.value,
            resource_url=resource_url, capability_hint=hint if isinstance(hint, str) else None,
        )
        return self._settlements.create(_new_row(payment, attribution, resource_url))

    async def _stored(self, key: AuthorizationKey) -> Settlement | None:
        return await run_in_threadpool(self._settlements.find, key)

    async def _submit(self, row: Settlement) -> SettleResponse:
        """Sign, store, then broadcast: the hash is durable before anything leaves the process."""
        assert self._signer is not None and row.id is not None
        network = self._networks[row.network]
        rpc = self._rpc[network.network]
        await self._ensure_nonce_floor(network, rpc)
        max_fee, tip = await self._fees[network.network].fees()
        nonce = await run_in_threadpool(self._nonces.allocate, network.network, self._signer.address)
        signed = sender.sign_transaction(
            self._signer, chain_id=network.chain_id, nonce=nonce, to=row.asset, data=_calldata_of(row),
            gas=self._policy.fees.gas_limit, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip,
        )
        stored = await run_in_threadpool(
            self._settlements.transition, row.id, from_states=[SettlementState.VERIFIED],
            to_state=SettlementState.SUBMITTED, signer=self._signer.address, tx_nonce=nonce, tx_hash=signed.hash,
            raw_transaction="0x" + signed.raw.hex(),
        )
        if not stored:  # someone else moved the row: hand the nonce back and follow them
            await self._release_nonce(network, rpc, nonce)
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
        assert row.id is not None
        network = self._networks[row.network]
        log.warning("broadcast of %s refused (%s): %s", tx_hash, refused.kind, refused.message)
        await run_in_threadpool(
            self._settlements.transition, row.id, from_states=[SettlementState.SUBMITTED],
            to_state=SettlementState.FAILED, error_reason=Reason.unexpected_settle_error.value,
            error_message=f"broadcast refused: {refused.kind}",
        )
        if refused.kind == "nonce_too_low":
            self._nonce_floors.discard(network.network)  # re-read the chain's count next time
        else:
            await self._release_nonce(network, self._rpc[network.network], nonce)
        return _failure(Reason.unexpected_settle_error, f"the transaction was refused: {refused.kind}",
                        row.network, row.payer)

    async def _await_outcome(self, row: Settlement, tx_hash: str) -> SettleResponse:
        receipt = await self._receipts[row.network].wait(tx_hash, timeout=self._policy.receipt_timeout_seconds)
        if receipt is None:
            return _pending(tx_hash, row)
        return await self._record_receipt(row, tx_hash, receipt)

    async def _record_receipt(self, row: Settlement, tx_hash: str, receipt: dict) -> SettleResponse:
        assert row.id is not None
        block = {
            "block_number": int(receipt["blockNumber"], 16),
            "block_hash": receipt["blockHash"],
            "gas_used": int(receipt["gasUsed"], 16),
            "effective_gas_price": int(receipt.get("effectiveGasPrice", "0x0"), 16),
        }
        succeeded = int(receipt.get("status", "0x0"), 16) == 1
        transferred = succeeded and eip3009.find_transfer(
            receipt.get("logs", []), row.asset, row.payer, row.payee, row.value
        )
        if transferred:
            await run_in_threadpool(self._settlements.confirm, row.id, **block)
            return SettleResponse(success=True, transaction=tx_hash, network=row.network, payer=row.payer,
                                  amount=str(row.value))
        reason = Reason.transaction_failed if not succeeded else Reason.invalid_exact_evm_transfer_event_mismatch
        message = "the settlement transaction reverted" if not succeeded else "no matching Transfer event"
        await run_in_threadpool(
            self._settlements.transition, row.id, from_states=[SettlementState.SUBMITTED],
            to_state=SettlementState.FAILED, error_reason=reason.value, error_message=message, **block,
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
                self._settlements.transition, row.id, from_states=[SettlementState.VERIFIED],
                to_state=SettlementState.EXPIRED,
                error_reason=Reason.invalid_exact_evm_payload_authorization_valid_before.value,
                error_message="the authorization expired before it could be submitted",
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
        receipt = await rpc.call("eth_getTransactionReceipt", [row.tx_hash])
        if receipt:
            await self._record_receipt(row, row.tx_hash, receipt)
            return
        if row.raw_transaction and await rpc.call("eth_getTransactionByHash", [row.tx_hash]) is None:
            try:
                await sender.broadcast(rpc, bytes.fromhex(row.raw_transaction[2:]))
            except sender.BroadcastError as refused:
                log.warning("resending %s refused (%s)", row.tx_hash, refused.kind)
                return
        await self._await_outcome(row, row.tx_hash)

    async def _ensure_nonce_floor(self, network: NetworkConfig, rpc: RpcClient) -> None:
        assert self._signer is not None
        if network.network in self._nonce_floors:
            return
        chain_nonce = await sender.pending_nonce(rpc, self._signer.address)
        await run_in_threadpool(self._nonces.raise_floor, network.network, self._signer.address, chain_nonce)
        self._nonce_floors.add(network.network)

    async def _release_nonce(self, network: NetworkConfig, rpc: RpcClient, nonce: int) -> None:
        """Give an unsent nonce back, or fill the gap it leaves so later transactions are not stuck."""
        assert self._signer is not None
        if await run_in_threadpool(self._nonces.give_back, network.network, self._signer.address, nonce):
            return
        max_fee, tip = await self._fees[network.network].fees()
        filler = sender.sign_transaction(
            self._signer, chain_id=network.chain_id, nonce=nonce, to=self._signer.address, data=b"",
            gas=21_000, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip,
        )
        try:
            await sender.broadcast(rpc, filler.raw)
        except (sender.BroadcastError, RpcUnavailable) as error:
            log.error("could not fill nonce gap %d of %s: %s", nonce, self._signer.address, error)


def _key_of(payment: PreparedPayment) -> AuthorizationKey:
    return AuthorizationKey(
        network=payment.network.network,
        asset=payment.asset.address,
        payer=payment.payer,
        nonce="0x" + payment.authorization.nonce.hex(),
    )


def _new_row(payment: PreparedPayment, attribution: Attribution, resource_url: str | None) -> Settlement:
    auth = payment.authorization
    return Settlement(
        network=payment.network.network, asset=payment.asset.address, payer=payment.payer, payee=payment.payee,
        nonce="0x" + auth.nonce.hex(), value=auth.value, valid_after=auth.valid_after,
        valid_before=auth.valid_before, signature="0x" + auth.signature.hex(),
        signature_hash="0x" + keccak256(auth.signature).hex(), x402_version=payment.x402_version,
        state=SettlementState.VERIFIED, resource_url=resource_url[:2000] if resource_url else None,
        **asdict(attribution),
    )


def _resource_url(payload: AnyPaymentPayload, requirements: AnyPaymentRequirements) -> str | None:
    if isinstance(requirements, PaymentRequirementsV1):
        return requirements.resource
    if isinstance(payload, PaymentPayload) and payload.resource is not None:
        return payload.resource.url
    return None


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
