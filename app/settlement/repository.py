"""SQL for settlements, signer nonces and the journal's booking: the only place that writes these tables.

Every state change is a named transition (``mark_submitted``, ``mark_confirmed``, ...) from the table in
``app.settlement.models.TRANSITIONS``: one conditional UPDATE (``WHERE state IN (...)``); a result of zero rows
means another request, thread or replica owns the row, and the caller must re-read it. Journal lines are
appended to the hash chain by ``_book`` only, in the transaction of the transition that books them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Update
from sqlmodel import Session

from app.db.clock import utc_now
from app.db.engine import write_connection
from app.settlement.journal import reversal_of, seal, settlement_lines
from app.settlement.models import (
    JOURNAL_HEAD_ID,
    STATE_STAMPS,
    SUCCESS_STATES,
    TRANSITIONS,
    GasSpend,
    JournalHead,
    JournalLine,
    Settlement,
    SettlementState,
    SignerNonce,
    Transition,
)


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

    # --------------------------------------------------------------------------- leases, answers

    def renew_lease(self, settlement_id: int, *, owner: str, until: datetime) -> bool:
        """Extend ``owner``'s lease on a verified row; False when the row is no longer verified or ours."""
        statement = (
            update(Settlement)
            .where(Settlement.id == settlement_id, Settlement.state == SettlementState.VERIFIED.value,
                   Settlement.lease_owner == owner)
            .values(lease_until=until, updated_at=utc_now())
        )
        with write_connection(self._engine) as connection:
            return connection.execute(statement).rowcount == 1

    def take_over(self, settlement_id: int, *, owner: str, now: datetime, until: datetime) -> bool:
        """Take a verified row whose lease has expired (its owner died or gave up); one taker wins."""
        statement = (
            update(Settlement)
            .where(Settlement.id == settlement_id, Settlement.state == SettlementState.VERIFIED.value,
                   or_(Settlement.lease_until.is_(None), Settlement.lease_until < now))
            .values(lease_owner=owner, lease_until=until, updated_at=utc_now())
        )
        with write_connection(self._engine) as connection:
            return connection.execute(statement).rowcount == 1

    def claim_answer(self, settlement_id: int) -> bool:
        """Record that success is being answered for this settlement; True for exactly one caller, ever."""
        statement = (
            update(Settlement)
            .where(Settlement.id == settlement_id,
                   Settlement.state.in_(sorted(state.value for state in SUCCESS_STATES)),
                   Settlement.answered_at.is_(None))
            .values(answered_at=utc_now())
        )
        with write_connection(self._engine) as connection:
            return connection.execute(statement).rowcount == 1

    def holding_nonces(self, network: str, signer: str, first: int, last: int) -> dict[int, Settlement]:
        """The rows of ``signer`` on ``network`` whose transaction nonce is in ``[first, last]``, by nonce."""
        statement = select(Settlement).where(
            Settlement.network == network, Settlement.signer == signer,
            Settlement.tx_nonce >= first, Settlement.tx_nonce <= last,
        )
        with Session(self._engine) as session:
            return {row.tx_nonce: row for row in session.exec(statement).scalars() if row.tx_nonce is not None}

    def oldest_submitted(self, network: str, signer: str) -> Settlement | None:
        """The longest-waiting submitted row of ``signer`` (the one a stuck queue shows first)."""
        statement = (
            select(Settlement)
            .where(Settlement.network == network, Settlement.signer == signer,
                   Settlement.state == SettlementState.SUBMITTED.value)
            .order_by(Settlement.submitted_at)
            .limit(1)
        )
        with Session(self._engine) as session:
            return session.exec(statement).scalars().first()

    # ------------------------------------------------------------------------ named transitions

    def mark_submitted(self, settlement_id: int, *, signer: str, tx_nonce: int, tx_hash: str,
                       raw_transaction: str) -> bool:
        """verified -> submitted, storing the signed transaction before it is broadcast (so a crash after
        this never loses its hash, and a restart can resend it); False when someone else moved the row.

        Only with the nonce allocated to the row (``SignerNonceRepository.allocate_to``): a transaction
        of this authorization under any other nonce could be mined beside the first.
        """
        statement = self._statement(settlement_id, Transition.SUBMIT, tx_hash=tx_hash,
                                    raw_transaction=raw_transaction)
        statement = statement.where(Settlement.signer == signer, Settlement.tx_nonce == tx_nonce)
        with write_connection(self._engine) as connection:
            return connection.execute(statement).rowcount == 1

    def mark_confirmed(self, settlement_id: int, *, block_number: int, block_hash: str | None = None,
                       gas_used: int | None = None, effective_gas_price: int | None = None,
                       booked_at: datetime | None = None) -> bool:
        """submitted -> confirmed and the journal lines, in ONE transaction: the ledger never shows a
        confirmed settlement without its money, nor money without its settlement.

        ``booked_at`` is the moment the lines are booked at (default: now); history is given its moment
        here, never by rewriting lines afterwards (the database refuses that, and the chain would show it).
        """
        statement = self._statement(
            settlement_id, Transition.CONFIRM, block_number=block_number, block_hash=block_hash,
            gas_used=gas_used, effective_gas_price=effective_gas_price,
        ).returning(*Settlement.__table__.columns)
        with write_connection(self._engine) as connection:
            confirmed = connection.execute(statement).one_or_none()
            if confirmed is None:  # not submitted (any more): someone else confirmed or failed it
                return False
            _book(connection, settlement_lines(Settlement(**confirmed._mapping), booked_at))
            return True

    def mark_failed(self, settlement_id: int, *, reason: str, message: str, **block: object) -> bool:
        """verified | submitted -> failed (never sent, refused, or reverted: ``block`` then says where)."""
        return self._move(settlement_id, Transition.FAIL, error_reason=reason, error_message=message, **block)

    def mark_expired(self, settlement_id: int, *, reason: str, message: str) -> bool:
        """verified -> expired: the authorization's window closed before anyone sent it."""
        return self._move(settlement_id, Transition.EXPIRE, error_reason=reason, error_message=message)

    def mark_finalized(self, settlement_id: int) -> bool:
        """confirmed -> finalized."""
        return self._move(settlement_id, Transition.FINALIZE)

    def mark_reversed(self, settlement_id: int, *, reason: str, memo: str, booked_at: datetime | None = None
                      ) -> bool:
        """confirmed | finalized -> failed, with a reversing line for each of its journal lines, atomically
        (e.g. its block was reorganised away, or reconciliation found it reverted). The reversals are
        booked at ``booked_at`` (default: now)."""
        statement = self._statement(settlement_id, Transition.REVERSE, error_reason=reason, error_message=memo)
        originals = (
            select(*JournalLine.__table__.columns)
            .where(JournalLine.settlement_id == settlement_id, JournalLine.reverses_id.is_(None))
            .order_by(JournalLine.id)
        )
        with write_connection(self._engine) as connection:
            if connection.execute(statement).rowcount != 1:
                return False
            lines = [JournalLine(**row._mapping) for row in connection.execute(originals)]
            _book(connection, [reversal_of(line, memo, booked_at) for line in lines])
            return True

    def _move(self, settlement_id: int, transition: Transition, **changes: object) -> bool:
        with write_connection(self._engine) as connection:
            return connection.execute(self._statement(settlement_id, transition, **changes)).rowcount == 1

    @staticmethod
    def _statement(settlement_id: int, transition: Transition, **changes: object) -> Update:
        """The one conditional UPDATE of ``transition``: zero rows means the row was not in a source state."""
        sources, target = TRANSITIONS[transition]
        now = utc_now()
        stamps = {"updated_at": now, STATE_STAMPS[target]: now}
        return (
            update(Settlement)
            .where(Settlement.id == settlement_id, Settlement.state.in_(sorted(state.value for state in sources)))
            .values(state=target.value, **stamps, **changes)
        )

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


def _book(connection: Connection, lines: list[JournalLine]) -> None:
    """Append ``lines`` to the journal's hash chain, in the caller's transaction (the state change's).

    The journal head is read with ``SELECT ... FOR UPDATE``: on PostgreSQL a concurrent booking (another
    thread or replica) waits on that row until this transaction ends, then reads the head this one wrote,
    so two bookings never link to the same previous line. On SQLite ``FOR UPDATE`` renders as nothing and
    is not needed: the transition's UPDATE already holds the database's single write lock (and
    ``writer_turn`` queues this process's writers), so no other booking runs until this one commits.
    Line ids are handed out under the same lock, so id order is chain order.
    """
    if not lines:
        return
    head = select(JournalHead.chain_hash).where(JournalHead.id == JOURNAL_HEAD_ID).with_for_update()
    end = seal(lines, connection.execute(head).scalar_one())
    rows = [line.model_dump(exclude={"id"}) for line in lines]
    returning = insert(JournalLine).returning(JournalLine.id, sort_by_parameter_order=True)
    ids = list(connection.execute(returning, rows).scalars())
    if ids != sorted(ids):  # never seen; but the chain would then disagree with id order, so refuse
        raise RuntimeError(f"journal lines got ids {ids} out of booking order")
    connection.execute(
        update(JournalHead).where(JournalHead.id == JOURNAL_HEAD_ID)
        .values(last_line_id=ids[-1], chain_hash=end, updated_at=utc_now())
    )


def _insert_with_on_conflict(dialect: str) -> Callable[..., Any]:
    """The backend's INSERT that supports ON CONFLICT, imported when first used: each dialect module
    costs megabytes of memory that a service on the other backend never needs."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class _NotAssigned(Exception):
    """The settlement could not take the nonce: undo its allocation."""


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
        """Hand out the next nonce exactly once (one atomic UPDATE ... RETURNING), for a transaction that
        belongs to no settlement (a gap filler)."""
        with write_connection(self._engine) as connection:
            return self._next(connection, network, address)

    def allocate_to(self, settlement_id: int, network: str, address: str) -> int | None:
        """Hand out the next nonce to a verified settlement that has none, in ONE transaction: the row
        carries its nonce from the moment the nonce exists, so a crash can never leave an allocated nonce
        that nobody can account for. None (and no nonce used) when the row is not verified or already has one.
        """
        try:
            with write_connection(self._engine) as connection:
                nonce = self._next(connection, network, address)
                assigned = connection.execute(
                    update(Settlement)
                    .where(Settlement.id == settlement_id, Settlement.state == SettlementState.VERIFIED.value,
                           Settlement.tx_nonce.is_(None))
                    .values(signer=address, tx_nonce=nonce, updated_at=utc_now())
                ).rowcount
                if assigned != 1:
                    raise _NotAssigned  # rolls the transaction back: the nonce was never handed out
                return nonce
        except _NotAssigned:
            return None

    def next_nonce(self, network: str, address: str) -> int | None:
        """The next nonce the database would hand out; None when it never handed one out."""
        statement = select(SignerNonce.next_nonce).where(SignerNonce.network == network,
                                                         SignerNonce.address == address)
        with Session(self._engine) as session:
            value = session.exec(statement).scalar_one_or_none()
        return None if value is None else int(value)

    @staticmethod
    def _next(connection: Connection, network: str, address: str) -> int:
        statement = (
            update(SignerNonce)
            .where(SignerNonce.network == network, SignerNonce.address == address)
            .values(next_nonce=SignerNonce.next_nonce + 1, updated_at=utc_now())
            .returning(SignerNonce.next_nonce)
        )
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


class GasSpendRepository:
    """What the hot wallets paid in gas per network and minute, for the hourly gas budget."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, network: str, minute: int, wei: int) -> None:
        dialect = self._engine.dialect.name
        insert = _insert_with_on_conflict(dialect)
        statement = insert(GasSpend).values(network=network, minute=minute, wei=wei)
        statement = statement.on_conflict_do_update(index_elements=["network", "minute"],
                                                    set_={"wei": GasSpend.wei + statement.excluded.wei})
        with write_connection(self._engine) as connection:
            connection.execute(statement)

    def since(self, network: str, minute: int) -> int:
        """Wei spent on ``network`` from ``minute`` on."""
        statement = select(func.coalesce(func.sum(GasSpend.wei), 0)).where(GasSpend.network == network,
                                                                           GasSpend.minute >= minute)
        with self._engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def in_flight(self, network: str) -> int:
        """Settlement transactions of ``network`` sent and not yet mined (their gas is not booked yet)."""
        statement = select(func.count()).select_from(Settlement).where(
            Settlement.network == network, Settlement.state == SettlementState.SUBMITTED.value)
        with self._engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())
