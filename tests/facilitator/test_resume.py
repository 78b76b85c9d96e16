"""A restart finishes what a crash left open: nothing recorded is lost, nothing is sent twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from app.chain import eip3009, sender
from app.chain.keys import HotWallet
from app.db.engine import make_engine
from app.db.schema import create_schema
from app.main import create_app
from app.settlement.models import Settlement, SettlementState
from app.settlement.repository import SettlementRepository, SignerNonceRepository
from tests.support.payments import BASE_SEPOLIA, USDC, body_v2, requirements_v2, sign_exact

PRICE = 4_200


def _row(signed, payee: str, state: SettlementState, **fields) -> Settlement:
    auth = signed.authorization
    return Settlement(
        network=BASE_SEPOLIA, asset=USDC, payer=auth["from"], payee=payee, nonce=auth["nonce"], value=PRICE,
        valid_after=int(auth["validAfter"]), valid_before=int(auth["validBefore"]), signature=signed.signature,
        x402_version=2, state=state, updated_at=datetime.now(UTC) - timedelta(minutes=1), **fields,
    )


def _start_and_wait_for_resume(settings) -> TestClient:
    client = TestClient(create_app(settings))
    client.__enter__()
    deadline = time.monotonic() + 20
    while not client.app.state.service.resumption.done():
        assert time.monotonic() < deadline, "resuming settlements did not finish"
        time.sleep(0.05)
    return client


def test_a_recorded_but_never_signed_settlement_is_submitted_after_a_restart(
    facilitator_settings, payer, payee, balances
):
    watched = balances(payer.address, payee)
    signed = sign_exact(payer, to=payee, value=PRICE)
    engine = make_engine(facilitator_settings.database_url)
    create_schema(engine)
    row = SettlementRepository(engine).create(_row(signed, payee, SettlementState.VERIFIED))

    client = _start_and_wait_for_resume(facilitator_settings)
    try:
        resumed = SettlementRepository(engine).get(row.id)
        assert resumed.state == SettlementState.CONFIRMED
        assert watched.moved() == {payer.address: -PRICE, payee: PRICE}
        again = client.post("/settle", json=body_v2(signed, requirements_v2(payee, PRICE))).json()
        assert again["success"] is True and again["transaction"] == resumed.tx_hash
        assert watched.moved() == {payer.address: -PRICE, payee: PRICE}
    finally:
        client.__exit__(None, None, None)
        engine.dispose()


def test_a_stored_transaction_that_never_reached_the_node_is_resent_after_a_restart(
    facilitator_settings, payer, payee, balances, dev_deployment, w3
):
    watched = balances(payer.address, payee)
    facilitator = dev_deployment.wallets.facilitator
    signed = sign_exact(payer, to=payee, value=PRICE)
    auth = signed.authorization
    nonce = w3.eth.get_transaction_count(facilitator.address, "pending")
    block = w3.eth.get_block("latest")
    tx = sender.sign_transaction(
        HotWallet.from_key(facilitator.key), chain_id=84532, nonce=nonce, to=USDC,
        data=eip3009.transfer_with_authorization_calldata(
            payer.address, payee, PRICE, 0, int(auth["validBefore"]), bytes.fromhex(auth["nonce"][2:]),
            bytes.fromhex(signed.signature[2:]),
        ),
        gas=200_000, max_fee_per_gas=2 * block["baseFeePerGas"] + 10**8, max_priority_fee_per_gas=10**8,
    )
    engine = make_engine(facilitator_settings.database_url)
    create_schema(engine)
    # The crashed run had allocated the nonce and stored the signed bytes, then died before sending.
    SignerNonceRepository(engine).raise_floor(BASE_SEPOLIA, facilitator.address, nonce + 1)
    row = SettlementRepository(engine).create(_row(
        signed, payee, SettlementState.SUBMITTED, signer=facilitator.address, tx_nonce=nonce, tx_hash=tx.hash,
        raw_transaction="0x" + tx.raw.hex(),
    ))
    assert w3.eth.get_transaction_count(facilitator.address) == nonce  # really never sent

    client = _start_and_wait_for_resume(facilitator_settings)
    try:
        assert SettlementRepository(engine).get(row.id).state == SettlementState.CONFIRMED
        assert watched.moved() == {payer.address: -PRICE, payee: PRICE}
        answer = client.post("/settle", json=body_v2(signed, requirements_v2(payee, PRICE))).json()
        assert answer == {"success": True, "payer": payer.address, "transaction": tx.hash,
                          "network": BASE_SEPOLIA, "amount": str(PRICE)}
        # A new payment after the restart gets the next nonce, not the resent one.
        fresh = client.post("/settle", json=body_v2(sign_exact(payer, to=payee, value=PRICE),
                                                    requirements_v2(payee, PRICE))).json()
        assert fresh["success"] is True
        assert w3.eth.get_transaction(fresh["transaction"])["nonce"] == nonce + 1
    finally:
        client.__exit__(None, None, None)
        engine.dispose()
