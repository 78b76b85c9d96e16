"""The error raised for malformed x402 input."""

from __future__ import annotations

from app.protocol.reasons import Reason


class ProtocolError(ValueError):
    """Input that does not follow the x402 wire format.

    ``reason`` is the x402 reason code to answer with; ``message`` is a short human-readable
    explanation that names the offending field and never echoes large or secret input.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[ProtocolError], tuple[Reason, str]]:
        return (type(self), (self.reason, self.message))
