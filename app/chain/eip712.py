"""EIP-712 digests of EIP-3009 authorizations, computed by hand for the verify hot path.

eth_account's ``encode_typed_data`` walks a generic type tree (~135 µs per message); the struct here is
fixed, so its encoding is six 32-byte words concatenated, hashed with pycryptodome's keccak directly
(measured ~8% faster than going through ``eth_hash.auto``, which dispatches to the same backend).
"""

from __future__ import annotations

from functools import lru_cache

from Crypto.Hash import keccak as _keccak

EIP712_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
TRANSFER_WITH_AUTHORIZATION_TYPE = (
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,"
    "bytes32 nonce)"
)

_UINT256_MAX = 2**256 - 1
_EIP712_PREFIX = b"\x19\x01"
_ADDRESS_PAD = b"\x00" * 12


def keccak256(data: bytes) -> bytes:
    """keccak-256 (Ethereum's, not NIST SHA3-256) of ``data``."""
    return _keccak.new(data=data, digest_bits=256).digest()


EIP712_DOMAIN_TYPEHASH = keccak256(EIP712_DOMAIN_TYPE.encode())
TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(TRANSFER_WITH_AUTHORIZATION_TYPE.encode())


def address_bytes(address: str | bytes) -> bytes:
    """The 20 bytes of an address given as 0x-hex text (any case) or raw bytes."""
    if isinstance(address, bytes | bytearray):
        raw = bytes(address)
    else:
        text = address[2:] if address[:2] in ("0x", "0X") else address
        if len(text) != 40:
            raise ValueError(f"not a 20-byte address: {address!r}")
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise ValueError(f"not a hex address: {address!r}") from exc
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address!r}")
    return raw


def _uint256_word(value: int) -> bytes:
    if not 0 <= value <= _UINT256_MAX:
        raise ValueError(f"not a uint256: {value}")
    return value.to_bytes(32, "big")


@lru_cache(maxsize=256)
def domain_separator(name: str, version: str, chain_id: int, verifying_contract: str) -> bytes:
    """hashStruct(EIP712Domain) for a token; cached because a facilitator serves only a few domains."""
    return keccak256(
        EIP712_DOMAIN_TYPEHASH
        + keccak256(name.encode("utf-8"))
        + keccak256(version.encode("utf-8"))
        + _uint256_word(chain_id)
        + _ADDRESS_PAD
        + address_bytes(verifying_contract)
    )


def transfer_authorization_struct_hash(
    payer: str | bytes,
    to: str | bytes,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: bytes,
) -> bytes:
    """hashStruct(TransferWithAuthorization): keccak of the typehash and the six fields as 32-byte words."""
    if len(nonce) != 32:
        raise ValueError(f"nonce must be 32 bytes, got {len(nonce)}")
    return keccak256(
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH
        + _ADDRESS_PAD
        + address_bytes(payer)
        + _ADDRESS_PAD
        + address_bytes(to)
        + _uint256_word(value)
        + _uint256_word(valid_after)
        + _uint256_word(valid_before)
        + bytes(nonce)
    )


def transfer_authorization_digest(
    domain_separator: bytes,
    payer: str | bytes,
    to: str | bytes,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: bytes,
) -> bytes:
    """The 32-byte EIP-712 digest the payer signs: keccak(0x1901 ‖ domainSeparator ‖ structHash)."""
    struct_hash = transfer_authorization_struct_hash(payer, to, value, valid_after, valid_before, nonce)
    return keccak256(_EIP712_PREFIX + domain_separator + struct_hash)
