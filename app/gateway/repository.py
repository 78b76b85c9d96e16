"""SQL for payment claims."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.db.engine import write_session
from app.gateway.models import PaymentClaim


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
