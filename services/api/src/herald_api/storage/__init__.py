"""Persistence: the repository contract, its SQL implementation and schema migrations."""
