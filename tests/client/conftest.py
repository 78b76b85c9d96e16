"""The client's end-to-end tests: our facilitator served over loopback, on the session anvil.

The fixtures (facilitator_url, agent, provider, ledger) and both guards are in tests/support/loopback.py,
shared with tests/interop.
"""

import pytest


@pytest.fixture(autouse=True)
def guarded(sdk_cannot_kill_pytest: None, no_threads_left_behind: None) -> None:
    """Both guards of tests/support/loopback.py, for every test here."""
