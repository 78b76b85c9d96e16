"""Finance's wire forms: camelCase JSON, amounts as decimal strings of atomic units (no uint256 loses digits
in a JSON reader that uses floats), times in the one wire form (ISO-8601, UTC, ``Z``)."""

from __future__ import annotations

from pydantic import Field

from app.db.clock import wire_time
from app.ledger.attribution import AttributionRow
from app.settlement.models import Settlement
from app.wire import WireSchema


class AttributionRowOut(WireSchema):
    bucket: str = Field(description="start of the UTC time bucket")
    group: str = Field(description="the agent, team, cost centre, capability or provider")
    asset: str
    amount: str = Field(description="net spend in the asset's atomic units (may be negative after a reversal)")
    count: int = Field(description="settlements with net spend")
    fees: str = Field(description="net network fees, wei of the chain's native asset")

    @classmethod
    def of(cls, row: AttributionRow) -> AttributionRowOut:
        return cls(bucket=wire_time(row.bucket) or "", group=row.group, asset=row.asset, amount=str(row.amount),
                   count=row.count, fees=str(row.fees))


class AttributionOut(WireSchema):
    group_by: str
    bucket: str
    rows: list[AttributionRowOut]


class SettlementOut(WireSchema):
    """The public view of a settlement. The signature and the raw transaction are left out: they are
    large and finance has no use for them."""

    id: int | None
    network: str
    asset: str
    payer: str
    payee: str
    nonce: str
    value: str
    valid_after: str
    valid_before: str
    x402_version: int
    signature_hash: str
    agent_id: str
    team: str
    cost_center: str
    capability_id: str
    provider: str
    resource_url: str | None
    request_id: str | None
    state: str
    signer: str | None
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    gas_used: int | None
    effective_gas_price: str | None
    error_reason: str | None
    created_at: str | None
    submitted_at: str | None
    confirmed_at: str | None
    failed_at: str | None
    finalized_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, settlement: Settlement) -> SettlementOut:
        return cls(
            id=settlement.id, network=settlement.network, asset=settlement.asset, payer=settlement.payer,
            payee=settlement.payee, nonce=settlement.nonce, value=str(settlement.value),
            valid_after=str(settlement.valid_after), valid_before=str(settlement.valid_before),
            x402_version=settlement.x402_version, signature_hash=settlement.signature_hash,
            agent_id=settlement.agent_id, team=settlement.team, cost_center=settlement.cost_center,
            capability_id=settlement.capability_id, provider=settlement.provider,
            resource_url=settlement.resource_url, request_id=settlement.request_id, state=settlement.state,
            signer=settlement.signer, tx_hash=settlement.tx_hash, block_number=settlement.block_number,
            block_hash=settlement.block_hash, gas_used=settlement.gas_used,
            effective_gas_price=None if settlement.effective_gas_price is None else str(settlement.effective_gas_price),
            error_reason=settlement.error_reason, created_at=wire_time(settlement.created_at),
            submitted_at=wire_time(settlement.submitted_at), confirmed_at=wire_time(settlement.confirmed_at),
            failed_at=wire_time(settlement.failed_at), finalized_at=wire_time(settlement.finalized_at),
            updated_at=wire_time(settlement.updated_at),
        )


class SettlementPageOut(WireSchema):
    items: list[SettlementOut]
    next_cursor: str | None = Field(description="pass it back as cursor for the next page; null at the end")
