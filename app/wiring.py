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
from app.facilitator.service import Facilitator
from app.gateway.facilitators import LocalFacilitator
from app.gateway.payment_ids import PaymentIds
from app.gateway.paywall import PaymentGate
from app.gateway.repository import ClaimRepository, PaymentResponseRepository
from app.registry.attribution import AttributionResolver
from app.registry.repository import RegistryRepository
from app.registry.service import RegistryService
from app.settlement.engine import EnginePolicy, SettlementEngine
from app.settlement.finality import FinalityWatcher
from app.settlement.repository import GasSpendRepository, SettlementRepository, SignerNonceRepository

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything a running instance holds: its settings, database, chains and use cases."""

    settings: Settings
    engine: Engine
    networks: dict[str, NetworkConfig]
    rpc: dict[str, RpcClient] = field(default_factory=dict)
    signer: HotWallet | None = None  # the hot wallet that pays gas to settle; None: verify only
    settlement_engine: SettlementEngine = field(init=False)
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
        self.settlement_engine = SettlementEngine(
            networks=self.networks,
            rpc=self.rpc,
            settlements=SettlementRepository(self.engine),
            nonces=SignerNonceRepository(self.engine),
            gas=GasSpendRepository(self.engine),
            signer=self.signer,
            policy=EnginePolicy.from_settings(self.settings, self.networks),
        )
        self.facilitator = Facilitator(
            networks=self.networks,
            rpc=self.rpc,
            settlements=SettlementRepository(self.engine),
            attribution=AttributionResolver(registry),
            engine=self.settlement_engine,
        )
        self.finality_watcher = FinalityWatcher(networks=self.networks, rpc=self.rpc,
                                                settlements=SettlementRepository(self.engine))
        self.payment_gate = PaymentGate(
            registry=registry,
            claims=ClaimRepository(self.engine),
            facilitator=LocalFacilitator(self.facilitator),
            networks=self.networks,
            payment_ids=PaymentIds(PaymentResponseRepository(self.engine)),
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
        """Settlements a previous run left open are finished in the background, not before serving, and
        again every ``maintenance_seconds`` (nonce repair included); the finality watcher runs every
        ``finality_poll_seconds`` (0: off)."""
        self.resumption = asyncio.create_task(self._maintain(), name="resume-settlements")
        self._background.append(self.resumption)
        if self.settings.maintenance_seconds > 0:
            self._background.append(asyncio.create_task(self._maintain_forever(), name="maintenance"))
        if self.settings.finality_poll_seconds > 0:
            self._background.append(asyncio.create_task(
                self.finality_watcher.run_forever(self.settings.finality_poll_seconds), name="finality"))

    async def _maintain(self) -> None:
        try:
            count = await self.facilitator.maintain()
        except Exception:  # the service keeps serving; the next pass (or a retried /settle) tries again
            log.exception("resuming unfinished settlements failed")
            return
        if count:
            log.info("looked at %d unfinished settlements", count)

    async def _maintain_forever(self) -> None:
        await self.resumption  # type: ignore[misc]
        while True:
            await asyncio.sleep(self.settings.maintenance_seconds)
            await self._maintain()

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.settlement_engine.close()
        for client in self.rpc.values():
            await client.close()
        self.engine.dispose()
