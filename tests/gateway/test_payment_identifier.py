"""The payment-identifier extension at our gateway: a payment resent with the same identifier gets the first
answer (status, body, receipt) and is never served or charged again; the identifier is bound to its payment."""

from __future__ import annotations

import uuid

from app.gateway.models import PaymentResponse
from app.gateway.payment_ids import fingerprint_of
from app.gateway.repository import PaymentResponseRepository
from app.protocol import decode_header, parse_facilitator_request
from tests.gateway.conftest import FORECAST_PRICE, offered, pay_v2

URL = "/examples/forecast?city=Porto"


def _an_id() -> str:
    return uuid.uuid4().hex  # 32 characters: within 16-128


def test_the_402_advertises_the_extension_with_an_optional_identifier(gateway):
    declared = decode_header(gateway.get(URL).headers["payment-required"])["extensions"]["payment-identifier"]
    assert declared["info"] == {"required": False}
    assert declared["schema"]["properties"]["id"]["minLength"] == 16


def test_a_resent_payment_gets_the_first_answer_and_is_neither_served_nor_charged_again(
    gateway, dev_deployment, balances
):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    header = pay_v2(payer, offered(gateway.get(URL)), payment_id=_an_id())
    first = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
    again = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
    assert first.status_code == 200, first.text
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["payment-response"] == first.headers["payment-response"]
    assert again.headers["x-payment-replayed"] == "true"
    assert watched.moved() == {payer.address: -FORECAST_PRICE, payee: FORECAST_PRICE}


def test_the_same_identifier_on_another_payment_is_a_conflict(gateway, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    identifier = _an_id()
    requirement = offered(gateway.get(URL))
    assert gateway.get(URL, headers={"PAYMENT-SIGNATURE": pay_v2(payer, requirement, payment_id=identifier)}
                       ).status_code == 200
    watched = balances(payer.address, payee)
    other = gateway.get(URL, headers={"PAYMENT-SIGNATURE": pay_v2(payer, requirement, payment_id=identifier)})
    assert other.status_code == 409 and other.json()["error"] == "payment_id_conflict"
    assert watched.moved() == {payer.address: 0, payee: 0}


def test_a_resend_while_the_original_is_in_flight_is_not_run(gateway, registry, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    identifier = _an_id()
    header = pay_v2(payer, offered(gateway.get(URL)), payment_id=identifier)
    # the original request: recorded under the identifier, still being served (as another worker would be)

    payload = decode_header(header)
    request = parse_facilitator_request({"x402Version": 2, "paymentPayload": payload,
                                         "paymentRequirements": payload["accepted"]})
    engine = gateway.app.state.service.engine
    assert PaymentResponseRepository(engine).begin(PaymentResponse(
        payment_id=identifier, fingerprint=fingerprint_of(request), capability_id="forecast", request_id="original"))
    watched = balances(payer.address, payee)
    resend = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
    assert resend.status_code == 409 and resend.json()["error"] == "payment_in_progress"
    assert resend.headers["retry-after"] == "1"
    assert watched.moved() == {payer.address: 0, payee: 0}


def test_a_malformed_identifier_is_refused_before_anything_is_paid(gateway, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    response = gateway.get(URL, headers={"PAYMENT-SIGNATURE": pay_v2(payer, offered(gateway.get(URL)),
                                                                      payment_id="short")})
    assert response.status_code == 400 and response.json()["error"] == "invalid_payload"
    assert watched.moved() == {payer.address: 0, payee: 0}


def test_a_request_that_was_not_served_forgets_its_identifier_so_the_payment_can_come_again(
    gateway, dev_deployment, balances
):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    header = pay_v2(payer, offered(gateway.get(URL)), payment_id=_an_id())
    failed = gateway.get("/examples/forecast?city=" + "x" * 101, headers={"PAYMENT-SIGNATURE": header})
    assert failed.status_code == 422  # the handler refused: nothing settled, the claim and the id released
    served = gateway.get(URL, headers={"PAYMENT-SIGNATURE": header})
    assert served.status_code == 200, served.text
    assert watched.moved() == {payer.address: -FORECAST_PRICE, payee: FORECAST_PRICE}
