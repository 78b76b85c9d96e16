"""The settlement ledger: tables, repositories, attribution and exports."""
