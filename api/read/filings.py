"""Citizens' filings as the API shows them (``api.routes.filings``): the ``filings`` row of each, with the proof of its
entry. Reads ``filings`` and ``entries``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import RowMapping

from api.read._common import CHANNEL_NAMES, to_hex
from api.read.state import IndexState
from api.schemas.filings import FilingAnswerView, FilingView
from api.schemas.proofs import Proof
from ledger.encoding import ZERO32
from ledger.filings import DECISION_NAMES, late, overdue
from ledger.store.schema import entries, filings


def _query() -> Any:
    e = entries.c
    return select(filings, e.tx_hash, e.block_number, e.block_hash, e.log_index, e.entry_hash).select_from(
        filings.join(entries, entries.c.seq == filings.c.seq)
    )


def _hash_or_none(value: Any) -> str | None:
    return None if value is None or bytes(value) == ZERO32 else to_hex(value)


def _view(row: RowMapping, state: IndexState, now: int) -> FilingView:
    answer = None
    if row["answer_seq"] is not None:
        answer = FilingAnswerView(
            seq=row["answer_seq"], decision=DECISION_NAMES[row["decision"]],  # type: ignore[arg-type]
            case_id=_hash_or_none(row["case_id"]), duplicate_of=_hash_or_none(row["duplicate_of"]),
            reason_hash=_hash_or_none(row["reason_hash"]), answered_at=row["answered_at"],
            late=late(row["answer_due"], row["answered_at"]),
        )
    return FilingView(
        seq=row["seq"], agency_id=row["agency_id"], commitment_id=row["commitment_id"], district=row["district"],
        channel=CHANNEL_NAMES.get(row["channel"]),  # type: ignore[arg-type]
        content_hash=to_hex(row["content_hash"]), receipt=row["receipt"], relayer=row["relayer"],
        filed_at=row["block_time"], answer_due=row["answer_due"],
        overdue=overdue(row["answer_due"], now, answered=answer is not None), answer=answer,
        final=state.is_final(row["block_number"]),
        proof=Proof(seq=row["seq"], tx_hash=to_hex(row["tx_hash"]), block_number=row["block_number"],
                    block_hash=to_hex(row["block_hash"]), block_time=row["block_time"], log_index=row["log_index"],
                    entry_hash=to_hex(row["entry_hash"])),
    )


def filing(conn: Connection, state: IndexState, seq: int, now: int) -> FilingView | None:
    row = conn.execute(_query().where(filings.c.seq == seq)).mappings().first()
    return None if row is None else _view(row, state, now)


def filings_page(
    conn: Connection, state: IndexState, now: int, *, agency_id: str | None, answered: bool | None,
    receipt: str | None, after: int | None, limit: int,
) -> tuple[list[FilingView], bool]:
    """Up to `limit` filings with seq above `after` (keyset, in seq order), of one agency, answered or not, or of one
    filer's key; and whether more follow."""
    query = _query().order_by(filings.c.seq).limit(limit + 1)
    if agency_id is not None:
        query = query.where(filings.c.agency_id == agency_id)
    if answered is not None:
        query = query.where(filings.c.answer_seq.is_not(None) if answered else filings.c.answer_seq.is_(None))
    if receipt is not None:
        query = query.where(filings.c.receipt == receipt)
    if after is not None:
        query = query.where(filings.c.seq > after)
    rows = conn.execute(query).mappings().all()
    return [_view(row, state, now) for row in rows[:limit]], len(rows) > limit
