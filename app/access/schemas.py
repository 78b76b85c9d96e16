"""What may be shown of an API key: never the key or its digest."""

from __future__ import annotations

from app.access.models import ApiKey
from app.db.clock import wire_time


def key_to_json(row: ApiKey) -> dict[str, object]:
    """What may be shown of a key: never the key or its digest."""
    return {
        "name": row.name,
        "prefix": row.prefix,
        "scopes": list(row.scopes),
        "providerTeam": row.provider_team,
        "createdAt": wire_time(row.created_at),
        "revokedAt": wire_time(row.revoked_at),
    }
