"""Finance's ledger: journal reads, cost attribution, settlement queries and exports (read-only)."""
