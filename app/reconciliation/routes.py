"""POST /ledger/reconcile: compare the ledger with the chain over a block range (finance scope)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.access.dependencies import Principal, require_scope
from app.access.models import Scope
from app.context import ServiceContext, get_context
from app.errors import BadRequest
from app.reconciliation.service import reconcile

router = APIRouter(prefix="/ledger", tags=["ledger"])


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    network: str = Field(min_length=1, max_length=64)
    from_block: int = Field(alias="fromBlock", ge=0, strict=True)
    to_block: Annotated[int, Field(strict=True, ge=0)] | Literal["latest"] = Field(default="latest", alias="toBlock")


def _parse(body: Any) -> ReconcileRequest:
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object: {"network": ..., "fromBlock": ..., "toBlock": ...}')
    try:
        parsed = ReconcileRequest.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors()[:5]
        )
        raise BadRequest(f"invalid reconcile request: {problems}") from None
    return parsed


@router.post("/reconcile")
async def reconcile_ledger(
    request: Request,
    _principal: Principal = Depends(require_scope(Scope.FINANCE)),
    context: ServiceContext = Depends(get_context),
) -> dict[str, Any]:
    """Report every difference between our settlements and the token's on-chain events in the range."""
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    parsed = _parse(body)
    configured = {context.facilitator.address} if context.facilitator is not None else set()
    report = await reconcile(
        context.engine, context.rpc, context.networks, configured,
        network=parsed.network, from_block=parsed.from_block, to_block=parsed.to_block,
    )
    return report.to_dict()
