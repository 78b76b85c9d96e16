"""Reconciliation: the ledger and the journal against the chain."""
