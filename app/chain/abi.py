"""Solidity ABI encoding and decoding for the few types the facilitator sends to and reads from a chain.

The facilitator only ever speaks to a token and a wallet: ``address``, ``uintN``, ``bool``, ``bytes32``
and the dynamic ``bytes`` and ``string``, in flat argument lists (no arrays, no tuples). For that,
eth-abi's generic type grammar is both slow on the verify hot path and heavy to import (it brings
eth-utils, cytoolz, parsimonious and regex: about 6 MB of resident memory in every service process).
The layout below follows the Solidity ABI specification ("Formal Specification of the Encoding"); a
property test holds it equal to eth-abi, byte for byte.

Decoding is strict, as a payment system should be: a non-zero padding byte, a value out of its type's
range, an offset or length that points outside the data, or data too short are all ``AbiError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.chain.eip712 import address_bytes

WORD = 32
_ZERO_WORD = b"\x00" * WORD
_DYNAMIC = frozenset({"bytes", "string"})


class AbiError(ValueError):
    """Data that is not the ABI encoding of the expected types, or a value a type cannot hold."""


def _uint_bits(abi_type: str) -> int | None:
    """N of ``uintN`` (``uint`` is ``uint256``), None for any other type."""
    if not abi_type.startswith("uint"):
        return None
    bits = int(abi_type[4:] or 256)
    if bits % 8 or not 8 <= bits <= 256:
        raise AbiError(f"unsupported ABI type {abi_type!r}")
    return bits


def _check_type(abi_type: str) -> None:
    if abi_type not in ("address", "bool", "bytes32") and abi_type not in _DYNAMIC and _uint_bits(abi_type) is None:
        raise AbiError(f"unsupported ABI type {abi_type!r}")


# ------------------------------------------------------------------------------------------ encode


def _address_word(value: Any) -> bytes:
    try:
        return address_bytes(value).rjust(WORD, b"\x00")
    except (ValueError, TypeError):
        raise AbiError(f"not an address: {value!r:.80}") from None


def _static_word(abi_type: str, value: Any) -> bytes:
    if abi_type == "address":
        return _address_word(value)
    if abi_type == "bytes32":
        if not isinstance(value, bytes | bytearray) or len(value) != WORD:
            raise AbiError(f"bytes32 needs exactly 32 bytes, got {value!r:.80}")
        return bytes(value)
    if abi_type == "bool":
        if not isinstance(value, bool):
            raise AbiError(f"bool needs True or False, got {value!r:.80}")
        return int(value).to_bytes(WORD, "big")
    bits = _uint_bits(abi_type)
    if bits is None:
        raise AbiError(f"unsupported ABI type {abi_type!r}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise AbiError(f"{abi_type} needs an integer in [0, 2**{bits}), got {value!r:.80}")
    return value.to_bytes(WORD, "big")


def _dynamic_tail(abi_type: str, value: Any) -> bytes:
    if abi_type == "string":
        if not isinstance(value, str):
            raise AbiError(f"string needs text, got {type(value).__name__}")
        value = value.encode("utf-8")
    elif not isinstance(value, bytes | bytearray):
        raise AbiError(f"bytes needs bytes, got {type(value).__name__}")
    padding = -len(value) % WORD
    return len(value).to_bytes(WORD, "big") + bytes(value) + b"\x00" * padding


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """``abi.encode(values...)`` for a flat list of ``types``: the head words, then the dynamic tails."""
    if len(types) != len(values):
        raise AbiError(f"{len(types)} types but {len(values)} values")
    head: list[bytes] = []
    tails: list[bytes] = []
    tail_offset = WORD * len(types)
    for abi_type, value in zip(types, values, strict=True):
        _check_type(abi_type)
        if abi_type in _DYNAMIC:
            tail = _dynamic_tail(abi_type, value)
            head.append(tail_offset.to_bytes(WORD, "big"))
            tails.append(tail)
            tail_offset += len(tail)
        else:
            head.append(_static_word(abi_type, value))
    return b"".join(head) + b"".join(tails)


# ------------------------------------------------------------------------------------------ decode


def _word(data: bytes, offset: int) -> bytes:
    if offset < 0 or offset + WORD > len(data):
        raise AbiError(f"data ends at byte {len(data)}, before the word at {offset}")
    return data[offset:offset + WORD]


def _uint(data: bytes, offset: int, bits: int) -> int:
    value = int.from_bytes(_word(data, offset), "big")
    if value >> bits:
        raise AbiError(f"uint{bits} at byte {offset} is out of range")
    return value


def _decode_static(abi_type: str, data: bytes, offset: int) -> Any:
    word = _word(data, offset)
    if abi_type == "address":
        if word[:12] != _ZERO_WORD[:12]:
            raise AbiError(f"address at byte {offset} has non-zero padding")
        return word[12:]
    if abi_type == "bytes32":
        return word
    if abi_type == "bool":
        flag = _uint(data, offset, 8)
        if flag > 1:
            raise AbiError(f"bool at byte {offset} is neither 0 nor 1")
        return bool(flag)
    bits = _uint_bits(abi_type)
    assert bits is not None  # _check_type ran first
    return _uint(data, offset, bits)


def _decode_dynamic(abi_type: str, data: bytes, head_offset: int) -> Any:
    start = _uint(data, head_offset, 256)
    length = _uint(data, start, 256)
    body_start = start + WORD
    padded_end = body_start + length + (-length % WORD)
    if padded_end > len(data):
        raise AbiError(f"{abi_type} of {length} bytes at byte {start} runs past the end of the data")
    if data[body_start + length:padded_end].strip(b"\x00"):
        raise AbiError(f"{abi_type} at byte {start} has non-zero padding")
    body = data[body_start:body_start + length]
    if abi_type == "bytes":
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise AbiError(f"string at byte {start} is not UTF-8") from None


def decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """The values ``abi.encode`` of ``types`` produced ``data`` from. Addresses come back as 20 raw bytes."""
    values = []
    for index, abi_type in enumerate(types):
        _check_type(abi_type)
        decoder = _decode_dynamic if abi_type in _DYNAMIC else _decode_static
        values.append(decoder(abi_type, data, WORD * index))
    return tuple(values)
