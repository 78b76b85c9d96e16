"""The spend ledger: what counts and for how long."""

from __future__ import annotations

from typing import Any

import pytest

from app.client import (
    DAY_SECONDS,
    PolicyViolation,
    SpendLedger,
    SpendPolicy,
    reserve_payment,
)
from app.protocol import PaymentRequirements
from tests.support.payments import requirements_v2

PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
KEY = "0x" + "7a" * 32
URL = "http://provider.test/weather"
T0 = 1_800_000_000.0


def req(amount: int, **overrides: Any) -> PaymentRequirements:
    return PaymentRequirements.model_validate(requirements_v2(PAYEE, amount, **overrides))


@pytest.fixture
def store() -> SpendLedger:
    return SpendLedger()


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
