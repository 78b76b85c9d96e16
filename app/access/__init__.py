"""Who may call what: API keys with scopes, stored only as SHA-256 digests."""
