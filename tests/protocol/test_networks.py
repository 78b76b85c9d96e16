"""v1 network names <-> CAIP-2, and strict eip155 parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from x402.mechanisms.evm.v1.constants import V1_NETWORK_CHAIN_IDS as SDK_V1_NETWORK_CHAIN_IDS

from app.protocol import (
    V1_NETWORK_CHAIN_IDS,
    ProtocolError,
    Reason,
    caip2_from_chain_id,
    caip2_from_v1,
    normalize_network,
    parse_eip155,
    v1_from_caip2,
)


def test_v1_table_matches_the_sdk() -> None:
    assert dict(V1_NETWORK_CHAIN_IDS) == SDK_V1_NETWORK_CHAIN_IDS


def test_well_known_names() -> None:
    assert caip2_from_v1("base-sepolia") == "eip155:84532"
    assert caip2_from_v1("base") == "eip155:8453"
    assert caip2_from_v1("ethereum") == "eip155:1"
    assert caip2_from_v1("polygon-amoy") == "eip155:80002"
    assert caip2_from_v1("avalanche-fuji") == "eip155:43113"
    assert v1_from_caip2("eip155:84532") == "base-sepolia"


def test_chain_ids_are_unique_so_the_table_inverts() -> None:
    assert len(set(V1_NETWORK_CHAIN_IDS.values())) == len(V1_NETWORK_CHAIN_IDS)


@given(st.sampled_from(sorted(V1_NETWORK_CHAIN_IDS)))
def test_v1_name_round_trips_through_caip2(name: str) -> None:
    caip2 = caip2_from_v1(name)
    assert caip2 == f"eip155:{V1_NETWORK_CHAIN_IDS[name]}"
    assert v1_from_caip2(caip2) == name
    assert parse_eip155(caip2) == V1_NETWORK_CHAIN_IDS[name]
    assert normalize_network(name) == caip2
    assert normalize_network(caip2) == caip2


@given(st.integers(min_value=1, max_value=2**256 - 1))
def test_every_positive_chain_id_round_trips(chain_id: int) -> None:
    assert parse_eip155(caip2_from_chain_id(chain_id)) == chain_id


def test_caip2_without_v1_name() -> None:
    assert v1_from_caip2("eip155:10") is None
    assert v1_from_caip2("eip155:042") is None
    assert v1_from_caip2("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp") is None
    assert normalize_network("eip155:10") == "eip155:10"


@pytest.mark.parametrize(
    "bad",
    [
        "eip155:",
        "eip155:0",
        "eip155:084532",
        "eip155:+84532",
        "eip155:-1",
        "eip155: 84532",
        "eip155:84532 ",
        "eip155:84532\n",
        "eip155:8453.2",
        "eip155:0x14a34",
        "eip155:\uff18\uff14\uff15\uff13\uff12",  # full-width digits: str.isdigit() would say yes
        "EIP155:84532",
        "eip155:84532:1",
        "eip155",
        "84532",
        "base-sepolia",
        "",
        "eip155:" + "9" * 79,
        "eip155:" + str(2**256),
    ],
)
def test_parse_eip155_is_strict(bad: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_eip155(bad)
    assert info.value.reason is Reason.invalid_exact_evm_failed_to_get_network_config


def test_parse_eip155_rejects_non_strings() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_eip155(84532)  # type: ignore[arg-type]
    assert info.value.reason is Reason.invalid_exact_evm_failed_to_get_network_config


def test_parse_eip155_upper_bound_is_uint256() -> None:
    assert parse_eip155("eip155:" + str(2**256 - 1)) == 2**256 - 1


@pytest.mark.parametrize("bad", ["base-mainnet", "Base", "", "solana", "not a network", "x:", ":1", "a:b"])
def test_normalize_network_rejects_unknown_names_and_malformed_caip2(bad: str) -> None:
    with pytest.raises(ProtocolError) as info:
        normalize_network(bad)
    assert info.value.reason is Reason.invalid_network


def test_normalize_network_checks_eip155_strictly() -> None:
    with pytest.raises(ProtocolError) as info:
        normalize_network("eip155:0084532")
    assert info.value.reason is Reason.invalid_exact_evm_failed_to_get_network_config


def test_normalize_network_passes_other_caip2_namespaces() -> None:
    assert normalize_network("solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1") == "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"


@pytest.mark.parametrize("bad", [None, 84532, b"base"])
def test_non_strings_are_invalid_network(bad: object) -> None:
    with pytest.raises(ProtocolError) as info:
        normalize_network(bad)  # type: ignore[arg-type]
    assert info.value.reason is Reason.invalid_network
    with pytest.raises(ProtocolError):
        caip2_from_v1(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, True, 2**256])
def test_caip2_from_chain_id_rejects_non_positive_or_huge(bad: int) -> None:
    with pytest.raises(ProtocolError):
        caip2_from_chain_id(bad)
