"""Reads of an EIP-3009 token's public state, ABI-encoded by hand for the hot path."""

from __future__ import annotations

from dataclasses import dataclass

from app.chain.abi import decode, encode
from app.chain.eip712 import keccak256
from app.chain.rpc import RpcClient
from app.chain.signatures import to_checksum


def selector(signature: str) -> bytes:
    """The 4-byte function selector of a canonical signature like ``balanceOf(address)``."""
    return keccak256(signature.encode())[:4]


NAME = selector("name()")
VERSION = selector("version()")
DECIMALS = selector("decimals()")
BALANCE_OF = selector("balanceOf(address)")
AUTHORIZATION_STATE = selector("authorizationState(address,bytes32)")


@dataclass(frozen=True)
class TokenMetadata:
    address: str
    name: str
    version: str
    decimals: int


def call_data(function_selector: bytes, types: list[str] | None = None, args: list[object] | None = None) -> str:
    return "0x" + (function_selector + (encode(types or [], args or []) if types else b"")).hex()


async def read_token_metadata(rpc: RpcClient, token_address: str, block: str = "latest") -> TokenMetadata:
    """name(), version() and decimals() in one batched round trip."""
    address = to_checksum(token_address)
    calls = [("eth_call", [{"to": address, "data": call_data(fn)}, block]) for fn in (NAME, VERSION, DECIMALS)]
    name_raw, version_raw, decimals_raw = await rpc.batch(calls)
    for result in (name_raw, version_raw, decimals_raw):
        if isinstance(result, Exception):
            raise result
        if result in ("0x", None):
            raise ValueError(f"no token contract answers at {address}")
    (name,) = decode(["string"], bytes.fromhex(str(name_raw)[2:]))
    (version,) = decode(["string"], bytes.fromhex(str(version_raw)[2:]))
    (decimals,) = decode(["uint8"], bytes.fromhex(str(decimals_raw)[2:]))
    return TokenMetadata(address=address, name=name, version=version, decimals=int(decimals))
