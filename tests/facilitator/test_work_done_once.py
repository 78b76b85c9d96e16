"""One /settle parses its body and recovers the signature once: verify's work is not done again."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.chain.signatures import recover_signer
from app.main import create_app
from app.protocol.models import parse_exact_evm_payload, parse_facilitator_request
from tests.support.calls import counting_calls
from tests.support.payments import paid_body

PRICE = 4_321


def test_one_settle_recovers_the_signature_once_and_parses_the_payment_once(facilitator_settings, payer, payee):
    body = paid_body(payer, payee, PRICE)
    with counting_calls(recover_signer, parse_facilitator_request, parse_exact_evm_payload) as calls, \
            TestClient(create_app(facilitator_settings)) as client:
        before = calls.copy()
        settled = client.post("/settle", json=body).json()
        during = calls - before
    assert settled["success"] is True, settled
    assert during == {"recover_signer": 1, "parse_facilitator_request": 1, "parse_exact_evm_payload": 1}
