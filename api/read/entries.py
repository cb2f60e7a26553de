"""Ledger entries as the API shows them (``api.routes.entries``; the bulk export reads them with :func:`entry_query`
too): every entry column, a batched record's batch and Merkle proof, and why a batched case event does not apply.
Reads ``entries``, ``batches`` and ``case_events``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, select
from sqlalchemy.engine import RowMapping

from api.batches import BatchKey, BatchProofs
from api.read._common import KIND_NAMES, agency_of_entry, batch_key_of, not_applied_reason, to_hex, with_batches
from api.read.state import IndexState
from api.schemas.entries import Entry
from api.schemas.proofs import Proof
from ledger.store.schema import batches, case_events, entries


def entry_query() -> Any:
    """Every entry column, the batch of a batched one and the case id of a batched case event (``c_case_id``)."""
    return select(
        entries,
        batches.c.root.label("b_root"),
        batches.c.count.label("b_count"),
        batches.c.file_hash.label("b_file_hash"),
        case_events.c.case_id.label("c_case_id"),
    ).select_from(
        with_batches(entries).outerjoin(
            case_events, and_(entries.c.batch_seq.is_not(None), case_events.c.seq == entries.c.seq)
        )
    )


def entry_batch_key(row: RowMapping) -> BatchKey | None:
    return batch_key_of(row["batch_seq"], row["b_root"], row["b_count"], row["b_file_hash"])


def entry_batch_keys(rows: Iterable[RowMapping]) -> list[BatchKey]:
    return list(dict.fromkeys(key for key in map(entry_batch_key, rows) if key is not None))


def _entry(row: RowMapping, state: IndexState, proofs: BatchProofs | None = None) -> Entry:
    key = entry_batch_key(row)
    batch = None
    if key is not None:
        batch = (proofs or BatchProofs(None)).proof(key, row["batch_index"], bytes(row["record_hash"]))
    return Entry(
        seq=row["seq"],
        kind=KIND_NAMES[row["kind"]],  # type: ignore[arg-type]
        kind_code=row["kind"],
        agency_id=agency_of_entry(row["agency_id"]),
        actor=row["actor"],
        record_hash=to_hex(row["record_hash"]),
        entry_hash=to_hex(row["entry_hash"]),
        running_hash=to_hex(row["running_hash"]),
        occurred_at=row["occurred_at"],
        not_applied_reason=not_applied_reason(row["batch_seq"], row["c_case_id"]),
        final=state.is_final(row["block_number"]),
        proof=Proof(
            seq=row["seq"],
            tx_hash=to_hex(row["tx_hash"]),
            block_number=row["block_number"],
            block_hash=to_hex(row["block_hash"]),
            block_time=row["block_time"],
            log_index=row["log_index"],
            entry_hash=to_hex(row["entry_hash"]),
            batch=batch,
        ),
    )


def entries_page(
    conn: Connection, state: IndexState, after: int | None, limit: int, proofs: BatchProofs | None = None
) -> tuple[list[Entry], bool]:
    """Up to ``limit`` entries with seq above ``after``, and whether more follow (batched records with their Merkle
    proofs from ``proofs``)."""
    query = entry_query().order_by(entries.c.seq).limit(limit + 1)
    if after is not None:
        query = query.where(entries.c.seq > after)
    rows = conn.execute(query).mappings().all()
    return [_entry(row, state, proofs) for row in rows[:limit]], len(rows) > limit


def entry(conn: Connection, state: IndexState, seq: int, proofs: BatchProofs | None = None) -> Entry | None:
    row = conn.execute(entry_query().where(entries.c.seq == seq)).mappings().first()
    return None if row is None else _entry(row, state, proofs)
