"""Merkle-anchored batches (issue 7): the ``batches`` table, and each entry's batch and position.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CODE = 66


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("batch_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("batch_index", sa.Integer(), nullable=True))
    op.create_table(
        "batches",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("signer", sa.String(42), nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("file_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
    )
    op.create_index("ix_batches_block", "batches", ["block_number"])


def downgrade() -> None:
    op.drop_table("batches")
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("batch_index")
        batch.drop_column("batch_seq")
