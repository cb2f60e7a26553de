"""Case state folding (ledger.cases): the status machine, hold time, commitment version, due time and outcome."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.cases import (
    CLOSED,
    FULFILLED,
    ON_HOLD,
    OPEN,
    REJECTED,
    STATUSES,
    WITHDRAWN,
    CaseProgress,
    CaseState,
    CommitmentVersion,
    Event,
    fold_case,
    voided_entries,
)
from ledger.records import CaseAction as A
from ledger.records import DeadlineUnit
from ledger.workdays import LOCAL_UTC_OFFSET_SECONDS, YearCalendar, day_of

HOURS_48 = [CommitmentVersion(version=1, seq=3, deadline=48, deadline_unit=DeadlineUnit.CALENDAR_HOURS)]
T0 = 1_750_000_000
H = 3600


class Case:
    """Builds a case's events with increasing seq numbers."""

    def __init__(self, opened_at: int = T0, seq: int = 10) -> None:
        self.seq = seq
        self.events = [Event(seq, A.OPENED, opened_at, "C1", "PUDONG", 2)]

    def then(self, action: A, at: int) -> Case:
        self.seq += 1
        self.events.append(Event(self.seq, action, at))
        return self

    def fold(
        self, versions: list[CommitmentVersion] = HOURS_48, calendars: dict[int, YearCalendar] | None = None
    ) -> CaseState | None:
        return fold_case(self.events, versions, calendars or {})


def test_fulfilled_on_time() -> None:
    s = Case().then(A.ACCEPTED, T0 + H).then(A.FULFILLED, T0 + 47 * H).fold()
    assert s is not None
    assert (s.status, s.closed_at, s.due_at) == (FULFILLED, T0 + 47 * H, T0 + 48 * H)
    assert (s.fulfil_seconds, s.on_time) == (47 * H, True)
    assert (s.commitment_id, s.commitment_version, s.district, s.channel) == ("C1", 1, "PUDONG", 2)
    assert (s.opened_seq, s.opened_at, s.last_seq, s.invalid_transitions, s.escalated) == (10, T0, 12, 0, False)
    assert s.row()["status"] == FULFILLED and set(s.row()) >= {"due_at", "on_time", "last_seq"}


def test_fulfilled_late_exactly_at_due_is_on_time() -> None:
    assert Case().then(A.FULFILLED, T0 + 48 * H).fold().on_time is True  # type: ignore[union-attr]
    late = Case().then(A.FULFILLED, T0 + 48 * H + 1).fold()
    assert late is not None and late.on_time is False and late.fulfil_seconds == 48 * H + 1


def test_hold_extends_due_and_is_excluded_from_fulfil_time() -> None:
    case = Case().then(A.ON_HOLD, T0 + 10 * H)
    s = case.fold()
    assert s is not None and s.status == ON_HOLD and s.on_hold_since == T0 + 10 * H
    assert s.hold_seconds == 0 and s.due_at == T0 + 48 * H  # a running hold is not counted yet
    case.then(A.RESUMED, T0 + 30 * H).then(A.ON_HOLD, T0 + 31 * H).then(A.RESUMED, T0 + 32 * H)
    s = case.then(A.FULFILLED, T0 + 60 * H).fold()
    assert s is not None
    assert (s.hold_seconds, s.on_hold_since, s.due_at) == (21 * H, None, T0 + 69 * H)
    assert (s.fulfil_seconds, s.on_time) == (39 * H, True)


def test_hold_running_at_close_counts_up_to_close() -> None:
    s = Case().then(A.ON_HOLD, T0 + H).then(A.WITHDRAWN, T0 + 5 * H).fold()
    assert s is not None and (s.status, s.hold_seconds, s.on_hold_since) == (WITHDRAWN, 4 * H, None)
    assert s.closed_at == T0 + 5 * H
    assert s.fulfil_seconds is None and s.on_time is None and s.due_at == T0 + 52 * H
    s = Case().then(A.ON_HOLD, T0 + H).then(A.REJECTED, T0 + 2 * H).fold()
    assert s is not None and (s.status, s.hold_seconds) == (REJECTED, H)


def test_hold_claimed_to_end_before_it_began_counts_zero() -> None:
    s = Case().then(A.ON_HOLD, T0 + 5 * H).then(A.RESUMED, T0 + H).fold()
    assert s is not None and s.hold_seconds == 0 and s.status == OPEN


@pytest.mark.parametrize(
    ("actions", "status", "invalid"),
    [
        ([A.RESUMED], OPEN, 1),  # nothing to resume
        ([A.ON_HOLD, A.FULFILLED], ON_HOLD, 1),  # fulfilment while on hold must resume first
        ([A.ON_HOLD, A.ESCALATED, A.ACCEPTED, A.ON_HOLD], ON_HOLD, 3),
        ([A.FULFILLED, A.REJECTED, A.ON_HOLD, A.RESUMED], FULFILLED, 3),  # closed is terminal
        ([A.OPENED], OPEN, 1),  # opened only first
        ([A.ESCALATED, A.ESCALATED, A.WITHDRAWN], WITHDRAWN, 0),
        ([A.ON_HOLD, A.RESUMED, A.ON_HOLD, A.RESUMED, A.REJECTED], REJECTED, 0),
        ([99], OPEN, 1),  # an unknown action code
    ],
)
def test_transitions(actions: list[A], status: str, invalid: int) -> None:
    case = Case()
    for i, action in enumerate(actions):
        case.then(action, T0 + (i + 1) * H)
    s = case.fold()
    assert s is not None and s.status == status and s.invalid_transitions == invalid
    assert s.last_seq == case.seq
    assert s.escalated == (A.ESCALATED in actions and status != ON_HOLD)


def test_no_opened_no_case_and_events_before_opened_are_invalid() -> None:
    assert fold_case([], HOURS_48, {}) is None
    assert fold_case([Event(5, A.ACCEPTED, T0), Event(6, A.FULFILLED, T0)], HOURS_48, {}) is None
    s = fold_case([Event(5, A.ACCEPTED, T0), Event(6, A.OPENED, T0 + 1, "C1", "D", 1)], HOURS_48, {})
    assert s is not None and (s.opened_seq, s.opened_at, s.invalid_transitions, s.status) == (6, T0 + 1, 1, OPEN)


def test_commitment_version_in_force_is_latest_before_opening() -> None:
    versions = [
        CommitmentVersion(2, seq=20, deadline=24, deadline_unit=DeadlineUnit.CALENDAR_HOURS),
        CommitmentVersion(1, seq=3, deadline=48, deadline_unit=DeadlineUnit.CALENDAR_HOURS),
        CommitmentVersion(3, seq=40, deadline=12, deadline_unit=DeadlineUnit.CALENDAR_HOURS),
    ]
    assert Case(seq=10).fold(versions).commitment_version == 1  # type: ignore[union-attr]
    s = Case(seq=21).fold(versions)
    assert s is not None and (s.commitment_version, s.due_at) == (2, T0 + 24 * H)
    s = Case(seq=2).fold(versions)  # impossible on chain (the contract needs a version), handled anyway
    assert s is not None and (s.commitment_version, s.due_at) == (0, None)


def test_working_days_due_with_national_day_and_hold() -> None:
    cst = timezone(timedelta(seconds=LOCAL_UTC_OFFSET_SECONDS))
    opened = int(datetime(2025, 9, 30, 16, 0, tzinfo=cst).timestamp())
    calendars = {
        2025: YearCalendar.of(
            2025,
            [day_of(date(2025, 10, d)) for d in (1, 2, 3, 6, 7, 8)],
            [day_of(date(2025, 9, 28)), day_of(date(2025, 10, 11))],
        )
    }
    versions = [CommitmentVersion(1, seq=1, deadline=3, deadline_unit=DeadlineUnit.WORKING_DAYS)]
    end_of_sat_11 = int(datetime(2025, 10, 12, tzinfo=cst).timestamp())
    case = Case(opened_at=opened).then(A.ON_HOLD, opened + H).then(A.RESUMED, opened + 3 * H)
    s = case.then(A.FULFILLED, end_of_sat_11 + H).fold(versions, calendars)
    assert s is not None and s.due_at == end_of_sat_11 + 2 * H and s.on_time is True
    s = Case(opened_at=opened).then(A.FULFILLED, opened + H).fold(versions, {})
    assert s is not None and s.due_at is None and s.on_time is None and s.fulfil_seconds == H


def test_voided_entries() -> None:
    entries = [
        (0, "A", None),
        (1, "A", None),
        (2, "B", None),
        (3, "A", 1),  # applied
        (4, "A", 1),  # already voided
        (5, "A", 2),  # another agency's entry
        (6, "A", 3),  # voids the correction; entry 1 stays voided
        (7, "B", 2),  # applied
    ]
    assert voided_entries(entries) == {1: 3, 3: 6, 2: 7}


# ------------------------------------------------------------------ properties

event_st = st.tuples(st.sampled_from(list(A) + [0, 99]), st.integers(min_value=0, max_value=20 * H))


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(event_st, max_size=25), split=st.integers(min_value=0, max_value=25))
def test_resuming_from_a_stored_state_equals_folding_everything(steps: list[tuple[int, int]], split: int) -> None:
    """What the indexer does (fold part, store the row, continue from the row) equals one full fold."""
    events = [Event(10, A.OPENED, T0, "C1", "D", 3)] + [
        Event(i + 11, action, T0 + dt, "X" if action == A.OPENED else "", "", 0) for i, (action, dt) in enumerate(steps)
    ]
    full = fold_case(events, HOURS_48, {})
    split = min(split, len(steps)) + 1
    head = fold_case(events[:split], HOURS_48, {})
    assert head is not None and full is not None
    progress = CaseProgress.from_state(head)
    for event in events[split:]:
        progress.apply(event)
    assert progress.state(HOURS_48, {}) == full
    assert full.status in STATUSES
    assert (full.closed_at is not None) == (full.status in CLOSED)
    assert (full.on_hold_since is not None) == (full.status == ON_HOLD)
    assert (full.fulfil_seconds is not None) == (full.status == FULFILLED)
    assert full.hold_seconds >= 0
    assert full.due_at == T0 + 48 * H + full.hold_seconds
