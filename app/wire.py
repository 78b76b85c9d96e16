"""The base of the service's own JSON shapes (registry, ledger, reconciliation, discovery, health):
camelCase on the wire, snake_case in Python, either accepted on the way in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireSchema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)
