from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.context import ServiceContext, get_context
from app.observability.health import check_health

router = APIRouter(tags=["health"])


@router.get("/health", summary="Database and chain health; 503 when any part is down")
async def health(context: ServiceContext = Depends(get_context)) -> JSONResponse:
    healthy, report = await check_health(context)
    return JSONResponse(report, status_code=200 if healthy else 503)
