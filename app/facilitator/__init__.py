"""The x402 facilitator: verify and settle use cases and the standard HTTP API."""
