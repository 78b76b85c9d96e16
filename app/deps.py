"""Small typed FastAPI dependencies: each hands a route one part of the running service.

Routes depend on these, never on ``app.wiring``: a route says what it needs (an engine, the
facilitator, the payment gate), and a test can see it from the signature. The running service is the
one the lifespan put on ``app.state.service`` (see ``app.wiring``).

The types are imported for checkers only, so this module is a leaf of the import graph: a domain's
routes depend on it without the domains depending on each other through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request

if TYPE_CHECKING:  # types only: at run time this module imports no domain, so any module may depend on it
    from sqlalchemy.engine import Engine

    from app.access.repository import ApiKeyRepository
    from app.chain.keys import HotWallet
    from app.chain.rpc import RpcClient
    from app.config import NetworkConfig, Settings
    from app.facilitator.service import Facilitator
    from app.gateway.paywall import PaymentGate
    from app.registry.service import RegistryService
    from app.settlement.engine import SettlementEngine


def _service(request: Request) -> Any:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return _service(request).settings  # type: ignore[no-any-return]


def get_engine(request: Request) -> Engine:
    return _service(request).engine  # type: ignore[no-any-return]


def get_networks(request: Request) -> dict[str, NetworkConfig]:
    """The networks this instance serves (enabled, with an RPC URL)."""
    return _service(request).networks  # type: ignore[no-any-return]


def get_rpc_clients(request: Request) -> dict[str, RpcClient]:
    """One JSON-RPC client per enabled network."""
    return _service(request).rpc  # type: ignore[no-any-return]


def get_signer(request: Request) -> HotWallet | None:
    """The hot wallet that pays gas to settle; None when this instance only verifies."""
    return _service(request).signer  # type: ignore[no-any-return]


def get_facilitator(request: Request) -> Facilitator:
    return _service(request).facilitator  # type: ignore[no-any-return]


def get_payment_gate(request: Request) -> PaymentGate:
    return _service(request).payment_gate  # type: ignore[no-any-return]


def get_registry(request: Request) -> RegistryService:
    return _service(request).registry  # type: ignore[no-any-return]


def get_api_keys(request: Request) -> ApiKeyRepository:
    return _service(request).api_keys  # type: ignore[no-any-return]


def get_settlement_engine(request: Request) -> SettlementEngine:
    return _service(request).settlement_engine  # type: ignore[no-any-return]
