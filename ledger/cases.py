"""Case state: THE one definition of how a case's events fold into its state. Pure functions, no database.

The indexer fills the ``cases`` table with it, and auditors import it to recompute every row from the chain alone.

Input
    A case is identified by (agency, case id). Its events are its **non-voided** case-event entries, in ``seq``
    order (ledger order, not claimed-time order).

Voiding (:func:`voided_entries`)
    Corrections take effect in seq order. A correction is applied when its target belongs to the same agency as
    the correction, has not been voided already, and is not a receipt, rating or dispute (a citizen's rating or
    dispute carries the rated agency's id, but is not the agency's to void; nor is the receipt that lets the
    citizen make one); the target is then voided (by that correction). Voiding is final: voiding a correction does
    not restore what that correction voided.

Status machine
    ``opened → (accepted | on_hold | resumed | escalated)* → fulfilled | rejected | withdrawn [→ reopened → …]``, with
    statuses ``open``, ``on_hold``, ``fulfilled``, ``rejected``, ``withdrawn``. Valid transitions:

    ============  =====================================================================
    from          valid actions (and the status they lead to)
    ============  =====================================================================
    (no case)     opened → open
    open          accepted → open, escalated → open (sets ``escalated``), on_hold → on_hold,
                  fulfilled / rejected / withdrawn → that status (closed)
    on_hold       resumed → open, rejected / withdrawn → that status (closed)
    closed        reopened → open (``closed_at`` cleared, ``reopened`` counts it)
    any           dispute_rejected → unchanged, valid only while a dispute awaits an answer
    any           rectified → unchanged, valid once, after a bad rating (see "Rectification" below)
    ============  =====================================================================

    Opened is valid only as the first event: a later Opened is invalid (its intake fields are ignored). Every
    event that is not a valid transition — including events before the case's Opened — counts in
    ``invalid_transitions`` and is otherwise ignored. A case whose events contain no Opened has no state (it is not a
    case of any commitment): :func:`fold_case` returns None. ``last_seq`` is the seq of the case's last event,
    valid or not.

Response (``responded_at``, ``response_due``)
    ``responded_at`` is the claimed time of the case's first valid Accepted, OnHold, Fulfilled or Rejected event: the
    agency took the case up, asked the citizen for something, or answered it outright (an Escalated passes it on and
    a Withdrawn is the citizen's, so neither is a response). ``response_due`` is when that response is due: the
    same time limit as a filing's answer, :data:`ledger.filings.ANSWER_WINDOW_WORKING_DAYS` working days after the
    opening (``ledger.filings.answer_due``; Monday to Friday in a year without a published calendar, so a missing
    calendar never removes the limit).

Rectification of a bad rating (差评整改; ``rectified_at``, ``rectification_due``)
    A rating of :data:`BAD_RATING_MAX` or less is a bad rating, and the agency answers it with a Rectified event (its
    ``details_hash`` is the rectification report). A Rectified event is valid once, after a bad rating of the case
    (in seq order); any other Rectified is an invalid transition. It changes no status. ``rectified_at`` is its
    claimed time; ``rectification_due`` is the end of the :data:`RECTIFICATION_WORKING_DAYS`-th working day after the
    rating's block time (Monday to Friday in a year without a published calendar), set for a bad rating only.
    ``disputed_at`` is the block time of the case's first dispute.

Receipts, ratings and disputes (:class:`Feedback`)
    A case's ReceiptIssued, CaseRated and CaseDisputed entries fold in seq order with its events (none of them can
    be voided: see :func:`voided_entries`). ``receipt`` is the address of the case's first receipt; ``rating`` the
    score of its first rating and ``rated_at`` that entry's block time (the contract allows one rating per case);
    ``disputes`` counts its disputes. ``dispute_open`` is set by a dispute and cleared by the next Reopened or
    DisputeRejected event (valid or not): that event is the dispute's answer (:func:`dispute_answers`). These do
    not change the status: the contract enforces when a rating or dispute may be made, by the state it tracks of a
    case with a receipt (``ledger.receipt_state``, another machine than this fold), and the auditor re-checks it.

Batched events of receipt cases (:func:`batched_event_applies`)
    A case event inside a Merkle-anchored batch never applies to a case whose id carries ``RECEIPT_CASE_FLAG``: the
    contract tracks such a case's state (its ratings and disputes depend on it) and never sees inside a batch, so a
    fulfilment hidden in a batch would show the case closed while the citizen could not rate or dispute it. Such an
    event stays an entry (it is on the ledger) but is left out of the case's events, like a voided one; the API
    says why and the auditor reports it against the agency.

Reopening
    A reopened case is open again: ``closed_at`` is cleared, and the next closing event closes it anew. The outcome
    (``fulfil_seconds``, ``on_time``) is that of the **final** fulfilment: the time the case spent wrongly marked
    fulfilled counts against the deadline, as it would have had the agency never closed it. Hold time keeps adding
    up across the reopening. ``reopened`` counts valid Reopened events (an invalid one, of a case not closed, is an
    invalid transition like any other).

Times
    Every time the fold takes from an event is the agency's claimed ``occurred_at``, except that no event of an
    opened case is taken to happen before the case's previous one (in seq order, valid or not): a claim earlier than
    that is taken as that time, and ``last_at`` holds it. So a hold cannot be claimed to begin before the opening or
    before the previous hold ended (stacked holds would add up to more hold time than the case ever had), and a
    fulfilment claimed before the opening takes no negative time. (A claim may still be earlier than when it is
    recorded: the recording latency shows it, and the auditor reports one more than a day late.)

Hold time (by the times above)
    ``hold_seconds`` is the sum of the on_hold → resumed intervals; a hold still running when the case closes
    (rejected or withdrawn while on hold) counts up to the close. While a case is on hold, ``on_hold_since`` is when
    the hold began and the running hold is *not* in ``hold_seconds``. An interval whose end is claimed before its
    start counts as zero, never negative.

Commitment version
    The version in force is the latest version of the case's commitment (same agency) whose entry ``seq`` is below
    the Opened entry's seq. Amending a commitment never changes the deadline of cases already open.

Due time (``due_at``, unix seconds)
    * calendar hours: ``opened_at + deadline * 3600 + hold_seconds``;
    * working days: the end (24:00 local time, see :data:`ledger.workdays.LOCAL_UTC_OFFSET_SECONDS`) of the
      ``deadline``-th working day after the local day the case opened (the opening day itself never counts), then
      ``+ hold_seconds``. A working day is Monday–Friday not among the year's holidays, or a weekend day among its
      workdays, by the latest version of the jurisdiction's calendar for that year; Monday–Friday in a year whose
      calendar is not published (so an agency cannot take its cases out of the deadline figures by publishing none:
      publishing one later moves the due times of that year's cases). ``due_at`` is None only when the case has no
      commitment version before it (which the contract makes impossible).

Outcome
    For fulfilled cases: ``fulfil_seconds = closed_at - opened_at - hold_seconds`` and
    ``on_time = closed_at <= due_at`` (None when ``due_at`` is None), with ``closed_at`` the final fulfilment. Both
    are None for other statuses (a reopened case has none until it is fulfilled again).

Windows (the contract's constants, mirrored: ``tests/ledger/test_cases.py`` checks them against it)
    :data:`DISPUTE_WINDOW`: a fulfilment may be disputed until this long after its closing entry's block time;
    :data:`DISPUTE_RESPONSE_WINDOW`: the agency must answer a dispute within this long of the dispute's block time
    (not enforced on chain; the metrics count and the auditor flags disputes left unanswered past it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ledger.filings import answer_due
from ledger.records import RECEIPT_CASE_FLAG, CaseAction, DeadlineUnit, EntryKind
from ledger.workdays import YearCalendar, working_days_due_always

DAY = 86_400
#: ``ICivicLedger.DISPUTE_WINDOW``: how long after a fulfilment (its entry's block time) it may be disputed
DISPUTE_WINDOW = 30 * DAY
#: ``ICivicLedger.DISPUTE_RESPONSE_WINDOW``: how long after a dispute (its entry's block time) the agency has to
#: answer it with a Reopened or DisputeRejected event
DISPUTE_RESPONSE_WINDOW = 10 * DAY
#: a rating of this score or less is a bad rating (差评: dissatisfied or very dissatisfied), which the agency must
#: rectify
BAD_RATING_MAX = 2
#: working days after a bad rating within which its rectification is due (政务服务"好差评": 15 working days)
RECTIFICATION_WORKING_DAYS = 15

OPEN = "open"
ON_HOLD = "on_hold"
FULFILLED = "fulfilled"
REJECTED = "rejected"
WITHDRAWN = "withdrawn"
STATUSES = (OPEN, ON_HOLD, FULFILLED, REJECTED, WITHDRAWN)
CLOSED = frozenset({FULFILLED, REJECTED, WITHDRAWN})

#: the case events that close an open case, and the status each leads to
CLOSING_ACTIONS: dict[int, str] = {
    CaseAction.FULFILLED: FULFILLED,
    CaseAction.REJECTED: REJECTED,
    CaseAction.WITHDRAWN: WITHDRAWN,
}
_CLOSING_FROM_HOLD: dict[int, str] = {CaseAction.REJECTED: REJECTED, CaseAction.WITHDRAWN: WITHDRAWN}
_REOPENED = int(CaseAction.REOPENED)
_DISPUTE_REJECTED = int(CaseAction.DISPUTE_REJECTED)
_RECTIFIED = int(CaseAction.RECTIFIED)
#: the case events that are the agency's response to a case (see "Response" above)
RESPONSES = frozenset({int(CaseAction.ACCEPTED), int(CaseAction.ON_HOLD), int(CaseAction.FULFILLED),
                       int(CaseAction.REJECTED)})
#: the case events that answer a dispute
ANSWERS = frozenset({_REOPENED, _DISPUTE_REJECTED})
#: entries a correction cannot void: a citizen's rating or dispute, and the receipt that lets them make one
#: entries no correction voids: what a citizen signed or holds (a receipt, a rating, a dispute, a filing, a claim of a
#: receipt), and an agency's answer to a filing, whose acceptance is the opening of the case bound to it — voiding it
#: would take a late case out of the figures while the citizen's filing stands
UNVOIDABLE_KINDS = frozenset({
    int(EntryKind.RECEIPT_ISSUED), int(EntryKind.CASE_RATED), int(EntryKind.CASE_DISPUTED),
    int(EntryKind.FILING_RECORDED), int(EntryKind.FILING_ANSWERED), int(EntryKind.RECEIPT_CLAIMED),
})
#: case events no correction voids: an agency's Opened, which starts the case's clock — voiding it would take a case
#: left overdue out of every figure, and an Opened written again would start a fresh deadline. A case opened by mistake
#: is closed instead (withdrawn or rejected), which counts against the deadline if it comes after it
UNVOIDABLE_ACTIONS = frozenset({int(CaseAction.OPENED)})
_CASE_EVENT = int(EntryKind.CASE_EVENT)
_RECEIPT_ISSUED = int(EntryKind.RECEIPT_ISSUED)
_CASE_RATED = int(EntryKind.CASE_RATED)
_CASE_DISPUTED = int(EntryKind.CASE_DISPUTED)


class CaseEventLike(Protocol):
    """What :func:`fold_case` reads from an event; :class:`Event` is one, an auditor's own objects may be others."""

    @property
    def seq(self) -> int: ...
    @property
    def action(self) -> int: ...
    @property
    def occurred_at(self) -> int: ...
    @property
    def commitment_id(self) -> Any: ...
    @property
    def district(self) -> Any: ...
    @property
    def channel(self) -> int: ...


class Event(NamedTuple):
    """One non-voided case event. Intake fields (commitment, district, channel) are read from Opened only; their
    type is the caller's (the index uses decoded code text, an auditor may use raw bytes32). (A named tuple, not a
    dataclass: the indexer makes one per entry, and tuples are made several times faster.)"""

    seq: int
    action: int
    occurred_at: int
    commitment_id: Any = ""
    district: Any = ""
    channel: int = 0


class Feedback(NamedTuple):
    """A ReceiptIssued, CaseRated or CaseDisputed entry of a case: what the fold reads of it. An accepted filing and a
    receipt claim bind a key as a ReceiptIssued does, and come as RECEIPT_ISSUED items (at their own seq)."""

    seq: int
    #: ``ledger.records.EntryKind`` (RECEIPT_ISSUED, CASE_RATED or CASE_DISPUTED)
    kind: int
    #: the receipt key's address: the one issued, or the one that signed the rating or dispute
    receipt: str
    #: the entry's block time
    block_time: int
    #: CaseRated: the score 1-5 (0 otherwise)
    score: int = 0


class CommitmentVersion(NamedTuple):
    """One published version of the case's commitment: what a due time needs from it."""

    version: int
    seq: int
    deadline: int
    deadline_unit: int


class CaseState(NamedTuple):
    """A case's state: exactly the ``cases`` table's columns other than its key (agency_id, case_id), in order."""

    commitment_id: Any
    commitment_version: int
    district: Any
    channel: int
    opened_seq: int
    opened_at: int
    status: str
    closed_at: int | None
    hold_seconds: int
    on_hold_since: int | None
    due_at: int | None
    fulfil_seconds: int | None
    on_time: bool | None
    escalated: bool
    invalid_transitions: int
    last_seq: int
    receipt: str | None = None
    rating: int | None = None
    rated_at: int | None = None
    disputes: int = 0
    reopened: int = 0
    dispute_open: bool = False
    responded_at: int | None = None
    response_due: int | None = None
    disputed_at: int | None = None
    rectified_at: int | None = None
    rectification_due: int | None = None
    last_at: int = 0

    def row(self) -> dict[str, Any]:
        """The state as a ``cases`` row (without the key columns)."""
        return self._asdict()


#: CaseState's fields, in order (= the ``cases`` columns after the key)
CASE_STATE_FIELDS: tuple[str, ...] = CaseState._fields


@dataclass(slots=True)
class CaseProgress:
    """The fold's accumulator: everything the events determine, before the commitment and calendars are applied.

    ``fold_case`` is ``CaseProgress()``, then :meth:`apply` per event, then :meth:`state`. The indexer resumes from
    a stored row with :meth:`from_state` instead of reading every event again; that gives the same result because
    a :class:`CaseState` holds the whole accumulator (for a case that has been opened)."""

    opened: bool = False
    commitment_id: Any = None
    district: Any = None
    channel: int = 0
    opened_seq: int = -1
    opened_at: int = 0
    status: str = ""
    closed_at: int | None = None
    hold_seconds: int = 0
    on_hold_since: int | None = None
    escalated: bool = False
    invalid_transitions: int = 0
    last_seq: int = -1
    receipt: str | None = None
    rating: int | None = None
    rated_at: int | None = None
    disputes: int = 0
    reopened: int = 0
    dispute_open: bool = False
    responded_at: int | None = None
    disputed_at: int | None = None
    rectified_at: int | None = None
    last_at: int = 0

    @classmethod
    def from_state(cls, state: CaseState) -> CaseProgress:
        return cls(
            opened=True,
            commitment_id=state.commitment_id,
            district=state.district,
            channel=state.channel,
            opened_seq=state.opened_seq,
            opened_at=state.opened_at,
            status=state.status,
            closed_at=state.closed_at,
            hold_seconds=state.hold_seconds,
            on_hold_since=state.on_hold_since,
            escalated=state.escalated,
            invalid_transitions=state.invalid_transitions,
            last_seq=state.last_seq,
            receipt=state.receipt,
            rating=state.rating,
            rated_at=state.rated_at,
            disputes=state.disputes,
            reopened=state.reopened,
            dispute_open=state.dispute_open,
            responded_at=state.responded_at,
            disputed_at=state.disputed_at,
            rectified_at=state.rectified_at,
            last_at=state.last_at,
        )

    def apply(self, event: CaseEventLike) -> bool:
        """Advance by one event (the case's next non-voided event in seq order). Returns whether it was valid."""
        self.last_seq = event.seq
        action, at = event.action, event.occurred_at
        if self.opened:
            # no event is taken to happen before the case's previous one (see "Times")
            at = self.last_at = max(at, self.last_at)
        if action == _REOPENED or action == _DISPUTE_REJECTED:
            return self._answer(action)
        if not self.opened:
            if action == CaseAction.OPENED:
                self.opened = True
                self.commitment_id, self.district, self.channel = event.commitment_id, event.district, event.channel
                self.opened_seq, self.opened_at, self.status = event.seq, at, OPEN
                self.last_at = at
                return True
            self.invalid_transitions += 1
            return False
        if action == _RECTIFIED:
            return self._rectify(at)
        if not self._move(action, at):
            self.invalid_transitions += 1
            return False
        if action in RESPONSES and self.responded_at is None:
            self.responded_at = at
        return True

    def _move(self, action: int, at: int) -> bool:
        """A status transition of an opened case (any action but Opened, Reopened, DisputeRejected and Rectified):
        made, and True, when it is valid from the status the case is in."""
        status = self.status
        if status == OPEN:
            if action == CaseAction.ACCEPTED:
                return True
            if action == CaseAction.ESCALATED:
                self.escalated = True
                return True
            if action == CaseAction.ON_HOLD:
                self.status, self.on_hold_since = ON_HOLD, at
                return True
            closing = CLOSING_ACTIONS.get(action)
            if closing is not None:
                self.status, self.closed_at = closing, at
                return True
        elif status == ON_HOLD:
            if action == CaseAction.RESUMED:
                self._end_hold(at)
                self.status = OPEN
                return True
            closing = _CLOSING_FROM_HOLD.get(action)
            if closing is not None:
                self._end_hold(at)
                self.status, self.closed_at = closing, at
                return True
        return False

    def _rectify(self, at: int) -> bool:
        """Rectified: valid once, after a bad rating."""
        if self.rating is not None and self.rating <= BAD_RATING_MAX and self.rectified_at is None:
            self.rectified_at = at
            return True
        self.invalid_transitions += 1
        return False

    def _answer(self, action: int) -> bool:
        """Reopened or DisputeRejected: either answers the dispute awaiting an answer, if any."""
        disputed, self.dispute_open = self.dispute_open, False
        if self.opened:
            if action == _REOPENED:
                if self.status in CLOSED:
                    self.status, self.closed_at = OPEN, None
                    self.reopened += 1
                    return True
            elif disputed:
                return True
        self.invalid_transitions += 1
        return False

    def take(self, item: Feedback) -> None:
        """Advance by one receipt, rating or dispute entry of the case (in seq order among its events). A receipt
        item binds the case to a key: the agency's ReceiptIssued, an accepted filing's (the filer's key), or a
        ReceiptClaimed entry's (the holder's own key) — the contract binds one key to a case, and only a claim moves
        it to another, so a later receipt item replaces the key."""
        kind = item.kind
        if kind == _RECEIPT_ISSUED:
            self.receipt = item.receipt
        elif kind == _CASE_RATED:
            if self.rating is None:
                self.rating, self.rated_at = item.score, item.block_time
        elif kind == _CASE_DISPUTED:
            self.disputes += 1
            self.dispute_open = True
            if self.disputed_at is None:
                self.disputed_at = item.block_time
        else:
            raise ValueError(f"entry kind {kind} is not a receipt, rating or dispute")

    def advance(self, events: Sequence[CaseEventLike], feedback: Sequence[Feedback] = ()) -> None:
        """Apply the case's next events and feedback entries (each list in seq order), merged in seq order."""
        if not feedback:
            for event in events:
                self.apply(event)
            return
        for item in merged(events, feedback):
            if isinstance(item, Feedback):
                self.take(item)
            else:
                self.apply(item)

    def _end_hold(self, at: int) -> None:
        assert self.on_hold_since is not None
        self.hold_seconds += max(0, at - self.on_hold_since)
        self.on_hold_since = None

    def state(
        self, commitment_versions: Sequence[CommitmentVersion], calendars: Mapping[int, YearCalendar]
    ) -> CaseState | None:
        """The case's state under its commitment's versions (any order) and its jurisdiction's calendars (year →
        latest version); None when the case was never opened."""
        if not self.opened:
            return None
        version = commitment_in_force(commitment_versions, self.opened_seq)
        due_at, on_time, response_due, rectification_due = deadlines(
            version, calendars, opened_at=self.opened_at, hold_seconds=self.hold_seconds, status=self.status,
            closed_at=self.closed_at, rating=self.rating, rated_at=self.rated_at,
        )
        fulfil_seconds = None
        if self.status == FULFILLED:
            assert self.closed_at is not None
            fulfil_seconds = self.closed_at - self.opened_at - self.hold_seconds
        return CaseState(
            commitment_id=self.commitment_id,
            commitment_version=0 if version is None else version.version,
            district=self.district,
            channel=self.channel,
            opened_seq=self.opened_seq,
            opened_at=self.opened_at,
            status=self.status,
            closed_at=self.closed_at,
            hold_seconds=self.hold_seconds,
            on_hold_since=self.on_hold_since,
            due_at=due_at,
            fulfil_seconds=fulfil_seconds,
            on_time=on_time,
            escalated=self.escalated,
            invalid_transitions=self.invalid_transitions,
            last_seq=self.last_seq,
            receipt=self.receipt,
            rating=self.rating,
            rated_at=self.rated_at,
            disputes=self.disputes,
            reopened=self.reopened,
            dispute_open=self.dispute_open,
            responded_at=self.responded_at,
            response_due=response_due,
            disputed_at=self.disputed_at,
            rectified_at=self.rectified_at,
            rectification_due=rectification_due,
            last_at=self.last_at,
        )


class Deadlines(NamedTuple):
    """What a case's commitment version and its jurisdiction's calendars decide of it (the rest is its events')."""

    due_at: int | None
    on_time: bool | None
    response_due: int | None
    rectification_due: int | None


def deadlines(
    version: CommitmentVersion | None,
    calendars: Mapping[int, YearCalendar],
    *,
    opened_at: int,
    hold_seconds: int,
    status: str,
    closed_at: int | None,
    rating: int | None,
    rated_at: int | None,
) -> Deadlines:
    """The due time, the outcome against it (fulfilled cases), the response's and a bad rating's rectification's due
    times (see the module docstring): the one place these are worked out, for a fold and for a calendar that changed."""
    due_at = None if version is None else due_time(opened_at, hold_seconds, version, calendars)
    on_time = None
    if status == FULFILLED and due_at is not None:
        assert closed_at is not None
        on_time = closed_at <= due_at
    rectification_due = None
    if rating is not None and rating <= BAD_RATING_MAX and rated_at is not None:
        rectification_due = working_days_due_always(rated_at, RECTIFICATION_WORKING_DAYS, calendars)
    return Deadlines(due_at, on_time, answer_due(opened_at, calendars), rectification_due)


def merged(events: Sequence[CaseEventLike], feedback: Sequence[Feedback]) -> Iterator[CaseEventLike | Feedback]:
    """A case's events and feedback entries (each in seq order) in one seq order."""
    i = 0
    n = len(events)
    for item in feedback:
        while i < n and events[i].seq < item.seq:
            yield events[i]
            i += 1
        yield item
    while i < n:
        yield events[i]
        i += 1


def commitment_in_force(versions: Iterable[CommitmentVersion], opened_seq: int) -> CommitmentVersion | None:
    """The latest version recorded before the Opened entry (by seq), or None."""
    best: CommitmentVersion | None = None
    for version in versions:
        if version.seq < opened_seq and (best is None or version.seq > best.seq):
            best = version
    return best


def due_time(
    opened_at: int, hold_seconds: int, version: CommitmentVersion, calendars: Mapping[int, YearCalendar]
) -> int | None:
    """When a case is due under `version`, hold time excluded (see the module docstring)."""
    if version.deadline_unit == DeadlineUnit.CALENDAR_HOURS:
        return opened_at + version.deadline * 3600 + hold_seconds
    if version.deadline_unit == DeadlineUnit.WORKING_DAYS:
        return working_days_due_always(opened_at, version.deadline, calendars) + hold_seconds
    return None


def fold_case(
    events: Iterable[CaseEventLike],
    commitment_versions: Sequence[CommitmentVersion],
    calendars: Mapping[int, YearCalendar],
    feedback: Sequence[Feedback] = (),
) -> CaseState | None:
    """Fold a case's non-voided events (in seq order) and its receipt, rating and dispute entries (`feedback`, in
    seq order) into its state; None if none of the events is an Opened.

    `commitment_versions` are the versions of the commitment the case's Opened event names (the fold picks the one
    in force); `calendars` maps a year to the latest calendar of the agency's jurisdiction for it."""
    progress = CaseProgress()
    progress.advance(list(events), feedback)
    return progress.state(commitment_versions, calendars)


class Answer(NamedTuple):
    """The agency's answer to a dispute: a Reopened or DisputeRejected event of the case."""

    seq: int
    action: int
    block_time: int


def dispute_answers(disputes: Iterable[int], answers: Iterable[Answer]) -> dict[int, Answer | None]:
    """Each dispute's answer: the case's first non-voided Reopened or DisputeRejected event after it (by seq), or
    None. `disputes` are the seqs of one case's disputes; `answers` its non-voided Reopened and DisputeRejected
    events (any order). On chain an answer clears the dispute, so it answers exactly one; should one be voided, the
    dispute it answered waits for the next."""
    ordered = sorted(answers)
    out: dict[int, Answer | None] = {}
    for dispute in disputes:
        out[dispute] = next((a for a in ordered if a.seq > dispute), None)
    return out


def batched_event_applies(case_id: bytes) -> bool:
    """Whether a case event anchored in a Merkle batch applies to its case: only when the case has no receipt
    (its id lacks ``RECEIPT_CASE_FLAG``). See the module docstring."""
    return not case_id[0] & RECEIPT_CASE_FLAG


#: why a batched event of a receipt case is not applied (shown by the API, reported by the auditor)
BATCHED_RECEIPT_CASE_EVENT = (
    "a case with a receipt is tracked by the contract, which never sees inside a batch: its events must be "
    "recorded one by one, so this batched event is not applied to the case"
)


def unvoidable(kind: int, action: int | None) -> bool:
    """Can no correction void an entry of ``kind`` (an ``EntryKind``; ``action``: a case event's ``CaseAction``, None
    for other entries)? What a citizen signed or holds (:data:`UNVOIDABLE_KINDS`) and a case's opening
    (:data:`UNVOIDABLE_ACTIONS`)."""
    return kind in UNVOIDABLE_KINDS or (kind == _CASE_EVENT and action in UNVOIDABLE_ACTIONS)


def correction_applies(agency: Any, target: tuple[Any, int, int | None] | None, target_voided: bool) -> bool:
    """Does a correction by ``agency`` void its target? ``target`` is the target entry's ``(agency_id, kind,
    action)`` (``action`` a case event's, else None), None when the ledger has no such entry before the correction;
    ``target_voided``: a correction voided it already. Applied when the target is the same agency's, not voided
    already, and not :func:`unvoidable` (an agency cannot void the rating, dispute or filing a citizen signed, which
    carry the agency's id, nor the receipt they hold, nor its own answer to a filing, nor a case's opening). The one
    rule: :func:`voided_entries` folds it over a log, the indexer applies it entry by entry."""
    if target is None or target_voided:
        return False
    target_agency, kind, action = target
    return not unvoidable(kind, action) and target_agency == agency


def voided_entries(entries: Iterable[tuple[int, Any, int | None, int, int | None]]) -> dict[int, int]:
    """Which entries corrections void: target seq → seq of the correction that voided it.

    `entries` are ``(seq, agency_id, target_seq, kind, action)`` for every entry in seq order, with ``target_seq``
    None for entries that are not corrections (the agency ids only need to compare equal, in any representation;
    ``kind`` is the ``EntryKind``, ``action`` a case event's ``CaseAction``, None for other entries); each correction
    is judged by :func:`correction_applies`, seeing the voids before it. A correction whose seq is among the values
    was applied; the others were not."""
    seen: dict[int, tuple[Any, int, int | None]] = {}
    voided: dict[int, int] = {}
    for seq, agency, target, kind, action in entries:
        seen[seq] = (agency, kind, action)
        if target is not None and correction_applies(agency, seen.get(target), target in voided):
            voided[target] = seq
    return voided


