"""Bulk export (``api.routes.exports``): every entry or case row as a flat JSON-ready dict, streamed from the database
a batch of rows at a time. Reads ``entries`` (as ``api.read.entries`` does) and ``cases``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import RowMapping

from api.batches import BatchProofs
from api.read._common import KIND_NAMES, agency_of_entry, code_order, not_applied_reason, to_hex
from api.read.entries import entry_batch_key, entry_query
from api.read.state import IndexState
from ledger.store.schema import cases, entries

#: rows fetched from the database at a time (server-side cursor on PostgreSQL)
EXPORT_BATCH = 1000

ENTRY_EXPORT_COLUMNS = (
    "seq",
    "kind",
    "kind_code",
    "agency_id",
    "actor",
    "record_hash",
    "entry_hash",
    "running_hash",
    "occurred_at",
    "voided_by",
    "not_applied_reason",
    "block_number",
    "block_hash",
    "block_time",
    "tx_hash",
    "log_index",
    "final",
    "batch_seq",
    "batch_index",
    "batch_root",
    "batch_file_hash",
    "merkle_proof",
    "merkle_proof_unavailable",
)
CASE_EXPORT_COLUMNS = (
    "agency_id",
    "case_id",
    "commitment_id",
    "commitment_version",
    "district",
    "channel",
    "status",
    "opened_seq",
    "opened_at",
    "closed_at",
    "hold_seconds",
    "on_hold_since",
    "due_at",
    "fulfil_seconds",
    "on_time",
    "escalated",
    "invalid_transitions",
    "last_seq",
    "rating",
    "rated_at",
    "disputes",
    "reopened",
    "dispute_open",
)


def _stream(conn: Connection, query: Any, batch: int) -> Iterator[RowMapping]:
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
    try:
        yield from result.mappings()
    finally:
        result.close()


def export_entries(
    conn: Connection,
    state: IndexState,
    agency_id: str | None,
    batch: int = EXPORT_BATCH,
    proofs: BatchProofs | None = None,
) -> Iterator[dict[str, Any]]:
    """Every entry (of one agency, if given) in seq order, as flat JSON-ready dicts; rows are read ``batch`` at a
    time, never all at once. A batched record carries its batch and Merkle proof (``merkle_proof``: a list, or null
    with ``merkle_proof_unavailable`` saying why) from ``proofs`` — give it ``keep=1``: a batch's records are
    consecutive, so each batch is looked up once and only the current one is held."""
    query = entry_query().order_by(entries.c.seq)
    if agency_id is not None:
        query = query.where(entries.c.agency_id == agency_id)
    proofs = proofs or BatchProofs(None)
    for row in _stream(conn, query, batch):
        key = entry_batch_key(row)
        found = None if key is None else proofs.proof(key, row["batch_index"], bytes(row["record_hash"]))
        yield {
            "seq": row["seq"],
            "kind": KIND_NAMES.get(row["kind"], str(row["kind"])),
            "kind_code": row["kind"],
            "agency_id": agency_of_entry(row["agency_id"]),
            "actor": row["actor"],
            "record_hash": to_hex(row["record_hash"]),
            "entry_hash": to_hex(row["entry_hash"]),
            "running_hash": to_hex(row["running_hash"]),
            "occurred_at": row["occurred_at"],
            "voided_by": row["voided_by"],
            "not_applied_reason": not_applied_reason(row["batch_seq"], row["c_case_id"]),
            "block_number": row["block_number"],
            "block_hash": to_hex(row["block_hash"]),
            "block_time": row["block_time"],
            "tx_hash": to_hex(row["tx_hash"]),
            "log_index": row["log_index"],
            "final": state.is_final(row["block_number"]),
            "batch_seq": None if found is None else found.seq,
            "batch_index": None if found is None else found.index,
            "batch_root": None if found is None else found.root,
            "batch_file_hash": None if found is None else found.file_hash,
            "merkle_proof": None if found is None else found.merkle_proof,
            "merkle_proof_unavailable": None if found is None else found.proof_unavailable,
        }


def export_cases(conn: Connection, agency_id: str | None, batch: int = EXPORT_BATCH) -> Iterator[dict[str, Any]]:
    """Every case row (of one agency, if given) in (agency, case id) order, read ``batch`` rows at a time."""
    c = cases.c
    query = select(cases).order_by(code_order(c.agency_id, conn), c.case_id)
    if agency_id is not None:
        query = query.where(c.agency_id == agency_id)
    for row in _stream(conn, query, batch):
        out = {name: row[name] for name in CASE_EXPORT_COLUMNS}
        out["case_id"] = to_hex(row["case_id"])
        for flag in ("on_time", "escalated", "dispute_open"):
            out[flag] = None if out[flag] is None else bool(out[flag])
        yield out


def count_rows(conn: Connection, table: Any, agency_id: str | None = None) -> int:
    query = select(func.count()).select_from(table)
    if agency_id is not None:
        query = query.where(table.c.agency_id == agency_id)
    return int(conn.execute(query).scalar_one())
