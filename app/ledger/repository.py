"""SQL for the registry side of the ledger: agents and capabilities, and attribution lookups."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.db.clock import utc_now
from app.db.errors import DuplicateError
from app.ledger.models import UNREGISTERED, Agent, Capability, CapabilityStatus


@dataclass(frozen=True)
class Attribution:
    """Who a payment is booked to. Copied onto the settlement and its journal lines."""

    agent_id: str = UNREGISTERED
    team: str = UNREGISTERED
    cost_center: str = UNREGISTERED
    capability_id: str = UNREGISTERED
    provider: str = UNREGISTERED


class AgentRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, agent: Agent) -> Agent:
        with Session(self._engine, expire_on_commit=False) as session:
            session.add(agent)
            try:
                session.commit()
            except IntegrityError:
                raise DuplicateError(f"an agent with id {agent.agent_id!r} or wallet {agent.wallet} exists") from None
            return agent

    def upsert(self, agent: Agent) -> bool:
        """Insert, or update the agent with the same agent_id; True when it was new."""
        with Session(self._engine, expire_on_commit=False) as session:
            existing = session.exec(select(Agent).where(Agent.agent_id == agent.agent_id)).scalar_one_or_none()
            if existing is None:
                session.add(agent)
            else:
                for field in ("wallet", "name", "team", "cost_center", "owner", "labels"):
                    setattr(existing, field, getattr(agent, field))
            try:
                session.commit()
            except IntegrityError:
                raise DuplicateError(f"wallet {agent.wallet} belongs to another agent") from None
            return existing is None

    def by_wallet(self, wallet: str) -> Agent | None:
        with Session(self._engine) as session:
            return session.exec(select(Agent).where(Agent.wallet == wallet)).scalar_one_or_none()

    def list(self) -> list[Agent]:
        with Session(self._engine) as session:
            return list(session.exec(select(Agent).order_by(Agent.agent_id)).scalars())


class CapabilityRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, capability_id: str) -> Capability | None:
        with Session(self._engine) as session:
            return session.get(Capability, capability_id)

    def upsert(self, capability: Capability) -> bool:
        """Insert, or replace the capability with the same id; True when it was new."""
        with Session(self._engine, expire_on_commit=False) as session:
            existing = session.get(Capability, capability.id)
            if existing is None:
                session.add(capability)
            else:
                for field in Capability.model_fields:
                    if field not in ("id", "created_at"):
                        setattr(existing, field, getattr(capability, field))
                existing.updated_at = utc_now()
            session.commit()
            return existing is None

    def set_status(self, capability_id: str, status: CapabilityStatus) -> bool:
        with Session(self._engine) as session:
            existing = session.get(Capability, capability_id)
            if existing is None:
                return False
            existing.status = status.value
            existing.updated_at = utc_now()
            session.commit()
            return True

    def list(self, *, status: CapabilityStatus | None = None, provider_team: str | None = None) -> list[Capability]:
        statement = select(Capability).order_by(Capability.id)
        if status is not None:
            statement = statement.where(Capability.status == status.value)
        if provider_team is not None:
            statement = statement.where(Capability.provider_team == provider_team)
        with Session(self._engine) as session:
            return list(session.exec(statement).scalars())

    def paid_to(self, pay_to: str, network: str, asset: str) -> list[Capability]:
        statement = select(Capability).where(
            Capability.pay_to == pay_to, Capability.network == network, Capability.asset == asset
        )
        with Session(self._engine) as session:
            return list(session.exec(statement).scalars())


class AttributionResolver:
    """Finds the agent (by payer wallet) and the capability (by payee, then resource) of a payment."""

    def __init__(self, engine: Engine) -> None:
        self._agents = AgentRepository(engine)
        self._capabilities = CapabilityRepository(engine)

    def resolve(
        self, *, payer: str, payee: str, network: str, asset: str, value: int,
        resource_url: str | None = None, capability_hint: str | None = None,
    ) -> Attribution:
        agent = self._agents.by_wallet(payer)
        capability = _pick_capability(self._capabilities.paid_to(payee, network, asset), value, resource_url,
                                      capability_hint)
        return Attribution(
            agent_id=agent.agent_id if agent else UNREGISTERED,
            team=agent.team if agent else UNREGISTERED,
            cost_center=agent.cost_center if agent else UNREGISTERED,
            capability_id=capability.id if capability else UNREGISTERED,
            provider=capability.provider_team if capability else UNREGISTERED,
        )


def _pick_capability(
    candidates: list[Capability], value: int, resource_url: str | None, hint: str | None
) -> Capability | None:
    """The one capability this payment is for, or None when it cannot be told apart.

    Only capabilities paid to the payee qualify, so a hint or a URL can never book a payment to
    another provider. Then, in order: the explicit capability id, the route the resource URL names
    (``/cap/<id>/...`` or the capability's own route), a single candidate, a single one at this price.
    """
    if hint:
        for capability in candidates:
            if capability.id == hint:
                return capability
    if resource_url:
        path = urlparse(resource_url).path or "/"
        by_route = [c for c in candidates if _serves(c, path)]
        if len(by_route) == 1:
            return by_route[0]
    if len(candidates) == 1:
        return candidates[0]
    priced = [c for c in candidates if c.price == value]
    return priced[0] if len(priced) == 1 else None


def _serves(capability: Capability, path: str) -> bool:
    if path == f"/cap/{capability.id}" or path.startswith(f"/cap/{capability.id}/"):
        return True
    route = (capability.route or "").rstrip("/")
    return bool(route) and (path == route or path.startswith(route + "/"))
