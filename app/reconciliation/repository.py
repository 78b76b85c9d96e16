"""SQL for reconciliation: which settlement rows a block range concerns, and which signers we used.

Read-only. Lists of hashes and keys are sent in slices so a long range never builds one enormous
statement (PostgreSQL and SQLite both cap the number of bound parameters).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.settlement.models import Settlement, SettlementState, SignerNonce

# The states whose rows claim something about the chain: sent, landed, or known to have failed.
CHECKED_STATES = (SettlementState.SUBMITTED, SettlementState.CONFIRMED, SettlementState.FINALIZED,
                  SettlementState.FAILED)
_SLICE = 400


def _slices(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for offset in range(0, len(values), _SLICE):
        yield values[offset:offset + _SLICE]


class ReconcileRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def rows_to_check(
        self,
        network: str,
        from_block: int,
        to_block: int,
        *,
        tx_hashes: Iterable[str] = (),
        authorizations: Iterable[tuple[str, str, str]] = (),
    ) -> list[Settlement]:
        """The rows of ``network`` that a reconciliation of ``[from_block, to_block]`` must look at, by id.

        - rows in a checked state whose recorded block is in the range;
        - rows (any state) whose transaction hash is one of ``tx_hashes`` (lowercase 0x-hex);
        - rows (any state) recording one of ``authorizations``: ``(asset, payer, nonce)``, asset and payer
          checksummed, nonce lowercase, so a used authorization finds its row even if the row's block or
          transaction is wrong.
        """
        found: dict[int, Settlement] = {}
        with Session(self._engine) as session:
            in_range = select(Settlement).where(
                Settlement.network == network,
                Settlement.state.in_([state.value for state in CHECKED_STATES]),
                Settlement.block_number >= from_block,
                Settlement.block_number <= to_block,
            )
            self._collect(session, in_range, found)
            for part in _slices(sorted(set(tx_hashes))):
                by_tx = select(Settlement).where(Settlement.network == network, Settlement.tx_hash.in_(part))
                self._collect(session, by_tx, found)
            for part in _slices(sorted(set(authorizations))):
                by_key = select(Settlement).where(
                    Settlement.network == network,
                    tuple_(Settlement.asset, Settlement.payer, Settlement.nonce).in_(part),
                )
                self._collect(session, by_key, found)
        return [found[key] for key in sorted(found)]

    @staticmethod
    def _collect(session: Session, statement: object, found: dict[int, Settlement]) -> None:
        for row in session.exec(statement).scalars():  # type: ignore[call-overload]
            assert row.id is not None
            found[row.id] = row

    def recorded_signers(self, network: str) -> set[str]:
        """Every facilitator wallet that ever sent a settlement of ``network``, as recorded on the rows."""
        statement = select(Settlement.signer).where(Settlement.network == network,
                                                    Settlement.signer.is_not(None)).distinct()
        with Session(self._engine) as session:
            return {str(signer) for signer in session.exec(statement).scalars()}  # type: ignore[call-overload]

    def submitted_before(self, network: str, moment: datetime) -> list[Settlement]:
        """Settlements of ``network`` sent before ``moment`` and still waiting for their receipt."""
        statement = (
            select(Settlement)
            .where(Settlement.network == network, Settlement.state == SettlementState.SUBMITTED.value,
                   Settlement.submitted_at < moment)
            .order_by(Settlement.id)
            .limit(_SLICE)
        )
        with Session(self._engine) as session:
            return list(session.exec(statement).scalars())

    def allocated_nonces(self, network: str) -> dict[str, int]:
        """Each hot wallet's next nonce as the ledger hands them out, on ``network``."""
        statement = select(SignerNonce.address, SignerNonce.next_nonce).where(SignerNonce.network == network)
        with Session(self._engine) as session:
            return {str(address): int(next_nonce) for address, next_nonce in session.exec(statement).all()}
