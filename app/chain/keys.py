"""The facilitator's hot-wallet key: from the environment or an encrypted keystore, never logged."""

from __future__ import annotations

import json

from eth_account import Account
from eth_account.signers.local import LocalAccount

from app.config import ConfigError, Settings


def load_facilitator_account(settings: Settings) -> LocalAccount | None:
    """The signing account, or None when the instance only verifies.

    A keystore wins over a raw key so production can keep the key encrypted at rest; errors
    name the setting but never echo the secret.
    """
    if settings.facilitator_keystore is not None:
        if settings.facilitator_keystore_password is None:
            raise ConfigError("X402_FACILITATOR_KEYSTORE is set but X402_FACILITATOR_KEYSTORE_PASSWORD is not")
        try:
            keystore = json.loads(settings.facilitator_keystore.read_text())
            key = Account.decrypt(keystore, settings.facilitator_keystore_password.get_secret_value())
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"cannot open the keystore {settings.facilitator_keystore}: {type(error).__name__}"
            ) from None
        return Account.from_key(key)
    if settings.facilitator_private_key is not None:
        try:
            return Account.from_key(settings.facilitator_private_key.get_secret_value())
        except (ValueError, TypeError):
            raise ConfigError("X402_FACILITATOR_PRIVATE_KEY is not a valid 32-byte hex private key") from None
    return None
