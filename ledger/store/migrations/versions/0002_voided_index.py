"""A partial index of voided entries, so metrics exclude them without scanning every entry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_entries_voided",
        "entries",
        ["seq"],
        postgresql_where=sa.text("voided_by IS NOT NULL"),
        sqlite_where=sa.text("voided_by IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_entries_voided", table_name="entries")
