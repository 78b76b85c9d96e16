"""Who a payment is booked to: the agent (by payer wallet) and the capability (by payee, then resource).

Resolved once, when the settlement is recorded, and copied onto its row and journal lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from app.registry.models import UNREGISTERED, Capability
from app.registry.repository import RegistryRepository


@dataclass(frozen=True)
class Attribution:
    """Who a payment is booked to. Copied onto the settlement and its journal lines."""

    agent_id: str = UNREGISTERED
    team: str = UNREGISTERED
    cost_center: str = UNREGISTERED
    capability_id: str = UNREGISTERED
    provider: str = UNREGISTERED


class AttributionResolver:
    """Finds the agent (by payer wallet) and the capability (by payee, then resource) of a payment."""

    def __init__(self, registry: RegistryRepository) -> None:
        self._registry = registry

    def resolve(
        self, *, payer: str, payee: str, network: str, asset: str, value: int,
        resource_url: str | None = None, capability_hint: str | None = None,
    ) -> Attribution:
        agent = self._registry.agent_by_wallet(payer)
        capability = _pick_capability(self._registry.capabilities_paid_to(payee, network, asset), value, resource_url,
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
