"""Nonces are allocated onto their settlement, once, on both backends: a settlement is only ever signed
under the nonce it holds, so however often it is signed, at most one of its transactions can be mined."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from app.db.schema import create_schema
from app.settlement.models import SettlementState
from app.settlement.repository import SettlementRepository, SignerNonceRepository
from tests.ledger.builders import NETWORK, SIGNER, record, settlement


def _fresh(engine, floor: int = 7) -> tuple[SettlementRepository, SignerNonceRepository]:
    create_schema(engine)
    nonces = SignerNonceRepository(engine)
    nonces.raise_floor(NETWORK, SIGNER, floor)
    return SettlementRepository(engine), nonces


def test_a_nonce_is_written_onto_its_verified_settlement_once(engine):
    settlements, nonces = _fresh(engine)
    first, second = record(engine, settlement(value=1)), record(engine, settlement(value=2))
    assert nonces.allocate_to(first.id, NETWORK, SIGNER) == 7
    assert nonces.allocate_to(first.id, NETWORK, SIGNER) is None  # it holds one: nothing is handed out
    assert nonces.allocate_to(second.id, NETWORK, SIGNER) == 8  # no gap was left behind
    assert (settlements.get(first.id).tx_nonce, settlements.get(first.id).signer) == (7, SIGNER)
    assert nonces.next_nonce(NETWORK, SIGNER) == 9


def test_a_settlement_that_is_no_longer_verified_takes_no_nonce(engine):
    settlements, nonces = _fresh(engine)
    row = record(engine, settlement(value=1))
    assert settlements.mark_expired(row.id, reason="expired", message="window closed")
    assert nonces.allocate_to(row.id, NETWORK, SIGNER) is None
    assert nonces.next_nonce(NETWORK, SIGNER) == 7 and settlements.get(row.id).tx_nonce is None


def test_a_settlement_is_submitted_only_under_its_own_nonce_and_signer(engine):
    settlements, nonces = _fresh(engine)
    row = record(engine, settlement(value=1))
    nonce = nonces.allocate_to(row.id, NETWORK, SIGNER)
    stored = {"tx_hash": "0x" + "ab" * 32, "raw_transaction": "0x02"}
    assert not settlements.mark_submitted(row.id, signer=SIGNER, tx_nonce=nonce + 1, **stored)
    other = "0x" + "12" * 20
    assert not settlements.mark_submitted(row.id, signer=other, tx_nonce=nonce, **stored)
    assert settlements.get(row.id).state == SettlementState.VERIFIED
    assert settlements.mark_submitted(row.id, signer=SIGNER, tx_nonce=nonce, **stored)


def test_concurrent_allocations_hand_out_each_nonce_to_exactly_one_settlement(engine):
    settlements, nonces = _fresh(engine, floor=100)
    rows = [record(engine, settlement(value=index + 1)) for index in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        # every row is asked for twice, concurrently: each still gets exactly one nonce
        handed = list(pool.map(lambda row: nonces.allocate_to(row.id, NETWORK, SIGNER), rows + rows))
    given = [nonce for nonce in handed if nonce is not None]
    assert sorted(given) == list(range(100, 140))
    assert sorted(settlements.get(row.id).tx_nonce for row in rows) == list(range(100, 140))
    assert nonces.next_nonce(NETWORK, SIGNER) == 140
