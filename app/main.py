"""Application factory: ``create_app(settings)`` wires routers and the lifespan resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings
from app.errors import install_error_handlers
from app.facilitator.routes import router as facilitator_router
from app.gateway.discovery import router as discovery_router
from app.gateway.paywall import install_paywall
from app.gateway.proxy import router as proxy_router
from app.ledger.routes import router as ledger_router
from app.observability.routes import router as health_router
from app.openapi import install_openapi
from app.reconciliation.routes import router as reconcile_router
from app.registry.routes import router as registry_router
from app.wiring import Service

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.enabled_networks()  # fail at construction, not at first request, on a bad config

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service.build(settings)
        app.state.service = service
        service.start_background()
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="x402 settlement service",
        description="x402 facilitator with a settlement ledger for AI-agent payments",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    install_paywall(app, lambda scope: scope["app"].state.service.payment_gate)
    app.include_router(health_router)
    app.include_router(facilitator_router)
    app.include_router(registry_router)
    app.include_router(reconcile_router)
    app.include_router(ledger_router)
    app.include_router(proxy_router)
    app.include_router(discovery_router)
    if settings.example_routes:  # the dev stack's paid examples; production never imports app.dev
        from app.dev.examples import router as examples_router

        app.include_router(examples_router)
    return app
