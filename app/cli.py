"""The ``x402-settle`` command: ``serve`` for production, ``dev`` for a whole local stack."""

from __future__ import annotations

import gc
import importlib
import json
import shutil
import signal
import threading
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar

import click
import typer
import uvicorn
from typer.core import TyperGroup

from app.config import ConfigError, Settings
from app.main import create_app

if TYPE_CHECKING:
    from app.dev.deploy import DevDeployment


class LazyCommands(TyperGroup):
    """Subcommands whose modules are imported only when that subcommand runs (or help lists it).

    ``serve`` is a long-running process: the operator commands' imports (rich tables, YAML, progress
    bars) would sit in its memory for nothing, about 4 MB of it.
    """

    # name -> (module, attribute, help); the attribute is a Typer app or a plain command function
    LAZY: ClassVar[dict[str, tuple[str, str, str]]] = {
        "agents": ("app.registry.cli", "agents_cli",
                   "The agent registry: who pays, in which team and cost centre."),
        "capabilities": ("app.registry.cli", "capabilities_cli",
                         "The capability registry: what is paid for, at what price."),
        "keys": ("app.access.cli", "keys_cli", "API keys with scopes (admin, finance, provider, facilitator)."),
        "export": ("app.ledger.cli", "export_command",
                   "Stream a finance export (journal lines or a rollup) to a file: CSV, JSON Lines, Parquet."),
        "ledger": ("app.ledger.cli", "ledger_cli",
                   "The journal: `ledger verify` walks its hash chain; exit 1 naming the first broken line."),
        "reconcile": ("app.reconciliation.cli", "reconcile_command",
                      "Compare the ledger with the token's on-chain events; exit 1 on discrepancies."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.LAZY:
            return super().get_command(ctx, cmd_name)
        module_name, attribute, help_text = self.LAZY[cmd_name]
        target = getattr(importlib.import_module(module_name), attribute)
        if isinstance(target, typer.Typer):
            group = typer.Typer(no_args_is_help=True)
            group.add_typer(target, name=cmd_name, help=help_text)
        else:
            group = typer.Typer()
            group.command(cmd_name, help=help_text)(target)
            group.callback()(lambda: None)  # a group of one, so the command keeps its own name
        return typer.main.get_group(group).get_command(ctx, cmd_name)


cli = typer.Typer(cls=LazyCommands, no_args_is_help=True,
                  help="x402 settlement service: facilitator, settlement ledger and guardrails.")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="listen address (default: X402_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (default: X402_PORT)")] = None,
) -> None:
    """Run the service with the configuration from the environment (X402_*) and .env."""
    try:
        settings = Settings()
        app = create_app(settings)
    except ConfigError as error:
        typer.secho(f"configuration error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    tune_garbage_collector()
    # ws="none": nothing here speaks WebSocket, so uvicorn need not load a WebSocket stack
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level=settings.log_level, ws="none")


def tune_garbage_collector() -> None:
    """Fewer, later young-generation collections: each request allocates many short-lived objects, and
    the default threshold (700) stops the event loop every few requests, which shows in the p99 latency."""
    gc.collect()
    gc.freeze()  # start-up objects (modules, app, settings) are never garbage: keep them out of every scan
    gc.set_threshold(50_000, 20, 100)


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="service port")] = 4021,
    chain_port: Annotated[int, typer.Option(help="anvil RPC port (0: any free port)")] = 8545,
    data_dir: Annotated[Path, typer.Option(help="where the dev ledger lives (reset on each run)")] = Path("data/dev"),
    check: Annotated[bool, typer.Option("--check", help="run the demo, verify, print, then stop")] = False,
) -> None:
    """The whole product on one machine: dev chain + USDC, the service, a paying agent fleet, attribution."""
    from rich.console import Console

    from app.db.engine import make_engine
    from app.dev.demo import background_server, run_demo
    from app.dev.deploy import setup_dev_chain
    from app.dev.devchain import DevChainError, free_port, start_anvil
    from app.dev.examples import translation_upstream

    console = Console(highlight=False)
    try:
        chain = start_anvil(port=chain_port or free_port())
    except DevChainError as error:
        typer.secho(f"dev chain: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    try:
        deployment = setup_dev_chain(chain)
        shutil.rmtree(data_dir, ignore_errors=True)  # the chain is fresh, so its ledger must be too
        settings = Settings(
            data_dir=data_dir, database_url="", rpc_urls={f"eip155:{chain.chain_id}": chain.rpc_url},
            facilitator_private_key=deployment.wallets.facilitator.key.hex(), port=port, example_routes=True,
            facilitator_require_api_key=False,  # local development: the dev stack's facilitator is open
        )
        with background_server(translation_upstream()) as upstream_url, \
                background_server(create_app(settings), port=port) as url:
            health = _read_health(url)
            console.print(_banner(url, deployment, settings, health), soft_wrap=True)
            engine = make_engine(settings.database_url)
            result = run_demo(console, url, settings, engine, deployment, upstream_url, data_dir / "export.csv")
            engine.dispose()
            healthy = health.get("status") == "ok" and result.paid > 0 and result.failed == 0
            console.print(f"\nservice running at {url} (GET /health, /docs, /ledger/*); "
                          + ("stopping (--check)." if check else "Ctrl-C stops the service and the chain."),
                          soft_wrap=True)
            if check:
                raise typer.Exit(0 if healthy else 1)
            _wait_for_interrupt()
    finally:
        chain.stop()


def _read_health(url: str) -> dict:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            return json.loads(response.read())
    except Exception as error:  # a 503 or a refused connection: show what is wrong
        return {"status": "error", "error": str(error)}


def _banner(url: str, deployment: DevDeployment, settings: Settings, health: dict) -> str:
    wallets = deployment.wallets
    return "\n".join([
        "",
        "x402 settlement service (dev)",
        f"  service     {url}   (GET /health, /docs)",
        f"  ledger      {settings.database_url}",
        f"  chain       anvil at {deployment.rpc_url}, chain id {deployment.chain_id} (eip155:{deployment.chain_id})",
        f"  token       {deployment.token_name} v{deployment.token_version}, {deployment.decimals} decimals,"
        f" at {deployment.token_address}",
        f"  facilitator {wallets.facilitator.address} (pays gas)",
        *(f"  provider    {account.address}" for account in wallets.providers),
        *(f"  agent       {account.address} (funded with USDC)" for account in wallets.agents),
        "  dev wallets are anvil's well-known default accounts: never fund them on a real chain",
        f"  /health     {json.dumps(health)}",
        "",
    ])


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM. Handlers are installed explicitly because a shell that starts us
    in the background ignores SIGINT for us, and a service manager stops us with SIGTERM."""
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
