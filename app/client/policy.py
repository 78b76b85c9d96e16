"""The agent's spend policy: what it may pay, to whom, how much per payment, capability and day, and for
how long a signed authorization may stay usable.

Every check runs BEFORE anything is signed. A refusal is a :class:`PolicyViolation` naming the limit and
by how much the payment would exceed it, or a :class:`NoPayableRequirement` when no offered requirement
is even of a kind this client can sign (EVM ``exact`` with an EIP-712 domain).

Units: all limits are integer counts of the token's atomic units (USDC: 6 decimals, so 10_000 is $0.01).
The daily and per-capability totals add the atomic amounts of every payment whatever its asset, so
keep ``allowed_assets`` to tokens of the same unit (e.g. USDC on the allowed networks).

The validity window is the policy's, not the server's: see :attr:`SpendPolicy.max_validity_seconds`.

Capabilities: a payment's *capability key* is ``requirements.extra.capabilityId`` when the server puts
one there (our gateway does), else the resource URL. A key of ``max_per_capability`` is either a
capability id (matched exactly) or, when it contains ``://``, a resource URL prefix (matched with
``startswith`` against the resource URL). Every matching key applies; its limit is a rolling-24 h total
for that capability, counting the payment being made.

What counts: every authorization the client signed, whatever the server answered, for the rolling
24 h (and longer if it is still usable); see :mod:`app.client.ledger`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.client.ledger import DAY_SECONDS, Booking, SpendEntry, SpendLedger, new_entry
from app.client.signer import DEFAULT_MAX_VALIDITY_SECONDS
from app.protocol import (
    PaymentRequirements,
    PaymentRequirementsV1,
    ProtocolError,
    normalize_network,
    parse_eip155,
    requirement_amount,
)

#: The longest window a policy may allow (a year): beyond that a "cap" no longer bounds anything.
LONGEST_VALIDITY_SECONDS = 365 * DAY_SECONDS

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


def _check_amount(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be a non-negative int of atomic units, got {value!r}")


@dataclass(frozen=True)
class SpendPolicy:
    """What an agent may pay. ``None`` means "no limit" / "anything"; amounts are atomic units.

    ``allowed_networks`` are CAIP-2 (``eip155:84532``); v1 names in it are converted. ``allowed_assets``
    and ``allowed_payees`` are addresses compared case-insensitively.

    ``max_validity_seconds`` caps how long a signed authorization stays usable: the client signs
    ``validBefore = now + min(maxTimeoutSeconds, max_validity_seconds)``. A server asking a longer window
    is not refused, it gets the shorter one: ``maxTimeoutSeconds`` is the longest the server will take
    to settle, so an authorization that expires sooner is still a correct payment (the facilitator only
    checks it has not expired), while refusing would let any server make the agent unable to pay by
    asking for years. A window the server asks to be shorter than the cap is used as asked. Keep the cap
    well above the facilitator's expiry margin (ours: 6 s) and the time the settlement takes.
    """

    max_per_payment: int | None = None
    max_per_capability: Mapping[str, int] = field(default_factory=dict)
    max_per_day: int | None = None
    max_validity_seconds: int = DEFAULT_MAX_VALIDITY_SECONDS
    allowed_networks: frozenset[str] | None = None
    allowed_assets: frozenset[str] | None = None
    allowed_payees: frozenset[str] | None = None

    def __post_init__(self) -> None:
        _check_amount("max_per_payment", self.max_per_payment)
        _check_amount("max_per_day", self.max_per_day)
        for key, value in self.max_per_capability.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"max_per_capability[{key!r}] must be a non-negative int, got {value!r}")
        validity = self.max_validity_seconds
        if isinstance(validity, bool) or not isinstance(validity, int) or not 0 < validity <= LONGEST_VALIDITY_SECONDS:
            raise ValueError(f"max_validity_seconds must be an int of seconds in 1..{LONGEST_VALIDITY_SECONDS}, "
                             f"got {validity!r}")
        object.__setattr__(self, "max_per_capability", dict(self.max_per_capability))
        if self.allowed_networks is not None:
            object.__setattr__(self, "allowed_networks",
                               frozenset(normalize_network(n) for n in self.allowed_networks))
        object.__setattr__(self, "allowed_assets", _lower_set(self.allowed_assets))
        object.__setattr__(self, "allowed_payees", _lower_set(self.allowed_payees))

    def valid_before(self, requirement: AnyRequirements, now: float) -> int:
        """The ``validBefore`` to sign at ``now``: the server's window, capped by ``max_validity_seconds``."""
        return int(now) + min(requirement.max_timeout_seconds, self.max_validity_seconds)

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
                  resource_url: str | None, policy: SpendPolicy, book: Booking) -> PolicyViolation | None:
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
        spent = book.spent_on(key)
        if spent + amount > limit and (worst is None or spent + amount - limit > (worst.excess or 0)):
            worst = PolicyViolation("max_per_capability", requested=amount, allowed=limit,
                                    excess=spent + amount - limit, already_spent=spent, capability=key)
    if worst is not None:
        return worst
    if policy.max_per_day is not None:
        spent = book.spent()
        if spent + amount > policy.max_per_day:
            return PolicyViolation("max_per_day", requested=amount, allowed=policy.max_per_day,
                                   excess=spent + amount - policy.max_per_day, already_spent=spent,
                                   capability=capability_id or resource_url)
    return None


def _capability_id(req: AnyRequirements) -> str | None:
    value = (req.extra or {}).get("capabilityId")
    return value if isinstance(value, str) and value else None


def _choose(accepts: Sequence[AnyRequirements], policy: SpendPolicy, book: Booking,
            resource_url: str | None) -> Choice:
    payable: list[Choice] = []
    violations: list[tuple[int, int, int, PolicyViolation]] = []
    unpayable: list[str] = []
    for index, req in enumerate(accepts):
        why = _unpayable_reason(req)
        if why is not None:
            unpayable.append(why)
            continue
        amount = int(requirement_amount(req))
        network = normalize_network(req.network)
        url = req.resource if isinstance(req, PaymentRequirementsV1) else resource_url
        capability_id = _capability_id(req)
        violation = _check_policy(req, amount, network, capability_id, url, policy, book)
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
    (cheapest among equals), or NoPayableRequirement when none is even signable. Reserves nothing; to
    pay, use :func:`reserve_payment`, which checks and reserves in one booking.
    """
    now = time.time() if now is None else now
    with ledger.booking(now) as book:
        return _choose(accepts, policy, book, resource_url)


def reserve_payment(
    accepts: Sequence[AnyRequirements],
    policy: SpendPolicy,
    ledger: SpendLedger,
    now: float,
    *,
    resource_url: str | None = None,
    payer: str | None = None,
) -> tuple[Choice, SpendEntry]:
    """Choose and record the authorization about to be signed, in one booking of the ledger.

    One booking (a lock, or a SQLite write transaction shared by every process of the agent) so
    concurrent payments cannot both fit into the same remaining budget. The entry carries the nonce and
    ``validBefore`` the signer must use, so the ledger row describes exactly the authorization signed.
    """
    with ledger.booking(now) as book:
        choice = _choose(accepts, policy, book, resource_url)
        req = choice.requirement
        entry = new_entry(choice.amount, now=now, capability_id=choice.capability_id,
                          resource_url=choice.resource_url, asset=req.asset, network=choice.network,
                          payee=req.pay_to, payer=payer, valid_before=policy.valid_before(req, now))
        book.add(entry)
    return choice, entry
