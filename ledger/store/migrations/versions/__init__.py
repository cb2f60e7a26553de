"""Alembic revisions of the index schema, oldest first."""
