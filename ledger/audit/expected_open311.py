"""What the Open311 GeoReport v2 endpoints should answer (``/open311/v2``, ``api/routes/open311.py``), built from the
chain alone: the service list, each service definition, discovery's changeset and each service request, as the
documents a person reads — English, the API's default language — in their JSON form, plus :func:`as_xml`, the same
document as the XML form carries it (text or empty elements).

The mapping, its codes, times and words are :mod:`ledger.open311`'s, which the API uses too: a commitment is the
service ``<agency>.<commitment>``, named and described by its latest version; a case is the request
``<agency>:0x<case id>``. This module only reads the rebuilt model (:class:`~ledger.audit.rebuild.LedgerModel`) into
those documents.
"""

from __future__ import annotations

from typing import Any

from ledger.audit.rebuild import CaseRecord, CommitmentState, LedgerModel
from ledger.metrics import CommitmentRow
from ledger.open311 import (
    SERVICE_METADATA,
    deadline_text,
    definition_attributes,
    format_time,
    request_status,
    service_code_of,
    service_description,
    service_request_id_of,
    status_notes,
    xml_text,
)
from ledger.records import EntryKind

#: discovery's ``formats``: the media types of the two forms (GeoReport v2 Service Discovery)
FORMATS = ["application/xml", "application/json"]
#: entries that change the service list or its definitions (discovery's ``changeset`` is the latest one's time)
CATALOGUE_KINDS = (EntryKind.AGENCY_REGISTERED, EntryKind.COMMITMENT_PUBLISHED, EntryKind.COMMITMENT_RETIRED)
#: list elements of the XML documents, by the list's element name (GeoReport v2 and Service Discovery)
XML_LISTS = frozenset({"services", "service_requests", "errors", "endpoints", "formats", "attributes", "values"})


def latest(c: CommitmentState) -> CommitmentRow | None:
    """The version a service shows: the highest published, voided or not (a correction does not unpublish one)."""
    return max((row for row, _ in c.versions), key=lambda row: row.version, default=None)


def _retired(row: CommitmentRow) -> bool:
    return row.retired_seq is not None


def service(model: LedgerModel, c: CommitmentState) -> dict[str, Any] | None:
    """A ``services`` item (None: the commitment has no version, or is retired and so not listed)."""
    row = latest(c)
    if row is None or _retired(row):
        return None
    agency = model.agencies.get(c.agency_id)
    return {
        "service_code": service_code_of(c.agency_id, c.commitment_id),
        "service_name": row.name_en,
        "description": service_description(row.name_en, row.deadline, row.deadline_unit, row.target_bps,
                                           retired=False),
        "metadata": SERVICE_METADATA,
        "type": "realtime",
        "keywords": ", ".join(dict.fromkeys((row.service_code, c.agency_id, c.commitment_id))),
        "group": agency.name_en if agency else c.agency_id,
    }


def service_definition(c: CommitmentState) -> dict[str, Any] | None:
    """``services/{service_code}`` (retired commitments too: every request's code resolves)."""
    row = latest(c)
    if row is None:
        return None
    attributes = definition_attributes(row.deadline, row.deadline_unit, row.target_bps, row.version, row.valid_from,
                                       row.terms_hash, _retired(row))
    return {"service_code": service_code_of(c.agency_id, c.commitment_id), "attributes": attributes}


def changeset(model: LedgerModel, count: int) -> str:
    """Discovery's ``changeset``: when the service list or a definition last changed (block time), among the first
    `count` entries."""
    times = [e.block_time or 0 for e in model.entries if e.seq < count and e.kind in CATALOGUE_KINDS]
    return format_time(max(times, default=0)) or ""


def request(record: CaseRecord, model: LedgerModel) -> dict[str, Any] | None:
    """A service request, without ``status_notes`` (which says "overdue" as of the moment it is asked: see
    :func:`case_status_notes`); None for a case with no opening standing (no request)."""
    state = record.state
    if state is None:
        return None
    c = model.commitments.get((record.agency_id, state.commitment_id))
    own = next((row for row, _ in c.versions if row.version == state.commitment_version), None) if c else None
    current = (latest(c) if c else None) or own
    agency = model.agencies.get(record.agency_id)
    last = model.by_seq.get(state.last_seq)
    last_at = last.record.get("occurred_at") if last is not None else None
    updated = max(t for t in (state.opened_at, state.closed_at, last_at) if t is not None)
    return {
        "service_request_id": service_request_id_of(record.agency_id, record.case_id),
        "status": request_status(state.status),
        "service_name": current.name_en if current else None,
        "service_code": service_code_of(record.agency_id, state.commitment_id),
        "description": None,
        "agency_responsible": agency.name_en if agency else record.agency_id,
        "service_notice": deadline_text(own.deadline, own.deadline_unit) if own else None,
        "requested_datetime": format_time(state.opened_at),
        "updated_datetime": format_time(updated),
        "expected_datetime": format_time(state.due_at),
        "address": state.district,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


def case_status_notes(record: CaseRecord, overdue: bool) -> str:
    """``status_notes`` of a case with a state, "overdue" when `overdue` (as of the request)."""
    state = record.state
    assert state is not None
    return status_notes(state.status, on_time=state.on_time, overdue=overdue, escalated=state.escalated)


def as_xml(value: Any) -> Any:
    """A JSON document as its XML form reads back (:func:`ledger.audit.checks.open311.xml_document`): scalars as
    their text (booleans ``true``/``false``, characters XML forbids as U+FFFD), an empty text or null as None,
    mappings and lists alike."""
    if isinstance(value, dict):
        return {k: as_xml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_xml(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return None
    return xml_text(str(value))
