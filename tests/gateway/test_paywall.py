"""The 402 paywall on an in-process route: offers from the registry, one payment per request, settle
only on success, and every refusal with a reason, nothing served and nothing charged."""

from __future__ import annotations

import base64
import json

from app.protocol import decode_header
from app.registry.models import CapabilityStatus
from tests.gateway.conftest import FORECAST_PRICE, offered, pay_v2
from tests.support.payments import BASE_SEPOLIA, USDC, sign_exact

URL = "/examples/forecast?city=Porto"


def test_an_unpaid_request_gets_402_with_v2_header_and_v1_body(gateway, dev_deployment):
    response = gateway.get(URL)
    assert response.status_code == 402
    assert response.headers["cache-control"] == "no-store"
    assert "PAYMENT-RESPONSE" in response.headers["access-control-expose-headers"]
    required = decode_header(response.headers["payment-required"])
    assert required["x402Version"] == 2
    assert required["resource"]["url"].endswith(URL)
    (requirement,) = required["accepts"]
    assert requirement == {
        "scheme": "exact", "network": BASE_SEPOLIA, "amount": str(FORECAST_PRICE), "asset": USDC,
        "payTo": dev_deployment.wallets.providers[0].address, "maxTimeoutSeconds": 300,
        "extra": {"name": "USDC", "version": "2", "capabilityId": "forecast"},
    }
    body = response.json()
    assert body["x402Version"] == 1
    (v1,) = body["accepts"]
    assert v1["network"] == "base-sepolia" and v1["maxAmountRequired"] == str(FORECAST_PRICE)
    assert v1["resource"].endswith(URL)


def test_a_paid_request_is_served_settled_and_receipted(gateway, dev_deployment, balances, w3):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    requirement = offered(gateway.get(URL))
    response = gateway.get(URL, headers={"PAYMENT-SIGNATURE": pay_v2(payer, requirement)})
    assert response.status_code == 200, response.text
    assert response.json()["city"] == "Porto"
    assert response.headers["cache-control"] == "private"
    receipt = decode_header(response.headers["payment-response"])
    assert receipt["success"] is True and receipt["payer"] == payer.address
    assert w3.eth.get_transaction_receipt(receipt["transaction"])["status"] == 1
    assert watched.moved() == {payer.address: -FORECAST_PRICE, payee: FORECAST_PRICE}


def test_a_v1_client_pays_with_x_payment_and_gets_x_payment_response(gateway, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[1], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    v1 = gateway.get(URL).json()["accepts"][0]
    signed = sign_exact(payer, to=v1["payTo"], value=int(v1["maxAmountRequired"]), valid_after=0)
    header = base64.b64encode(json.dumps({"x402Version": 1, "scheme": "exact", "network": "base-sepolia",
                                          "payload": signed.payload()}).encode()).decode()
    response = gateway.get(URL, headers={"X-PAYMENT": header})
    assert response.status_code == 200, response.text
    assert decode_header(response.headers["x-payment-response"])["success"] is True
    assert watched.moved() == {payer.address: -FORECAST_PRICE, payee: FORECAST_PRICE}


def test_a_replayed_payment_header_is_refused_and_not_served_again(gateway, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    header = pay_v2(payer, offered(gateway.get(URL)))
    assert gateway.get(URL, headers={"PAYMENT-SIGNATURE": header}).status_code == 200
    replay = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
    assert replay.status_code == 402
    assert "invalid_exact_evm_nonce_already_used" in replay.json()["error"]
    assert "payment-response" not in replay.headers
    assert watched.moved() == {payer.address: -FORECAST_PRICE, payee: FORECAST_PRICE}


def _refused_without_charge(gateway, header, balances, payer, payee, *, status=402):
    watched = balances(payer.address, payee)
    response = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
    assert response.status_code == status, response.text
    assert "temperatureC" not in response.text  # not served
    assert "payment-response" not in response.headers  # not settled
    assert watched.moved() == {payer.address: 0, payee: 0}
    return response


def test_a_payment_for_another_capability_is_refused(gateway, registry, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    requirement = offered(gateway.get(URL))
    other = {**requirement, "extra": {**requirement["extra"], "capabilityId": "translate"}}
    response = _refused_without_charge(gateway, pay_v2(payer, other), balances, payer, payee)
    assert "extra.capabilityId" in response.json()["error"]


def test_a_payment_of_another_price_is_refused(gateway, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    requirement = offered(gateway.get(URL))
    cheaper = {**requirement, "amount": str(FORECAST_PRICE - 1)}
    response = _refused_without_charge(gateway, pay_v2(payer, cheaper), balances, payer, payee)
    assert "amount" in response.json()["error"]
    # The offered terms with a cheaper signed value: the facilitator refuses it.
    underpaid = pay_v2(payer, requirement, value=FORECAST_PRICE - 1)
    response = _refused_without_charge(gateway, underpaid, balances, payer, payee)
    assert "value_mismatch" in response.json()["error"]


def test_a_payment_to_another_payee_is_refused(gateway, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    thief = dev_deployment.wallets.providers[1].address
    requirement = offered(gateway.get(URL))
    response = _refused_without_charge(gateway, pay_v2(payer, {**requirement, "payTo": thief}), balances, payer,
                                       payee)
    assert "payTo" in response.json()["error"]
    response = _refused_without_charge(gateway, pay_v2(payer, requirement, to=thief), balances, payer, payee)
    assert "recipient_mismatch" in response.json()["error"]


def test_a_suspended_capability_is_neither_offered_nor_served(gateway, registry, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    header = pay_v2(payer, offered(gateway.get(URL)))
    registry.set_capability_status("forecast", CapabilityStatus.SUSPENDED)  # no restart
    response = _refused_without_charge(gateway, header, balances, payer, payee, status=403)
    assert response.json()["error"] == "capability_not_available"
    assert gateway.get(URL).status_code == 403


def test_a_price_change_applies_to_the_next_request_without_a_restart(gateway, registry):
    assert offered(gateway.get(URL))["amount"] == str(FORECAST_PRICE)
    capability = registry.capability("forecast")
    capability.price = 7_777
    registry.put_capability(capability)
    assert offered(gateway.get(URL))["amount"] == "7777"


def test_a_handler_error_settles_nothing_and_the_payment_can_be_used_again(gateway, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    requirement = offered(gateway.get(URL))
    header = pay_v2(payer, requirement)
    failed = gateway.get("/examples/forecast?city=" + "x" * 101, headers={"PAYMENT-SIGNATURE": header})
    assert failed.status_code == 422
    assert "payment-response" not in failed.headers
    assert watched.moved() == {payer.address: 0, payee: 0}
    retried = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
    assert retried.status_code == 200
    assert watched.moved() == {payer.address: -FORECAST_PRICE, payee: FORECAST_PRICE}


def test_a_malformed_payment_header_is_a_400_with_a_reason(gateway):
    for header in ("not base64!!", base64.b64encode(b"[1,2]").decode(), base64.b64encode(b"{}").decode()):
        response = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
        assert response.status_code == 400, (header, response.text)
        assert response.json()["error"] in {"invalid_payload", "invalid_x402_version"}


def test_a_settlement_still_pending_is_served_with_its_transaction_and_not_charged_twice(
    gateway_settings, registry, dev_deployment, balances, anvil
):
    from fastapi.testclient import TestClient

    from app.main import create_app

    gateway_settings.settle_receipt_timeout_seconds = 0.3
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    anvil.rpc("evm_setAutomine", [False])
    try:
        with TestClient(create_app(gateway_settings)) as gateway:
            header = pay_v2(payer, offered(gateway.get(URL)))
            response = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
            assert response.status_code == 200, response.text  # served: the payment is broadcast and recorded
            receipt = decode_header(response.headers["payment-response"])
            assert receipt["success"] is False and receipt["errorReason"] == "settlement_pending"
            assert len(receipt["transaction"]) == 66
            assert gateway.get(URL, headers={"PAYMENT-SIGNATURE": header}).status_code == 402  # no second use
            anvil.rpc("evm_mine")
    finally:
        anvil.rpc("evm_setAutomine", [True])
    assert watched.moved() == {payer.address: -FORECAST_PRICE, payee: FORECAST_PRICE}


def test_a_replay_that_respells_the_payer_address_is_still_refused(gateway, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    header = pay_v2(payer, offered(gateway.get(URL)))
    assert gateway.get(URL, headers={"PAYMENT-SIGNATURE": header}).status_code == 200
    payment = decode_header(header)
    payment["payload"]["authorization"]["from"] = payer.address.lower()
    respelled = base64.b64encode(json.dumps(payment).encode()).decode()
    replay = gateway.get(URL, headers={"PAYMENT-SIGNATURE": respelled})
    assert replay.status_code == 402
    assert watched.moved() == {payer.address: -FORECAST_PRICE, payee: FORECAST_PRICE}
