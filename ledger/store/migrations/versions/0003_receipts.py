"""Receipts, ratings and disputes (issue 6): three tables, and the feedback columns of ``cases``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CODE = 66


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("receipt", sa.String(42), nullable=True))
        batch.add_column(sa.Column("rating", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("rated_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("disputes", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reopened", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("dispute_open", sa.Boolean(), nullable=False, server_default=sa.text("false")))
    op.create_table(
        "receipts",
        sa.Column("seq", sa.BigInteger(), sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("case_id", sa.LargeBinary(32), nullable=False),
        sa.Column("receipt", sa.String(42), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_receipts_receipt", "receipts", ["receipt"])
    op.create_index("ix_receipts_case", "receipts", ["agency_id", "case_id"])
    op.create_table(
        "ratings",
        sa.Column("seq", sa.BigInteger(), sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("case_id", sa.LargeBinary(32), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("receipt", sa.String(42), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_ratings_case", "ratings", ["agency_id", "case_id"])
    op.create_index("ix_ratings_block_time", "ratings", ["block_time"])
    op.create_table(
        "disputes",
        sa.Column("seq", sa.BigInteger(), sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("case_id", sa.LargeBinary(32), nullable=False),
        sa.Column("closure", sa.Integer(), nullable=False),
        sa.Column("reason_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("receipt", sa.String(42), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("answer_seq", sa.BigInteger(), nullable=True),
        sa.Column("answer_action", sa.SmallInteger(), nullable=True),
        sa.Column("answered_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_disputes_case", "disputes", ["agency_id", "case_id"])
    op.create_index("ix_disputes_block_time", "disputes", ["block_time"])


def downgrade() -> None:
    op.drop_table("disputes")
    op.drop_table("ratings")
    op.drop_table("receipts")
    with op.batch_alter_table("cases") as batch:
        for column in ("dispute_open", "reopened", "disputes", "rated_at", "rating", "receipt"):
            batch.drop_column(column)
