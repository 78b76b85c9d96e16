"""Shared fixtures. The heavy ones (anvil + token, PostgreSQL cluster) live in tests/support/ plugins.

A missing dependency (anvil binary, PostgreSQL binaries) is an error, never a skip: a skipped
ledger or chain test would hide exactly the failures these suites exist to catch.
"""

pytest_plugins = [
    "tests.support.chain",
    "tests.support.databases",
    "tests.support.facilitator",
    "tests.support.loopback",
]
