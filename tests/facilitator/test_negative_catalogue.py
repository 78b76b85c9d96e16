"""The negative catalogue: named ways a payment request can be wrong, each with the answer it gets.

Every case (``catalogue.py``) starts from a valid v2 or v1 body and changes one thing. Both /verify and
/settle must refuse it with the expected reason, as a 200 answer (an invalid payment is an answer, not an error)
or a 400 / 413 (a body that is not a JSON object, or is too large); never a 5xx, and no money moves.
"""

from __future__ import annotations

import base64

import pytest

from app.protocol import ProtocolError, Reason, decode_header
from tests.facilitator.catalogue import CATALOGUE, Body, Case, World


def test_the_catalogue_has_at_least_twenty_uniquely_named_cases():
    ids = [case.id for case in CATALOGUE]
    assert len(ids) >= 20
    assert len(set(ids)) == len(ids)


# ------------------------------------------------------------------------------------------ the test


def post(client, path: str, body: Body):
    if isinstance(body, bytes):
        return client.post(path, content=body, headers={"content-type": "application/json"})
    return client.post(path, json=body)


def reason_of(path: str, response) -> tuple[str, str]:
    """(reason, message) of an answer: the x402 fields for a 200, the error object otherwise."""
    body = response.json()
    if response.status_code != 200:
        return body["error"], body["message"]
    if path == "/verify":
        assert body["isValid"] is False, body
        return body["invalidReason"], body["invalidMessage"]
    assert body["success"] is False, body
    assert body["transaction"] == "", body
    return body["errorReason"], body["errorMessage"]


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.id for case in CATALOGUE])
def test_an_invalid_request_is_refused_by_verify_and_settle_and_moves_no_money(
    case: Case, client, payer, payee, dev_deployment, w3, token, balances
):
    world = World(payer=payer, payee=payee, deployer=dev_deployment.wallets.deployer, w3=w3, token=token)
    body = case.build(world)
    watched = balances(payer.address, payee)  # after any on-chain setup the case needed

    for path in ("/verify", "/settle"):
        response = post(client, path, body)
        assert response.status_code == case.status, (path, response.status_code, response.text)
        reason, message = reason_of(path, response)
        assert reason == case.reason, (path, response.json())
        assert isinstance(message, str) and message, (path, response.json())

    assert watched.moved() == {payer.address: 0, payee: 0}


# ------------------------------------------------------------------------------------------ header codec


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


URL_SAFE_JSON = '{"note":"~~~>>>???"}'  # its standard base64 holds '+' and '/'
PADDED_JSON = '{"x402Version":2}'  # 17 bytes: its base64 ends in '='


def test_the_header_fixtures_exercise_what_they_claim():
    assert {"+", "/"} <= set(b64(URL_SAFE_JSON))
    assert b64(PADDED_JSON).endswith("=")
    assert decode_header(b64(URL_SAFE_JSON)) == {"note": "~~~>>>???"}
    assert decode_header(b64(PADDED_JSON)) == {"x402Version": 2}


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("not base64!!", id="not_base64"),
        pytest.param(base64.urlsafe_b64encode(URL_SAFE_JSON.encode()).decode(), id="url_safe_alphabet"),
        pytest.param(b64(PADDED_JSON).rstrip("="), id="truncated_padding"),
        pytest.param(b64("this is not json"), id="base64_of_non_json"),
    ],
)
def test_a_malformed_payment_header_is_an_invalid_payload(header: str):
    with pytest.raises(ProtocolError) as raised:
        decode_header(header)
    assert raised.value.reason == Reason.invalid_payload
