"""The token side of EIP-3009 ``transferWithAuthorization``: calldata, state reads, simulation, receipts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.chain.abi import decode, encode
from app.chain.eip712 import address_bytes, keccak256
from app.chain.rpc import RpcClient, RpcError
from app.chain.signatures import has_code, to_checksum, unwrap_erc6492
from app.chain.token import AUTHORIZATION_STATE, BALANCE_OF, selector

_AUTH_FIELDS = "address,address,uint256,uint256,uint256,bytes32"
TRANSFER_WITH_AUTHORIZATION_VRS = selector(f"transferWithAuthorization({_AUTH_FIELDS},uint8,bytes32,bytes32)")
TRANSFER_WITH_AUTHORIZATION_BYTES = selector(f"transferWithAuthorization({_AUTH_FIELDS},bytes)")
_AUTH_TYPES = ["address", "address", "uint256", "uint256", "uint256", "bytes32"]

TRANSFER_TOPIC = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


def transfer_with_authorization_calldata(
    payer: str,
    to: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: bytes,
    signature: bytes,
) -> bytes:
    """Calldata of ``transferWithAuthorization``: the v,r,s overload for 65-byte signatures (v as 27/28),
    the ``bytes signature`` overload (EIP-1271 wallets, USDC v2.2) for any other length.

    An ERC-6492 wrapper is unwrapped: it exists for verifiers that may meet a wallet not deployed yet, while
    the token calls the deployed wallet's ``isValidSignature``, which expects the signature inside.
    Raises ``SignatureError`` for a malformed wrapper.
    """
    wrapped = unwrap_erc6492(signature)
    if wrapped is not None:
        signature = wrapped[2]
    args: list[Any] = [to_checksum(payer), to_checksum(to), value, valid_after, valid_before, bytes(nonce)]
    if len(signature) == 65:
        v = signature[64]
        if v < 27:
            v += 27
        return TRANSFER_WITH_AUTHORIZATION_VRS + encode(
            [*_AUTH_TYPES, "uint8", "bytes32", "bytes32"], [*args, v, signature[:32], signature[32:64]]
        )
    return TRANSFER_WITH_AUTHORIZATION_BYTES + encode([*_AUTH_TYPES, "bytes"], [*args, bytes(signature)])


@dataclass(frozen=True)
class PaymentState:
    balance: int  # payer's token balance in atomic units
    authorization_used: bool  # authorizationState(payer, nonce): used or canceled
    payer_code: str  # "0x" for an EOA; feed it to verify_signature(signer_code=...)
    token_has_code: bool


def _hex_bytes(result: Any) -> bytes:
    if not isinstance(result, str) or not result.startswith("0x"):
        raise ValueError(f"unexpected eth_call result {result!r:.100}")
    return bytes.fromhex(result[2:])


def _payment_state_calls(token: str, payer: str, nonce: bytes, block: str) -> list[tuple[str, list[Any]]]:
    token_address = to_checksum(token)
    payer_address = to_checksum(payer)
    balance_data = BALANCE_OF + encode(["address"], [payer_address])
    state_data = AUTHORIZATION_STATE + encode(["address", "bytes32"], [payer_address, bytes(nonce)])
    return [
        ("eth_call", [{"to": token_address, "data": "0x" + balance_data.hex()}, block]),
        ("eth_call", [{"to": token_address, "data": "0x" + state_data.hex()}, block]),
        ("eth_getCode", [payer_address, block]),
        ("eth_getCode", [token_address, block]),
    ]


def _payment_state_of(results: list[Any]) -> PaymentState:
    for result in results:
        if isinstance(result, RpcError):
            raise result
    balance_raw, state_raw, payer_code, token_code = results
    balance_bytes = _hex_bytes(balance_raw)
    state_bytes = _hex_bytes(state_raw)
    return PaymentState(
        balance=int.from_bytes(balance_bytes[:32], "big") if balance_bytes else 0,
        authorization_used=bool(int.from_bytes(state_bytes[:32], "big")) if state_bytes else False,
        payer_code=str(payer_code),
        token_has_code=has_code(token_code),
    )


async def read_payment_state(
    rpc: RpcClient, token: str, payer: str, nonce: bytes, block: str = "latest"
) -> PaymentState:
    """Balance, nonce state, payer code and token code in one batched round trip.

    A token without code answers ``0x`` to the calls: that reads as balance 0 / unused, and
    ``token_has_code`` is False. A JSON-RPC error in any slot is raised.
    """
    return _payment_state_of(await rpc.batch(_payment_state_calls(token, payer, nonce, block)))


def decode_revert_data(data: Any) -> str | None:
    """The reason of ``Error(string)`` / ``Panic(uint256)`` revert data (0x-hex), None if not decodable."""
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x"):
        return None
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return None
    try:
        if raw[:4] == ERROR_STRING_SELECTOR:
            (reason,) = decode(["string"], raw[4:])
            return str(reason)
        if raw[:4] == PANIC_SELECTOR:
            (code,) = decode(["uint256"], raw[4:])
            return f"panic 0x{code:02x}"
    except Exception:
        return None
    return None


async def simulate_transfer(
    rpc: RpcClient, token: str, calldata: bytes, *, sender: str, block: str = "latest"
) -> str | None:
    """``eth_call`` the transfer from the facilitator's address: None if it would succeed, else the
    revert reason (decoded from the error data, or the node's message when there is none)."""
    try:
        await rpc.call("eth_call", [_simulation_call(token, calldata, sender), block])
    except RpcError as error:
        return _revert_text(error)
    return None


def _simulation_call(token: str, calldata: bytes, sender: str) -> dict[str, str]:
    return {"from": to_checksum(sender), "to": to_checksum(token), "data": "0x" + bytes(calldata).hex()}


_REVERT_REASONS = (
    ("authorization is expired", "invalid_exact_evm_payload_authorization_valid_before"),
    ("not yet valid", "invalid_exact_evm_payload_authorization_valid_after"),
    ("authorization is used or canceled", "invalid_exact_evm_nonce_already_used"),
    ("transfer amount exceeds balance", "invalid_exact_evm_insufficient_balance"),
    ("invalid signature", "invalid_exact_evm_payload_signature"),
    ("ecrecover", "invalid_exact_evm_payload_signature"),
)
SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"


def revert_reason_code(message: str) -> str:
    """The x402 reason code of a USDC-style revert text (case-insensitive substring match)."""
    lowered = message.lower()
    for fragment, code in _REVERT_REASONS:
        if fragment in lowered:
            return code
    return SIMULATION_FAILED


def _topic_of(address: str) -> str:
    return "0x" + (b"\x00" * 12 + address_bytes(address)).hex()


def find_transfer(receipt_logs: list[dict[str, Any]], token: str, payer: str, to: str, value: int) -> bool:
    """Is there an ERC-20 ``Transfer(payer, to, value)`` log emitted by ``token`` among the receipt's logs?"""
    token_lower = token.lower()
    expected_topics = [TRANSFER_TOPIC, _topic_of(payer), _topic_of(to)]
    for log in receipt_logs:
        if log.get("removed"):
            continue
        if str(log.get("address", "")).lower() != token_lower:
            continue
        topics = [str(topic).lower() for topic in log.get("topics") or []]
        if topics != expected_topics:
            continue
        data = str(log.get("data") or "0x")
        try:
            raw = bytes.fromhex(data[2:])
        except ValueError:
            continue
        if len(raw) == 32 and int.from_bytes(raw, "big") == value:
            return True
    return False


@dataclass(frozen=True)
class TransferInspection:
    state: PaymentState
    revert_reason: str | None  # None: the simulated transfer would succeed


async def inspect_transfer(
    rpc: RpcClient, token: str, payer: str, nonce: bytes, calldata: bytes, *, sender: str, block: str = "latest"
) -> TransferInspection:
    """Everything verify needs from the chain in ONE round trip: balance, nonce state, payer and token
    code, and an ``eth_call`` simulation of the transfer from ``sender``.

    All five reads see the same block tag; a JSON-RPC error in a read slot is raised, while a revert
    of the simulation is the answer ``revert_reason``.
    """
    calls = [
        *_payment_state_calls(token, payer, nonce, block),
        ("eth_call", [_simulation_call(token, calldata, sender), block]),
    ]
    *reads, simulated = await rpc.batch(calls)
    revert_reason = _revert_text(simulated) if isinstance(simulated, RpcError) else None
    return TransferInspection(state=_payment_state_of(reads), revert_reason=revert_reason)


def _revert_text(error: RpcError) -> str:
    reason = decode_revert_data(error.data)
    if reason is not None:
        return reason
    message = error.message or "execution reverted"
    return message.removeprefix("execution reverted: ").strip() or message
