"""A facilitator app on the session's anvil chain, with a fresh ledger and a clean chain per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


@pytest.fixture
def client(facilitator_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(facilitator_settings)) as test_client:
        yield test_client

