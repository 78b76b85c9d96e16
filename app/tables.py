"""Every table of the service in one place: importing the domains' table modules registers them on
``SQLModel.metadata``, which migrations are written from and checked against.

Not imported by the running service (which only upgrades along the written migrations); used by the
maintainer's ``new_revision`` and by the test that holds the migrations equal to the tables.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlmodel import SQLModel

from app.access import models as access_tables
from app.gateway import models as gateway_tables
from app.registry import models as registry_tables
from app.settlement import models as settlement_tables

TABLE_MODULES = (access_tables, gateway_tables, registry_tables, settlement_tables)


def metadata() -> MetaData:
    """The metadata holding every table of the service."""
    return SQLModel.metadata
