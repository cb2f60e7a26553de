"""Case state: THE one definition of how a case's events fold into its state. Pure functions, no database.

The indexer fills the ``cases`` table with it, and auditors import it to recompute every row from the chain alone.

Input
    A case is identified by (agency, case id). Its events are its **non-voided** case-event entries, in ``seq``
    order (ledger order, not claimed-time order).

Voiding (:func:`voided_entries`)
    Corrections take effect in seq order. A correction is applied when its target belongs to the same agency as
    the correction and has not been voided already; the target is then voided (by that correction). Voiding is
    final: voiding a correction does not restore what that correction voided.

Status machine
    ``opened → (accepted | on_hold | resumed | escalated)* → fulfilled | rejected | withdrawn``, with statuses
    ``open``, ``on_hold``, ``fulfilled``, ``rejected``, ``withdrawn``. Valid transitions:

    ============  =====================================================================
    from          valid actions (and the status they lead to)
    ============  =====================================================================
    (no case)     opened → open
    open          accepted → open, escalated → open (sets ``escalated``), on_hold → on_hold,
                  fulfilled / rejected / withdrawn → that status (closed)
    on_hold       resumed → open, rejected / withdrawn → that status (closed)
    closed        none: fulfilled, rejected and withdrawn are terminal
    ============  =====================================================================

    Opened is valid only as the first event: a later Opened is invalid (its intake fields are ignored). Every
    event that is not a valid transition — including events before the case's Opened — counts in
    ``invalid_transitions`` and is otherwise ignored. A case whose events contain no Opened has no state (it is not a
    case of any commitment): :func:`fold_case` returns None. ``last_seq`` is the seq of the case's last event,
    valid or not.

Hold time (by the agency-claimed ``occurred_at``)
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
      workdays, by the latest version of the jurisdiction's calendar for that year. ``due_at`` is None when a year
      whose days must be counted (after the opening day, up to the due day) has no published calendar, or when the
      case has no commitment version before it (which the contract makes impossible).

Outcome
    For fulfilled cases: ``fulfil_seconds = closed_at - opened_at - hold_seconds`` and
    ``on_time = closed_at <= due_at`` (None when ``due_at`` is None). Both are None for other statuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ledger.records import CaseAction, DeadlineUnit
from ledger.workdays import YearCalendar, working_days_due

OPEN = "open"
ON_HOLD = "on_hold"
FULFILLED = "fulfilled"
REJECTED = "rejected"
WITHDRAWN = "withdrawn"
STATUSES = (OPEN, ON_HOLD, FULFILLED, REJECTED, WITHDRAWN)
CLOSED = frozenset({FULFILLED, REJECTED, WITHDRAWN})

_CLOSING: dict[int, str] = {
    CaseAction.FULFILLED: FULFILLED,
    CaseAction.REJECTED: REJECTED,
    CaseAction.WITHDRAWN: WITHDRAWN,
}
_CLOSING_FROM_HOLD: dict[int, str] = {CaseAction.REJECTED: REJECTED, CaseAction.WITHDRAWN: WITHDRAWN}


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
        )

    def apply(self, event: CaseEventLike) -> bool:
        """Advance by one event (the case's next non-voided event in seq order). Returns whether it was valid."""
        self.last_seq = event.seq
        action, at = event.action, event.occurred_at
        if not self.opened:
            if action == CaseAction.OPENED:
                self.opened = True
                self.commitment_id, self.district, self.channel = event.commitment_id, event.district, event.channel
                self.opened_seq, self.opened_at, self.status = event.seq, at, OPEN
                return True
            self.invalid_transitions += 1
            return False
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
            closing = _CLOSING.get(action)
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
        self.invalid_transitions += 1
        return False

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
        due_at = None if version is None else due_time(self.opened_at, self.hold_seconds, version, calendars)
        fulfil_seconds = on_time = None
        if self.status == FULFILLED:
            assert self.closed_at is not None
            fulfil_seconds = self.closed_at - self.opened_at - self.hold_seconds
            on_time = None if due_at is None else self.closed_at <= due_at
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
        )


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
        end = working_days_due(opened_at, version.deadline, calendars)
        return None if end is None else end + hold_seconds
    return None


def fold_case(
    events: Iterable[CaseEventLike],
    commitment_versions: Sequence[CommitmentVersion],
    calendars: Mapping[int, YearCalendar],
) -> CaseState | None:
    """Fold a case's non-voided events (in seq order) into its state; None if none of them is an Opened.

    `commitment_versions` are the versions of the commitment the case's Opened event names (the fold picks the one
    in force); `calendars` maps a year to the latest calendar of the agency's jurisdiction for it."""
    progress = CaseProgress()
    for event in events:
        progress.apply(event)
    return progress.state(commitment_versions, calendars)


def voided_entries(entries: Iterable[tuple[int, Any, int | None]]) -> dict[int, int]:
    """Which entries corrections void: target seq → seq of the correction that voided it.

    `entries` are ``(seq, agency_id, target_seq)`` for every entry in seq order, with ``target_seq`` None for
    entries that are not corrections (the agency ids only need to compare equal, in any representation). A
    correction whose seq is among the values was applied; the others were not."""
    agency_of: dict[int, Any] = {}
    voided: dict[int, int] = {}
    for seq, agency, target in entries:
        agency_of[seq] = agency
        if target is not None and agency_of.get(target, _NOBODY) == agency and target not in voided:
            voided[target] = seq
    return voided


_NOBODY = object()
