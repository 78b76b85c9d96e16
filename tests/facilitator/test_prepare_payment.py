"""The negative catalogue against the I/O-free checks directly: no chain, no HTTP, no database.

Each case of ``catalogue.py`` that the service refuses before reading the chain is refused here by the
parsing or by ``prepare_payment`` with the same reason; each case only the chain can judge passes both,
and a bad EOA signature among them is already flagged (the payer was not recovered), which is what sends
verification on to the EIP-1271 check.
"""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from app.config import Settings
from app.facilitator.verification import PaymentInvalid, PreparedPayment, prepare_payment
from app.protocol import ProtocolError, Reason, parse_facilitator_request
from tests.facilitator.catalogue import CATALOGUE, Case, Stage, World, valid_v2
from tests.support.payments import BASE_SEPOLIA

NETWORKS = Settings(rpc_urls={BASE_SEPOLIA: "http://127.0.0.1:9"}).enabled_networks()  # never called
PAYER = Account.from_key("0x" + "11" * 32)
PAYEE = Account.from_key("0x" + "22" * 32).address
WORLD = World(payer=PAYER, payee=PAYEE, deployer=PAYER, w3=None, token=None)
OFFLINE = [case for case in CATALOGUE if case.stage is not Stage.HTTP and not case.needs_chain_setup]


def prepared(body: dict) -> PreparedPayment:
    return prepare_payment(parse_facilitator_request(body), NETWORKS, int(time.time()))


def test_a_valid_payment_is_prepared_with_its_payer_recovered():
    payment = prepared(valid_v2(WORLD))
    assert payment.payer == PAYER.address and payment.eoa_signature_valid
    assert payment.authorization.value == 12_345 and payment.network.network == BASE_SEPOLIA


@pytest.mark.parametrize("case", OFFLINE, ids=[case.id for case in OFFLINE])
def test_each_catalogue_case_is_refused_at_its_stage_with_its_reason(case: Case):
    body = case.build(WORLD)
    assert isinstance(body, dict)
    if case.stage is Stage.PARSE:
        with pytest.raises(ProtocolError) as refused:
            parse_facilitator_request(body)
        assert refused.value.reason == case.reason
        return
    request = parse_facilitator_request(body)
    if case.stage is Stage.PREPARE:
        with pytest.raises(PaymentInvalid) as invalid:
            prepare_payment(request, NETWORKS, int(time.time()))
        assert invalid.value.reason == case.reason and invalid.value.message
        return
    payment = prepare_payment(request, NETWORKS, int(time.time()))  # only the chain can refuse it
    if case.reason == Reason.invalid_exact_evm_payload_signature:
        assert not payment.eoa_signature_valid


def test_every_case_but_the_http_ones_and_those_needing_chain_setup_runs_offline():
    assert {case.id for case in CATALOGUE} - {case.id for case in OFFLINE} == {
        "malformed_json", "json_array_body", "body_over_64kib", "nonce_already_used", "nonce_cancelled",
    }
