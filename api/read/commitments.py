"""Commitments and their versions (``api.routes.commitments``; names, targets and retirement for the scorecards):
the version in force is the latest not voided. Reads ``commitments``, ``commitment_retirements`` and their
entries."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, or_, select, tuple_
from sqlalchemy.engine import RowMapping

from api.read._common import UNIT_NAMES, code_order, proof_columns, proof_of, to_hex
from api.read.state import IndexState
from api.schemas._common import CODE_PATTERN
from api.schemas.commitments import (
    CommitmentHistory,
    CommitmentSummary,
    CommitmentVersion,
    CommitmentVersionState,
    Retirement,
)
from ledger.metrics import rate_from_bps
from ledger.store.schema import commitment_retirements, commitments, entries

_CODE = re.compile(CODE_PATTERN)


def _version_query() -> Any:
    return select(commitments, entries.c.voided_by, *proof_columns()).join(entries, entries.c.seq == commitments.c.seq)


def _version_fields(row: RowMapping, state: IndexState) -> dict[str, Any]:
    return {
        "agency_id": row["agency_id"],
        "commitment_id": row["commitment_id"],
        "version": row["version"],
        "service_code": row["service_code"],
        "name_zh": row["name_zh"],
        "name_en": row["name_en"],
        "deadline": row["deadline"],
        "deadline_unit": UNIT_NAMES.get(row["deadline_unit"], "calendar_hours"),
        "target_bps": row["target_bps"],
        "target_rate": str(rate_from_bps(row["target_bps"])),
        "valid_from": row["valid_from"],
        "terms_hash": to_hex(row["terms_hash"]),
        "occurred_at": row["occurred_at"],
        "final": state.is_final(row["p_block_number"]),
        "proof": proof_of(row),
    }


def current_version(versions: Sequence[RowMapping]) -> RowMapping:
    """The version in force: the latest not voided (as the metrics' target), or the latest if every one is."""
    live = [v for v in versions if v["voided_by"] is None]
    return max(live or versions, key=lambda v: v["version"])


def _retirements(conn: Connection, seqs: Iterable[int], state: IndexState) -> dict[int, Retirement]:
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    rows = conn.execute(
        select(commitment_retirements, *proof_columns())
        .join(entries, entries.c.seq == commitment_retirements.c.seq)
        .where(commitment_retirements.c.seq.in_(wanted))
    ).mappings()
    return {
        row["seq"]: Retirement(
            reason_hash=to_hex(row["reason_hash"]),
            occurred_at=row["occurred_at"],
            final=state.is_final(row["p_block_number"]),
            proof=proof_of(row),
        )
        for row in rows
    }


def _versions_of(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[RowMapping]]:
    out: dict[tuple[str, str], list[RowMapping]] = {}
    if not keys:
        return out
    c = commitments.c
    rows = conn.execute(
        _version_query().where(tuple_(c.agency_id, c.commitment_id).in_(list(keys))).order_by(c.version)
    ).mappings()
    for row in rows:
        out.setdefault((row["agency_id"], row["commitment_id"]), []).append(row)
    return out


def encode_commitment_cursor(agency_id: str, commitment_id: str) -> str:
    return base64.urlsafe_b64encode(f"{agency_id} {commitment_id}".encode()).decode().rstrip("=")


def decode_commitment_cursor(cursor: str) -> tuple[str, str] | None:
    """The key in a cursor from :func:`encode_commitment_cursor`, or None if it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    parts = text.split(" ")
    if len(parts) != 2 or not all(_CODE.fullmatch(part) for part in parts):
        return None
    return parts[0], parts[1]


def commitments_page(
    conn: Connection, state: IndexState, agency_id: str | None, after: tuple[str, str] | None, limit: int
) -> tuple[list[CommitmentSummary], bool]:
    c = commitments.c
    a, m = code_order(c.agency_id, conn), code_order(c.commitment_id, conn)
    # GROUP BY, not DISTINCT: PostgreSQL wants DISTINCT's ORDER BY expressions (here collated) in the select list
    query = select(c.agency_id, c.commitment_id).group_by(c.agency_id, c.commitment_id).order_by(a, m).limit(limit + 1)
    if agency_id is not None:
        query = query.where(c.agency_id == agency_id)
    if after is not None:
        query = query.where(or_(a > after[0], and_(c.agency_id == after[0], m > after[1])))
    keys = [(row.agency_id, row.commitment_id) for row in conn.execute(query)]
    page = keys[:limit]
    versions = _versions_of(conn, page)
    current = {key: current_version(versions[key]) for key in page}
    retired_seqs = [r["retired_seq"] for r in current.values() if r["retired_seq"] is not None]
    retirements = _retirements(conn, retired_seqs, state)
    items = []
    for key in page:
        row = current[key]
        retired_seq = row["retired_seq"]
        items.append(
            CommitmentSummary(
                **_version_fields(row, state),
                voided_by=row["voided_by"],
                retired=retired_seq is not None,
                retirement=retirements.get(retired_seq) if retired_seq is not None else None,
                version_count=len(versions[key]),
            )
        )
    return items, len(keys) > limit


def commitment_history(
    conn: Connection, state: IndexState, agency_id: str, commitment_id: str
) -> CommitmentHistory | None:
    versions = _versions_of(conn, [(agency_id, commitment_id)]).get((agency_id, commitment_id))
    if not versions:
        return None
    current = current_version(versions)
    retired_seq = current["retired_seq"]
    retirement = _retirements(conn, [retired_seq], state).get(retired_seq) if retired_seq is not None else None
    return CommitmentHistory(
        agency_id=agency_id,
        commitment_id=commitment_id,
        current_version=current["version"],
        retired=retired_seq is not None,
        retirement=retirement,
        versions=[
            CommitmentVersionState(**_version_fields(v, state), voided_by=v["voided_by"]) for v in versions
        ],
    )


def commitment_version(
    conn: Connection, state: IndexState, agency_id: str, commitment_id: str, version: int
) -> CommitmentVersion | None:
    c = commitments.c
    row = (
        conn.execute(
            _version_query().where(c.agency_id == agency_id, c.commitment_id == commitment_id, c.version == version)
        )
        .mappings()
        .first()
    )
    return None if row is None else CommitmentVersion(**_version_fields(row, state))


def commitment_exists(conn: Connection, agency_id: str, commitment_id: str) -> bool:
    c = commitments.c
    query = select(c.version).where(c.agency_id == agency_id, c.commitment_id == commitment_id).limit(1)
    return conn.execute(query).first() is not None


@dataclass(frozen=True)
class CommitmentInfo:
    name_zh: str
    name_en: str
    target_bps: int
    retired: bool


def commitment_info(conn: Connection, agency_id: str | None = None) -> dict[tuple[str, str], CommitmentInfo]:
    """Names, target and retirement of each commitment's current version (for scorecards)."""
    query = _version_query().order_by(commitments.c.version)
    if agency_id is not None:
        query = query.where(commitments.c.agency_id == agency_id)
    grouped: dict[tuple[str, str], list[RowMapping]] = {}
    for row in conn.execute(query).mappings():
        grouped.setdefault((row["agency_id"], row["commitment_id"]), []).append(row)
    out = {}
    for key, versions in grouped.items():
        row = current_version(versions)
        out[key] = CommitmentInfo(row["name_zh"], row["name_en"], row["target_bps"], row["retired_seq"] is not None)
    return out
