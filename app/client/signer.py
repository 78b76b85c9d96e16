"""The agent's signing key and the EIP-3009 authorizations it signs for the EVM ``exact`` scheme.

The key is held by an eth-account ``LocalAccount`` and never printed: ``repr`` shows the address only.
The digest is computed by our own EIP-712 code (``app.chain.eip712``) and signed with
``unsafe_sign_hash``; the tests check it against eth-account's generic ``encode_typed_data``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from app.chain.eip712 import domain_separator, transfer_authorization_digest
from app.protocol import (
    PaymentRequirements,
    PaymentRequirementsV1,
    ResourceInfo,
    normalize_network,
    parse_eip155,
    requirement_amount,
)

#: How far back a v1 authorization's ``validAfter`` is set (the TypeScript v1 client's value), for clock skew.
V1_VALID_AFTER_SKEW_SECONDS = 600
#: The longest an authorization signed without an explicit ``valid_before`` stays usable. A server's
#: ``maxTimeoutSeconds`` is only what it asks for: honoured as is, a server asking 10**9 would hold a
#: bearer authorization for 32 years.
DEFAULT_MAX_VALIDITY_SECONDS = 300


class SignerError(ValueError):
    """The key or keystore cannot be loaded, or a requirement cannot be signed. Never contains the key."""


class PaymentSigner:
    """Signs x402 ``exact`` payments (EIP-3009 ``transferWithAuthorization``) with one agent key."""

    __slots__ = ("_account",)

    def __init__(self, account: LocalAccount) -> None:
        self._account = account

    @classmethod
    def from_key(cls, key: str | bytes) -> PaymentSigner:
        """From a 32-byte private key (0x-hex text or raw bytes)."""
        try:
            return cls(Account.from_key(key))
        except (ValueError, TypeError):
            raise SignerError("not a valid 32-byte private key") from None

    @classmethod
    def from_keystore(cls, path: str | os.PathLike[str], password: str) -> PaymentSigner:
        """From an encrypted JSON keystore (Web3 Secret Storage), as ``geth``/``cast wallet`` write them."""
        try:
            keystore = json.loads(Path(path).read_text())
            key = Account.decrypt(keystore, password)
        except (OSError, ValueError) as error:
            raise SignerError(f"cannot open the keystore {path}: {type(error).__name__}") from None
        return cls(Account.from_key(key))

    @property
    def address(self) -> str:
        """The payer address (checksummed)."""
        return self._account.address

    def __repr__(self) -> str:
        return f"PaymentSigner(address={self.address})"

    def sign_exact(
        self,
        requirement: PaymentRequirements | PaymentRequirementsV1 | Mapping[str, Any],
        *,
        version: Literal[1, 2],
        resource: ResourceInfo | Mapping[str, Any] | str | None = None,
        now: int | float | None = None,
        valid_before: int | None = None,
        nonce: bytes | None = None,
    ) -> dict[str, Any]:
        """The payment payload (a JSON-ready dict) for the ``PAYMENT-SIGNATURE`` / ``X-PAYMENT`` header.

        - v2: ``{"x402Version":2,"payload":{...},"accepted":<requirement>,"resource":<resource>}``;
        - v1: ``{"x402Version":1,"scheme","network","payload":{...}}``.

        The authorization: ``nonce`` (a fresh random 32 bytes unless given), ``validAfter`` 0 (v2) or
        now - 600 (v1), ``validBefore`` as given, else now + min(maxTimeoutSeconds, 300), ``value`` the
        amount, ``to`` payTo; the EIP-712 domain is ``extra.name``/``extra.version``, the network's chain id
        and the asset as verifying contract. The paying transport passes ``valid_before`` and ``nonce`` from
        the spend ledger's entry, so what is counted is exactly what is signed; the signer does not judge
        the domain (the spend policy does, before signing).
        """
        req = _requirement_model(requirement, version)
        now_s = int(time.time() if now is None else now)
        extra = req.extra or {}
        name, domain_version = extra.get("name"), extra.get("version")
        if not isinstance(name, str) or not isinstance(domain_version, str):
            raise SignerError("requirement.extra must hold the token's EIP-712 domain name and version")
        try:
            chain_id = parse_eip155(normalize_network(req.network))
        except ValueError as error:
            raise SignerError(f"cannot sign for network {req.network!r}: {error}") from None
        try:
            asset = to_checksum_address(req.asset)
            pay_to = to_checksum_address(req.pay_to)
        except ValueError:
            raise SignerError("requirement asset and payTo must be addresses") from None

        value = int(requirement_amount(req))
        valid_after = 0 if version == 2 else max(0, now_s - V1_VALID_AFTER_SKEW_SECONDS)
        if valid_before is None:
            valid_before = now_s + min(req.max_timeout_seconds, DEFAULT_MAX_VALIDITY_SECONDS)
        if isinstance(valid_before, bool) or not isinstance(valid_before, int) or valid_before < 0:
            raise SignerError(f"valid_before must be a non-negative int of Unix seconds, got {valid_before!r}")
        if nonce is None:
            nonce = os.urandom(32)
        if len(nonce) != 32:
            raise SignerError(f"an EIP-3009 nonce is 32 bytes, got {len(nonce)}")
        digest = transfer_authorization_digest(
            domain_separator(name, domain_version, chain_id, asset),
            self.address, pay_to, value, valid_after, valid_before, nonce,
        )
        signed = self._account.unsafe_sign_hash(digest)
        payload = {
            "signature": "0x" + bytes(signed.signature).hex(),
            "authorization": {
                "from": self.address,
                "to": pay_to,
                "value": str(value),
                "validAfter": str(valid_after),
                "validBefore": str(valid_before),
                "nonce": "0x" + nonce.hex(),
            },
        }
        if version == 1:
            return {"x402Version": 1, "scheme": req.scheme, "network": req.network, "payload": payload}
        result: dict[str, Any] = {"x402Version": 2, "payload": payload, "accepted": req.to_wire()}
        resource_wire = _resource_wire(resource)
        if resource_wire is not None:
            result["resource"] = resource_wire
        return result


def _requirement_model(
    requirement: PaymentRequirements | PaymentRequirementsV1 | Mapping[str, Any], version: int
) -> PaymentRequirements | PaymentRequirementsV1:
    if version not in (1, 2):
        raise SignerError(f"x402 version must be 1 or 2, got {version!r}")
    model = PaymentRequirementsV1 if version == 1 else PaymentRequirements
    if isinstance(requirement, model):
        return requirement
    if isinstance(requirement, PaymentRequirements | PaymentRequirementsV1):
        raise SignerError(f"a {type(requirement).__name__} cannot be paid with x402 version {version}")
    try:
        return model.model_validate(dict(requirement))
    except ValueError as error:
        raise SignerError(f"invalid payment requirement: {error}") from None


def _resource_wire(resource: ResourceInfo | Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    if isinstance(resource, str):
        return {"url": resource}
    if isinstance(resource, ResourceInfo):
        return resource.to_wire()
    return dict(resource)
