"""The service as its own process (``x402-settle serve``), for tests that kill it, restart it, or run two.

Configured only through its environment, as production is. ``kill()`` is ``kill -9``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from app.dev.devchain import free_port

X402_SETTLE = Path(sys.executable).with_name("x402-settle")


class ServiceProcess:
    def __init__(self, env: dict[str, str], *, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env, "X402_PORT": str(self.port), "X402_HOST": "127.0.0.1"}
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_timeout: float = 30.0) -> ServiceProcess:
        log = self._log_path.open("ab")
        self.process = subprocess.Popen([str(X402_SETTLE), "serve"], env=self._env, stdout=log, stderr=log)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/supported", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"the service did not answer within {ready_timeout} s: {self.log()[-2000:]}")

    def wait_killed(self, timeout: float = 60.0) -> int:
        """Wait for the process to die by itself (an armed crash point); returns its exit code."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
