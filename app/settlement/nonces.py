"""Transaction nonces of the facilitator's hot wallets: every rule about them lives in this file.

- **Allocated from the database**, one atomic ``UPDATE ... RETURNING`` per nonce
  (:class:`~app.settlement.repository.SignerNonceRepository`), so replicas sharing the ledger never
  hand out the same nonce twice.
- **Floored by the chain**: before the first allocation on a network (and again after the node
  said "nonce too low"), the database's next nonce is raised to the chain's pending count, never
  lowered (a lower count means our own transactions are still in flight).
- **Never left as a gap**: a nonce allocated but not used (someone else submitted the row first, or
  the node refused the transaction) is handed back if it is still the newest one; otherwise a
  zero-value self-transfer fills it, because every later transaction of the wallet would wait in the
  node's queue behind the hole.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool

from app.chain import sender
from app.chain.keys import HotWallet
from app.chain.rpc import RpcClient, RpcUnavailable
from app.config import NetworkConfig
from app.settlement.repository import SignerNonceRepository

log = logging.getLogger(__name__)

FILLER_GAS = 21_000  # a plain transfer to itself: the cheapest transaction that consumes a nonce


class NonceManager:
    def __init__(
        self,
        repository: SignerNonceRepository,
        *,
        rpc: dict[str, RpcClient],
        fees: dict[str, sender.FeeOracle],
    ) -> None:
        self._repository = repository
        self._rpc = rpc
        self._fees = fees
        self._floored: set[tuple[str, str]] = set()  # (network, signer) whose floor was read from the chain

    async def allocate(self, network: NetworkConfig, signer: HotWallet) -> int:
        """The next nonce of ``signer`` on ``network``, handed out exactly once across replicas."""
        await self._ensure_floor(network, signer)
        return await run_in_threadpool(self._repository.allocate, network.network, signer.address)

    async def release(self, network: NetworkConfig, signer: HotWallet, nonce: int) -> None:
        """``nonce`` will not be used: give it back, or fill the gap it leaves so nothing queues behind it."""
        if await run_in_threadpool(self._repository.give_back, network.network, signer.address, nonce):
            return
        max_fee, tip = await self._fees[network.network].fees()
        filler = sender.sign_transaction(
            signer, chain_id=network.chain_id, nonce=nonce, to=signer.address, data=b"",
            gas=FILLER_GAS, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip,
        )
        try:
            await sender.broadcast(self._rpc[network.network], filler.raw)
        except (sender.BroadcastError, RpcUnavailable) as error:
            log.error("could not fill nonce gap %d of %s: %s", nonce, signer.address, error)

    def chain_moved_ahead(self, network: NetworkConfig, signer: HotWallet) -> None:
        """The node said a nonce was too low (another sender used the wallet): re-read its count next time."""
        self._floored.discard((network.network, signer.address))

    async def _ensure_floor(self, network: NetworkConfig, signer: HotWallet) -> None:
        key = (network.network, signer.address)
        if key in self._floored:
            return
        chain_nonce = await sender.pending_nonce(self._rpc[network.network], signer.address)
        await run_in_threadpool(self._repository.raise_floor, network.network, signer.address, chain_nonce)
        self._floored.add(key)
