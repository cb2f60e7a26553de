"""Case state folding (ledger.cases): the status machine, hold time, commitment version, due time and outcome;
reopening, disputes and their answers, receipts and ratings."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.cases import (
    ANSWERS,
    BAD_RATING_MAX,
    CLOSED,
    DISPUTE_RESPONSE_WINDOW,
    DISPUTE_WINDOW,
    FULFILLED,
    ON_HOLD,
    OPEN,
    RECTIFICATION_WORKING_DAYS,
    REJECTED,
    STATUSES,
    WITHDRAWN,
    Answer,
    CaseProgress,
    CaseState,
    CommitmentVersion,
    Event,
    Feedback,
    dispute_answers,
    fold_case,
    voided_entries,
)
from ledger.filings import answer_due
from ledger.records import CaseAction as A
from ledger.records import DeadlineUnit, EntryKind
from ledger.workdays import (
    LOCAL_UTC_OFFSET_SECONDS,
    YearCalendar,
    day_of,
    local_day,
    local_day_end,
    working_days_due_always,
)

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
    # no calendar published for 2025: Monday to Friday (Wed 1, Thu 2, Fri 3 October), so that the deadline has an end
    end_of_fri_3 = int(datetime(2025, 10, 4, tzinfo=cst).timestamp())
    s = Case(opened_at=opened).then(A.FULFILLED, opened + H).fold(versions, {})
    assert s is not None and s.due_at == end_of_fri_3 and s.on_time is True and s.fulfil_seconds == H


def test_voided_entries() -> None:
    case, correction = int(EntryKind.CASE_EVENT), int(EntryKind.CORRECTION)
    accepted, opened = int(A.ACCEPTED), int(A.OPENED)
    entries = [
        (0, "A", None, case, opened),
        (1, "A", None, case, accepted),
        (2, "B", None, case, accepted),
        (3, "A", 1, correction, None),  # applied
        (4, "A", 1, correction, None),  # already voided
        (5, "A", 2, correction, None),  # another agency's entry
        (6, "A", 3, correction, None),  # voids the correction; entry 1 stays voided
        (7, "B", 2, correction, None),  # applied
        (8, "A", None, int(EntryKind.RECEIPT_ISSUED), None),
        (9, "A", None, int(EntryKind.CASE_RATED), None),  # a citizen's rating of agency A
        (10, "A", None, int(EntryKind.CASE_DISPUTED), None),
        (11, "A", 9, correction, None),  # refused: the rating is the citizen's
        (12, "A", 10, correction, None),  # refused: so is the dispute
        (13, "A", 8, correction, None),  # refused: and the receipt they hold
        (14, "A", 12, correction, None),  # a refused correction is an entry of A like any other: voidable
        (15, "A", 0, correction, None),  # refused: a case's opening starts its clock
        (16, "A", None, int(EntryKind.FILING_ANSWERED), None),
        (17, "A", 16, correction, None),  # refused: a filing's answer (an acceptance opens a case)
    ]
    assert voided_entries(entries) == {1: 3, 3: 6, 2: 7, 12: 14}


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


# ------------------------------------------------------------------ reopening, disputes, receipts, ratings

RECEIPT = "0x" + "ab" * 20


def fb(seq: int, kind: EntryKind, score: int = 0, receipt: str = RECEIPT) -> Feedback:
    return Feedback(seq, int(kind), receipt, T0 + seq, score)


def test_reopened_case_is_judged_by_its_final_fulfilment() -> None:
    case = Case().then(A.FULFILLED, T0 + 10 * H).then(A.REOPENED, T0 + 20 * H)
    s = case.fold()
    assert s is not None and (s.status, s.closed_at, s.reopened, s.fulfil_seconds, s.on_time) == (OPEN, None, 1, None,
                                                                                                  None)
    s = case.then(A.ON_HOLD, T0 + 21 * H).then(A.RESUMED, T0 + 23 * H).then(A.FULFILLED, T0 + 49 * H).fold()
    assert s is not None and (s.status, s.closed_at, s.hold_seconds, s.due_at) == (FULFILLED, T0 + 49 * H, 2 * H,
                                                                                  T0 + 50 * H)
    # the 10 h it spent wrongly marked fulfilled count: 49 h - 2 h on hold
    assert (s.fulfil_seconds, s.on_time, s.reopened, s.invalid_transitions) == (47 * H, True, 1, 0)
    s = case.then(A.REOPENED, T0 + 60 * H).then(A.REJECTED, T0 + 61 * H).fold()
    assert s is not None and (s.status, s.closed_at, s.reopened, s.fulfil_seconds) == (REJECTED, T0 + 61 * H, 2, None)


@pytest.mark.parametrize("closing", [A.FULFILLED, A.REJECTED, A.WITHDRAWN])
def test_any_closed_case_can_be_reopened(closing: A) -> None:
    s = Case().then(closing, T0 + H).then(A.REOPENED, T0 + 2 * H).then(A.ACCEPTED, T0 + 3 * H).fold()
    assert s is not None and (s.status, s.reopened, s.invalid_transitions) == (OPEN, 1, 0)


@pytest.mark.parametrize(
    ("actions", "status", "invalid"),
    [
        ([A.REOPENED], OPEN, 1),  # not closed
        ([A.ON_HOLD, A.REOPENED], ON_HOLD, 1),
        ([A.FULFILLED, A.REOPENED, A.REOPENED], OPEN, 1),
        ([A.DISPUTE_REJECTED], OPEN, 1),  # no dispute to answer
        ([A.FULFILLED, A.DISPUTE_REJECTED], FULFILLED, 1),
    ],
)
def test_invalid_reopenings_and_rejections(actions: list[A], status: str, invalid: int) -> None:
    case = Case()
    for i, action in enumerate(actions):
        case.then(action, T0 + (i + 1) * H)
    s = case.fold()
    assert s is not None and (s.status, s.invalid_transitions) == (status, invalid)


def test_feedback_folds_in_seq_order_with_the_events() -> None:
    events = [Event(10, A.OPENED, T0, "C1", "D", 1), Event(12, A.FULFILLED, T0 + H)]
    feedback = [fb(11, EntryKind.RECEIPT_ISSUED), fb(13, EntryKind.CASE_RATED, 4),
                fb(14, EntryKind.CASE_RATED, 1), fb(15, EntryKind.CASE_DISPUTED)]
    s = fold_case(events, HOURS_48, {}, feedback)
    assert s is not None
    # the first rating stands (the contract allows one); a dispute awaits its answer
    assert (s.receipt, s.rating, s.rated_at, s.disputes, s.dispute_open) == (RECEIPT, 4, T0 + 13, 1, True)
    assert s.last_seq == 12  # feedback entries are not case events
    events += [Event(16, A.DISPUTE_REJECTED, T0 + 2 * H)]
    s = fold_case(events, HOURS_48, {}, feedback + [fb(17, EntryKind.CASE_DISPUTED)])
    assert s is not None and (s.status, s.disputes, s.dispute_open, s.invalid_transitions) == (FULFILLED, 2, True, 0)
    events += [Event(18, A.REOPENED, T0 + 3 * H), Event(19, A.DISPUTE_REJECTED, T0 + 4 * H)]
    s = fold_case(events, HOURS_48, {}, feedback + [fb(17, EntryKind.CASE_DISPUTED)])
    # the reopening answered the second dispute; the rejection after it has nothing to answer
    assert s is not None and (s.status, s.reopened, s.dispute_open, s.invalid_transitions) == (OPEN, 1, False, 1)
    # a receipt before the Opened still counts; without an Opened there is no case
    assert fold_case([], HOURS_48, {}, [fb(1, EntryKind.RECEIPT_ISSUED)]) is None
    s = fold_case([Event(5, A.OPENED, T0, "C1", "D", 1)], HOURS_48, {}, [fb(1, EntryKind.RECEIPT_ISSUED)])
    assert s is not None and s.receipt == RECEIPT
    with pytest.raises(ValueError, match="not a receipt"):
        CaseProgress().take(fb(1, EntryKind.CASE_EVENT))


def test_an_answer_answers_the_disputes_before_it() -> None:
    reopen, reject = Answer(20, A.REOPENED, T0 + 20), Answer(30, A.DISPUTE_REJECTED, T0 + 30)
    assert dispute_answers([10, 25, 31], [reject, reopen]) == {10: reopen, 25: reject, 31: None}
    assert dispute_answers([10], []) == {10: None}


def test_the_windows_are_the_contracts(world) -> None:  # type: ignore[no-untyped-def]
    assert world.ledger.dispute_windows() == (DISPUTE_WINDOW, DISPUTE_RESPONSE_WINDOW) == (30 * 86_400, 10 * 86_400)


feedback_st = st.sampled_from([EntryKind.RECEIPT_ISSUED, EntryKind.CASE_RATED, EntryKind.CASE_DISPUTED])


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.one_of(event_st, st.tuples(feedback_st, st.integers(1, 5))), max_size=30),
    split=st.integers(min_value=0, max_value=30),
)
def test_resuming_with_feedback_equals_folding_everything(steps: list[tuple[int, int]], split: int) -> None:
    """The same as above with receipts, ratings, disputes, reopenings and rejections mixed in: the indexer's
    incremental fold (continued from a stored row, events and feedback merged by seq) equals one full fold, and
    ``dispute_open`` says exactly whether a dispute has no answer after it."""
    events: list[Event] = [Event(10, A.OPENED, T0, "C1", "D", 3)]
    feedback: list[Feedback] = []
    for i, (what, value) in enumerate(steps):
        seq = i + 11
        if isinstance(what, EntryKind):
            feedback.append(fb(seq, what, value))
        else:
            events.append(Event(seq, what, T0 + value, "X" if what == A.OPENED else "", "", 0))
    full = fold_case(events, HOURS_48, {}, feedback)
    assert full is not None
    cut = 11 + min(split, len(steps))
    head = fold_case([e for e in events if e.seq < cut], HOURS_48, {}, [f for f in feedback if f.seq < cut])
    assert head is not None
    progress = CaseProgress.from_state(head)
    progress.advance([e for e in events if e.seq >= cut], [f for f in feedback if f.seq >= cut])
    assert progress.state(HOURS_48, {}) == full
    disputes = [f.seq for f in feedback if f.kind == EntryKind.CASE_DISPUTED]
    answers = dispute_answers(disputes, [Answer(e.seq, e.action, 0) for e in events if e.action in ANSWERS])
    assert full.dispute_open == any(answer is None for answer in answers.values())
    assert full.disputes == len(disputes)
    assert (full.closed_at is not None) == (full.status in CLOSED)
    assert (full.fulfil_seconds is not None) == (full.status == FULFILLED)


def test_the_response_is_the_first_valid_answer_and_its_due_time_a_filings() -> None:
    # Escalated and an invalid Resumed are not responses; the first Accepted is, and a later Fulfilled is not the first
    case = Case().then(A.ESCALATED, T0 + H).then(A.RESUMED, T0 + 2 * H).then(A.ACCEPTED, T0 + 3 * H)
    s = case.then(A.FULFILLED, T0 + 4 * H).fold()
    assert s is not None and (s.responded_at, s.invalid_transitions) == (T0 + 3 * H, 1)
    assert s.response_due == answer_due(T0, {})  # the same time limit as a filing's answer, weekdays without calendar
    # an outright answer is a response; a withdrawal (the citizen's) is not
    for action, responded in ((A.REJECTED, T0 + H), (A.ON_HOLD, T0 + H), (A.WITHDRAWN, None)):
        s = Case().then(action, T0 + H).fold()
        assert s is not None and s.responded_at == responded
    # a case never answered has a due time and no response
    s = Case().fold()
    assert s is not None and s.responded_at is None and s.response_due is not None


def test_a_bad_rating_is_rectified_once_after_it_within_fifteen_working_days() -> None:
    events = [Event(10, A.OPENED, T0, "C1", "D", 1), Event(12, A.FULFILLED, T0 + H)]
    # a Rectified before any rating, or after a good one, is an invalid transition
    good = [fb(11, EntryKind.RECEIPT_ISSUED), fb(13, EntryKind.CASE_RATED, BAD_RATING_MAX + 1)]
    s = fold_case([*events, Event(14, A.RECTIFIED, T0 + 2 * H)], HOURS_48, {}, good)
    assert s is not None and (s.rectified_at, s.rectification_due, s.invalid_transitions) == (None, None, 1)
    s = fold_case([events[0], Event(11, A.RECTIFIED, T0 + H), events[1]], HOURS_48, {}, [])
    assert s is not None and (s.rectified_at, s.invalid_transitions) == (None, 1)
    # after a bad rating: once, and it changes no status; a second is invalid
    bad = [fb(11, EntryKind.RECEIPT_ISSUED), fb(13, EntryKind.CASE_RATED, BAD_RATING_MAX)]
    rectified = [*events, Event(14, A.RECTIFIED, T0 + 5 * H), Event(15, A.RECTIFIED, T0 + 6 * H)]
    s = fold_case(rectified, HOURS_48, {}, bad)
    assert s is not None and (s.status, s.rectified_at, s.invalid_transitions) == (FULFILLED, T0 + 5 * H, 1)
    assert s.rectification_due == working_days_due_always(T0 + 13, RECTIFICATION_WORKING_DAYS, {})
    # fifteen working days after the rating's local day, Sunday 2025-06-15: three weeks of weekdays, to Friday 07-04
    day = day_of(date(2025, 6, 15))
    assert local_day(T0 + 13) == day and s.rectification_due == local_day_end(day + 19)
    # a published holiday on the Monday moves it to the Monday after
    calendars = {2025: YearCalendar.of(2025, [day + 1], [])}
    later = fold_case(rectified, HOURS_48, calendars, bad)
    assert later is not None and later.rectification_due == local_day_end(day + 22)
    # the first dispute's block time
    s = fold_case(events, HOURS_48, {}, [*bad, fb(16, EntryKind.CASE_DISPUTED), fb(17, EntryKind.CASE_DISPUTED)])
    assert s is not None and s.disputed_at == T0 + 16


def test_attack_voided_entries_never_void_an_opened_through_a_chain_of_corrections() -> None:
    """Corrections aimed at an Opened, at the refused correction, at the Opened again, at a second Opened and at a
    correction that voided a fulfilment: no Opened is ever voided, and voiding a correction restores nothing."""
    case, correction = int(EntryKind.CASE_EVENT), int(EntryKind.CORRECTION)
    opened, fulfilled = int(A.OPENED), int(A.FULFILLED)
    entries = [
        (0, "A", None, case, opened),
        (1, "A", 0, correction, None),  # refused: an Opened
        (2, "A", 1, correction, None),  # applied: a refused correction is voidable
        (3, "A", 0, correction, None),  # refused still: not "already voided", an Opened
        (4, "A", None, case, opened),  # opened again
        (5, "A", 4, correction, None),  # refused: any Opened
        (6, "A", None, case, fulfilled),
        (7, "A", 6, correction, None),  # applied
        (8, "A", 7, correction, None),  # applied; the fulfilment stays voided
        (9, "B", 0, correction, None),  # another agency's
    ]
    assert voided_entries(entries) == {1: 2, 6: 7, 7: 8}
