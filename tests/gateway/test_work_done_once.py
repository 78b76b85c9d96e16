"""One paid gateway request decodes and parses its payment once and recovers its signature once, though
it is verified, claimed and settled: the in-process facilitator takes the parsed request and keeps what
verify prepared for settle."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.chain.signatures import recover_signer
from app.main import create_app
from app.protocol.codec import decode_header
from app.protocol.models import parse_exact_evm_payload, parse_facilitator_request
from tests.gateway.conftest import offered, pay_v2
from tests.support.calls import counting_calls

URL = "/examples/forecast?city=Porto"


def test_a_paid_request_parses_its_payment_once(gateway_settings, registry, dev_deployment):
    payer = dev_deployment.wallets.agents[0]
    counted = (decode_header, parse_facilitator_request, parse_exact_evm_payload, recover_signer)
    with counting_calls(*counted) as calls, TestClient(create_app(gateway_settings)) as client:
        header = pay_v2(payer, offered(client.get(URL)))
        before = calls.copy()
        response = client.get(URL, headers={"PAYMENT-SIGNATURE": header})
        during = calls - before
    assert response.status_code == 200, response.text
    assert decode_header(response.headers["payment-response"])["success"] is True
    assert during == {"decode_header": 1, "parse_facilitator_request": 1, "parse_exact_evm_payload": 1,
                      "recover_signer": 1}
