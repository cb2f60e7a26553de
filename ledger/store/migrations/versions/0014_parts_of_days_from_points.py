"""The parts of days at a selection's boundaries count most of the events' figures from the points (issue 15): the
events and late recordings of a part of a day are the points of the latencies in it, read from
``ix_figure_points_time``, which now holds each point's value too; the reopenings, the one count left to the rows, are
found by ``ix_case_events_reopened`` (the few events whose action is a reopening, by time). Before, every event of
those parts was read and joined to its entry and its case.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import Index, Table

from ledger.store.schema import case_events, figure_points

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = "ix_figure_points_time"
#: the points' time index as revision 0013 made it (without the value)
_0013_INCLUDE = ["bucket", "agency_id", "commitment_id", "district", "channel", "n"]


def _index(table: Table, name: str) -> Index:
    """The schema's index of that name."""
    return next(index for index in table.indexes if index.name == name)


def upgrade() -> None:
    conn = op.get_bind()
    op.drop_index(_TIME, table_name="figure_points")
    _index(figure_points, _TIME).create(conn)
    _index(case_events, "ix_case_events_reopened").create(conn)


def downgrade() -> None:
    op.drop_index("ix_case_events_reopened", table_name="case_events")
    op.drop_index(_TIME, table_name="figure_points")
    op.create_index(_TIME, "figure_points", ["distribution", "time"], postgresql_include=_0013_INCLUDE)
