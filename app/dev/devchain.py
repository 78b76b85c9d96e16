"""The local development chain: an anvil node started from the npm-pinned binary.

Started directly (not through ``npx``) because the binary answers RPC in ~50 ms instead of
~350 ms and leaves exactly one PID to stop; ``npx`` builds a process chain that outlives a
plain kill.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_CHAIN_ID = 84532  # Base Sepolia, so stock x402 clients recognise the network and its USDC
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"

# anvil's well-known default keys (derived from ANVIL_MNEMONIC). Public knowledge: never fund them
# on a real chain. Computed once here rather than through the (slow) HD derivation.
_ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


class DevChainError(RuntimeError):
    """The dev chain could not be found or started; the message says what to do."""


def anvil_binary() -> Path:
    """Locate the anvil binary that npm installed from package-lock.json.

    ``X402_ANVIL_BIN`` overrides the lookup (e.g. a system-wide Foundry install).
    """
    override = os.environ.get("X402_ANVIL_BIN")
    if override:
        return Path(override)
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    candidate = PROJECT_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{machine}" / "bin" / "anvil"
    if not candidate.exists():
        raise DevChainError(
            f"anvil binary not found at {candidate}; run scripts/bootstrap (npm ci installs it; "
            "never use --omit=optional, which drops the binary)"
        )
    return candidate


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DevWallets:
    """Roles given to anvil's funded default accounts on the dev chain."""

    deployer: LocalAccount  # deploys the token and holds its minter role
    facilitator: LocalAccount  # the hot wallet that pays gas for settlements
    providers: tuple[LocalAccount, ...]  # capability providers: payees
    agents: tuple[LocalAccount, ...]  # paying agents: hold USDC

    @classmethod
    def default(cls) -> DevWallets:
        accounts = [Account.from_key(key) for key in _ANVIL_KEYS]
        return cls(
            deployer=accounts[0],
            facilitator=accounts[1],
            providers=tuple(accounts[2:4]),
            agents=tuple(accounts[4:10]),
        )


@dataclass
class DevChain:
    """A running anvil process; ``stop()`` ends it by PID."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    chain_id: int
    wallets: DevWallets = field(default_factory=DevWallets.default)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def rpc(self, method: str, params: list[object] | None = None) -> object:
        """One raw JSON-RPC call (anvil_* cheat codes included) without a web3 dependency."""
        return json_rpc(self.rpc_url, method, params or [])

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> DevChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def json_rpc(url: str, method: str, params: list[object], timeout: float = 5.0) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise DevChainError(f"{method} failed: {reply['error']}")
    return reply["result"]


def start_anvil(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    chain_id: int = DEV_CHAIN_ID,
    block_time: float | None = None,
    ready_timeout: float = 15.0,
    state_path: Path | None = None,
) -> DevChain:
    """Start anvil on loopback and return once it answers ``eth_chainId``.

    ``block_time=None`` keeps automine (a block per transaction), which is what tests want;
    ``state_path`` persists the chain across restarts of ``x402-settle dev``.
    """
    port = port or free_port(host)
    command = [
        str(anvil_binary()),
        "--host", host,
        "--port", str(port),
        "--chain-id", str(chain_id),
        "--accounts", str(len(_ANVIL_KEYS)),
        "--silent",
    ]
    if block_time is not None:
        command += ["--block-time", str(block_time)]
    if state_path is not None:
        command += ["--state", str(state_path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chain = DevChain(process=process, host=host, port=port, chain_id=chain_id)
    deadline = time.monotonic() + ready_timeout
    while True:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise DevChainError(f"anvil exited with code {process.returncode}: {stderr.strip()}")
        try:
            if int(str(chain.rpc("eth_chainId")), 16) == chain_id:
                return chain
        except (OSError, DevChainError):
            pass
        if time.monotonic() > deadline:
            chain.stop()
            raise DevChainError(f"anvil did not answer on {chain.rpc_url} within {ready_timeout} s")
        time.sleep(0.02)
