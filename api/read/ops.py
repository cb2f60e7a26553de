"""What the operator's probes read of the index (``api.readiness``, ``api.prometheus``): each a lookup by key or an
index range of a bounded length, never a scan or a figure, so that a probe costs the same on a city's index as on an
empty one. Reads ``sync_state`` and the withheld ``batches`` (``api.read.state``), ``blocks``, the newest ``batches``
and the registered auditors' latest attestations (``api.attestations``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from api import attestations
from api.read.state import IndexState, index_state
from ledger.files import HashedFiles
from ledger.store.schema import batches, blocks


@dataclass(frozen=True)
class IndexProbe:
    """Where the index stands, as the probes need it."""

    state: IndexState
    #: the time of the last indexed block (None: no block indexed, or its hash no longer kept)
    last_block_time: int | None


def index_probe(conn: Connection, contract_address: str | None, chain_id: int | None) -> IndexProbe:
    """The index's state (the one every answer's freshness depends on) and the time of its last block."""
    state = index_state(conn, contract_address, chain_id)
    when = None
    if state.last_block >= 0:
        when = conn.execute(select(blocks.c.timestamp).where(blocks.c.number == state.last_block)).scalar()
    return IndexProbe(state, None if when is None else int(when))


def newest_batch_files(conn: Connection, newest: int) -> list[bytes]:
    """The file hashes of the indexed batches among the ``newest`` anchored (those withheld have no file here to
    look for: the index says why, and the metrics count them)."""
    b = batches.c
    rows = conn.execute(select(b.file_hash, b.withheld).order_by(b.seq.desc()).limit(newest)).all()
    return [bytes(row.file_hash) for row in rows if row.withheld is None]


def newest_attestation_time(conn: Connection, state: IndexState, reports: HashedFiles) -> int | None:
    """The block time of the newest attestation that counts in the audit summary (``api.attestations``: a registered
    auditor's latest, matching the ledger, at the highest block audited), or None when none does. Bounded by the
    registered auditors, whom governance registers."""
    summary = attestations.audit_summary(conn, state, reports)
    counted = [
        latest.attestation.proof.block_time
        for latest in summary.latest
        if latest.attestation is not None and latest.attestation.matches_ledger
        and latest.attestation.block_number == summary.audited_to_block
    ]
    return max(counted, default=None)
