"""Token-side EIP-3009 operations on anvil: calldata, batched state reads, simulation, Transfer logs."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from app.chain.eip3009 import (
    SIMULATION_FAILED,
    TRANSFER_TOPIC,
    decode_revert_data,
    find_transfer,
    read_payment_state,
    revert_reason_code,
    simulate_transfer,
    transfer_with_authorization_calldata,
)
from app.chain.rpc import RpcClient
from app.chain.signatures import ERC6492_MAGIC, SECP256K1_N, SignatureError, wrap_erc6492
from app.dev.deploy import send_transaction
from app.dev.devchain import DevChain
from tests.support.eip3009 import SignedAuthorization, sign_transfer_authorization

pytestmark = [pytest.mark.chain]

CHAIN_ID = 84532
AMOUNT = 2_500_000


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def authorize(w3: Web3, token: Contract, payer: LocalAccount, payee: str, **overrides: Any) -> SignedAuthorization:
    fields: dict[str, Any] = {
        "value": AMOUNT,
        "valid_after": 0,
        "valid_before": now(w3) + 3600,
        "nonce": secrets.token_bytes(32),
    }
    fields.update(overrides)
    return sign_transfer_authorization(payer, token_address=token.address, chain_id=CHAIN_ID, to=payee, **fields)


def submit(w3: Web3, sender: LocalAccount, token: Contract, calldata: bytes) -> Any:
    """Mine the transfer independently of app.chain.sender (web3 + eth_account, legacy gas price)."""
    tx = {"to": token.address, "data": calldata, "gas": 200_000, "gasPrice": w3.eth.gas_price}
    return send_transaction(w3, sender, tx)  # type: ignore[arg-type]


def calldata_of(auth: SignedAuthorization, signature: bytes | None = None) -> bytes:
    chosen = auth.signature if signature is None else signature
    return transfer_with_authorization_calldata(*auth.message_args(), chosen)


# ------------------------------------------------------------------------------------------ pure


def authorize_offline(token: Contract, anvil: DevChain) -> SignedAuthorization:
    payer, payee = anvil.wallets.agents[0], anvil.wallets.providers[0]
    return sign_transfer_authorization(
        payer,
        token_address=token.address,
        chain_id=CHAIN_ID,
        to=payee.address,
        value=AMOUNT,
        valid_after=1,
        valid_before=2**40,
        nonce=b"\x07" * 32,
    )


def test_calldata_matches_web3_for_both_overloads(token: Contract, anvil: DevChain) -> None:
    auth = authorize_offline(token, anvil)
    vrs = token.get_function_by_signature(
        "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
    )(*auth.vrs_args())
    by_bytes = token.get_function_by_signature(
        "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"
    )
    assert calldata_of(auth) == bytes.fromhex(vrs._encode_transaction_data()[2:])
    # v given as 0/1 is normalised to 27/28 for the uint8 v overload
    assert calldata_of(auth, auth.signature[:64] + bytes((auth.v - 27,))) == calldata_of(auth)
    long_signature = auth.signature + b"\x00" * 7
    expected = by_bytes(*auth.message_args(), long_signature)._encode_transaction_data()
    assert calldata_of(auth, long_signature) == bytes.fromhex(expected[2:])


def test_an_erc6492_wrapped_signature_is_sent_to_the_token_unwrapped(token: Contract, anvil: DevChain) -> None:
    auth = authorize_offline(token, anvil)
    long_signature = auth.signature + b"\x01" * 7  # a smart wallet's signature: the bytes overload
    for inner in (auth.signature, long_signature):
        wrapped = wrap_erc6492("0x" + "fa" * 20, b"\xc0\xff\xee", inner)
        assert calldata_of(auth, wrapped) == calldata_of(auth, inner)
    with pytest.raises(SignatureError):
        calldata_of(auth, b"\x00" * 64 + ERC6492_MAGIC)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("FiatTokenV2: authorization is expired", "invalid_exact_evm_payload_authorization_valid_before"),
        ("FiatTokenV2: authorization is not yet valid", "invalid_exact_evm_payload_authorization_valid_after"),
        ("FiatTokenV2: authorization is used or canceled", "invalid_exact_evm_nonce_already_used"),
        ("ERC20: transfer amount exceeds balance", "invalid_exact_evm_insufficient_balance"),
        ("FiatTokenV2: invalid signature", "invalid_exact_evm_payload_signature"),
        ("ECRecover: invalid signature 's' value", "invalid_exact_evm_payload_signature"),
        ("ECRecover: invalid signature 'v' value", "invalid_exact_evm_payload_signature"),
        ("Pausable: paused", SIMULATION_FAILED),
        ("", SIMULATION_FAILED),
    ],
)
def test_revert_reason_codes(message: str, code: str) -> None:
    assert revert_reason_code(message) == code


def test_decode_revert_data() -> None:
    error = "0x08c379a0" + (32).to_bytes(32, "big").hex() + (3).to_bytes(32, "big").hex() + b"abc".hex().ljust(64, "0")
    assert decode_revert_data(error) == "abc"
    assert decode_revert_data({"data": error}) == "abc"
    assert decode_revert_data("0x4e487b71" + (0x11).to_bytes(32, "big").hex()) == "panic 0x11"
    for junk in (None, "0x", "0x08c379a0", "nothex", 5):
        assert decode_revert_data(junk) is None


# ------------------------------------------------------------------------------------------ anvil


@pytest.mark.anyio
async def test_read_payment_state_before_and_after_a_transfer(
    rpc: RpcClient, w3: Web3, token: Contract, anvil: DevChain, chain_snapshot: str
) -> None:
    payer, payee, facilitator = anvil.wallets.agents[0], anvil.wallets.providers[0], anvil.wallets.facilitator
    auth = authorize(w3, token, payer, payee.address)
    balance = token.functions.balanceOf(payer.address).call()

    before = await read_payment_state(rpc, token.address, payer.address, auth.nonce)
    assert (before.balance, before.authorization_used, before.payer_code, before.token_has_code) == (
        balance,
        False,
        "0x",
        True,
    )

    submit(w3, facilitator, token, calldata_of(auth))

    after = await read_payment_state(rpc, token.address, payer.address.lower(), auth.nonce)
    assert (after.balance, after.authorization_used) == (balance - AMOUNT, True)


@pytest.mark.anyio
async def test_read_payment_state_of_an_address_without_code(rpc: RpcClient, anvil: DevChain) -> None:
    nowhere = "0x" + "ab" * 20
    state = await read_payment_state(rpc, nowhere, anvil.wallets.agents[0].address, b"\x00" * 32)
    assert (state.balance, state.authorization_used, state.token_has_code) == (0, False, False)


@pytest.mark.anyio
async def test_simulation_of_a_valid_authorization_succeeds(
    rpc: RpcClient, w3: Web3, token: Contract, anvil: DevChain
) -> None:
    auth = authorize(w3, token, anvil.wallets.agents[0], anvil.wallets.providers[0].address)
    sender = anvil.wallets.facilitator.address
    assert await simulate_transfer(rpc, token.address, calldata_of(auth), sender=sender) is None
    # a simulation changes nothing
    assert token.functions.authorizationState(auth.from_address, auth.nonce).call() is False


async def simulated_code(rpc: RpcClient, token: Contract, anvil: DevChain, calldata: bytes) -> tuple[str, str]:
    reason = await simulate_transfer(rpc, token.address, calldata, sender=anvil.wallets.facilitator.address)
    assert reason is not None
    return reason, revert_reason_code(reason)


@pytest.mark.anyio
async def test_simulation_failures_map_to_reason_codes(
    rpc: RpcClient, w3: Web3, token: Contract, anvil: DevChain, chain_snapshot: str
) -> None:
    payer, other, payee = anvil.wallets.agents[0], anvil.wallets.agents[1], anvil.wallets.providers[0].address
    t = now(w3)

    expired = authorize(w3, token, payer, payee, valid_before=t - 1)
    assert await simulated_code(rpc, token, anvil, calldata_of(expired)) == (
        "FiatTokenV2: authorization is expired",
        "invalid_exact_evm_payload_authorization_valid_before",
    )

    early = authorize(w3, token, payer, payee, valid_after=t + 3600, valid_before=t + 7200)
    assert await simulated_code(rpc, token, anvil, calldata_of(early)) == (
        "FiatTokenV2: authorization is not yet valid",
        "invalid_exact_evm_payload_authorization_valid_after",
    )

    too_much = authorize(w3, token, payer, payee, value=10**15)
    assert await simulated_code(rpc, token, anvil, calldata_of(too_much)) == (
        "ERC20: transfer amount exceeds balance",
        "invalid_exact_evm_insufficient_balance",
    )

    forged = authorize(w3, token, other, payee, from_address=payer.address)
    assert await simulated_code(rpc, token, anvil, calldata_of(forged)) == (
        "FiatTokenV2: invalid signature",
        "invalid_exact_evm_payload_signature",
    )

    valid = authorize(w3, token, payer, payee)
    twin = valid.r + (SECP256K1_N - int.from_bytes(valid.s, "big")).to_bytes(32, "big") + bytes((55 - valid.v,))
    reason, code = await simulated_code(rpc, token, anvil, calldata_of(valid, twin))
    assert "ECRecover" in reason and code == "invalid_exact_evm_payload_signature"

    submit(w3, anvil.wallets.facilitator, token, calldata_of(valid))
    assert await simulated_code(rpc, token, anvil, calldata_of(valid)) == (
        "FiatTokenV2: authorization is used or canceled",
        "invalid_exact_evm_nonce_already_used",
    )


@pytest.mark.anyio
async def test_find_transfer_in_a_real_receipt(
    rpc: RpcClient, w3: Web3, token: Contract, anvil: DevChain, chain_snapshot: str
) -> None:
    payer, payee = anvil.wallets.agents[0], anvil.wallets.providers[0].address
    auth = authorize(w3, token, payer, payee)
    sent = submit(w3, anvil.wallets.facilitator, token, calldata_of(auth))
    receipt = await rpc.call("eth_getTransactionReceipt", [sent["transactionHash"].to_0x_hex()])
    logs = receipt["logs"]
    assert any(log["topics"][0] == TRANSFER_TOPIC for log in logs)

    assert find_transfer(logs, token.address, payer.address, payee, AMOUNT)
    assert find_transfer(logs, token.address.lower(), payer.address.lower(), payee.upper().replace("0X", "0x"), AMOUNT)
    assert not find_transfer(logs, token.address, payer.address, payee, AMOUNT + 1)
    assert not find_transfer(logs, token.address, payee, payer.address, AMOUNT)
    assert not find_transfer(logs, anvil.wallets.deployer.address, payer.address, payee, AMOUNT)
    assert not find_transfer([], token.address, payer.address, payee, AMOUNT)
    removed = [{**log, "removed": True} for log in logs]
    assert not find_transfer(removed, token.address, payer.address, payee, AMOUNT)
