"""The disordered marks of the two-time figures (issue 15): a partial index of each span's rows with ``t2 < t1``
(``GAP_INDEXES``) and, on PostgreSQL, the extended statistics the figures' plans need (``STATISTICS``): on the gap
``t2 - t1``, so that the planner uses that index (``ledger.store.schema.span_gap`` says why), and on a case's agency
and commitment together.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from ledger.store.schema import GAP_INDEXES, SPANS, create_statistics

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    for index in GAP_INDEXES:
        index.create(conn)
    create_statistics(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE cases"))  # the statistics are empty until then


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for name in SPANS:
            conn.execute(text(f"DROP STATISTICS IF EXISTS st_figure_gap_{name}"))
        conn.execute(text("DROP STATISTICS IF EXISTS st_cases_place"))
    for index in GAP_INDEXES:
        index.drop(conn)
