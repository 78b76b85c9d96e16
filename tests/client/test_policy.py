"""Spend policy: which requirement is chosen, each refusal with its numbers, the rolling 24 h window, the
finite defaults, the validity cap, and known assets with their own EIP-712 domains."""

from __future__ import annotations

import threading

import pytest

from app.client import (
    DAY_SECONDS,
    KnownAsset,
    NoPayableRequirement,
    PolicyViolation,
    SpendLedger,
    SpendPolicy,
    choose_requirement,
    known_usdc,
    reserve_payment,
)
from app.config import known_networks
from app.protocol import PaymentRequirements, PaymentRequirementsV1
from tests.support.payments import BASE_SEPOLIA, USDC, requirements_v1, requirements_v2

PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
OTHER_PAYEE = "0x1111111111111111111111111111111111111111"
OTHER_ASSET = "0x2222222222222222222222222222222222222222"
URL = "http://provider.test/weather"
T0 = 1_800_000_000.0


def req(amount: int, **overrides) -> PaymentRequirements:
    return PaymentRequirements.model_validate(requirements_v2(PAYEE, amount, **overrides))


def choose(accepts, policy, ledger=None, now=T0, url=URL):
    return choose_requirement(accepts, policy, ledger or SpendLedger(), now, resource_url=url)


def test_the_cheapest_allowed_requirement_is_chosen_ties_in_server_order():
    accepts = [req(30_000), req(10_000, payTo=OTHER_PAYEE), req(10_000), req(20_000)]
    choice = choose(accepts, SpendPolicy())
    assert (choice.index, choice.amount, choice.network, choice.chain_id) == (1, 10_000, BASE_SEPOLIA, 84532)
    assert choice.resource_url == URL


def test_a_disallowed_cheaper_requirement_is_skipped_for_an_allowed_one():
    accepts = [req(10_000, payTo=OTHER_PAYEE), req(20_000)]
    choice = choose(accepts, SpendPolicy(allowed_payees=frozenset({PAYEE.lower()})))
    assert choice.index == 1


@pytest.mark.parametrize(
    ("policy", "overrides", "limit", "requested"),
    [
        (SpendPolicy(allowed_networks=frozenset({"eip155:8453"})), {}, "network", BASE_SEPOLIA),
        (SpendPolicy(allowed_assets=frozenset({OTHER_ASSET})), {}, "asset", USDC),
        (SpendPolicy(allowed_payees=frozenset({OTHER_PAYEE})), {}, "payee", PAYEE),
    ],
    ids=["network", "asset", "payee"],
)
def test_allow_lists_refuse_with_the_rule_and_the_value(policy, overrides, limit, requested):
    with pytest.raises(PolicyViolation) as caught:
        choose([req(10_000, **overrides)], policy)
    error = caught.value
    assert (error.limit, error.requested, error.excess) == (limit, requested, None)
    assert limit in str(error) and requested in str(error)


def test_allow_lists_are_case_insensitive_and_accept_v1_network_names():
    policy = SpendPolicy(allowed_networks=frozenset({"base-sepolia"}),
                         allowed_assets=frozenset({"0x" + USDC[2:].upper()}),
                         allowed_payees=frozenset({PAYEE.lower()}))
    assert policy.allowed_networks == frozenset({BASE_SEPOLIA})
    assert choose([req(1)], policy).amount == 1
    v1 = PaymentRequirementsV1.model_validate(requirements_v1(PAYEE, 5))
    assert choose([v1], policy).network == BASE_SEPOLIA


def test_max_per_payment_says_by_how_much():
    with pytest.raises(PolicyViolation) as caught:
        choose([req(12_500)], SpendPolicy(max_per_payment=10_000))
    error = caught.value
    assert (error.limit, error.requested, error.allowed, error.excess) == ("max_per_payment", 12_500, 10_000, 2_500)
    assert "by 2500" in str(error)


def test_max_per_day_counts_what_the_ledger_holds_plus_this_payment():
    ledger = SpendLedger()
    ledger.reserve(60_000, capability_id=None, resource_url=URL, now=T0 - 100)
    ledger.reserve(30_000, capability_id="other", resource_url="http://elsewhere.test/x", now=T0 - 50)
    with pytest.raises(PolicyViolation) as caught:
        choose([req(15_000)], SpendPolicy(max_per_day=100_000), ledger)
    error = caught.value
    assert (error.limit, error.requested, error.allowed, error.already_spent, error.excess) == (
        "max_per_day", 15_000, 100_000, 90_000, 5_000)
    assert "by 5000" in str(error) and "90000 already spent" in str(error)
    assert choose([req(10_000)], SpendPolicy(max_per_day=100_000), ledger).amount == 10_000  # exactly at the limit


def test_max_per_capability_by_capability_id_from_extra():
    ledger = SpendLedger()
    ledger.reserve(40_000, capability_id="weather", resource_url=URL, now=T0 - 10)
    ledger.reserve(99_000, capability_id="news", resource_url=URL, now=T0 - 10)
    weather = req(15_000, extra={"name": "USDC", "version": "2", "capabilityId": "weather"})
    policy = SpendPolicy(max_per_capability={"weather": 50_000})
    with pytest.raises(PolicyViolation) as caught:
        choose([weather], policy, ledger)
    error = caught.value
    assert (error.limit, error.capability, error.already_spent, error.excess) == (
        "max_per_capability", "weather", 40_000, 5_000)
    news = req(15_000, extra={"name": "USDC", "version": "2", "capabilityId": "news"})
    assert choose([news], policy, ledger).capability_id == "news"  # no limit for that capability


def test_max_per_capability_by_resource_url_prefix():
    ledger = SpendLedger()
    ledger.reserve(8_000, capability_id=None, resource_url="http://provider.test/weather/today", now=T0 - 10)
    policy = SpendPolicy(max_per_capability={"http://provider.test/weather": 10_000})
    with pytest.raises(PolicyViolation) as caught:
        choose([req(3_000)], policy, ledger, url="http://provider.test/weather/tomorrow")
    assert (caught.value.limit, caught.value.excess) == ("max_per_capability", 1_000)
    assert choose([req(3_000)], policy, ledger, url="http://provider.test/news").amount == 3_000


def test_the_day_is_rolling_24_hours():
    ledger = SpendLedger()
    ledger.reserve(10_000, capability_id=None, resource_url=URL, now=T0)
    policy = SpendPolicy(max_per_day=10_000)
    with pytest.raises(PolicyViolation):
        choose([req(1)], policy, ledger, now=T0 + DAY_SECONDS - 1)
    assert ledger.spent(T0 + DAY_SECONDS - 1) == 10_000
    assert choose([req(1)], policy, ledger, now=T0 + DAY_SECONDS + 1).amount == 1
    assert ledger.spent(T0 + DAY_SECONDS + 1) == 0


def test_a_released_reservation_no_longer_counts():
    ledger = SpendLedger()
    entry = ledger.reserve(10_000, capability_id=None, resource_url=URL, now=T0)
    ledger.release(entry.id)
    assert ledger.spent(T0) == 0


def test_the_violation_of_the_requirement_that_got_furthest_is_raised():
    """The cheap one is on a forbidden network; the dear one passes the allow-lists but not the day."""
    accepts = [req(1_000, network="eip155:8453"), req(50_000)]
    policy = SpendPolicy(allowed_networks=frozenset({BASE_SEPOLIA}), max_per_day=20_000)
    with pytest.raises(PolicyViolation) as caught:
        choose(accepts, policy)
    assert (caught.value.limit, caught.value.excess) == ("max_per_day", 30_000)


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"scheme": "upto"}, "scheme"),
        ({"network": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"}, "network"),
        ({"extra": {}}, "EIP-712 domain"),
        ({"extra": {"name": "USDC", "version": "2", "assetTransferMethod": "permit2"}}, "permit2"),
        ({"asset": "not-an-address"}, "asset"),
    ],
)
def test_requirements_this_client_cannot_sign_are_listed(overrides, why):
    with pytest.raises(NoPayableRequirement) as caught:
        choose([req(10_000, **overrides)], SpendPolicy())
    assert len(caught.value.refusals) == 1
    assert why in caught.value.refusals[0]
    assert "accepts[0]" in str(caught.value)


def test_an_empty_accepts_is_not_payable():
    with pytest.raises(NoPayableRequirement, match="accepts is empty"):
        choose([], SpendPolicy())


def test_policy_values_are_validated():
    with pytest.raises(ValueError):
        SpendPolicy(max_per_day=-1)
    with pytest.raises(ValueError):
        SpendPolicy(max_per_capability={"x": 1.5})  # type: ignore[dict-item]


def test_concurrent_reservations_never_overshoot_the_day():
    ledger = SpendLedger()
    policy = SpendPolicy(max_per_day=50_000)
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def pay() -> None:
        barrier.wait()
        try:
            reserve_payment([req(10_000)], policy, ledger, T0, resource_url=URL)
            outcomes.append("paid")
        except PolicyViolation as error:
            outcomes.append(error.limit)

    threads = [threading.Thread(target=pay) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("paid") == 5
    assert outcomes.count("max_per_day") == 15
    assert ledger.spent(T0) == 50_000


# ------------------------------------------------------------------------ defaults (issue 10, item 3)


def test_the_default_policy_has_finite_limits():
    policy = SpendPolicy()
    assert (policy.max_per_payment, policy.max_per_day, policy.max_validity_seconds) == (1_000_000, 10_000_000, 300)
    with pytest.raises(PolicyViolation) as caught:
        choose([req(1_000_001)], policy)
    assert (caught.value.limit, caught.value.excess) == ("max_per_payment", 1)
    ledger = SpendLedger()
    for _ in range(10):
        reserve_payment([req(1_000_000)], policy, ledger, T0, resource_url=URL)
    with pytest.raises(PolicyViolation) as caught:
        choose([req(1)], policy, ledger)
    assert (caught.value.limit, caught.value.already_spent) == ("max_per_day", 10_000_000)


def test_none_removes_an_amount_limit_only_when_asked():
    assert choose([req(10**12)], SpendPolicy(max_per_payment=None, max_per_day=None)).amount == 10**12


@pytest.mark.parametrize("seconds", [0, -1, 366 * DAY_SECONDS, 1.5, True])
def test_the_validity_cap_is_a_whole_number_of_seconds_up_to_a_year(seconds):
    with pytest.raises(ValueError, match="max_validity_seconds"):
        SpendPolicy(max_validity_seconds=seconds)


@pytest.mark.parametrize(("asked", "cap", "valid_for"), [(10**9, 300, 300), (301, 300, 300), (60, 300, 60),
                                                        (0, 300, 0), (3600, 1200, 1200)])
def test_valid_before_is_the_server_s_window_capped_by_the_policy(asked, cap, valid_for):
    policy = SpendPolicy(max_validity_seconds=cap)
    assert policy.valid_before(req(1, maxTimeoutSeconds=asked), T0 + 0.9) == int(T0) + valid_for


def test_a_reservation_carries_the_capped_valid_before_and_a_fresh_nonce():
    ledger = SpendLedger()
    _, first = reserve_payment([req(1, maxTimeoutSeconds=10**9)], SpendPolicy(), ledger, T0, resource_url=URL,
                               payer=PAYEE)
    _, second = reserve_payment([req(1)], SpendPolicy(), ledger, T0, resource_url=URL)
    assert first.valid_before == int(T0) + 300
    assert (first.asset, first.network, first.payee, first.payer) == (USDC, BASE_SEPOLIA, PAYEE, PAYEE)
    assert first.nonce != second.nonce and len(bytes.fromhex(first.nonce[2:])) == 32


# ------------------------------------------------------------------------ known assets and their domains


def test_a_known_usdc_with_a_wrong_eip712_domain_is_refused_naming_both_domains():
    with pytest.raises(PolicyViolation) as caught:
        choose([req(10_000, extra={"name": "USD Coin", "version": "2"})], SpendPolicy())
    error = caught.value
    assert (error.limit, error.requested, error.allowed, error.asset, error.network) == (
        "asset_domain", "name='USD Coin' version='2'", frozenset({"name='USDC' version='2'"}), USDC, BASE_SEPOLIA)
    assert str(error) == (f"spend policy asset_domain: the server gives the token {USDC} on {BASE_SEPOLIA} the "
                          "EIP-712 domain name='USD Coin' version='2', but that token's domain is "
                          "name='USDC' version='2'; refusing to sign")


def test_an_unknown_token_is_refused_even_with_usdc_s_domain():
    with pytest.raises(PolicyViolation) as caught:
        choose([req(10_000, asset=OTHER_ASSET)], SpendPolicy())
    assert (caught.value.limit, caught.value.requested, caught.value.allowed) == ("asset", OTHER_ASSET,
                                                                                  frozenset({USDC}))


def test_a_known_token_is_known_on_its_own_network_only():
    base_usdc = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    with pytest.raises(PolicyViolation) as caught:
        choose([req(1, asset=base_usdc, extra={"name": "USD Coin", "version": "2"})], SpendPolicy())
    assert caught.value.limit == "asset"
    on_base = req(1, asset=base_usdc, network="eip155:8453", extra={"name": "USD Coin", "version": "2"})
    assert choose([on_base], SpendPolicy()).network == "eip155:8453"


@pytest.mark.parametrize("network", sorted(known_networks()))
def test_every_usdc_of_the_networks_file_is_payable_with_its_own_domain(network):
    [asset] = known_networks()[network].assets
    requirement = req(1, network=network, asset=asset.address.lower(),
                      extra={"name": asset.name, "version": asset.version})
    assert choose([requirement], SpendPolicy()).network == network


def test_another_token_is_payable_once_the_policy_knows_it_and_its_domain():
    token = KnownAsset(network=BASE_SEPOLIA, address=OTHER_ASSET, name="Euro Coin", version="1")
    policy = SpendPolicy(known_assets=known_usdc() | {token})
    offered = req(5, asset=OTHER_ASSET, extra={"name": "Euro Coin", "version": "1"})
    assert choose([offered], policy).amount == 5
    assert choose([req(5)], policy).amount == 5  # USDC still known
    with pytest.raises(PolicyViolation) as caught:
        choose([req(5, asset=OTHER_ASSET)], policy)  # the server names USDC's domain for it
    assert caught.value.limit == "asset_domain"


def test_a_payable_requirement_is_chosen_over_one_with_a_wrong_domain():
    accepts = [req(1_000, extra={"name": "USDC", "version": "3"}), req(2_000)]
    assert choose(accepts, SpendPolicy()).index == 1
