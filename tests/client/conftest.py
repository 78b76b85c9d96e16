"""Fixtures for the client's end-to-end tests: our facilitator served over loopback, on the session anvil.

Reused from tests/interop: the guard that keeps the SDK from ending pytest, the check that no server
thread outlives its test, and the facilitator/agent/provider/balance fixtures.
"""

from tests.interop.conftest import (  # noqa: F401  (pytest fixtures, used by name)
    agent,
    facilitator_url,
    ledger,
    no_threads_left_behind,
    provider,
    sdk_cannot_kill_pytest,
)
