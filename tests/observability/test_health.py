"""/health reports the ledger and each enabled network from live reads, and 503 when any is down."""

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.config import Settings
from app.dev.devchain import free_port
from app.main import create_app

BASE_SEPOLIA = "eip155:84532"


def _health(settings: Settings) -> tuple[int, dict]:
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    return response.status_code, response.json()


@pytest.fixture
def settings(tmp_path, anvil, dev_deployment) -> Settings:
    return Settings(data_dir=tmp_path, rpc_urls={BASE_SEPOLIA: anvil.rpc_url})


def test_healthy_service_reports_chain_and_token_read_from_the_chain(settings, dev_deployment):
    status, body = _health(settings)
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["database"] == {"status": "ok", "backend": "sqlite"}
    network = body["networks"][BASE_SEPOLIA]
    assert network["status"] == "ok"
    assert network["chainId"] == 84532
    assert network["latestBlock"] >= 1
    assert network["finalizedBlock"] == max(network["latestBlock"] - 64, 0)  # anvil: two epochs of 32 slots
    assert network["tokens"] == [
        {"address": dev_deployment.token_address, "name": "USDC", "version": "2", "decimals": 6}
    ]


def test_health_on_postgresql(settings, postgres_cluster):
    settings.database_url = postgres_cluster.create_database("health_check")
    status, body = _health(settings)
    assert status == 200, body
    assert body["database"] == {"status": "ok", "backend": "postgresql"}


def test_an_unreachable_rpc_node_makes_health_503(tmp_path):
    dead_rpc = f"http://127.0.0.1:{free_port()}"
    status, body = _health(Settings(data_dir=tmp_path, rpc_urls={BASE_SEPOLIA: dead_rpc}))
    assert status == 503
    assert body["status"] == "error"
    assert body["networks"][BASE_SEPOLIA]["status"] == "error"
    assert "RpcUnavailable" in body["networks"][BASE_SEPOLIA]["error"]


def test_an_rpc_node_serving_another_chain_is_reported(tmp_path, anvil):
    # Avalanche Fuji expects chain 43113; the dev node serves 84532.
    status, body = _health(Settings(data_dir=tmp_path, rpc_urls={"eip155:43113": anvil.rpc_url}))
    assert status == 503
    assert body["networks"]["eip155:43113"]["error"] == "RPC serves chain 84532, expected 43113"


def test_a_token_missing_at_the_configured_address_is_reported(tmp_path, anvil):
    no_code = {"network": BASE_SEPOLIA, "address": "0x" + "22" * 20, "symbol": "GHOST",
               "name": "Ghost", "version": "1", "decimals": 6}
    settings = Settings(data_dir=tmp_path, rpc_urls={BASE_SEPOLIA: anvil.rpc_url}, extra_assets=[no_code])
    status, body = _health(settings)
    assert status == 503
    assert body["networks"][BASE_SEPOLIA]["status"] == "error"


def test_an_unreachable_database_makes_health_503(settings):
    settings.database_url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    status, body = _health(settings)
    assert status == 503
    assert body["database"]["status"] == "error"
    assert "OperationalError" in body["database"]["error"]
    assert body["networks"][BASE_SEPOLIA]["status"] == "ok"


def test_a_hot_wallet_with_nonces_missing_from_the_node_is_reported_stuck_until_they_are_made_good(
    settings, dev_deployment, w3, chain_snapshot
):
    """A crashed run handed out two nonces that never became transactions: nothing can be mined behind them.
    /health says so (503, naming the wallet) while the gaps cannot be filled, and is ok once they are."""
    from app.db.engine import make_engine
    from app.db.schema import create_schema
    from app.settlement.repository import SignerNonceRepository

    facilitator = dev_deployment.wallets.facilitator
    settings = settings.model_copy(update={"facilitator_private_key": SecretStr(facilitator.key.hex()),
                                           "maintenance_seconds": 0.2})
    engine = make_engine(settings.database_url)
    create_schema(engine)
    pending = w3.eth.get_transaction_count(facilitator.address, "pending")
    SignerNonceRepository(engine).raise_floor(BASE_SEPOLIA, facilitator.address, pending + 2)
    engine.dispose()

    settings.max_fee_per_gas_wei = 1  # below the base fee: the gaps cannot be filled
    status, body = _health_after_maintenance(settings)
    assert status == 503, body
    signer = body["networks"][BASE_SEPOLIA]["signer"]
    assert signer["address"] == facilitator.address and "2 nonce(s)" in signer["stuck"]
    assert signer["pendingNonce"] == pending and signer["allocatedNonce"] == pending + 2

    settings.max_fee_per_gas_wei = 200 * 10**9  # now they can: two fillers, and the wallet is unstuck
    status, body = _health_after_maintenance(settings, passes=3)
    assert status == 200, body
    assert body["networks"][BASE_SEPOLIA]["signer"]["stuck"] is None
    assert w3.eth.get_transaction_count(facilitator.address, "latest") == pending + 2


def _health_after_maintenance(settings: Settings, passes: int = 1) -> tuple[int, dict]:
    import time

    with TestClient(create_app(settings)) as client:
        time.sleep(passes * settings.maintenance_seconds + 1.0)  # the start-up pass, then `passes` more
        response = client.get("/health")
    return response.status_code, response.json()
