"""Double-entry lines for a settlement, as pure functions (the repository writes them).

Per confirmed settlement, two balanced pairs:
- payment: debit ``agent:<id>:spend``, credit ``provider:<team>:revenue``, in the token;
- network fee: debit ``agent:<id>:network_fees``, credit ``facilitator:<signer>:gas``, in wei of the
  native asset: the gas the facilitator paid, attributed to the agent whose payment it carried.
A reversal copies a line with the side swapped and points at it.
"""

from __future__ import annotations

from app.db.clock import utc_now
from app.settlement.models import NATIVE_ASSET, EntryType, JournalLine, Settlement, Side


def _line(settlement: Settlement, *, entry_type: EntryType, account: str, account_kind: str, side: Side,
          amount: int, asset: str) -> JournalLine:
    assert settlement.id is not None
    return JournalLine(
        settlement_id=settlement.id, entry_type=entry_type.value, account=account, account_kind=account_kind,
        side=side.value, amount=amount, asset=asset, network=settlement.network, agent_id=settlement.agent_id,
        team=settlement.team, cost_center=settlement.cost_center, capability_id=settlement.capability_id,
        provider=settlement.provider,
    )


def settlement_lines(settlement: Settlement) -> list[JournalLine]:
    """The lines booked when a settlement is confirmed on-chain."""
    payment = {"entry_type": EntryType.PAYMENT, "amount": settlement.value, "asset": settlement.asset}
    lines = [
        _line(settlement, account=f"agent:{settlement.agent_id}:spend", account_kind="agent_spend",
              side=Side.DEBIT, **payment),
        _line(settlement, account=f"provider:{settlement.provider}:revenue", account_kind="provider_revenue",
              side=Side.CREDIT, **payment),
    ]
    fee = (settlement.gas_used or 0) * (settlement.effective_gas_price or 0)
    if fee:
        network_fee = {"entry_type": EntryType.NETWORK_FEE, "amount": fee, "asset": NATIVE_ASSET}
        lines += [
            _line(settlement, account=f"agent:{settlement.agent_id}:network_fees", account_kind="agent_fees",
                  side=Side.DEBIT, **network_fee),
            _line(settlement, account=f"facilitator:{settlement.signer}:gas", account_kind="facilitator_gas",
                  side=Side.CREDIT, **network_fee),
        ]
    return lines


def reversal_of(line: JournalLine, memo: str) -> JournalLine:
    """The line that cancels ``line``: same account and amount, opposite side."""
    assert line.id is not None
    opposite = Side.CREDIT if line.side == Side.DEBIT else Side.DEBIT
    return JournalLine(
        settlement_id=line.settlement_id, entry_type=EntryType.REVERSAL.value, account=line.account,
        account_kind=line.account_kind, side=opposite.value, amount=line.amount, asset=line.asset,
        network=line.network, agent_id=line.agent_id, team=line.team, cost_center=line.cost_center,
        capability_id=line.capability_id, provider=line.provider, reverses_id=line.id, memo=memo[:500],
        booked_at=utc_now(),
    )
