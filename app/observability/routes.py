"""GET /health: the detailed report of the database and each network; 503 when any part is down."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from app.chain.keys import HotWallet
from app.chain.rpc import RpcClient
from app.config import NetworkConfig
from app.deps import get_engine, get_networks, get_rpc_clients, get_settlement_engine, get_signer
from app.observability.health import check_health
from app.observability.schemas import HealthReport
from app.settlement.engine import SettlementEngine

router = APIRouter(tags=["health"])


@router.get("/health", summary="Database and chain health; 503 when any part is down",
            responses={200: {"model": HealthReport}, 503: {"model": HealthReport, "description": "a part is down"}})
async def health(
    engine: Engine = Depends(get_engine),
    networks: dict[str, NetworkConfig] = Depends(get_networks),
    rpc: dict[str, RpcClient] = Depends(get_rpc_clients),
    signer: HotWallet | None = Depends(get_signer),
    settlement: SettlementEngine = Depends(get_settlement_engine),
) -> JSONResponse:
    healthy, report = await check_health(engine, networks, rpc, signer, settlement)
    return JSONResponse(report, status_code=200 if healthy else 503)
