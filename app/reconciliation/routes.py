"""POST /ledger/reconcile: compare the ledger with the chain over a block range (finance scope)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import Engine

from app.access.dependencies import Principal, require_scope
from app.access.models import Scope
from app.chain.keys import HotWallet
from app.chain.rpc import RpcClient
from app.config import NetworkConfig
from app.deps import get_engine, get_networks, get_rpc_clients, get_signer
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
    engine: Engine = Depends(get_engine),
    rpc: dict[str, RpcClient] = Depends(get_rpc_clients),
    networks: dict[str, NetworkConfig] = Depends(get_networks),
    signer: HotWallet | None = Depends(get_signer),
) -> dict[str, Any]:
    """Report every difference between our settlements and the token's on-chain events in the range."""
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    parsed = _parse(body)
    configured = {signer.address} if signer is not None else set()
    report = await reconcile(
        engine, rpc, networks, configured,
        network=parsed.network, from_block=parsed.from_block, to_block=parsed.to_block,
    )
    return report.to_dict()
