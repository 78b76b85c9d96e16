"""The official x402 SDK (x402==2.25.0) against our facilitator served on a loopback port.

Every test gets a fresh ledger, a reverted chain (``chain_snapshot``) and a check that the servers
it started are gone afterwards: no thread outlives its test. The fixtures are in tests/support/loopback.py.
"""

import pytest


@pytest.fixture(autouse=True)
def guarded(sdk_cannot_kill_pytest: None, no_threads_left_behind: None) -> None:
    """Both guards of tests/support/loopback.py, for every test here."""
