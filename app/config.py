"""Settings (environment prefix ``X402_``, optional ``.env``) and the networks file.

Secrets are ``SecretStr`` so they never show in a repr, a log line or an error message.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

NETWORKS_FILE = Path(__file__).with_name("networks.json")


class ConfigError(ValueError):
    """The configuration cannot work; the message names the setting to fix."""


class AssetConfig(BaseModel):
    """An EIP-3009 token on one network, with the EIP-712 domain its signatures use."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    address: str
    symbol: str
    name: str  # EIP-712 domain name: "USDC" on Base Sepolia, "USD Coin" on most mainnets
    version: str
    decimals: int
    # The smallest payment settled in this asset, in atomic units: the facilitator pays gas for each
    # settlement, so a payment worth less than that gas is refused (a value of 0 always is).
    min_amount: int = Field(default=1, ge=1)


class NetworkConfig(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    network: str  # CAIP-2, e.g. eip155:84532
    name: str
    v1_name: str | None = None
    chain_id: int
    mainnet: bool
    block_time_seconds: float = 2.0  # how often the chain makes a block: receipt waits and stuck checks scale with it
    assets: tuple[AssetConfig, ...] = ()
    rpc_url: str | None = None
    # How long /settle waits for the receipt before answering settlement_pending (see Settings).
    receipt_timeout_seconds: float = 8.0


class CustomAsset(AssetConfig):
    """A token added by configuration (``X402_EXTRA_ASSETS``) on top of the networks file."""

    network: str


@cache
def known_networks(path: Path = NETWORKS_FILE) -> dict[str, NetworkConfig]:
    raw = json.loads(path.read_text())
    return {entry["network"]: NetworkConfig.model_validate(entry) for entry in raw["networks"]}


class Settings(BaseSettings):
    """Everything the service reads from its environment. ``.env.example`` documents each field."""

    model_config = SettingsConfigDict(env_prefix="X402_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""  # empty: an SQLite file in data_dir
    rpc_urls: dict[str, str] = Field(default_factory=dict)  # CAIP-2 network -> RPC URL; enables it
    allow_mainnets: bool = False
    extra_assets: list[CustomAsset] = Field(default_factory=list)
    networks_file: Path = NETWORKS_FILE

    facilitator_private_key: SecretStr | None = None
    facilitator_keystore: Path | None = None  # an encrypted JSON keystore (geth/eth-account format)
    facilitator_keystore_password: SecretStr | None = None

    # Settlement: how long /settle waits for the receipt before answering settlement_pending. By default
    # it follows each network's block time (4 blocks, at least 5 s, at most 60 s), so that a resource server
    # that retries settle once after settlement_pending (as the official SDKs do) sees the payment land;
    # settle_receipt_timeout_seconds sets one wait for every network, receipt_timeouts one per network.
    settle_receipt_timeout_seconds: float | None = Field(default=None, gt=0)
    receipt_timeouts: dict[str, float] = Field(default_factory=dict)
    # A process works on a recorded authorization under a lease this long (renewed while it works);
    # another replica takes the authorization over only once the lease has run out.
    settlement_lease_seconds: float = Field(default=10.0, gt=0)
    # How often unfinished settlements are resumed and each hot wallet's nonces are checked against the
    # chain (gaps filled, unknown transactions resent); 0 turns the background pass off.
    maintenance_seconds: float = Field(default=5.0, ge=0)
    # The most gas (wei) the hot wallet may spend per network in any hour, by CAIP-2 id; "*" for every
    # network not named. Beyond it /settle answers gas_budget_exhausted.
    gas_budget_wei_per_hour: dict[str, int] = Field(default_factory=lambda: {"*": 10**18})
    # The EIP-1559 fee policy of the hot wallet (maxFeePerGas = min(cap, 2 * baseFee + tip)).
    max_fee_per_gas_wei: int = 200 * 10**9
    priority_fee_wei: int = 10**8
    settle_gas_limit: int = 200_000
    # How often confirmed settlements are checked against the chain's finalized block (and moved to
    # finalized); 0 turns the background check off.
    finality_poll_seconds: float = Field(default=30.0, ge=0)

    # Per-asset floors, in atomic units, keyed by CAIP-19 asset id: {"eip155:84532/erc20:0x036C...": 1000}.
    # An asset not named keeps its own floor (1, or its minAmount in X402_EXTRA_ASSETS).
    min_payment_amounts: dict[str, int] = Field(default_factory=dict)

    # Callers of /verify and /settle: SHA-256 hex digests of accepted bearer keys. Empty: open
    # (local development). `printf %s "$KEY" | sha256sum` gives a digest; never store the keys themselves.
    facilitator_api_key_hashes: list[str] = Field(default_factory=list)
    # /verify and /settle need a key unless this is false (the dev stack and local tests turn it off):
    # a digest above, or an API key with the facilitator scope (`x402-settle keys create --scope facilitator`).
    facilitator_require_api_key: bool = True

    # Mount the example paid routes (/examples/...) used by the dev stack and the demo.
    example_routes: bool = False

    host: str = "127.0.0.1"
    port: int = 4021
    log_level: str = "info"

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'ledger.db').as_posix()}"
        return self

    def enabled_networks(self) -> dict[str, NetworkConfig]:
        """The networks this instance serves: known, given an RPC URL, and allowed.

        Raises ``ConfigError`` for an unknown network id or a mainnet without ``allow_mainnets``,
        so a typo fails at start-up instead of silently advertising nothing.
        """
        known = known_networks(self.networks_file)
        enabled: dict[str, NetworkConfig] = {}
        for network, rpc_url in self.rpc_urls.items():
            if network not in known:
                raise ConfigError(
                    f"X402_RPC_URLS names unknown network {network!r}; known: {', '.join(sorted(known))}"
                )
            config = known[network]
            if config.mainnet and not self.allow_mainnets:
                raise ConfigError(
                    f"{network} ({config.name}) is a mainnet: set X402_ALLOW_MAINNETS=true to move real money"
                )
            extra = tuple(
                AssetConfig.model_validate(asset.model_dump(exclude={"network"}))
                for asset in self.extra_assets
                if asset.network == network
            )
            enabled[network] = config.model_copy(update={"rpc_url": rpc_url, "assets": config.assets + extra,
                                                         "receipt_timeout_seconds": self._receipt_timeout(config)})
        unknown_timeouts = set(self.receipt_timeouts) - set(enabled)
        if unknown_timeouts:
            raise ConfigError(f"X402_RECEIPT_TIMEOUTS names networks that are not enabled: {sorted(unknown_timeouts)}")
        unknown_assets = {asset.network for asset in self.extra_assets} - set(enabled)
        if unknown_assets:
            raise ConfigError(f"X402_EXTRA_ASSETS names networks that are not enabled: {sorted(unknown_assets)}")
        return self._with_payment_floors(enabled)

    def _receipt_timeout(self, config: NetworkConfig) -> float:
        if config.network in self.receipt_timeouts:
            return self.receipt_timeouts[config.network]
        if self.settle_receipt_timeout_seconds is not None:
            return self.settle_receipt_timeout_seconds
        return min(60.0, max(5.0, 4 * config.block_time_seconds))

    def gas_budget(self, network: str) -> int | None:
        """Wei per hour the hot wallet may spend on ``network``; None: no cap."""
        return self.gas_budget_wei_per_hour.get(network, self.gas_budget_wei_per_hour.get("*"))

    def _with_payment_floors(self, enabled: dict[str, NetworkConfig]) -> dict[str, NetworkConfig]:
        """Apply ``min_payment_amounts`` (CAIP-19 ids); a typo or a disabled asset is a ConfigError."""
        floors: dict[tuple[str, str], int] = {}
        for asset_id, amount in self.min_payment_amounts.items():
            network, _, reference = asset_id.partition("/")
            namespace, _, address = reference.partition(":")
            if namespace != "erc20" or network not in enabled or isinstance(amount, bool) or amount < 1:
                raise ConfigError(f"X402_MIN_PAYMENT_AMOUNTS: {asset_id!r} must be '<enabled network>/erc20:<token "
                                  f"address>' with an integer floor >= 1, got {amount!r}")
            floors[(network, address.lower())] = amount
        known = {(network, asset.address.lower()) for network, config in enabled.items() for asset in config.assets}
        unknown = sorted(f"{network}/erc20:{address}" for network, address in set(floors) - known)
        if unknown:
            raise ConfigError(f"X402_MIN_PAYMENT_AMOUNTS names assets that are not configured: {unknown}")
        return {
            network: config.model_copy(update={"assets": tuple(
                asset.model_copy(update={"min_amount": floors.get((network, asset.address.lower()), asset.min_amount)})
                for asset in config.assets)})
            for network, config in enabled.items()
        }
