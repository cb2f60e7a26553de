"""The figure cells (issue 15): ``figure_cells``, the counts the published figures are made of per cuboid, key and
day or 32 days (``ledger.cells``); ``figure_values``, the buckets of the values the percentiles are of; and indexes
on the times and values they count by (``FIGURE_INDEXES``, ``VALUE_INDEXES``). Built here from the rows indexed
before, kept by the index from then on (``ledger.index.cells``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.index.cells import rebuild_tables
from ledger.store.schema import CELL_COUNTERS, FIGURE_INDEXES, figure_cells, figure_values

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the indexes this revision made on the values the percentiles are of, (name, table, column or expression):
#: revision 0013 drops them (the points of ``figure_points`` took their place)
VALUE_INDEXES = (
    ("ix_cases_fulfil_seconds", "cases", "fulfil_seconds"),
    ("ix_figure_value_latency", "case_events", "(block_time - occurred_at)"),
)


def create_value_indexes() -> None:
    for name, table, column in VALUE_INDEXES:
        op.create_index(name, table, [sa.text(column) if column.startswith("(") else column])


def drop_value_indexes() -> None:
    for name, table, _ in VALUE_INDEXES:
        op.drop_index(name, table_name=table)


def create_figure_values() -> None:
    """``figure_values`` as this revision made it (revision 0013 makes it again)."""
    op.create_table(
        "figure_values",
        sa.Column("distribution", sa.SmallInteger(), primary_key=True),
        sa.Column("cuboid", sa.SmallInteger(), primary_key=True),
        sa.Column("agency_id", sa.String(66), primary_key=True),
        sa.Column("commitment_id", sa.String(66), primary_key=True),
        sa.Column("district", sa.String(66), primary_key=True),
        sa.Column("channel", sa.SmallInteger(), primary_key=True),
        sa.Column("level", sa.SmallInteger(), primary_key=True),
        sa.Column("period", sa.BigInteger(), primary_key=True),
        sa.Column("bucket", sa.Integer(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_figure_values_place", "figure_values",
                    ["distribution", "cuboid", "district", "channel", "level", "period"])


def upgrade() -> None:
    op.create_table(
        "figure_cells",
        sa.Column("cuboid", sa.SmallInteger(), primary_key=True),
        sa.Column("agency_id", sa.String(66), primary_key=True),
        sa.Column("commitment_id", sa.String(66), primary_key=True),
        sa.Column("district", sa.String(66), primary_key=True),
        sa.Column("channel", sa.SmallInteger(), primary_key=True),
        sa.Column("level", sa.SmallInteger(), primary_key=True),
        sa.Column("period", sa.BigInteger(), primary_key=True),
        *(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0") for name in CELL_COUNTERS),
    )
    op.create_index("ix_figure_cells_place", "figure_cells", ["cuboid", "district", "channel", "level", "period"])
    create_figure_values()
    conn = op.get_bind()
    for index in FIGURE_INDEXES:  # the times the figures count by: a part of a day is an index range
        index.create(conn)
    create_value_indexes()
    rebuild_tables(conn, (figure_cells, figure_values))


def downgrade() -> None:
    conn = op.get_bind()
    for index in FIGURE_INDEXES:
        index.drop(conn)  # as created: the GiST ones on PostgreSQL only
    drop_value_indexes()
    op.drop_index("ix_figure_values_place", table_name="figure_values")
    op.drop_table("figure_values")
    op.drop_index("ix_figure_cells_place", table_name="figure_cells")
    op.drop_table("figure_cells")
