"""Rebuild the ledger's state from its entries alone — agencies and key history, commitment versions, holiday
calendars, corrections, case states — with the project's own definitions (``ledger.cases``, ``ledger.metrics``,
``ledger.logs``), never from the service's database.

The rows built here (:class:`~ledger.metrics.CaseRow`, :class:`~ledger.metrics.EventRow`,
:class:`~ledger.metrics.CommitmentRow`) are what the index's tables would hold if it were honest, in the index's
representation (codes as text, names as display text), so the public API's answers and metrics can be compared
with them value for value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ledger.cases import CaseProgress, CaseState, CommitmentVersion, Event, voided_entries
from ledger.logs import DecodedEntry, code_text, display_text, fold
from ledger.metrics import CaseRow, CommitmentRow, EventRow
from ledger.records import ZERO_HEAD, CaseAction, EntryKind
from ledger.workdays import YearCalendar

GOVERNANCE_KINDS = frozenset({EntryKind.AGENCY_REGISTERED, EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED})


@dataclass
class AgencyState:
    agency_id: str
    jurisdiction: str
    name_zh: str
    name_en: str
    registration: DecodedEntry
    #: keys authorised now
    signers: set[str] = field(default_factory=set)
    #: (entry, signer, authorised) in ledger order
    key_history: list[tuple[DecodedEntry, str, bool]] = field(default_factory=list)


@dataclass
class CommitmentState:
    agency_id: str
    commitment_id: str
    #: (row, entry) per version, in ledger order
    versions: list[tuple[CommitmentRow, DecodedEntry]] = field(default_factory=list)
    retirement: DecodedEntry | None = None

    @property
    def current(self) -> tuple[CommitmentRow, DecodedEntry]:
        """The latest version not voided (the latest of all when every one is voided), as the API shows it."""
        live = [v for v in self.versions if v[0].voided_by is None]
        return max(live or self.versions, key=lambda v: v[0].version)


@dataclass
class CaseRecord:
    """A case: every event (voided ones included) and its state folded from the others."""

    agency_id: str
    case_id: bytes
    events: list[DecodedEntry] = field(default_factory=list)
    state: CaseState | None = None
    #: non-voided events that were not valid transitions, each with the status the case had then ("" before Opened)
    invalid: list[tuple[DecodedEntry, str]] = field(default_factory=list)
    #: valid on-hold events, each with the hold time completed before it
    holds: list[tuple[DecodedEntry, int]] = field(default_factory=list)


@dataclass
class LedgerModel:
    """Everything the audit derives from a list of entries."""

    entries: list[DecodedEntry]
    by_seq: dict[int, DecodedEntry]
    #: running hash after each entry, folded in seq order over the entries as given
    running: dict[int, bytes]
    head: bytes
    voided: dict[int, int]
    #: corrections that did not take effect: (correction, why)
    refused_corrections: list[tuple[DecodedEntry, str]]
    agencies: dict[str, AgencyState]
    commitments: dict[tuple[str, str], CommitmentState]
    #: jurisdiction -> year -> (version, calendar, entry) of the latest version
    calendars: dict[str, dict[int, tuple[int, YearCalendar, DecodedEntry]]]
    cases: dict[tuple[str, bytes], CaseRecord]

    # The rows the metrics are computed from, made when first needed (only the metrics check needs them).

    @cached_property
    def case_rows(self) -> list[CaseRow]:
        """A ``cases`` row per case that has a state."""
        return [
            CaseRow(agency_id=r.agency_id, case_id=r.case_id, **r.state.row())
            for r in self.cases.values() if r.state is not None
        ]

    @cached_property
    def event_rows(self) -> list[EventRow]:
        """A ``case_events`` row per case event (voided ones too, with ``voided_by``), in seq order."""
        voided = self.voided
        rows = []
        for e in self.entries:
            if e.kind != EntryKind.CASE_EVENT:
                continue
            r = e.record
            opened = r["action"] == CaseAction.OPENED
            rows.append(EventRow(
                seq=e.seq, agency_id=code_text(e.agency_id), case_id=r["case_id"], action=int(r["action"]),
                occurred_at=r["occurred_at"], block_time=e.block_time or 0, details_hash=r["details_hash"],
                commitment_id=code_text(r["commitment_id"]) if opened else None,
                district=code_text(r["district"]) if opened else None,
                channel=r["channel"] if opened else None, voided_by=voided.get(e.seq),
            ))
        return rows

    @cached_property
    def commitment_rows(self) -> list[CommitmentRow]:
        """A ``commitments`` row per version."""
        return [row for c in self.commitments.values() for row, _ in c.versions]


def rebuild(entries: Sequence[DecodedEntry]) -> LedgerModel:
    """The model of `entries` (in seq order; a duplicated seq is taken once, the first time)."""
    unique: list[DecodedEntry] = []
    by_seq: dict[int, DecodedEntry] = {}
    for e in entries:
        if e.seq not in by_seq:
            by_seq[e.seq] = e
            unique.append(e)
    running: dict[int, bytes] = {}
    head = ZERO_HEAD
    for e in unique:
        head = fold(head, e.entry_hash)
        running[e.seq] = head

    targets = [
        (e.seq, e.agency_id, e.record["target_seq"] if e.kind == EntryKind.CORRECTION else None, int(e.kind))
        for e in unique
    ]
    voided = voided_entries(targets)
    applied = set(voided.values())
    refused: list[tuple[DecodedEntry, str]] = []
    for e in unique:
        if e.kind == EntryKind.CORRECTION and e.seq not in applied:
            target = by_seq.get(e.record["target_seq"])
            if target is None or target.seq >= e.seq:
                why = f"its target seq {e.record['target_seq']} is not an earlier entry"
            elif target.agency_id != e.agency_id:
                why = f"its target seq {target.seq} belongs to another agency ({code_text(target.agency_id)})"
            else:
                why = f"its target seq {target.seq} was already voided by seq {voided.get(target.seq)}"
            refused.append((e, why))

    agencies: dict[str, AgencyState] = {}
    commitments: dict[tuple[str, str], CommitmentState] = {}
    calendars: dict[str, dict[int, tuple[int, YearCalendar, DecodedEntry]]] = {}
    cases: dict[tuple[str, bytes], CaseRecord] = {}
    case_event_kind = EntryKind.CASE_EVENT
    for e in unique:
        kind = e.kind
        r = e.record
        if kind == case_event_kind:
            agency = code_text(e.agency_id)
            key = (agency, r["case_id"])
            record = cases.get(key)
            if record is None:
                record = cases[key] = CaseRecord(agency, r["case_id"])
            record.events.append(e)
        elif kind == EntryKind.AGENCY_REGISTERED:
            agency = code_text(e.agency_id)
            if agency not in agencies:
                agencies[agency] = AgencyState(
                    agency, code_text(r["jurisdiction"]), display_text(r["name_zh"]), display_text(r["name_en"]), e
                )
        elif kind in (EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED):
            state = agencies.get(code_text(e.agency_id))
            if state is not None and e.signer is not None:
                authorised = kind == EntryKind.SIGNER_AUTHORIZED
                state.key_history.append((e, e.signer, authorised))
                (state.signers.add if authorised else state.signers.discard)(e.signer)
        elif kind == EntryKind.COMMITMENT_PUBLISHED:
            key = (code_text(e.agency_id), code_text(r["commitment_id"]))
            c = commitments.get(key)
            if c is None:
                c = commitments[key] = CommitmentState(*key)
            c.versions.append((CommitmentRow(
                agency_id=key[0], commitment_id=key[1], version=int(e.version or 0),
                service_code=code_text(r["service_code"]), name_zh=display_text(r["name_zh"]),
                name_en=display_text(r["name_en"]), deadline=r["deadline"], deadline_unit=r["deadline_unit"],
                target_bps=r["target_bps"], valid_from=r["valid_from"], terms_hash=r["terms_hash"],
                occurred_at=r["occurred_at"], seq=e.seq, retired_seq=None, voided_by=voided.get(e.seq),
            ), e))
        elif kind == EntryKind.COMMITMENT_RETIRED:
            key = (code_text(e.agency_id), code_text(r["commitment_id"]))
            c = commitments.get(key)
            if c is None:
                c = commitments[key] = CommitmentState(*key)
            if c.retirement is None:
                c.retirement = e
        elif kind == EntryKind.HOLIDAY_CALENDAR_PUBLISHED:
            jurisdiction = code_text(e.jurisdiction or b"")
            years = calendars.setdefault(jurisdiction, {})
            version = int(e.version or 0)
            if r["year"] not in years or version > years[r["year"]][0]:
                years[r["year"]] = (version, YearCalendar.of(r["year"], r["holidays"], r["workdays"]), e)

    # A retirement marks every version (the index sets retired_seq on all of them).
    for c in commitments.values():
        if c.retirement is not None:
            c.versions = [(dataclasses.replace(row, retired_seq=c.retirement.seq), e) for row, e in c.versions]
    versions: dict[tuple[str, str], list[CommitmentVersion]] = {
        key: [CommitmentVersion(row.version, row.seq, row.deadline, row.deadline_unit) for row, _ in c.versions]
        for key, c in commitments.items()
    }
    jurisdiction_calendars = {
        j: {year: calendar for year, (_, calendar, _) in years.items()} for j, years in calendars.items()
    }

    for (agency, _), record in cases.items():
        progress = CaseProgress()
        for e in record.events:
            if e.seq in voided:
                continue
            r = e.record
            action = int(r["action"])
            if action == CaseAction.OPENED:
                event = Event(e.seq, action, r["occurred_at"], code_text(r["commitment_id"]),
                              code_text(r["district"]), r["channel"])
            else:
                event = Event(e.seq, action, r["occurred_at"])
            before = progress.status if progress.opened else ""
            held = progress.hold_seconds
            if not progress.apply(event):
                record.invalid.append((e, before))
            elif action == CaseAction.ON_HOLD:
                record.holds.append((e, held))
        jurisdiction = agencies[agency].jurisdiction if agency in agencies else ""
        state = progress.state(
            versions.get((agency, progress.commitment_id), []), jurisdiction_calendars.get(jurisdiction, {})
        )
        record.state = state

    return LedgerModel(
        entries=unique, by_seq=by_seq, running=running, head=head, voided=voided, refused_corrections=refused,
        agencies=agencies, commitments=commitments, calendars=calendars, cases=cases,
    )


def hex0x(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def entry_pointer(e: DecodedEntry) -> dict[str, Any]:
    """The fields of a :class:`~ledger.audit.model.Finding` that point at an entry."""
    return {"seq": e.seq, "tx_hash": "0x" + e.tx_hash.hex(), "log_index": e.log_index, "block_number": e.block_number}
