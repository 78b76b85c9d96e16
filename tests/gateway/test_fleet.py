"""A concurrent fleet through the gateway: every paid call settles exactly once and is in the ledger,
every unpaid call gets a spec-shaped 402, and the agent over its daily limit is stopped by its own policy."""

from __future__ import annotations

import asyncio

import httpx
from x402.schemas import PaymentRequired as SdkPaymentRequired

from app.db.engine import make_engine
from app.db.schema import create_schema
from app.dev.demo import THRIFTY_AGENT, background_server, register_demo_registry, run_fleet
from app.dev.examples import translation_upstream
from app.main import create_app
from app.protocol import decode_header
from app.settlement.models import SettlementState
from app.settlement.repository import SettlementRepository


def test_a_concurrent_fleet_settles_every_paid_call_once_and_books_it(gateway_settings, dev_deployment, token, w3):
    engine = make_engine(gateway_settings.database_url)
    create_schema(engine)
    first_block = w3.eth.block_number + 1
    with background_server(translation_upstream()) as upstream_url, \
            background_server(create_app(gateway_settings)) as url:
        capabilities = register_demo_registry(engine, dev_deployment, upstream_url)
        for capability in capabilities:  # unpaid calls: a 402 whose header the official SDK parses
            path = capability.route or f"/cap/{capability.id}/translate"
            unpaid = httpx.get(url + path)
            assert unpaid.status_code == 402
            required = SdkPaymentRequired.model_validate(decode_header(unpaid.headers["payment-required"]))
            assert required.accepts[0].amount == str(capability.price)
        result = asyncio.run(run_fleet(url, list(dev_deployment.wallets.agents), calls_per_agent=6))

    assert result.failed == 0
    assert result.refused >= 1 and all(r.startswith(f"agent-{THRIFTY_AGENT}:") for r in result.refusals)
    assert "max_per_day" in result.refusals[0]
    rows = SettlementRepository(engine).in_states([SettlementState.CONFIRMED])
    assert len(rows) == result.paid
    assert len({row.tx_hash for row in rows}) == result.paid  # one transaction per paid call
    transfers = [event for event in token.events.Transfer().get_logs(from_block=first_block)
                 if event["args"]["to"] in {c.pay_to for c in capabilities}]
    assert len(transfers) == result.paid
    assert sum(event["args"]["value"] for event in transfers) == sum(result.spent.values())
    assert {row.capability_id for row in rows} == {"forecast", "translate"}
    engine.dispose()
