"""Auditors and their attestations (issue 11): the ``auditors`` and ``attestations`` tables.

A store indexed before this revision by a version that already saw the auditors' entries (kinds 12 to 14) holds them
in ``entries`` without their rows here, which cannot be rebuilt from the entries alone (the auditor's address and the
checkpoint are in the logs, not in the index): such a store is emptied and its indexing starts again from the
deployment block, as after a drop — every row is derived from the chain, so the next sync gives them all back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

#: ledger.records.EntryKind AUDITOR_AUTHORIZED, AUDITOR_REVOKED, AUDIT_ATTESTED
AUDITOR_KINDS = (12, 13, 14)
#: every table of revision 0005 but sync_state, children (those whose seq refers to entries) first
TABLES_0005 = (
    "agencies", "signer_changes", "commitments", "commitment_retirements", "case_events", "corrections",
    "holiday_calendars", "receipts", "ratings", "disputes", "entries", "cases", "batches", "blocks",
)


def upgrade() -> None:
    op.create_table(
        "auditors",
        sa.Column("seq", sa.BigInteger(), sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("auditor", sa.String(42), nullable=False),
        sa.Column("revoked_seq", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_auditors_auditor", "auditors", ["auditor", "seq"])
    op.create_table(
        "attestations",
        sa.Column("seq", sa.BigInteger(), sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("auditor", sa.String(42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("running_hash", sa.LargeBinary(24), nullable=False),
        sa.Column("report_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("verdict", sa.SmallInteger(), nullable=False),
        sa.Column("findings", sa.BigInteger(), nullable=False),
        sa.Column("recorded_block", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("matches_ledger", sa.Boolean(), nullable=True),
    )
    op.create_index("ix_attestations_auditor", "attestations", ["auditor", "seq"])
    op.create_index("ix_attestations_report", "attestations", ["report_hash"])
    op.create_index(
        "ix_attestations_undecided",
        "attestations",
        ["seq"],
        postgresql_where=sa.text("matches_ledger IS NULL"),
        sqlite_where=sa.text("matches_ledger IS NULL"),
    )
    conn = op.get_bind()
    kinds = ", ".join(str(kind) for kind in AUDITOR_KINDS)
    found = conn.execute(sa.text(f"SELECT count(*) FROM entries WHERE kind IN ({kinds})")).scalar_one()
    if found:
        log.warning("the store holds %d auditor entries indexed before their tables existed: emptying it, the next "
                    "sync indexes the ledger again from its deployment block", found)
        for table in TABLES_0005:
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(sa.text(
            "UPDATE sync_state SET last_block = deploy_block - 1, entry_count = 0, running_hash = :zero, "
            "finalized_block = -1, halted_reason = NULL"
        ), {"zero": b"\0" * 24})


def downgrade() -> None:
    # The old schema has no place for them: the auditor entries stay in ``entries``, their rows go.
    op.drop_table("attestations")
    op.drop_table("auditors")
