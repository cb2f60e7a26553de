"""Agencies, their keys and key history (``api.routes.agencies``; names for the scorecards). Reads ``agencies``,
``signer_changes`` and their entries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import RowMapping

from api.read._common import code_order, proof_columns, proof_of
from api.read.batches import withheld_counts
from api.read.state import IndexState
from api.schemas.agencies import Agency, AgencyDetail, SignerChange
from ledger.store.schema import agencies, entries, signer_changes


def _signer_history(conn: Connection, agency_ids: Sequence[str]) -> dict[str, list[RowMapping]]:
    if not agency_ids:
        return {}
    rows = conn.execute(
        select(signer_changes.c.agency_id, signer_changes.c.signer, signer_changes.c.authorized, *proof_columns())
        .join(entries, entries.c.seq == signer_changes.c.seq)
        .where(signer_changes.c.agency_id.in_(agency_ids))
        .order_by(signer_changes.c.seq)
    ).mappings()
    out: dict[str, list[RowMapping]] = {}
    for row in rows:
        out.setdefault(row["agency_id"], []).append(row)
    return out


def _current_signers(history: Iterable[RowMapping]) -> list[str]:
    """The keys authorised now: the contract's state, which corrections cannot change (so voids are not applied)."""
    current: set[str] = set()
    for change in history:
        (current.add if change["authorized"] else current.discard)(change["signer"])
    return sorted(current, key=str.lower)


def _agency_query(conn: Connection) -> Any:
    return select(agencies, entries.c.block_number, *proof_columns()).join(entries, entries.c.seq == agencies.c.seq)


def _agency(
    row: RowMapping, history: list[RowMapping], state: IndexState, withheld: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    return {
        "agency_id": row["agency_id"],
        "jurisdiction": row["jurisdiction"],
        "name_zh": row["name_zh"],
        "name_en": row["name_en"],
        "signers": _current_signers(history),
        "batches_withheld": withheld[0],
        "entries_withheld": withheld[1],
        "final": state.is_final(row["block_number"]),
        "registration": proof_of(row),
    }


def agencies_page(
    conn: Connection, state: IndexState, after: str | None, limit: int
) -> tuple[list[Agency], bool]:
    key = code_order(agencies.c.agency_id, conn)
    query = _agency_query(conn).order_by(key).limit(limit + 1)
    if after is not None:
        query = query.where(key > after)
    rows = conn.execute(query).mappings().all()
    page = rows[:limit]
    history = _signer_history(conn, [row["agency_id"] for row in page])
    withheld = withheld_counts(conn) if any(state.withheld) else {}
    return [
        Agency(**_agency(row, history.get(row["agency_id"], []), state, withheld.get(row["agency_id"], (0, 0))))
        for row in page
    ], len(rows) > limit


def agency(conn: Connection, state: IndexState, agency_id: str) -> AgencyDetail | None:
    row = conn.execute(_agency_query(conn).where(agencies.c.agency_id == agency_id)).mappings().first()
    if row is None:
        return None
    history = _signer_history(conn, [agency_id]).get(agency_id, [])
    changes = [
        SignerChange(
            signer=change["signer"],
            action="authorized" if change["authorized"] else "revoked",
            final=state.is_final(change["p_block_number"]),
            proof=proof_of(change),
        )
        for change in history
    ]
    withheld = withheld_counts(conn, agency_id).get(agency_id, (0, 0))
    return AgencyDetail(**_agency(row, history, state, withheld), key_history=changes)


def agency_exists(conn: Connection, agency_id: str) -> bool:
    return conn.execute(select(agencies.c.agency_id).where(agencies.c.agency_id == agency_id)).first() is not None


def agency_names(conn: Connection, agency_ids: Iterable[str] | None = None) -> dict[str, tuple[str, str]]:
    query = select(agencies.c.agency_id, agencies.c.name_zh, agencies.c.name_en)
    if agency_ids is not None:
        query = query.where(agencies.c.agency_id.in_(list(agency_ids)))
    return {row.agency_id: (row.name_zh, row.name_en) for row in conn.execute(query)}
