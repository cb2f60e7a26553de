"""A hostile agency with a valid key against the figures a city publishes (``ledger/metrics.py``, "The figures a city
publishes" and "Rankings"), and the edges of their definitions where SQL and Python could part.

Each attack is one case (or a few) written as the agency would write it — case events with the time it claims and the
block time it is recorded at, corrections, receipts, ratings — folded by ``ledger.cases`` as the indexer folds it, and
its figures computed by all three implementations (SQLite, PostgreSQL, pure Python: the ``all_three`` fixture of
``tests/ledger/test_metrics.py``, which checks they agree). A test passes when the figure holds, or when it moves but
the move shows in a published figure or an audit rule; an attack that moves a figure unseen is an
``xfail(strict=True)`` that asserts what should hold, so the file stays green and says what to fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal, TypeAlias

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.audit.context import Thresholds
from ledger.cases import BAD_RATING_MAX, CaseState, CommitmentVersion, Event, Feedback, fold_case, voided_entries
from ledger.filings import AGENCY_ISSUED, CLAIMED, FILED, KEY_ORIGINS
from ledger.metrics import (
    MIN_RANKED_SAMPLE,
    CaseRow,
    CommitmentRow,
    DisputeRow,
    EventRow,
    Metrics,
    MetricsFilter,
    RatingRow,
    compute_metrics_from_rows,
    ranks,
    scorecards_from_rows,
)
from ledger.records import CaseAction, DeadlineUnit, EntryKind
from ledger.workdays import YearCalendar, is_weekend, working_days_due_always, year_days, year_of

# The figures of hand-made rows by SQLite, PostgreSQL and pure Python, checked equal, are test_metrics.py's (its
# `all_three` fixture, on its `sqlite` and `postgres` databases, of its `World`), taken from the module as values so
# that pytest sees them as this module's fixtures. (Its World and fixtures would be at home in tests/support.)
_metrics_tests: Any = importlib.import_module("tests.ledger.test_metrics")
all_three, sqlite, postgres = _metrics_tests.all_three, _metrics_tests.sqlite, _metrics_tests.postgres
World, commitment = _metrics_tests.World, _metrics_tests.commitment
H: int = _metrics_tests.H
D: int = _metrics_tests.D
T0: int = _metrics_tests.T0
#: a test_metrics.World: the rows of every table the figures read
Rows: TypeAlias = Any

Compute = Callable[[Rows, MetricsFilter], Metrics]

OPENED, ACCEPTED, ON_HOLD, RESUMED = CaseAction.OPENED, CaseAction.ACCEPTED, CaseAction.ON_HOLD, CaseAction.RESUMED
FULFILLED, WITHDRAWN = CaseAction.FULFILLED, CaseAction.WITHDRAWN
REOPENED, RECTIFIED = CaseAction.REOPENED, CaseAction.RECTIFIED

#: the roads office's 48-hour commitment; the fold reads the same version
LIGHT = commitment("ROADS", "LIGHT", 1, 9500)
#: a commitment counted in working days (3), for the calendar attacks
PERMIT = commitment("ROADS", "PERMIT", 1, 9500, deadline=3, deadline_unit=int(DeadlineUnit.WORKING_DAYS))


def roads_until(end: int) -> MetricsFilter:
    """The roads office's figures from T0 to `end`, taken at `end`."""
    return MetricsFilter(agency_id="ROADS", start=T0, end=end)


MONTH = roads_until(T0 + 30 * D)
#: the key kind that binds a receipt key of each origin
BINDING_KINDS = {AGENCY_ISSUED: EntryKind.RECEIPT_ISSUED, FILED: EntryKind.FILING_ANSWERED,
                 CLAIMED: EntryKind.RECEIPT_CLAIMED}

_seq = itertools.count(1_000_000)  # above the seqs of test_metrics' rows (commitments are published before cases)


def version_of(row: CommitmentRow) -> CommitmentVersion:
    return CommitmentVersion(version=row.version, seq=row.seq, deadline=row.deadline, deadline_unit=row.deadline_unit)


@dataclass
class Story:
    """One case as its agency (and its receipt's holder) writes it: entries in ledger order, each case event with the
    time it claims and the block time it is recorded at. Folded by ``ledger.cases`` (corrections by its
    ``voided_entries``) as the indexer folds it."""

    name: str
    commitment: CommitmentRow = LIGHT
    events: list[EventRow] = field(default_factory=list)
    #: (correction's seq, target's seq)
    corrections: list[tuple[int, int]] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    ratings: list[RatingRow] = field(default_factory=list)
    disputes: list[DisputeRow] = field(default_factory=list)
    bindings: list[tuple[int, str, bytes, str, int]] = field(default_factory=list)
    key: tuple[str, str] | None = None

    @property
    def agency_id(self) -> str:
        return self.commitment.agency_id

    @property
    def case_id(self) -> bytes:
        return hashlib.sha256(b"attack:" + self.name.encode()).digest()

    def write(self, action: CaseAction, recorded: int, claimed: int | None = None) -> int:
        """A case event recorded at block time `recorded`, claiming `claimed` (default: the same)."""
        seq = next(_seq)
        intake = action == OPENED
        self.events.append(EventRow(
            seq=seq, agency_id=self.agency_id, case_id=self.case_id, action=int(action),
            occurred_at=recorded if claimed is None else claimed, block_time=recorded, details_hash=b"\0" * 32,
            commitment_id=self.commitment.commitment_id if intake else None, district="PUDONG" if intake else None,
            channel=2 if intake else None,
        ))  # fmt: skip
        return seq

    def void(self, target: int) -> int:
        seq = next(_seq)
        self.corrections.append((seq, target))
        return seq

    def receipt(self, origin: str = AGENCY_ISSUED) -> None:
        """A key bound to the case: issued by the agency, filed with the citizen's request, or claimed."""
        seq = next(_seq)
        key = "0x" + hashlib.sha256(b"key:" + self.name.encode()).hexdigest()[:40]
        self.feedback.append(Feedback(seq, EntryKind.RECEIPT_ISSUED, key, 0))
        self.bindings.append((seq, self.agency_id, self.case_id, key, int(BINDING_KINDS[origin])))
        self.key = (key, origin)

    def rate(self, score: int, at: int) -> None:
        assert self.key is not None
        seq = next(_seq)
        self.feedback.append(Feedback(seq, EntryKind.CASE_RATED, self.key[0], at, score))
        self.ratings.append(RatingRow(seq=seq, agency_id=self.agency_id, case_id=self.case_id, score=score,
                                      comment_hash=b"\0" * 32, receipt=self.key[0], block_time=at,
                                      key_origin=self.key[1]))

    def dispute(self, at: int) -> None:
        assert self.key is not None
        seq = next(_seq)
        self.feedback.append(Feedback(seq, EntryKind.CASE_DISPUTED, self.key[0], at))
        self.disputes.append(DisputeRow(seq=seq, agency_id=self.agency_id, case_id=self.case_id, closure=1,
                                        reason_hash=b"\0" * 32, receipt=self.key[0], block_time=at,
                                        key_origin=self.key[1]))

    def voided(self) -> dict[int, int]:
        entries = sorted(
            [(e.seq, self.agency_id, None, int(EntryKind.CASE_EVENT), e.action) for e in self.events]
            + [(seq, self.agency_id, target, int(EntryKind.CORRECTION), None) for seq, target in self.corrections]
            + [(f.seq, self.agency_id, None, f.kind, None) for f in self.feedback],
            key=lambda entry: entry[0],
        )
        return voided_entries(entries)

    def state(self, calendars: dict[int, YearCalendar] | None = None) -> CaseState | None:
        voided = self.voided()
        events = [Event(e.seq, e.action, e.occurred_at, e.commitment_id or "", e.district or "", e.channel or 0)
                  for e in self.events if e.seq not in voided]
        return fold_case(events, [version_of(self.commitment)], calendars or {}, self.feedback)

    def row(self, calendars: dict[int, YearCalendar] | None = None) -> CaseRow | None:
        state = self.state(calendars)
        return None if state is None else CaseRow(agency_id=self.agency_id, case_id=self.case_id, **state.row())

    def event_rows(self) -> list[EventRow]:
        voided = self.voided()
        return [replace(e, voided_by=voided.get(e.seq)) for e in self.events]


def city(*stories: Story, calendars: dict[int, YearCalendar] | None = None) -> Rows:
    """The index rows of `stories`."""
    rows = [s.row(calendars) for s in stories]
    return World(
        cases=[row for row in rows if row is not None],
        events=[e for s in stories for e in s.event_rows()],
        commitments=sorted({s.commitment.seq: s.commitment for s in stories}.values(), key=lambda c: c.seq),
        ratings=[r for s in stories for r in s.ratings],
        disputes=[d for s in stories for d in s.disputes],
        bindings=[b for s in stories for b in s.bindings],
    )


def served(name: str, opened: int, fulfilled: int, commitment: CommitmentRow = LIGHT) -> Story:
    """A case opened and fulfilled, each event recorded when it happened."""
    s = Story(name, commitment)
    s.write(OPENED, opened)
    s.write(FULFILLED, fulfilled)
    return s


# --- claimed times ----------------------------------------------------------------------------------------------------


def stacked_holds(before_opening: bool) -> Story:
    """Six holds, each put on by an OnHold claimed 23 h before it is recorded (under the 24 h of a late recording) and
    ended a minute later: stacked over one another two days into the case, or claimed before the case was opened.
    The case is then fulfilled at 150 h, long after its 48 h and any hold it really had."""
    s = Story("stacked-before-opening" if before_opening else "stacked")
    s.write(OPENED, T0)
    first = T0 + 60 if before_opening else T0 + 47 * H
    for i in range(6):
        t = first + 2 * i * 60
        s.write(ON_HOLD, t, claimed=t - 23 * H)
        s.write(RESUMED, t + 60)
    s.write(FULFILLED, T0 + 150 * H)
    return s


@pytest.mark.parametrize("before_opening", [False, True], ids=["stacked", "before-the-opening"])
def test_agency_stacking_backdated_holds_gains_no_hold_time_it_never_had(
    all_three: Compute, before_opening: bool
) -> None:
    s = stacked_holds(before_opening)
    state = s.state()
    assert state is not None
    m = all_three(city(s), MONTH)
    # nothing shows it: every transition valid, no late recording, less hold than the auditor's long-hold warning
    assert state.invalid_transitions == 0 and m.late_recordings == 0
    assert state.hold_seconds < Thresholds().long_hold_factor * 48 * H
    # what should hold: at most the real time on hold (under a day) is added, so 150 h is late
    assert state.hold_seconds < 24 * H
    assert (m.on_time, m.deadline_rate) == (0, Decimal(0))


def test_a_fulfilment_claimed_before_the_opening_takes_no_negative_time(
    all_three: Compute,
) -> None:
    s = Story("fulfilled-before-opened")
    s.write(OPENED, T0 + 2 * H)
    s.write(FULFILLED, T0 + 2 * H + 60, claimed=T0 + 60)  # recorded a minute later, claimed 2 h earlier
    m = all_three(city(s), MONTH)
    assert m.late_recordings == 0
    assert m.median_fulfil_seconds is not None and m.median_fulfil_seconds >= 0


@pytest.mark.parametrize("voided_first", [False, True], ids=["backdated", "voided-and-recorded-again-backdated"])
def test_agency_backdating_its_response_by_more_than_a_day_shows_as_a_late_recording(
    all_three: Compute, voided_first: bool
) -> None:
    """The response is due by the end of the next working day (Friday 2 Jan, 24:00 local, for a case opened on
    Thursday morning); the agency takes the case up on Tuesday and claims Friday. Claimed times within 24 h of the
    recording are the design's tolerance (batches are recorded later), and that much is not seen; more is a late
    recording, whether written so at once or by voiding an honest late Accepted and writing it again."""
    honest, backdated = Story("answered-late"), Story("answered-backdated")
    for s in (honest, backdated):
        s.write(OPENED, T0)
    honest.write(ACCEPTED, T0 + 5 * D)
    if voided_first:
        backdated.void(backdated.write(ACCEPTED, T0 + 5 * D))
    backdated.write(ACCEPTED, T0 + 5 * D + 60, claimed=T0 + 30 * H)
    before, after = all_three(city(honest), MONTH), all_three(city(backdated), MONTH)
    assert (before.responded_on_time, before.response_rate, before.late_recordings) == (0, Decimal(0), 0)
    assert (after.responded_on_time, after.response_rate) == (1, Decimal(1))  # moved…
    assert after.late_recordings == 1  # …and seen


def test_agency_voiding_a_late_rectification_and_backdating_it_again_shows_as_a_late_recording(
    all_three: Compute,
) -> None:
    """A bad rating is due its rectification within 15 working days; the agency rectifies after 30 days, voids that,
    and records it again claiming the fifth day."""
    rated = T0 + D
    stories = []
    for name in ("rectified-late", "rectified-backdated"):
        s = Story(name)
        s.write(OPENED, T0)
        s.receipt(FILED)
        s.write(FULFILLED, T0 + H)
        s.rate(1, rated)
        late = s.write(RECTIFIED, rated + 30 * D)
        stories.append(s)
    honest, backdated = stories
    backdated.void(late)
    backdated.write(RECTIFIED, rated + 31 * D, claimed=rated + 5 * D)
    flt = roads_until(T0 + 60 * D)
    before, after = all_three(city(honest), flt), all_three(city(backdated), flt)
    assert (before.rectifications_due, before.rectified_on_time, before.late_recordings) == (1, 0, 0)
    assert (after.rectifications_due, after.rectified_on_time) == (1, 1)  # moved…
    assert after.late_recordings == 1  # …and seen


# --- holds, withdrawals, reopenings -----------------------------------------------------------------------------------


def test_agency_putting_a_late_case_on_hold_or_withdrawing_it_late_keeps_it_in_the_deadline_rate(
    all_three: Compute,
) -> None:
    held = Story("held-late")
    held.write(OPENED, T0)
    held.write(ON_HOLD, T0 + 60 * H)  # 12 h past its 48 h
    withdrawn = Story("held-late-withdrawn")
    withdrawn.write(OPENED, T0)
    withdrawn.write(ON_HOLD, T0 + 60 * H)
    withdrawn.write(WITHDRAWN, T0 + 9 * D)
    m = all_three(city(held, withdrawn), roads_until(T0 + 10 * D))
    assert (m.overdue_cases, m.late_withdrawals, m.deadline_cases, m.deadline_rate) == (1, 1, 2, Decimal(0))


def test_agency_parking_a_case_on_hold_just_before_its_due_time_and_withdrawing_it_weeks_later_shows_as_a_long_hold(
    all_three: Compute,
) -> None:
    """On hold at 47 of its 48 h, withdrawn at 500 h: the hold (waiting for the citizen, by definition) stopped the
    clock, so the withdrawal is not late and the case is in no deadline figure. The move is seen: the withdrawal
    counts, and a hold longer than the auditor's long-hold factor times the deadline is listed (ledger/audit/checks/
    timeliness.py)."""
    parked = Story("parked")
    parked.write(OPENED, T0)
    parked.write(ON_HOLD, T0 + 47 * H)
    parked.write(WITHDRAWN, T0 + 500 * H)
    state = parked.state()
    assert state is not None
    m = all_three(city(parked), MONTH)
    assert (m.withdrawn, m.late_withdrawals, m.deadline_cases, m.deadline_rate) == (1, 0, 0, None)
    assert state.hold_seconds > Thresholds().long_hold_factor * 48 * H


def test_agency_reopening_its_late_fulfilments_lifts_its_on_time_rate_but_not_its_deadline_rate(
    all_three: Compute,
) -> None:
    """Reopened, a late fulfilment leaves the fulfilled cases (on_time_rate, a ranked figure, goes from 1/2 to 1/1)
    but stays overdue, so the deadline rate a city publishes does not move; the reopening is counted."""
    on_time = served("in-time", T0, T0 + 10 * H)
    late = served("late", T0, T0 + 60 * H)
    before = all_three(city(on_time, late), roads_until(T0 + 10 * D))
    late.write(REOPENED, T0 + 3 * D)
    after = all_three(city(on_time, late), roads_until(T0 + 10 * D))
    assert (before.on_time_rate, after.on_time_rate) == (Decimal("0.5"), Decimal(1))
    assert before.deadline_rate == after.deadline_rate == Decimal("0.5")
    assert (after.reopened, after.overdue_cases) == (1, 1)


def test_agency_withdrawing_a_receipt_case_instead_of_answering_it_leaves_the_resolution_rate_but_shows(
    all_three: Compute,
) -> None:
    """A citizen who would dispute the fulfilment: the agency records the case withdrawn (the contract lets it, and
    a withdrawal cannot be disputed), so it leaves the answers with a receipt. The withdrawal counts, and the
    citizen can still rate it."""
    answered, withdrawn = Story("answered"), Story("withdrawn-instead")
    for s in (answered, withdrawn):
        s.write(OPENED, T0)
        s.receipt(FILED)
    answered.write(FULFILLED, T0 + 10 * H)
    answered.dispute(T0 + D)
    withdrawn.write(WITHDRAWN, T0 + 10 * H)
    withdrawn.rate(1, T0 + D)
    before = all_three(city(served("other", T0, T0 + H), answered), MONTH)
    after = all_three(city(served("other", T0, T0 + H), withdrawn), MONTH)
    assert (before.answers_with_receipt, before.resolution_rate) == (1, Decimal(0))
    assert (after.answers_with_receipt, after.resolution_rate) == (0, None)
    assert (after.withdrawn, after.bad_ratings, after.ratings_by_key_origin) == (1, 1, (1, 0, 0))


# --- rectification ------------------------------------------------------------------------------------------------


def test_rectified_before_a_bad_rating_after_a_good_one_or_twice_rectifies_nothing_more(all_three: Compute) -> None:
    rated = T0 + D
    stories = {name: Story(name) for name in ("before-rating", "good-rating", "twice", "no-receipt")}
    for s in stories.values():
        s.write(OPENED, T0)
        if s.name != "no-receipt":
            s.receipt(FILED)
        s.write(FULFILLED, T0 + H)
    stories["before-rating"].write(RECTIFIED, rated - 60)
    stories["before-rating"].rate(1, rated)
    stories["good-rating"].rate(4, rated)
    stories["good-rating"].write(RECTIFIED, rated + 60)
    stories["twice"].rate(2, rated)
    stories["twice"].write(RECTIFIED, rated + 60)
    stories["twice"].write(RECTIFIED, rated + 120)
    stories["no-receipt"].write(RECTIFIED, rated + 60)
    states = {name: s.state() for name, s in stories.items()}
    rectified = {name: (state.rectified_at, state.invalid_transitions) for name, state in states.items() if state}
    assert rectified == {"before-rating": (None, 1), "good-rating": (None, 1), "twice": (rated + 60, 1),
                         "no-receipt": (None, 1)}
    m = all_three(city(*stories.values()), MONTH)
    # two bad ratings (before-rating's, twice's), one rectification: the one after twice's rating
    assert (m.bad_ratings, m.rectifications_due, m.rectified_on_time) == (2, 2, 1)


def test_agency_rating_its_own_receipt_cases_badly_and_rectifying_them_at_once_shows_as_agency_issued_ratings(
    all_three: Compute,
) -> None:
    """Four citizens' bad ratings left unrectified; the agency adds six cases with receipts it keeps, rates each 1
    with the key it holds and rectifies it at once: its rectification rate goes from 0 to 0.6. Every one of its
    ratings counts under agency-issued keys (ratings_by_key_origin, and their average of 1), so it is seen — but the
    ranking by rectification_rate does not look at key origins."""
    citizens, padding = [], []
    for i in range(4):
        s = Story(f"citizen-{i}")
        s.write(OPENED, T0)
        s.receipt(FILED)
        s.write(FULFILLED, T0 + H)
        s.rate(1, T0 + D)
        citizens.append(s)
    for i in range(6):
        s = Story(f"own-{i}")
        s.write(OPENED, T0)
        s.receipt(AGENCY_ISSUED)
        s.write(FULFILLED, T0 + H)
        s.rate(1, T0 + D)
        s.write(RECTIFIED, T0 + D + 60)
        padding.append(s)
    before = all_three(city(*citizens), MONTH)
    after = all_three(city(*citizens, *padding), MONTH)
    assert (before.rectification_rate, after.rectification_rate) == (Decimal(0), Decimal("0.6"))
    assert after.ratings_by_key_origin == (4, 0, 6)
    assert after.rating_average_by_key_origin[KEY_ORIGINS.index(AGENCY_ISSUED)] == Decimal(1)


# --- padding and splitting ------------------------------------------------------------------------------------------


def test_agency_padding_with_instant_cases_lifts_its_deadline_rate_and_the_padding_shows(all_three: Compute) -> None:
    """Ten citizens' cases (filed, each rated 3), half late. Twenty instant cases lift the deadline rate from 0.5 to
    0.83; without receipts they drop the rating coverage from 1 to 0.33; with receipts the agency keeps and rates 5,
    coverage stays 1 and satisfaction jumps, but those ratings are all agency-issued (ratings_by_key_origin)."""
    real = []
    for i in range(10):
        s = served(f"real-{i}", T0, T0 + (10 if i < 5 else 60) * H)
        s.receipt(FILED)
        s.rate(3, T0 + 3 * D)
        real.append(s)
    bare = [served(f"pad-{i}", T0 + D, T0 + D + 60) for i in range(20)]
    rated = []
    for i in range(20):
        s = served(f"pad-rated-{i}", T0 + D, T0 + D + 60)
        s.receipt(AGENCY_ISSUED)
        s.rate(5, T0 + D + 120)
        rated.append(s)
    before = all_three(city(*real), MONTH)
    padded = all_three(city(*real, *bare), MONTH)
    self_rated = all_three(city(*real, *rated), MONTH)
    assert (before.deadline_rate, before.rating_coverage, before.satisfaction_rate) == (
        Decimal("0.5"), Decimal(1), Decimal(0))
    assert (padded.deadline_rate, padded.rating_coverage) == (Decimal("0.8333"), Decimal("0.3333"))
    assert (self_rated.deadline_rate, self_rated.rating_coverage, self_rated.satisfaction_rate) == (
        Decimal("0.8333"), Decimal(1), Decimal("0.6667"))
    assert self_rated.ratings_by_key_origin == (10, 0, 20)


def test_agency_splitting_a_commitment_below_the_minimum_sample_is_unranked_by_commitment_but_ranked_as_an_agency(
) -> None:
    """58 late cases under one commitment rank it last; split 29 + 29 over two commitments, each rests on fewer than
    30 cases and is not ranked (shown with its sample), while the agency is ranked as before."""
    good = commitment("WATER", "LEAK", 1, 9500)
    split = [commitment("ROADS", f"LIGHT-{part}", 1, 9500) for part in "AB"]
    water = [served(f"water-{i}", T0, T0 + H, good) for i in range(40)]
    one = city(*water, *[served(f"late-{i}", T0, T0 + 60 * H) for i in range(58)])
    two = city(*water, *[served(f"late-{i}", T0, T0 + 60 * H, split[i % 2]) for i in range(58)])
    flt = MetricsFilter(start=T0, end=T0 + 30 * D)

    def ranked(world: Rows, by: Literal["agency", "commitment"]) -> dict[Any, int | None]:
        return ranks(scorecards_from_rows(world.cases, world.events, world.commitments, flt, by=by), "deadline_rate")

    assert ranked(one, "commitment") == {("ROADS", "LIGHT"): 2, ("WATER", "LEAK"): 1}
    assert ranked(two, "commitment") == {("ROADS", "LIGHT-A"): None, ("ROADS", "LIGHT-B"): None, ("WATER", "LEAK"): 1}
    assert ranked(one, "agency") == ranked(two, "agency") == {"ROADS": 2, "WATER": 1}


# --- openings, calendars ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("again", [None, "opened", "opened-and-fulfilled"])
def test_agency_voiding_the_opening_of_an_overdue_case_is_refused_and_the_case_stays_in_the_deadline_rate(
    all_three: Compute, again: str | None
) -> None:
    """The agency voids the Opened of a case it left unanswered, and may write an Opened again (a fresh deadline) and
    fulfil it. No correction voids an Opened (``ledger.cases.UNVOIDABLE_ACTIONS``): the case counts from its first
    opening, and the second Opened is not a transition of an open case."""
    flt = roads_until(T0 + 10 * D)
    s = Story(f"void-opening-{again}")
    opening = s.write(OPENED, T0)
    baseline = all_three(city(s), flt)
    assert (baseline.overdue_cases, baseline.deadline_cases, baseline.deadline_rate) == (1, 1, Decimal(0))
    s.void(opening)
    assert s.voided() == {}
    if again is not None:
        s.write(OPENED, T0 + 9 * D)
    if again == "opened-and-fulfilled":
        s.write(FULFILLED, T0 + 9 * D + H)
    state = s.state()
    assert state is not None and state.opened_at == T0
    m = all_three(city(s), flt)
    assert (m.on_time, m.deadline_cases, m.deadline_rate) == (0, 1, Decimal(0))
    assert m.overdue_cases == (0 if again == "opened-and-fulfilled" else 1)


def weekdays_of(year: int) -> list[int]:
    first, end = year_days(year)
    return [day for day in range(first, end) if not is_weekend(day)]


def test_an_agency_publishing_no_calendar_keeps_its_working_day_cases_in_the_deadline_rate(
    all_three: Compute,
) -> None:
    """No calendar is published for the year: a working-day deadline counts Monday to Friday, as the response and
    rectification limits do, so the late permit is late (it used to have no due time, and count nowhere)."""
    late = served("permit-late", T0, T0 + 20 * D, PERMIT)  # 3 working days, fulfilled after 20 days
    state = late.state()
    assert state is not None and state.response_due is not None and state.due_at is not None
    assert state.due_at == working_days_due_always(T0, 3, {}) and state.on_time is False
    m = all_three(city(late), MONTH)
    assert (m.fulfilled, m.on_time_eligible, m.on_time) == (1, 1, 0)
    assert (m.deadline_cases, m.deadline_rate) == (1, Decimal(0))


def test_a_calendar_declaring_every_weekday_a_holiday_moves_every_working_day_limit_into_the_next_year(
    all_three: Compute,
) -> None:
    """Any agency of a jurisdiction may publish its calendar, and the latest version counts (ledger.workdays); the
    contract only checks that holidays are weekdays. With every weekday of 2026 a holiday, a permit due in 3 working
    days, a response due the next working day and a rectification due in 15 all fall in 2027: a case fulfilled after
    20 days is on time, its response after 20 days too. Seen only as the calendar entry on the ledger: no figure, and
    no audit check, looks at a calendar's holidays."""
    year = year_of(T0 // D)
    # and the next year's, as it stands (else a working-day deadline has no end: see the test above)
    no_work = {year: YearCalendar.of(year, weekdays_of(year)), year + 1: YearCalendar.of(year + 1)}
    s = served("permit-no-work", T0, T0 + 20 * D, PERMIT)
    s.receipt(FILED)
    s.rate(1, T0 + 21 * D)
    plain, holidays = s.state({year: YearCalendar.of(year)}), s.state(no_work)
    assert plain is not None and holidays is not None
    next_year = year_days(year)[1] * D
    assert plain.on_time is False and plain.response_due is not None and plain.response_due < T0 + 2 * D
    assert holidays.on_time is True
    assert holidays.response_due is not None and holidays.response_due > next_year
    assert holidays.rectification_due is not None and holidays.rectification_due > next_year
    m = all_three(city(s, calendars=no_work), MONTH)
    assert (m.deadline_rate, m.response_rate) == (Decimal(1), Decimal(1))


# --- the definitions' edges: SQL = Python -----------------------------------------------------------------------------

S, A, E = T0, T0 + 5 * D, T0 + 10 * D  # start, as_of, end
EDGES = MetricsFilter(start=S, end=E, as_of=A)
RECEIPT_KEY = "0x" + "cd" * 20


def edge(name: str, opened: int, status: str = "open", **changes: Any) -> CaseRow:
    row = CaseRow(
        agency_id="ROADS", case_id=hashlib.sha256(b"edge:" + name.encode()).digest(), commitment_id="LIGHT",
        commitment_version=1, district="PUDONG", channel=2, opened_seq=next(_seq), opened_at=opened, status=status,
        closed_at=None, hold_seconds=0, on_hold_since=None, due_at=None, fulfil_seconds=None, on_time=None,
        escalated=False, invalid_transitions=0, last_seq=0,
    )  # fmt: skip
    return replace(row, **changes)


def edge_world() -> Rows:
    """Each case on one bound (start S, as_of A, end E) of one of the figures a city publishes."""
    fulfilled = dict(closed_at=S + D, fulfil_seconds=D, due_at=S + 2 * D, on_time=True)
    rated = dict(receipt=RECEIPT_KEY, **fulfilled)
    return World(cases=[
        # responses: responded at as_of (not yet), exactly at its due time (in time), due exactly at as_of (not
        # judged yet), due a second before it (judged, late), opened at end (not in range), all at start (in time)
        edge("responded-at-as-of", S, responded_at=A, response_due=A + D),
        edge("responded-at-due", S + H, responded_at=S + 2 * H, response_due=S + 2 * H),
        edge("due-at-as-of", S + H, response_due=A),
        edge("due-before-as-of", S + H, response_due=A - 1),
        edge("opened-at-end", E, responded_at=E, response_due=E + D),
        edge("all-at-start", S, responded_at=S, response_due=S),
        # late closings: closed exactly at due (not late), a second after (late)
        edge("rejected-at-due", S, "rejected", closed_at=S + D, due_at=S + D),
        edge("withdrawn-after-due", S, "withdrawn", closed_at=S + D + 1, due_at=S + D),
        # resolution: disputed exactly at as_of (not yet contested), a second before (contested)
        edge("disputed-at-as-of", S, "fulfilled", disputed_at=A, **rated),
        edge("disputed-before-as-of", S, "fulfilled", disputed_at=A - 1, **rated),
        # bad ratings: rated at as_of (in range, not yet due), rectified exactly at due (in time), rectified at
        # as_of (not yet, and not due), rated at end (not in range), rated at start (in range; rectified late)
        edge("rated-at-as-of", S, "fulfilled", rating=1, rated_at=A, rectification_due=A, **rated),
        edge("rectified-at-due", S, "fulfilled", rating=2, rated_at=S + D, rectified_at=S + 2 * D,
             rectification_due=S + 2 * D, **rated),
        edge("rectified-at-as-of", S, "fulfilled", rating=1, rated_at=S + D, rectified_at=A,
             rectification_due=A + D, **rated),
        edge("rated-at-end", S, "fulfilled", rating=1, rated_at=E, rectification_due=E + D, **rated),
        edge("rated-at-start", S, "fulfilled", rating=2, rated_at=S, rectified_at=S + 2 * D,
             rectification_due=S + D, **rated),
        # NULLs a fold never writes: a bad rating without its due time, a response time without a due time
        edge("bad-no-due", S, "fulfilled", rating=1, rated_at=S + D, **rated),
        edge("responded-no-due", S, responded_at=S + H),
    ])


def test_the_figures_a_city_publishes_at_their_bounds(all_three: Compute) -> None:
    m = all_three(edge_world(), EDGES)
    # judged: responded-at-due, due-before-as-of, all-at-start, responded-at-as-of is not, nor due-at-as-of
    assert (m.responses_due, m.responded_on_time) == (3, 2)
    assert (m.late_rejections, m.late_withdrawals) == (0, 1)
    # answers with a receipt: the eight fulfilled with one; contested before as_of: disputed-before-as-of
    assert (m.answers_with_receipt, m.resolved) == (8, 7)
    # bad in range: rated-at-as-of, rectified-at-due, rectified-at-as-of, rated-at-start, bad-no-due (not
    # rated-at-end); before as_of and due or rectified then: rectified-at-due, rated-at-start
    assert (m.bad_ratings, m.rectifications_due, m.rectified_on_time) == (5, 2, 1)
    # rated before as_of (rectified-at-due, rectified-at-as-of, rated-at-start, bad-no-due), of the 10 closed in range
    assert m.rating_coverage == Decimal("0.4")


@pytest.mark.parametrize("flt", [
    MetricsFilter(start=0, end=2**63 - 1, as_of=2**63 - 1),
    MetricsFilter(start=A, end=E, as_of=S),  # as_of before the range
    MetricsFilter(start=S, end=S + 1, as_of=S),
    MetricsFilter(as_of=0),
], ids=["widest", "as_of-before-start", "one-second", "as_of-zero"])
def test_the_figures_a_city_publishes_agree_on_extreme_selections(all_three: Compute, flt: MetricsFilter) -> None:
    m = all_three(edge_world(), flt)
    if flt.as_of == 0:
        assert (m.responses_due, m.rectifications_due, m.open_cases, m.overdue_cases) == (0, 0, 0, 0)


BOUNDS = (S, A, E)
near_bound = st.sampled_from(BOUNDS).flatmap(lambda t: st.sampled_from([t - 1, t, t + 1]))


@st.composite
def bound_rows(draw: st.DrawFn, index: int) -> CaseRow:
    """A case whose every time is at, or a second off, start, as_of or end: where < and <= part."""
    status = draw(st.sampled_from(["open", "on_hold", "fulfilled", "rejected", "withdrawn"]))
    closed = status in ("fulfilled", "rejected", "withdrawn")
    receipt = draw(st.sampled_from([None, RECEIPT_KEY]))
    rating = draw(st.none() | st.integers(1, 5)) if receipt else None
    maybe = st.none() | near_bound
    return edge(
        f"bound-{index}", draw(near_bound), status, closed_at=draw(near_bound) if closed else None,
        due_at=draw(maybe), on_time=draw(st.booleans()) if status == "fulfilled" else None,
        fulfil_seconds=draw(st.integers(0, 100)) if status == "fulfilled" else None,
        on_hold_since=draw(near_bound) if status == "on_hold" else None, receipt=receipt, rating=rating,
        rated_at=None if rating is None else draw(near_bound), responded_at=draw(maybe),
        response_due=draw(maybe), disputed_at=draw(maybe) if receipt else None,
        rectified_at=draw(maybe) if rating is not None else None,
        rectification_due=draw(maybe) if rating is not None and rating <= BAD_RATING_MAX else None,
    )


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sqlite_postgres_and_python_agree_when_every_time_sits_on_a_bound(all_three: Compute,
                                                                          data: st.DataObject) -> None:
    rows = [data.draw(bound_rows(i)) for i in range(data.draw(st.integers(1, 12)))]
    start, end = sorted(data.draw(st.lists(st.sampled_from(BOUNDS), min_size=2, max_size=2, unique=True)))
    flt = MetricsFilter(agency_id=data.draw(st.sampled_from([None, "ROADS"])), start=start, end=end,
                        as_of=data.draw(near_bound))
    all_three(World(cases=rows), flt)


# --- rankings -----------------------------------------------------------------------------------------------------

EMPTY = compute_metrics_from_rows([], [], [], MetricsFilter(as_of=1))


def deadline_card(rate: Decimal | None, sample: int) -> Metrics:
    return dataclasses.replace(EMPTY, deadline_rate=rate, deadline_cases=sample)


@given(cards=st.lists(st.tuples(st.none() | st.sampled_from([Decimal("0.5"), Decimal("0.7500"), Decimal(1)]),
                                st.sampled_from([0, 1, 29, 30, 31])), max_size=8),
       minimum=st.sampled_from([0, 1, 29, 30, 31]))
def test_a_rank_is_one_plus_the_higher_rates_and_none_below_the_minimum_sample(
    cards: list[tuple[Decimal | None, int]], minimum: int
) -> None:
    scorecards = {i: deadline_card(rate, sample if rate is not None else 0) for i, (rate, sample) in enumerate(cards)}
    got = ranks(scorecards, "deadline_rate", min_sample=minimum)
    eligible = {i: m.deadline_rate for i, m in scorecards.items()
                if m.deadline_rate is not None and m.deadline_cases >= minimum}
    for i in scorecards:
        rate = eligible.get(i)
        assert got[i] == (None if rate is None else 1 + sum(1 for other in eligible.values() if other > rate))


def test_a_rate_resting_on_exactly_the_minimum_sample_is_ranked_and_one_less_is_not() -> None:
    rows = [served(f"r{i}", T0, T0 + H) for i in range(MIN_RANKED_SAMPLE)]
    flt = MetricsFilter(start=T0, end=T0 + 30 * D)
    exactly = compute_metrics_from_rows(city(*rows).cases, [], [], flt)
    one_less = compute_metrics_from_rows(city(*rows[1:]).cases, [], [], flt)
    assert (exactly.deadline_cases, one_less.deadline_cases) == (MIN_RANKED_SAMPLE, MIN_RANKED_SAMPLE - 1)
    assert ranks({"exactly": exactly, "one less": one_less}, "deadline_rate") == {"exactly": 1, "one less": None}
    # the same rate to four places is a tie, whatever the samples behind it
    assert ranks({"a": deadline_card(Decimal("0.5"), 30), "b": deadline_card(Decimal("0.5000"), 3000),
                  "c": deadline_card(Decimal("0.4999"), 30), "d": deadline_card(None, 0)}, "deadline_rate") == {
        "a": 1, "b": 1, "c": 3, "d": None}
