"""What a running instance holds: settings, the ledger engine, one RPC client per enabled network.

Built in the lifespan, reached from routes through ``get_context`` so nothing is a module global
and a test can run several apps side by side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.chain.keys import HotWallet, load_facilitator_account
from app.chain.rpc import RpcClient
from app.config import NetworkConfig, Settings
from app.db.engine import make_engine
from app.db.schema import create_schema
from app.facilitator.service import Facilitator, SettlePolicy
from app.gateway.facilitators import LocalFacilitator
from app.gateway.paywall import PaymentGate
from app.gateway.repository import ClaimRepository
from app.registry.attribution import AttributionResolver
from app.registry.repository import RegistryRepository
from app.settlement.finality import FinalityWatcher
from app.settlement.repository import SettlementRepository, SignerNonceRepository

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    settings: Settings
    engine: Engine
    networks: dict[str, NetworkConfig]
    rpc: dict[str, RpcClient] = field(default_factory=dict)
    facilitator: HotWallet | None = None
    facilitator_service: Facilitator = field(init=False)
    payment_gate: PaymentGate = field(init=False)
    finality_watcher: FinalityWatcher = field(init=False)

    def __post_init__(self) -> None:
        self.facilitator_service = Facilitator(
            networks=self.networks,
            rpc=self.rpc,
            settlements=SettlementRepository(self.engine),
            nonces=SignerNonceRepository(self.engine),
            attribution=AttributionResolver(RegistryRepository(self.engine)),
            signer=self.facilitator,
            policy=SettlePolicy.from_settings(self.settings),
        )
        self.finality_watcher = FinalityWatcher(networks=self.networks, rpc=self.rpc,
                                                settlements=SettlementRepository(self.engine))
        self.payment_gate = PaymentGate(
            registry=RegistryRepository(self.engine),
            claims=ClaimRepository(self.engine),
            facilitator=LocalFacilitator(self.facilitator_service),
            networks=self.networks,
        )

    @classmethod
    def build(cls, settings: Settings) -> ServiceContext:
        networks = settings.enabled_networks()
        engine = make_engine(settings.database_url)
        try:
            create_schema(engine)
        except SQLAlchemyError as error:  # start anyway: /health reports the database as down
            log.error("cannot prepare the ledger schema: %s", type(error).__name__)
        return cls(
            settings=settings,
            engine=engine,
            networks=networks,
            rpc={network: RpcClient(config.rpc_url or "") for network, config in networks.items()},
            facilitator=load_facilitator_account(settings),
        )

    async def close(self) -> None:
        await self.facilitator_service.close()
        for client in self.rpc.values():
            await client.close()
        self.engine.dispose()


async def get_context(request: Request) -> ServiceContext:
    return request.app.state.context  # type: ignore[no-any-return]
