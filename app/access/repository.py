"""SQL for API keys: created and revoked by the CLI, looked up by digest, never stored in plaintext."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.access.keys import KEY_PREFIX, generate_key, hash_key
from app.access.models import ApiKey, Scope
from app.db.clock import utc_now
from app.db.errors import DuplicateError


class ApiKeyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, name: str, scopes: list[Scope], provider_team: str | None = None) -> tuple[ApiKey, str]:
        """A new key; returns the row and the plaintext key, which is never stored or shown again."""
        if Scope.PROVIDER in scopes and not provider_team:
            raise ValueError("a provider key needs the provider team it may write for")
        key = generate_key()
        row = ApiKey(name=name, key_hash=hash_key(key), prefix=key[: len(KEY_PREFIX) + 4],
                     scopes=sorted(scope.value for scope in scopes), provider_team=provider_team)
        with Session(self._engine, expire_on_commit=False) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise DuplicateError(f"an API key named {name!r} exists") from None
        return row, key

    def revoke(self, name: str) -> bool:
        statement = update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).values(
            revoked_at=utc_now()
        )
        with Session(self._engine) as session:
            result = session.exec(statement)
            session.commit()
            return result.rowcount == 1

    def list(self) -> list[ApiKey]:
        with Session(self._engine) as session:
            return list(session.exec(select(ApiKey).order_by(ApiKey.name)).scalars())

    def active_by_key(self, key: str) -> ApiKey | None:
        """The unrevoked key whose digest matches (the lookup is by digest, never by plaintext)."""
        statement = select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        with Session(self._engine) as session:
            return session.exec(statement).scalar_one_or_none()
