"""POST /ledger/reconcile: compare the ledger with the chain over a block range (finance scope)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from app.access.dependencies import Principal, require_scope
from app.access.models import Scope
from app.bodies import json_object_body
from app.chain.keys import HotWallet
from app.chain.rpc import RpcClient
from app.config import NetworkConfig
from app.deps import get_engine, get_networks, get_rpc_clients, get_signer
from app.errors import BadRequest, Forbidden, PayloadTooLarge, ServiceUnavailable, Unauthorized, error_responses
from app.openapi import body_of
from app.reconciliation.schemas import ReconcileRequest, ReconciliationReportOut
from app.reconciliation.service import reconcile

router = APIRouter(prefix="/ledger", tags=["ledger"])


def _parse(body: dict[str, Any]) -> ReconcileRequest:
    try:
        parsed = ReconcileRequest.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors()[:5]
        )
        raise BadRequest(f"invalid reconcile request: {problems}") from None
    return parsed


@router.post("/reconcile", response_model=ReconciliationReportOut, openapi_extra=body_of(ReconcileRequest),
             responses=error_responses(BadRequest, Unauthorized, Forbidden, PayloadTooLarge, ServiceUnavailable))
async def reconcile_ledger(
    _principal: Principal = Depends(require_scope(Scope.FINANCE)),
    body: dict[str, Any] = Depends(json_object_body),
    engine: Engine = Depends(get_engine),
    rpc: dict[str, RpcClient] = Depends(get_rpc_clients),
    networks: dict[str, NetworkConfig] = Depends(get_networks),
    signer: HotWallet | None = Depends(get_signer),
) -> dict[str, Any]:
    """Report every difference between our settlements and the token's on-chain events in the range."""
    parsed = _parse(body)
    configured = {signer.address} if signer is not None else set()
    report = await reconcile(
        engine, rpc, networks, configured,
        network=parsed.network, from_block=parsed.from_block, to_block=parsed.to_block,
    )
    return report.to_dict()
