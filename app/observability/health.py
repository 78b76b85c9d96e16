"""Health: is the ledger reachable, and does each enabled network answer with the chain we expect?

Reads token metadata from the chain rather than from configuration, so a wrong RPC URL or a
token at the wrong address shows up here before a payment fails on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from app.chain.blocks import chain_head
from app.chain.keys import HotWallet
from app.chain.rpc import RpcClient, RpcError, RpcUnavailable
from app.chain.token import read_token_metadata
from app.config import NetworkConfig
from app.db.engine import check_database
from app.settlement.engine import SettlementEngine

CHECK_TIMEOUT_SECONDS = 5.0


async def check_health(
    engine: Engine, networks: dict[str, NetworkConfig], rpc: dict[str, RpcClient], signer: HotWallet | None,
    settlement: SettlementEngine | None = None,
) -> tuple[bool, dict[str, Any]]:
    """The health report and whether every part of it is ok. A hot wallet that cannot settle (a nonce
    missing from the node, or its oldest transaction waiting too long) makes its network's part not ok:
    the service is up but not ready to settle."""
    database, *network_reports = await asyncio.gather(
        _database_health(engine),
        *(_network_health(config, rpc[network]) for network, config in networks.items()),
    )
    if settlement is not None:
        for network, report in zip(networks, network_reports, strict=True):
            _add_signer(report, network, settlement)
    report_networks = dict(zip(networks, network_reports, strict=True))
    healthy = database["status"] == "ok" and all(n["status"] == "ok" for n in network_reports)
    report = {"status": "ok" if healthy else "error", "database": database, "networks": report_networks}
    if signer is not None:
        report["facilitator"] = signer.address
    return healthy, report


async def _database_health(engine: Engine) -> dict[str, Any]:
    try:
        backend = await asyncio.wait_for(
            run_in_threadpool(check_database, engine), CHECK_TIMEOUT_SECONDS
        )
    except Exception as error:  # any driver failure means "down"; report its kind, not a trace
        return {"status": "error", "error": f"{type(error).__name__}: {_first_line(error)}"}
    return {"status": "ok", "backend": backend}


async def _network_health(config: NetworkConfig, rpc: RpcClient) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(_read_network(config, rpc), CHECK_TIMEOUT_SECONDS)
    except (TimeoutError, RpcError, RpcUnavailable, ValueError) as error:
        return {"status": "error", "error": f"{type(error).__name__}: {_first_line(error)}"}


async def _read_network(config: NetworkConfig, rpc: RpcClient) -> dict[str, Any]:
    head = await chain_head(rpc)
    report: dict[str, Any] = {"chainId": head.chain_id, "latestBlock": head.latest_block,
                              # settlements at or below it can be finalized; None: no finality tag yet
                              "finalizedBlock": head.finalized_block}
    if head.chain_id != config.chain_id:
        return {"status": "error", **report, "error": f"RPC serves chain {head.chain_id}, expected {config.chain_id}"}
    tokens = []
    for asset in config.assets:
        metadata = await read_token_metadata(rpc, asset.address)
        tokens.append(
            {"address": metadata.address, "name": metadata.name, "version": metadata.version,
             "decimals": metadata.decimals}
        )
    return {"status": "ok", **report, "tokens": tokens}


def _add_signer(report: dict[str, Any], network: str, settlement: SettlementEngine) -> None:
    """The hot wallet's standing from the last maintenance pass (no chain read on the probe path)."""
    status = settlement.signer_status.get(network)
    if status is None:
        return
    stuck = settlement.stuck(network)
    report["signer"] = {"address": status.address, "minedNonce": status.mined, "pendingNonce": status.pending,
                        "allocatedNonce": status.allocated, "stuck": stuck}
    if stuck is not None and report["status"] == "ok":
        report["status"] = "error"
        report["error"] = f"the hot wallet cannot settle: {stuck}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""
