"""The registry's rules, in one place for the HTTP routes and the command line.

- Ownership: a provider key writes only its own team's capabilities (the repository checks the team
  and writes in one transaction); an admin, or the operator at the command line, writes any.
- Approval: making a capability payable is a review, so only an admin approves. A provider may
  list (pending), re-price, suspend or re-open its own capabilities.
- An agent's wallet belongs to one agent: a clash is a 409 naming the holder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.db.errors import DuplicateError
from app.errors import Forbidden, NotFound
from app.registry.models import Agent, Capability, CapabilityStatus
from app.registry.repository import OwnedByAnotherTeam, RegistryRepository
from app.registry.validation import Rejection, check_agent_batch


@dataclass(frozen=True)
class RegistryWriter:
    """Who writes: an admin (any team) or a provider key, limited to its own team."""

    name: str
    is_admin: bool
    provider_team: str | None = None

    @classmethod
    def operator(cls) -> RegistryWriter:
        """Whoever runs the command line on the ledger's host: an admin."""
        return cls(name="command line", is_admin=True)

    def team_limit(self) -> str | None:
        """None for an admin (any team); the provider team for a provider key."""
        if self.is_admin:
            return None
        if not self.provider_team:
            raise Forbidden(f"the key {self.name!r} has the provider scope but no provider team")
        return self.provider_team


class NotOwner(Forbidden):
    """A provider key wrote a capability of another provider team."""

    def __init__(self, writer: RegistryWriter, error: OwnedByAnotherTeam) -> None:
        super().__init__(f"the key {writer.name!r} writes for provider team {writer.provider_team!r}; "
                         f"capability {error.capability_id!r} belongs to team {error.team!r}")


class ApprovalByAdminOnly(Forbidden):
    """A provider key tried to make a capability payable."""

    def __init__(self, writer: RegistryWriter) -> None:
        super().__init__(f"the key {writer.name!r} cannot approve a capability: an admin approves; "
                         "submit it as pending")


class RegistryService:
    def __init__(self, repository: RegistryRepository) -> None:
        self._repository = repository

    # ------------------------------------------------------------------------------ capabilities

    def capability(self, capability_id: str) -> Capability | None:
        return self._repository.capability(capability_id)

    def list_capabilities(
        self, *, status: CapabilityStatus | None = None, provider_team: str | None = None
    ) -> list[Capability]:
        return self._repository.list_capabilities(status=status, provider_team=provider_team)

    def put_capability(self, capability: Capability, writer: RegistryWriter) -> tuple[Capability, bool]:
        """Create or replace; True when created. A provider keeps an approved capability approved but
        cannot approve a new or unapproved one."""
        team = writer.team_limit()
        if team is not None and capability.status == CapabilityStatus.APPROVED:
            existing = self._repository.capability(capability.id)
            if existing is None or existing.status != CapabilityStatus.APPROVED:
                raise ApprovalByAdminOnly(writer)
        try:
            return self._repository.put_capability(capability, team=team)
        except OwnedByAnotherTeam as error:
            raise NotOwner(writer, error) from None

    def set_capability_status(self, capability_id: str, status: CapabilityStatus, writer: RegistryWriter
                              ) -> Capability:
        team = writer.team_limit()
        if team is not None and status == CapabilityStatus.APPROVED:
            raise ApprovalByAdminOnly(writer)
        try:
            row = self._repository.set_capability_status(capability_id, status, team=team)
        except OwnedByAnotherTeam as error:
            raise NotOwner(writer, error) from None
        if row is None:
            raise NotFound(f"no capability {capability_id!r}")
        return row

    def import_capabilities(self, capabilities: Iterable[Capability], on_row: Callable[[], None] | None = None
                            ) -> tuple[int, int]:
        """Create or replace every capability in one transaction (the operator's import); (created, updated)."""
        return self._repository.upsert_capabilities(capabilities, on_row=on_row)

    # ------------------------------------------------------------------------------------ agents

    def list_agents(self) -> list[Agent]:
        return self._repository.list_agents()

    def add_agent(self, agent: Agent) -> Agent:
        """Register a new agent; a taken agent id or wallet is a 409 that names the holder."""
        try:
            return self._repository.add_agent(agent)
        except DuplicateError:
            holder = self._repository.agent_by_wallet(agent.wallet)
            if holder is not None and holder.agent_id != agent.agent_id:
                raise DuplicateError(f"wallet: {agent.wallet} is already registered to agent "
                                     f"{holder.agent_id!r}") from None
            raise DuplicateError(f"agent_id: {agent.agent_id!r} is already registered "
                                 "(use `agents import` to update it)") from None

    def put_agent(self, agent: Agent) -> tuple[Agent, bool]:
        """Create or update by agent id; True when created."""
        created, _ = self._repository.upsert_agents([agent])
        stored = self._repository.agent_by_wallet(agent.wallet)
        return stored or agent, created == 1

    def agent_import_collisions(self, rows: list[tuple[int, Agent]]) -> list[Rejection]:
        """Rows of an import that would collide with each other or with the registry once applied."""
        return check_agent_batch(rows, self._repository.list_agents())

    def import_agents(self, agents: Iterable[Agent], on_row: Callable[[], None] | None = None) -> tuple[int, int]:
        """Create or update every agent in one transaction; (created, updated)."""
        return self._repository.upsert_agents(agents, on_row=on_row)
