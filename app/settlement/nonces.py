"""Transaction nonces of the facilitator's hot wallets: every rule about them lives in this file.

- **Allocated to a settlement, from the database.** A nonce is handed out by one atomic
  ``UPDATE ... RETURNING`` in the same transaction that writes it onto its (verified) settlement row
  (``SignerNonceRepository.allocate_to``). Replicas sharing the ledger never hand out a nonce twice, and
  a crash can never leave a nonce that was handed out but belongs to nobody.
- **One nonce per authorization, so exactly once.** Every transaction ever signed for a settlement uses
  the nonce on its row: re-signed after a crash, taken over from a dead owner, resent after an outage.
  Two transactions with the same nonce cannot both be mined, so however often an authorization is
  signed, it is carried out at most once. (``mark_submitted`` refuses any other nonce.)
- **Floored by the chain.** Before the first allocation on a network, and after the node said "nonce too
  low", the next nonce is raised to the chain's pending count, never lowered.
- **Nothing queues behind a gap.** :meth:`NonceManager.repair` runs at start-up and periodically: every
  allocated nonce the node does not hold is made good. A stored transaction is resent as it is; a verified
  row whose owner died is resent by the facilitator under its own nonce (or, expired, filled); a nonce
  whose transaction was refused or never existed is filled with a zero-value self-transfer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from app.chain import sender
from app.chain.keys import HotWallet
from app.chain.rpc import RpcClient, RpcUnavailable
from app.config import NetworkConfig
from app.settlement.models import Settlement, SettlementState
from app.settlement.repository import SettlementRepository, SignerNonceRepository

log = logging.getLogger(__name__)

FILLER_GAS = 21_000  # a plain transfer to itself: the cheapest transaction that consumes a nonce
RESEND_AFTER_SECONDS = 3.0  # a stored transaction younger than this may still be on its owner's way out

# Resends a verified settlement under the nonce already on its row (the facilitator knows how); False when
# it did not (the row's lease is still held, or the row moved on meanwhile).
Resend = Callable[[Settlement], Awaitable[bool]]


@dataclass(frozen=True)
class SignerStatus:
    """Where one hot wallet stands on one network, as the last repair pass saw it."""

    address: str
    mined: int  # transactions in the latest block
    pending: int  # mined + the unbroken run of pending ones after them
    allocated: int | None  # the next nonce the ledger would hand out; None: none handed out yet
    gaps: int  # allocated nonces the node did not hold (each was made good, or is being)
    oldest_pending_seconds: float | None  # age of the oldest transaction sent and not yet mined

    @property
    def stuck(self) -> bool:
        """Nothing can be mined while a nonce is missing, nor while the oldest transaction waits too long."""
        return self.gaps > 0


class NonceManager:
    def __init__(
        self,
        repository: SignerNonceRepository,
        settlements: SettlementRepository,
        *,
        rpc: dict[str, RpcClient],
        fees: dict[str, sender.FeeOracle],
    ) -> None:
        self._repository = repository
        self._settlements = settlements
        self._rpc = rpc
        self._fees = fees
        self._floored: set[tuple[str, str]] = set()  # (network, signer) whose floor was read from the chain

    async def allocate_to(self, network: NetworkConfig, signer: HotWallet, settlement_id: int) -> int | None:
        """The next nonce of ``signer``, written onto the verified settlement in the same transaction;
        None when the row has moved on or already holds a nonce (nothing is then handed out)."""
        await self._ensure_floor(network, signer)
        return await run_in_threadpool(self._repository.allocate_to, settlement_id, network.network, signer.address)

    async def fill(self, network: NetworkConfig, signer: HotWallet, nonce: int) -> None:
        """Consume ``nonce`` with a zero-value transfer to the signer itself, so later ones are not stuck."""
        try:
            max_fee, tip = await self._fees[network.network].fees()
        except (sender.FeeCapExceeded, RpcUnavailable) as error:  # the next repair pass tries again
            log.error("cannot fill nonce %d of %s on %s now: %s", nonce, signer.address, network.network, error)
            return
        filler = sender.sign_transaction(
            signer, chain_id=network.chain_id, nonce=nonce, to=signer.address, data=b"",
            gas=FILLER_GAS, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip,
        )
        try:
            await sender.broadcast(self._rpc[network.network], filler.raw)
        except (sender.BroadcastError, RpcUnavailable) as error:
            log.error("could not fill nonce %d of %s on %s: %s", nonce, signer.address, network.network, error)
            return
        log.warning("filled nonce %d of %s on %s with %s", nonce, signer.address, network.network, filler.hash)

    def chain_moved_ahead(self, network: NetworkConfig, signer: HotWallet) -> None:
        """The node said a nonce was too low (another sender used the wallet): re-read its count next time."""
        self._floored.discard((network.network, signer.address))

    async def repair(self, network: NetworkConfig, signer: HotWallet, resend: Resend) -> SignerStatus:
        """Compare the nonces the ledger handed out with what the node holds, and make every gap good."""
        rpc = self._rpc[network.network]
        mined, pending = await sender.nonce_counts(rpc, signer.address)
        allocated = await run_in_threadpool(self._repository.next_nonce, network.network, signer.address)
        if allocated is not None and pending > allocated:  # the wallet was used elsewhere: never reuse those
            allocated = await run_in_threadpool(self._repository.raise_floor, network.network, signer.address,
                                                pending)
        missing = range(pending, allocated) if allocated is not None else range(0)
        if missing:
            holders = await run_in_threadpool(self._settlements.holding_nonces, network.network, signer.address,
                                              missing.start, missing.stop - 1)
            for nonce in missing:
                await self._make_good(network, signer, nonce, holders.get(nonce), resend)
        return SignerStatus(address=signer.address, mined=mined, pending=pending, allocated=allocated,
                            gaps=len(missing), oldest_pending_seconds=await self._oldest_pending(network, signer))

    async def _make_good(self, network: NetworkConfig, signer: HotWallet, nonce: int, holder: Settlement | None,
                         resend: Resend) -> None:
        state = SettlementState(holder.state) if holder is not None else None
        if holder is not None and state == SettlementState.SUBMITTED and holder.raw_transaction:
            if _seconds_since(holder.submitted_at) < RESEND_AFTER_SECONDS:
                return  # its owner may be broadcasting it right now
            await self._resend_stored(network, holder)
        elif holder is not None and state == SettlementState.VERIFIED:
            await resend(holder)  # signs it again under this same nonce, once its owner's lease is gone
        else:  # refused by the node, expired unsent, or never a settlement's: nothing else will use it
            await self.fill(network, signer, nonce)

    async def _resend_stored(self, network: NetworkConfig, row: Settlement) -> None:
        assert row.raw_transaction is not None
        try:
            await sender.broadcast(self._rpc[network.network], bytes.fromhex(row.raw_transaction[2:]))
        except sender.BroadcastError as refused:
            if refused.kind != "already_known":
                log.warning("resending %s (nonce %s) refused: %s", row.tx_hash, row.tx_nonce, refused.kind)
            return
        except RpcUnavailable as error:
            log.warning("resending %s failed: %s", row.tx_hash, error)
            return
        log.warning("resent %s (nonce %s), which the node did not hold", row.tx_hash, row.tx_nonce)

    async def _oldest_pending(self, network: NetworkConfig, signer: HotWallet) -> float | None:
        oldest = await run_in_threadpool(self._settlements.oldest_submitted, network.network, signer.address)
        return None if oldest is None else _seconds_since(oldest.submitted_at)

    async def _ensure_floor(self, network: NetworkConfig, signer: HotWallet) -> None:
        key = (network.network, signer.address)
        if key in self._floored:
            return
        chain_nonce = await sender.pending_nonce(self._rpc[network.network], signer.address)
        await run_in_threadpool(self._repository.raise_floor, network.network, signer.address, chain_nonce)
        self._floored.add(key)


def _seconds_since(moment: datetime | None) -> float:
    return float("inf") if moment is None else time.time() - moment.timestamp()
