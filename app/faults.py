"""Named points on the money path where a crash test can kill the process, as ``kill -9`` would.

Armed only by the environment variable ``X402_CRASH_AT`` (a comma-separated list of point names) in a
process the fault tests start; unset, ``crash_point`` is a dictionary lookup and nothing else. The
points are the steps of a settlement: ``recorded``, ``nonce_allocated``, ``signed``, ``hash_stored``,
``broadcast`` and ``receipt_recorded``.
"""

from __future__ import annotations

import os
import signal

_ARMED = frozenset(name.strip() for name in os.environ.get("X402_CRASH_AT", "").split(",") if name.strip())


def crash_point(name: str) -> None:
    """Die here, at once and without cleanup, when the fault tests armed this point."""
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
