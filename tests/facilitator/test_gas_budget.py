"""The hot wallet's gas is not free to burn: beyond its hourly budget per network, /settle answers
``gas_budget_exhausted`` and sends nothing; the authorization stays recorded and is sent once there is room."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from app.main import create_app
from app.settlement.models import SettlementState
from app.settlement.repository import SettlementRepository
from tests.support.payments import BASE_SEPOLIA, paid_body

PRICE = 5_000
GAS_LIMIT = 200_000


def test_a_settlement_beyond_the_hourly_gas_budget_is_not_sent_and_is_sent_once_there_is_room(
    facilitator_settings, dev_deployment, payer, payee, balances, w3
):
    wallet = dev_deployment.wallets.facilitator.address
    base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
    most_one_costs = (2 * base_fee + facilitator_settings.priority_fee_wei) * GAS_LIMIT
    tight = facilitator_settings.model_copy(update={
        "gas_budget_wei_per_hour": {BASE_SEPOLIA: most_one_costs + most_one_costs // 10},  # room for one
        "settle_gas_limit": GAS_LIMIT, "settlement_lease_seconds": 1.0, "maintenance_seconds": 0.5})
    first, second = paid_body(payer, payee, PRICE), paid_body(payer, payee, PRICE + 1)
    watched = balances(payer.address, payee)
    with TestClient(create_app(tight)) as client:
        assert client.post("/settle", json=first).json()["success"] is True
        sent = w3.eth.get_transaction_count(wallet)
        refused = client.post("/settle", json=second).json()
        assert refused["success"] is False and refused["errorReason"] == "gas_budget_exhausted", refused
        assert w3.eth.get_transaction_count(wallet) == sent  # nothing was sent for it
        engine = client.app.state.service.engine
        rows = SettlementRepository(engine).in_states([SettlementState.VERIFIED])
        assert [row.value for row in rows] == [PRICE + 1]  # recorded, to be sent when there is room
    assert watched.moved() == {payer.address: -PRICE, payee: PRICE}

    roomy = tight.model_copy(update={"gas_budget_wei_per_hour": {"*": 10**18}})
    with TestClient(create_app(roomy)) as client:
        deadline = time.monotonic() + 15
        while watched.moved()[payee] != 2 * PRICE + 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # the maintenance pass sends it once its lease has run out
        settled = client.post("/settle", json=second).json()
    assert settled["success"] is True, settled
    assert watched.moved() == {payer.address: -(2 * PRICE + 1), payee: 2 * PRICE + 1}
