"""The dev stablecoin behaves like USDC for everything x402 relies on (EIP-3009, EIP-2612, EIP-1271).

Runs on anvil with our token placed at Base Sepolia's USDC address. Signatures come from eth-account
through tests/support/eip3009.py, never from app code. Each test runs inside a chain snapshot.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from app.dev.contracts import load_artifact
from app.dev.deploy import BASE_SEPOLIA_USDC, deploy_contract, deploy_token, mint, token_contract
from app.dev.devchain import DevChain
from tests.support.eip3009 import SignedAuthorization, sign_cancel_authorization, sign_permit
from tests.support.eip3009 import sign_transfer_authorization as sign_authorization

pytestmark = [pytest.mark.chain, pytest.mark.usefixtures("chain_snapshot")]

CHAIN_ID = 84532
AMOUNT = 1_250_000  # 1.25 USDC in atomic units
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
USED_OR_CANCELED = "FiatTokenV2: authorization is used or canceled"
INVALID_SIGNATURE = "FiatTokenV2: invalid signature"


# ------------------------------------------------------------------------------------------ helpers


def latest_timestamp(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def new_nonce() -> bytes:
    return secrets.token_bytes(32)


def authorize(
    w3: Web3,
    payer: LocalAccount,
    payee: str,
    value: int = AMOUNT,
    *,
    token_address: str = BASE_SEPOLIA_USDC,
    valid_after: int = 0,
    valid_before: int | None = None,
    **overrides: Any,
) -> SignedAuthorization:
    """A currently valid authorization from ``payer`` to ``payee`` on the dev USDC, unless overridden."""
    return sign_authorization(
        payer,
        token_address=token_address,
        chain_id=overrides.pop("chain_id", CHAIN_ID),
        to=payee,
        value=value,
        valid_after=valid_after,
        valid_before=valid_before if valid_before is not None else latest_timestamp(w3) + 3600,
        nonce=overrides.pop("nonce", None) or new_nonce(),
        **overrides,
    )


def submit(w3: Web3, sender: LocalAccount, call: ContractFunction, *, gas: int | None = None) -> TxReceipt:
    """Send ``call`` as a real transaction and return its receipt, whatever its status.

    With an explicit ``gas`` no estimate runs, so a transaction that will revert still gets mined.
    """
    params: dict[str, Any] = {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address)}
    if gas is not None:
        params["gas"] = gas
    tx = call.build_transaction(params)  # type: ignore[arg-type]
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)  # type: ignore[arg-type]
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)


def assert_reverts(call: ContractFunction, message: str, sender: str) -> None:
    """``call`` reverts (simulated with eth_call) with exactly ``message``."""
    with pytest.raises(ContractLogicError) as raised:
        call.call({"from": sender})
    assert raised.value.message == f"execution reverted: {message}"


def balances(token: Contract, *addresses: str) -> list[int]:
    return [token.functions.balanceOf(address).call() for address in addresses]


def malleable_twin(auth: SignedAuthorization) -> tuple[int, bytes, bytes]:
    """The same signature with s' = n - s and the flipped v: valid for plain ecrecover, high-s."""
    high_s = SECP256K1_N - int.from_bytes(auth.s, "big")
    return (55 - auth.v, auth.r, high_s.to_bytes(32, "big"))


@pytest.fixture
def payer(anvil: DevChain) -> LocalAccount:
    return anvil.wallets.agents[0]


@pytest.fixture
def payee(anvil: DevChain) -> LocalAccount:
    return anvil.wallets.providers[0]


@pytest.fixture
def facilitator(anvil: DevChain) -> LocalAccount:
    return anvil.wallets.facilitator


# ------------------------------------------------------------------------------------------ metadata


def test_token_at_the_usdc_address_reports_usdc_metadata(token: Contract, dev_deployment: Any) -> None:
    assert token.address == BASE_SEPOLIA_USDC == dev_deployment.token_address
    assert token.functions.name().call() == "USDC"
    assert token.functions.symbol().call() == "USDC"
    assert token.functions.version().call() == "2"
    assert token.functions.decimals().call() == 6
    assert (dev_deployment.token_name, dev_deployment.token_version, dev_deployment.decimals) == ("USDC", "2", 6)


def test_minter_is_the_deployer_and_agents_are_funded(token: Contract, anvil: DevChain, w3: Web3) -> None:
    wallets = anvil.wallets
    assert token.functions.minter().call() == wallets.deployer.address
    assert balances(token, *(agent.address for agent in wallets.agents)) == [1_000 * 10**6] * len(wallets.agents)
    assert token.functions.totalSupply().call() == 1_000 * 10**6 * len(wallets.agents)
    assert w3.eth.get_balance(wallets.facilitator.address) == 100 * 10**18


def test_domain_separator_binds_name_version_chain_id_and_usdc_address(token: Contract, w3: Web3) -> None:
    type_hash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [type_hash, keccak(text="USDC"), keccak(text="2"), CHAIN_ID, BASE_SEPOLIA_USDC],
        )
    )
    assert w3.eth.chain_id == CHAIN_ID
    assert token.functions.DOMAIN_SEPARATOR().call() == expected


def test_type_hashes_are_those_of_eip3009_and_eip2612(token: Contract) -> None:
    assert token.functions.TRANSFER_WITH_AUTHORIZATION_TYPEHASH().call() == keccak(
        text="TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
        "uint256 validBefore,bytes32 nonce)"
    )
    assert token.functions.RECEIVE_WITH_AUTHORIZATION_TYPEHASH().call() == keccak(
        text="ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
        "uint256 validBefore,bytes32 nonce)"
    )
    assert token.functions.CANCEL_AUTHORIZATION_TYPEHASH().call() == keccak(
        text="CancelAuthorization(address authorizer,bytes32 nonce)"
    )
    assert token.functions.PERMIT_TYPEHASH().call() == keccak(
        text="Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
    )


# ------------------------------------------------------------------------------------------ EIP-3009 transfer


def test_transfer_with_authorization_moves_exactly_the_value_and_emits_events(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    before = balances(token, payer.address, payee.address)
    auth = authorize(w3, payer, payee.address)

    receipt = submit(w3, facilitator, token.functions.transferWithAuthorization(*auth.vrs_args()))

    assert receipt["status"] == 1
    assert balances(token, payer.address, payee.address) == [before[0] - AMOUNT, before[1] + AMOUNT]
    assert token.functions.authorizationState(payer.address, auth.nonce).call() is True
    used = token.events.AuthorizationUsed().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["authorizer"], e["args"]["nonce"]) for e in used] == [(payer.address, auth.nonce)]
    transfers = token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["from"], e["args"]["to"], e["args"]["value"]) for e in transfers] == [
        (payer.address, payee.address, AMOUNT)
    ]


def test_unused_authorization_state_is_false(token: Contract, payer: LocalAccount) -> None:
    assert token.functions.authorizationState(payer.address, new_nonce()).call() is False


def test_replayed_authorization_reverts_as_used_or_canceled(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address)
    assert submit(w3, facilitator, token.functions.transferWithAuthorization(*auth.vrs_args()))["status"] == 1
    after_first = balances(token, payer.address, payee.address)

    assert_reverts(token.functions.transferWithAuthorization(*auth.vrs_args()), USED_OR_CANCELED, facilitator.address)
    replay = submit(w3, facilitator, token.functions.transferWithAuthorization(*auth.vrs_args()), gas=200_000)

    assert replay["status"] == 0
    assert balances(token, payer.address, payee.address) == after_first


def test_authorization_past_valid_before_reverts_as_expired(
    w3: Web3, anvil: DevChain, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address, valid_before=latest_timestamp(w3) + 60)
    anvil.rpc("evm_increaseTime", [3600])
    anvil.rpc("evm_mine")

    assert_reverts(
        token.functions.transferWithAuthorization(*auth.vrs_args()),
        "FiatTokenV2: authorization is expired",
        facilitator.address,
    )


def test_authorization_is_expired_in_the_block_whose_timestamp_equals_valid_before(
    w3: Web3, anvil: DevChain, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    valid_before = latest_timestamp(w3) + 100
    auth = authorize(w3, payer, payee.address, valid_before=valid_before)
    anvil.rpc("evm_setNextBlockTimestamp", [valid_before])

    receipt = submit(w3, facilitator, token.functions.transferWithAuthorization(*auth.vrs_args()), gas=200_000)

    assert receipt["status"] == 0
    assert token.functions.authorizationState(payer.address, auth.nonce).call() is False


def test_authorization_before_valid_after_reverts_as_not_yet_valid(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    now = latest_timestamp(w3)
    auth = authorize(w3, payer, payee.address, valid_after=now + 3600, valid_before=now + 7200)

    assert_reverts(
        token.functions.transferWithAuthorization(*auth.vrs_args()),
        "FiatTokenV2: authorization is not yet valid",
        facilitator.address,
    )


def test_authorization_becomes_valid_strictly_after_valid_after(
    w3: Web3, anvil: DevChain, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    valid_after = latest_timestamp(w3) + 100
    auth = authorize(w3, payer, payee.address, valid_after=valid_after, valid_before=valid_after + 3600)

    anvil.rpc("evm_setNextBlockTimestamp", [valid_after])
    at_valid_after = submit(w3, facilitator, token.functions.transferWithAuthorization(*auth.vrs_args()), gas=200_000)
    anvil.rpc("evm_setNextBlockTimestamp", [valid_after + 1])
    one_second_later = submit(w3, facilitator, token.functions.transferWithAuthorization(*auth.vrs_args()), gas=200_000)

    assert (at_valid_after["status"], one_second_later["status"]) == (0, 1)


def test_authorization_signed_by_someone_other_than_the_payer_reverts_as_invalid_signature(
    w3: Web3, token: Contract, anvil: DevChain, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    impostor = anvil.wallets.agents[1]
    auth = authorize(w3, impostor, payee.address, from_address=payer.address)

    assert_reverts(token.functions.transferWithAuthorization(*auth.vrs_args()), INVALID_SIGNATURE, facilitator.address)


def test_authorization_signed_for_another_chain_reverts_as_invalid_signature(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address, chain_id=8453)

    assert_reverts(token.functions.transferWithAuthorization(*auth.vrs_args()), INVALID_SIGNATURE, facilitator.address)


def test_authorization_with_a_different_value_than_signed_reverts_as_invalid_signature(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address)
    frm, to, value, valid_after, valid_before, nonce, v, r, s = auth.vrs_args()

    assert_reverts(
        token.functions.transferWithAuthorization(frm, to, value + 1, valid_after, valid_before, nonce, v, r, s),
        INVALID_SIGNATURE,
        facilitator.address,
    )


def test_high_s_signature_is_rejected_as_malleable(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address)

    assert_reverts(
        token.functions.transferWithAuthorization(*auth.message_args(), *malleable_twin(auth)),
        "ECRecover: invalid signature 's' value",
        facilitator.address,
    )


def test_signature_with_v_other_than_27_or_28_is_rejected(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address)

    assert_reverts(
        token.functions.transferWithAuthorization(*auth.message_args(), auth.v - 27, auth.r, auth.s),
        "ECRecover: invalid signature 'v' value",
        facilitator.address,
    )


def test_authorization_for_more_than_the_balance_reverts(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address, value=token.functions.balanceOf(payer.address).call() + 1)

    assert_reverts(
        token.functions.transferWithAuthorization(*auth.vrs_args()),
        "ERC20: transfer amount exceeds balance",
        facilitator.address,
    )


# ------------------------------------------------------------------------------------------ cancel


def test_cancel_authorization_emits_event_and_marks_nonce_used(
    w3: Web3, token: Contract, payer: LocalAccount, facilitator: LocalAccount
) -> None:
    nonce = new_nonce()
    cancel = sign_cancel_authorization(payer, token_address=BASE_SEPOLIA_USDC, chain_id=CHAIN_ID, nonce=nonce)

    receipt = submit(
        w3, facilitator, token.functions.cancelAuthorization(payer.address, nonce, cancel.v, cancel.r, cancel.s)
    )

    assert receipt["status"] == 1
    canceled = token.events.AuthorizationCanceled().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["authorizer"], e["args"]["nonce"]) for e in canceled] == [(payer.address, nonce)]
    assert token.functions.authorizationState(payer.address, nonce).call() is True


def test_canceled_authorization_can_no_longer_be_used(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address)
    cancel = sign_cancel_authorization(payer, token_address=BASE_SEPOLIA_USDC, chain_id=CHAIN_ID, nonce=auth.nonce)
    call = token.functions.cancelAuthorization(payer.address, auth.nonce, cancel.signature)
    assert submit(w3, facilitator, call)["status"] == 1

    assert_reverts(token.functions.transferWithAuthorization(*auth.vrs_args()), USED_OR_CANCELED, facilitator.address)


def test_cancel_signed_by_someone_else_reverts_as_invalid_signature(
    token: Contract, anvil: DevChain, payer: LocalAccount, facilitator: LocalAccount
) -> None:
    nonce = new_nonce()
    forged = sign_cancel_authorization(
        anvil.wallets.agents[1], token_address=BASE_SEPOLIA_USDC, chain_id=CHAIN_ID, nonce=nonce
    )

    assert_reverts(
        token.functions.cancelAuthorization(payer.address, nonce, forged.v, forged.r, forged.s),
        INVALID_SIGNATURE,
        facilitator.address,
    )


# ------------------------------------------------------------------------------------------ bytes overload, EIP-1271


def test_bytes_signature_overload_accepts_an_eoa_signature(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    before = balances(token, payer.address, payee.address)
    auth = authorize(w3, payer, payee.address)
    assert len(auth.signature) == 65

    receipt = submit(w3, facilitator, token.functions.transferWithAuthorization(*auth.bytes_args()))

    assert receipt["status"] == 1
    assert balances(token, payer.address, payee.address) == [before[0] - AMOUNT, before[1] + AMOUNT]


def test_bytes_signature_of_wrong_length_reverts(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address)

    assert_reverts(
        token.functions.transferWithAuthorization(*auth.message_args(), auth.signature[:64]),
        INVALID_SIGNATURE,
        facilitator.address,
    )


@pytest.fixture
def smart_wallet(w3: Web3, anvil: DevChain, payer: LocalAccount) -> str:
    """An EIP-1271 wallet owned by ``payer``, holding 10 USDC."""
    wallet = deploy_contract(w3, anvil.wallets.deployer, load_artifact("SmartWallet"), payer.address)
    mint(w3, anvil.wallets.deployer, BASE_SEPOLIA_USDC, wallet, 10 * 10**6)
    return wallet


def test_eip1271_wallet_pays_with_its_owners_signature(
    w3: Web3,
    token: Contract,
    smart_wallet: str,
    payer: LocalAccount,
    payee: LocalAccount,
    facilitator: LocalAccount,
) -> None:
    before = balances(token, smart_wallet, payee.address)
    auth = authorize(w3, payer, payee.address, from_address=smart_wallet)

    receipt = submit(w3, facilitator, token.functions.transferWithAuthorization(*auth.bytes_args()))

    assert receipt["status"] == 1
    assert balances(token, smart_wallet, payee.address) == [before[0] - AMOUNT, before[1] + AMOUNT]
    assert token.functions.authorizationState(smart_wallet, auth.nonce).call() is True


def test_eip1271_wallet_rejects_a_signature_by_a_non_owner(
    w3: Web3,
    token: Contract,
    anvil: DevChain,
    smart_wallet: str,
    payee: LocalAccount,
    facilitator: LocalAccount,
) -> None:
    auth = authorize(w3, anvil.wallets.agents[1], payee.address, from_address=smart_wallet)
    call = token.functions.transferWithAuthorization(*auth.bytes_args())

    assert_reverts(call, INVALID_SIGNATURE, facilitator.address)


def test_smart_wallet_answers_the_eip1271_magic_value_only_for_its_owner(
    w3: Web3, anvil: DevChain, smart_wallet: str, payer: LocalAccount, payee: LocalAccount
) -> None:
    wallet = w3.eth.contract(address=smart_wallet, abi=load_artifact("SmartWallet").abi)
    by_owner = authorize(w3, payer, payee.address, from_address=smart_wallet)
    by_other = authorize(w3, anvil.wallets.agents[1], payee.address, from_address=smart_wallet)

    assert wallet.functions.isValidSignature(by_owner.digest, by_owner.signature).call() == bytes.fromhex("1626ba7e")
    assert wallet.functions.isValidSignature(by_other.digest, by_other.signature).call() == bytes.fromhex("ffffffff")


# ------------------------------------------------------------------------------------------ receive


def test_receive_with_authorization_must_be_called_by_the_payee(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address, primary_type="ReceiveWithAuthorization")

    assert_reverts(
        token.functions.receiveWithAuthorization(*auth.vrs_args()),
        "FiatTokenV2: caller must be the payee",
        facilitator.address,
    )
    before = balances(token, payer.address, payee.address)
    receipt = submit(w3, payee, token.functions.receiveWithAuthorization(*auth.vrs_args()))
    assert receipt["status"] == 1
    assert balances(token, payer.address, payee.address) == [before[0] - AMOUNT, before[1] + AMOUNT]


def test_transfer_authorization_cannot_be_redeemed_through_receive(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount
) -> None:
    auth = authorize(w3, payer, payee.address, primary_type="TransferWithAuthorization")

    assert_reverts(token.functions.receiveWithAuthorization(*auth.bytes_args()), INVALID_SIGNATURE, payee.address)


# ------------------------------------------------------------------------------------------ permit, minting


def test_permit_sets_allowance_and_bumps_the_nonce(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    nonce = token.functions.nonces(payer.address).call()
    deadline = latest_timestamp(w3) + 3600
    sig = sign_permit(
        payer,
        token_address=BASE_SEPOLIA_USDC,
        chain_id=CHAIN_ID,
        spender=payee.address,
        value=AMOUNT,
        nonce=nonce,
        deadline=deadline,
    )

    call = token.functions.permit(payer.address, payee.address, AMOUNT, deadline, sig.v, sig.r, sig.s)
    assert submit(w3, facilitator, call)["status"] == 1

    assert token.functions.allowance(payer.address, payee.address).call() == AMOUNT
    assert token.functions.nonces(payer.address).call() == nonce + 1
    assert_reverts(call, "EIP2612: invalid signature", facilitator.address)  # the nonce moved on
    transfer = token.functions.transferFrom(payer.address, payee.address, AMOUNT)
    assert submit(w3, payee, transfer)["status"] == 1
    assert token.functions.allowance(payer.address, payee.address).call() == 0


def test_permit_past_its_deadline_reverts_as_expired(
    w3: Web3, token: Contract, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    deadline = latest_timestamp(w3) - 1
    sig = sign_permit(
        payer,
        token_address=BASE_SEPOLIA_USDC,
        chain_id=CHAIN_ID,
        spender=payee.address,
        value=AMOUNT,
        nonce=token.functions.nonces(payer.address).call(),
        deadline=deadline,
    )

    assert_reverts(
        token.functions.permit(payer.address, payee.address, AMOUNT, deadline, sig.v, sig.r, sig.s),
        "FiatTokenV2: permit is expired",
        facilitator.address,
    )


def test_mint_by_a_non_minter_reverts(token: Contract, payer: LocalAccount) -> None:
    assert_reverts(token.functions.mint(payer.address, 1), "FiatToken: caller is not the minter", payer.address)
    assert_reverts(token.functions.updateMinter(payer.address), "FiatToken: caller is not the minter", payer.address)


def test_minter_can_hand_the_role_over(w3: Web3, token: Contract, anvil: DevChain, payer: LocalAccount) -> None:
    deployer = anvil.wallets.deployer
    assert submit(w3, deployer, token.functions.updateMinter(payer.address))["status"] == 1

    assert token.functions.minter().call() == payer.address
    assert_reverts(token.functions.mint(payer.address, 1), "FiatToken: caller is not the minter", deployer.address)


# ------------------------------------------------------------------------------------------ plain deployment


def test_plain_deployment_signs_for_its_own_address(
    w3: Web3, anvil: DevChain, payer: LocalAccount, payee: LocalAccount, facilitator: LocalAccount
) -> None:
    deployer = anvil.wallets.deployer
    address = deploy_token(w3, deployer, name="Dev Dollar", symbol="DDOL")
    fresh = token_contract(w3, address)
    mint(w3, deployer, address, payer.address, 5 * 10**6)
    assert address != BASE_SEPOLIA_USDC
    assert (fresh.functions.name().call(), fresh.functions.symbol().call()) == ("Dev Dollar", "DDOL")

    for_usdc_address = authorize(w3, payer, payee.address, name="Dev Dollar")
    assert_reverts(
        fresh.functions.transferWithAuthorization(*for_usdc_address.vrs_args()), INVALID_SIGNATURE, facilitator.address
    )
    auth = authorize(w3, payer, payee.address, token_address=address, name="Dev Dollar")
    receipt = submit(w3, facilitator, fresh.functions.transferWithAuthorization(*auth.vrs_args()))

    assert receipt["status"] == 1
    assert balances(fresh, payer.address, payee.address) == [5 * 10**6 - AMOUNT, AMOUNT]
