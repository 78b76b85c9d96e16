"""Facilitator benchmark: /verify and /settle throughput and latency, ours and the reference side by side.

One run starts anvil with our USDC, then for each target (ours: `x402-settle serve`; reference: the
official SDK's x402Facilitator in FastAPI) a server in its own process, and drives it from this process
with aiohttp at a fixed concurrency using distinct, valid, pre-signed payloads.

    .venv/bin/python scripts/bench/bench_facilitator.py                 # both targets, defaults
    .venv/bin/python scripts/bench/bench_facilitator.py --targets ours --verify-seconds 10

Prints requests/s, p50/p99 latency, error count, and the load generator's own CPU share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.dev.deploy import mint, setup_dev_chain  # noqa: E402
from app.dev.devchain import free_port, start_anvil  # noqa: E402
from tests.support.payments import paid_body  # noqa: E402

BASE_SEPOLIA = "eip155:84532"


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    client_cpu: float
    server_cpu: float = 0.0
    chain_cpu: float = 0.0

    def line(self) -> str:
        lat = sorted(self.latencies_ms) or [0.0]
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (f"{self.name:<22} {self.requests / self.seconds:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
                f"  errors {self.errors:4d}/{self.requests}  CPU: load-gen {self.client_cpu:4.0%}"
                f" server {self.server_cpu:4.0%} anvil {self.chain_cpu:4.0%}")

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def drive(url: str, bodies: list[bytes], concurrency: int, ok: callable) -> tuple[int, float, list[float]]:
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def worker() -> None:
            nonlocal errors
            for body in queue:
                started = time.perf_counter()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    answer = await response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status != 200 or not ok(json.loads(answer)):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return errors, time.perf_counter() - started, latencies


def measure(name: str, url: str, bodies: list[bytes], concurrency: int, ok: callable, pids: tuple[int, int]) -> Result:
    """Drive ``url`` with ``bodies``; CPU shares are of one core (server and anvil pids given)."""
    server_pid, chain_pid = pids
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    server_before, chain_before = process_cpu_seconds(server_pid), process_cpu_seconds(chain_pid)
    errors, seconds, latencies = asyncio.run(drive(url, bodies, concurrency, ok))
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return Result(name, len(bodies), errors, seconds, latencies, cpu / seconds,
                  (process_cpu_seconds(server_pid) - server_before) / seconds,
                  (process_cpu_seconds(chain_pid) - chain_before) / seconds)


def start_server(target: str, rpc_url: str, key: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "X402_FACILITATOR_PRIVATE_KEY": key}
    if target == "ours":
        env.update({"X402_RPC_URLS": json.dumps({BASE_SEPOLIA: rpc_url}), "X402_DATA_DIR": str(data_dir),
                    "X402_LOG_LEVEL": "warning", "X402_FACILITATOR_REQUIRE_API_KEY": "false"})
        command = [str(ROOT / ".venv/bin/x402-settle"), "serve", "--port", str(port)]
    else:
        command = [sys.executable, str(ROOT / "scripts/bench/reference_facilitator.py"), "--rpc-url", rpc_url,
                   "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=data_dir)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/docs", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{target} server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="ours,reference")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--verify-requests", type=int, default=6000)
    parser.add_argument("--settle-requests", type=int, default=300)
    args = parser.parse_args()

    chain = start_anvil()
    try:
        deployment = setup_dev_chain(chain)
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        payers = deployment.wallets.agents
        for agent in payers:  # enough for every settle in every target
            mint(w3, deployment.wallets.deployer, deployment.token_address, agent.address, 10**12)
        payee = deployment.wallets.providers[0].address
        key = deployment.wallets.facilitator.key.hex()
        print(f"signing {args.verify_requests} verify and {args.settle_requests} settle payloads per target ...",
              flush=True)
        results: list[Result] = []
        for target in args.targets.split(","):
            verify_bodies = [json.dumps(paid_body(payers[i % len(payers)], payee, 1000 + i)).encode()
                             for i in range(args.verify_requests)]
            settle_bodies = [json.dumps(paid_body(payers[i % len(payers)], payee, 1000 + i)).encode()
                             for i in range(args.settle_requests)]
            data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"x402-bench-{target}-{os.getpid()}"
            data_dir.mkdir(parents=True, exist_ok=True)
            process, url = start_server(target, chain.rpc_url, key, data_dir)
            pids = (process.pid, chain.process.pid)
            try:
                measure(f"{target} warm-up", f"{url}/verify", verify_bodies[:200], args.concurrency,
                        lambda a: a.get("isValid") is True, pids)
                results.append(measure(f"{target} /verify", f"{url}/verify", verify_bodies[200:], args.concurrency,
                                       lambda a: a.get("isValid") is True, pids))
                print(results[-1].line(), flush=True)
                results.append(measure(f"{target} /settle", f"{url}/settle", settle_bodies, args.concurrency,
                                       lambda a: a.get("success") is True, pids))
                print(results[-1].line(), flush=True)
            finally:
                process.terminate()
                process.wait(timeout=10)
        by_name = {r.name: r for r in results}
        for kind in ("/verify", "/settle"):
            ours, reference = by_name.get(f"ours {kind}"), by_name.get(f"reference {kind}")
            if ours and reference and reference.rate > 0:
                print(f"ratio {kind}: ours / reference = {ours.rate / reference.rate:.1f}x throughput")
    finally:
        chain.stop()


if __name__ == "__main__":
    main()
