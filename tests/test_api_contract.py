"""The committed OpenAPI document holds against the running service: schemathesis sends generated requests,
valid and invalid, to every operation of ``docs/openapi.json`` on a real server (uvicorn on a loopback
port, SQLite ledger, the session's anvil with our USDC), with an admin key so it reaches past the
authentication. No answer may be a 5xx, and every answer must have a documented status, content type
and body schema.

Seeded (``derandomize``) and bounded (``EXAMPLES`` per operation), so a run is repeatable and short.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.config import Settings
from app.db.engine import make_engine
from app.db.schema import create_schema
from app.dev.deploy import DevDeployment
from app.dev.devchain import DevChain
from app.main import create_app
from tests.support.payments import BASE_SEPOLIA
from tests.support.servers import serve

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
EXAMPLES = 15  # per operation; 21 operations
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_path(DOCUMENT)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, anvil: DevChain, dev_deployment: DevDeployment
            ) -> Iterator[tuple[str, dict[str, str]]]:
    """The service as production runs it (keys required), and an admin key's Authorization header."""
    data_dir = tmp_path_factory.mktemp("contract")
    settings = Settings(_env_file=None, data_dir=data_dir, rpc_urls={BASE_SEPOLIA: anvil.rpc_url},  # type: ignore[call-arg]
                        facilitator_private_key=dev_deployment.wallets.facilitator.key.hex(),
                        finality_poll_seconds=0)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    _row, key = ApiKeyRepository(engine).create("contract-tests", [Scope.ADMIN])
    engine.dispose()
    with serve(create_app(settings)) as url:
        yield url, {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_answer_is_documented_and_none_is_a_server_error(case, service, session):
    url, admin = service
    case.call_and_validate(base_url=url, session=session, headers=admin, checks=CHECKS, timeout=30)
