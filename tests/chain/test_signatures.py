"""Signature checks: ECDSA edge cases (pure), then EOA / EIP-1271 / ERC-6492 routing on anvil.

Signatures come from eth_account through tests/support/eip3009.py, never from app code.
"""

from __future__ import annotations

import contextlib
import os
import secrets

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from app.chain.rpc import RpcClient
from app.chain.signatures import (
    ERC6492_MAGIC,
    SECP256K1_N,
    SignatureError,
    SignatureStatus,
    checksum_address,
    recover_address,
    recover_signer,
    unwrap_erc6492,
    verify_signature,
    wrap_erc6492,
)
from app.dev.contracts import load_artifact
from app.dev.deploy import deploy_contract
from app.dev.devchain import DevChain
from tests.support.eip3009 import SignedAuthorization, sign_transfer_authorization

CHAIN_ID = 84532
FACTORY = "0x" + "fa" * 20


def authorization(account: LocalAccount, *, from_address: str | None = None) -> SignedAuthorization:
    return sign_transfer_authorization(
        account,
        token_address="0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        chain_id=CHAIN_ID,
        to="0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        value=1_000_000,
        valid_after=0,
        valid_before=2**40,
        nonce=secrets.token_bytes(32),
        from_address=from_address,
    )


@pytest.fixture(scope="module")
def signed() -> tuple[LocalAccount, SignedAuthorization]:
    account = Account.create()
    return account, authorization(account)


# ------------------------------------------------------------------------------------- pure ECDSA


def test_recovers_the_signer(signed: tuple[LocalAccount, SignedAuthorization]) -> None:
    account, auth = signed
    assert recover_signer(auth.digest, auth.signature) == account.address
    assert recover_address(auth.digest, auth.signature) == bytes.fromhex(account.address[2:])


def test_checksum_matches_eip55() -> None:
    for _ in range(200):
        raw = os.urandom(20)
        assert checksum_address(raw) == to_checksum_address(raw)


def with_s(auth: SignedAuthorization, s: int, v: int | None = None) -> bytes:
    return auth.r + s.to_bytes(32, "big") + bytes((auth.v if v is None else v,))


@pytest.mark.parametrize(
    ("mutate", "kind"),
    [
        (lambda a: a.signature[:64], "length"),
        (lambda a: a.signature + b"\x00", "length"),
        (lambda a: b"", "length"),
        (lambda a: a.signature[:64] + b"\x1d", "v"),
        (lambda a: a.signature[:64] + b"\x02", "v"),
        (lambda a: b"\x00" * 32 + a.s + bytes((a.v,)), "r"),
        (lambda a: SECP256K1_N.to_bytes(32, "big") + a.s + bytes((a.v,)), "r"),
        (lambda a: with_s(a, 0), "s"),
        (lambda a: with_s(a, SECP256K1_N), "s"),
        (lambda a: with_s(a, SECP256K1_N - int.from_bytes(a.s, "big"), 55 - a.v), "high_s"),
    ],
    ids=["64-bytes", "66-bytes", "empty", "v=29", "v=2", "r=0", "r=n", "s=0", "s=n", "high-s"],
)
def test_malformed_signatures_are_refused(signed: tuple[LocalAccount, SignedAuthorization], mutate, kind) -> None:
    _, auth = signed
    with pytest.raises(SignatureError) as raised:
        recover_signer(auth.digest, mutate(auth))
    assert raised.value.kind == kind
    assert raised.value.reason


def test_digest_must_be_32_bytes(signed: tuple[LocalAccount, SignedAuthorization]) -> None:
    _, auth = signed
    with pytest.raises(SignatureError):
        recover_signer(auth.digest[:31], auth.signature)


def test_a_flipped_byte_recovers_someone_else_or_fails(signed: tuple[LocalAccount, SignedAuthorization]) -> None:
    account, auth = signed
    for index in (0, 31, 40):
        tampered = bytearray(auth.signature)
        tampered[index] ^= 0x01
        with contextlib.suppress(SignatureError):  # or it fails outright
            assert recover_signer(auth.digest, bytes(tampered)) != account.address


# ---------------------------------------------------------------------------------------- ERC-6492


def test_erc6492_roundtrip(signed: tuple[LocalAccount, SignedAuthorization]) -> None:
    _, auth = signed
    wrapped = wrap_erc6492(FACTORY, b"\xde\xad\xbe\xef", auth.signature)
    assert wrapped.endswith(ERC6492_MAGIC)
    assert unwrap_erc6492(wrapped) == (to_checksum_address(FACTORY), b"\xde\xad\xbe\xef", auth.signature)
    assert unwrap_erc6492(auth.signature) is None
    assert unwrap_erc6492(b"") is None


def test_malformed_erc6492_wrapper_is_refused() -> None:
    with pytest.raises(SignatureError):
        unwrap_erc6492(b"\x01" * 10 + ERC6492_MAGIC)


# ------------------------------------------------------------------------------------ on anvil: EOA


@pytest.mark.chain
@pytest.mark.anyio
async def test_eoa_valid(rpc: RpcClient, anvil: DevChain) -> None:
    payer = anvil.wallets.agents[0]
    auth = authorization(payer)
    check = await verify_signature(rpc, payer.address, auth.digest, auth.signature)
    assert check.status is SignatureStatus.VALID and check.accepted and check.method == "eoa"
    # the address compare is case-insensitive, and a passed signer_code skips eth_getCode
    check = await verify_signature(rpc, payer.address.lower(), auth.digest, auth.signature, signer_code="0x")
    assert check.is_valid


@pytest.mark.chain
@pytest.mark.anyio
async def test_eoa_invalid_cases(rpc: RpcClient, anvil: DevChain) -> None:
    payer, other = anvil.wallets.agents[0], anvil.wallets.agents[1]
    by_other = authorization(other, from_address=payer.address)
    assert (await verify_signature(rpc, payer.address, by_other.digest, by_other.signature)).status is (
        SignatureStatus.INVALID
    )

    auth = authorization(payer)
    flipped = bytearray(auth.signature)
    flipped[5] ^= 0x80
    check = await verify_signature(rpc, payer.address, auth.digest, bytes(flipped))
    assert check.status is SignatureStatus.INVALID and not check.accepted

    for wrong_length in (auth.signature[:64], auth.signature + b"\x00", b""):
        check = await verify_signature(rpc, payer.address, auth.digest, wrong_length)
        assert check.status is SignatureStatus.INVALID

    twin = auth.r + (SECP256K1_N - int.from_bytes(auth.s, "big")).to_bytes(32, "big") + bytes((55 - auth.v,))
    check = await verify_signature(rpc, payer.address, auth.digest, twin)
    assert check.status is SignatureStatus.HIGH_S and not check.accepted


# ------------------------------------------------------------------------------- on anvil: EIP-1271


@pytest.fixture
def smart_wallet(w3: Web3, anvil: DevChain, chain_snapshot: str) -> str:
    """A SmartWallet owned by agent 0."""
    return deploy_contract(w3, anvil.wallets.deployer, load_artifact("SmartWallet"), anvil.wallets.agents[0].address)


@pytest.mark.chain
@pytest.mark.anyio
async def test_eip1271_wallet_valid_and_invalid(rpc: RpcClient, anvil: DevChain, smart_wallet: str) -> None:
    owner, other = anvil.wallets.agents[0], anvil.wallets.agents[1]
    by_owner = authorization(owner, from_address=smart_wallet)
    check = await verify_signature(rpc, smart_wallet, by_owner.digest, by_owner.signature)
    assert check.status is SignatureStatus.VALID and check.method == "eip1271"

    by_other = authorization(other, from_address=smart_wallet)
    check = await verify_signature(rpc, smart_wallet, by_other.digest, by_other.signature)
    assert check.status is SignatureStatus.INVALID and check.method == "eip1271"

    # the wallet answers non-magic for a wrong length: no ECDSA fallback for contract signers
    check = await verify_signature(rpc, smart_wallet, by_owner.digest, by_owner.signature[:64])
    assert check.status is SignatureStatus.INVALID


@pytest.mark.chain
@pytest.mark.anyio
async def test_eip1271_has_no_ecdsa_fallback(rpc: RpcClient, anvil: DevChain, smart_wallet: str) -> None:
    """Routing is by code: a signer reported (through signer_code) as having code is asked through
    EIP-1271 only, so even a perfect ECDSA signature by that address's key is not accepted."""
    payer = anvil.wallets.agents[2]
    auth = authorization(payer)
    code = "0x" + load_artifact("SmartWallet").deployed_bytecode.removeprefix("0x")
    check = await verify_signature(rpc, payer.address, auth.digest, auth.signature, signer_code=code)
    assert check.method == "eip1271" and check.status is SignatureStatus.INVALID


@pytest.mark.chain
@pytest.mark.anyio
async def test_6492_wrapper_of_a_deployed_wallet_is_checked_through_eip1271(
    rpc: RpcClient, anvil: DevChain, smart_wallet: str
) -> None:
    by_owner = authorization(anvil.wallets.agents[0], from_address=smart_wallet)
    wrapped = wrap_erc6492(FACTORY, b"\x01\x02", by_owner.signature)
    check = await verify_signature(rpc, smart_wallet, by_owner.digest, wrapped)
    assert check.status is SignatureStatus.VALID and check.erc6492 is not None


# -------------------------------------------------------------------------------- on anvil: ERC-6492


@pytest.mark.chain
@pytest.mark.anyio
async def test_6492_for_an_undeployed_wallet(rpc: RpcClient, anvil: DevChain) -> None:
    owner = anvil.wallets.agents[0]
    counterfactual = to_checksum_address(os.urandom(20))
    auth = authorization(owner, from_address=counterfactual)
    wrapped = wrap_erc6492(FACTORY, b"\xca\xfe", auth.signature)

    denied = await verify_signature(rpc, counterfactual, auth.digest, wrapped)
    assert denied.status is SignatureStatus.FACTORY_NOT_ALLOWED and not denied.accepted
    assert denied.erc6492 == (to_checksum_address(FACTORY), b"\xca\xfe", auth.signature)

    deferred = await verify_signature(
        rpc, counterfactual, auth.digest, wrapped, allowed_6492_factories=frozenset({FACTORY.upper().replace("X", "x")})
    )
    assert deferred.status is SignatureStatus.DEFERRED and deferred.accepted and not deferred.is_valid

    # without the wrapper, a non-65-byte signature from an address without code is simply invalid
    check = await verify_signature(rpc, counterfactual, auth.digest, auth.signature + b"\x00" * 10)
    assert check.status is SignatureStatus.INVALID
