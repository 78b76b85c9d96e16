"""Recursive Length Prefix encoding (Ethereum Yellow Paper, appendix B), for signing transactions.

Only encoding, and only of what a transaction holds: non-negative integers (big-endian, no leading
zeros), byte strings and lists of them. The ``rlp`` package does the same but imports eth-utils and
cytoolz (about 5 MB of resident memory in the service); a test holds this equal to it.
"""

from __future__ import annotations

from collections.abc import Sequence

RlpItem = int | bytes | Sequence["RlpItem"]


def _length_prefix(length: int, short_base: int) -> bytes:
    """0x80/0xc0 + length up to 55 bytes; beyond that 0xb7/0xf7 + the length of the big-endian length."""
    if length <= 55:
        return bytes([short_base + length])
    encoded_length = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([short_base + 55 + len(encoded_length)]) + encoded_length


def encode(item: RlpItem) -> bytes:
    """The RLP encoding of an integer (>= 0), a byte string, or a (nested) list of them."""
    if isinstance(item, bool):
        raise TypeError("RLP has no booleans: encode 0 or 1")
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP encodes only non-negative integers")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")  # 0 is the empty string
    if isinstance(item, bytes | bytearray):
        if len(item) == 1 and item[0] < 0x80:
            return bytes(item)
        return _length_prefix(len(item), 0x80) + bytes(item)
    if isinstance(item, str):
        raise TypeError("RLP encodes bytes, not text: encode the string first")
    payload = b"".join(encode(element) for element in item)
    return _length_prefix(len(payload), 0xC0) + payload
