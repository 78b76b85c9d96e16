"""Reconciliation against the chain: clean after real settlements, and each injected fault is found.

Settlements go through the real app's /settle on anvil; faults are injected behind the service's back
(SQL on the ledger, transactions sent straight to the token with web3). Every test runs on SQLite and
on PostgreSQL, and ``facilitator_settings`` reverts the chain afterwards (``chain_snapshot``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import typer
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlmodel import Session
from typer.testing import CliRunner
from web3 import Web3

from app.access.models import Scope
from app.access.repository import ApiKeyRepository
from app.chain.eip3009 import transfer_with_authorization_calldata
from app.chain.logs import AuthorizationUsedEvent, TransferEvent, fetch_token_events
from app.chain.rpc import RpcClient
from app.config import Settings
from app.dev.deploy import DevDeployment, send_transaction, token_contract
from app.dev.devchain import free_port
from app.ledger.attribution import attribution
from app.ledger.cli import ledger_cli
from app.main import create_app
from app.reconciliation.cli import reconcile_command
from app.reconciliation.routes import router as reconcile_router
from app.settlement.models import JournalLine, Settlement, SettlementState
from app.settlement.repository import SettlementRepository, SignerNonceRepository
from tests.support.eip3009 import sign_transfer_authorization
from tests.support.payments import BASE_SEPOLIA, USDC, paid_body, sign_exact
from tests.support.tamper import drop_journal_guard, tamper

AMOUNTS = (12_345, 250_000, 7)


def _app(settings: Settings):
    app = create_app(settings)
    if not any(getattr(route, "path", None) == "/ledger/reconcile" for route in app.routes):
        app.include_router(reconcile_router)
    return app


@pytest.fixture
def settings(facilitator_settings: Settings, database_url: str) -> Settings:
    facilitator_settings.database_url = database_url
    return facilitator_settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(_app(settings)) as test_client:
        yield test_client


def _key(client: TestClient, name: str, scopes: list[Scope], provider_team: str | None = None) -> str:
    _row, key = ApiKeyRepository(client.app.state.service.engine).create(name, scopes, provider_team)
    return key


@pytest.fixture
def finance(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {_key(client, 'finance-team', [Scope.FINANCE])}"}


@dataclass(frozen=True)
class Settled:
    """Real settlements made through /settle, and the block range they lie in."""

    from_block: int
    tx_hashes: tuple[str, ...]

    def body(self, to_block: int | str = "latest") -> dict[str, object]:
        return {"network": BASE_SEPOLIA, "fromBlock": self.from_block, "toBlock": to_block}


@pytest.fixture
def settled(client: TestClient, dev_deployment: DevDeployment, w3: Web3) -> Settled:
    first = w3.eth.block_number + 1
    agents, providers = dev_deployment.wallets.agents, dev_deployment.wallets.providers
    hashes = []
    for index, amount in enumerate(AMOUNTS):
        response = client.post("/settle", json=paid_body(agents[index], providers[index % 2].address, amount))
        body = response.json()
        assert response.status_code == 200 and body["success"] is True, body
        hashes.append(body["transaction"])
    return Settled(from_block=first, tx_hashes=tuple(hashes))


def _reconcile(client: TestClient, headers: dict[str, str], settled: Settled) -> dict:
    response = client.post("/ledger/reconcile", json=settled.body(), headers=headers)
    assert response.status_code == 200, response.text
    report = response.json()
    json.dumps(report)  # serialisable as is
    return report


def _kinds(report: dict) -> list[str]:
    return [item["kind"] for item in report["discrepancies"]]


def _of_kind(report: dict, kind: str) -> dict:
    """The one discrepancy of ``kind`` in the report."""
    found = [item for item in report["discrepancies"] if item["kind"] == kind]
    assert len(found) == 1, report
    return found[0]


def _rows(client: TestClient) -> list[Settlement]:
    with Session(client.app.state.service.engine) as session:
        return list(session.exec(select(Settlement).order_by(Settlement.id)).scalars())


def _run_cli(settings: Settings, settled: Settled, anvil, *extra: str, rpc: bool = True):
    cli = typer.Typer()
    cli.command("reconcile")(reconcile_command)

    @cli.callback()
    def _root() -> None:
        """A group, so the command is called by its name as under x402-settle."""

    args = ["reconcile", "--network", BASE_SEPOLIA, "--from-block", str(settled.from_block),
            "--database-url", settings.database_url, *(["--rpc-url", anvil.rpc_url] if rpc else []), *extra]
    return CliRunner().invoke(cli, args)


def _run_verify(settings: Settings):
    cli = typer.Typer()
    cli.add_typer(ledger_cli, name="ledger")
    return CliRunner().invoke(cli, ["ledger", "verify", "--database-url", settings.database_url])


# -- clean ------------------------------------------------------------------------------------------


def test_a_clean_run_reports_nothing_and_the_cli_exits_0(client, finance, settled, settings, anvil, w3):
    report = _reconcile(client, finance, settled)
    assert report["clean"] is True, report
    assert report["discrepancies"] == []
    assert report["network"] == BASE_SEPOLIA
    assert report["fromBlock"] == settled.from_block and report["toBlock"] == w3.eth.block_number
    assert report["checkedRows"] == len(AMOUNTS)
    assert report["checkedEvents"] == 2 * len(AMOUNTS)  # one AuthorizationUsed + one Transfer each
    assert report["checkedJournalLines"] == 4 * len(AMOUNTS)  # payment and network fee, debit and credit each

    result = _run_cli(settings, settled, anvil, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["clean"] is True
    text = _run_cli(settings, settled, anvil)
    assert text.exit_code == 0 and "clean" in text.output
    verified = _run_verify(settings)
    assert verified.exit_code == 0 and "journal intact: 12 lines verified" in verified.output


def test_the_chain_events_read_in_small_chunks_are_the_same_as_in_one_go(client, settled, anvil, w3):
    async def read(chunk: int):
        rpc = RpcClient(anvil.rpc_url)
        try:
            return await fetch_token_events(rpc, USDC, settled.from_block, w3.eth.block_number, chunk=chunk)
        finally:
            await rpc.close()

    whole, chunked = asyncio.run(read(2000)), asyncio.run(read(1))
    assert whole == chunked
    transfers = [event for event in whole if isinstance(event, TransferEvent)]
    used = [event for event in whole if isinstance(event, AuthorizationUsedEvent)]
    assert [transfer.value for transfer in transfers] == list(AMOUNTS)
    assert {event.tx_hash for event in used} == {tx_hash.lower() for tx_hash in settled.tx_hashes}


# -- injected faults ----------------------------------------------------------------------------------


def test_a_ledger_row_deleted_behind_its_back_is_missing_in_ledger(client, finance, settled, settings, anvil):
    victim, after = _rows(client)[1], _rows(client)[2]
    engine = client.app.state.service.engine
    drop_journal_guard(engine)  # the database refuses to delete journal lines; an attacker with DDL rights can
    with Session(engine) as session:
        session.exec(delete(JournalLine).where(JournalLine.settlement_id == victim.id))
        session.exec(delete(Settlement).where(Settlement.id == victim.id))
        session.commit()

    report = _reconcile(client, finance, settled)
    assert report["clean"] is False
    # The chain finds the authorization without a row; the journal's hash chain shows the lines cut out of it,
    # at the first line after them (the next settlement's).
    assert _kinds(report) == ["missing_in_ledger", "journal_tampered"]
    tampered = _of_kind(report, "journal_tampered")
    assert tampered["settlementId"] == after.id and "link" in tampered["actual"]
    found = _of_kind(report, "missing_in_ledger")
    assert found["txHash"] == victim.tx_hash.lower()
    assert found["settlementId"] is None
    assert found["payer"] == victim.payer and found["nonce"] == victim.nonce
    assert found["actual"] == str(victim.value)
    assert found["blockNumber"] == victim.block_number
    assert _run_cli(settings, settled, anvil).exit_code == 1


def test_one_more_on_both_lines_of_a_payment_moves_attributed_spend_and_is_reported(
    client, finance, settled, settings, anvil
):
    """Issue 10, item 4: the journal, which attribution and exports read, edited behind the service's back."""
    engine = client.app.state.service.engine
    victim = _rows(client)[0]
    spend_before = _attributed_spend(engine, victim.agent_id)
    stored = victim.value + 1 if engine.dialect.name == "postgresql" else f"{victim.value + 1:078d}"
    changed = tamper(engine, "UPDATE journal_lines SET amount = :amount WHERE settlement_id = :id "
                             "AND entry_type = 'payment'", amount=stored, id=victim.id)
    assert changed == 2
    assert _attributed_spend(engine, victim.agent_id) == spend_before + 1  # the attack works on finance's numbers

    report = _reconcile(client, finance, settled)
    assert _kinds(report) == ["journal_mismatch", "journal_tampered"], report
    mismatch, tampered = _of_kind(report, "journal_mismatch"), _of_kind(report, "journal_tampered")
    assert mismatch["settlementId"] == tampered["settlementId"] == victim.id
    assert mismatch["txHash"] == victim.tx_hash.lower() and mismatch["blockNumber"] == victim.block_number
    assert f"spend {victim.value} " in mismatch["expected"] and f"spend {victim.value + 1} " in mismatch["actual"]
    first_line = tampered["lineId"]
    assert first_line == mismatch["lineId"] and "changed after it was booked" in tampered["message"]
    assert _run_cli(settings, settled, anvil).exit_code == 1
    verified = _run_verify(settings)
    assert verified.exit_code == 1
    assert f"journal broken at line {first_line} (settlement {victim.id}" in verified.output


def _attributed_spend(engine, agent_id: str) -> int:
    return sum(row.amount for row in attribution(engine, group_by="agent", bucket="day") if row.group == agent_id)


def test_a_transfer_made_outside_the_service_is_reported(client, finance, settled, settings, anvil, w3,
                                                         dev_deployment):
    agent, payee = dev_deployment.wallets.agents[3], dev_deployment.wallets.providers[0].address
    signed = sign_transfer_authorization(
        agent, token_address=USDC, chain_id=dev_deployment.chain_id, to=payee, value=999,
        valid_after=0, valid_before=int(time.time()) + 600, nonce=os.urandom(32),
    )
    deployer = dev_deployment.wallets.deployer  # not our facilitator's hot wallet
    token = token_contract(w3, USDC)
    tx = token.functions.transferWithAuthorization(*signed.vrs_args()).build_transaction({"from": deployer.address})
    receipt = send_transaction(w3, deployer, tx)

    report = _reconcile(client, finance, settled)
    assert _kinds(report) == ["outside_service"], report
    found = report["discrepancies"][0]
    assert found["txHash"] == receipt["transactionHash"].to_0x_hex()
    assert found["actual"] == deployer.address
    assert found["payer"] == agent.address and found["nonce"] == "0x" + signed.nonce.hex()
    assert found["settlementId"] is None
    assert _run_cli(settings, settled, anvil).exit_code == 1


def test_a_tampered_amount_is_an_amount_mismatch(client, finance, settled, settings, anvil):
    victim = _rows(client)[0]
    with Session(client.app.state.service.engine) as session:
        session.exec(update(Settlement).where(Settlement.id == victim.id).values(value=victim.value + 1_000_000))
        session.commit()

    report = _reconcile(client, finance, settled)
    # The row disagrees with the chain, and with its journal lines (which still book what the chain moved).
    assert _kinds(report) == ["amount_mismatch", "journal_mismatch"], report
    found = _of_kind(report, "amount_mismatch")
    assert found["settlementId"] == victim.id
    assert found["expected"] == str(victim.value + 1_000_000) and found["actual"] == str(victim.value)
    assert found["txHash"] == victim.tx_hash.lower()
    journal = _of_kind(report, "journal_mismatch")
    assert journal["settlementId"] == victim.id
    assert f" {victim.value + 1_000_000} " in journal["expected"] and f" {victim.value} " in journal["actual"]
    result = _run_cli(settings, settled, anvil, "--json")
    assert result.exit_code == 1
    assert _kinds(json.loads(result.output)) == ["amount_mismatch", "journal_mismatch"]


def test_a_row_marked_settled_whose_transaction_reverted_is_missing_on_chain(
    client, finance, settled, settings, anvil, w3, dev_deployment
):
    used = _rows(client)[0]
    facilitator = dev_deployment.wallets.facilitator
    # Our own signer resends an authorization that is already used: mined, but reverted.
    calldata = transfer_with_authorization_calldata(
        used.payer, used.payee, used.value, used.valid_after, used.valid_before, bytes.fromhex(used.nonce[2:]),
        bytes.fromhex(used.signature[2:]),
    )
    base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
    signed_tx = facilitator.sign_transaction({
        "type": 2, "chainId": dev_deployment.chain_id, "to": USDC, "value": 0, "data": calldata, "gas": 200_000,
        "nonce": w3.eth.get_transaction_count(facilitator.address, "pending"),
        "maxFeePerGas": 2 * base_fee + 10**8, "maxPriorityFeePerGas": 10**8,
    })
    tx_hash = w3.eth.send_raw_transaction(signed_tx.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 0

    # A row the ledger marks confirmed, pointing at that reverted transaction (confirmed through the repository,
    # so it carries the journal lines a confirmation books, as a wrongly confirmed row would).
    fresh = sign_exact(dev_deployment.wallets.agents[4], to=used.payee, value=4_242)
    auth = fresh.authorization
    repository = SettlementRepository(client.app.state.service.engine)
    row = repository.create(Settlement(
        network=BASE_SEPOLIA, asset=USDC, payer=auth["from"], payee=auth["to"], nonce=auth["nonce"], value=4_242,
        valid_after=int(auth["validAfter"]), valid_before=int(auth["validBefore"]), signature=fresh.signature,
        x402_version=2, signer=facilitator.address, tx_nonce=0,  # as if nonce 0 had been allocated to it
    ))
    assert repository.mark_submitted(row.id, signer=facilitator.address, tx_nonce=0, tx_hash=tx_hash.to_0x_hex(),
                                     raw_transaction="0x")
    assert repository.mark_confirmed(row.id, block_number=receipt["blockNumber"],
                                     block_hash=receipt["blockHash"].to_0x_hex())

    report = _reconcile(client, finance, settled)
    assert _kinds(report) == ["missing_on_chain"], report
    found = report["discrepancies"][0]
    assert found["settlementId"] == row.id
    assert found["txHash"] == tx_hash.to_0x_hex()
    assert found["blockNumber"] == receipt["blockNumber"]
    assert found["actual"] == "reverted"
    assert "reverted" in found["message"]
    assert _run_cli(settings, settled, anvil).exit_code == 1


def test_a_failed_row_whose_authorization_our_transaction_used_is_a_state_mismatch(client, finance, settled):
    victim = _rows(client)[2]
    with Session(client.app.state.service.engine) as session:
        session.exec(update(Settlement).where(Settlement.id == victim.id).values(state=SettlementState.FAILED.value))
        session.commit()

    report = _reconcile(client, finance, settled)
    # Failed on the chain's evidence, and failed with its journal lines never reversed.
    assert _kinds(report) == ["journal_mismatch", "state_mismatch"], report
    assert _of_kind(report, "state_mismatch")["settlementId"] == victim.id
    assert _of_kind(report, "state_mismatch")["actual"] == "failed"
    journal = _of_kind(report, "journal_mismatch")
    assert journal["settlementId"] == victim.id and journal["expected"].count("the reversal of line") == 4


# -- the route ------------------------------------------------------------------------------------


def test_reconcile_needs_a_finance_key(client, finance, settled):
    provider = {"Authorization": f"Bearer {_key(client, 'maps-team', [Scope.PROVIDER], 'maps')}"}
    missing = client.post("/ledger/reconcile", json=settled.body())
    wrong = client.post("/ledger/reconcile", json=settled.body(), headers={"Authorization": "Bearer x402_nope"})
    forbidden = client.post("/ledger/reconcile", json=settled.body(), headers=provider)
    allowed = client.post("/ledger/reconcile", json=settled.body(), headers=finance)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert wrong.status_code == 401
    assert forbidden.status_code == 403 and "finance" in forbidden.json()["message"]
    assert allowed.status_code == 200 and allowed.json()["clean"] is True


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"network": BASE_SEPOLIA}, "fromBlock"),
        ({"network": BASE_SEPOLIA, "fromBlock": -1}, "fromBlock"),
        ({"network": BASE_SEPOLIA, "fromBlock": "ten"}, "fromBlock"),
        ({"network": BASE_SEPOLIA, "fromBlock": 1, "toBlock": "soon"}, "toBlock"),
        ({"network": BASE_SEPOLIA, "fromBlock": 10**9, "toBlock": "latest"}, "after toBlock"),
        ({"network": "eip155:1", "fromBlock": 0}, "not enabled"),
        ([1, 2], "JSON object"),
    ],
)
def test_a_bad_request_is_a_400_with_a_message(client, finance, body, fragment):
    response = client.post("/ledger/reconcile", json=body, headers=finance)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_request"
    assert fragment in response.json()["message"]


def test_an_unreachable_rpc_is_a_503(settings: Settings):
    settings.rpc_urls = {BASE_SEPOLIA: f"http://127.0.0.1:{free_port()}"}  # nothing listens there
    with TestClient(_app(settings)) as client:
        headers = {"Authorization": f"Bearer {_key(client, 'finance-team', [Scope.FINANCE])}"}
        response = client.post("/ledger/reconcile", json={"network": BASE_SEPOLIA, "fromBlock": 0}, headers=headers)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "service_unavailable"
    assert "RPC endpoint" in response.json()["message"]


def test_the_cli_exits_2_when_it_cannot_run(client, settings, anvil, monkeypatch):
    nowhere = Settled(from_block=0, tx_hashes=())
    bad_block = _run_cli(settings, nowhere, anvil, "--to-block", "soon")
    assert bad_block.exit_code == 2 and "--to-block" in bad_block.output
    monkeypatch.delenv("X402_RPC_URLS", raising=False)
    not_enabled = _run_cli(settings, nowhere, anvil, rpc=False)
    assert not_enabled.exit_code == 2 and "not enabled" in not_enabled.output
    monkeypatch.setenv("X402_RPC_URLS", json.dumps({BASE_SEPOLIA: f"http://127.0.0.1:{free_port()}"}))
    unreachable = _run_cli(settings, nowhere, anvil, rpc=False)
    assert unreachable.exit_code == 2 and "RPC endpoint" in unreachable.output


def test_the_cli_prints_each_discrepancy_in_text(client, settled, settings, anvil):
    victim = _rows(client)[0]
    with Session(client.app.state.service.engine) as session:
        session.exec(update(Settlement).where(Settlement.id == victim.id).values(value=victim.value + 1))
        session.commit()
    result = _run_cli(settings, settled, anvil)
    assert result.exit_code == 1
    assert "2 discrepancies (amount_mismatch: 1, journal_mismatch: 1)" in result.output
    assert f"settlement {victim.id}" in result.output and victim.tx_hash.lower() in result.output
    assert "0.012346 USDC (12346 atomic units)" in result.output


def test_a_wallet_that_cannot_settle_is_a_discrepancy_not_a_clean_report(
    client, finance, settled, dev_deployment, w3
):
    """Nothing settles behind nonces the node holds no transaction for, nor behind a transaction that never
    gets mined: reconcile reports both (and exits 1 on the command line) instead of 'clean'."""
    engine = client.app.state.service.engine
    wallet = dev_deployment.wallets.facilitator.address
    pending = w3.eth.get_transaction_count(wallet, "pending")
    SignerNonceRepository(engine).raise_floor(BASE_SEPOLIA, wallet, pending + 3)  # three handed out, none sent
    lost = SettlementRepository(engine).create(_row_submitted_long_ago(wallet, pending + 3))
    with Session(engine) as session:
        session.exec(update(Settlement).where(Settlement.id == lost.id)
                     .values(submitted_at=datetime.now(UTC) - timedelta(minutes=10)))
        session.commit()

    report = _reconcile(client, finance, settled)
    assert sorted(set(_kinds(report))) == ["nonce_gap", "not_mined"], report
    gap = next(item for item in report["discrepancies"] if item["kind"] == "nonce_gap")
    assert (gap["expected"], gap["actual"]) == (str(pending + 3), str(pending)) and wallet in gap["message"]
    assert next(item for item in report["discrepancies"] if item["kind"] == "not_mined")["settlementId"] == lost.id


def _row_submitted_long_ago(wallet: str, nonce: int) -> Settlement:
    payment = sign_exact(Account.create(), to=USDC, value=1_000)
    auth = payment.authorization
    return Settlement(
        network=BASE_SEPOLIA, asset=USDC, payer=auth["from"], payee=auth["to"], nonce=auth["nonce"], value=1_000,
        valid_after=0, valid_before=int(auth["validBefore"]), signature=payment.signature, x402_version=2,
        state="submitted", signer=wallet, tx_nonce=nonce, tx_hash="0x" + "77" * 32, raw_transaction="0x02",
    )
