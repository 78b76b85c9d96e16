"""Deploy and fund the dev stablecoin: shared by the test fixtures, the CLI and scripts/deploy_token.py.

On anvil the token is placed at Base Sepolia's USDC address (with chain id 84532), so stock x402
clients take it for the known asset. Placing works by deploying a template instance, then copying its
runtime code and its simple storage slots to the target address with anvil's cheat codes; the
contract computes its EIP-712 domain at call time, so the copy signs for its new address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import TxParams, TxReceipt

from app.dev.contracts import ContractArtifact, load_artifact
from app.dev.devchain import DevChain, DevWallets

BASE_SEPOLIA_USDC: ChecksumAddress = Web3.to_checksum_address("0x036CbD53842c5426634e7929541eC2318f3dCF7e")
TOKEN_ARTIFACT = "StableCoin"
RECEIPT_TIMEOUT_S = 30.0


class DeploymentError(RuntimeError):
    """A deployment step failed on-chain or the node refused a cheat code."""


@dataclass(frozen=True)
class DevDeployment:
    """What a dev chain offers once set up: where the token is and who holds what."""

    rpc_url: str
    chain_id: int
    token_address: ChecksumAddress
    token_name: str
    token_version: str
    decimals: int
    wallets: DevWallets


def token_contract(w3: Web3, address: str) -> Contract:
    """A web3 contract object for our stablecoin (or real USDC: the ABI is a superset of what we call)."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(TOKEN_ARTIFACT).abi)


def send_transaction(w3: Web3, sender: LocalAccount, tx: TxParams, *, timeout: float = RECEIPT_TIMEOUT_S) -> TxReceipt:
    """Sign locally (the node never holds our keys), broadcast, and wait for a successful receipt."""
    tx = dict(tx)  # type: ignore[assignment]
    tx.setdefault("from", sender.address)
    tx.setdefault("chainId", w3.eth.chain_id)
    tx.setdefault("nonce", w3.eth.get_transaction_count(sender.address, "pending"))
    signed = sender.sign_transaction(tx)  # type: ignore[arg-type]
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    if receipt["status"] != 1:
        raise DeploymentError(f"transaction {tx_hash.to_0x_hex()} reverted (block {receipt['blockNumber']})")
    return receipt


def deploy_contract(w3: Web3, deployer: LocalAccount, artifact: ContractArtifact, *args: Any) -> ChecksumAddress:
    """Deploy ``artifact`` with constructor ``args`` at a fresh address."""
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(*args).build_transaction({"from": deployer.address})
    receipt = send_transaction(w3, deployer, tx)
    address = receipt["contractAddress"]
    if not address:
        raise DeploymentError(f"{artifact.contract_name}: receipt has no contract address")
    return Web3.to_checksum_address(address)


def deploy_token(
    w3: Web3,
    deployer: LocalAccount,
    name: str = "USDC",
    symbol: str = "USDC",
    minter: str | None = None,
) -> ChecksumAddress:
    """Deploy the stablecoin at a fresh address; works on any chain. The minter defaults to the deployer."""
    minter_address = Web3.to_checksum_address(minter) if minter else deployer.address
    return deploy_contract(w3, deployer, load_artifact(TOKEN_ARTIFACT), name, symbol, minter_address)


def _anvil(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if response.get("error"):
        raise DeploymentError(f"{method} failed (is this anvil?): {response['error']}")
    return response.get("result")


def _word(value: bytes) -> str:
    return "0x" + HexBytes(value).rjust(32, b"\0").hex()


def _copy_slot(w3: Web3, source: ChecksumAddress, target: ChecksumAddress, slot: int) -> bytes:
    value = bytes(w3.eth.get_storage_at(source, slot))
    _anvil(w3, "anvil_setStorageAt", [target, hex(slot), _word(value)])
    return value


def place_token_at(
    w3: Web3,
    deployer: LocalAccount,
    address: str = BASE_SEPOLIA_USDC,
    name: str = "USDC",
    symbol: str = "USDC",
) -> ChecksumAddress:
    """Put a working stablecoin at a fixed ``address`` (anvil only), minter = deployer.

    Mappings (balances, nonces, authorization states) are not copied: the template is fresh, so they
    are empty. Strings longer than 31 bytes keep their data at keccak(slot), which is copied as well.
    """
    target = Web3.to_checksum_address(address)
    artifact = load_artifact(TOKEN_ARTIFACT)
    template = deploy_token(w3, deployer, name=name, symbol=symbol)
    _anvil(w3, "anvil_setCode", [target, w3.eth.get_code(template).to_0x_hex()])
    for entry in artifact.storage_slots:
        if entry.encoding == "inplace":
            _copy_slot(w3, template, target, entry.slot)
        elif entry.encoding == "bytes":
            head = int.from_bytes(_copy_slot(w3, template, target, entry.slot), "big")
            if head & 1:  # long form: head = 2 * length + 1, data lives at keccak(slot)
                length = (head - 1) // 2
                data_slot = int.from_bytes(keccak(entry.slot.to_bytes(32, "big")), "big")
                for index in range((length + 31) // 32):
                    _copy_slot(w3, template, target, data_slot + index)
        elif entry.encoding != "mapping":
            raise DeploymentError(f"cannot clone state variable {entry.label} ({entry.type_id})")
    if not w3.eth.get_code(target):
        raise DeploymentError(f"anvil_setCode left no code at {target}")
    return target


def mint(w3: Web3, minter: LocalAccount, token: str, to: str, amount: int) -> TxReceipt:
    """Mint ``amount`` atomic units (integer, never float) to ``to``; ``minter`` must hold the role."""
    contract = token_contract(w3, token)
    tx = contract.functions.mint(Web3.to_checksum_address(to), amount).build_transaction({"from": minter.address})
    return send_transaction(w3, minter, tx)


def fund_eth(w3: Web3, address: str, wei: int) -> None:
    """Set an account's ETH balance (anvil only), e.g. gas money for the facilitator's hot wallet."""
    _anvil(w3, "anvil_setBalance", [Web3.to_checksum_address(address), hex(wei)])


def setup_dev_chain(chain: DevChain, *, agent_balance: int = 1_000 * 10**6) -> DevDeployment:
    """Make a fresh anvil ready for x402: USDC at its Base Sepolia address, funded agents and facilitator."""
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    wallets = chain.wallets
    address = place_token_at(w3, wallets.deployer)
    for agent in wallets.agents:
        mint(w3, wallets.deployer, address, agent.address, agent_balance)
    fund_eth(w3, wallets.facilitator.address, 100 * 10**18)
    token = token_contract(w3, address)
    return DevDeployment(
        rpc_url=chain.rpc_url,
        chain_id=chain.chain_id,
        token_address=address,
        token_name=token.functions.name().call(),
        token_version=token.functions.version().call(),
        decimals=token.functions.decimals().call(),
        wallets=wallets,
    )
