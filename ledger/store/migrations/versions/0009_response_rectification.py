"""The figures cities publish (issue 15): ``cases`` columns for the agency's response (``responded_at``,
``response_due``), the first dispute (``disputed_at``) and a bad rating's rectification (``rectified_at``,
``rectification_due``), and the time taken for its last event (``last_at``: no event is taken before its previous
one), all defined by ``ledger.cases``; and the origin of the key that signed each rating and
dispute (``ratings.key_origin``, ``disputes.key_origin``), worked out once (``ledger.index.project.fill_key_origins``)
instead of by a subquery per row in every computation of the figures.

They are worked out from each case's events, ratings and disputes and its jurisdiction's calendars, so the rows
indexed before are re-folded here, a chunk of cases at a time, by the indexer's own fold (``ledger.index.cases``):
the same values a re-sync from the chain would give.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.index.cases import CaseFolder
from ledger.index.project import fill_key_origins
from ledger.index.sql import Statements

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("responded_at", "response_due", "disputed_at", "rectified_at", "rectification_due")
#: cases re-folded per chunk
CHUNK = 1000


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("last_at", sa.BigInteger(), nullable=False, server_default="0"))
    for table in ("ratings", "disputes"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("key_origin", sa.String(16), nullable=True))
    conn = op.get_bind()
    fill_key_origins(conn, 0)
    folder = CaseFolder(Statements(conn.dialect), cache_size=0)
    caches = folder.load_caches(conn)
    cases = sa.table("cases", sa.column("agency_id", sa.String()), sa.column("case_id", sa.LargeBinary()))
    after: tuple[str, bytes] | None = None
    while True:  # keyset over the key: each chunk read and re-folded before the next is read
        query = sa.select(cases.c.agency_id, cases.c.case_id).order_by(cases.c.agency_id, cases.c.case_id)
        if after is not None:
            query = query.where(sa.tuple_(cases.c.agency_id, cases.c.case_id) > sa.tuple_(*after))
        keys = [(agency, bytes(case)) for agency, case in conn.execute(query.limit(CHUNK))]
        if not keys:
            break
        folder.refold(conn, keys, caches)
        after = keys[-1]


def downgrade() -> None:
    for table in ("ratings", "disputes"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("key_origin")
    with op.batch_alter_table("cases") as batch:
        for name in (*COLUMNS, "last_at"):
            batch.drop_column(name)
