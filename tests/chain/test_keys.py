"""The facilitator key comes from the environment or an encrypted keystore, and never leaks."""

import json

import pytest
from eth_account import Account

from app.chain.keys import load_facilitator_account
from app.config import ConfigError, Settings

KEY = "0x" + "4c" * 32


def test_no_key_configured_means_a_verify_only_instance():
    assert load_facilitator_account(Settings()) is None


def test_a_raw_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("X402_FACILITATOR_PRIVATE_KEY", KEY)
    assert load_facilitator_account(Settings()).address == Account.from_key(KEY).address


def test_an_invalid_raw_key_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as raised:
        load_facilitator_account(Settings(facilitator_private_key="0x1234nothex"))
    assert "1234nothex" not in str(raised.value)


def test_an_encrypted_keystore_is_decrypted_with_its_password(tmp_path):
    keystore = tmp_path / "facilitator.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, "correct horse", iterations=2)))
    settings = Settings(facilitator_keystore=keystore, facilitator_keystore_password="correct horse")
    assert load_facilitator_account(settings).address == Account.from_key(KEY).address


def test_a_wrong_keystore_password_is_a_clear_error_that_leaks_nothing(tmp_path):
    keystore = tmp_path / "facilitator.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, "correct horse", iterations=2)))
    settings = Settings(facilitator_keystore=keystore, facilitator_keystore_password="p4ssw0rd-typo")
    with pytest.raises(ConfigError, match="cannot open the keystore") as raised:
        load_facilitator_account(settings)
    assert "p4ssw0rd-typo" not in str(raised.value) and KEY[2:] not in str(raised.value)


def test_a_keystore_without_its_password_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="X402_FACILITATOR_KEYSTORE_PASSWORD"):
        load_facilitator_account(Settings(facilitator_keystore=tmp_path / "k.json"))
