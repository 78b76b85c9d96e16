"""What /verify accepts, /settle can record: text the ledger cannot store is refused when the request is
parsed, with the same answer from both, on SQLite and PostgreSQL.

A NUL character is refused by PostgreSQL's text type, and an unpaired surrogate cannot be encoded as
UTF-8 at all; before this rule a validly signed payment carrying one in ``resource.url`` passed /verify and
then failed every /settle with ``unexpected_settle_error``.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.support.payments import body_v2, requirements_v2, sign_exact

PRICE = 2_345
UNSTORABLE = {"nul": "http://provider.test/thing\x00", "lone_surrogate": "http://provider.test/\ud800"}


@pytest.mark.parametrize("text", UNSTORABLE.values(), ids=list(UNSTORABLE))
def test_a_resource_url_the_ledger_cannot_store_is_refused_by_verify_and_settle_alike(
    text, facilitator_settings, database_url, payer, payee, balances
):
    facilitator_settings.database_url = database_url
    body = body_v2(sign_exact(payer, to=payee, value=PRICE), requirements_v2(payee, PRICE), resource={"url": text})
    raw = json.dumps(body).encode()  # ASCII JSON: the surrogate travels as the escape \ud800
    watched = balances(payer.address, payee)
    with TestClient(create_app(facilitator_settings)) as client:
        verified = client.post("/verify", content=raw, headers={"content-type": "application/json"}).json()
        settled = client.post("/settle", content=raw, headers={"content-type": "application/json"}).json()
    assert verified["isValid"] is False and verified["invalidReason"] == "invalid_payload", verified
    assert "paymentPayload.resource.url" in verified["invalidMessage"]
    assert settled["success"] is False and settled["errorReason"] == "invalid_payload", settled
    assert watched.moved() == {payer.address: 0, payee: 0}
