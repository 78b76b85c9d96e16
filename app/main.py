"""Application factory: ``create_app(settings)`` wires routers and the lifespan resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings
from app.context import ServiceContext
from app.errors import install_error_handlers
from app.facilitator.routes import router as facilitator_router
from app.observability.routes import router as health_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.enabled_networks()  # fail at construction, not at first request, on a bad config

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = ServiceContext.build(settings)
        app.state.context = context
        try:
            yield
        finally:
            await context.close()

    app = FastAPI(
        title="x402 settlement service",
        description="x402 facilitator with a settlement ledger for AI-agent payments",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(facilitator_router)
    return app
