"""The spend ledger: what counts and for how long (the same in memory and in the SQLite file), and the
file itself: one row per signed authorization, WAL, waiting for another process's booking, atomic
bookings across processes, a restart keeping the day.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.client import (
    DAY_SECONDS,
    PaymentSigner,
    PolicyViolation,
    SpendLedger,
    SpendLedgerError,
    SpendPolicy,
    SqliteSpendLedger,
    open_spend_ledger,
    paying_client,
    payment_of,
    reserve_payment,
)
from app.protocol import PaymentRequirements
from tests.client.hostile import hostile_payee, offer
from tests.support.payments import BASE_SEPOLIA, USDC, requirements_v2

PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
KEY = "0x" + "7a" * 32
URL = "http://provider.test/weather"
T0 = 1_800_000_000.0


def req(amount: int, **overrides: Any) -> PaymentRequirements:
    return PaymentRequirements.model_validate(requirements_v2(PAYEE, amount, **overrides))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SpendLedger]:
    """Each counting rule holds for both stores."""
    ledger = open_spend_ledger(None if request.param == "memory" else tmp_path / "spend.db")
    yield ledger
    if isinstance(ledger, SqliteSpendLedger):
        ledger.close()


# --------------------------------------------------------------------------- what counts, how long


def test_an_entry_counts_for_the_rolling_day(store: SpendLedger):
    store.reserve(10_000, capability_id=None, resource_url=URL, now=T0, valid_before=int(T0) + 300)
    assert store.spent(T0 + DAY_SECONDS - 1) == 10_000
    assert store.spent(T0 + DAY_SECONDS) == 0


def test_an_authorization_valid_longer_than_the_day_counts_until_valid_before(store: SpendLedger):
    valid_before = int(T0) + 2 * DAY_SECONDS
    store.reserve(10_000, capability_id=None, resource_url=URL, now=T0, valid_before=valid_before)
    assert store.spent(valid_before - 1) == 10_000
    assert store.spent(valid_before) == 0


def test_every_server_answer_keeps_an_entry_counting_only_a_release_removes_it(store: SpendLedger):
    entries = [store.reserve(1_000, capability_id=None, resource_url=URL, now=T0) for _ in range(5)]
    for entry, status in zip(entries, ("settled", "refused", "unconfirmed", "reserved"), strict=False):
        store.mark(entry.id, status)
    assert store.spent(T0) == 5_000
    assert sorted(e.status for e in store.entries(T0)) == ["refused", "reserved", "reserved", "settled",
                                                           "unconfirmed"]
    store.release(entries[4].id)  # the transport does this only when signing failed
    assert store.spent(T0) == 4_000


def test_capability_totals_by_id_and_by_exact_url_prefix(store: SpendLedger):
    store.reserve(1_000, capability_id="weather", resource_url="http://a.test/w_1/today", now=T0)
    store.reserve(2_000, capability_id=None, resource_url="http://a.test/wX1/today", now=T0)
    store.reserve(4_000, capability_id="news", resource_url="http://a.test/news%", now=T0)
    assert store.spent_on("weather", T0) == 1_000
    assert store.spent_on("http://a.test/w_1", T0) == 1_000  # "_" is not a wildcard
    assert store.spent_on("http://a.test/news%", T0) == 4_000
    assert store.spent_on("http://a.test/%", T0) == 0  # nor is "%"
    assert store.spent_on("http://a.test/", T0) == 7_000


def test_a_policy_refusal_adds_nothing(store: SpendLedger):
    policy = SpendPolicy(max_per_day=15_000)
    reserve_payment([req(10_000)], policy, store, T0, resource_url=URL)
    with pytest.raises(PolicyViolation):
        reserve_payment([req(10_000)], policy, store, T0, resource_url=URL)
    assert [e.amount for e in store.entries(T0)] == [10_000]


# --------------------------------------------------------------------------- the SQLite file


def test_each_signed_authorization_is_one_row_describing_exactly_what_was_signed(tmp_path: Path):
    path = tmp_path / "spend.db"
    ledger = SqliteSpendLedger(path)
    clock = [T0]
    extra = {"name": "USDC", "version": "2", "capabilityId": "weather"}
    signer = PaymentSigner.from_key(KEY)
    with hostile_payee(offer(PAYEE, 12_345, extra=extra)) as payee, \
            paying_client(signer, SpendPolicy(), ledger=ledger, clock=lambda: clock[0]) as http:
        made = payment_of(http.get(payee.url))
    ledger.close()
    authorization = payee.collected[0]["payload"]["authorization"]

    with sqlite3.connect(path) as raw:
        raw.row_factory = sqlite3.Row
        rows = [dict(row) for row in raw.execute("SELECT * FROM authorizations")]
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert rows == [{
        "id": made.ledger_entry, "signed_at": T0, "amount": 12_345, "asset": USDC, "network": BASE_SEPOLIA,
        "capability_id": "weather", "resource_url": payee.url, "payee": PAYEE, "payer": signer.address,
        "nonce": authorization["nonce"], "valid_before": int(authorization["validBefore"]), "status": "refused",
    }]
    assert int(authorization["validBefore"]) == int(T0) + 300


def test_a_restart_with_the_same_file_keeps_the_day(tmp_path: Path):
    path = tmp_path / "spend.db"
    first = SqliteSpendLedger(path)
    reserve_payment([req(9_000)], SpendPolicy(max_per_day=10_000), first, T0, resource_url=URL)
    first.close()
    again = SqliteSpendLedger(path)
    with pytest.raises(PolicyViolation) as caught:
        reserve_payment([req(9_000)], SpendPolicy(max_per_day=10_000), again, T0 + 60, resource_url=URL)
    assert caught.value.already_spent == 9_000
    assert again.spent(T0 + DAY_SECONDS) == 0  # the day still ends
    again.close()


def test_rows_are_pruned_a_window_after_they_stop_counting_never_sooner(tmp_path: Path):
    """A process whose clock is a little behind must still see the rows it counts."""
    path = tmp_path / "spend.db"
    ledger = SqliteSpendLedger(path)
    ledger.reserve(5_000, capability_id=None, resource_url=URL, now=T0, valid_before=int(T0) + 300)
    ledger.reserve(1, capability_id=None, resource_url=URL, now=T0 + DAY_SECONDS + 10)  # a booking, clock ahead
    assert ledger.spent(T0 + DAY_SECONDS - 10) == 5_001  # another process, 20 s behind, still counts it
    ledger.reserve(1, capability_id=None, resource_url=URL, now=T0 + 2 * DAY_SECONDS + 1)
    with sqlite3.connect(path) as raw:
        amounts = sorted(row[0] for row in raw.execute("SELECT amount FROM authorizations"))
    assert amounts == [1, 1]
    ledger.close()


def test_a_booking_waits_for_another_connection_s_write_then_sees_it(tmp_path: Path):
    path = tmp_path / "spend.db"
    ledger = SqliteSpendLedger(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process is in the middle of its booking
    other.execute("INSERT INTO authorizations VALUES ('x', ?, 9000, ?, ?, NULL, ?, ?, NULL, ?, ?, 'reserved')",
                  (T0, USDC, BASE_SEPOLIA, URL, PAYEE, "0x" + "11" * 32, int(T0) + 300))

    def commit_later() -> None:
        time.sleep(0.5)
        other.execute("COMMIT")

    committer = threading.Thread(target=commit_later)
    started = time.monotonic()
    committer.start()
    with pytest.raises(PolicyViolation) as caught:
        reserve_payment([req(2_000)], SpendPolicy(max_per_day=10_000), ledger, T0, resource_url=URL)
    waited = time.monotonic() - started
    committer.join()
    other.close()
    ledger.close()
    assert waited >= 0.4
    assert caught.value.already_spent == 9_000


def test_a_booking_that_cannot_get_the_file_fails_before_anything_is_signed(tmp_path: Path):
    path = tmp_path / "spend.db"
    ledger = SqliteSpendLedger(path, busy_timeout_seconds=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reserve_payment([req(1_000)], SpendPolicy(), ledger, T0, resource_url=URL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert ledger.entries(T0) == []
    ledger.close()


def test_a_file_of_another_format_is_refused(tmp_path: Path):
    path = tmp_path / "spend.db"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(SpendLedgerError, match="format 99"):
        SqliteSpendLedger(path)


def test_an_amount_the_file_cannot_hold_is_refused_before_signing(tmp_path: Path):
    ledger = SqliteSpendLedger(tmp_path / "spend.db")
    with pytest.raises(SpendLedgerError, match="does not fit"):
        reserve_payment([req(2**63)], SpendPolicy(max_per_payment=None, max_per_day=None), ledger, T0)
    assert ledger.entries(T0) == []
    ledger.close()


ROUNDS, PER_ROUND = 25, 2


def race_for_each_round(path: str, start: Any, results: Any) -> None:
    """One process of the agent: in every round, try to take all of that round's capability budget."""
    ledger = SqliteSpendLedger(path)
    policy = SpendPolicy(max_per_day=None, max_per_capability={f"round-{r}": PER_ROUND for r in range(ROUNDS)})
    got = []
    for r in range(ROUNDS):
        extra = {"name": "USDC", "version": "2", "capabilityId": f"round-{r}"}
        start.wait(timeout=120)  # every process starts the round together
        won = 0
        for _ in range(PER_ROUND):
            try:
                reserve_payment([req(1, extra=extra)], policy, ledger, time.time(), resource_url=URL)
                won += 1
            except PolicyViolation:
                pass
        got.append(won)
    ledger.close()
    results.put(got)


def test_processes_racing_for_the_last_allowance_never_overshoot_together(tmp_path: Path):
    """Three processes, 25 rounds; in each, all of them try to take the round's whole budget at once."""
    path = tmp_path / "spend.db"
    SqliteSpendLedger(path).close()
    workers = 3
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(workers)
    results = context.Queue()
    processes = [context.Process(target=race_for_each_round, args=(str(path), start, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    got = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert [sum(per_round) for per_round in zip(*got, strict=True)] == [PER_ROUND] * ROUNDS
    ledger = SqliteSpendLedger(path)
    assert ledger.spent() == ROUNDS * PER_ROUND
    assert len({entry.nonce for entry in ledger.entries()}) == ROUNDS * PER_ROUND
    ledger.close()


def test_noting_the_server_s_answer_on_a_busy_file_does_not_fail_the_paid_request(tmp_path: Path, caplog):
    path = tmp_path / "spend.db"
    ledger = SqliteSpendLedger(path, busy_timeout_seconds=0.2)
    entry = ledger.reserve(1_000, capability_id=None, resource_url=URL, now=T0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        ledger.mark(entry.id, "settled")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "it counts all the same" in caplog.text
    assert [(e.amount, e.status) for e in ledger.entries(T0)] == [(1_000, "reserved")]
    ledger.close()
