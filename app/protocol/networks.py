"""Network identifiers: x402 v1 names (``base-sepolia``) and CAIP-2 (``eip155:84532``).

v2 speaks CAIP-2 only; v1 names are converted at the edge so everything inside is CAIP-2.
The v1 table is the official SDK's (``x402/mechanisms/evm/v1/constants.py``, ``V1_NETWORK_CHAIN_IDS``).
"""

from __future__ import annotations

import re
from types import MappingProxyType

from app.protocol.errors import ProtocolError
from app.protocol.reasons import Reason

EIP155 = "eip155"

#: x402 v1 network name -> EVM chain id.
V1_NETWORK_CHAIN_IDS: MappingProxyType[str, int] = MappingProxyType(
    {
        "base": 8453,
        "base-sepolia": 84532,
        "ethereum": 1,
        "polygon": 137,
        "polygon-amoy": 80002,
        "avalanche": 43114,
        "avalanche-fuji": 43113,
        "abstract": 2741,
        "abstract-testnet": 11124,
        "iotex": 4689,
        "sei": 1329,
        "sei-testnet": 1328,
        "peaq": 3338,
        "story": 1513,
        "educhain": 656476,
        "skale-base-sepolia": 1444673419,
        "megaeth": 4326,
        "monad": 143,
        "monad-testnet": 10143,
        "stable": 988,
        "stable-testnet": 2201,
        "celo": 42220,
        "flare": 14,
    }
)

_V1_BY_CHAIN_ID: MappingProxyType[int, str] = MappingProxyType(
    {chain_id: name for name, chain_id in V1_NETWORK_CHAIN_IDS.items()}
)

_MAX_CHAIN_ID = 2**256 - 1  # EIP-712 domains carry chainId as uint256
_EIP155_RE = re.compile(r"eip155:([1-9][0-9]{0,77})", re.ASCII)
# CAIP-2: namespace [-a-z0-9]{3,8}, reference [-_a-zA-Z0-9]{1,32}
_CAIP2_RE = re.compile(r"[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}", re.ASCII)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_eip155(caip2: str) -> int:
    """Chain id of a strict ``eip155:<chainId>`` string (positive decimal, no leading zeros, no sign).

    Raises ProtocolError(invalid_exact_evm_failed_to_get_network_config) for anything else.
    """
    if not isinstance(caip2, str):
        raise ProtocolError(
            Reason.invalid_exact_evm_failed_to_get_network_config,
            f"network must be a string, got {type(caip2).__name__}",
        )
    match = _EIP155_RE.fullmatch(caip2)
    if match is None:
        raise ProtocolError(
            Reason.invalid_exact_evm_failed_to_get_network_config,
            f"network {_show(caip2)} is not of the form eip155:<chainId>",
        )
    chain_id = int(match.group(1))
    if chain_id > _MAX_CHAIN_ID:
        raise ProtocolError(
            Reason.invalid_exact_evm_failed_to_get_network_config,
            f"network {_show(caip2)}: chain id exceeds uint256",
        )
    return chain_id


def caip2_from_chain_id(chain_id: int) -> str:
    """``eip155:<chain_id>`` for a positive chain id."""
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 0 < chain_id <= _MAX_CHAIN_ID:
        raise ProtocolError(Reason.invalid_network, f"chain id {_show(chain_id)} is not a positive uint256")
    return f"{EIP155}:{chain_id}"


def caip2_from_v1(name: str) -> str:
    """CAIP-2 for an x402 v1 network name; ProtocolError(invalid_network) if the name is unknown."""
    chain_id = V1_NETWORK_CHAIN_IDS.get(name) if isinstance(name, str) else None
    if chain_id is None:
        raise ProtocolError(Reason.invalid_network, f"unknown x402 v1 network name {_show(name)}")
    return f"{EIP155}:{chain_id}"


def v1_from_caip2(caip2: str) -> str | None:
    """The x402 v1 name of a CAIP-2 network, or None when v1 has no name for it (or it is malformed)."""
    try:
        chain_id = parse_eip155(caip2)
    except ProtocolError:
        return None
    return _V1_BY_CHAIN_ID.get(chain_id)


def normalize_network(value: str) -> str:
    """Either form (v1 name or CAIP-2) -> CAIP-2.

    ``eip155`` identifiers are checked strictly (see :func:`parse_eip155`) and returned in canonical form;
    other CAIP-2 namespaces are returned unchanged if well-formed. Unknown v1 names and strings that are
    neither form raise ProtocolError(invalid_network).
    """
    if not isinstance(value, str):
        raise ProtocolError(Reason.invalid_network, f"network must be a string, got {type(value).__name__}")
    if ":" not in value:
        return caip2_from_v1(value)
    if value.startswith(f"{EIP155}:"):
        return f"{EIP155}:{parse_eip155(value)}"
    if _CAIP2_RE.fullmatch(value) is None:
        raise ProtocolError(Reason.invalid_network, f"network {_show(value)} is not a CAIP-2 identifier")
    return value
