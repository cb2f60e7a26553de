"""Bulk export (``api.routes.exports``): every entry or case row as a flat JSON-ready dict, read from the database
a chunk of rows at a time, each chunk in a short snapshot of its own (keyset pagination), so that no connection or
transaction is held while the rows are sent. Reads ``entries`` (as ``api.read.entries`` does), ``batches`` and
``cases``.

The entries are exactly one position of the log: those below the entry count of the state the export started
from (:class:`LogPrefix`), each chunk read only after checking that the index still holds that prefix as it did
(else :class:`IndexRewound`). The cases are read as the index is when each chunk is read."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import RowMapping

from api.batches import BatchProofs
from api.read._common import KIND_NAMES, agency_of_entry, code_order, not_applied_reason, read_snapshot, to_hex
from api.read.entries import entry_batch_key, entry_query
from api.read.state import IndexState
from ledger.store.db import Store
from ledger.store.schema import batches, cases, entries

#: rows read from the database in one chunk (one short snapshot); ``None`` batch arguments read it when called
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
    "responded_at",
    "response_due",
    "disputed_at",
    "rectified_at",
    "rectification_due",
)


class IndexRewound(Exception):
    """The index no longer holds the entries an export started from as it held them (a reorganisation rolled it
    back, or a batch below the export's position was released or withheld meanwhile)."""


@dataclass(frozen=True)
class LogPrefix:
    """The first ``state.entry_count`` entries of the log as the index held them in one snapshot: what an entries
    export is of. :attr:`anchor` identifies them — the running hash after them (which commits to every entry in
    order), the hash of the block holding the last one (which commits to every block before it, so to each entry's
    block, time and transaction even after a reorganisation re-included the same entries elsewhere; of its batch when
    that is withheld) and how many batches among them are withheld (a release adds their entries)."""

    state: IndexState
    anchor: tuple[Any, ...]

    @classmethod
    def read(cls, conn: Connection, state: IndexState) -> LogPrefix:
        """The prefix of ``state`` (read in the same snapshot as ``state``)."""
        return cls(state, _anchor(conn, state.entry_count))

    def check(self, conn: Connection) -> None:
        """Raise :class:`IndexRewound` unless the index, as ``conn`` sees it, still holds this prefix."""
        if _anchor(conn, self.state.entry_count) != self.anchor:
            raise IndexRewound(
                f"the index no longer holds the first {self.state.entry_count} entries as it did when the export "
                "started (a reorganisation rolled it back)"
            )


def _anchor(conn: Connection, count: int) -> tuple[Any, ...]:
    if count <= 0:
        return ()
    e, b = entries.c, batches.c
    last = count - 1

    def of_last_entry(column: Any) -> Any:
        return select(column).where(e.seq == last).scalar_subquery()

    def of_last_batch(column: Any) -> Any:  # the batch holding the last entry when that is withheld (no entry row)
        return select(column).where(b.seq <= last).order_by(b.seq.desc()).limit(1).scalar_subquery()

    withheld = select(func.count()).select_from(batches).where(b.withheld.is_not(None), b.seq < count)
    row = conn.execute(
        select(
            of_last_entry(e.running_hash),
            of_last_entry(e.block_hash),
            of_last_batch(b.running_hash),
            of_last_batch(b.block_hash),
            withheld.scalar_subquery(),
        )
    ).one()
    return tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row)


def _batch(batch: int | None) -> int:
    return EXPORT_BATCH if batch is None else batch


def export_entries(
    store: Store,
    prefix: LogPrefix,
    agency_id: str | None,
    batch: int | None = None,
    proofs: BatchProofs | None = None,
) -> Generator[dict[str, Any], None, None]:
    """Every entry of ``prefix`` (of one agency, if given) in seq order, as flat JSON-ready dicts, exactly as the
    index held them at the prefix's position. Read ``batch`` rows at a time (:data:`EXPORT_BATCH`), each chunk in a
    snapshot of its own that first checks the index still holds the prefix (:class:`IndexRewound` if not); nothing
    of the database is held between chunks. A batched record carries its batch and Merkle proof (``merkle_proof``: a
    list, or null with ``merkle_proof_unavailable`` saying why) from ``proofs`` — give it ``keep=1``: a batch's
    records are consecutive, so each batch is looked up once and only the current one is held (and built from its
    file outside any snapshot)."""
    size = _batch(batch)
    state = prefix.state
    count = state.entry_count
    proofs = proofs or BatchProofs(None)
    after = -1
    while after < count - 1:
        query = entry_query().where(entries.c.seq > after, entries.c.seq < count).order_by(entries.c.seq).limit(size)
        if agency_id is not None:
            query = query.where(entries.c.agency_id == agency_id)
        with read_snapshot(store) as conn:
            prefix.check(conn)
            rows = conn.execute(query).mappings().all()
        for row in rows:
            yield _entry_row(row, state, proofs)
        if len(rows) < size:
            return
        after = rows[-1]["seq"]


def _entry_row(row: RowMapping, state: IndexState, proofs: BatchProofs) -> dict[str, Any]:
    key = entry_batch_key(row)
    found = None if key is None else proofs.proof(key, row["batch_index"], bytes(row["record_hash"]))
    voided_by = row["voided_by"]
    return {
        "seq": row["seq"],
        "kind": KIND_NAMES.get(row["kind"], str(row["kind"])),
        "kind_code": row["kind"],
        "agency_id": agency_of_entry(row["agency_id"]),
        "actor": row["actor"],
        "record_hash": to_hex(row["record_hash"]),
        "entry_hash": to_hex(row["entry_hash"]),
        "running_hash": to_hex(row["running_hash"]),
        "occurred_at": row["occurred_at"],
        # voided by a correction past the export's position: not yet, at that position (voiding is final, so a void
        # the position holds stays the same later)
        "voided_by": voided_by if voided_by is not None and voided_by < state.entry_count else None,
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


def case_agencies(conn: Connection) -> list[str]:
    """The agencies that have cases, in code order (:func:`~api.read._common.code_order`)."""
    ordered = code_order(cases.c.agency_id, conn)
    return [str(a) for a in conn.execute(select(ordered).distinct().order_by(ordered)).scalars()]


def export_cases(
    store: Store, agency_id: str | None, batch: int | None = None
) -> Generator[dict[str, Any], None, None]:
    """Every case row (of one agency, if given) in (agency, case id) order — agencies in code order, cases by their
    id's bytes —, read ``batch`` rows at a time (:data:`EXPORT_BATCH`), each chunk in a snapshot of its own: the cases
    of one agency after the last one read (on the primary key, whatever the database's collation). Each chunk is read
    from the index as it is then; the agencies are those with cases when the export starts."""
    size = _batch(batch)
    c = cases.c
    if agency_id is None:
        with read_snapshot(store) as conn:
            agencies = case_agencies(conn)
    else:
        agencies = [agency_id]
    for agency in agencies:
        after: bytes | None = None
        while True:
            query = select(cases).where(c.agency_id == agency).order_by(c.case_id).limit(size)
            if after is not None:
                query = query.where(c.case_id > after)
            with read_snapshot(store) as conn:
                rows = conn.execute(query).mappings().all()
            for row in rows:
                yield _case_row(row)
            if len(rows) < size:
                break
            after = bytes(rows[-1]["case_id"])


def _case_row(row: RowMapping) -> dict[str, Any]:
    out = {name: row[name] for name in CASE_EXPORT_COLUMNS}
    out["case_id"] = to_hex(row["case_id"])
    for flag in ("on_time", "escalated", "dispute_open"):
        out[flag] = None if out[flag] is None else bool(out[flag])
    return out
