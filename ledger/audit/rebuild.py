"""Rebuild the ledger's state from its entries alone — agencies and key history, commitment versions, holiday
calendars, corrections, case states, receipts, ratings, disputes and their answers — with the project's own
definitions (``ledger.cases``, ``ledger.metrics``, ``ledger.logs``), never from the service's database.

Merkle-anchored batches: a ``BatchAnchored`` entry of the log stands for ``count`` case events (entries ``seq`` to
``seq + count - 1``) whose records are in its published batch file. :func:`rebuild` takes the files' checked
contents (``ledger.batchread``) and puts each batched event in the model as the case event it is — the anchor's
agency and signer, its own record and entry hash, the anchoring transaction as its proof, the running hash after the
batch — so every check treats it like an event written alone. The log's running hash folds the anchor once.

A batch whose file is not given — not published (yet), or one that can never match its anchor — is *withheld*: its
``count`` entries are in the log (the running hash and the count) but none of its events is in the model
(``LedgerModel.unread``), exactly as the index quarantines it; the batch check reports it against the agency that
anchored it. A batched event of a receipt case is never applied to its case (``ledger.cases.batched_event_applies``,
the rule the index applies too): it stays an entry and one of its case's recorded events (as the index keeps its
``case_events`` row, which the case view lists and the recording metrics count), but the case's fold leaves it out —
it changes no status and answers no dispute (``LedgerModel.not_applied``) — and the batch check reports it against
the agency.

The rows built here (:class:`~ledger.metrics.CaseRow`, :class:`~ledger.metrics.EventRow`,
:class:`~ledger.metrics.CommitmentRow`, :class:`~ledger.metrics.RatingRow`, :class:`~ledger.metrics.DisputeRow`) are
what the index's tables would hold if it were honest, in the index's
representation (codes as text, names as display text), so the public API's answers and metrics can be compared
with them value for value.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ledger.cases import (
    ANSWERS,
    CLOSED,
    UNVOIDABLE_KINDS,
    Answer,
    CaseProgress,
    CaseState,
    CommitmentVersion,
    Event,
    Feedback,
    batched_event_applies,
    dispute_answers,
    merged,
    voided_entries,
)
from ledger.batchread import BatchContent
from ledger.logs import _keccak_256, DecodedEntry, code_text, display_text, fold
from ledger.metrics import CaseRow, CommitmentRow, DisputeRow, EventRow, RatingRow
from ledger.records import ENTRY_TYPEHASH, ZERO_HEAD, CaseAction, EntryKind
from ledger.workdays import YearCalendar

GOVERNANCE_KINDS = frozenset({EntryKind.AGENCY_REGISTERED, EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED})
#: entries signed by a citizen's receipt key (relayed), not by an agency key; they claim no time
CITIZEN_KINDS = frozenset({EntryKind.CASE_RATED, EntryKind.CASE_DISPUTED})
#: the entries of a case other than its events: its receipt, and its holder's ratings and disputes
FEEDBACK_KINDS = frozenset({EntryKind.RECEIPT_ISSUED, *CITIZEN_KINDS})


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


@dataclass(frozen=True)
class FeedbackContext:
    """A receipt, rating or dispute entry of a case, and where the case stood just before it (by the fold of its
    non-voided events and earlier feedback entries, in seq order)."""

    entry: DecodedEntry
    #: the case's status ("" while it has not been opened)
    status: str
    #: the receipt first issued for the case (None: none yet)
    receipt: str | None
    #: receipts issued for the case so far
    receipts: int
    #: valid closing events (fulfilled, rejected, withdrawn) so far, and the latest of them
    closures: int
    last_closing: DecodedEntry | None
    #: times the case was reopened so far
    reopened: int
    #: ratings recorded so far
    ratings: int


@dataclass
class CaseRecord:
    """A case: every event (voided ones, and batched events of a receipt case, included) and its state folded from the
    others (and its feedback)."""

    agency_id: str
    case_id: bytes
    events: list[DecodedEntry] = field(default_factory=list)
    state: CaseState | None = None
    #: its ReceiptIssued, CaseRated and CaseDisputed entries, in seq order
    feedback: list[DecodedEntry] = field(default_factory=list)
    #: non-voided events that were not valid transitions, each with the status the case had then ("" before Opened)
    invalid: list[tuple[DecodedEntry, str]] = field(default_factory=list)
    #: valid on-hold events, each with the hold time completed before it
    holds: list[tuple[DecodedEntry, int]] = field(default_factory=list)


@dataclass
class LedgerModel:
    """Everything the audit derives from a list of entries."""

    #: every entry, in seq order, as the index has them: a batch's events in place of its anchor
    entries: list[DecodedEntry]
    by_seq: dict[int, DecodedEntry]
    #: running hash after each entry, folded in seq order over the logged entries (a batch anchor once: its entries
    #: all have the head after the batch)
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
    #: every receipt, rating and dispute entry with where its case stood, by case (cases without events included)
    feedback: dict[tuple[str, bytes], list[FeedbackContext]] = field(default_factory=dict)
    #: each dispute's answer (by the dispute's seq): the case's first non-voided Reopened or DisputeRejected event
    #: after it, or None
    answers: dict[int, DecodedEntry | None] = field(default_factory=dict)
    #: the entries as logged, in seq order: batch anchors as such, their events not expanded
    logged: list[DecodedEntry] = field(default_factory=list)
    #: batch anchors by seq (their first entry's seq), and the contents given for them
    anchors: dict[int, DecodedEntry] = field(default_factory=dict)
    contents: Mapping[int, BatchContent] = field(default_factory=dict)
    #: anchors whose file was not given (withheld batches): their entries are not in `entries`
    unread: dict[int, DecodedEntry] = field(default_factory=dict)
    #: batched events of receipt cases, by seq: entries, and events of their case, that its fold leaves out
    #: (``ledger.cases.batched_event_applies``)
    not_applied: dict[int, DecodedEntry] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Entries the log accounts for: one past the last seq, a batch counting its `count` entries."""
        if not self.logged:
            return 0
        last = self.logged[-1]
        return last.seq + (last.record["count"] if last.kind == EntryKind.BATCH_ANCHORED else 1)

    def batch_of(self, seq: int) -> DecodedEntry | None:
        """The anchor of the batch entry `seq` belongs to (None: not a batched entry)."""
        starts = self._anchor_starts
        i = bisect_right(starts, seq) - 1
        if i < 0:
            return None
        anchor = self.anchors[starts[i]]
        return anchor if seq < anchor.seq + anchor.record["count"] else None

    @cached_property
    def _anchor_starts(self) -> list[int]:
        return sorted(self.anchors)

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
        """A ``case_events`` row per case event (voided ones too, with ``voided_by``; batched events of receipt cases
        too: recorded, though not applied), in seq order."""
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

    @cached_property
    def rating_rows(self) -> list[RatingRow]:
        """A ``ratings`` row per rating, in seq order."""
        return [
            RatingRow(seq=e.seq, agency_id=code_text(e.agency_id), case_id=e.record["case_id"],
                      score=e.record["score"], comment_hash=e.record["comment_hash"], receipt=e.actor,
                      block_time=e.block_time or 0)
            for e in self.entries if e.kind == EntryKind.CASE_RATED
        ]

    @cached_property
    def dispute_rows(self) -> list[DisputeRow]:
        """A ``disputes`` row per dispute, with its answer, in seq order."""
        rows = []
        for e in self.entries:
            if e.kind != EntryKind.CASE_DISPUTED:
                continue
            answer = self.answers.get(e.seq)
            rows.append(DisputeRow(
                seq=e.seq, agency_id=code_text(e.agency_id), case_id=e.record["case_id"],
                closure=e.record["closure"], reason_hash=e.record["reason_hash"], receipt=e.actor,
                block_time=e.block_time or 0, answer_seq=None if answer is None else answer.seq,
                answer_action=None if answer is None else int(answer.record["action"]),
                answered_at=None if answer is None else answer.block_time or 0,
            ))
        return rows


def rebuild(entries: Sequence[DecodedEntry], batches: Mapping[int, BatchContent] | None = None) -> LedgerModel:
    """The model of `entries` (in seq order; a duplicated seq is taken once, the first time), with the events of each
    batch anchor whose checked file content `batches` gives (by the anchor's seq); the other anchors' batches are
    withheld (`unread`)."""
    logged: list[DecodedEntry] = []
    seen: set[int] = set()
    for e in entries:
        if e.seq not in seen:
            seen.add(e.seq)
            logged.append(e)
    contents = batches or {}
    running: dict[int, bytes] = {}
    head = ZERO_HEAD
    unique: list[DecodedEntry] = []
    by_seq: dict[int, DecodedEntry] = {}
    anchors: dict[int, DecodedEntry] = {}
    unread: dict[int, DecodedEntry] = {}
    not_applied: dict[int, DecodedEntry] = {}
    for e in logged:
        head = fold(head, e.entry_hash)
        if e.kind != EntryKind.BATCH_ANCHORED:
            running[e.seq] = head
            if e.seq not in by_seq:
                by_seq[e.seq] = e
                unique.append(e)
            continue
        anchors[e.seq] = e
        for seq in range(e.seq, e.seq + e.record["count"]):
            running[seq] = head
        content = contents.get(e.seq)
        if content is None:
            unread[e.seq] = e
            continue
        for item in batched_entries(e, content):
            if item.seq not in by_seq:  # a later log claiming a batched seq is the log check's business
                by_seq[item.seq] = item
                unique.append(item)
                if not batched_event_applies(item.record["case_id"]):
                    not_applied[item.seq] = item
    if anchors:
        unique.sort(key=lambda e: e.seq)

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
            elif int(target.kind) in UNVOIDABLE_KINDS:
                why = (f"its target seq {target.seq} is a {target.kind.name.lower()} entry, which no correction can "
                       "void (a citizen's receipt, rating or dispute)")
            else:
                why = f"its target seq {target.seq} was already voided by seq {voided.get(target.seq)}"
            refused.append((e, why))

    agencies: dict[str, AgencyState] = {}
    commitments: dict[tuple[str, str], CommitmentState] = {}
    calendars: dict[str, dict[int, tuple[int, YearCalendar, DecodedEntry]]] = {}
    cases: dict[tuple[str, bytes], CaseRecord] = {}
    feedback: dict[tuple[str, bytes], list[DecodedEntry]] = {}
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
        elif kind in FEEDBACK_KINDS:
            feedback.setdefault((code_text(e.agency_id), r["case_id"]), []).append(e)
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

    contexts: dict[tuple[str, bytes], list[FeedbackContext]] = {}
    answers: dict[int, DecodedEntry | None] = {}
    for key in [*cases, *(key for key in feedback if key not in cases)]:
        agency = key[0]
        record = cases.get(key) or CaseRecord(*key)
        record.feedback = feedback.get(key, [])
        progress = CaseProgress()
        closures, last_closing, receipts_so_far, ratings_so_far = 0, None, 0, 0
        answering: list[DecodedEntry] = []
        items = {e.seq: e for e in record.feedback}
        folded: list[Event] = []
        for e in record.events:
            if e.seq in voided or e.seq in not_applied:
                continue
            r = e.record
            action = int(r["action"])
            if action == CaseAction.OPENED:
                folded.append(Event(e.seq, action, r["occurred_at"], code_text(r["commitment_id"]),
                                    code_text(r["district"]), r["channel"]))
            else:
                folded.append(Event(e.seq, action, r["occurred_at"]))
            items[e.seq] = e
        fed = [feedback_item(e) for e in record.feedback]
        if not fed:  # most cases: their events alone, without the bookkeeping feedback needs
            for item in folded:
                e = items[item.seq]
                before = progress.status if progress.opened else ""
                held = progress.hold_seconds
                if not progress.apply(item):
                    record.invalid.append((e, before))
                elif item.action == CaseAction.ON_HOLD:
                    record.holds.append((e, held))
        for item in merged(folded, fed) if fed else ():
            e = items[item.seq]
            if isinstance(item, Feedback):
                contexts.setdefault(key, []).append(FeedbackContext(
                    e, progress.status if progress.opened else "", progress.receipt, receipts_so_far, closures,
                    last_closing, progress.reopened, ratings_so_far,
                ))
                progress.take(item)
                receipts_so_far += item.kind == EntryKind.RECEIPT_ISSUED
                ratings_so_far += item.kind == EntryKind.CASE_RATED
                continue
            action = item.action
            before = progress.status if progress.opened else ""
            held = progress.hold_seconds
            if action in ANSWERS:
                answering.append(e)
            if not progress.apply(item):
                record.invalid.append((e, before))
            elif action == CaseAction.ON_HOLD:
                record.holds.append((e, held))
            elif progress.status in CLOSED and before not in CLOSED:
                closures += 1
                last_closing = e
        disputes = [e.seq for e in record.feedback if e.kind == EntryKind.CASE_DISPUTED]
        if disputes:
            by_seq_answer = {a.seq: a for a in answering}
            found = dispute_answers(disputes, [Answer(a.seq, int(a.record["action"]), a.block_time or 0)
                                               for a in answering])
            answers.update({seq: None if a is None else by_seq_answer[a.seq] for seq, a in found.items()})
        if key in cases:
            jurisdiction = agencies[agency].jurisdiction if agency in agencies else ""
            record.state = progress.state(
                versions.get((agency, progress.commitment_id), []), jurisdiction_calendars.get(jurisdiction, {})
            )

    return LedgerModel(
        entries=unique, by_seq=by_seq, running=running, head=head, voided=voided, refused_corrections=refused,
        agencies=agencies, commitments=commitments, calendars=calendars, cases=cases, feedback=contexts,
        answers=answers, logged=logged, anchors=anchors, contents=contents, unread=unread, not_applied=not_applied,
    )


_CASE_KIND_WORD = int(EntryKind.CASE_EVENT).to_bytes(32, "big")


def batched_entries(anchor: DecodedEntry, content: BatchContent) -> list[DecodedEntry]:
    """The case events of a batch as entries: kind CASE_EVENT, the anchor's agency and signer, their own record hash
    and entry hash (``entry_hash(seq, CASE_EVENT, agency, signer, record_hash)``), the anchoring log as their
    proof. Entry ``anchor.seq + i`` is the file's event ``i``."""
    out = []
    middle = _CASE_KIND_WORD + anchor.agency_id + bytes.fromhex(anchor.actor[2:]).rjust(32, b"\0")
    where = (anchor.block_number, anchor.block_hash, anchor.block_time, anchor.tx_hash, anchor.log_index)
    kind, keccak_256 = EntryKind.CASE_EVENT, _keccak_256
    for i, ((case_id, action, at, commitment, district, channel, details), record_hash) in enumerate(
        zip(content.events, content.record_hashes, strict=True)
    ):
        seq = anchor.seq + i
        entry = keccak_256(ENTRY_TYPEHASH + seq.to_bytes(32, "big") + middle + record_hash).digest()
        record = {"case_id": case_id, "action": action, "occurred_at": at, "commitment_id": commitment,
                  "district": district, "channel": channel, "details_hash": details}
        out.append(DecodedEntry(seq, kind, anchor.agency_id, anchor.actor, record_hash, entry, *where, record))
    return out


def feedback_item(e: DecodedEntry) -> Feedback:
    """What the case fold reads of a receipt, rating or dispute entry."""
    r = e.record
    receipt = r["receipt"] if e.kind == EntryKind.RECEIPT_ISSUED else e.actor
    return Feedback(e.seq, int(e.kind), receipt, e.block_time or 0, r.get("score", 0))


def hex0x(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def entry_pointer(e: DecodedEntry) -> dict[str, Any]:
    """The fields of a :class:`~ledger.audit.model.Finding` that point at an entry."""
    return {"seq": e.seq, "tx_hash": "0x" + e.tx_hash.hex(), "log_index": e.log_index, "block_number": e.block_number}
