"""The README's run command: `x402-settle dev` brings up chain, token, wallets and a healthy service."""

import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.dev.devchain import free_port

X402_SETTLE = Path(sys.executable).with_name("x402-settle")


def test_dev_starts_a_healthy_stack_prints_it_and_stops_the_chain(tmp_path):
    result = subprocess.run(
        [str(X402_SETTLE), "dev", "--check", "--port", str(free_port()), "--chain-port", "0",
         "--data-dir", str(tmp_path / "dev")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "chain id 84532" in out
    assert "USDC v2, 6 decimals, at 0x036CbD53842c5426634e7929541eC2318f3dCF7e" in out
    assert '"chainId": 84532' in out  # from /health, i.e. read from the chain
    assert '"name": "USDC", "version": "2", "decimals": 6' in out
    assert out.count("  agent       0x") >= 5
    assert "0xac0974bec" not in out  # dev keys are never printed, even the well-known ones
    # The demo: a fleet in two teams paid both capabilities, one agent's own policy refused it, and
    # finance got its tables and a CSV export.
    assert "Spend per agent" in out and "Spend per team" in out and "Spend per capability" in out
    for team in ("research", "ops"):
        assert re.search(rf"│ {team} +│ +\d+ │ 0\.\d{{6}} │", out), team
    for capability in ("forecast", "translate"):
        assert re.search(rf"│ {capability} +│ +\d+ │ 0\.\d{{6}} │", out), capability
    assert "failed 0" in out
    assert "refused before signing: agent-5" in out and "max_per_day" in out
    export = tmp_path / "dev" / "export.csv"
    assert export.read_bytes().startswith(b"line_id,settlement_id,booked_at,")
    rpc_url = re.search(r"anvil at (http://127\.0\.0\.1:\d+)", out).group(1)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(rpc_url, data=b"{}", timeout=2)


def test_dev_keeps_serving_until_ctrl_c_then_stops_everything(tmp_path):
    import signal
    import time

    port = free_port()
    process = subprocess.Popen(
        [str(X402_SETTLE), "dev", "--port", str(port), "--chain-port", "0", "--data-dir", str(tmp_path / "dev")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops the service and the chain" in line or process.poll() is not None:
                break
        output = "".join(lines)
        assert "Ctrl-C stops" in output, output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200  # still serving after the demo
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    rpc_url = re.search(r"anvil at (http://127\.0\.0\.1:\d+)", output).group(1)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(rpc_url, data=b"{}", timeout=2)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


# ------------------------------------------------------------------------- the operator commands


def test_every_operator_command_is_listed_and_runs_through_the_main_command(tmp_path):
    listed = subprocess.run([str(X402_SETTLE), "--help"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    for command in ("serve", "dev", "agents", "capabilities", "keys", "export", "ledger", "reconcile"):
        assert re.search(rf"│ {command} ", listed.stdout), command
    ledger = f"sqlite:///{(tmp_path / 'ledger.db').as_posix()}"
    agents = subprocess.run([str(X402_SETTLE), "agents", "list", "--database-url", ledger],
                            capture_output=True, text=True, timeout=60)
    assert agents.returncode == 0, agents.stdout + agents.stderr
    assert "0 agents" in agents.stdout
    export = subprocess.run([str(X402_SETTLE), "export", "--help"], capture_output=True, text=True, timeout=60)
    assert export.returncode == 0 and "--output" in export.stdout


def test_the_serving_process_does_not_load_what_only_operator_commands_or_tests_need():
    # Each of these costs the long-running service megabytes of resident memory (see app/cli.py,
    # app/chain/keys.py, app/chain/abi.py, app/db/engine.py, app/gateway/proxy.py).
    probe = ("import sys, app.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'rich', 'yaml', 'alembic', 'eth_account', 'eth_abi', 'eth_utils', 'httpx', 'web3', 'pyarrow'})))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == []


def test_the_serving_process_never_imports_the_dev_package(tmp_path):
    # app/dev holds the dev chain, the demo and example routes: production serves without any of it.
    probe = ("import sys, app.cli; from app.config import Settings; from app.main import create_app; "
             f"create_app(Settings(data_dir={str(tmp_path)!r})); "
             "print(' '.join(sorted(m for m in sys.modules if m == 'app.dev' or m.startswith('app.dev.'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == []
