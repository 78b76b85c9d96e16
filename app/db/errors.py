"""Errors a repository raises for what the database refused, so callers need not know SQLAlchemy."""


class DuplicateError(ValueError):
    """A row with the same unique key already exists; the message names it."""
