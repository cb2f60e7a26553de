"""Withheld batches (issue 10): a batch whose file is missing or cannot match its anchor no longer halts indexing; its
``batches`` row says so (``withheld``, ``withheld_reason``) and carries its block hash and running hash, which it can
no longer take from its entries. A halt left by the old code while it waited for a batch is lifted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: how the old indexer's sync_state.halted_reason began while it waited at a batch (ledger.index.sync before 0005)
OLD_BATCH_HALT_PREFIX = "waiting for batch "


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("block_hash", sa.LargeBinary(32), nullable=True))
        batch.add_column(sa.Column("running_hash", sa.LargeBinary(24), nullable=True))
        batch.add_column(sa.Column("withheld", sa.String(16), nullable=True))
        batch.add_column(sa.Column("withheld_reason", sa.Text(), nullable=True))
    # Until now a batch row was written only with its entries, which all share the anchoring block and the head after
    # the batch: take them from the first one.
    op.execute(
        "UPDATE batches SET "
        "block_hash = (SELECT e.block_hash FROM entries e WHERE e.seq = batches.seq), "
        "running_hash = (SELECT e.running_hash FROM entries e WHERE e.seq = batches.seq)"
    )
    with op.batch_alter_table("batches") as batch:
        batch.alter_column("block_hash", existing_type=sa.LargeBinary(32), nullable=False)
        batch.alter_column("running_hash", existing_type=sa.LargeBinary(24), nullable=False)
    op.create_index("ix_batches_withheld", "batches", ["withheld", "agency_id"])
    # Indexing no longer waits at a batch: the next sync indexes past it and withholds it instead.
    op.execute(
        sa.text("UPDATE sync_state SET halted_reason = NULL WHERE halted_reason LIKE :prefix").bindparams(
            prefix=OLD_BATCH_HALT_PREFIX + "%"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_batches_withheld", "batches")
    # The old schema cannot say a batch is withheld: a store with withheld batches must be re-synced after this.
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("withheld_reason")
        batch.drop_column("withheld")
        batch.drop_column("running_hash")
        batch.drop_column("block_hash")
