"""Reconciliation: prove the ledger against the chain over a block range, or say exactly where it differs.

Both sides are read independently and then compared:

- the chain: every ``AuthorizationUsed`` log of the network's tokens in the range, paired with the
  ``Transfer`` the same call emitted (same transaction, from the authorizer), and who sent each
  transaction;
- the ledger: the settlement rows that claim something in the range (their block is in it), plus any
  row whose transaction or authorization shows up on the chain there.

What counts as a discrepancy (``DiscrepancyKind``):

- ``missing_on_chain``: a row marked settled whose transaction reverted, is unknown, or emitted no
  matching ``AuthorizationUsed`` + ``Transfer``;
- ``missing_in_ledger``: an authorization one of our signers used with no settlement row;
- ``outside_service``: an authorization used by a transaction none of our signers sent;
- ``amount_mismatch`` / ``payer_mismatch`` / ``payee_mismatch`` / ``nonce_mismatch``: the row and the
  chain disagree on what was paid, by whom, to whom, or with which authorization;
- ``tx_mismatch`` / ``block_mismatch``: the row records another transaction or another block than the
  one that used its authorization (a replacement, or a reorg);
- ``state_mismatch``: the row's state disagrees with the chain (``failed`` but our transaction used the
  authorization, ``submitted`` but the transaction is mined, ...).

and, reading the journal that attribution and exports read (``app.reconciliation.journal``):

- ``journal_mismatch``: a checked settlement's journal lines are not exactly what its state books
  (``settlement_lines`` for confirmed and finalized ones; those plus one reversal each for a reversed one;
  none otherwise): amounts, accounts and attribution are compared line for line;
- ``journal_tampered``: the hash chain over those lines does not verify (a line edited, deleted,
  inserted or reordered behind the service's back).

Money is compared as integers; the report carries amounts as decimal strings of atomic units.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.chain.logs import (
    DEFAULT_CHUNK,
    AuthorizationUsedEvent,
    TokenEvent,
    TransactionInfo,
    TransferEvent,
    fetch_receipts,
    fetch_token_events,
    fetch_transactions,
    latest_block,
)
from app.chain.receipts import Receipt
from app.chain.rpc import RpcClient, RpcError, RpcUnavailable
from app.chain.sender import nonce_counts
from app.config import AssetConfig, NetworkConfig
from app.errors import BadRequest, ServiceUnavailable
from app.reconciliation.discrepancies import Discrepancy, DiscrepancyKind
from app.reconciliation.journal import check_journal
from app.reconciliation.repository import ReconcileRepository
from app.settlement.models import SUCCESS_STATES, Settlement, SettlementState

BlockTag = int | Literal["latest"]
STALE_AFTER_SECONDS = 60.0  # a transaction unmined this long (and STALE_AFTER_BLOCKS blocks) is reported
STALE_AFTER_BLOCKS = 10


@dataclass
class ReconciliationReport:
    network: str
    from_block: int
    to_block: int
    checked_rows: int = 0
    checked_events: int = 0
    checked_lines: int = 0  # journal lines of the checked settlements
    discrepancies: list[Discrepancy] = field(default_factory=list)
    signers: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.discrepancies

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for discrepancy in self.discrepancies:
            totals[discrepancy.kind.value] += 1
        return dict(sorted(totals.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network, "fromBlock": self.from_block, "toBlock": self.to_block,
            "checkedRows": self.checked_rows, "checkedEvents": self.checked_events,
            "checkedJournalLines": self.checked_lines, "clean": self.clean,
            "signers": list(self.signers), "counts": self.counts(),
            "discrepancies": [discrepancy.to_dict() for discrepancy in self.discrepancies],
        }


@dataclass(frozen=True)
class ChainPayment:
    """One ``transferWithAuthorization`` seen on the chain: the authorization used and the transfer it made."""

    used: AuthorizationUsedEvent
    transfer: TransferEvent | None  # None: the call used the authorization but moved nothing we can see

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.used.token.lower(), self.used.authorizer.lower(), self.used.nonce.lower())

    @property
    def tx_hash(self) -> str:
        return self.used.tx_hash


def pair_payments(events: list[TokenEvent]) -> list[ChainPayment]:
    """Pair each AuthorizationUsed with the Transfer its call emitted: same token and transaction, from
    the authorizer, the nearest one after it (EIP-3009 tokens emit AuthorizationUsed, then Transfer)."""
    transfers: dict[tuple[str, str], list[TransferEvent]] = defaultdict(list)
    for event in events:
        if isinstance(event, TransferEvent):
            transfers[(event.tx_hash, event.token)].append(event)
    taken: set[tuple[str, int]] = set()
    payments: list[ChainPayment] = []
    for event in events:
        if not isinstance(event, AuthorizationUsedEvent):
            continue
        authorizer = event.authorizer.lower()
        candidates = [
            transfer for transfer in transfers[(event.tx_hash, event.token)]
            if transfer.sender.lower() == authorizer and (transfer.tx_hash, transfer.log_index) not in taken
        ]
        candidates.sort(key=lambda t: (t.log_index < event.log_index, abs(t.log_index - event.log_index)))
        match = candidates[0] if candidates else None
        if match is not None:
            taken.add((match.tx_hash, match.log_index))
        payments.append(ChainPayment(used=event, transfer=match))
    return payments


async def reconcile(
    engine: Engine,
    rpc_by_network: Mapping[str, RpcClient],
    networks: Mapping[str, NetworkConfig],
    signers: set[str],
    *,
    network: str,
    from_block: int,
    to_block: BlockTag = "latest",
    chunk: int = DEFAULT_CHUNK,
    recorded_signers: bool = True,
) -> ReconciliationReport:
    """Compare the ledger's settlements of ``network`` with the chain over ``[from_block, to_block]``.

    ``signers`` are our hot wallets (the configured facilitator key); with ``recorded_signers`` every
    wallet recorded on a settlement row of the network counts as ours too, so a rotated key's past
    transactions are not reported as made outside the service.

    ``to_block`` beyond the chain head (or ``"latest"``) is read as the head; the report names the
    range actually checked. Raises ``BadRequest`` for a network that is not enabled or an empty range,
    ``ServiceUnavailable`` when the RPC endpoint or the database cannot be read.
    """
    config = networks.get(network)
    rpc = rpc_by_network.get(network)
    if config is None or rpc is None:
        enabled = ", ".join(sorted(networks)) or "none"
        raise BadRequest(f"network {network!r} is not enabled on this instance (enabled: {enabled})")
    if not config.assets:
        raise BadRequest(f"network {network} has no configured token to reconcile")
    if isinstance(from_block, bool) or not isinstance(from_block, int) or from_block < 0:
        raise BadRequest("fromBlock must be a block number (an integer >= 0)")
    if to_block != "latest" and (isinstance(to_block, bool) or not isinstance(to_block, int) or to_block < 0):
        raise BadRequest("toBlock must be a block number (an integer >= 0) or \"latest\"")
    try:
        ours = set(signers)
        if recorded_signers:
            ours |= await asyncio.to_thread(ReconcileRepository(engine).recorded_signers, network)
        head = await latest_block(rpc)
        last = head if to_block == "latest" else min(to_block, head)
        if from_block > last:
            raise BadRequest(f"fromBlock {from_block} is after toBlock {last} (the chain head is block {head})")
        return await _Reconciliation(engine, rpc, config, ours, from_block, last, chunk).run()
    except (RpcUnavailable, RpcError) as error:
        raise ServiceUnavailable(f"cannot read the chain of {network} from its RPC endpoint: {error}") from error
    except SQLAlchemyError as error:
        raise ServiceUnavailable(
            f"cannot read the ledger database ({type(error).__name__}): is it reachable and migrated?"
        ) from error


def _atomic(value: int | None) -> str | None:
    return None if value is None else str(value)


class _Reconciliation:
    def __init__(self, engine: Engine, rpc: RpcClient, config: NetworkConfig, signers: set[str],
                 from_block: int, to_block: int, chunk: int) -> None:
        self._engine = engine
        self._repository = ReconcileRepository(engine)
        self._rpc = rpc
        self._config = config
        self._assets = {asset.address.lower(): asset for asset in config.assets}
        self._signers = {signer.lower() for signer in signers}
        self._from = from_block
        self._to = to_block
        self._chunk = chunk
        self._found: list[Discrepancy] = []

    # -- reading both sides ------------------------------------------------------------------------

    async def run(self) -> ReconciliationReport:
        events: list[TokenEvent] = []
        for asset in self._config.assets:
            events += await fetch_token_events(self._rpc, asset.address, self._from, self._to, chunk=self._chunk)
        payments = pair_payments(events)
        senders = await fetch_transactions(self._rpc, {payment.tx_hash for payment in payments})
        rows = await asyncio.to_thread(
            self._repository.rows_to_check, self._config.network, self._from, self._to,
            tx_hashes={event.tx_hash for event in events},
            authorizations={(p.used.token, p.used.authorizer, p.used.nonce) for p in payments},
        )
        event_txs = {event.tx_hash for event in events}
        unexplained = {
            row.tx_hash.lower() for row in rows
            if row.tx_hash and row.tx_hash.lower() not in event_txs
            and (row.state in SUCCESS_STATES or row.state == SettlementState.SUBMITTED)
        }
        receipts = await fetch_receipts(self._rpc, unexplained)
        self._compare(rows, payments, senders, receipts)
        await self._check_in_flight()
        journal = await asyncio.to_thread(check_journal, self._engine, [row.id for row in rows if row.id is not None])
        self._found += journal.discrepancies
        self._found.sort(key=lambda d: (d.block_number if d.block_number is not None else -1, d.tx_hash or "",
                                        d.settlement_id or 0, d.kind.value))
        return ReconciliationReport(
            network=self._config.network, from_block=self._from, to_block=self._to, checked_rows=len(rows),
            checked_events=len(events), checked_lines=journal.lines, discrepancies=self._found,
            signers=tuple(sorted(self._signers)),
        )

    async def _check_in_flight(self) -> None:
        """What keeps the ledger from settling at all, whatever the block range: a transaction sent many
        blocks ago and still not mined, and nonces the ledger handed out that the node holds nothing for
        (every later transaction of that wallet waits behind them)."""
        stale = max(STALE_AFTER_SECONDS, STALE_AFTER_BLOCKS * self._config.block_time_seconds)
        before = datetime.now(UTC) - timedelta(seconds=stale)
        for row in await asyncio.to_thread(self._repository.submitted_before, self._config.network, before):
            self._add(DiscrepancyKind.NOT_MINED, f"settlement {row.id}: transaction {row.tx_hash} (nonce "
                      f"{row.tx_nonce} of {row.signer}) was sent more than {stale:.0f} s ago and is not mined",
                      row=row, tx_hash=row.tx_hash)
        allocated = await asyncio.to_thread(self._repository.allocated_nonces, self._config.network)
        for address, next_nonce in sorted(allocated.items()):
            _mined, pending = await nonce_counts(self._rpc, address)
            if pending < next_nonce:
                self._add(DiscrepancyKind.NONCE_GAP, f"hot wallet {address}: the ledger handed out nonces up to "
                          f"{next_nonce - 1}, the node holds transactions up to {pending - 1}: nothing later can be "
                          "mined until the gap is filled (the service's maintenance pass does it)",
                          expected=str(next_nonce), actual=str(pending))

    # -- comparing -----------------------------------------------------------------------------------

    def _compare(self, rows: list[Settlement], payments: list[ChainPayment],
                 senders: Mapping[str, TransactionInfo | None], receipts: Mapping[str, Receipt | None]) -> None:
        by_key = {payment.key: payment for payment in payments}
        by_tx: dict[str, list[ChainPayment]] = defaultdict(list)
        for payment in payments:
            by_tx[payment.tx_hash].append(payment)
        keyed = {_row_key(row) for row in rows}
        claimed: dict[tuple[str, str, str], Settlement] = {}
        for row in rows:
            payment = by_key.get(_row_key(row))
            if payment is None and row.tx_hash:
                # The row's own key is not on the chain: if its transaction used exactly one authorization
                # that no other row records, that is the one it describes (with a tampered field).
                loose = [p for p in by_tx.get(row.tx_hash.lower(), []) if p.key not in keyed and p.key not in claimed]
                payment = loose[0] if len(loose) == 1 else None
            if payment is not None:
                claimed[payment.key] = row
            self._check_row(row, payment, senders, receipts)
        for payment in payments:
            self._check_payment(payment, claimed.get(payment.key), senders.get(payment.tx_hash))

    def _ours(self, payment: ChainPayment, senders: Mapping[str, TransactionInfo | None]) -> bool:
        info = senders.get(payment.tx_hash)
        return info is not None and info.sender.lower() in self._signers

    def _add(self, kind: DiscrepancyKind, message: str, *, row: Settlement | None = None,
             payment: ChainPayment | None = None, tx_hash: str | None = None, block_number: int | None = None,
             expected: str | None = None, actual: str | None = None) -> None:
        if payment is not None:
            tx_hash = tx_hash or payment.tx_hash
            block_number = block_number if block_number is not None else payment.used.block_number
        if row is not None:
            tx_hash = tx_hash or row.tx_hash
            block_number = block_number if block_number is not None else row.block_number
        self._found.append(Discrepancy(
            kind=kind, message=message, settlement_id=row.id if row else None, tx_hash=tx_hash,
            block_number=block_number, expected=expected, actual=actual,
            asset=row.asset if row else payment.used.token if payment else None,
            payer=row.payer if row else payment.used.authorizer if payment else None,
            nonce=row.nonce if row else payment.used.nonce if payment else None,
        ))

    def _amount(self, value: int, token: str) -> str:
        asset: AssetConfig | None = self._assets.get(token.lower())
        if asset is None:
            return f"{value} atomic units"
        exact = format(Decimal(value).scaleb(-asset.decimals), "f") if asset.decimals else str(value)
        return f"{exact} {asset.symbol} ({value} atomic units)"

    def _check_row(self, row: Settlement, payment: ChainPayment | None,
                   senders: Mapping[str, TransactionInfo | None], receipts: Mapping[str, Receipt | None]) -> None:
        state = SettlementState(row.state)
        if state in SUCCESS_STATES:
            if payment is None:
                self._settled_without_payment(row, receipts.get((row.tx_hash or "").lower()))
            else:
                self._compare_fields(row, payment)
            return
        if payment is not None and (payment.tx_hash == (row.tx_hash or "").lower() or self._ours(payment, senders)):
            where = f"transaction {payment.tx_hash} (block {payment.used.block_number})"
            self._add(DiscrepancyKind.STATE_MISMATCH,
                      f"settlement {row.id} is {state.value} in the ledger, but {where} used its authorization",
                      row=row, payment=payment, expected="confirmed", actual=state.value)
            return
        if state == SettlementState.SUBMITTED and row.tx_hash:
            receipt = receipts.get(row.tx_hash.lower())
            if receipt is not None:
                outcome = "succeeded" if receipt.status == 1 else "reverted"
                self._add(DiscrepancyKind.STATE_MISMATCH,
                          f"settlement {row.id} is still submitted in the ledger, but its transaction {outcome} "
                          f"in block {receipt.block_number}", row=row, block_number=receipt.block_number,
                          expected="confirmed" if receipt.status == 1 else "failed", actual=state.value)

    def _settled_without_payment(self, row: Settlement, receipt: Receipt | None) -> None:
        missing = DiscrepancyKind.MISSING_ON_CHAIN
        if not row.tx_hash:
            self._add(missing, f"settlement {row.id} is {row.state} but records no transaction", row=row,
                      expected="a transaction", actual=None)
        elif receipt is None:
            self._add(missing, f"settlement {row.id} is {row.state}, but the chain does not know its transaction "
                               f"{row.tx_hash}", row=row, expected="mined", actual="unknown")
        elif receipt.status != 1:
            self._add(missing, f"settlement {row.id} is {row.state}, but its transaction {row.tx_hash} reverted "
                               f"in block {receipt.block_number}: no money moved", row=row,
                      block_number=receipt.block_number, expected="succeeded", actual="reverted")
        elif not self._from <= receipt.block_number <= self._to:
            self._add(DiscrepancyKind.BLOCK_MISMATCH,
                      f"settlement {row.id} records block {row.block_number}, but its transaction was mined in "
                      f"block {receipt.block_number}", row=row, block_number=receipt.block_number,
                      expected=str(row.block_number), actual=str(receipt.block_number))
        else:
            self._add(missing, f"settlement {row.id} is {row.state}, but its transaction {row.tx_hash} used no "
                               f"authorization of {row.payer} / {row.nonce}", row=row,
                      block_number=receipt.block_number, expected="AuthorizationUsed + Transfer", actual="none")

    def _compare_fields(self, row: Settlement, payment: ChainPayment) -> None:
        used, transfer = payment.used, payment.transfer
        if used.authorizer.lower() != row.payer.lower():
            self._add(DiscrepancyKind.PAYER_MISMATCH,
                      f"settlement {row.id} says {row.payer} paid, the chain says {used.authorizer}",
                      row=row, payment=payment, expected=row.payer, actual=used.authorizer)
        if used.nonce.lower() != row.nonce.lower():
            self._add(DiscrepancyKind.NONCE_MISMATCH,
                      f"settlement {row.id} records nonce {row.nonce}, the chain used {used.nonce}",
                      row=row, payment=payment, expected=row.nonce, actual=used.nonce)
        if transfer is None:
            self._add(DiscrepancyKind.MISSING_ON_CHAIN,
                      f"settlement {row.id}: the authorization was used in {payment.tx_hash} but no Transfer from "
                      f"{used.authorizer} came with it", row=row, payment=payment,
                      expected=_atomic(row.value), actual=None)
        else:
            if transfer.value != row.value:
                self._add(DiscrepancyKind.AMOUNT_MISMATCH,
                          f"settlement {row.id} records {self._amount(row.value, row.asset)}, the chain moved "
                          f"{self._amount(transfer.value, transfer.token)}", row=row, payment=payment,
                          expected=_atomic(row.value), actual=_atomic(transfer.value))
            if transfer.recipient.lower() != row.payee.lower():
                self._add(DiscrepancyKind.PAYEE_MISMATCH,
                          f"settlement {row.id} says {row.payee} was paid, the chain paid {transfer.recipient}",
                          row=row, payment=payment, expected=row.payee, actual=transfer.recipient)
        if (row.tx_hash or "").lower() != payment.tx_hash:
            self._add(DiscrepancyKind.TX_MISMATCH,
                      f"settlement {row.id} records transaction {row.tx_hash}, but {payment.tx_hash} used its "
                      f"authorization", row=row, payment=payment, tx_hash=payment.tx_hash,
                      expected=row.tx_hash, actual=payment.tx_hash)
        elif row.block_number != used.block_number or (row.block_hash or "").lower() != used.block_hash:
            self._add(DiscrepancyKind.BLOCK_MISMATCH,
                      f"settlement {row.id} records block {row.block_number} ({row.block_hash}), the chain has its "
                      f"transaction in block {used.block_number} ({used.block_hash})", row=row, payment=payment,
                      expected=f"{row.block_number}:{row.block_hash}", actual=f"{used.block_number}:{used.block_hash}")

    def _check_payment(self, payment: ChainPayment, row: Settlement | None, sender: TransactionInfo | None) -> None:
        used = payment.used
        moved = (f"{self._amount(payment.transfer.value, payment.transfer.token)} from {used.authorizer} to "
                 f"{payment.transfer.recipient}") if payment.transfer else f"an authorization of {used.authorizer}"
        if sender is None or sender.sender.lower() not in self._signers:
            by = sender.sender if sender else "an unknown sender"
            self._add(DiscrepancyKind.OUTSIDE_SERVICE,
                      f"transaction {payment.tx_hash} sent by {by}, not one of our signers, used {moved} "
                      f"(nonce {used.nonce})", row=row, payment=payment, tx_hash=payment.tx_hash,
                      block_number=used.block_number, expected="one of our signers",
                      actual=sender.sender if sender else None)
        elif row is None:
            self._add(DiscrepancyKind.MISSING_IN_LEDGER,
                      f"our signer {sender.sender} settled {moved} in transaction {payment.tx_hash} (block "
                      f"{used.block_number}), but the ledger has no settlement for nonce {used.nonce}",
                      payment=payment, expected="a settlement row",
                      actual=_atomic(payment.transfer.value) if payment.transfer else None)


def _row_key(row: Settlement) -> tuple[str, str, str]:
    return (row.asset.lower(), row.payer.lower(), row.nonce.lower())
