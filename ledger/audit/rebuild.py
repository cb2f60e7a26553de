"""Rebuild the ledger's state from its entries alone — agencies and key history, commitment versions, holiday
calendars, corrections, case states, receipts, ratings, disputes and their answers — with the project's own
definitions (``ledger.cases``, ``ledger.metrics``, ``ledger.chain.logs``), never from the service's database.

Merkle-anchored batches: a ``BatchAnchored`` entry of the log stands for ``count`` case events (entries ``seq`` to
``seq + count - 1``) whose records are in its published batch file. :func:`rebuild` takes the files' checked
contents (``ledger.batches.read``) and puts each batched event in the model as the case event it is — the anchor's
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

The model is made by :class:`Builder`, a piece of the log at a time (``civic-audit monitor`` extends it with each
round's new entries, at the cost of those entries and the cases they touch); :func:`rebuild` is its one-go use.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

from ledger import receipt_state
from ledger.batches.read import BatchContent
from ledger.cases import (
    ANSWERS,
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
    unvoidable,
    voided_entries,
)
from ledger.chain.logs import DecodedEntry
from ledger.encoding import ZERO_HEAD, code_text, display_text, entry_hashes_in_order, fold
from ledger.filings import AGENCY_ISSUED, answer_due, key_origin
from ledger.metrics import CaseRow, CommitmentRow, DisputeRow, EventRow, FilingRow, RatingRow
from ledger.receipt_state import ReceiptCase
from ledger.records import CaseAction, EntryKind, FilingDecision, filed_case_id
from ledger.workdays import YearCalendar

GOVERNANCE_KINDS = frozenset({EntryKind.AGENCY_REGISTERED, EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED,
                              EntryKind.AUDITOR_AUTHORIZED, EntryKind.AUDITOR_REVOKED})
#: entries signed by a registered auditor's key, of no agency (the attestations check's business)
AUDITOR_KINDS = frozenset({EntryKind.AUDIT_ATTESTED})
#: entries signed by a citizen's receipt key (relayed), not by an agency key; they claim no time
CITIZEN_KINDS = frozenset({EntryKind.CASE_RATED, EntryKind.CASE_DISPUTED})
#: the entries of a case other than its events: its receipt, and its holder's ratings and disputes
FEEDBACK_KINDS = frozenset({EntryKind.RECEIPT_ISSUED, *CITIZEN_KINDS})
#: entries signed by a citizen's own key in the filings module (a filing, signed by the filer's new key; a receipt
#: claim, signed by the agency-issued key it moves away from), not by an agency key; the filings check's business
FILING_CITIZEN_KINDS = frozenset({EntryKind.FILING_RECORDED, EntryKind.RECEIPT_CLAIMED})
#: entries that bind a key to a case: an agency's receipt, an accepted filing (the filer's key), a claim (the
#: holder's own key). In a case's feedback list an accepted filing stands as :func:`filed_receipt` gives it.
BINDING_KINDS = frozenset({EntryKind.RECEIPT_ISSUED, EntryKind.FILING_ANSWERED, EntryKind.RECEIPT_CLAIMED})


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
    #: the contract's state of the case (``ledger.receipt_state``: every case event it recorded since the receipt,
    #: voided ones included, never a batched one), None before its receipt: what a rating or dispute is judged by —
    #: an agency voiding its own fulfilment later cannot make a citizen's dispute of it look refused
    tracked: ReceiptCase | None
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
    #: its ReceiptIssued, CaseRated and CaseDisputed entries (and the key bindings of an accepted filing and of a
    #: receipt claim: :data:`BINDING_KINDS`), in seq order
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
    #: FilingRecorded entries by seq, and each filing's first answer (FilingAnswered) by the filing's seq
    filings: dict[int, DecodedEntry] = field(default_factory=dict)
    filing_answers: dict[int, DecodedEntry] = field(default_factory=dict)
    #: the Opened case event each accepted filing stands for, by the answer's seq (:func:`filed_opening`)
    openings: dict[int, DecodedEntry] = field(default_factory=dict)

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
        voided, openings = self.voided, self.openings
        rows = []
        for e in self.entries:
            if e.kind == EntryKind.FILING_ANSWERED and e.seq in openings:
                e = openings[e.seq]  # an accepted filing: its case's Opened event
            elif e.kind != EntryKind.CASE_EVENT:
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
    def key_origins(self) -> dict[int, str]:
        """The origin of the key that signed each rating and dispute (by its seq; ``ledger.filings.key_origin``):
        the kind of the entry that bound that key to the case, before it — agency-issued when none did."""
        origins: dict[int, str] = {}
        for contexts in self.feedback.values():
            bound: dict[str, str] = {}  # key -> its origin, as the case's bindings come
            for c in contexts:
                e = c.entry
                if e.kind in BINDING_KINDS:
                    bound[e.record["receipt"]] = key_origin(e.kind)
                elif e.kind in (EntryKind.CASE_RATED, EntryKind.CASE_DISPUTED):
                    origins[e.seq] = bound.get(e.actor, AGENCY_ISSUED)
        return origins

    @cached_property
    def rating_rows(self) -> list[RatingRow]:
        """A ``ratings`` row per rating, in seq order, with the origin of its key."""
        return [
            RatingRow(seq=e.seq, agency_id=code_text(e.agency_id), case_id=e.record["case_id"],
                      score=e.record["score"], comment_hash=e.record["comment_hash"], receipt=e.actor,
                      block_time=e.block_time or 0, key_origin=self.key_origins.get(e.seq, AGENCY_ISSUED))
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
                key_origin=self.key_origins.get(e.seq, AGENCY_ISSUED),
            ))
        return rows


    @cached_property
    def filing_dues(self) -> dict[int, int]:
        """When each filing's answer is due (by its seq): ``ledger.filings.answer_due`` of its block time, by its
        agency's jurisdiction's latest calendars here (Monday to Friday for a year without one)."""
        by_jurisdiction: dict[str, dict[int, YearCalendar]] = {}
        dues = {}
        for seq, filing in self.filings.items():
            state = self.agencies.get(code_text(filing.agency_id))
            jurisdiction = state.jurisdiction if state is not None else ""
            if jurisdiction not in by_jurisdiction:
                years = self.calendars.get(jurisdiction, {})
                by_jurisdiction[jurisdiction] = {year: calendar for year, (_, calendar, _) in years.items()}
            dues[seq] = answer_due(filing.block_time or 0, by_jurisdiction[jurisdiction])
        return dues

    @cached_property
    def filing_rows(self) -> list[FilingRow]:
        """A ``filings`` row per filing, with its first answer, in seq order."""
        rows = []
        for seq, e in sorted(self.filings.items()):
            r = e.record
            answer = self.filing_answers.get(seq)
            decision = None if answer is None else int(answer.record["decision"])
            rows.append(FilingRow(
                seq=seq, agency_id=code_text(e.agency_id), commitment_id=code_text(r["commitment_id"]),
                district=code_text(r["district"]), channel=int(r["channel"]), content_hash=r["content_hash"],
                receipt=r["receipt"], relayer=r["relayer"], block_time=e.block_time or 0,
                answer_due=self.filing_dues[seq], answer_seq=None if answer is None else answer.seq,
                decision=decision,
                case_id=filed_case_id(seq) if decision == FilingDecision.ACCEPTED else None,
                duplicate_of=None if answer is None else answer.record["duplicate_of"],
                reason_hash=None if answer is None else answer.record["reason_hash"],
                answered_at=None if answer is None else answer.block_time or 0, filed_case_id=filed_case_id(seq),
            ))
        return rows


def rebuild(entries: Sequence[DecodedEntry], batches: Mapping[int, BatchContent] | None = None) -> LedgerModel:
    """The model of `entries` (in seq order; a duplicated seq is taken once, the first time), with the events of each
    batch anchor whose checked file content `batches` gives (by the anchor's seq); the other anchors' batches are
    withheld (`unread`). The one-go use of :class:`Builder`."""
    return Builder().extend(entries, batches).model()


@dataclass(slots=True)
class _Fold:
    """Where a case's fold stands: its accumulator and the bookkeeping of its receipts, ratings and disputes, after
    its first `events` events and `feedback` feedback entries."""

    progress: CaseProgress
    #: folded with the feedback bookkeeping (the case had feedback entries); a case without any is folded without it,
    #: and folded again from its first event once it gets one
    tracked: bool
    events: int = 0
    feedback: int = 0
    #: the contract's state of the case (None: no receipt yet)
    contract: ReceiptCase | None = None
    receipts: int = 0
    ratings: int = 0
    #: non-voided Reopened and DisputeRejected events, in seq order (tracked folds only)
    answering: list[DecodedEntry] = field(default_factory=list)


class Builder:
    """The model of a log read a piece at a time: :meth:`extend` with each piece of entries (the log's continuation, in
    seq order) and the checked contents of the batches anchored in it, then :meth:`model`. Any split of a log into
    pieces gives the model :func:`rebuild` gives of the whole (``tests/audit/test_rebuild_incremental.py``), and each
    piece costs its own entries and the cases they touch, not the whole log:

    - the running hash, entries, anchors and their batches' events carry on from the last piece;
    - corrections are applied (``ledger.cases.voided_entries``) to the new entries, with the earlier targets they
      name that are not voided yet; a case with an event voided by a new correction is folded again from its first
      event (and a commitment version voided gets its ``voided_by``);
    - a case with new events or feedback resumes its fold (``ledger.cases.CaseProgress``) where it stood: its events
      and feedback are applied in seq order, and a new piece's entries all come after the stored ones; a case that
      gets its first receipt, rating or dispute is folded again from its first event with the feedback bookkeeping;
    - a case's state (``CaseProgress.state``) is recomputed when its fold moved, when a new calendar version of its
      agency's jurisdiction replaces one, and when its agency is registered after it was opened (its jurisdiction).
      A new commitment version never changes a stored case: the version in force is the latest whose seq is below
      the case's Opened, and a new version's seq is above every stored entry's.

    What the incremental rules assume — a log in strictly increasing seq order, batch contents given with their
    anchor — holds for a log read from a node in block order. When it does not (entries out of order, the content
    of a batch withheld so far given later) the whole model is rebuilt from the entries taken so far, exactly as
    :func:`rebuild` would. The model :meth:`model` returns shares this builder's containers: take it after the last
    :meth:`extend` it should reflect."""

    def __init__(self) -> None:
        self.logged: list[DecodedEntry] = []
        self.contents: dict[int, BatchContent] = {}
        self._restart()

    def _restart(self) -> None:
        """Forget everything made from `logged` (kept, with `contents`)."""
        self._seen: set[int] = set()
        self.running: dict[int, bytes] = {}
        self.head = ZERO_HEAD
        self.unique: list[DecodedEntry] = []
        self.by_seq: dict[int, DecodedEntry] = {}
        self.anchors: dict[int, DecodedEntry] = {}
        self.unread: dict[int, DecodedEntry] = {}
        self.not_applied: dict[int, DecodedEntry] = {}
        #: whether `unique` is in strictly increasing seq order (what the incremental rules need)
        self._ordered = True
        self._derived_from = 0
        self._clear_derived()

    def _clear_derived(self) -> None:
        """Forget everything made from `unique` (corrections, agencies, commitments, calendars, cases)."""
        self.voided: dict[int, int] = {}
        self.refused: list[tuple[DecodedEntry, str]] = []
        self.agencies: dict[str, AgencyState] = {}
        self.commitments: dict[tuple[str, str], CommitmentState] = {}
        self.calendars: dict[str, dict[int, tuple[int, YearCalendar, DecodedEntry]]] = {}
        self.cases: dict[tuple[str, bytes], CaseRecord] = {}
        #: receipt, rating and dispute entries by case, in seq order (cases without events included)
        self.feedback: dict[tuple[str, bytes], list[DecodedEntry]] = {}
        #: the records of cases with feedback but no event (yet)
        self._orphans: dict[tuple[str, bytes], CaseRecord] = {}
        self._folds: dict[tuple[str, bytes], _Fold] = {}
        self._contexts: dict[tuple[str, bytes], list[FeedbackContext]] = {}
        self._answers: dict[tuple[str, bytes], dict[int, DecodedEntry | None]] = {}
        self._versions: dict[tuple[str, str], list[CommitmentVersion]] = {}
        #: a commitment version's row by its entry's seq: (commitment, index in its versions)
        self._version_at: dict[int, tuple[tuple[str, str], int]] = {}
        self._year_calendars: dict[str, dict[int, YearCalendar]] = {}
        self._cases_of: dict[str, list[tuple[str, bytes]]] = {}
        self.filings: dict[int, DecodedEntry] = {}
        self.filing_answers: dict[int, DecodedEntry] = {}
        self.openings: dict[int, DecodedEntry] = {}
        self._derived_from = 0

    # -- taking entries

    def extend(
        self, entries: Sequence[DecodedEntry], batches: Mapping[int, BatchContent] | None = None
    ) -> Builder:
        """Take the next entries of the log (in seq order; a seq taken before is ignored, as :func:`rebuild` takes a
        duplicated seq once) and the checked contents of batches anchored among them, by the anchor's seq."""
        given = batches or {}
        late = any(seq in self.unread for seq in given)  # a batch withheld so far can be read now
        self.contents.update(given)
        if late:
            taken = [*self.logged, *entries]
            self.logged = []
            self._restart()
            self._take(taken)
        else:
            self._take(entries)
        if not self._ordered or self._derived_from == 0 and self.unique:
            self._derive_all()
        else:
            self._derive(self.unique[self._derived_from:], resumed=True)
        return self

    def _take(self, entries: Iterable[DecodedEntry]) -> None:
        """Log order: the running hash, each seq once, and each anchor's batch expanded into its events (or withheld
        when its content is not given)."""
        seen, logged, contents = self._seen, self.logged, self.contents
        running, by_seq, unique = self.running, self.by_seq, self.unique
        head = self.head
        last = unique[-1].seq if unique else -1
        ordered = self._ordered
        for e in entries:
            if e.seq in seen:
                continue
            seen.add(e.seq)
            logged.append(e)
            head = fold(head, e.entry_hash)
            if e.kind != EntryKind.BATCH_ANCHORED:
                running[e.seq] = head
                if e.seq not in by_seq:
                    by_seq[e.seq] = e
                    unique.append(e)
                    ordered = ordered and e.seq > last
                    last = max(last, e.seq)
                continue
            self.anchors[e.seq] = e
            for seq in range(e.seq, e.seq + e.record["count"]):
                running[seq] = head
            content = contents.get(e.seq)
            if content is None:
                self.unread[e.seq] = e
                continue
            for item in batched_entries(e, content):
                if item.seq not in by_seq:  # a later log claiming a batched seq is the log check's business
                    by_seq[item.seq] = item
                    unique.append(item)
                    ordered = ordered and item.seq > last
                    last = max(last, item.seq)
                    if not batched_event_applies(item.record["case_id"]):
                        self.not_applied[item.seq] = item
        self.head = head
        self._ordered = ordered

    def _derive_all(self) -> None:
        """Everything made from `unique`, made again from all of it (in seq order when there are batches)."""
        if self.anchors:
            self.unique.sort(key=lambda e: e.seq)
        self._ordered = all(a.seq < b.seq for a, b in zip(self.unique, self.unique[1:]))
        self._clear_derived()
        self._derive(self.unique, resumed=False)

    def _derive(self, fresh: Sequence[DecodedEntry], *, resumed: bool) -> None:
        """Fold the entries of `unique` not yet derived (`fresh`, its tail: all of it when not `resumed`) into
        corrections, agencies, commitments, calendars and cases."""
        self._derived_from = len(self.unique)
        if not fresh:
            return
        by_seq, voided = self.by_seq, self.voided
        correction = EntryKind.CORRECTION
        # Corrections: the fold of ledger.cases.voided_entries carried on. An earlier entry a new correction names
        # is given ahead of the new entries (as a plain entry) when it is not voided yet, so the rule sees it as the
        # whole fold would have; a voided one is left out, so it is not voided again.
        first = fresh[0].seq  # (resumed: every entry derived before is below it)
        earlier = {}
        for e in fresh if resumed else ():
            if e.kind == correction:
                target = by_seq.get(e.record["target_seq"])
                if target is not None and target.seq < first and target.seq not in voided:
                    earlier[target.seq] = (target.seq, target.agency_id, None, int(target.kind), _action(target))
        newly = voided_entries([
            *earlier.values(),
            *((e.seq, e.agency_id, e.record["target_seq"] if e.kind == correction else None, int(e.kind), _action(e))
              for e in fresh),
        ])
        voided.update(newly)
        applied = set(newly.values())
        for e in fresh:
            if e.kind == correction and e.seq not in applied:
                self.refused.append((e, self._refusal(e)))

        touched: dict[tuple[str, bytes], None] = {}  # cases whose fold moves (ordered: insertion)
        refold: set[tuple[str, bytes]] = set()
        restate: set[tuple[str, bytes]] = set()
        for target_seq in newly if resumed else ():
            if target_seq < first:  # an earlier entry voided by a new correction
                target = by_seq[target_seq]
                if target.kind == EntryKind.CASE_EVENT:
                    key = (code_text(target.agency_id), target.record["case_id"])
                    refold.add(key)
                    touched[key] = None
                elif target_seq in self._version_at:
                    key, index = self._version_at[target_seq]
                    changed = self.commitments[key]
                    row, entry = changed.versions[index]
                    changed.versions[index] = (dataclasses.replace(row, voided_by=voided[target_seq]), entry)

        agencies, commitments, calendars = self.agencies, self.commitments, self.calendars
        cases, feedback, orphans = self.cases, self.feedback, self._orphans
        new_jurisdictions: set[str] = set()
        case_event_kind = EntryKind.CASE_EVENT
        for e in self._case_items(fresh):
            kind = e.kind
            r = e.record
            if kind == case_event_kind:
                agency = code_text(e.agency_id)
                key = (agency, r["case_id"])
                record = cases.get(key)
                if record is None:
                    record = orphans.pop(key, None) or CaseRecord(agency, r["case_id"], feedback=feedback.get(key, []))
                    cases[key] = record
                    self._cases_of.setdefault(agency, []).append(key)
                record.events.append(e)
                touched[key] = None
            elif kind in FEEDBACK_KINDS or kind in BINDING_KINDS:
                key = (code_text(e.agency_id), r["case_id"])
                items = feedback.get(key)
                if items is None:
                    items = feedback[key] = []
                    record = cases.get(key)
                    if record is None:
                        orphans[key] = CaseRecord(*key, feedback=items)
                    else:
                        record.feedback = items
                items.append(e)
                touched[key] = None
            elif kind == EntryKind.AGENCY_REGISTERED:
                agency = code_text(e.agency_id)
                if agency not in agencies:
                    agencies[agency] = AgencyState(
                        agency, code_text(r["jurisdiction"]), display_text(r["name_zh"]), display_text(r["name_en"]), e
                    )
                    restate.update(self._cases_of.get(agency, ()))  # its cases' jurisdiction is known now
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
                row = CommitmentRow(
                    agency_id=key[0], commitment_id=key[1], version=int(e.version or 0),
                    service_code=code_text(r["service_code"]), name_zh=display_text(r["name_zh"]),
                    name_en=display_text(r["name_en"]), deadline=r["deadline"], deadline_unit=r["deadline_unit"],
                    target_bps=r["target_bps"], valid_from=r["valid_from"], terms_hash=r["terms_hash"],
                    occurred_at=r["occurred_at"], seq=e.seq,
                    # a retirement marks every version (the index sets retired_seq on all of them)
                    retired_seq=None if c.retirement is None else c.retirement.seq, voided_by=voided.get(e.seq),
                )
                self._version_at[e.seq] = (key, len(c.versions))
                c.versions.append((row, e))
                self._versions.setdefault(key, []).append(
                    CommitmentVersion(row.version, row.seq, row.deadline, row.deadline_unit))
            elif kind == EntryKind.COMMITMENT_RETIRED:
                key = (code_text(e.agency_id), code_text(r["commitment_id"]))
                c = commitments.get(key)
                if c is None:
                    c = commitments[key] = CommitmentState(*key)
                if c.retirement is None:
                    c.retirement = e
                    c.versions[:] = [(dataclasses.replace(row, retired_seq=e.seq), v) for row, v in c.versions]
            elif kind == EntryKind.HOLIDAY_CALENDAR_PUBLISHED:
                jurisdiction = code_text(e.jurisdiction or b"")
                years = calendars.setdefault(jurisdiction, {})
                version = int(e.version or 0)
                if r["year"] not in years or version > years[r["year"]][0]:
                    calendar = YearCalendar.of(r["year"], r["holidays"], r["workdays"])
                    years[r["year"]] = (version, calendar, e)
                    self._year_calendars.setdefault(jurisdiction, {})[r["year"]] = calendar
                    new_jurisdictions.add(jurisdiction)

        if new_jurisdictions:  # a calendar replaced: the due times of that jurisdiction's cases
            for agency, keys in self._cases_of.items():
                state = agencies.get(agency)
                if (state.jurisdiction if state is not None else "") in new_jurisdictions:
                    restate.update(keys)
        folds, versions, calendars_of = self._folds, self._versions, self._year_calendars
        no_versions: tuple[CommitmentVersion, ...] = ()
        for key in touched:
            record = cases.get(key)
            known = record is not None
            if record is None:
                record = orphans[key]
            found = folds.get(key)
            if found is None:
                found = folds[key] = _Fold(CaseProgress(), tracked=bool(record.feedback))
            elif key in refold or (record.feedback and not found.tracked):  # folded again from its first event
                found = folds[key] = _Fold(CaseProgress(), tracked=bool(record.feedback))
                record.invalid, record.holds = [], []
                self._contexts.pop(key, None)
                self._answers.pop(key, None)
            self._fold(key, record, found)
            if known:
                owner = agencies.get(key[0])
                progress = found.progress
                record.state = progress.state(versions.get((key[0], progress.commitment_id), no_versions),
                                              calendars_of.get(owner.jurisdiction if owner is not None else "", {}))
        for key in restate:
            record = cases.get(key)
            if record is not None and key not in touched:
                owner = agencies.get(key[0])
                progress = folds[key].progress
                record.state = progress.state(versions.get((key[0], progress.commitment_id), no_versions),
                                              calendars_of.get(owner.jurisdiction if owner is not None else "", {}))

    def _case_items(self, fresh: Sequence[DecodedEntry]) -> Iterator[DecodedEntry]:
        """`fresh` as the case fold takes it: each accepted filing as the Opened event and the key binding it stands
        for (:func:`filed_opening`, :func:`filed_receipt`, both at the answer's seq, as the index has them); filings
        and rejections noted, and left out. Filings are answered by the module only after they are recorded, so a
        filing is always known by its answer's turn."""
        filings, answers, openings = self.filings, self.filing_answers, self.openings
        for e in fresh:
            kind = e.kind
            if kind == EntryKind.FILING_RECORDED:
                filings[e.seq] = e
            elif kind == EntryKind.FILING_ANSWERED:
                r = e.record
                answers.setdefault(r["filing_seq"], e)
                filing = filings.get(r["filing_seq"])
                # an answer the module could not have taken (no such filing, another agency's) opens nothing: the
                # filings check reports it
                if r["decision"] == FilingDecision.ACCEPTED and filing is not None and filing.agency_id == e.agency_id:
                    openings[e.seq] = filed_opening(e, filing)
                    yield openings[e.seq]
                    yield filed_receipt(e, filing)
            else:
                yield e

    def _refusal(self, e: DecodedEntry) -> str:
        """Why a correction did not take effect."""
        target = self.by_seq.get(e.record["target_seq"])
        if target is None or target.seq >= e.seq:
            return f"its target seq {e.record['target_seq']} is not an earlier entry"
        if target.agency_id != e.agency_id:
            return f"its target seq {target.seq} belongs to another agency ({code_text(target.agency_id)})"
        if int(target.kind) in UNVOIDABLE_KINDS:
            return (f"its target seq {target.seq} is a {target.kind.name.lower()} entry, which no correction can "
                    "void (a citizen's receipt, rating or dispute)")
        if unvoidable(int(target.kind), _action(target)):
            return (f"its target seq {target.seq} is the {CaseAction(target.record['action']).name.lower()} event of "
                    f"case 0x{target.record['case_id'].hex()}, which no correction can void (a case opened by mistake "
                    "is closed instead)")
        return f"its target seq {target.seq} was already voided by seq {self.voided.get(target.seq)}"

    def _fold(self, key: tuple[str, bytes], record: CaseRecord, state: _Fold) -> None:
        """Apply the case's events and feedback entries not folded yet, in seq order (``ledger.cases``)."""
        voided, not_applied = self.voided, self.not_applied
        progress = state.progress
        events = record.events[state.events:] if state.events else record.events
        if not state.tracked:  # most cases: their events alone, without the bookkeeping feedback needs
            for e in events:
                if e.seq in voided or e.seq in not_applied:
                    continue
                event = case_event(e)
                action = event.action
                before = progress.status if progress.opened else ""
                held = progress.hold_seconds
                if not progress.apply(event):
                    record.invalid.append((e, before))
                elif action == CaseAction.ON_HOLD:
                    record.holds.append((e, held))
            state.events = len(record.events)
            return
        # by seq, events and feedback apart: an accepted filing is both an event and a key binding at one seq
        items: dict[int, DecodedEntry] = {}
        feedback_items: dict[int, DecodedEntry] = {}
        recorded: list[Event] = []  # what the contract saw: voided events too, never a batched one of the case
        for e in events:
            if e.seq in not_applied:
                continue
            recorded.append(case_event(e))
            items[e.seq] = e
        fresh = record.feedback[state.feedback:]
        for e in fresh:
            feedback_items[e.seq] = e
        for item in merged(recorded, [feedback_item(e) for e in fresh]):
            tracked = state.contract
            if isinstance(item, Feedback):
                e = feedback_items[item.seq]
                self._contexts.setdefault(key, []).append(FeedbackContext(
                    e, progress.status if progress.opened else "", progress.receipt, state.receipts, tracked,
                    state.ratings,
                ))
                progress.take(item)
                kind = item.kind
                if kind == EntryKind.RECEIPT_ISSUED:
                    if e.kind != EntryKind.RECEIPT_CLAIMED:  # a claim moves the key of the receipt the case has
                        state.receipts += 1
                    state.contract = receipt_state.issued() if tracked is None else tracked  # the first one counts
                elif kind == EntryKind.CASE_RATED:
                    state.ratings += 1
                    if tracked is not None:
                        state.contract = receipt_state.after_rating(tracked)
                elif tracked is not None:
                    state.contract = receipt_state.after_dispute(tracked)
                continue
            e = items[item.seq]
            action = item.action
            if tracked is not None:
                state.contract = receipt_state.after_event(tracked, action, e.block_time or 0)
            if e.seq in voided:
                continue
            before = progress.status if progress.opened else ""
            held = progress.hold_seconds
            if action in ANSWERS:
                state.answering.append(e)
            if not progress.apply(item):
                record.invalid.append((e, before))
            elif action == CaseAction.ON_HOLD:
                record.holds.append((e, held))
        disputes = [e.seq for e in record.feedback if e.kind == EntryKind.CASE_DISPUTED]
        if disputes:
            by_seq = {a.seq: a for a in state.answering}
            found = dispute_answers(disputes, [Answer(a.seq, int(a.record["action"]), a.block_time or 0)
                                               for a in state.answering])
            self._answers[key] = {seq: None if a is None else by_seq[a.seq] for seq, a in found.items()}
        state.events, state.feedback = len(record.events), len(record.feedback)

    # -- the model

    def model(self) -> LedgerModel:
        """The model of every entry taken so far. It shares this builder's containers (a later :meth:`extend`
        changes them): take it again after extending."""
        cases = self.cases
        # Cases with feedback in the order the whole fold meets them: cases by their first event, then the cases
        # that have feedback but no event, by their first feedback entry.
        contexts_of = self._contexts
        order = [*(key for key in cases if key in contexts_of), *(key for key in self._orphans if key in contexts_of)]
        contexts = {key: contexts_of[key] for key in order}
        answers: dict[int, DecodedEntry | None] = {}
        for key in order:
            found = self._answers.get(key)
            if found:
                answers.update(found)
        return LedgerModel(
            entries=self.unique, by_seq=self.by_seq, running=self.running, head=self.head, voided=self.voided,
            refused_corrections=self.refused, agencies=self.agencies, commitments=self.commitments,
            calendars=self.calendars, cases=cases, feedback=contexts, answers=answers, logged=self.logged,
            anchors=self.anchors, contents=self.contents, unread=self.unread, not_applied=self.not_applied,
            filings=self.filings, filing_answers=self.filing_answers, openings=self.openings,
        )




def case_event(e: DecodedEntry) -> Event:
    """A case event entry as ``ledger.cases`` folds it (an Opened with its intake fields as the index holds them)."""
    r = e.record
    action = int(r["action"])
    if action == CaseAction.OPENED:
        return Event(e.seq, action, r["occurred_at"], code_text(r["commitment_id"]), code_text(r["district"]),
                     r["channel"])
    return Event(e.seq, action, r["occurred_at"])


def _action(e: DecodedEntry) -> int | None:
    """A case event's action, None for any other entry (what ``ledger.cases.unvoidable`` reads besides the kind)."""
    return int(e.record["action"]) if e.kind == EntryKind.CASE_EVENT else None


def batched_entries(anchor: DecodedEntry, content: BatchContent) -> list[DecodedEntry]:
    """The case events of a batch as entries: kind CASE_EVENT, the anchor's agency and signer, their own record hash
    and entry hash (``entry_hash(seq, CASE_EVENT, agency, signer, record_hash)``), the anchoring log as their
    proof. Entry ``anchor.seq + i`` is the file's event ``i``."""
    out = []
    where = (anchor.block_number, anchor.block_hash, anchor.block_time, anchor.tx_hash, anchor.log_index)
    kind = EntryKind.CASE_EVENT
    entries = entry_hashes_in_order(anchor.seq, kind, anchor.agency_id, anchor.actor, content.record_hashes)
    for i, ((case_id, action, at, commitment, district, channel, details), record_hash, entry) in enumerate(
        zip(content.events, content.record_hashes, entries, strict=True)
    ):
        seq = anchor.seq + i
        record = {"case_id": case_id, "action": action, "occurred_at": at, "commitment_id": commitment,
                  "district": district, "channel": channel, "details_hash": details}
        out.append(DecodedEntry(seq, kind, anchor.agency_id, anchor.actor, record_hash, entry, *where, record))
    return out


def feedback_item(e: DecodedEntry) -> Feedback:
    """What the case fold reads of a receipt, rating or dispute entry, or of a key binding (an accepted filing's, a
    claim's: read as a receipt of the key they bind, ``ledger.cases.Feedback``)."""
    r = e.record
    if e.kind in BINDING_KINDS:
        return Feedback(e.seq, int(EntryKind.RECEIPT_ISSUED), r["receipt"], e.block_time or 0)
    return Feedback(e.seq, int(e.kind), e.actor, e.block_time or 0, r.get("score", 0))


def filed_opening(answer: DecodedEntry, filing: DecodedEntry) -> DecodedEntry:
    """The Opened case event an accepted filing stands for: at the answer's seq and place, the case the answer names,
    occurred at the *filing's* block time (the clock starts at filing, whatever the agency claims), with the filing's
    commitment, district and channel and the answer's reason hash as details. Its record and entry hashes are the
    answer's (what the ledger folded)."""
    f, r = filing.record, answer.record
    record = {"case_id": r["case_id"], "action": CaseAction.OPENED, "occurred_at": filing.block_time or 0,
              "commitment_id": f["commitment_id"], "district": f["district"], "channel": f["channel"],
              "details_hash": r["reason_hash"]}
    return dataclasses.replace(answer, kind=EntryKind.CASE_EVENT, record=record)


def filed_receipt(answer: DecodedEntry, filing: DecodedEntry) -> DecodedEntry:
    """The key binding of an accepted filing, in its case's feedback: the answer, with the filer's key as its
    ``receipt`` and the filing's block time as its ``occurred_at``."""
    record = {**answer.record, "receipt": filing.record["receipt"], "occurred_at": filing.block_time or 0}
    return dataclasses.replace(answer, record=record)


@overload
def hex0x(value: bytes) -> str: ...
@overload
def hex0x(value: None) -> None: ...
@overload
def hex0x(value: bytes | None) -> str | None: ...
def hex0x(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def entry_pointer(e: DecodedEntry) -> dict[str, Any]:
    """The fields of a :class:`~ledger.audit.model.Finding` that point at an entry."""
    return {"seq": e.seq, "tx_hash": "0x" + e.tx_hash.hex(), "log_index": e.log_index, "block_number": e.block_number}
