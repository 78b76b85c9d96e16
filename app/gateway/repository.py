"""SQL for payment claims and the answers kept for payment identifiers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.db.clock import utc_now
from app.db.engine import write_connection, write_session
from app.gateway.models import PaymentClaim, PaymentResponse


class ClaimRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim(self, claim: PaymentClaim) -> bool:
        """True when this request now owns the authorization; False when another request had it."""
        with write_session(self._engine) as session:
            session.add(claim)
            try:
                session.commit()
            except IntegrityError:
                return False
            return True

    def release(self, request_id: str) -> None:
        """Give the authorization back (the handler failed, nothing was settled): the agent may retry it."""
        with write_session(self._engine) as session:
            session.exec(delete(PaymentClaim).where(PaymentClaim.request_id == request_id))
            session.commit()


class PaymentResponseRepository:
    """The answer given to each payment that carried a payment identifier, keyed by that identifier."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def find(self, payment_id: str) -> PaymentResponse | None:
        with Session(self._engine) as session:
            return session.exec(select(PaymentResponse).where(PaymentResponse.payment_id == payment_id)
                                ).scalar_one_or_none()

    def begin(self, record: PaymentResponse) -> bool:
        """Record that this request now answers the identifier; False when another request recorded it first."""
        with write_session(self._engine) as session:
            session.add(record)
            try:
                session.commit()
            except IntegrityError:
                return False
            return True

    def take_over(self, payment_id: str, fingerprint: str, request_id: str, stale_before: datetime) -> bool:
        """Take over an identifier whose answer is gone or stale: an original that died in flight, or an
        answer kept longer than it is kept for. One request wins."""
        statement = (
            update(PaymentResponse)
            .where(PaymentResponse.payment_id == payment_id, PaymentResponse.fingerprint == fingerprint,
                   PaymentResponse.updated_at < stale_before)
            .values(request_id=request_id, complete=False, status=None, headers=None, body=None,
                    updated_at=utc_now(), created_at=utc_now())
        )
        with write_connection(self._engine) as connection:
            return connection.execute(statement).rowcount == 1

    def answer(self, payment_id: str, request_id: str, status: int, headers: list[list[str]], body: bytes | None
               ) -> None:
        """Keep the answer the request gave (``body`` None: too large to keep)."""
        statement = (
            update(PaymentResponse)
            .where(PaymentResponse.payment_id == payment_id, PaymentResponse.request_id == request_id)
            .values(complete=True, status=status, headers=headers, body=body, updated_at=utc_now())
        )
        with write_connection(self._engine) as connection:
            connection.execute(statement)

    def forget(self, payment_id: str, request_id: str) -> None:
        """Drop the record: the request was not served and nothing was charged, so the payment may come again."""
        statement = delete(PaymentResponse).where(PaymentResponse.payment_id == payment_id,
                                                  PaymentResponse.request_id == request_id)
        with write_connection(self._engine) as connection:
            connection.execute(statement)

    def purge(self, complete_before: datetime) -> int:
        """Drop answers kept longer than they are kept for; returns how many."""
        statement = delete(PaymentResponse).where(PaymentResponse.complete.is_(True),
                                                  PaymentResponse.updated_at < complete_before)
        with write_connection(self._engine) as connection:
            return connection.execute(statement).rowcount
