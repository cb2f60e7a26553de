"""The index schema as first released (see ledger/store/schema.py for what each column means).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a later schema change is a new revision, never an edit of this one.
CODE = 66


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("contract_address", sa.String(42), primary_key=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("deploy_block", sa.BigInteger, nullable=False),
        sa.Column("last_block", sa.BigInteger, nullable=False),
        sa.Column("entry_count", sa.BigInteger, nullable=False),
        sa.Column("running_hash", sa.LargeBinary(24), nullable=False),
        sa.Column("halted_reason", sa.Text, nullable=True),
        sa.Column("finalized_block", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "blocks",
        sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("actor", sa.String(42), nullable=False),
        sa.Column("record_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("running_hash", sa.LargeBinary(24), nullable=False),
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("block_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("block_time", sa.BigInteger, nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("log_index", sa.Integer, nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=True),
        sa.Column("voided_by", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_entries_block", "entries", ["block_number"])
    op.create_index("ix_entries_agency_seq", "entries", ["agency_id", "seq"])
    op.create_table(
        "agencies",
        sa.Column("agency_id", sa.String(CODE), primary_key=True),
        sa.Column("jurisdiction", sa.String(CODE), nullable=False),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("entries.seq"), nullable=False),
    )
    op.create_table(
        "signer_changes",
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("signer", sa.String(42), nullable=False),
        sa.Column("authorized", sa.Boolean, nullable=False),
    )
    op.create_index("ix_signer_changes_signer", "signer_changes", ["signer"])
    op.create_table(
        "commitments",
        sa.Column("agency_id", sa.String(CODE), primary_key=True),
        sa.Column("commitment_id", sa.String(CODE), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("service_code", sa.String(CODE), nullable=False),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("deadline", sa.BigInteger, nullable=False),
        sa.Column("deadline_unit", sa.SmallInteger, nullable=False),
        sa.Column("target_bps", sa.Integer, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("terms_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("entries.seq"), nullable=False, unique=True),
        sa.Column("retired_seq", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "commitment_retirements",
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("commitment_id", sa.String(CODE), nullable=False),
        sa.Column("reason_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "case_events",
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("case_id", sa.LargeBinary(32), nullable=False),
        sa.Column("action", sa.SmallInteger, nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("block_time", sa.BigInteger, nullable=False),
        sa.Column("details_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("commitment_id", sa.String(CODE), nullable=True),
        sa.Column("district", sa.String(CODE), nullable=True),
        sa.Column("channel", sa.SmallInteger, nullable=True),
    )
    op.create_index("ix_case_events_case", "case_events", ["agency_id", "case_id", "seq"])
    op.create_index("ix_case_events_block_time", "case_events", ["block_time"])
    op.create_table(
        "cases",
        sa.Column("agency_id", sa.String(CODE), primary_key=True),
        sa.Column("case_id", sa.LargeBinary(32), primary_key=True),
        sa.Column("commitment_id", sa.String(CODE), nullable=False),
        sa.Column("commitment_version", sa.Integer, nullable=False),
        sa.Column("district", sa.String(CODE), nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("opened_seq", sa.BigInteger, nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("closed_at", sa.BigInteger, nullable=True),
        sa.Column("hold_seconds", sa.BigInteger, nullable=False),
        sa.Column("on_hold_since", sa.BigInteger, nullable=True),
        sa.Column("due_at", sa.BigInteger, nullable=True),
        sa.Column("fulfil_seconds", sa.BigInteger, nullable=True),
        sa.Column("on_time", sa.Boolean, nullable=True),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Column("invalid_transitions", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cases_commitment_opened", "cases", ["agency_id", "commitment_id", "opened_at"])
    op.create_index("ix_cases_opened", "cases", ["opened_at"])
    op.create_index("ix_cases_closed", "cases", ["closed_at"])
    op.create_index("ix_cases_district", "cases", ["district"])
    op.create_index("ix_cases_channel", "cases", ["channel"])
    op.create_table(
        "corrections",
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("target_seq", sa.BigInteger, nullable=False),
        sa.Column("reason_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
    )
    op.create_table(
        "holiday_calendars",
        sa.Column("jurisdiction", sa.String(CODE), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("agency_id", sa.String(CODE), nullable=False),
        sa.Column("holidays", sa.Text, nullable=False),
        sa.Column("workdays", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("entries.seq"), nullable=False, unique=True),
    )


def downgrade() -> None:
    for table in (
        "holiday_calendars",
        "corrections",
        "cases",
        "case_events",
        "commitment_retirements",
        "commitments",
        "signer_changes",
        "agencies",
        "entries",
        "blocks",
        "sync_state",
    ):
        op.drop_table(table)  # their indexes go with them
