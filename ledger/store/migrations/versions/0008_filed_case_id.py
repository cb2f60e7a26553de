"""Open311 requests filed here (issue 13): ``filings.filed_case_id``, indexed, for every filing.

A request filed through Open311's ``POST requests`` is given the id of the case its acceptance would open
(``ledger.records.filed_case_id`` of the filing's seq) from the start; until the agency answers there is no case, so
``GET requests/{id}`` finds the filing by this column (one unique index lookup, however many filings there are). The
projection fills it for every new filing; here it is computed for the rows indexed before, in chunks, then made NOT
NULL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.records import filed_case_id

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: rows computed and written per statement by the backfill
CHUNK = 1000


def upgrade() -> None:
    with op.batch_alter_table("filings") as batch:
        batch.add_column(sa.Column("filed_case_id", sa.LargeBinary(32), nullable=True))
    conn = op.get_bind()
    filings = sa.table("filings", sa.column("seq", sa.BigInteger()), sa.column("filed_case_id", sa.LargeBinary(32)))
    update = filings.update().where(filings.c.seq == sa.bindparam("_seq")).values(filed_case_id=sa.bindparam("_id"))
    after = -1
    while True:  # keyset over seq: each chunk read and written before the next is read
        seqs = conn.execute(
            sa.select(filings.c.seq).where(filings.c.seq > after).order_by(filings.c.seq).limit(CHUNK)
        ).scalars().all()
        if not seqs:
            break
        conn.execute(update, [{"_seq": seq, "_id": filed_case_id(seq)} for seq in seqs])
        after = seqs[-1]
    with op.batch_alter_table("filings") as batch:
        batch.alter_column("filed_case_id", existing_type=sa.LargeBinary(32), nullable=False)
    op.create_index("ix_filings_filed_case_id", "filings", ["filed_case_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_filings_filed_case_id", "filings")
    with op.batch_alter_table("filings") as batch:
        batch.drop_column("filed_case_id")
