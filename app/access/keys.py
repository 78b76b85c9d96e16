"""Key material: a key is random, shown once, and known to us only by its SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "x402_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
