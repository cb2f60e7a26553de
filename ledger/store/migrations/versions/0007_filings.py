"""Citizens' filings (issue 13): the ``filings`` table.

The filings module came with a new deployment of the contract (the ledger creates it in its constructor), so no
store indexed before this revision holds a filing's entry (kinds 15 to 17): there is nothing to rebuild.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the width of a code column (ledger.store.schema.CODE, as every revision since 0001 spells it)
CODE = 66


def upgrade() -> None:
    op.create_table(
        "filings",
        sa.Column("seq", sa.BigInteger(), sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("commitment_id", sa.String(CODE), nullable=False),
        sa.Column("district", sa.String(CODE), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("receipt", sa.String(42), nullable=False),
        sa.Column("relayer", sa.String(42), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("answer_due", sa.BigInteger(), nullable=False),
        sa.Column("answer_seq", sa.BigInteger(), nullable=True),
        sa.Column("decision", sa.SmallInteger(), nullable=True),
        sa.Column("case_id", sa.LargeBinary(32), nullable=True),
        sa.Column("duplicate_of", sa.LargeBinary(32), nullable=True),
        sa.Column("reason_hash", sa.LargeBinary(32), nullable=True),
        sa.Column("answered_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_filings_agency", "filings", ["agency_id", "answer_seq", "seq"])
    op.create_index("ix_filings_receipt", "filings", ["receipt"])


def downgrade() -> None:
    op.drop_table("filings")
