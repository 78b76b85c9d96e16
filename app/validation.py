"""Field rules every domain shares (slugs, team names, addresses), and the error they raise.

Pure: no I/O. A refused value raises :class:`FieldError`, a 400 whose message starts with the field's
name, so the CLI and the HTTP routes report the same text.
"""

from __future__ import annotations

import re
from typing import Any

from app.chain.signatures import to_checksum
from app.errors import BadRequest

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class FieldError(BadRequest):
    """Input that is refused; ``field`` names the offending field (snake_case)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def required_text(value: Any, field: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FieldError(field, "is required")
    if not isinstance(value, str):
        raise FieldError(field, f"must be text, got {type(value).__name__} {value!r}")
    return value.strip()


def validate_slug(value: Any, field: str) -> str:
    """Lowercase letters, digits and dashes, 1 to 64 characters, not starting or ending with a dash."""
    slug = required_text(value, field)
    if not SLUG.match(slug):
        raise FieldError(
            field, f"{slug!r} is not a slug (lowercase letters, digits and dashes, 1-64 characters)"
        )
    return slug


def validate_name(value: Any, field: str) -> str:
    """A team or cost-centre name: non-empty, at most 64 characters, no whitespace."""
    name = required_text(value, field)
    if len(name) > 64 or any(char.isspace() for char in name):
        raise FieldError(field, f"{name!r} must be 1-64 characters without spaces")
    return name


def validate_address(value: Any, field: str) -> str:
    """``0x`` + 40 hex digits, returned checksummed; a mixed-case address must have a valid checksum."""
    address = required_text(value, field)
    if not ADDRESS.fullmatch(address):
        raise FieldError(field, f"{address!r} is not an address (0x followed by 40 hex digits)")
    digits, checksummed = address[2:], to_checksum(address)
    if digits != digits.lower() and digits != digits.upper() and address != checksummed:
        raise FieldError(field, f"{address} has an invalid EIP-55 checksum (a typo?)")
    return checksummed
