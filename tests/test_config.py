"""Settings: which networks are served, and secrets that never leak into text."""

import pytest

from app.config import ConfigError, Settings

BASE_SEPOLIA = "eip155:84532"


def test_a_network_is_enabled_only_when_it_has_an_rpc_url():
    settings = Settings(rpc_urls={BASE_SEPOLIA: "http://127.0.0.1:8545"})
    enabled = settings.enabled_networks()
    assert list(enabled) == [BASE_SEPOLIA]
    network = enabled[BASE_SEPOLIA]
    assert network.chain_id == 84532
    assert network.rpc_url == "http://127.0.0.1:8545"
    assert network.v1_name == "base-sepolia"
    (usdc,) = network.assets
    assert (usdc.address, usdc.name, usdc.version, usdc.decimals) == (
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC", "2", 6,
    )


def test_no_rpc_url_means_no_network():
    assert Settings(rpc_urls={}).enabled_networks() == {}


def test_mainnets_are_refused_unless_allowed_explicitly():
    with pytest.raises(ConfigError, match="X402_ALLOW_MAINNETS"):
        Settings(rpc_urls={"eip155:8453": "http://rpc"}).enabled_networks()
    enabled = Settings(rpc_urls={"eip155:8453": "http://rpc"}, allow_mainnets=True).enabled_networks()
    assert enabled["eip155:8453"].assets[0].name == "USD Coin"


def test_an_unknown_network_id_is_a_configuration_error_naming_the_setting():
    with pytest.raises(ConfigError, match="X402_RPC_URLS names unknown network 'eip155:999999'"):
        Settings(rpc_urls={"eip155:999999": "http://rpc"}).enabled_networks()


def test_extra_eip3009_tokens_join_their_network():
    token = {"network": BASE_SEPOLIA, "address": "0x" + "11" * 20, "symbol": "EURC",
             "name": "EURC", "version": "2", "decimals": 6}
    enabled = Settings(rpc_urls={BASE_SEPOLIA: "http://rpc"}, extra_assets=[token]).enabled_networks()
    assert [asset.symbol for asset in enabled[BASE_SEPOLIA].assets] == ["USDC", "EURC"]


def test_extra_tokens_on_a_network_that_is_not_enabled_are_refused():
    token = {"network": "eip155:43113", "address": "0x" + "11" * 20, "symbol": "X",
             "name": "X", "version": "1", "decimals": 6}
    with pytest.raises(ConfigError, match="not enabled"):
        Settings(rpc_urls={BASE_SEPOLIA: "http://rpc"}, extra_assets=[token]).enabled_networks()


def test_environment_variables_configure_the_service(monkeypatch, tmp_path):
    monkeypatch.setenv("X402_RPC_URLS", '{"eip155:84532": "http://node:8545"}')
    monkeypatch.setenv("X402_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("X402_PORT", "9000")
    settings = Settings()
    assert settings.rpc_urls == {BASE_SEPOLIA: "http://node:8545"}
    assert settings.port == 9000
    assert settings.database_url == f"sqlite:///{tmp_path.as_posix()}/ledger.db"


def test_the_facilitator_key_never_appears_in_the_settings_text():
    secret = "0x" + "ab" * 32
    settings = Settings(facilitator_private_key=secret)
    assert secret not in repr(settings)
    assert secret not in str(settings.model_dump())
    assert secret[2:] not in settings.model_dump_json()


def test_env_example_documents_every_setting():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    missing = [name for name in Settings.model_fields if f"X402_{name.upper()}" not in text]
    assert missing == []


def test_payment_floors_apply_per_asset_by_caip19_id_and_a_typo_is_refused():
    usdc = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
    rpc = {"eip155:84532": "http://127.0.0.1:8545"}
    default = Settings(rpc_urls=rpc).enabled_networks()["eip155:84532"].assets[0]
    assert default.min_amount == 1  # zero is never settled
    floored = Settings(rpc_urls=rpc, min_payment_amounts={f"eip155:84532/erc20:{usdc.lower()}": 1_000})
    assert floored.enabled_networks()["eip155:84532"].assets[0].min_amount == 1_000
    for bad in ({"eip155:8453/erc20:" + usdc: 5}, {f"eip155:84532/erc20:{usdc}": 0}, {f"eip155:84532/{usdc}": 5},
                {"eip155:84532/erc20:0x" + "11" * 20: 5}):
        with pytest.raises(ConfigError, match="X402_MIN_PAYMENT_AMOUNTS"):
            Settings(rpc_urls=rpc, min_payment_amounts=bad).enabled_networks()
