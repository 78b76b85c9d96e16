"""/verify, /settle and /supported: the happy paths, v2 and v1, and exactly-once settlement."""

from __future__ import annotations

from dataclasses import replace

from app.chain.eip3009 import TRANSFER_TOPIC
from app.chain.signatures import wrap_erc6492
from app.dev.contracts import load_artifact
from app.dev.deploy import deploy_contract, mint
from tests.support.payments import BASE_SEPOLIA, USDC, body_v2, paid_body, requirements_v2, sign_exact

PRICE = 12_345


def test_supported_lists_exactly_the_enabled_network_for_v2_and_v1_with_our_signer(client, dev_deployment):
    body = client.get("/supported").json()
    assert body["kinds"] == [
        {"x402Version": 2, "scheme": "exact", "network": BASE_SEPOLIA},
        {"x402Version": 1, "scheme": "exact", "network": "base-sepolia"},
    ]
    assert body["signers"] == {BASE_SEPOLIA: [dev_deployment.wallets.facilitator.address]}


def test_a_valid_v2_payment_verifies(client, payer, payee):
    response = client.post("/verify", json=paid_body(payer, payee, PRICE))
    assert response.status_code == 200
    assert response.json() == {"isValid": True, "payer": payer.address}


def test_verify_moves_no_money(client, payer, payee, balances):
    watched = balances(payer.address, payee)
    client.post("/verify", json=paid_body(payer, payee, PRICE))
    assert watched.moved() == {payer.address: 0, payee: 0}


def test_settle_moves_exactly_the_price_and_returns_the_transaction(client, payer, payee, balances, w3):
    watched = balances(payer.address, payee)
    response = client.post("/settle", json=paid_body(payer, payee, PRICE))
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True, body
    assert body["payer"] == payer.address
    assert body["network"] == BASE_SEPOLIA
    assert watched.moved() == {payer.address: -PRICE, payee: PRICE}
    receipt = w3.eth.get_transaction_receipt(body["transaction"])
    assert receipt["status"] == 1
    transfers = [log for log in receipt["logs"] if log["topics"][0].hex() == TRANSFER_TOPIC.removeprefix("0x")]
    assert len(transfers) == 1 and transfers[0]["address"] == USDC


def test_a_v1_payment_verifies_and_settles_and_answers_with_the_v1_network_name(client, payer, payee, balances):
    watched = balances(payer.address, payee)
    body = paid_body(payer, payee, PRICE, version=1)
    assert client.post("/verify", json=body).json() == {"isValid": True, "payer": payer.address}
    settled = client.post("/settle", json=body).json()
    assert settled["success"] is True, settled
    assert settled["network"] == "base-sepolia"
    assert watched.moved() == {payer.address: -PRICE, payee: PRICE}


def test_settling_the_same_authorization_again_is_already_used_with_the_original_transaction(
    client, payer, payee, balances
):
    # One success per authorization (issue 10): a replay learns the transaction, not a second success.
    watched = balances(payer.address, payee)
    body = paid_body(payer, payee, PRICE)
    first = client.post("/settle", json=body).json()
    second = client.post("/settle", json=body).json()
    assert first["success"] is True
    assert second["success"] is False and second["errorReason"] == "invalid_exact_evm_nonce_already_used"
    assert second["transaction"] == first["transaction"] and second["payer"] == payer.address
    assert watched.moved() == {payer.address: -PRICE, payee: PRICE}


def test_verify_after_settlement_reports_the_nonce_as_used(client, payer, payee):
    body = paid_body(payer, payee, PRICE)
    assert client.post("/settle", json=body).json()["success"] is True
    verdict = client.post("/verify", json=body).json()
    assert verdict["isValid"] is False
    assert verdict["invalidReason"] == "invalid_exact_evm_nonce_already_used"


def test_an_instance_without_a_signing_key_advertises_nothing_and_settles_nothing(
    facilitator_settings, payer, payee, balances
):
    from fastapi.testclient import TestClient

    from app.main import create_app

    facilitator_settings.facilitator_private_key = None
    watched = balances(payer.address, payee)
    with TestClient(create_app(facilitator_settings)) as client:
        assert client.get("/supported").json()["kinds"] == []
        body = paid_body(payer, payee, PRICE)
        assert client.post("/verify", json=body).json()["isValid"] is True
        settled = client.post("/settle", json=body).json()
    assert settled["success"] is False
    assert watched.moved() == {payer.address: 0, payee: 0}


def test_bearer_keys_guard_verify_and_settle_when_configured(facilitator_settings, payer, payee):
    import hashlib

    from fastapi.testclient import TestClient

    from app.main import create_app

    facilitator_settings.facilitator_api_key_hashes = [hashlib.sha256(b"s3cret-key").hexdigest()]
    body = paid_body(payer, payee, PRICE)
    with TestClient(create_app(facilitator_settings)) as client:
        missing = client.post("/verify", json=body)
        wrong = client.post("/verify", json=body, headers={"Authorization": "Bearer nope"})
        right = client.post("/verify", json=body, headers={"Authorization": "Bearer s3cret-key"})
        assert client.get("/supported").status_code == 200  # discovery stays public
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200 and right.json()["isValid"] is True


def test_a_payment_from_an_eip1271_smart_wallet_settles(client, payer, payee, w3, dev_deployment, balances):
    wallet = deploy_contract(w3, dev_deployment.wallets.deployer, load_artifact("SmartWallet"), payer.address)
    mint(w3, dev_deployment.wallets.deployer, USDC, wallet, 10**6)
    watched = balances(wallet, payee)
    signed = sign_exact(payer, to=payee, value=PRICE, from_address=wallet)  # the wallet pays, its owner signs
    body = body_v2(signed, requirements_v2(payee, PRICE))
    assert client.post("/verify", json=body).json() == {"isValid": True, "payer": wallet}
    assert client.post("/settle", json=body).json()["success"] is True
    assert watched.moved() == {wallet: -PRICE, payee: PRICE}


def test_an_erc6492_wrapped_signature_of_a_deployed_wallet_settles_with_the_inner_signature(
    client, payer, payee, w3, dev_deployment, balances
):
    # A client that cannot know whether the wallet is deployed yet wraps its signature (ERC-6492). Once the
    # wallet exists, the token must see the inner signature: our SmartWallet, like most, rejects the wrapper.
    wallet = deploy_contract(w3, dev_deployment.wallets.deployer, load_artifact("SmartWallet"), payer.address)
    mint(w3, dev_deployment.wallets.deployer, USDC, wallet, 10**6)
    watched = balances(wallet, payee)
    signed = sign_exact(payer, to=payee, value=PRICE, from_address=wallet)
    wrapped = wrap_erc6492("0x" + "fa" * 20, bytes.fromhex("c0ffee"), bytes.fromhex(signed.signature[2:]))
    body = body_v2(replace(signed, signature="0x" + wrapped.hex()), requirements_v2(payee, PRICE))
    assert client.post("/verify", json=body).json() == {"isValid": True, "payer": wallet}
    settled = client.post("/settle", json=body).json()
    assert settled["success"] is True, settled
    assert watched.moved() == {wallet: -PRICE, payee: PRICE}


def test_a_malformed_erc6492_wrapper_is_an_invalid_signature_and_moves_nothing(client, payer, payee, balances):
    watched = balances(payer.address, payee)
    signed = sign_exact(payer, to=payee, value=PRICE)
    broken = bytes(64) + bytes.fromhex("6492" * 16)  # the magic suffix after something that is not abi.encode
    body = body_v2(replace(signed, signature="0x" + broken.hex()), requirements_v2(payee, PRICE))
    verified = client.post("/verify", json=body).json()
    assert verified["isValid"] is False
    assert verified["invalidReason"] == "invalid_exact_evm_payload_signature"
    assert client.post("/settle", json=body).json()["success"] is False
    assert watched.moved() == {payer.address: 0, payee: 0}


def test_a_receipt_that_does_not_arrive_in_time_is_pending_with_its_hash_and_a_retry_completes_it(
    facilitator_settings, anvil, payer, payee, balances
):
    from fastapi.testclient import TestClient

    from app.main import create_app

    facilitator_settings.settle_receipt_timeout_seconds = 0.3
    watched = balances(payer.address, payee)
    body = paid_body(payer, payee, PRICE)
    anvil.rpc("evm_setAutomine", [False])
    try:
        with TestClient(create_app(facilitator_settings)) as client:
            pending = client.post("/settle", json=body).json()
            assert pending["success"] is False
            assert pending["errorReason"] == "settlement_pending"
            assert pending["transaction"].startswith("0x") and len(pending["transaction"]) == 66
            still_pending = client.post("/settle", json=body).json()  # nothing new is sent meanwhile
            assert still_pending["transaction"] == pending["transaction"]
            anvil.rpc("evm_mine")
            settled = client.post("/settle", json=body).json()
            replayed = client.post("/settle", json=body).json()  # the success was answered: once
    finally:
        anvil.rpc("evm_setAutomine", [True])
    assert settled["success"] is True
    assert settled["transaction"] == pending["transaction"]
    assert replayed["success"] is False and replayed["errorReason"] == "invalid_exact_evm_nonce_already_used"
    assert replayed["transaction"] == settled["transaction"]
    assert watched.moved() == {payer.address: -PRICE, payee: PRICE}


def test_api_keys_with_the_facilitator_scope_guard_verify_and_settle_when_required(facilitator_settings, payer, payee):
    from fastapi.testclient import TestClient

    from app.access.models import Scope
    from app.access.repository import ApiKeyRepository
    from app.db.engine import make_engine
    from app.db.schema import create_schema
    from app.main import create_app

    facilitator_settings.facilitator_require_api_key = True
    engine = make_engine(facilitator_settings.database_url)
    create_schema(engine)
    keys = ApiKeyRepository(engine)
    _, server_key = keys.create("resource-server", [Scope.FACILITATOR])
    _, finance_key = keys.create("finance", [Scope.FINANCE])
    _, revoked_key = keys.create("old-server", [Scope.FACILITATOR])
    keys.revoke("old-server")
    body = paid_body(payer, payee, PRICE)
    with TestClient(create_app(facilitator_settings)) as client:
        def verify(key):
            return client.post("/verify", json=body, headers={"Authorization": f"Bearer {key}"} if key else {})

        assert verify(None).status_code == 401
        assert verify(revoked_key).status_code == 401
        assert verify(finance_key).status_code == 403
        allowed = verify(server_key)
    engine.dispose()
    assert allowed.status_code == 200 and allowed.json()["isValid"] is True


def test_verify_and_settle_need_a_key_by_default(tmp_path, anvil, payer, payee, chain_snapshot):
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    settings = Settings(data_dir=tmp_path, rpc_urls={BASE_SEPOLIA: anvil.rpc_url})  # production defaults
    assert settings.facilitator_require_api_key is True
    with TestClient(create_app(settings)) as client:
        body = paid_body(payer, payee, PRICE)
        assert client.post("/verify", json=body).status_code == 401
        assert client.post("/settle", json=body).status_code == 401
        assert client.get("/supported").status_code == 200
