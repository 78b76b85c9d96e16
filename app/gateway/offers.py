"""What the gateway offers for a capability and whether a presented payment matches it. Pure.

The registry is the single source of truth: price, network, asset and payTo come from the
capability row, and the EIP-712 domain from the network's token configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.config import AssetConfig, NetworkConfig
from app.protocol import (
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequired,
    PaymentRequirements,
    PaymentRequirementsV1,
    ProtocolError,
    Reason,
    ResourceInfo,
    normalize_network,
)
from app.registry.models import Capability

MAX_TIMEOUT_SECONDS = 300


class OfferError(Exception):
    """The capability cannot be offered (e.g. its network is not enabled here)."""


@dataclass(frozen=True)
class Offer:
    """Both protocol versions' requirements for one capability at one resource URL."""

    capability: Capability
    v2: PaymentRequirements
    v1: PaymentRequirementsV1 | None  # None when the network has no v1 name
    resource: ResourceInfo

    def payment_required(self, error: str, extensions: dict[str, Any] | None = None) -> PaymentRequired:
        return PaymentRequired(x402_version=2, error=error, resource=self.resource, accepts=[self.v2],
                               extensions=extensions)

    def v1_body(self, error: str) -> dict[str, Any]:
        """The 402 body old (v1) clients read: ``{x402Version: 1, error, accepts}``."""
        return {"x402Version": 1, "error": error, "accepts": [self.v1.to_wire()] if self.v1 else []}


def make_offer(capability: Capability, resource_url: str, networks: dict[str, NetworkConfig]) -> Offer:
    network = networks.get(capability.network)
    if network is None:
        raise OfferError(f"capability {capability.id!r} is priced on {capability.network}, not enabled here")
    asset = _asset(network, capability.asset)
    extra = {"name": asset.name, "version": asset.version, "capabilityId": capability.id}
    v2 = PaymentRequirements(
        scheme="exact", network=network.network, amount=str(capability.price), asset=asset.address,
        pay_to=capability.pay_to, max_timeout_seconds=MAX_TIMEOUT_SECONDS, extra=extra,
    )
    v1 = None
    if network.v1_name:
        v1 = PaymentRequirementsV1(
            scheme="exact", network=network.v1_name, max_amount_required=str(capability.price), asset=asset.address,
            pay_to=capability.pay_to, resource=resource_url, description=capability.description or capability.name,
            mime_type=capability.mime_type, max_timeout_seconds=MAX_TIMEOUT_SECONDS, extra=extra,
        )
    resource = ResourceInfo(url=resource_url, description=capability.description or capability.name,
                            mime_type=capability.mime_type)
    return Offer(capability=capability, v2=v2, v1=v1, resource=resource)


def _asset(network: NetworkConfig, address: str) -> AssetConfig:
    for asset in network.assets:
        if asset.address.lower() == address.lower():
            return asset
    raise OfferError(f"asset {address} is not a configured token on {network.network}")


class PaymentMismatch(ValueError):
    """The presented payment is not for this offer; ``reason`` is the x402 code."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def requirements_for(
    payment: PaymentPayload | PaymentPayloadV1, offer: Offer
) -> PaymentRequirements | PaymentRequirementsV1:
    """The offered requirements the payment claims to satisfy; PaymentMismatch when it claims other terms.

    v2: ``accepted`` must equal the offer on scheme, network, amount, asset, payTo and timeout, and the
    offer's ``extra`` must be contained in the accepted one. v1: scheme and network must be the offer's.
    The signed authorization itself is checked against these requirements by the facilitator.
    """
    if isinstance(payment, PaymentPayloadV1):
        if offer.v1 is None:
            raise PaymentMismatch(Reason.invalid_x402_version, "this capability is not offered to x402 v1 clients")
        if payment.scheme != "exact" or normalize_network(payment.network) != offer.v2.network:
            raise PaymentMismatch(Reason.network_mismatch, "the payment is for another scheme or network")
        return offer.v1
    accepted, offered = payment.accepted, offer.v2
    differences = [
        name for name, ours, theirs in (
            ("scheme", offered.scheme, accepted.scheme),
            ("network", offered.network, accepted.network),
            ("amount", offered.amount, accepted.amount),
            ("asset", offered.asset.lower(), accepted.asset.lower()),
            ("payTo", offered.pay_to.lower(), accepted.pay_to.lower()),
            ("maxTimeoutSeconds", offered.max_timeout_seconds, accepted.max_timeout_seconds),
        ) if ours != theirs
    ]
    accepted_extra = accepted.extra or {}
    differences += [f"extra.{key}" for key, value in (offered.extra or {}).items() if accepted_extra.get(key) != value]
    if differences:
        raise PaymentMismatch(
            Reason.invalid_payment_requirements,
            f"the payment accepted other terms than offered ({', '.join(differences)})",
        )
    return offered


def network_of(payment: PaymentPayload | PaymentPayloadV1) -> str:
    try:
        return normalize_network(payment.network if isinstance(payment, PaymentPayloadV1) else payment.accepted.network)
    except ProtocolError as error:
        raise PaymentMismatch(Reason.invalid_network, error.message) from None
