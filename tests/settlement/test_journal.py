"""The journal's booking rules: for any settlement, debits equal credits in every asset, and a reversal
cancels exactly what it reverses."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from app.settlement.journal import reversal_of, settlement_lines
from app.settlement.models import NATIVE_ASSET, JournalLine, Settlement, Side
from tests.ledger.builders import SIGNER, settlement

UINT256 = st.integers(min_value=0, max_value=2**256 - 1)
GAS = st.integers(min_value=0, max_value=30_000_000)
GAS_PRICE = st.integers(min_value=0, max_value=10**15)


def _balances(lines: list[JournalLine]) -> dict[str, int]:
    """Debits minus credits per asset."""
    balance: dict[str, int] = defaultdict(int)
    for line in lines:
        balance[line.asset] += line.amount if line.side == Side.DEBIT.value else -line.amount
    return dict(balance)


def _confirmed(value: int, gas_used: int, gas_price: int) -> Settlement:
    row = settlement(value=value)
    row.id, row.signer, row.gas_used, row.effective_gas_price = 1, SIGNER, gas_used, gas_price
    return row


@given(value=UINT256, gas_used=GAS, gas_price=GAS_PRICE)
def test_a_settlement_books_balanced_lines_in_every_asset(value, gas_used, gas_price):
    row = _confirmed(value, gas_used, gas_price)
    lines = settlement_lines(row)
    assert all(balance == 0 for balance in _balances(lines).values())
    payments = [line for line in lines if line.asset == row.asset]
    assert sorted((line.side, line.amount) for line in payments) == [("credit", value), ("debit", value)]
    fees = [line for line in lines if line.asset == NATIVE_ASSET]
    assert sum(line.amount for line in fees if line.side == Side.DEBIT.value) == gas_used * gas_price
    assert all(line.settlement_id == row.id and line.agent_id == row.agent_id for line in lines)


@given(value=UINT256, gas_used=GAS, gas_price=GAS_PRICE)
def test_reversing_a_settlement_keeps_the_journal_balanced_and_nets_every_account_to_zero(value, gas_used,
                                                                                         gas_price):
    lines = settlement_lines(_confirmed(value, gas_used, gas_price))
    for line_id, line in enumerate(lines, start=1):
        line.id = line_id
    reversals = [reversal_of(line, "undone") for line in lines]  # what mark_reversed books
    assert all(balance == 0 for balance in _balances(lines + reversals).values())
    net: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines + reversals:
        net[(line.account, line.asset)] += line.amount if line.side == Side.DEBIT.value else -line.amount
    assert set(net.values()) <= {0}
    for original, reversal in zip(lines, reversals, strict=True):
        assert reversal.reverses_id == original.id and reversal.amount == original.amount
        assert reversal.side != original.side and reversal.account == original.account
