"""Ledger test data, built through the repositories the service itself uses."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy.engine import Engine

from app.settlement.models import Settlement
from app.settlement.repository import SettlementRepository, SignerNonceRepository

NETWORK = "eip155:84532"
USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PAYEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
SIGNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

_nonces = itertools.count(1)


def settlement(
    *, value: int, agent_id: str = "agent-1", team: str = "team-a", cost_center: str = "cc-1",
    capability_id: str = "cap-1", provider: str = "prov-1", payer: str = PAYER, asset: str = USDC,
    network: str = NETWORK,
) -> Settlement:
    nonce = next(_nonces)
    return Settlement(
        network=network, asset=asset, payer=payer, payee=PAYEE, nonce=f"0x{nonce:064x}", value=value,
        valid_after=0, valid_before=2**40, signature="0x" + "11" * 65, x402_version=2, agent_id=agent_id,
        team=team, cost_center=cost_center, capability_id=capability_id, provider=provider,
    )


def record(engine: Engine, row: Settlement) -> Settlement:
    created = SettlementRepository(engine).create(row)
    assert created is not None and created.id is not None
    return created


def submit(engine: Engine, settlement_id: int) -> bool:
    """verified -> submitted the way the engine does it: a nonce allocated onto the row, then its transaction
    stored under that nonce. False when the row was not verified."""
    nonces = SignerNonceRepository(engine)
    nonces.raise_floor(NETWORK, SIGNER, 0)
    nonce = nonces.allocate_to(settlement_id, NETWORK, SIGNER)
    return SettlementRepository(engine).mark_submitted(
        settlement_id, signer=SIGNER, tx_nonce=-1 if nonce is None else nonce,
        tx_hash=f"0x{settlement_id:064x}", raw_transaction="0x02")


def confirm(engine: Engine, row: Settlement, *, gas_used: int = 0, gas_price: int = 0,
            booked_at: datetime | None = None) -> Settlement:
    """Record ``row`` and take it verified -> submitted -> confirmed (which books its journal lines).

    ``booked_at`` is the moment its journal lines are booked at (a test needs lines in chosen hours, days,
    months); the booking takes it, as an import of history would, since booked lines are never rewritten.
    """
    repository = SettlementRepository(engine)
    created = record(engine, row)
    assert submit(engine, created.id)
    assert repository.mark_confirmed(created.id, gas_used=gas_used, effective_gas_price=gas_price, block_number=1,
                                     booked_at=booked_at)
    return created


def reverse(engine: Engine, settlement_id: int, *, booked_at: datetime | None = None) -> None:
    """Reverse a confirmed settlement; its reversing lines are booked at ``booked_at`` (default: now)."""
    assert SettlementRepository(engine).mark_reversed(settlement_id, reason="reorged", memo="block reorged away",
                                                      booked_at=booked_at)


def fail(engine: Engine, row: Settlement) -> Settlement:
    """Record ``row`` and let it fail before confirmation: no journal lines."""
    repository = SettlementRepository(engine)
    created = record(engine, row)
    assert repository.mark_failed(created.id, reason="reverted", message="reverted")
    return created
