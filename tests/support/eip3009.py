"""Sign EIP-3009 / EIP-2612 messages with eth-account only, as a test oracle.

Deliberately independent of ``app`` code: the type definitions are spelled out here from the EIPs, so
a bug in the app's own digest code cannot hide behind the same bug in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
AUTHORIZATION_TYPE = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
CANCEL_AUTHORIZATION_TYPE = [
    {"name": "authorizer", "type": "address"},
    {"name": "nonce", "type": "bytes32"},
]
PERMIT_TYPE = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

AuthorizationType = Literal["TransferWithAuthorization", "ReceiveWithAuthorization"]


@dataclass(frozen=True)
class Signature:
    """A 65-byte ECDSA signature, split the ways the token's overloads want it."""

    v: int
    r: bytes
    s: bytes
    digest: bytes  # the EIP-712 digest that was signed

    @property
    def signature(self) -> bytes:
        """r || s || v: the layout of the ``bytes signature`` overloads."""
        return self.r + self.s + bytes([self.v])


@dataclass(frozen=True, kw_only=True)
class SignedAuthorization(Signature):
    """A signed Transfer/ReceiveWithAuthorization, ready for either contract overload."""

    from_address: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes

    def message_args(self) -> tuple[Any, ...]:
        return (self.from_address, self.to, self.value, self.valid_after, self.valid_before, self.nonce)

    def vrs_args(self) -> tuple[Any, ...]:
        """Arguments of the ``(..., uint8 v, bytes32 r, bytes32 s)`` overload."""
        return (*self.message_args(), self.v, self.r, self.s)

    def bytes_args(self) -> tuple[Any, ...]:
        """Arguments of the ``(..., bytes signature)`` overload."""
        return (*self.message_args(), self.signature)


def domain(*, name: str, version: str, chain_id: int, token_address: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(token_address),
    }


def sign_typed(
    account: LocalAccount,
    *,
    domain_data: dict[str, Any],
    primary_type: str,
    fields: list[dict[str, str]],
    message: dict[str, Any],
) -> Signature:
    """Sign one EIP-712 message given in full (types, domain, message) with ``account``'s key."""
    full_message = {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, primary_type: fields},
        "primaryType": primary_type,
        "domain": domain_data,
        "message": message,
    }
    signed = account.sign_message(encode_typed_data(full_message=full_message))
    return Signature(
        v=signed.v,
        r=signed.r.to_bytes(32, "big"),
        s=signed.s.to_bytes(32, "big"),
        digest=bytes(signed.message_hash),
    )


def sign_transfer_authorization(
    account: LocalAccount,
    *,
    token_address: str,
    chain_id: int,
    to: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: bytes,
    name: str = "USDC",
    version: str = "2",
    primary_type: AuthorizationType = "TransferWithAuthorization",
    from_address: str | None = None,
) -> SignedAuthorization:
    """Sign an EIP-3009 authorization. ``from_address`` overrides the payer (an EIP-1271 wallet the
    account owns, or a deliberately wrong signer)."""
    payer = to_checksum_address(from_address or account.address)
    payee = to_checksum_address(to)
    message = {
        "from": payer,
        "to": payee,
        "value": value,
        "validAfter": valid_after,
        "validBefore": valid_before,
        "nonce": nonce,
    }
    sig = sign_typed(
        account,
        domain_data=domain(name=name, version=version, chain_id=chain_id, token_address=token_address),
        primary_type=primary_type,
        fields=AUTHORIZATION_TYPE,
        message=message,
    )
    return SignedAuthorization(
        v=sig.v,
        r=sig.r,
        s=sig.s,
        digest=sig.digest,
        from_address=payer,
        to=payee,
        value=value,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce=nonce,
    )


def sign_cancel_authorization(
    account: LocalAccount,
    *,
    token_address: str,
    chain_id: int,
    nonce: bytes,
    name: str = "USDC",
    version: str = "2",
) -> Signature:
    """Sign an EIP-3009 CancelAuthorization for ``account``'s own nonce."""
    return sign_typed(
        account,
        domain_data=domain(name=name, version=version, chain_id=chain_id, token_address=token_address),
        primary_type="CancelAuthorization",
        fields=CANCEL_AUTHORIZATION_TYPE,
        message={"authorizer": account.address, "nonce": nonce},
    )


def sign_permit(
    account: LocalAccount,
    *,
    token_address: str,
    chain_id: int,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
    name: str = "USDC",
    version: str = "2",
) -> Signature:
    """Sign an EIP-2612 permit from ``account`` to ``spender``."""
    return sign_typed(
        account,
        domain_data=domain(name=name, version=version, chain_id=chain_id, token_address=token_address),
        primary_type="Permit",
        fields=PERMIT_TYPE,
        message={
            "owner": account.address,
            "spender": to_checksum_address(spender),
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    )
