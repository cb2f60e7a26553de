"""No correction voids a case's Opened any more (``ledger.cases.UNVOIDABLE_ACTIONS``, issue 15): an agency voiding
the opening of a case it left overdue took the case out of every figure. The schema does not change; an index in
which such a correction took effect was derived under the old rule, and its cases, figure cells and corrections would
differ from what this version (and the auditor) derive from the same chain. It cannot be refolded here (the fold is
the indexer's), so the migration refuses it with :class:`ledger.errors.StaleIndex`: rebuild the index from the chain.
An index without such a correction — every one whose agencies never voided an Opened — is left as it is.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import func, select

from ledger.cases import UNVOIDABLE_ACTIONS
from ledger.errors import StaleIndex
from ledger.store.schema import case_events, corrections

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    voided_openings = op.get_bind().execute(
        select(func.count(), func.min(corrections.c.seq))
        .select_from(corrections.join(case_events, case_events.c.seq == corrections.c.target_seq))
        .where(corrections.c.applied, case_events.c.action.in_(sorted(UNVOIDABLE_ACTIONS)))
    ).one()
    if voided_openings[0]:
        raise StaleIndex(
            f"this index holds {voided_openings[0]} correction(s) that voided a case's Opened (the first at seq "
            f"{voided_openings[1]}), which the ledger's rules no longer allow: the cases, figures and corrections "
            "derived from them differ from what this version and the auditor derive from the chain. Rebuild the "
            "index from the chain: point CIVIC_STORE_URL at an empty database (or delete the SQLite file) and run "
            "civic-ledger sync"
        )


def downgrade() -> None:
    """Nothing to undo: the schema did not change."""
