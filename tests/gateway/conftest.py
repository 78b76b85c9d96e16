"""A service with the example paid route, its capability in the registry, and a payment builder."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from app.db.engine import make_engine
from app.db.schema import create_schema
from app.main import create_app
from app.protocol import decode_header, encode_header
from app.registry.models import Capability
from app.registry.repository import RegistryRepository
from tests.support.eip3009 import sign_transfer_authorization
from tests.support.payments import BASE_SEPOLIA, USDC

FORECAST_PRICE = 5_000


@pytest.fixture
def gateway_settings(facilitator_settings):
    facilitator_settings.example_routes = True
    return facilitator_settings


@pytest.fixture
def registry(gateway_settings, dev_deployment) -> Iterator[RegistryRepository]:
    engine = make_engine(gateway_settings.database_url)
    create_schema(engine)
    repository = RegistryRepository(engine)
    repository.put_capability(Capability(
        id="forecast", provider_team="weather", name="Forecast", description="A paid forecast",
        price=FORECAST_PRICE, asset=USDC, network=BASE_SEPOLIA, pay_to=dev_deployment.wallets.providers[0].address,
        route="/examples/forecast", status="approved",
    ))
    yield repository
    engine.dispose()


@pytest.fixture
def gateway(gateway_settings, registry) -> Iterator[TestClient]:
    with TestClient(create_app(gateway_settings)) as client:
        yield client


def offered(response) -> dict[str, Any]:
    """The first v2 requirement of a 402's PAYMENT-REQUIRED header."""
    return decode_header(response.headers["payment-required"])["accepts"][0]


def pay_v2(account: LocalAccount, requirement: dict[str, Any], *, value: int | None = None,
           to: str | None = None, nonce: bytes | None = None, payment_id: str | None = None) -> str:
    """A PAYMENT-SIGNATURE header for ``requirement``, signed with eth-account as a client would."""
    valid_before = int(time.time()) + requirement["maxTimeoutSeconds"]
    nonce = nonce or os.urandom(32)
    signed = sign_transfer_authorization(
        account, token_address=requirement["asset"], chain_id=84532, to=to or requirement["payTo"],
        value=int(requirement["amount"]) if value is None else value, valid_after=0, valid_before=valid_before,
        nonce=nonce, name=requirement["extra"]["name"], version=requirement["extra"]["version"],
    )
    payload = {
        "x402Version": 2,
        "payload": {"signature": "0x" + signed.signature.hex(), "authorization": {
            "from": account.address, "to": signed.to, "value": str(signed.value), "validAfter": "0",
            "validBefore": str(valid_before), "nonce": "0x" + nonce.hex()}},
        "accepted": requirement,
        "resource": {"url": "http://testserver/examples/forecast"},
    }
    if payment_id is not None:  # the payment-identifier extension, as a client sends it
        payload["extensions"] = {"payment-identifier": {"info": {"required": False, "id": payment_id}}}
    return encode_header(payload)
