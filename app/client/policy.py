"""The agent's spend policy: what it may pay, to whom, how much per payment, capability and day, and for
how long a signed authorization may stay usable.

Every check runs BEFORE anything is signed. A refusal is a :class:`PolicyViolation` naming the limit and
by how much the payment would exceed it, or a :class:`NoPayableRequirement` when no offered requirement
is even of a kind this client can sign (EVM ``exact`` with an EIP-712 domain).

Units: all limits are integer counts of the token's atomic units (USDC: 6 decimals, so 10_000 is $0.01).
The daily and per-capability totals add the atomic amounts of every payment whatever its asset, which is
why the policy pays only *known* assets (by default USDC, 6 decimals, on the networks of
``app/networks.json``): an unknown token's units would make the limits meaningless.

The server does not choose what the agent signs. A requirement's token must be a known asset on its
network, and the EIP-712 domain the server names (``extra.name`` / ``extra.version``) must be the one
our table holds for that token; otherwise the payment is refused before signing. The validity window is
the policy's too: see :attr:`SpendPolicy.max_validity_seconds`.

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
from app.config import known_networks
from app.protocol import (
    PaymentRequirements,
    PaymentRequirementsV1,
    ProtocolError,
    normalize_network,
    parse_eip155,
    requirement_amount,
)

#: 1 USDC: the official x402 SDK's default per-payment cap, so an agent moving from it is not surprised.
DEFAULT_MAX_PER_PAYMENT = 1_000_000
#: 10 USDC per rolling 24 h: the most a default-configured agent can lose to payees in a day.
DEFAULT_MAX_PER_DAY = 10_000_000
#: The longest window a policy may allow (a year): beyond that a "cap" no longer bounds anything.
LONGEST_VALIDITY_SECONDS = 365 * DAY_SECONDS

LimitName = Literal["max_per_payment", "max_per_capability", "max_per_day", "network", "asset", "asset_domain",
                    "payee"]
AnyRequirements = PaymentRequirements | PaymentRequirementsV1

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
# How far a requirement got through the checks; a later stage is a "more relevant" refusal.
_STAGE: dict[str, int] = {"network": 1, "asset": 2, "asset_domain": 2, "payee": 3, "max_per_payment": 4,
                          "max_per_capability": 5, "max_per_day": 6}


# -------------------------------------------------------------------------------------------- errors


class ClientPaymentError(Exception):
    """Base of every error the paying client raises on its own (never a server's answer)."""


class PolicyViolation(ClientPaymentError):
    """The agent's own policy refuses a payment; raised before anything is signed.

    - ``limit``: which rule: ``max_per_payment``, ``max_per_capability``, ``max_per_day``, ``network``,
      ``asset`` (not a known asset, or not in ``allowed_assets``), ``asset_domain`` (a known asset whose
      EIP-712 domain the server misnames) or ``payee``;
    - ``requested``: the amount (atomic units) for amount limits, the server's domain for
      ``asset_domain``, else the refused network/asset/payee;
    - ``allowed``: the limit (atomic units) or the allowed set;
    - ``excess``: by how many atomic units the payment would go over the limit (None for allow-lists);
    - ``already_spent``: for rolling limits, what the window already holds;
    - ``capability``: the capability key the payment was for (or the matching limit key);
    - ``asset``/``network``: the token and network of an ``asset_domain`` refusal.
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
        asset: str | None = None,
        network: str | None = None,
    ) -> None:
        self.limit = limit
        self.requested = requested
        self.allowed = allowed
        self.excess = excess
        self.already_spent = already_spent
        self.capability = capability
        self.asset = asset
        self.network = network
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
        if self.limit == "asset_domain":
            return (f"spend policy asset_domain: the server gives the token {self.asset} on {self.network} the "
                    f"EIP-712 domain {self.requested}, but that token's domain is {shown}; refusing to sign")
        return f"spend policy {self.limit}: {self.requested} is not allowed (allowed: {shown or 'none'})"


class NoPayableRequirement(ClientPaymentError):
    """None of the offered requirements is of a kind this client can pay; ``refusals`` says why for each."""

    def __init__(self, refusals: Sequence[str]) -> None:
        self.refusals = list(refusals)
        listed = "; ".join(f"accepts[{i}]: {why}" for i, why in enumerate(self.refusals)) or "accepts is empty"
        super().__init__(f"no payable requirement: {listed}")


# -------------------------------------------------------------------------------------------- assets


@dataclass(frozen=True)
class KnownAsset:
    """A token the policy may pay, with the EIP-712 domain its contract signs with.

    The domain comes from configuration we trust, never from a server's ``extra``: a server that could
    choose the domain would choose what the agent signs.
    """

    network: str  # CAIP-2
    address: str
    name: str
    version: str

    def domain(self) -> str:
        """The domain as shown in refusals: ``name='USDC' version='2'``."""
        return f"name={self.name!r} version={self.version!r}"


def known_usdc() -> frozenset[KnownAsset]:
    """USDC on every network of ``app/networks.json``, with its EIP-712 name and version (the default)."""
    return frozenset(
        KnownAsset(network=network.network, address=asset.address, name=asset.name, version=asset.version)
        for network in known_networks().values()
        for asset in network.assets
    )


# -------------------------------------------------------------------------------------------- policy


def _lower_set(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(value.lower() for value in values)


def _check_amount(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be a non-negative int of atomic units, got {value!r}")


@dataclass(frozen=True)
class SpendPolicy:
    """What an agent may pay; amounts are atomic units.

    The defaults are finite on purpose, so an agent configured with nothing cannot be drained:
    ``max_per_payment`` 1 USDC, ``max_per_day`` 10 USDC, ``max_validity_seconds`` 300, and only known
    assets (USDC on the networks of ``app/networks.json``, with their EIP-712 domains). Passing ``None``
    for ``max_per_payment`` or ``max_per_day`` removes that limit, deliberately.

    ``allowed_networks`` are CAIP-2 (``eip155:84532``); v1 names in it are converted. ``allowed_assets``
    (a further restriction within ``known_assets``) and ``allowed_payees`` are addresses compared
    case-insensitively; ``None`` means any. To pay another token, add it to ``known_assets`` with its
    real domain, e.g. ``known_assets=known_usdc() | {KnownAsset(...)}`` (and mind its units).

    ``max_validity_seconds`` caps how long a signed authorization stays usable: the client signs
    ``validBefore = now + min(maxTimeoutSeconds, max_validity_seconds)``. A server asking a longer window
    is not refused, it gets the shorter one: ``maxTimeoutSeconds`` is the longest the server will take
    to settle, so an authorization that expires sooner is still a correct payment (the facilitator only
    checks it has not expired), while refusing would let any server make the agent unable to pay by
    asking for years. A window the server asks to be shorter than the cap is used as asked. Keep the cap
    well above the facilitator's expiry margin (ours: 6 s) and the time the settlement takes.
    """

    max_per_payment: int | None = DEFAULT_MAX_PER_PAYMENT
    max_per_capability: Mapping[str, int] = field(default_factory=dict)
    max_per_day: int | None = DEFAULT_MAX_PER_DAY
    max_validity_seconds: int = DEFAULT_MAX_VALIDITY_SECONDS
    allowed_networks: frozenset[str] | None = None
    allowed_assets: frozenset[str] | None = None
    allowed_payees: frozenset[str] | None = None
    known_assets: frozenset[KnownAsset] = field(default_factory=known_usdc)
    _domains: dict[tuple[str, str], KnownAsset] = field(init=False, repr=False, compare=False)

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
        object.__setattr__(self, "known_assets", frozenset(self.known_assets))
        object.__setattr__(self, "_domains", {(normalize_network(known.network), known.address.lower()): known
                                              for known in self.known_assets})

    def known_asset(self, network: str, asset: str) -> KnownAsset | None:
        """The known token at ``asset`` on ``network`` (CAIP-2), or None."""
        return self._domains.get((network, asset.lower()))

    def assets_on(self, network: str) -> frozenset[str]:
        """The known assets' addresses on ``network`` (for a refusal's ``allowed``)."""
        return frozenset(known.address for (on, _), known in self._domains.items() if on == network)

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


def _check_asset(req: AnyRequirements, network: str, policy: SpendPolicy) -> PolicyViolation | None:
    """The token must be known on this network and the server must name its real EIP-712 domain."""
    known = policy.known_asset(network, req.asset)
    if known is None:
        return PolicyViolation("asset", requested=req.asset, allowed=policy.assets_on(network))
    extra = req.extra or {}
    if (extra.get("name"), extra.get("version")) != (known.name, known.version):
        offered = f"name={extra.get('name')!r} version={extra.get('version')!r}"
        return PolicyViolation("asset_domain", requested=offered, allowed=frozenset({known.domain()}),
                               asset=req.asset, network=network)
    if policy.allowed_assets is not None and req.asset.lower() not in policy.allowed_assets:
        return PolicyViolation("asset", requested=req.asset, allowed=policy.allowed_assets)
    return None


def _check_policy(req: AnyRequirements, amount: int, network: str, capability_id: str | None,
                  resource_url: str | None, policy: SpendPolicy, book: Booking) -> PolicyViolation | None:
    if policy.allowed_networks is not None and network not in policy.allowed_networks:
        return PolicyViolation("network", requested=network, allowed=policy.allowed_networks)
    refused = _check_asset(req, network, policy)
    if refused is not None:
        return refused
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
