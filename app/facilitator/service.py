"""Verify and settle: the facilitator's use cases.

Settlement is exactly-once by construction: the authorization becomes a database row (unique on
network, asset, payer, nonce) before anything is signed, and the settlement engine
(``app.settlement.engine``) carries that row to its outcome, every step durable before the next.

**One success per authorization.** Replays and honest retries carry the same payload and the same key,
so they are told apart by what was answered: exactly one ``success: true`` is ever given for an
authorization (``SettlementRepository.claim_answer``). A caller answered ``settlement_pending``, or one
whose request ended before any answer, gets the success on its next ``/settle``; every other concurrent
or later ``/settle`` of the authorization answers ``invalid_exact_evm_nonce_already_used`` with the
transaction hash. So a resource server that keeps no nonce table (the official SDK middleware) serves one
response per payment, and the SDK's one retry after ``settlement_pending`` still gets its success.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from starlette.concurrency import run_in_threadpool

from app.chain.eip712 import keccak256
from app.chain.keys import HotWallet
from app.chain.rpc import RpcClient, RpcUnavailable
from app.config import NetworkConfig
from app.facilitator.verification import (
    PaymentInvalid,
    PreparedPayment,
    check_on_chain,
    check_time_window,
    prepare_payment,
)
from app.faults import crash_point
from app.protocol import (
    FacilitatorRequest,
    Reason,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)
from app.registry.attribution import Attribution, AttributionResolver
from app.settlement.engine import NotSent, Outcome, SettlementEngine
from app.settlement.models import Settlement, SettlementState
from app.settlement.repository import AuthorizationKey, SettlementRepository

log = logging.getLogger(__name__)

# Whether the caller is still there to be answered (an HTTP route: the client has not disconnected).
Listening = Callable[[], Awaitable[bool]]


class Facilitator:
    def __init__(
        self,
        *,
        networks: dict[str, NetworkConfig],
        rpc: dict[str, RpcClient],
        settlements: SettlementRepository,
        attribution: AttributionResolver,
        engine: SettlementEngine,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._networks = networks
        self._rpc = rpc
        self._settlements = settlements
        self._attribution = attribution
        self._engine = engine
        self._signer: HotWallet | None = engine.signer
        self._clock = clock
        # One task per exact authorization inside this process: concurrent callers share its outcome.
        self._in_flight: dict[tuple[AuthorizationKey, bytes], asyncio.Task[SettleResponse]] = {}

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

    async def settle(self, request: FacilitatorRequest, listening: Listening | None = None) -> SettleResponse:
        """Settle exactly once; the answer names the network as the requirements did (v1 name or CAIP-2).
        ``listening`` says whether the caller can still be answered (see the module docstring)."""
        try:
            payment = self.prepare(request)
        except PaymentInvalid as invalid:
            return _failure(invalid.reason, invalid.message, request.requirements.network, invalid.payer)
        return await self.settle_prepared(payment, listening)

    async def settle_prepared(self, payment: PreparedPayment, listening: Listening | None = None) -> SettleResponse:
        """Settle a payment prepared earlier (by ``prepare``, for a verify a moment ago): its time window is
        checked again, since the handler it paid for may have taken a while."""
        response = await self._settle(payment, listening)
        return response.model_copy(update={"network": payment.request.requirements.network})

    async def _settle(self, payment: PreparedPayment, listening: Listening | None) -> SettleResponse:
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
        row = await self._stored(key)
        response = _same_authorization_or_used(response, payment, row)
        if not response.success or row is None or row.id is None:
            return response
        if listening is not None and not await listening():
            return response  # nobody to answer: the success stays for this caller's retry
        if await run_in_threadpool(self._settlements.claim_answer, row.id):
            return response
        return _failure(Reason.invalid_exact_evm_nonce_already_used, "this authorization was already settled and "
                        "its success answered; the transaction is given for information", row.network, row.payer,
                        transaction=row.tx_hash or "")

    async def _settle_once(self, key: AuthorizationKey, payment: PreparedPayment) -> SettleResponse:
        existing = await self._stored(key)
        if existing is not None:
            return _answer(await self._engine.follow(existing), existing)
        try:
            await self._check_chain(payment)
        except PaymentInvalid as invalid:
            # Another replica may have recorded and settled it between our read and our chain checks;
            # the chain then says "used", but the caller is owed that settlement's receipt.
            existing = await self._stored(key)
            if existing is not None:
                return _answer(await self._engine.follow(existing), existing)
            return _failure(invalid.reason, invalid.message, payment.network.network, invalid.payer)
        row = await run_in_threadpool(self._record, payment)
        if row is None:  # another replica recorded it between our read and our insert
            existing = await self._stored(key)
            assert existing is not None
            return _answer(await self._engine.follow(existing), existing)
        crash_point("recorded")
        try:
            outcome = await self._engine.submit(row)
        except NotSent as refused:
            return _failure(refused.reason, refused.message, row.network, row.payer)
        return _answer(outcome, row)

    def _record(self, payment: PreparedPayment) -> Settlement | None:
        """Attribute the payment and record its row, leased to this process (one worker-thread hop for both);
        None when another request or replica recorded this authorization first."""
        attribution = self._attribution.resolve(
            payer=payment.payer, payee=payment.payee, network=payment.network.network,
            asset=payment.asset.address, value=payment.authorization.value,
            resource_url=payment.resource_url, capability_hint=payment.capability_hint,
        )
        return self._settlements.create(_new_row(payment, attribution, self._engine.lease()))

    async def _stored(self, key: AuthorizationKey) -> Settlement | None:
        return await run_in_threadpool(self._settlements.find, key)

    async def maintain(self) -> int:
        """Finish what was left open and repair the hot wallets' nonces (start-up and periodically)."""
        return await self._engine.maintain()


def _key_of(payment: PreparedPayment) -> AuthorizationKey:
    return AuthorizationKey(
        network=payment.network.network,
        asset=payment.asset.address,
        payer=payment.payer,
        nonce="0x" + payment.authorization.nonce.hex(),
    )


def _new_row(payment: PreparedPayment, attribution: Attribution, lease: dict[str, object]) -> Settlement:
    auth = payment.authorization
    return Settlement(
        network=payment.network.network, asset=payment.asset.address, payer=payment.payer, payee=payment.payee,
        nonce="0x" + auth.nonce.hex(), value=auth.value, valid_after=auth.valid_after,
        valid_before=auth.valid_before, signature="0x" + auth.signature.hex(),
        signature_hash="0x" + keccak256(auth.signature).hex(), x402_version=payment.x402_version,
        state=SettlementState.VERIFIED,
        resource_url=payment.resource_url[:2000] if payment.resource_url else None,
        **asdict(attribution), **lease,
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


def _answer(outcome: Outcome, row: Settlement) -> SettleResponse:
    """The settle answer for where the engine left ``row``."""
    if outcome.succeeded:
        return SettleResponse(success=True, transaction=outcome.tx_hash, network=row.network, payer=row.payer,
                              amount=str(row.value))
    if outcome.state == SettlementState.SUBMITTED:
        return _failure(Reason.settlement_pending, "submitted; the receipt is not in yet", row.network, row.payer,
                        transaction=outcome.tx_hash)
    return _failure(Reason(outcome.reason or Reason.unexpected_settle_error), outcome.message or "failed",
                    row.network, row.payer, transaction=outcome.tx_hash)


def _failure(
    reason: Reason, message: str, network: str, payer: str | None, *, transaction: str = ""
) -> SettleResponse:
    return SettleResponse(success=False, error_reason=reason, error_message=message, transaction=transaction,
                          network=network, payer=payer)
