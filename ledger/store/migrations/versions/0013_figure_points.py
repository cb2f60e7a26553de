"""The points of the values the percentiles are of (issue 15): ``figure_points``, each value with its bucket, time and
dimensions, and how many times it occurs. The exact value at a rank is read from the points of one bucket in the
selection's time range, instead of from the rows of that bucket over all time; the indexes those rows were found by
(revision 0010's) are dropped. Built here from the rows indexed before, kept by the index from then on
(``ledger.index.cells``). ``figure_values`` is made again, keyed by place and period first (including the count on
PostgreSQL) with no other index, and rebuilt from the rows: a histogram is read from its key alone.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from alembic import op

from ledger.index.cells import rebuild_tables
from ledger.store.schema import figure_points, figure_values

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0010 = importlib.import_module("ledger.store.migrations.versions.0010_figure_cells")


def upgrade() -> None:
    conn = op.get_bind()
    figure_points.create(conn)  # as the schema defines it (on PostgreSQL its key includes the count)
    rebuild_tables(conn, (figure_points,))
    _0010.drop_value_indexes()
    # figure_values keyed by place and period first, no other index: made again as the schema defines it
    op.drop_table("figure_values")
    figure_values.create(conn)
    rebuild_tables(conn, (figure_values,))


def downgrade() -> None:
    conn = op.get_bind()
    op.drop_table("figure_values")
    _0010.create_figure_values()
    rebuild_tables(conn, (figure_values,))
    _0010.create_value_indexes()
    figure_points.drop(conn)
