"""The facilitator's hot wallet: its key from the environment or an encrypted keystore, never logged.

``HotWallet`` signs with coincurve directly. eth_account would do the same job, but importing it pulls
in eth_keyfile and py_ecc's BLS pairing tables (about 12 MB of resident memory and 0.3 s of start-up)
for a service that only ever signs one kind of transaction; it is imported here only to open a keystore.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from coincurve import PrivateKey
from pydantic import SecretStr

from app.chain.signatures import address_of, checksum_address
from app.config import ConfigError, Settings


@dataclass(frozen=True)
class HotWallet:
    """A secp256k1 key and its address. The key is kept out of ``repr`` so it never reaches a log."""

    address: str  # EIP-55 checksummed
    _key: PrivateKey = field(repr=False, compare=False)

    @classmethod
    def from_key(cls, key: str | bytes) -> HotWallet:
        """From 32 raw bytes or their hex (with or without 0x); ValueError for anything else."""
        raw = key if isinstance(key, bytes) else bytes.fromhex(key[2:] if key[:2] in ("0x", "0X") else key)
        if len(raw) != 32:
            raise ValueError("a private key is 32 bytes")
        private = PrivateKey(raw)  # ValueError when zero or not below the curve order
        return cls(address=checksum_address(address_of(private.public_key)), _key=private)

    def sign_digest(self, digest: bytes) -> tuple[int, int, int]:
        """(y_parity, r, s) of a 32-byte digest; libsecp256k1 always produces the low-s form."""
        signature = self._key.sign_recoverable(digest, hasher=None)
        return signature[64], int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")


def load_facilitator_account(settings: Settings) -> HotWallet | None:
    """The signing wallet, or None when the instance only verifies.

    A keystore wins over a raw key so production can keep the key encrypted at rest; errors
    name the setting but never echo the secret.
    """
    keystore, password = settings.facilitator_keystore, settings.facilitator_keystore_password
    if keystore is not None:
        return HotWallet.from_key(_decrypt_keystore(keystore, password))
    if settings.facilitator_private_key is not None:
        try:
            return HotWallet.from_key(settings.facilitator_private_key.get_secret_value())
        except (ValueError, TypeError):
            raise ConfigError("X402_FACILITATOR_PRIVATE_KEY is not a valid 32-byte hex private key") from None
    return None


def _decrypt_keystore(path: Path, password: SecretStr | None) -> bytes:
    """The key inside an encrypted (Web3 Secret Storage) keystore file."""
    if password is None:
        raise ConfigError("X402_FACILITATOR_KEYSTORE is set but X402_FACILITATOR_KEYSTORE_PASSWORD is not")
    from eth_account import Account  # only here: see the module docstring

    try:
        return bytes(Account.decrypt(json.loads(path.read_text()), password.get_secret_value()))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot open the keystore {path}: {type(error).__name__}") from None
