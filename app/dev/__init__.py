"""Development only: the dev chain (anvil), our token's deployment, the demo fleet and example routes.

Never imported by `x402-settle serve` (a test holds that): production points the same service at a real
RPC URL and token."""
