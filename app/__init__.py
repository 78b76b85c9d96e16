"""x402 settlement service: facilitator, settlement ledger and guardrails for AI-agent payments."""
