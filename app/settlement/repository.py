"""SQL for settlements and signer nonces: the only place that touches these tables.

Every state change is one conditional UPDATE (``WHERE state IN (...)``); a result of zero rows
means another request, thread or replica owns the row, and the caller must re-read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.db.clock import utc_now
from app.db.engine import write_connection, write_session
from app.settlement.journal import reversal_of, settlement_lines
from app.settlement.models import SUCCESS_STATES, JournalLine, Settlement, SettlementState, SignerNonce


@dataclass(frozen=True)
class AuthorizationKey:
    """The natural key of an EIP-3009 authorization: at most one settlement row per key."""

    network: str
    asset: str  # checksummed
    payer: str  # checksummed
    nonce: str  # 0x + 64 lowercase hex


class SettlementRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def find(self, key: AuthorizationKey) -> Settlement | None:
        with Session(self._engine) as session:
            return session.exec(
                select(Settlement).where(
                    Settlement.network == key.network,
                    Settlement.asset == key.asset,
                    Settlement.payer == key.payer,
                    Settlement.nonce == key.nonce,
                )
            ).scalar_one_or_none()

    def get(self, settlement_id: int) -> Settlement | None:
        with Session(self._engine) as session:
            return session.get(Settlement, settlement_id)

    def create(self, settlement: Settlement) -> Settlement | None:
        """Insert a new row; None when the authorization is already recorded (someone else owns it)."""
        statement = insert(Settlement).values(**settlement.model_dump(exclude={"id"})).returning(Settlement.id)
        try:
            with write_connection(self._engine) as connection:
                settlement.id = connection.execute(statement).scalar_one()
        except IntegrityError:
            return None
        return settlement

    def transition(
        self,
        settlement_id: int,
        *,
        from_states: Iterable[SettlementState],
        to_state: SettlementState,
        **changes: object,
    ) -> bool:
        """Move one row from any of ``from_states`` to ``to_state``; False when it was not in them."""
        now = utc_now()
        timestamps: dict[str, object] = {"updated_at": now}
        stamp_field = {
            SettlementState.SUBMITTED: "submitted_at",
            SettlementState.CONFIRMED: "confirmed_at",
            SettlementState.FINALIZED: "finalized_at",
            SettlementState.FAILED: "failed_at",
            SettlementState.EXPIRED: "failed_at",
        }.get(to_state)
        if stamp_field:
            timestamps[stamp_field] = now
        statement = (
            update(Settlement)
            .where(Settlement.id == settlement_id, Settlement.state.in_([s.value for s in from_states]))
            .values(state=to_state.value, **timestamps, **changes)
        )
        with write_connection(self._engine) as connection:
            return connection.execute(statement).rowcount == 1

    def confirmed_through(self, network: str, block_number: int, *, after_id: int = 0, limit: int
                          ) -> list[Settlement]:
        """Confirmed settlements on ``network`` mined at or below ``block_number``, by id after ``after_id``
        (a cursor: rows a pass leaves confirmed are not read again by the same pass)."""
        statement = (
            select(Settlement)
            .where(Settlement.network == network, Settlement.state == SettlementState.CONFIRMED.value,
                   Settlement.block_number <= block_number, Settlement.id > after_id)
            .order_by(Settlement.id)
            .limit(limit)
        )
        with Session(self._engine) as session:
            return list(session.exec(statement).scalars().all())

    def confirm(self, settlement_id: int, **block: object) -> bool:
        """submitted -> confirmed and the journal lines, in ONE transaction: the ledger never shows a
        confirmed settlement without its money, nor money without its settlement."""
        now = utc_now()
        statement = (
            update(Settlement)
            .where(Settlement.id == settlement_id, Settlement.state == SettlementState.SUBMITTED.value)
            .values(state=SettlementState.CONFIRMED.value, confirmed_at=now, updated_at=now, **block)
            .returning(*Settlement.__table__.columns)
        )
        with write_connection(self._engine) as connection:
            confirmed = connection.execute(statement).one_or_none()
            if confirmed is None:  # not submitted (any more): someone else confirmed or failed it
                return False
            lines = settlement_lines(Settlement(**confirmed._mapping))
            connection.execute(insert(JournalLine), [line.model_dump(exclude={"id"}) for line in lines])
            return True

    def reverse(self, settlement_id: int, *, to_state: SettlementState, reason: str, memo: str) -> bool:
        """Undo a confirmed settlement (e.g. its block was reorged away or reconciliation found it
        reverted): move it to ``to_state`` and book a reversing line for each of its lines, atomically."""
        now = utc_now()
        statement = (
            update(Settlement)
            .where(Settlement.id == settlement_id,
                   Settlement.state.in_([s.value for s in SUCCESS_STATES]))
            .values(state=to_state.value, error_reason=reason, error_message=memo, failed_at=now, updated_at=now)
        )
        with write_session(self._engine) as session:
            if session.exec(statement).rowcount != 1:
                session.rollback()
                return False
            originals = session.exec(
                select(JournalLine).where(JournalLine.settlement_id == settlement_id,
                                          JournalLine.reverses_id.is_(None))
            ).scalars().all()
            session.add_all([reversal_of(line, memo) for line in originals])
            session.commit()
            return True

    def in_states(self, states: Iterable[SettlementState], limit: int = 1000) -> list[Settlement]:
        with Session(self._engine) as session:
            return list(
                session.exec(
                    select(Settlement)
                    .where(Settlement.state.in_([s.value for s in states]))
                    .order_by(Settlement.id)
                    .limit(limit)
                ).scalars()
            )


def _insert_with_on_conflict(dialect: str) -> Callable[..., Any]:
    """The backend's INSERT that supports ON CONFLICT, imported when first used: each dialect module
    costs megabytes of memory that a service on the other backend never needs."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class SignerNonceRepository:
    """Transaction nonces of the facilitator's hot wallets, allocated from the database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def raise_floor(self, network: str, address: str, chain_nonce: int) -> int:
        """Make ``next_nonce`` at least ``chain_nonce`` (the chain's pending count); returns it.

        Never lowers it: a lower chain count means our own transactions are still in flight.
        """
        dialect = self._engine.dialect.name
        insert = _insert_with_on_conflict(dialect)
        greatest = func.greatest if dialect == "postgresql" else func.max
        statement = insert(SignerNonce).values(
            network=network, address=address, next_nonce=chain_nonce, updated_at=utc_now()
        )
        statement = statement.on_conflict_do_update(
            index_elements=["network", "address"],
            set_={"next_nonce": greatest(SignerNonce.next_nonce, statement.excluded.next_nonce),
                  "updated_at": statement.excluded.updated_at},
        ).returning(SignerNonce.next_nonce)
        with write_connection(self._engine) as connection:
            return int(connection.execute(statement).scalar_one())

    def allocate(self, network: str, address: str) -> int:
        """Hand out the next nonce exactly once (one atomic UPDATE ... RETURNING)."""
        statement = (
            update(SignerNonce)
            .where(SignerNonce.network == network, SignerNonce.address == address)
            .values(next_nonce=SignerNonce.next_nonce + 1, updated_at=utc_now())
            .returning(SignerNonce.next_nonce)
        )
        with write_connection(self._engine) as connection:
            value = connection.execute(statement).scalar_one_or_none()
        if value is None:
            raise LookupError(f"signer {address} on {network} has no nonce row: call raise_floor first")
        return int(value) - 1

    def give_back(self, network: str, address: str, nonce: int) -> bool:
        """Return an unused nonce if it is still the latest one handed out; False leaves a gap to fill."""
        statement = (
            update(SignerNonce)
            .where(SignerNonce.network == network, SignerNonce.address == address,
                   SignerNonce.next_nonce == nonce + 1)
            .values(next_nonce=nonce, updated_at=utc_now())
        )
        with write_connection(self._engine) as connection:
            return connection.execute(statement).rowcount == 1
