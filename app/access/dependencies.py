"""FastAPI dependencies that turn ``Authorization: Bearer <key>`` into a principal with scopes."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.access.keys import hash_key
from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.config import Settings
from app.deps import get_api_keys, get_settings
from app.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[Scope]
    provider_team: str | None = None

    def has(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def bearer_key(request: Request) -> str | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


async def authenticate(request: Request, api_keys: ApiKeyRepository = Depends(get_api_keys)) -> Principal:
    key = bearer_key(request)
    if key is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    row = await run_in_threadpool(api_keys.active_by_key, key)
    if row is None:
        raise Unauthorized("the API key is not valid or has been revoked")
    return Principal(name=row.name, scopes=frozenset(Scope(s) for s in row.scopes), provider_team=row.provider_team)


def require_scope(*scopes: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting principals that hold any of ``scopes`` (admin holds all)."""

    async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if not any(principal.has(scope) for scope in scopes):
            needed = " or ".join(scope.value for scope in scopes)
            raise Forbidden(f"the key {principal.name!r} lacks the {needed} scope")
        return principal

    return dependency


async def require_facilitator_caller(
    request: Request,
    settings: Settings = Depends(get_settings),
    api_keys: ApiKeyRepository = Depends(get_api_keys),
) -> None:
    """Bearer-key check for /verify and /settle, when enabled (production).

    A key passes when its SHA-256 digest is in ``X402_FACILITATOR_API_KEY_HASHES`` (no database
    round trip: the hot path) or when it is an unrevoked API key with the facilitator (or admin) scope.
    """
    if not settings.facilitator_require_api_key and not settings.facilitator_api_key_hashes:
        return
    key = bearer_key(request)
    if key is None:
        raise Unauthorized("this facilitator requires an API key: send 'Authorization: Bearer <key>'")
    digest = hash_key(key)
    if any(hmac.compare_digest(digest, candidate.lower()) for candidate in settings.facilitator_api_key_hashes):
        return
    row = await run_in_threadpool(api_keys.active_by_key, key)
    if row is None:
        raise Unauthorized("the API key is not valid or has been revoked")
    if not {Scope.FACILITATOR.value, Scope.ADMIN.value} & set(row.scopes):
        raise Forbidden(f"the key {row.name!r} lacks the facilitator scope")
