"""The agent's spend policy: what it may pay, to whom, and how much per payment, capability and day.

Every check runs BEFORE anything is signed. A refusal is a :class:`PolicyViolation` naming the limit and
by how much the payment would exceed it, or a :class:`NoPayableRequirement` when no offered requirement
is even of a kind this client can sign (EVM ``exact`` with an EIP-712 domain).

Units: all limits are integer counts of the token's atomic units (USDC: 6 decimals, so 10_000 is $0.01).
The daily and per-capability totals add the atomic amounts of every payment whatever its asset, so
keep ``allowed_assets`` to tokens of the same unit (e.g. USDC on the allowed networks).

Capabilities: a payment's *capability key* is ``requirements.extra.capabilityId`` when the server puts
one there (our gateway does), else the resource URL. A key of ``max_per_capability`` is either a
capability id (matched exactly) or, when it contains ``://``, a resource URL prefix (matched with
``startswith`` against the resource URL). Every matching key applies; its limit is a rolling-24 h total
for that capability, counting the payment being made.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.protocol import (
    PaymentRequirements,
    PaymentRequirementsV1,
    ProtocolError,
    normalize_network,
    parse_eip155,
    requirement_amount,
)

DAY_SECONDS = 24 * 60 * 60

LimitName = Literal["max_per_payment", "max_per_capability", "max_per_day", "network", "asset", "payee"]
AnyRequirements = PaymentRequirements | PaymentRequirementsV1

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
# How far a requirement got through the checks; a later stage is a "more relevant" refusal.
_STAGE: dict[str, int] = {"network": 1, "asset": 2, "payee": 3, "max_per_payment": 4, "max_per_capability": 5,
                          "max_per_day": 6}


# -------------------------------------------------------------------------------------------- errors


class ClientPaymentError(Exception):
    """Base of every error the paying client raises on its own (never a server's answer)."""


class PolicyViolation(ClientPaymentError):
    """The agent's own policy refuses a payment; raised before anything is signed.

    - ``limit``: which rule: ``max_per_payment``, ``max_per_capability``, ``max_per_day``, ``network``,
      ``asset`` or ``payee``;
    - ``requested``: the amount (atomic units) for amount limits, else the refused network/asset/payee;
    - ``allowed``: the limit (atomic units) or the allowed set;
    - ``excess``: by how many atomic units the payment would go over the limit (None for allow-lists);
    - ``already_spent``: for rolling limits, what the window already holds;
    - ``capability``: the capability key the payment was for (or the matching limit key).
    """

    def __init__(
        self,
        limit: LimitName,
        *,
        requested: int | str,
        allowed: int | frozenset[str],
        excess: int | None = None,
        already_spent: int | None = None,
        capability: str | None = None,
    ) -> None:
        self.limit = limit
        self.requested = requested
        self.allowed = allowed
        self.excess = excess
        self.already_spent = already_spent
        self.capability = capability
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.limit == "max_per_payment":
            return (f"spend policy max_per_payment: the payment of {self.requested} exceeds the limit of "
                    f"{self.allowed} by {self.excess}")
        if self.limit in ("max_per_capability", "max_per_day"):
            window = (f"capability {self.capability!r}" if self.limit == "max_per_capability"
                      else "all payments")
            return (f"spend policy {self.limit}: paying {self.requested} on top of {self.already_spent} already "
                    f"spent in the rolling 24 h ({window}) exceeds the limit of {self.allowed} by {self.excess}")
        shown = ", ".join(sorted(self.allowed)) if isinstance(self.allowed, frozenset) else str(self.allowed)
        return f"spend policy {self.limit}: {self.requested} is not allowed (allowed: {shown or 'none'})"


class NoPayableRequirement(ClientPaymentError):
    """None of the offered requirements is of a kind this client can pay; ``refusals`` says why for each."""

    def __init__(self, refusals: Sequence[str]) -> None:
        self.refusals = list(refusals)
        listed = "; ".join(f"accepts[{i}]: {why}" for i, why in enumerate(self.refusals)) or "accepts is empty"
        super().__init__(f"no payable requirement: {listed}")


# -------------------------------------------------------------------------------------------- policy


def _lower_set(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(value.lower() for value in values)


@dataclass(frozen=True)
class SpendPolicy:
    """What an agent may pay. ``None`` means "no limit" / "anything"; amounts are atomic units.

    ``allowed_networks`` are CAIP-2 (``eip155:84532``); v1 names in it are converted. ``allowed_assets``
    and ``allowed_payees`` are addresses compared case-insensitively.
    """

    max_per_payment: int | None = None
    max_per_capability: Mapping[str, int] = field(default_factory=dict)
    max_per_day: int | None = None
    allowed_networks: frozenset[str] | None = None
    allowed_assets: frozenset[str] | None = None
    allowed_payees: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in ("max_per_payment", "max_per_day"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int of atomic units, got {value!r}")
        for key, value in self.max_per_capability.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"max_per_capability[{key!r}] must be a non-negative int, got {value!r}")
        object.__setattr__(self, "max_per_capability", dict(self.max_per_capability))
        if self.allowed_networks is not None:
            object.__setattr__(self, "allowed_networks",
                               frozenset(normalize_network(n) for n in self.allowed_networks))
        object.__setattr__(self, "allowed_assets", _lower_set(self.allowed_assets))
        object.__setattr__(self, "allowed_payees", _lower_set(self.allowed_payees))

    def capability_limits(self, capability_id: str | None, resource_url: str | None) -> list[tuple[str, int]]:
        """The ``max_per_capability`` entries that apply to a payment for this capability / resource."""
        found = []
        for key, limit in self.max_per_capability.items():
            if "://" in key:
                if resource_url is not None and resource_url.startswith(key):
                    found.append((key, limit))
            elif capability_id is not None and key == capability_id:
                found.append((key, limit))
        return found


# -------------------------------------------------------------------------------------------- ledger


SpendStatus = Literal["reserved", "settled", "unconfirmed"]


@dataclass
class SpendEntry:
    """One payment this client signed: counted against the limits until it leaves the 24 h window."""

    id: str
    timestamp: float
    amount: int
    capability_id: str | None
    resource_url: str | None
    status: SpendStatus = "reserved"

    @property
    def capability(self) -> str | None:
        """The payment's capability key: the capability id if known, else the resource URL."""
        return self.capability_id or self.resource_url


class SpendLedger:
    """In-memory, thread-safe record of this client's payments over a rolling 24 h window.

    Entries are *reserved* when an authorization is signed (so concurrent requests cannot overshoot a
    budget together), marked *settled* when the server returns a successful receipt, left *unconfirmed*
    when the outcome is unknown (the server holds a valid authorization), and removed (released) only
    when the server answered 402 without settling.
    """

    def __init__(self, window_seconds: float = DAY_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._entries: list[SpendEntry] = []
        self.lock = threading.RLock()

    def _prune(self, now: float) -> None:
        cutoff = now - self.window_seconds
        self._entries = [entry for entry in self._entries if entry.timestamp > cutoff]

    def entries(self, now: float | None = None) -> list[SpendEntry]:
        """A snapshot of the entries still in the window at ``now``."""
        now = time.time() if now is None else now
        with self.lock:
            self._prune(now)
            return [SpendEntry(**vars(entry)) for entry in self._entries]

    def spent(self, now: float | None = None) -> int:
        """Atomic units counted in the rolling window (reserved, settled and unconfirmed)."""
        return sum(entry.amount for entry in self.entries(now))

    def spent_on(self, key: str, now: float | None = None) -> int:
        """Atomic units counted for one ``max_per_capability`` key (a capability id or a URL prefix)."""
        total = 0
        for entry in self.entries(now):
            if "://" in key:
                if entry.resource_url is not None and entry.resource_url.startswith(key):
                    total += entry.amount
            elif entry.capability_id == key:
                total += entry.amount
        return total

    def reserve(self, amount: int, *, capability_id: str | None, resource_url: str | None,
                now: float) -> SpendEntry:
        entry = SpendEntry(id=uuid.uuid4().hex, timestamp=now, amount=amount, capability_id=capability_id,
                           resource_url=resource_url)
        with self.lock:
            self._entries.append(entry)
        return entry

    def mark(self, entry_id: str, status: SpendStatus) -> None:
        with self.lock:
            for entry in self._entries:
                if entry.id == entry_id:
                    entry.status = status

    def release(self, entry_id: str) -> None:
        """Forget a reservation: the server refused the payment without settling it."""
        with self.lock:
            self._entries = [entry for entry in self._entries if entry.id != entry_id]


# -------------------------------------------------------------------------------------------- choice


@dataclass(frozen=True)
class Choice:
    """The requirement chosen to pay, with what the ledger needs to know about it."""

    requirement: AnyRequirements
    index: int
    amount: int
    network: str  # CAIP-2
    chain_id: int
    capability_id: str | None
    resource_url: str | None


def _unpayable_reason(req: AnyRequirements) -> str | None:
    """Why this client cannot sign ``req`` at all (independent of the policy), or None."""
    if req.scheme != "exact":
        return f"scheme {req.scheme!r} is not supported (only 'exact')"
    try:
        network = normalize_network(req.network)
        parse_eip155(network)
    except ProtocolError:
        return f"network {req.network!r} is not an EVM (eip155) network this client knows"
    extra = req.extra or {}
    if not isinstance(extra.get("name"), str) or not isinstance(extra.get("version"), str):
        return "extra lacks the token's EIP-712 domain (name and version)"
    method = extra.get("assetTransferMethod")
    if method not in (None, "eip3009"):
        return f"asset transfer method {method!r} is not supported (only EIP-3009)"
    if _ADDRESS_RE.fullmatch(req.asset) is None:
        return f"asset {req.asset!r} is not an address"
    if _ADDRESS_RE.fullmatch(req.pay_to) is None:
        return f"payTo {req.pay_to!r} is not an address"
    return None


def _check_policy(req: AnyRequirements, amount: int, network: str, capability_id: str | None,
                  resource_url: str | None, policy: SpendPolicy, ledger: SpendLedger,
                  now: float) -> PolicyViolation | None:
    if policy.allowed_networks is not None and network not in policy.allowed_networks:
        return PolicyViolation("network", requested=network, allowed=policy.allowed_networks)
    if policy.allowed_assets is not None and req.asset.lower() not in policy.allowed_assets:
        return PolicyViolation("asset", requested=req.asset, allowed=policy.allowed_assets)
    if policy.allowed_payees is not None and req.pay_to.lower() not in policy.allowed_payees:
        return PolicyViolation("payee", requested=req.pay_to, allowed=policy.allowed_payees)
    if policy.max_per_payment is not None and amount > policy.max_per_payment:
        return PolicyViolation("max_per_payment", requested=amount, allowed=policy.max_per_payment,
                               excess=amount - policy.max_per_payment)
    worst: PolicyViolation | None = None
    for key, limit in policy.capability_limits(capability_id, resource_url):
        spent = ledger.spent_on(key, now)
        if spent + amount > limit and (worst is None or spent + amount - limit > (worst.excess or 0)):
            worst = PolicyViolation("max_per_capability", requested=amount, allowed=limit,
                                    excess=spent + amount - limit, already_spent=spent, capability=key)
    if worst is not None:
        return worst
    if policy.max_per_day is not None:
        spent = ledger.spent(now)
        if spent + amount > policy.max_per_day:
            return PolicyViolation("max_per_day", requested=amount, allowed=policy.max_per_day,
                                   excess=spent + amount - policy.max_per_day, already_spent=spent,
                                   capability=capability_id or resource_url)
    return None


def _capability_id(req: AnyRequirements) -> str | None:
    value = (req.extra or {}).get("capabilityId")
    return value if isinstance(value, str) and value else None


def choose_requirement(
    accepts: Sequence[AnyRequirements],
    policy: SpendPolicy,
    ledger: SpendLedger,
    now: float | None = None,
    *,
    resource_url: str | None = None,
) -> Choice:
    """Pick the cheapest requirement this client can sign and the policy allows (ties: server order).

    ``resource_url`` is the v2 ``PaymentRequired.resource.url`` (v1 requirements carry their own).
    When none is allowed: the PolicyViolation of the requirement that got furthest through the checks
    (cheapest among equals), or NoPayableRequirement when none is even signable.
    """
    now = time.time() if now is None else now
    payable: list[Choice] = []
    violations: list[tuple[int, int, int, PolicyViolation]] = []
    unpayable: list[str] = []
    with ledger.lock:
        for index, req in enumerate(accepts):
            why = _unpayable_reason(req)
            if why is not None:
                unpayable.append(why)
                continue
            amount = int(requirement_amount(req))
            network = normalize_network(req.network)
            url = req.resource if isinstance(req, PaymentRequirementsV1) else resource_url
            capability_id = _capability_id(req)
            violation = _check_policy(req, amount, network, capability_id, url, policy, ledger, now)
            if violation is not None:
                unpayable.append(str(violation))
                violations.append((-_STAGE[violation.limit], amount, index, violation))
                continue
            payable.append(Choice(requirement=req, index=index, amount=amount, network=network,
                                  chain_id=parse_eip155(network), capability_id=capability_id, resource_url=url))
    if payable:
        return min(payable, key=lambda choice: (choice.amount, choice.index))
    if violations:
        raise min(violations, key=lambda item: item[:3])[3]
    raise NoPayableRequirement(unpayable)


def reserve_payment(
    accepts: Sequence[AnyRequirements],
    policy: SpendPolicy,
    ledger: SpendLedger,
    now: float,
    *,
    resource_url: str | None = None,
) -> tuple[Choice, SpendEntry]:
    """Choose and reserve in one step under the ledger's lock, so concurrent payments cannot both fit
    into the same remaining budget."""
    with ledger.lock:
        choice = choose_requirement(accepts, policy, ledger, now, resource_url=resource_url)
        entry = ledger.reserve(choice.amount, capability_id=choice.capability_id,
                               resource_url=choice.resource_url, now=now)
    return choice, entry

