"""SQL for the registry: agents and capabilities (the only place that touches these tables).

- Imports write every row in one transaction: either the whole file is in, or none of it.
- A provider's write of a capability checks the owning team and writes in the same transaction
  (the row is locked on PostgreSQL), so a capability cannot change hands between the check and
  the write. Who may write what is the service's rule; the repository only enforces the team it is
  given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.db.clock import utc_now
from app.db.errors import DuplicateError
from app.registry.models import Agent, Capability, CapabilityStatus

AGENT_UPDATABLE = ("wallet", "name", "team", "cost_center", "owner", "labels")


class OwnedByAnotherTeam(PermissionError):
    """The capability belongs to another provider team; ``team`` names the owner."""

    def __init__(self, capability_id: str, team: str) -> None:
        super().__init__(f"capability {capability_id!r} belongs to provider team {team!r}")
        self.capability_id = capability_id
        self.team = team


class RegistryRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------------------------ agents

    def add_agent(self, agent: Agent) -> Agent:
        """Insert a new agent; :class:`DuplicateError` when its id or wallet is taken."""
        with Session(self._engine, expire_on_commit=False) as session:
            session.add(agent)
            try:
                session.commit()
            except IntegrityError:
                raise DuplicateError(f"an agent with id {agent.agent_id!r} or wallet {agent.wallet} exists") from None
            return agent

    def upsert_agents(self, agents: Iterable[Agent], on_row: Callable[[], None] | None = None) -> tuple[int, int]:
        """Insert or update (by agent_id) every agent in one transaction; returns (created, updated).

        Raises :class:`DuplicateError` naming the wallet when the database refuses a row; then
        nothing is written.
        """
        created = updated = 0
        with Session(self._engine, expire_on_commit=False) as session:  # the caller keeps using its objects
            for agent in agents:
                existing = session.exec(select(Agent).where(Agent.agent_id == agent.agent_id)).scalar_one_or_none()
                if existing is None:
                    session.add(Agent(**{field: getattr(agent, field) for field in ("agent_id", *AGENT_UPDATABLE)}))
                    created += 1
                else:
                    for field in AGENT_UPDATABLE:
                        setattr(existing, field, getattr(agent, field))
                    updated += 1
                try:
                    session.flush()
                except IntegrityError:
                    session.rollback()
                    raise DuplicateError(
                        f"agent {agent.agent_id!r}: wallet {agent.wallet} belongs to another agent"
                    ) from None
                if on_row is not None:
                    on_row()
            session.commit()
        return created, updated

    def agent_by_wallet(self, wallet: str) -> Agent | None:
        with Session(self._engine) as session:
            return session.exec(select(Agent).where(Agent.wallet == wallet)).scalar_one_or_none()

    def list_agents(self) -> list[Agent]:
        with Session(self._engine) as session:
            return list(session.exec(select(Agent).order_by(Agent.agent_id)).scalars())

    # ------------------------------------------------------------------------------ capabilities

    def capability(self, capability_id: str) -> Capability | None:
        with Session(self._engine) as session:
            return session.get(Capability, capability_id)

    def list_capabilities(
        self, *, status: CapabilityStatus | None = None, provider_team: str | None = None
    ) -> list[Capability]:
        statement = select(Capability).order_by(Capability.id)
        if status is not None:
            statement = statement.where(Capability.status == status.value)
        if provider_team is not None:
            statement = statement.where(Capability.provider_team == provider_team)
        with Session(self._engine) as session:
            return list(session.exec(statement).scalars())

    def capabilities_paid_to(self, pay_to: str, network: str, asset: str) -> list[Capability]:
        statement = select(Capability).where(
            Capability.pay_to == pay_to, Capability.network == network, Capability.asset == asset
        )
        with Session(self._engine) as session:
            return list(session.exec(statement).scalars())

    def put_capability(self, capability: Capability, *, team: str | None = None) -> tuple[Capability, bool]:
        """Create or replace ``capability``; returns the stored row and True when it was new.

        With ``team`` (a provider's write), both the new capability and the one it replaces must
        belong to ``team``, else :class:`OwnedByAnotherTeam`; the check and the write are one transaction.
        """
        if team is not None and capability.provider_team != team:
            raise OwnedByAnotherTeam(capability.id, capability.provider_team)
        with Session(self._engine, expire_on_commit=False) as session:
            existing = session.get(Capability, capability.id, with_for_update=True)
            if team is not None and existing is not None and existing.provider_team != team:
                raise OwnedByAnotherTeam(capability.id, existing.provider_team)
            row, created = self._put(session, capability, existing)
            try:
                session.commit()
            except IntegrityError:
                raise DuplicateError(f"capability {capability.id!r} was created concurrently; retry") from None
        return row, created

    def upsert_capabilities(
        self, capabilities: Iterable[Capability], on_row: Callable[[], None] | None = None
    ) -> tuple[int, int]:
        """Insert or replace (by id) every capability in one transaction; returns (created, updated)."""
        created = updated = 0
        with Session(self._engine, expire_on_commit=False) as session:  # the caller keeps using its objects
            for capability in capabilities:
                if self._put(session, capability, session.get(Capability, capability.id))[1]:
                    created += 1
                else:
                    updated += 1
                if on_row is not None:
                    on_row()
            try:
                session.commit()
            except IntegrityError:
                raise DuplicateError("a capability was created concurrently; run the import again") from None
        return created, updated

    def set_capability_status(
        self, capability_id: str, status: CapabilityStatus, *, team: str | None = None
    ) -> Capability | None:
        """Set the status; None when there is no such capability; :class:`OwnedByAnotherTeam` when ``team``
        is given and is not the capability's provider team."""
        with Session(self._engine, expire_on_commit=False) as session:
            existing = session.get(Capability, capability_id, with_for_update=True)
            if existing is None:
                return None
            if team is not None and existing.provider_team != team:
                raise OwnedByAnotherTeam(capability_id, existing.provider_team)
            existing.status = status.value
            existing.updated_at = utc_now()
            session.commit()
            return existing

    @staticmethod
    def _put(session: Session, capability: Capability, existing: Capability | None) -> tuple[Capability, bool]:
        """Replace every field but id and created_at (a full replace, not a merge)."""
        if existing is None:
            session.add(capability)
            return capability, True
        for field in Capability.model_fields:
            if field not in ("id", "created_at", "updated_at"):
                setattr(existing, field, getattr(capability, field))
        existing.updated_at = utc_now()
        return existing, False
