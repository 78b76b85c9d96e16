"""The provider side: 402 paywall (dependency and middleware), registry-driven offers, reverse proxy."""
