"""Alembic migration environment of the index (``open_store`` runs it to head on every open)."""
