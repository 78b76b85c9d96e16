"""The hot wallets' gas budget: what the facilitator may spend on gas per network in any hour.

A facilitator pays the gas of every settlement, so whoever can make it settle can make it spend. Spend
is booked per network and minute (``gas_spend``) when a receipt is recorded; transactions sent and not
yet mined count at the fee they could cost at most. A settlement that would take the last hour beyond
the budget is not sent (``gas_budget_exhausted``): the authorization stays recorded and is sent once
the hour has room again, or expires.

The figures are read from the database at most once a second per network (every replica books into the
same table); what this process sent since its last read is added on top, so a burst cannot overshoot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from app.settlement.repository import GasSpendRepository

HOUR_MINUTES = 60
REFRESH_SECONDS = 1.0


class GasBudgetExhausted(Exception):
    """Sending one more transaction on this network would spend more gas this hour than the budget."""

    def __init__(self, network: str, spent: int, budget: int) -> None:
        super().__init__(f"the hot wallet's gas budget on {network} is {budget} wei an hour and {spent} wei is "
                         "spent or committed in the last hour; retry later")
        self.network = network


@dataclass
class _Window:
    read_at: float = float("-inf")
    committed: int = 0  # booked in the last hour + the most the transactions in flight can cost
    sent_since_read: int = 0  # the most what this process sent since the read can cost


class GasBudget:
    def __init__(self, repository: GasSpendRepository, budgets: dict[str, int | None], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._repository = repository
        self._budgets = budgets
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    async def reserve(self, network: str, max_cost: int) -> None:
        """Room for one more transaction that costs at most ``max_cost`` wei, or GasBudgetExhausted."""
        budget = self._budgets.get(network)
        if budget is None:
            return
        window = self._windows.setdefault(network, _Window())
        if self._clock() - window.read_at >= REFRESH_SECONDS:
            booked, in_flight = await run_in_threadpool(self._read, network)
            window.read_at, window.committed, window.sent_since_read = self._clock(), booked + in_flight * max_cost, 0
        committed = window.committed + window.sent_since_read
        if committed + max_cost > budget:
            raise GasBudgetExhausted(network, committed, budget)
        window.sent_since_read += max_cost

    async def book(self, network: str, wei: int) -> None:
        """Book what a mined transaction paid."""
        if wei > 0:
            await run_in_threadpool(self._repository.add, network, self._minute(), wei)

    def _read(self, network: str) -> tuple[int, int]:
        return (self._repository.since(network, self._minute() - HOUR_MINUTES + 1),
                self._repository.in_flight(network))

    def _minute(self) -> int:
        return int(self._clock() // 60)
