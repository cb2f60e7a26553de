"""Merkle-anchored batches (``api.routes.batches``, and the withheld counts the chain facts, agencies and scorecards
show). Reads ``batches``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import RowMapping

from api.batches import file_url
from api.read._common import to_hex
from api.read.state import IndexState
from api.schemas.batches import BatchInfo
from api.schemas.proofs import Proof
from ledger.batches import batch_hash
from ledger.store.schema import batches


def _batch_query() -> Any:
    return select(batches)


def batch_info(row: RowMapping, state: IndexState, available: bool) -> BatchInfo:
    root, count, file_hash = bytes(row["root"]), int(row["count"]), bytes(row["file_hash"])
    seq = int(row["seq"])
    return BatchInfo(
        seq=seq,
        last_seq=seq + count - 1,
        count=count,
        agency_id=row["agency_id"],
        signer=row["signer"],
        root=to_hex(root),
        file_hash=to_hex(file_hash),
        record_hash=to_hex(batch_hash(root, count, file_hash)),
        entry_hash=to_hex(row["entry_hash"]),
        running_hash=to_hex(row["running_hash"]),
        final=state.is_final(row["block_number"]),
        file_url=file_url(seq),
        file_available=available,
        withheld=row["withheld"],
        withheld_reason=row["withheld_reason"],
        proof=Proof(
            seq=seq,
            tx_hash=to_hex(row["tx_hash"]),
            block_number=row["block_number"],
            block_hash=to_hex(row["block_hash"]),
            block_time=row["block_time"],
            log_index=row["log_index"],
            entry_hash=to_hex(row["entry_hash"]),
        ),
    )


def batch_rows(
    conn: Connection, after: int | None, limit: int, agency_id: str | None = None, withheld: bool | None = None
) -> tuple[list[RowMapping], bool]:
    """Up to ``limit`` batches with seq above ``after`` (of one agency, if given; only the withheld ones, or only
    the others, if ``withheld`` says so), and whether more follow."""
    query = _batch_query().order_by(batches.c.seq).limit(limit + 1)
    if after is not None:
        query = query.where(batches.c.seq > after)
    if agency_id is not None:
        query = query.where(batches.c.agency_id == agency_id)
    if withheld is not None:
        query = query.where(batches.c.withheld.is_not(None) if withheld else batches.c.withheld.is_(None))
    rows = conn.execute(query).mappings().all()
    return list(rows[:limit]), len(rows) > limit


def batch_row(conn: Connection, seq: int) -> RowMapping | None:
    return conn.execute(_batch_query().where(batches.c.seq == seq)).mappings().first()


def batch_files(conn: Connection, agency_id: str | None = None) -> list[tuple[int, bytes]]:
    """(seq, file hash) of every batch (of one agency, if given), in seq order."""
    query = select(batches.c.seq, batches.c.file_hash).order_by(batches.c.seq)
    if agency_id is not None:
        query = query.where(batches.c.agency_id == agency_id)
    return [(int(row.seq), bytes(row.file_hash)) for row in conn.execute(query)]


def batch_containing(conn: Connection, seq: int) -> RowMapping | None:
    """The batch holding entry ``seq``, if it is a batched record (indexed or withheld)."""
    row = conn.execute(
        select(batches.c.seq, batches.c.count, batches.c.withheld, batches.c.withheld_reason)
        .where(batches.c.seq <= seq).order_by(batches.c.seq.desc()).limit(1)
    ).mappings().first()
    return row if row is not None and seq < row["seq"] + row["count"] else None


def withheld_counts(conn: Connection, agency_id: str | None = None) -> dict[str, tuple[int, int]]:
    """(batches, entries) withheld, by agency (of one agency, if given); agencies with none are left out."""
    b = batches.c
    query = (
        select(b.agency_id, func.count().label("withheld_batches"), func.sum(b.count).label("withheld_entries"))
        .where(b.withheld.is_not(None))
        .group_by(b.agency_id)
    )
    if agency_id is not None:
        query = query.where(b.agency_id == agency_id)
    return {row.agency_id: (int(row.withheld_batches), int(row.withheld_entries or 0)) for row in conn.execute(query)}
