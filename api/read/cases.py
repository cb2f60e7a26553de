"""A case and every event with its proof (``api.routes.cases``; the receipt view, ``api.feedback``, shows the same).

Two ways, one answer: in a snapshot through the response models (:func:`case_view`), or on the hot path in one
statement (:data:`CASE_SQL`, run by ``api.deps.IndexReader``) whose rows, read by column name, are made into the same
JSON byte for byte (:func:`case_of`; ``tests/api/test_cache.py`` compares them). Reads ``cases``, ``case_events``,
their entries and batches, ``commitments`` (names) and ``sync_state``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from api.batches import BatchKey, BatchProofs
from api.read._common import (
    ACTION_NAMES,
    CHANNEL_NAMES,
    batch_columns,
    batch_key_of,
    named,
    not_applied_reason,
    proof_columns,
    proof_of,
    select_list,
    to_hex,
    with_batches,
)
from api.read.state import STATE_COLUMNS, WITHHELD_COLUMNS, IndexState, pick_state_row, state_from_row, withheld_of
from api.schemas.cases import CaseEventItem, CaseView
from ledger.metrics import CaseRow, is_case_overdue_at
from ledger.store.schema import case_events, cases, commitments, entries


def _is_overdue(row: Any, now: int) -> bool:
    """Whether the case (a ``cases`` row) is overdue at ``now``: ``ledger.metrics.is_case_overdue_at``, the rule of
    the overdue count applied to this one case."""
    fields = {name: row[name] for name in CaseRow.__dataclass_fields__}
    fields["case_id"] = bytes(fields["case_id"])
    return is_case_overdue_at(CaseRow(**fields), now)


#: the agency's response to the case and its rectification of a bad rating, with their due times: the ``cases``
#: columns of the same names (``ledger.cases``, "Response" and "Rectification of a bad rating"), shown as they are
RESPONSE_FIELDS = ("responded_at", "response_due", "rectified_at", "rectification_due")
#: the fields of a case view that come from its state (all null for a case without one)
CASE_STATE_FIELDS = (
    "status",
    "commitment_id",
    "commitment_version",
    "district",
    "channel",
    "channel_name",
    "opened_at",
    "closed_at",
    "due_at",
    "hold_seconds",
    "on_hold_since",
    "fulfil_seconds",
    "on_time",
    "overdue",
    "escalated",
    "invalid_transitions",
    "has_receipt",
    "rating",
    "rated_at",
    "disputes",
    "reopened",
    "dispute_open",
    *RESPONSE_FIELDS,
)
#: the fields of a case view without state (its opening never recorded: no correction voids one), all null: every
#: field but the case's key and its events, in the view's order (the commitment's names are null too)
_NO_STATE = tuple(name for name in CaseView.model_fields if name not in ("agency_id", "case_id", "events"))


def case_view(
    conn: Connection, state: IndexState, agency_id: str, case_id: bytes, now: int, proofs: BatchProofs | None = None
) -> CaseView | None:
    """The case and every event with its proof (batched events with their Merkle proofs, from ``proofs``); None
    when the index has neither."""
    row = (
        conn.execute(select(cases).where(cases.c.agency_id == agency_id, cases.c.case_id == case_id))
        .mappings()
        .first()
    )
    e = case_events.c
    event_rows = conn.execute(
        select(case_events, entries.c.voided_by, *proof_columns(), *batch_columns())
        .select_from(with_batches(case_events.join(entries, entries.c.seq == e.seq)))
        .where(e.agency_id == agency_id, e.case_id == case_id)
        .order_by(e.seq)
    ).mappings()
    events = [
        CaseEventItem(
            seq=ev["seq"],
            action=ACTION_NAMES[ev["action"]],  # type: ignore[arg-type]
            action_code=ev["action"],
            occurred_at=ev["occurred_at"],
            recorded_at=ev["block_time"],
            recording_latency_seconds=ev["block_time"] - ev["occurred_at"],
            details_hash=to_hex(ev["details_hash"]),
            commitment_id=ev["commitment_id"],
            district=ev["district"],
            channel=ev["channel"],
            voided_by=ev["voided_by"],
            not_applied_reason=not_applied_reason(ev["p_batch_seq"], case_id),
            final=state.is_final(ev["p_block_number"]),
            proof=proof_of(ev, proofs),
        )
        for ev in event_rows
    ]
    if row is None and not events:
        return None
    fields: dict[str, Any] = {"agency_id": agency_id, "case_id": to_hex(case_id), "events": events}
    if row is None:
        # no opening recorded (events before it, or a receipt of a case never opened): the events, and no state
        no_state: dict[str, Any] = dict.fromkeys(CASE_STATE_FIELDS)
        return CaseView(**fields, **no_state)
    names = conn.execute(
        select(commitments.c.name_zh, commitments.c.name_en).where(
            commitments.c.agency_id == agency_id,
            commitments.c.commitment_id == row["commitment_id"],
            commitments.c.version == row["commitment_version"],
        )
    ).first()
    return CaseView(
        **fields,
        status=row["status"],
        commitment_id=row["commitment_id"],
        commitment_version=row["commitment_version"],
        commitment_name_zh=names.name_zh if names else None,
        commitment_name_en=names.name_en if names else None,
        district=row["district"],
        channel=row["channel"],
        channel_name=CHANNEL_NAMES.get(row["channel"]),  # type: ignore[arg-type]
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        due_at=row["due_at"],
        hold_seconds=row["hold_seconds"],
        on_hold_since=row["on_hold_since"],
        fulfil_seconds=row["fulfil_seconds"],
        on_time=row["on_time"],
        overdue=_is_overdue(row, now),
        escalated=row["escalated"],
        invalid_transitions=row["invalid_transitions"],
        **_feedback_fields(row),
        **{name: row[name] for name in RESPONSE_FIELDS},
    )


def _feedback_fields(case: Any) -> dict[str, Any]:
    """The case's receipt, rating and dispute columns as the case view shows them (the receipt's address is left to
    ``GET /receipts``: a case view says only whether there is one)."""
    return {
        "has_receipt": case["receipt"] is not None,
        "rating": case["rating"],
        "rated_at": case["rated_at"],
        "disputes": case["disputes"],
        "reopened": case["reopened"],
        "dispute_open": _flag(case["dispute_open"]),
    }


_CASE_NAMES = tuple(CaseRow.__dataclass_fields__)
#: the columns of :data:`CASE_SQL`, ``(name, SQL expression)`` in order: where the index stands (named as in
#: ``sync_state``), the event (``e_``) and its entry (``n_``: the proof and voided_by), its commitment's names
#: (``m_``), its batch if batched (``n_batch_*``, ``b_``), the case's row (``c_`` and CaseRow's fields, the table's
#: columns) and the withheld batches
CASE_SQL_COLUMNS = (
    *((name, f"s.{name}") for name in STATE_COLUMNS),
    *((f"e_{name}", f"e.{name}") for name in ("seq", "action", "occurred_at", "block_time", "details_hash",
                                              "commitment_id", "district", "channel")),
    *((f"n_{name}", f"n.{name}") for name in ("seq", "voided_by", "tx_hash", "block_number", "block_hash",
                                              "block_time", "log_index", "entry_hash")),
    ("m_name_zh", "m.name_zh"),
    ("m_name_en", "m.name_en"),
    *((f"n_{name}", f"n.{name}") for name in ("batch_seq", "batch_index", "record_hash")),
    *((f"b_{name}", f"b.{name}") for name in ("root", "count", "file_hash")),
    *((f"c_{name}", f"c.{name}") for name in _CASE_NAMES),
    *WITHHELD_COLUMNS,
)
_CASE_SQL_NAMES = tuple(name for name, _ in CASE_SQL_COLUMNS)
#: the case lookup in one statement: where the index stands, the case's row, its commitment's names and every event
#: with its entry (for the proof and voided_by) and its batch, if batched, and the withheld batches; one row per
#: event (the case's columns repeated), or one row of nulls but the state when there is no event; one set of rows
#: per sync_state row. Read its rows by name (:func:`_named_rows`).
CASE_SQL = f"""
SELECT {select_list(CASE_SQL_COLUMNS)}
FROM sync_state s
LEFT JOIN case_events e ON e.agency_id = :agency_id AND e.case_id = :case_id
LEFT JOIN entries n ON n.seq = e.seq
LEFT JOIN batches b ON b.seq = n.batch_seq
LEFT JOIN cases c ON c.agency_id = :agency_id AND c.case_id = :case_id
LEFT JOIN commitments m
       ON m.agency_id = c.agency_id AND m.commitment_id = c.commitment_id AND m.version = c.commitment_version
ORDER BY s.contract_address, e.seq
"""
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _flag(value: Any) -> bool | None:
    """A boolean column as the driver gives it (SQLite: 0 or 1)."""
    return None if value is None else bool(value)


@dataclass(frozen=True)
class CaseLookup:
    """A case lookup's answer: the index state it read, and the case's JSON (None: no such case)."""

    state: IndexState
    body: bytes | None
    #: the case view's ``overdue`` (part of its ETag)
    overdue: bool | None


def _named_rows(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows of :data:`CASE_SQL` as the driver gives them, by column name (:data:`CASE_SQL_COLUMNS`)."""
    return [named(_CASE_SQL_NAMES, row) for row in rows]


def _event_batch_key(r: dict[str, Any]) -> BatchKey | None:
    """The batch of the event in a (named) row of :data:`CASE_SQL` (None: not batched)."""
    return batch_key_of(r["n_batch_seq"], r["b_root"], r["b_count"], r["b_file_hash"])


def case_batch_keys(rows: Sequence[Sequence[Any]]) -> list[BatchKey]:
    """The batches of the events in rows of :data:`CASE_SQL`, each once (to load before :func:`case_of`)."""
    keys = (_event_batch_key(r) for r in _named_rows(rows) if r["e_seq"] is not None)
    return list(dict.fromkeys(key for key in keys if key is not None))


def case_of(
    rows: Sequence[Sequence[Any]],
    contract_address: str | None,
    agency_id: str,
    case_id: bytes,
    now: int,
    proofs: BatchProofs | None = None,
) -> CaseLookup | None:
    """The answer of a case lookup from the rows of :data:`CASE_SQL` (parameters ``agency_id``, ``case_id``): JSON
    bytes equal to the :class:`CaseView` the slow path gives. None when the index has no state row yet: then
    use :func:`case_view` in a snapshot. Batched events' Merkle proofs come from ``proofs`` (load
    :func:`case_batch_keys` into it first, off the event loop: a batch not loaded is built here)."""
    named_rows = _named_rows(rows)
    first = pick_state_row(named_rows, contract_address)
    if first is None:
        return None
    mine = [row for row in named_rows if row["contract_address"] == first["contract_address"]]
    state = state_from_row(first, withheld_of(first))
    events = []
    for r in mine:
        # no event; or (impossible by the foreign key) no entry, which joins nothing
        if r["e_seq"] is None or r["n_seq"] is None:
            continue
        block_time = r["e_block_time"]
        key = _event_batch_key(r)
        batch = None
        if key is not None:
            batch = (proofs or BatchProofs(None)).proof(key, r["n_batch_index"], bytes(r["n_record_hash"])).model_dump()
        events.append({
            "seq": r["e_seq"],
            "action": ACTION_NAMES[r["e_action"]],
            "action_code": r["e_action"],
            "occurred_at": r["e_occurred_at"],
            "recorded_at": block_time,
            "recording_latency_seconds": block_time - r["e_occurred_at"],
            "details_hash": to_hex(r["e_details_hash"]),
            "commitment_id": r["e_commitment_id"],
            "district": r["e_district"],
            "channel": r["e_channel"],
            "voided_by": r["n_voided_by"],
            "not_applied_reason": not_applied_reason(r["n_batch_seq"], case_id),
            "final": state.is_final(r["n_block_number"]),
            "proof": {
                "seq": r["n_seq"],
                "tx_hash": to_hex(r["n_tx_hash"]),
                "block_number": r["n_block_number"],
                "block_hash": to_hex(r["n_block_hash"]),
                "block_time": r["n_block_time"],
                "log_index": r["n_log_index"],
                "entry_hash": to_hex(r["n_entry_hash"]),
                "batch": batch,
            },
        })  # fmt: skip
    row = first if first["c_agency_id"] is not None else None
    if row is None and not events:
        return CaseLookup(state, None, None)
    view: dict[str, Any] = {"agency_id": agency_id, "case_id": to_hex(case_id)}
    if row is None:
        # no opening recorded (events before it, or a receipt of a case never opened): the events, and no state
        view.update(dict.fromkeys(_NO_STATE))
        overdue = None
    else:
        case = {name: row[f"c_{name}"] for name in _CASE_NAMES}
        case["on_time"], case["escalated"] = _flag(case["on_time"]), _flag(case["escalated"])
        overdue = _is_overdue(case, now)
        view.update(
            status=case["status"],
            commitment_id=case["commitment_id"],
            commitment_version=case["commitment_version"],
            commitment_name_zh=row["m_name_zh"],
            commitment_name_en=row["m_name_en"],
            district=case["district"],
            channel=case["channel"],
            channel_name=CHANNEL_NAMES.get(case["channel"]),
            opened_at=case["opened_at"],
            closed_at=case["closed_at"],
            due_at=case["due_at"],
            hold_seconds=case["hold_seconds"],
            on_hold_since=case["on_hold_since"],
            fulfil_seconds=case["fulfil_seconds"],
            on_time=case["on_time"],
            overdue=overdue,
            escalated=case["escalated"],
            invalid_transitions=case["invalid_transitions"],
            **_feedback_fields(case),
            **{name: case[name] for name in RESPONSE_FIELDS},
        )
    view["events"] = events
    return CaseLookup(state, _JSON.encode(view).encode(), overdue)
