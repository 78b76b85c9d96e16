"""Issue 10, item 3: a payee cannot drain the agent's budget. Each test performs one attack against our
paying client over a real loopback port; where money could move, the payee then cashes what it
collected on anvil and the chain says how much left the agent's wallet.

(a) a payee that never admits to being paid collects at most the daily limit;
(b) a payee asking a validity window of 32 years gets one of at most 300 s;
(c) processes of one agent sharing a spend-ledger file cannot together exceed the daily limit, and a
    restart does not grant a fresh day;
(d) a payee naming the wrong EIP-712 domain for USDC, or an unknown token, is refused before signing.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from app.client import (
    PaymentSigner,
    PolicyViolation,
    SpendLedger,
    SpendPolicy,
    SqliteSpendLedger,
    paying_client,
)
from app.dev.deploy import DevDeployment
from app.dev.devchain import DevChain
from tests.client.hostile import ANSWERS, Answer, cash, hostile_payee, offer, transfer_call
from tests.support.payments import BASE_SEPOLIA, USDC

PRICE = 10_000  # $0.01
PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
KEY = "0x" + "6e" * 32
T0 = 1_800_000_000.0


class CountingSigner(PaymentSigner):
    """A real signer that also counts its signatures, to show a refusal came before any signing."""

    __slots__ = ("signatures",)

    def __init__(self, key: str) -> None:
        super().__init__(Account.from_key(key))
        self.signatures = 0

    def sign_exact(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.signatures += 1
        return super().sign_exact(*args, **kwargs)


def call(http: httpx.Client, url: str) -> str:
    """One request's outcome: the status code, the refusing limit, or ``dropped``."""
    try:
        return str(http.get(url).status_code)
    except PolicyViolation as refused:
        return refused.limit
    except httpx.TransportError:
        return "dropped"


# ------------------------------------------------------------------- (a) 402 to every paid retry


@pytest.mark.parametrize("answer", ANSWERS)
def test_a_payee_that_never_admits_payment_collects_at_most_the_daily_limit(
    answer: Answer, agent: LocalAccount, provider: str, w3: Web3, token: Contract, dev_deployment: DevDeployment,
    ledger, chain_snapshot: str,
):
    watched = ledger()
    spend = SpendLedger()
    policy = SpendPolicy(max_per_day=3 * PRICE)
    with hostile_payee(offer(provider, PRICE), answer=answer) as payee, \
            paying_client(PaymentSigner.from_key(agent.key), policy, ledger=spend, timeout=30) as http:
        outcomes = [call(http, payee.url) for _ in range(10)]

    answered = {"402": "402", "402 with a failure receipt": "402", "500": "500", "drop": "dropped"}[answer]
    assert outcomes == [answered] * 3 + ["max_per_day"] * 7
    assert len(payee.collected) == 3
    assert spend.spent() == payee.signed_total() == 3 * PRICE  # counted = signed
    for payment in payee.collected:  # the payee cashes everything it holds
        assert cash(w3, token, dev_deployment.wallets.facilitator, payment)["status"] == 1
    assert watched.moved() == {agent.address: -3 * PRICE, provider: 3 * PRICE}


def test_an_authorization_the_payee_refused_still_counts_after_it_expires_until_the_day_is_over():
    """Once expired we cannot tell (without the chain) whether it was cashed in time: it stays in the day."""
    clock = [T0]
    spend = SpendLedger()
    policy = SpendPolicy(max_per_day=2 * PRICE)
    with hostile_payee(offer(PAYEE, PRICE)) as payee, \
            paying_client(PaymentSigner.from_key(KEY), policy, ledger=spend, clock=lambda: clock[0]) as http:
        assert [call(http, payee.url) for _ in range(3)] == ["402", "402", "max_per_day"]
        clock[0] = T0 + 301  # both authorizations have expired
        assert all(clock[0] >= int(p["payload"]["authorization"]["validBefore"]) for p in payee.collected)
        with pytest.raises(PolicyViolation) as caught:
            http.get(payee.url)
        assert (caught.value.limit, caught.value.already_spent) == ("max_per_day", 2 * PRICE)
        clock[0] = T0 + 24 * 60 * 60  # the rolling day is over
        assert call(http, payee.url) == "402"
    assert len(payee.collected) == 3


# ------------------------------------------------------------------- (b) a 32-year validity window


@pytest.mark.parametrize("version", [1, 2])
def test_a_payee_asking_for_a_huge_window_gets_an_authorization_dead_after_300_seconds(
    version: int, agent: LocalAccount, provider: str, w3: Web3, token: Contract, anvil: DevChain,
    dev_deployment: DevDeployment, ledger, chain_snapshot: str,
):
    watched = ledger()
    requirement = offer(provider, PRICE, version=version, maxTimeoutSeconds=10**9)
    with hostile_payee(requirement, version=version) as payee, \
            paying_client(PaymentSigner.from_key(agent.key), SpendPolicy(), timeout=30) as http:
        before = int(time.time())
        http.get(payee.url)
        after = int(time.time())

    [payment] = payee.collected
    valid_before = int(payment["payload"]["authorization"]["validBefore"])
    assert before + 300 <= valid_before <= after + 300
    # The signature covers that validBefore: the token accepts the authorization now ...
    sender = dev_deployment.wallets.facilitator
    transfer_call(token, payment).call({"from": sender.address})
    # ... and refuses it from validBefore on.
    late = cash(w3, token, sender, payment, anvil=anvil, at=valid_before)
    assert late["status"] == 0
    assert watched.moved() == {}


def test_the_cap_is_the_policy_s_and_a_shorter_window_is_used_as_asked():
    clock = [T0]
    with hostile_payee(offer(PAYEE, PRICE, maxTimeoutSeconds=3600)) as long_window, \
            hostile_payee(offer(PAYEE, PRICE, maxTimeoutSeconds=45)) as short_window, \
            paying_client(PaymentSigner.from_key(KEY), SpendPolicy(max_validity_seconds=120),
                          clock=lambda: clock[0]) as http:
        http.get(long_window.url)
        http.get(short_window.url)
    valid_before = [int(p["payload"]["authorization"]["validBefore"])
                    for p in long_window.collected + short_window.collected]
    assert valid_before == [int(T0) + 120, int(T0) + 45]


# ------------------------------------------------------------------- (c) processes sharing one file


def pay_from_a_process(key: bytes, url: str, ledger_path: str, max_per_day: int, calls: int,
                       start: Any, results: Any) -> None:
    """One process of the agent: its own client, the shared ledger file; reports its outcomes."""
    policy = SpendPolicy(max_per_day=max_per_day)
    ledger = SqliteSpendLedger(ledger_path)
    with paying_client(PaymentSigner.from_key(key), policy, ledger=ledger, timeout=30) as http:
        start.wait(timeout=120)
        results.put([call(http, url) for _ in range(calls)])
    ledger.close()


def test_two_processes_sharing_a_ledger_file_cannot_together_exceed_the_daily_limit_nor_restart_a_day(
    tmp_path: Path,
):
    path = tmp_path / "agent-spend.db"
    limit = 8 * PRICE
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    with hostile_payee(offer(PAYEE, PRICE)) as payee:
        processes = [context.Process(target=pay_from_a_process,
                                     args=(bytes.fromhex(KEY[2:]), payee.url, str(path), limit, 8, start, results))
                     for _ in range(2)]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        assert [process.exitcode for process in processes] == [0, 0]

        assert sorted(outcomes[0] + outcomes[1]) == ["402"] * 8 + ["max_per_day"] * 8
        assert payee.signed_total() == limit  # together, exactly the limit: never more

        restarted = SqliteSpendLedger(path)  # a restart opens the same file: the day's spend is still there
        assert restarted.spent() == limit
        with paying_client(PaymentSigner.from_key(KEY), SpendPolicy(max_per_day=limit), ledger=restarted) as http, \
                pytest.raises(PolicyViolation) as caught:
            http.get(payee.url)
        assert (caught.value.limit, caught.value.already_spent) == ("max_per_day", limit)
        restarted.close()
    assert len(payee.collected) == 8


# ------------------------------------------------------------------- (d) the server names the token


@pytest.mark.parametrize(
    ("overrides", "limit"),
    [
        ({"extra": {"name": "USD Coin", "version": "2"}}, "asset_domain"),  # Base mainnet's name, on Base Sepolia
        ({"extra": {"name": "USDC", "version": "1"}}, "asset_domain"),
        ({"asset": "0x2222222222222222222222222222222222222222"}, "asset"),  # a token we do not know
        ({"asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",  # Base mainnet USDC, offered on Base Sepolia
          "extra": {"name": "USD Coin", "version": "2"}}, "asset"),
    ],
    ids=["wrong-domain-name", "wrong-domain-version", "unknown-token", "usdc-of-another-network"],
)
def test_a_payee_naming_a_token_or_domain_we_do_not_know_is_refused_before_signing(overrides, limit):
    signer = CountingSigner(KEY)
    spend = SpendLedger()
    with hostile_payee(offer(PAYEE, PRICE, **overrides)) as payee, \
            paying_client(signer, SpendPolicy(), ledger=spend) as http, \
            pytest.raises(PolicyViolation) as caught:
        http.get(payee.url)
    error = caught.value
    assert error.limit == limit
    assert str(overrides.get("asset", USDC)) in str(error)
    if limit == "asset_domain":
        assert (error.asset, error.network) == (USDC, BASE_SEPOLIA)
        assert error.allowed == frozenset({"name='USDC' version='2'"})
        assert "refusing to sign" in str(error)
    assert signer.signatures == 0
    assert payee.collected == [] and payee.unpaid_requests == 1
    assert spend.entries() == []
