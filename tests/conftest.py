"""Shared fixtures. The heavy ones (anvil + token, PostgreSQL cluster) live in tests/support/ plugins.

A missing dependency (anvil binary, PostgreSQL binaries) is an error, never a skip: a skipped
ledger or chain test would hide exactly the failures these suites exist to catch.
"""

from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.support.chain",
    "tests.support.databases",
    "tests.support.facilitator",
    "tests.support.loopback",
]

# Property tests check what is generated, not how fast: on a shared 2-core machine the first draw of a
# text strategy (Hypothesis builds its Unicode tables then) or a busy neighbour can take seconds, which
# Hypothesis would report as a failure of the test. Every assertion still runs on every example.
settings.register_profile("x402", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("x402")
