"""The composition root: builds the running service from its settings, and nothing else does.

One :class:`Service` per app, built in the lifespan and kept on ``app.state.service``. Routes never
import this module: they take the parts they need through the small typed dependencies in
``app.deps``. Nothing here is a module global, so a test can run several apps side by side.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.access.repository import ApiKeyRepository
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
from app.registry.service import RegistryService
from app.settlement.finality import FinalityWatcher
from app.settlement.repository import SettlementRepository, SignerNonceRepository

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything a running instance holds: its settings, database, chains and use cases."""

    settings: Settings
    engine: Engine
    networks: dict[str, NetworkConfig]
    rpc: dict[str, RpcClient] = field(default_factory=dict)
    signer: HotWallet | None = None  # the hot wallet that pays gas to settle; None: verify only
    facilitator: Facilitator = field(init=False)
    payment_gate: PaymentGate = field(init=False)
    registry: RegistryService = field(init=False)
    api_keys: ApiKeyRepository = field(init=False)
    finality_watcher: FinalityWatcher = field(init=False)
    resumption: asyncio.Task[None] | None = field(init=False, default=None)  # finishing what a last run left open
    _background: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        registry = RegistryRepository(self.engine)
        self.registry = RegistryService(registry)
        self.api_keys = ApiKeyRepository(self.engine)
        self.facilitator = Facilitator(
            networks=self.networks,
            rpc=self.rpc,
            settlements=SettlementRepository(self.engine),
            nonces=SignerNonceRepository(self.engine),
            attribution=AttributionResolver(registry),
            signer=self.signer,
            policy=SettlePolicy.from_settings(self.settings),
        )
        self.finality_watcher = FinalityWatcher(networks=self.networks, rpc=self.rpc,
                                                settlements=SettlementRepository(self.engine))
        self.payment_gate = PaymentGate(
            registry=registry,
            claims=ClaimRepository(self.engine),
            facilitator=LocalFacilitator(self.facilitator),
            networks=self.networks,
        )

    @classmethod
    def build(cls, settings: Settings) -> Service:
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
            signer=load_facilitator_account(settings),
        )

    def start_background(self) -> None:
        """Settlements a previous run left open are finished in the background, not before serving; the
        finality watcher runs every ``finality_poll_seconds`` (0: off)."""
        self.resumption = asyncio.create_task(self._resume_settlements(), name="resume-settlements")
        self._background.append(self.resumption)
        if self.settings.finality_poll_seconds > 0:
            self._background.append(asyncio.create_task(
                self.finality_watcher.run_forever(self.settings.finality_poll_seconds), name="finality"))

    async def _resume_settlements(self) -> None:
        try:
            count = await self.facilitator.resume_unfinished()
        except Exception:  # the service keeps serving; a retried /settle resumes its own row
            log.exception("resuming unfinished settlements failed")
            return
        if count:
            log.info("resumed %d unfinished settlements", count)

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.facilitator.close()
        for client in self.rpc.values():
            await client.close()
        self.engine.dispose()
