"""Errors a repository raises for what the database refused, so callers need not know SQLAlchemy."""

from app.errors import Conflict


class DuplicateError(Conflict):
    """A row with the same unique key already exists (a 409); the message names it."""
