"""Serve an ASGI app on a real loopback port in a background thread (for SDK clients that need a URL).

The same helper the dev stack uses (``app.dev.demo.background_server``), so tests exercise it too.
"""

from app.dev.demo import background_server as serve

__all__ = ["serve"]
