"""Count how often functions run, in every thread, however the caller reached them.

Counting by code object (a profile hook) rather than by patching a module attribute: a module that
imported the function by name, or a copy of the logic in another place, cannot slip past the count.
Threads that already run when counting starts are not seen, so start the app under test inside it.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def counting_calls(*functions: Callable[..., Any]) -> Iterator[Counter[str]]:
    """Yields a Counter of calls by function name, updated while the block runs."""
    names = {function.__code__: function.__name__ for function in functions}  # type: ignore[attr-defined]
    counts: Counter[str] = Counter()
    guard = threading.Lock()

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code in names:
            with guard:
                counts[names[frame.f_code]] += 1

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        yield counts
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
