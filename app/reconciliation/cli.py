"""``x402-settle reconcile``: the ledger against the chain from the command line.

Exit codes: 0 the range is clean, 1 discrepancies were found, 2 the reconciliation could not run
(bad configuration or arguments, chain or database unreachable).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from app.chain.keys import load_facilitator_account
from app.chain.rpc import RpcClient
from app.config import ConfigError, Settings
from app.db.engine import make_engine
from app.errors import ServiceError
from app.reconciliation.service import BlockTag, ReconciliationReport, reconcile

EXIT_CLEAN = 0
EXIT_DISCREPANCIES = 1
EXIT_ERROR = 2


def _fail(message: str) -> typer.Exit:
    typer.secho(f"reconcile: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(EXIT_ERROR)


def _block_tag(text: str) -> BlockTag:
    if text.strip().lower() == "latest":
        return "latest"
    try:
        number = int(text, 0)
    except ValueError:
        raise _fail(f"--to-block must be a block number or 'latest', not {text!r}") from None
    if number < 0:
        raise _fail("--to-block must be >= 0")
    return number


def reconcile_command(
    network: Annotated[str, typer.Option(help="CAIP-2 network to reconcile, e.g. eip155:84532")],
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="first block of the range")],
    to_block: Annotated[str, typer.Option("--to-block", help="last block of the range, or 'latest'")] = "latest",
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="ledger database (default: X402_DATABASE_URL)")
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option("--rpc-url", help="RPC endpoint of the network (default: from X402_RPC_URLS)")
    ] = None,
    signer: Annotated[
        list[str] | None,
        typer.Option("--signer", help="a hot-wallet address that counts as ours, besides the configured key "
                                      "and the signers recorded in the ledger (repeatable)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Compare settlements with the token's on-chain Transfer and AuthorizationUsed events, and their journal lines
    with what they book; exit 1 on discrepancies."""
    last = _block_tag(to_block)
    try:
        settings = Settings()
        updates: dict[str, object] = {}
        if database_url:
            updates["database_url"] = database_url
        if rpc_url:
            updates["rpc_urls"] = {**settings.rpc_urls, network: rpc_url}
        settings = settings.model_copy(update=updates)
        networks = settings.enabled_networks()
        account = load_facilitator_account(settings)
    except ConfigError as error:
        raise _fail(f"configuration error: {error}") from None
    if network not in networks:
        hint = "pass --rpc-url or set X402_RPC_URLS"
        raise _fail(f"network {network!r} is not enabled ({hint}); enabled: {', '.join(sorted(networks)) or 'none'}")
    signers = {account.address} if account is not None else set()
    signers |= set(signer or [])
    try:
        report = asyncio.run(_run(settings, networks, signers, network, from_block, last))
    except ServiceError as error:
        raise _fail(error.message) from None
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else render(report))
    raise typer.Exit(EXIT_CLEAN if report.clean else EXIT_DISCREPANCIES)


async def _run(settings: Settings, networks: dict, signers: set[str], network: str, from_block: int,
               to_block: BlockTag) -> ReconciliationReport:
    engine = make_engine(settings.database_url)
    rpc = RpcClient(networks[network].rpc_url or "")
    try:
        return await reconcile(engine, {network: rpc}, networks, signers, network=network, from_block=from_block,
                               to_block=to_block)
    finally:
        await rpc.close()
        engine.dispose()


def render(report: ReconciliationReport) -> str:
    """The report as plain text: a summary line, then one block per discrepancy."""
    lines = [
        f"reconciliation of {report.network}, blocks {report.from_block}..{report.to_block}: "
        f"{report.checked_rows} settlement rows, their {report.checked_lines} journal lines and "
        f"{report.checked_events} token events checked"
    ]
    if report.clean:
        lines.append("clean: the ledger matches the chain, and its journal matches the ledger")
        return "\n".join(lines)
    counts = ", ".join(f"{kind}: {count}" for kind, count in report.counts().items())
    lines.append(f"{len(report.discrepancies)} discrepancies ({counts})")
    for item in report.discrepancies:
        where = [f"settlement {item.settlement_id}" if item.settlement_id is not None else "no settlement"]
        if item.tx_hash:
            where.append(f"tx {item.tx_hash}")
        if item.block_number is not None:
            where.append(f"block {item.block_number}")
        if item.line_id is not None:
            where.append(f"journal line {item.line_id}")
        lines.append(f"- {item.kind.value:<18} {'  '.join(where)}")
        lines.append(f"    {item.message}")
        if item.expected is not None or item.actual is not None:
            lines.append(f"    expected: {item.expected}  actual: {item.actual}")
    return "\n".join(lines)
