"""Storage plumbing shared by every domain: engines, the writers' turn, migrations, column types, the clock.

Imports no domain package: tables belong to their domains, which import from here.
"""
