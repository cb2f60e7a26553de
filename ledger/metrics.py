"""Published metrics per commitment and per agency: the one definition of each figure, in SQL and in pure Python.

The service computes metrics from its SQL index (:func:`compute_metrics`, SQLite or PostgreSQL), reading the figure
cells the index keeps beside the rows (``ledger.cells``: per day and key, the counts every figure is made of and the
buckets of the values its percentiles are of), so that any selection reads a few hundred rows whatever the number of
cases; an auditor who rebuilt the rows from the chain computes them with :func:`compute_metrics_from_rows`. Both
implement the definitions below, share the arithmetic (:func:`nearest_rank`, :func:`percentile`, :func:`rate`, the
percentile fractions) and give equal :class:`Metrics` — ``to_dict()`` byte for byte — on the same rows;
``tests/ledger/test_metrics.py`` checks this on random rows, on both databases. Per-case values (status,
opened_at, closed_at, due_at, fulfil_seconds, on_time, the hold columns, receipt, rated_at) come from ``ledger.cases``
through the ``cases`` table: hold time is excluded, working days are honoured and a reopened case is judged by its
final fulfilment there, not here.

Selection (:class:`MetricsFilter`)
    agency, commitment (scoped to its agency, so it needs the agency too), district and channel select cases by
    their ``cases`` row. Times are unix seconds and the date range is half-open, ``start <= t < end``; either bound
    may be left open. ``as_of`` is the instant at which the snapshot figures (open, overdue) are taken; it defaults
    to ``end``. Like ``end`` it is exclusive: what happened at a time ``< as_of`` has happened, what happens at
    ``as_of`` has not yet.

Definitions ("in range" means ``start <= t < end`` for the time named)
    cases_opened
        selected cases whose ``opened_at`` is in range.
    fulfilled, rejected, withdrawn
        selected cases with that status whose ``closed_at`` is in range.
    cases_closed
        ``fulfilled + rejected + withdrawn``.
    on_time, on_time_eligible, on_time_rate
        among those fulfilled cases, ``on_time_eligible`` counts the ones with a due time (``on_time`` not null,
        which by the schema are exactly those with ``due_at``) and ``on_time`` the ones fulfilled by it;
        ``on_time_rate = rate(on_time, on_time_eligible)``. Every case has a due time (a working-day deadline counts
        Monday to Friday in a year without a published calendar: ``ledger.cases``, "Due time").
    target_rate
        for a filter naming one commitment, ``target_bps / 10000`` of its latest non-voided version (the promise as
        it stands now), as a 4-place decimal; otherwise None (a target belongs to one commitment).
    median_fulfil_seconds, p90_fulfil_seconds
        ``percentile(·, 1/2)`` and ``percentile(·, 9/10)`` of ``fulfil_seconds`` (opening to fulfilment, hold time
        excluded) over those fulfilled cases.
    open_cases
        selected cases with ``opened_at < as_of`` not closed by then (``closed_at`` null or ``>= as_of``). A
        snapshot: the date range does not apply. For ``t1 <= t2``, and cases closing after they open,
        ``open(t2) = open(t1) + (opened in [t1, t2)) - (closed in [t1, t2))``.
    overdue_cases
        open cases whose effective due time is before ``as_of``. The effective due time is ``due_at``, extended for a
        case on hold by the running hold: ``due_at + max(0, as_of - on_hold_since)``. So a case on hold is overdue only
        if it already was when the hold began (``due_at < on_hold_since``): waiting for the citizen does not make a
        case late, and putting a late case on hold does not make it on time. A case without a due time is never
        overdue. Limitation: a ``cases`` row is the case's state now, so for an ``as_of`` in the past ``due_at`` may
        include holds completed after ``as_of``, and a hold that was running then but has ended is not seen as
        running. The figure is exact for an ``as_of`` at or after every case's last event (e.g. "now").
    events_recorded, latency_median_seconds, latency_max_seconds, late_recordings
        over case events that are not voided (``entries.voided_by`` null), whose ``block_time`` is in range, of the
        filter's agency, and — when the filter names a commitment, district or channel — whose case is a selected
        case. Latency is ``block_time - occurred_at``: recorded time minus claimed time. ``events_recorded`` counts
        the events; median by ``percentile(·, 1/2)``; max; ``late_recordings`` counts latencies ``> 86400`` (recorded
        more than 24 h after the claimed time: possible backdating). Negative latencies (claimed time in the future)
        are kept as they are. The range is on block time because that is the one time nobody can choose. An event of
        a case without a ``cases`` row (its Opened never recorded: no correction voids one) has no commitment,
        district or channel: it counts in city and agency figures — its agency did record it, late or not — and in no
        figure narrowed by commitment, district or channel.
    rejection_rate
        ``rate(rejected, fulfilled + rejected)`` over the cases closed in range. Withdrawn cases are left out: a
        withdrawal is the citizen's decision, not the agency's answer, so counting it either way would misstate how
        often the agency refuses.

    The figures a city publishes (its hotline's and the 政务服务"好差评" scheme's). Each is a :func:`rate` of two
    counts, both published, so that a reader can see how many cases a rate rests on.
    late_rejections, late_withdrawals
        the rejected (withdrawn) cases closed in range that had a due time and were closed after it (``closed_at >
        due_at``): refusing a late case, or recording it withdrawn, must not take it out of the on-time figures (a
        withdrawal is recorded by the agency, so it could be used to the same end).
    deadline_cases, deadline_rate
        the on-time rate as a city publishes it: ``deadline_rate = rate(on_time, deadline_cases)`` with
        ``deadline_cases = on_time_eligible + late_rejections + late_withdrawals + overdue_cases``. Its denominator
        holds every case whose deadline has been decided against the agency in the period as well as the ones it met:
        fulfilled in range (on time or late), rejected or withdrawn late in range, and still open past the due time at
        ``as_of``. An agency that leaves its late cases open, or closes them unfulfilled, lowers it; ``on_time_rate``
        (fulfilled cases only) stays as it was, under its name.
    responses_due, responded_on_time, response_rate
        over the selected cases opened in range (``ledger.cases``, "Response": the first Accepted, OnHold, Fulfilled
        or Rejected, due within a filing's answer time): ``responded_on_time`` counts those responded to before
        ``as_of`` and by ``response_due``; ``responses_due`` those responded to before ``as_of`` or whose response
        was due before it (a case still within its response time, unanswered, is not judged yet);
        ``response_rate = rate(responded_on_time, responses_due)``.
    answers_with_receipt, resolved, resolution_rate
        judged by the citizen, so only where the citizen could contest it: ``answers_with_receipt`` counts the
        fulfilled and rejected cases closed in range that have a receipt (a withdrawal is not the agency's answer, as
        for ``rejection_rate``); ``resolved`` those of them fulfilled that no dispute contested before ``as_of``
        (``disputed_at`` null or ``>= as_of``); ``resolution_rate = rate(resolved, answers_with_receipt)``. A case
        disputed and then fulfilled again is not resolved: its first answer did not resolve it. An agency that gives
        no receipts has no resolution rate (and a low ``rating_coverage``), rather than a perfect one.
    satisfaction_rate
        ``rate(ratings with score 4 or 5, ratings)``: satisfied or very satisfied, among the ratings in range.
    rating_coverage
        ``rate(rated, cases_closed)``: the share of the cases closed in range that their citizen rated before
        ``as_of``, whether or not they were given a receipt (an agency that gives no receipts is not rated, and this
        shows it; ``rating_response_rate`` is the share among the cases that could be rated).
    bad_ratings, rectifications_due, rectified_on_time, rectification_rate
        ``bad_ratings`` counts the selected cases whose rating (``cases.rating``, one per case) is at most
        ``ledger.cases.BAD_RATING_MAX`` and was made in range. Among those made before ``as_of``:
        ``rectified_on_time`` counts the ones the agency rectified before ``as_of`` and by ``rectification_due``
        (15 working days, ``ledger.cases``, "Rectification"); ``rectifications_due`` the ones rectified before
        ``as_of`` or whose rectification was due before it; ``rectification_rate = rate(rectified_on_time,
        rectifications_due)``. A bad rating of a case without a ``cases`` row (never opened) is in ``ratings``
        but not here: the rectification belongs to the case's fold.
    Like ``overdue_cases``, these read the ``cases`` row, the case's state now; every time they compare with
    ``as_of`` is stored in the row, so they are exact for any ``as_of``, except that a response, a first dispute or
    a rectification that was voided is not seen at an ``as_of`` before its voiding.

    Rankings (:func:`ranks`)
        A scorecard's agency (commitment) is ranked by one of :data:`RANKED_FIGURES`, highest first, with equal
        rates sharing a rank and the next rank counting them (1, 2, 2, 4). One whose rate rests on fewer than
        :data:`MIN_RANKED_SAMPLE` cases (the rate's denominator), or has none, is shown but not ranked: a rate of 3
        cases is not compared with one of 30,000.

    Citizens' feedback. Ratings, disputes and Reopened events are selected like case events (above): of the filter's
    agency, and — when it names a commitment, district or channel — of a selected case; one of a case without a
    ``cases`` row counts in city and agency figures only (an agency cannot drop a rating from its figures by leaving
    the case unopened, nor void the case's opening or the rating itself: see ``ledger.cases.unvoidable``).
    ratings, rating_distribution, rating_average
        over ratings (``ratings`` rows) whose ``block_time`` is in range: ``ratings`` counts them,
        ``rating_distribution`` is the list of how many have score 1, 2, 3, 4 and 5, and
        ``rating_average = rate(sum of their scores, ratings)`` — the mean score as a 4-place decimal (``"4.2500"``),
        None when there are none.
    rating_response_rate
        ``rate(rated, closed_with_receipt)`` over the selected cases closed in range (as ``cases_closed``) that have
        a receipt (``receipt`` not null): ``rated`` counts those rated before ``as_of`` (``rated_at < as_of``). A
        case that was not given a receipt cannot be rated, so it is not in the denominator.
    disputes
        disputes (``disputes`` rows) whose ``block_time`` is in range.
    disputes_unanswered
        disputes whose answer was due before ``as_of`` and had not come by then: ``block_time +
        DISPUTE_RESPONSE_WINDOW < as_of`` (``ledger.receipt_state.answer_due``; the window is
        ``ledger.cases.DISPUTE_RESPONSE_WINDOW``, ten days, the contract's) and ``answered_at`` null or ``>= as_of``.
        A snapshot, like ``overdue_cases``: the date range does not apply. An answer after the deadline ends the
        count (the auditor lists such late answers).
    ratings_by_key_origin, rating_average_by_key_origin, disputes_by_key_origin
        those ratings (disputes) counted apart by the origin of the key that signed them (``ledger.filings``): a key
        *filed* with the citizen's own request, one *claimed* by the holder of a printed code, one *agency-issued*
        (the agency recorded it, and may have kept it) — each a list in that order (:data:`ORIGINS`), the averages as
        ``rating_average`` is. The origin is the kind of the entry that bound the signing key to the case (the
        ``receipts`` row of that key, before the rating or dispute): FilingAnswered, ReceiptClaimed, else
        ReceiptIssued. Nobody has to take a printed code's rating on trust: it is shown apart.
    reopened
        Reopened case events that are not voided, whose ``block_time`` is in range (each reopening of a case counts;
        one that was not a valid transition — of a case not closed — counts too, and the auditor reports it).

    Citizens' filings (``filings`` rows; ``ledger.filings``). A filing is selected by its own agency, commitment,
    district and channel (it has no case until it is accepted, and a rejected one never has).
    filings
        filings whose ``block_time`` (when it was filed: nobody chooses it) is in range.
    filings_accepted, filings_rejected
        filings whose answer's ``answered_at`` is in range, accepted; or rejected (duplicate, out of scope, spam).
    filings_answered_late
        of those answered in range, the ones answered after their ``answer_due`` (``ledger.filings.late``).
    filings_overdue
        filings made before ``as_of`` that had no answer by then, whose ``answer_due`` is before ``as_of``
        (``ledger.filings.overdue``). A snapshot, like ``overdue_cases``: the date range does not apply. The due time
        is the one the index holds, by the jurisdiction's calendars as published now.

Scorecards
    per agency (per commitment): for each agency (commitment) that has a case matching the filter — at any time, so a
    group idle in the range still shows its open cases — the metrics of the filter narrowed to that group. Keys are
    in code-point order.

Arithmetic (exact, so every database and Python agree)
    percentile(values, p)
        nearest rank: the value at 1-based rank ``ceil(p * n)`` of the ``n`` ascending values (``p`` a Fraction),
        None when there are none; equivalently the least value ``v`` with ``#(values <= v) >= p * n``, which is how
        SQL finds it. No interpolation, so integer seconds stay integers (the median of two values is the lower).
    rate(numerator, denominator)
        ``numerator / denominator`` rounded to 4 decimal places, ties to even (``ROUND_HALF_EVEN``), computed in
        integers and returned as a ``Decimal`` with exactly 4 places; None when the denominator is 0.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    case,
    exists,
    func,
    literal,
    select,
)

from ledger import cells
from ledger.cases import BAD_RATING_MAX, FULFILLED, ON_HOLD, OPEN, REJECTED, WITHDRAWN
from ledger.cells import LATE_RECORDING_SECONDS
from ledger.errors import LedgerError
from ledger.filings import AGENCY_ISSUED, CLAIMED, FILED, late, overdue
from ledger.receipt_state import answer_due
from ledger.records import CaseAction, EntryKind, FilingDecision
from ledger.store.schema import CODE, commitments, entries, receipts

#: the origins of a signing key, in the order the ``…_by_key_origin`` figures list them
ORIGINS = (FILED, CLAIMED, AGENCY_ISSUED)

__all__ = [
    "CaseRow",
    "CommitmentRow",
    "DisputeRow",
    "EventRow",
    "FilingRow",
    "InvalidFilter",
    "Metrics",
    "MetricsFilter",
    "RatingRow",
    "agency_scorecards",
    "commitment_scorecards",
    "compute_metrics",
    "compute_metrics_from_rows",
    "is_case_overdue_at",
    "is_filing_overdue_at",
    "is_open_at",
    "is_overdue_at",
    "is_unanswered_at",
    "nearest_rank",
    "percentile",
    "ranks",
    "rate",
    "rate_from_bps",
    "scorecards_from_rows",
    "table_values",
]

MEDIAN = Fraction(1, 2)
P90 = Fraction(9, 10)
#: rates are published to this many decimal places (4 places = basis points, the unit of a commitment's target)
RATE_PLACES = 4
_RATE_SCALE = 10**RATE_PLACES

_INT64_MAX = 2**63 - 1  # times are BIGINT columns

#: the step of the times a published selection names (its range and ``as_of``): a whole minute. The API takes every
#: time parameter to it, so the same question asked in any second of a minute is one answer (computed once, cached);
#: the auditor draws its selections on it, so it asks exactly what the API answers.
TIME_STEP = 60


def whole_step(moment: int) -> int:
    """``moment`` taken to its whole :data:`TIME_STEP` (the seconds dropped)."""
    return moment - moment % TIME_STEP


#: scores a rating can have
SCORES = (1, 2, 3, 4, 5)
#: scores of a satisfied rating (satisfied, very satisfied)
SATISFIED_MIN = 4
#: the fewest cases a rate may rest on to be ranked (see "Rankings")
MIN_RANKED_SAMPLE = 30
_REOPENED = int(CaseAction.REOPENED)


class InvalidFilter(LedgerError, ValueError):
    """A metrics filter that cannot select anything meaningful (e.g. start not before end)."""


# --- arithmetic shared by both implementations ------------------------------------------------------------------------


def nearest_rank(n: int, p: Fraction) -> int:
    """1-based rank ``ceil(p * n)`` of the nearest-rank percentile ``p`` (0 < p <= 1) among ``n >= 1`` values."""
    if n < 1:
        raise ValueError("a rank needs at least one value")
    if not 0 < p <= 1:
        raise ValueError(f"a percentile is in (0, 1], got {p}")
    return -(-p.numerator * n // p.denominator)


def percentile(sorted_values: Sequence[int], p: Fraction) -> int | None:
    """Nearest-rank percentile ``p`` of ascending values, or None when there are none."""
    if not sorted_values:
        return None
    return sorted_values[nearest_rank(len(sorted_values), p) - 1]


def rate(numerator: int, denominator: int) -> Decimal | None:
    """``numerator / denominator`` to 4 places, ties to even, in exact integer arithmetic; None if nothing to divide."""
    if denominator == 0:
        return None
    if numerator < 0 or denominator < 0:
        raise ValueError("a rate is of counts, which are not negative")
    units, remainder = divmod(numerator * _RATE_SCALE, denominator)
    # ROUND_HALF_EVEN: more than half rounds up; exactly half rounds to the even neighbour
    if 2 * remainder > denominator or (2 * remainder == denominator and units % 2 == 1):
        units += 1
    return Decimal(units).scaleb(-RATE_PLACES)


def rate_from_bps(target_bps: int) -> Decimal:
    """A commitment's target on-time rate, ``target_bps / 10000``, as the same 4-place decimal as :func:`rate`."""
    return Decimal(target_bps).scaleb(-RATE_PLACES)


@dataclass(frozen=True)
class _Distribution:
    """What the metrics need of a set of integers: count, median, p90, max and how many exceed a threshold."""

    count: int = 0
    median: int | None = None
    p90: int | None = None
    maximum: int | None = None
    above: int = 0
    #: (SQL only) how many of the rows also met a further condition, counted in the same pass
    also: int = 0


@dataclass(frozen=True)
class _Filings:
    """The counts the filings figures are made of."""

    filed: int = 0
    accepted: int = 0
    rejected: int = 0
    late: int = 0
    overdue: int = 0


@dataclass(frozen=True)
class _Judged:
    """The counts the figures a city publishes are made of, besides those counted already."""

    late_rejections: int = 0
    late_withdrawals: int = 0
    answers_with_receipt: int = 0
    responses_due: int = 0
    responded_on_time: int = 0
    resolved: int = 0
    bad_ratings: int = 0
    rectifications_due: int = 0
    rectified_on_time: int = 0


@dataclass(frozen=True)
class _Feedback:
    """The counts the citizens' feedback figures are made of."""

    #: ratings with score 1, 2, 3, 4, 5
    scores: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    closed_with_receipt: int = 0
    rated: int = 0
    disputes: int = 0
    unanswered: int = 0
    reopened: int = 0
    #: by key origin (:data:`ORIGINS`): ratings, the sum of their scores, disputes
    origin_ratings: tuple[int, int, int] = (0, 0, 0)
    origin_scores: tuple[int, int, int] = (0, 0, 0)
    origin_disputes: tuple[int, int, int] = (0, 0, 0)


def _distribution(values: Iterable[int], threshold: int | None = None) -> _Distribution:
    ordered = sorted(values)
    if not ordered:
        return _Distribution()
    return _Distribution(
        count=len(ordered),
        median=percentile(ordered, MEDIAN),
        p90=percentile(ordered, P90),
        maximum=ordered[-1],
        above=0 if threshold is None else sum(1 for v in ordered if v > threshold),
    )


# --- values -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MetricsFilter:
    """Which cases and case events a :class:`Metrics` covers. Times are unix seconds; the range is ``[start, end)``."""

    agency_id: str | None = None
    #: commitment ids are scoped to their agency, so a commitment needs ``agency_id`` too
    commitment_id: str | None = None
    start: int | None = None
    end: int | None = None
    district: str | None = None
    channel: int | None = None
    #: the "now" of the snapshot figures (open, overdue); defaults to ``end``, so it is required when ``end`` is open
    as_of: int | None = None

    def __post_init__(self) -> None:
        for name in ("agency_id", "commitment_id", "district"):
            value = getattr(self, name)
            # as stored: a printable code of up to 32 characters, or 0x + 64 hex digits for any other bytes32
            if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= CODE):
                raise InvalidFilter(f"{name} must be a code of 1 to {CODE} characters, got {value!r}")
        if self.commitment_id is not None and self.agency_id is None:
            raise InvalidFilter("commitment_id needs agency_id: commitment ids are scoped to their agency")
        if self.channel is not None and (_not_int(self.channel) or not 1 <= self.channel <= 255):
            raise InvalidFilter(f"channel must be an integer from 1 to 255, got {self.channel!r}")
        for name in ("start", "end", "as_of"):
            value = getattr(self, name)
            if value is not None and (_not_int(value) or not 0 <= value <= _INT64_MAX):
                raise InvalidFilter(f"{name} must be unix seconds (an integer from 0 to 2**63 - 1), got {value!r}")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise InvalidFilter(f"start ({self.start}) must be before end ({self.end}): the range is [start, end)")
        if self.as_of is None:
            if self.end is None:
                raise InvalidFilter("as_of is needed when end is open: open and overdue counts are taken at a time")
            object.__setattr__(self, "as_of", self.end)

    @property
    def now(self) -> int:
        """``as_of``, which is always set once the filter is built."""
        assert self.as_of is not None
        return self.as_of

    @property
    def commitment_key(self) -> tuple[str, str] | None:
        """(agency_id, commitment_id) when the filter names one commitment."""
        if self.agency_id is None or self.commitment_id is None:
            return None
        return (self.agency_id, self.commitment_id)

    @property
    def narrows_cases(self) -> bool:
        """Whether case events must be matched to their case (a commitment, district or channel is named)."""
        return self.commitment_id is not None or self.district is not None or self.channel is not None


def _not_int(value: object) -> bool:
    return not isinstance(value, int) or isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class Metrics:
    """The published figures for one selection; the module docstring defines each field."""

    cases_opened: int
    cases_closed: int
    fulfilled: int
    rejected: int
    withdrawn: int
    on_time: int
    on_time_eligible: int
    on_time_rate: Decimal | None
    target_rate: Decimal | None
    median_fulfil_seconds: int | None
    p90_fulfil_seconds: int | None
    open_cases: int
    overdue_cases: int
    events_recorded: int
    latency_median_seconds: int | None
    latency_max_seconds: int | None
    late_recordings: int
    rejection_rate: Decimal | None
    ratings: int = 0
    rating_average: Decimal | None = None
    #: how many ratings scored 1, 2, 3, 4 and 5
    rating_distribution: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    rating_response_rate: Decimal | None = None
    disputes: int = 0
    disputes_unanswered: int = 0
    reopened: int = 0
    #: ratings, their average, and disputes, by the origin of the signing key (:data:`ORIGINS`: filed, claimed,
    #: agency-issued)
    ratings_by_key_origin: tuple[int, int, int] = (0, 0, 0)
    rating_average_by_key_origin: tuple[Decimal | None, Decimal | None, Decimal | None] = (None, None, None)
    disputes_by_key_origin: tuple[int, int, int] = (0, 0, 0)
    filings: int = 0
    filings_accepted: int = 0
    filings_rejected: int = 0
    filings_answered_late: int = 0
    filings_overdue: int = 0
    late_rejections: int = 0
    late_withdrawals: int = 0
    deadline_cases: int = 0
    deadline_rate: Decimal | None = None
    responses_due: int = 0
    responded_on_time: int = 0
    response_rate: Decimal | None = None
    answers_with_receipt: int = 0
    resolved: int = 0
    resolution_rate: Decimal | None = None
    satisfaction_rate: Decimal | None = None
    rating_coverage: Decimal | None = None
    bad_ratings: int = 0
    rectifications_due: int = 0
    rectified_on_time: int = 0
    rectification_rate: Decimal | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts and seconds as integers, rates (and the rating average) as exact decimal strings
        (``"0.9523"``, ``"4.2500"``), the rating distribution as a list of five integers, absent as null."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) if isinstance(v, Decimal) else v for v in value]
            out[f.name] = value
        return out


def _assemble(
    *,
    opened: int,
    fulfilled: int,
    rejected: int,
    withdrawn: int,
    on_time: int,
    on_time_eligible: int,
    target_bps: int | None,
    fulfil: _Distribution,
    open_cases: int,
    overdue: int,
    latency: _Distribution,
    feedback: _Feedback,
    filed: _Filings,
    judged: _Judged,
) -> Metrics:
    """The published figures from the counted ones: the derived ones (totals, rates) are computed here only."""
    deadline_cases = on_time_eligible + judged.late_rejections + judged.late_withdrawals + overdue
    return Metrics(
        cases_opened=opened,
        cases_closed=fulfilled + rejected + withdrawn,
        fulfilled=fulfilled,
        rejected=rejected,
        withdrawn=withdrawn,
        on_time=on_time,
        on_time_eligible=on_time_eligible,
        on_time_rate=rate(on_time, on_time_eligible),
        target_rate=None if target_bps is None else rate_from_bps(target_bps),
        median_fulfil_seconds=fulfil.median,
        p90_fulfil_seconds=fulfil.p90,
        open_cases=open_cases,
        overdue_cases=overdue,
        events_recorded=latency.count,
        latency_median_seconds=latency.median,
        latency_max_seconds=latency.maximum,
        late_recordings=latency.above,
        rejection_rate=rate(rejected, fulfilled + rejected),
        ratings=sum(feedback.scores),
        rating_average=rate(sum(n * score for n, score in zip(feedback.scores, SCORES, strict=True)),
                            sum(feedback.scores)),
        rating_distribution=feedback.scores,
        rating_response_rate=rate(feedback.rated, feedback.closed_with_receipt),
        disputes=feedback.disputes,
        disputes_unanswered=feedback.unanswered,
        reopened=feedback.reopened,
        ratings_by_key_origin=feedback.origin_ratings,
        rating_average_by_key_origin=tuple(  # type: ignore[arg-type]
            rate(total, n) for total, n in zip(feedback.origin_scores, feedback.origin_ratings, strict=True)
        ),
        disputes_by_key_origin=feedback.origin_disputes,
        filings=filed.filed,
        filings_accepted=filed.accepted,
        filings_rejected=filed.rejected,
        filings_answered_late=filed.late,
        filings_overdue=filed.overdue,
        late_rejections=judged.late_rejections,
        late_withdrawals=judged.late_withdrawals,
        deadline_cases=deadline_cases,
        deadline_rate=rate(on_time, deadline_cases),
        responses_due=judged.responses_due,
        responded_on_time=judged.responded_on_time,
        response_rate=rate(judged.responded_on_time, judged.responses_due),
        answers_with_receipt=judged.answers_with_receipt,
        resolved=judged.resolved,
        resolution_rate=rate(judged.resolved, judged.answers_with_receipt),
        satisfaction_rate=rate(sum(feedback.scores[SATISFIED_MIN - 1:]), sum(feedback.scores)),
        rating_coverage=rate(feedback.rated, fulfilled + rejected + withdrawn),
        bad_ratings=judged.bad_ratings,
        rectifications_due=judged.rectifications_due,
        rectified_on_time=judged.rectified_on_time,
        rectification_rate=rate(judged.rectified_on_time, judged.rectifications_due),
    )


#: the figures a scorecard may be ranked by, each with the count it is a rate of (its sample: see "Rankings")
RANKED_FIGURES: dict[str, Callable[[Metrics], tuple[Decimal | None, int]]] = {
    "deadline_rate": lambda m: (m.deadline_rate, m.deadline_cases),
    "response_rate": lambda m: (m.response_rate, m.responses_due),
    "resolution_rate": lambda m: (m.resolution_rate, m.answers_with_receipt),
    "satisfaction_rate": lambda m: (m.satisfaction_rate, m.ratings),
    "rating_coverage": lambda m: (m.rating_coverage, m.cases_closed),
    "rectification_rate": lambda m: (m.rectification_rate, m.rectifications_due),
    "on_time_rate": lambda m: (m.on_time_rate, m.on_time_eligible),
}

_K = TypeVar("_K")


def ranks(scorecards: dict[_K, Metrics], figure: str, min_sample: int = MIN_RANKED_SAMPLE) -> dict[_K, int | None]:
    """Each scorecard's rank by `figure` (one of :data:`RANKED_FIGURES`): 1 for the highest rate, equal rates sharing a
    rank and the next counting them (1, 2, 2, 4); None for one whose rate rests on fewer than `min_sample` cases or
    has no rate (see "Rankings")."""
    if figure not in RANKED_FIGURES:
        raise InvalidFilter(f"figure must be one of {', '.join(RANKED_FIGURES)}, got {figure!r}")
    of = RANKED_FIGURES[figure]
    ranked: dict[_K, Decimal] = {}
    for key, metrics in scorecards.items():
        value, sample = of(metrics)
        if value is not None and sample >= min_sample:
            ranked[key] = value
    ascending = sorted(ranked.values())
    # a rank is 1 + how many rates are higher
    return {key: None if key not in ranked else 1 + len(ascending) - bisect.bisect_right(ascending, ranked[key])
            for key in scorecards}


# --- rows, for the pure-Python implementation -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CaseRow:
    """A row of the ``cases`` table (``ledger.store.schema`` says what each column means)."""

    agency_id: str
    case_id: bytes
    commitment_id: str
    commitment_version: int
    district: str
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


@dataclass(frozen=True, kw_only=True)
class RatingRow:
    """A row of the ``ratings`` table. ``key_origin``, one of :data:`ORIGINS`, is the origin of the key that signed it:
    the kind of the ``receipts`` row that bound that key before it (:func:`key_origin_sql`, which the index stores)."""

    seq: int
    agency_id: str
    case_id: bytes
    score: int
    comment_hash: bytes
    receipt: str
    block_time: int
    key_origin: str = AGENCY_ISSUED


@dataclass(frozen=True, kw_only=True)
class DisputeRow:
    """A row of the ``disputes`` table."""

    seq: int
    agency_id: str
    case_id: bytes
    closure: int
    reason_hash: bytes
    receipt: str
    block_time: int
    answer_seq: int | None = None
    answer_action: int | None = None
    answered_at: int | None = None
    #: the origin of the key that signed it, as for :class:`RatingRow`
    key_origin: str = AGENCY_ISSUED


@dataclass(frozen=True, kw_only=True)
class EventRow:
    """A row of the ``case_events`` table, with its entry's ``voided_by`` (a column of ``entries``)."""

    seq: int
    agency_id: str
    case_id: bytes
    action: int
    occurred_at: int
    block_time: int
    details_hash: bytes
    #: intake fields, on Opened events only (metrics take a case's from its ``cases`` row)
    commitment_id: str | None = None
    district: str | None = None
    channel: int | None = None
    voided_by: int | None = None


@dataclass(frozen=True, kw_only=True)
class CommitmentRow:
    """A row of the ``commitments`` table (one version of a commitment), with its entry's ``voided_by``."""

    agency_id: str
    commitment_id: str
    version: int
    service_code: str
    name_zh: str
    name_en: str
    deadline: int
    deadline_unit: int
    target_bps: int
    valid_from: int
    terms_hash: bytes
    occurred_at: int
    seq: int
    retired_seq: int | None = None
    voided_by: int | None = None


@dataclass(frozen=True, kw_only=True)
class FilingRow:
    """A row of the ``filings`` table."""

    seq: int
    agency_id: str
    commitment_id: str
    district: str
    channel: int
    content_hash: bytes
    receipt: str
    relayer: str
    block_time: int
    answer_due: int
    answer_seq: int | None = None
    decision: int | None = None
    case_id: bytes | None = None
    duplicate_of: bytes | None = None
    reason_hash: bytes | None = None
    answered_at: int | None = None
    #: the id of the case an acceptance opens (``ledger.records.filed_case_id`` of ``seq``)
    filed_case_id: bytes


def table_values(row: CaseRow | EventRow | CommitmentRow | RatingRow | DisputeRow | FilingRow) -> dict[str, Any]:
    """The row's values for an insert into its own table (``voided_by`` belongs to ``entries``; ``key_origin`` is left
    for the store to derive from ``receipts``, as the index does: ``ledger.index.project.fill_key_origins``)."""
    values = dataclasses.asdict(row)
    values.pop("voided_by", None)
    values.pop("key_origin", None)
    return values


# --- pure Python ------------------------------------------------------------------------------------------------------


def _in_range(t: int | None, flt: MetricsFilter) -> bool:
    return t is not None and (flt.start is None or t >= flt.start) and (flt.end is None or t < flt.end)


def _case_selected(case: CaseRow, flt: MetricsFilter) -> bool:
    return (
        (flt.agency_id is None or case.agency_id == flt.agency_id)
        and (flt.commitment_id is None or case.commitment_id == flt.commitment_id)
        and (flt.district is None or case.district == flt.district)
        and (flt.channel is None or case.channel == flt.channel)
    )


def is_open_at(case: CaseRow, as_of: int) -> bool:
    return case.opened_at < as_of and (case.closed_at is None or case.closed_at >= as_of)


def is_overdue_at(case: CaseRow, as_of: int) -> bool:
    """Whether the case's effective due time is before ``as_of`` (see ``overdue_cases``; :func:`_overdue_at` is its
    SQL twin). It counts in ``overdue_cases`` when it is also open then (:func:`is_open_at`); for one case's own
    ``overdue`` flag, see :func:`is_case_overdue_at`."""
    if case.due_at is None:
        return False
    due = case.due_at
    if case.status == ON_HOLD and case.on_hold_since is not None:
        due += max(0, as_of - case.on_hold_since)  # the running hold extends the due time
    return due < as_of


def is_case_overdue_at(case: CaseRow, as_of: int) -> bool:
    """One case's ``overdue`` at ``as_of``, as the API's case view shows it: its status is open or on hold, and it
    counts in ``overdue_cases`` at ``as_of`` — open then (:func:`is_open_at`) and past its effective due time
    (:func:`is_overdue_at`)."""
    return case.status in (OPEN, ON_HOLD) and is_open_at(case, as_of) and is_overdue_at(case, as_of)


def _latest_targets(versions: Iterable[tuple[str, str, int, int]]) -> dict[tuple[str, ...], int]:
    """(agency, commitment) -> target_bps of its highest version, from (agency, commitment, version, target_bps)
    of the non-voided versions."""
    latest: dict[tuple[str, ...], tuple[int, int]] = {}
    for agency_id, commitment_id, version, target_bps in versions:
        key = (agency_id, commitment_id)
        if key not in latest or version > latest[key][0]:
            latest[key] = (version, target_bps)
    return {key: target_bps for key, (_, target_bps) in latest.items()}


def _latest_target_bps(commitment_rows: Iterable[CommitmentRow], key: tuple[str, str] | None) -> int | None:
    if key is None:
        return None
    targets = _latest_targets(
        (row.agency_id, row.commitment_id, row.version, row.target_bps)
        for row in commitment_rows
        if (row.agency_id, row.commitment_id) == key and row.voided_by is None
    )
    return targets.get(key)


def _filing_selected(filing: FilingRow, flt: MetricsFilter) -> bool:
    return ((flt.agency_id is None or filing.agency_id == flt.agency_id)
            and (flt.commitment_id is None or filing.commitment_id == flt.commitment_id)
            and (flt.district is None or filing.district == flt.district)
            and (flt.channel is None or filing.channel == flt.channel))


def is_filing_overdue_at(filing: FilingRow, as_of: int) -> bool:
    """Whether a filing made before ``as_of`` was unanswered then, past its answer's due time."""
    answered = filing.answered_at is not None and filing.answered_at < as_of
    return filing.block_time < as_of and overdue(filing.answer_due, as_of, answered=answered)


def _filings_from_rows(filing_rows: Iterable[FilingRow], flt: MetricsFilter) -> _Filings:
    chosen = [filing for filing in filing_rows if _filing_selected(filing, flt)]
    answered = [f for f in chosen if _in_range(f.answered_at, flt)]
    return _Filings(
        filed=sum(1 for f in chosen if _in_range(f.block_time, flt)),
        accepted=sum(1 for f in answered if f.decision == FilingDecision.ACCEPTED),
        rejected=sum(1 for f in answered if f.decision != FilingDecision.ACCEPTED),
        late=sum(1 for f in answered if f.answered_at is not None and late(f.answer_due, f.answered_at)),
        overdue=sum(1 for f in chosen if is_filing_overdue_at(f, flt.now)),
    )


def _before(t: int | None, as_of: int) -> bool:
    return t is not None and t < as_of


def _closed_late(case: CaseRow) -> bool:
    return case.due_at is not None and case.closed_at is not None and case.closed_at > case.due_at


def _judged_from_rows(
    selected: list[CaseRow], closed: list[CaseRow], fulfilled: list[CaseRow], flt: MetricsFilter
) -> _Judged:
    """The counts of the figures a city publishes (see the module docstring), from the selected cases."""
    as_of = flt.now
    opened = [case for case in selected if _in_range(case.opened_at, flt)]
    bad = [case for case in selected
           if case.rating is not None and case.rating <= BAD_RATING_MAX and _in_range(case.rated_at, flt)]
    bad_then = [case for case in bad if _before(case.rated_at, as_of)]
    return _Judged(
        late_rejections=sum(1 for case in closed if case.status == REJECTED and _closed_late(case)),
        late_withdrawals=sum(1 for case in closed if case.status == WITHDRAWN and _closed_late(case)),
        answers_with_receipt=sum(1 for case in closed if case.receipt is not None and case.status != WITHDRAWN),
        responses_due=sum(1 for case in opened if case.response_due is not None
                          and (_before(case.responded_at, as_of) or case.response_due < as_of)),
        responded_on_time=sum(1 for case in opened if case.responded_at is not None and case.responded_at < as_of
                              and case.response_due is not None and case.responded_at <= case.response_due),
        resolved=sum(1 for case in fulfilled if case.receipt is not None
                     and (case.disputed_at is None or case.disputed_at >= as_of)),
        bad_ratings=len(bad),
        rectifications_due=sum(1 for case in bad_then if case.rectification_due is not None
                               and (_before(case.rectified_at, as_of) or case.rectification_due < as_of)),
        rectified_on_time=sum(1 for case in bad_then if case.rectified_at is not None and case.rectified_at < as_of
                              and case.rectification_due is not None and case.rectified_at <= case.rectification_due),
    )


def is_unanswered_at(dispute: DisputeRow, as_of: int) -> bool:
    """Whether the dispute's answer was due before ``as_of`` and had not come by then."""
    return answer_due(dispute.block_time) < as_of and (
        dispute.answered_at is None or dispute.answered_at >= as_of
    )


def compute_metrics_from_rows(
    case_rows: Iterable[CaseRow],
    event_rows: Iterable[EventRow],
    commitment_rows: Iterable[CommitmentRow],
    flt: MetricsFilter,
    *,
    rating_rows: Iterable[RatingRow] = (),
    dispute_rows: Iterable[DisputeRow] = (),
    filing_rows: Iterable[FilingRow] = (),
) -> Metrics:
    """The metrics of ``flt`` from rows in memory (e.g. rebuilt from the chain by an auditor), by the same
    definitions as :func:`compute_metrics`."""
    as_of = flt.now
    all_cases = list(case_rows)
    selected = [case for case in all_cases if _case_selected(case, flt)]
    closed = [case for case in selected if _in_range(case.closed_at, flt)]
    fulfilled = [case for case in closed if case.status == FULFILLED]
    open_now = [case for case in selected if is_open_at(case, as_of)]
    selected_keys = {(case.agency_id, case.case_id) for case in selected}

    def chosen(row: EventRow | RatingRow | DisputeRow) -> bool:
        """Selected like a case event: of the filter's agency, and of a selected case when the filter narrows."""
        return (flt.agency_id is None or row.agency_id == flt.agency_id) and (
            not flt.narrows_cases or (row.agency_id, row.case_id) in selected_keys
        )

    events = [event for event in event_rows if event.voided_by is None and _in_range(event.block_time, flt)
              and chosen(event)]
    latencies = [event.block_time - event.occurred_at for event in events]
    scores = [0] * len(SCORES)
    origin_ratings, origin_scores, origin_disputes = [0, 0, 0], [0, 0, 0], [0, 0, 0]
    for rating in rating_rows:
        if _in_range(rating.block_time, flt) and chosen(rating):
            scores[rating.score - 1] += 1
            origin_ratings[ORIGINS.index(rating.key_origin)] += 1
            origin_scores[ORIGINS.index(rating.key_origin)] += rating.score
    chosen_disputes = [dispute for dispute in dispute_rows if chosen(dispute)]
    for dispute in chosen_disputes:
        if _in_range(dispute.block_time, flt):
            origin_disputes[ORIGINS.index(dispute.key_origin)] += 1
    with_receipt = [case for case in closed if case.receipt is not None]
    feedback = _Feedback(
        scores=tuple(scores),  # type: ignore[arg-type]
        closed_with_receipt=len(with_receipt),
        rated=sum(1 for case in with_receipt if case.rated_at is not None and case.rated_at < as_of),
        disputes=sum(1 for dispute in chosen_disputes if _in_range(dispute.block_time, flt)),
        unanswered=sum(1 for dispute in chosen_disputes if is_unanswered_at(dispute, as_of)),
        reopened=sum(1 for event in events if event.action == _REOPENED),
        origin_ratings=tuple(origin_ratings),  # type: ignore[arg-type]
        origin_scores=tuple(origin_scores),  # type: ignore[arg-type]
        origin_disputes=tuple(origin_disputes),  # type: ignore[arg-type]
    )
    return _assemble(
        opened=sum(1 for case in selected if _in_range(case.opened_at, flt)),
        judged=_judged_from_rows(selected, closed, fulfilled, flt),
        fulfilled=len(fulfilled),
        rejected=sum(1 for case in closed if case.status == REJECTED),
        withdrawn=sum(1 for case in closed if case.status == WITHDRAWN),
        on_time=sum(1 for case in fulfilled if case.on_time is True),
        on_time_eligible=sum(1 for case in fulfilled if case.on_time is not None),
        target_bps=_latest_target_bps(commitment_rows, flt.commitment_key),
        fulfil=_distribution(case.fulfil_seconds for case in fulfilled if case.fulfil_seconds is not None),
        open_cases=len(open_now),
        overdue=sum(1 for case in open_now if is_overdue_at(case, as_of)),
        latency=_distribution(latencies, LATE_RECORDING_SECONDS),
        feedback=feedback,
        filed=_filings_from_rows(filing_rows, flt),
    )


def scorecards_from_rows(
    case_rows: Iterable[CaseRow],
    event_rows: Iterable[EventRow],
    commitment_rows: Iterable[CommitmentRow],
    flt: MetricsFilter,
    *,
    by: Literal["agency", "commitment"],
    rating_rows: Iterable[RatingRow] = (),
    dispute_rows: Iterable[DisputeRow] = (),
    filing_rows: Iterable[FilingRow] = (),
) -> dict[Any, Metrics]:
    """:func:`agency_scorecards` (``by="agency"``) or :func:`commitment_scorecards` (``by="commitment"``) from rows
    in memory, for the auditor."""
    all_cases, all_events, all_commitments = list(case_rows), list(event_rows), list(commitment_rows)
    all_ratings, all_disputes, all_filings = list(rating_rows), list(dispute_rows), list(filing_rows)
    selected = [case for case in all_cases if _case_selected(case, flt)]
    narrowed: list[MetricsFilter]
    if by == "agency":
        narrowed = [dataclasses.replace(flt, agency_id=a) for a in sorted({case.agency_id for case in selected})]
    elif by == "commitment":
        keys = sorted({(case.agency_id, case.commitment_id) for case in selected})
        narrowed = [dataclasses.replace(flt, agency_id=a, commitment_id=m) for a, m in keys]
    else:
        raise ValueError(f"by must be 'agency' or 'commitment', got {by!r}")
    return {
        _scorecard_key(one, by): compute_metrics_from_rows(
            all_cases, all_events, all_commitments, one, rating_rows=all_ratings, dispute_rows=all_disputes,
            filing_rows=all_filings,
        )
        for one in narrowed
    }


def _scorecard_key(flt: MetricsFilter, by: str) -> Any:
    return flt.agency_id if by == "agency" else flt.commitment_key


# --- SQL (SQLite and PostgreSQL) --------------------------------------------------------------------------------------
#
# The figures are read from the figure cells the index keeps (``ledger.cells``: counts per day and key, and buckets of
# the values percentiles are of), grouped by agency or by commitment for a page of scorecards at the cost of one
# figure. A group's figures are those of the filter narrowed to that group (the definition scorecards_from_rows
# applies literally): the cells of a group are the cells of that narrower selection.

_By = Literal["agency", "commitment"] | None
_GroupKey = tuple[str, ...]


def _origin_kind(table: Any) -> ColumnElement[int]:
    """The kind of the entry that bound the key of a ``ratings`` (``disputes``) row to its case: its ``receipts`` row
    (the same agency, case and key, before it), ReceiptIssued when none (:data:`ORIGINS`)."""
    t, k = table.c, receipts.c
    bound = (
        select(entries.c.kind)
        .select_from(receipts.join(entries, entries.c.seq == k.seq))
        .where(k.agency_id == t.agency_id, k.case_id == t.case_id, k.receipt == t.receipt, k.seq < t.seq)
        .order_by(k.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(bound, int(EntryKind.RECEIPT_ISSUED))


def key_origin_sql(table: Any) -> ColumnElement[str]:
    """The origin (:data:`ORIGINS`) of the key that signed a ``ratings`` (``disputes``) row, from the kind of the
    entry that bound it (:func:`_origin_kind`): what the index stores in the row's ``key_origin`` once the range's
    bindings are written (``ledger.index.sql.fill_key_origins``), and the metrics read."""
    kind = _origin_kind(table)
    return case(
        (kind == int(EntryKind.FILING_ANSWERED), literal(FILED)),
        (kind == int(EntryKind.RECEIPT_CLAIMED), literal(CLAIMED)),
        else_=literal(AGENCY_ISSUED),
    )


def _latest_targets_sql(conn: Connection, flt: MetricsFilter) -> dict[_GroupKey, int]:
    m = commitments.c
    voided = exists().where(entries.c.seq == m.seq, entries.c.voided_by.is_not(None))
    query = select(m.agency_id, m.commitment_id, m.version, m.target_bps).where(~voided)
    if flt.agency_id is not None:
        query = query.where(m.agency_id == flt.agency_id)
    if flt.commitment_id is not None:
        query = query.where(m.commitment_id == flt.commitment_id)
    return _latest_targets(
        (agency_id, commitment_id, version, target_bps)
        for agency_id, commitment_id, version, target_bps in conn.execute(query)
    )


#: the figures with two times (the range on the first, as_of on the second), read as ``count in range - (M(end,
#: as_of) - M(start, as_of))`` (``ledger.cells``), except ``resolved``, which is ``M(end, as_of) - M(start, as_of)``
_TWO_TIMES = ("rated", "resolved", "responses", "responded", "rectifications", "rectified")


def _selection(flt: MetricsFilter, by: _By) -> cells.Selection:
    fixed = {name: value for name, value in (("agency_id", flt.agency_id), ("commitment_id", flt.commitment_id),
                                             ("district", flt.district), ("channel", flt.channel))
             if value is not None}  # fmt: skip
    groups = {None: (), "agency": ("agency_id",), "commitment": ("agency_id", "commitment_id")}[by]
    return cells.Selection(fixed, groups)


def _metrics_sql(conn: Connection, flt: MetricsFilter, by: _By) -> dict[_GroupKey, Metrics]:
    """Metrics of ``flt`` per group (one group, keyed ``()``, when ``by`` is None): the counts from the figure cells
    (``ledger.cells``), the percentiles from their buckets and one bucket's points."""
    as_of, start, end = flt.now, flt.start, flt.end
    selection = _selection(flt, by)
    reading = cells.read(conn, selection, [start, end, as_of, None] if by is not None else [start, end, as_of])
    bounds = ([] if start is None else [start]) + [end]
    asked = [(name, x, as_of) for name in _TWO_TIMES for x in bounds]
    spans = cells.read_spans(conn, selection, asked)
    if by is None:
        keys: list[_GroupKey] = [()]
    else:
        # the groups that have a case under the filter, whatever its dates (a group idle in the range shows zeros)
        # sorted here, not by ORDER BY: database collations differ, code-point order does not
        keys = sorted(key for key, counts in reading.below[None].items() if counts.get("open_all", 0) > 0)
    fulfil = cells.read_distribution(conn, selection, "fulfil", start, end,
                                     lambda n: (nearest_rank(n, MEDIAN), nearest_rank(n, P90)))
    latency = cells.read_distribution(conn, selection, "latency", start, end, lambda n: (nearest_rank(n, MEDIAN), n))
    targets = _latest_targets_sql(conn, flt) if by == "commitment" or flt.commitment_key is not None else {}

    out: dict[_GroupKey, Metrics] = {}
    for key in keys:
        def count(name: str, key: _GroupKey = key) -> int:
            return reading.in_range(start, end, key, name)

        def m(tally: str, x: int | None, key: _GroupKey = key) -> int:
            return reading.m(tally, x, as_of, spans, key)

        def by_as_of(tally: str) -> int:
            """``#{t1 in range, t2 >= as_of}`` (``t2`` null: never)."""
            return m(tally, end) - (0 if start is None else m(tally, start))

        spread = fulfil.get(key)
        fulfilled_spread = _Distribution() if spread is None else _Distribution(
            count=spread.count, median=spread.at_rank[nearest_rank(spread.count, MEDIAN)],
            p90=spread.at_rank[nearest_rank(spread.count, P90)])
        spread = latency.get(key)
        distribution = _Distribution(above=count("late_recordings"), also=count("reopened")) if spread is None else (
            _Distribution(count=spread.count, median=spread.at_rank[nearest_rank(spread.count, MEDIAN)],
                          maximum=spread.at_rank[spread.count], above=count("late_recordings"),
                          also=count("reopened")))
        scores = tuple(count(f"score_{k}") for k in SCORES)
        # the group's own commitment, or the one the filter names (an agency group keeps the filter's commitment)
        commitment_key = key if by == "commitment" else flt.commitment_key
        out[key] = _assemble(
            opened=count("open_all"),
            fulfilled=count("fulfilled"),
            rejected=count("rejected"),
            withdrawn=count("withdrawn"),
            on_time=count("on_time"),
            on_time_eligible=count("on_time_eligible"),
            target_bps=None if commitment_key is None else targets.get(commitment_key),
            fulfil=fulfilled_spread,
            open_cases=m("open", as_of),
            overdue=m("overdue", as_of),
            latency=distribution,
            feedback=_Feedback(
                scores=scores,  # type: ignore[arg-type]
                closed_with_receipt=count("rated_all"),
                rated=count("rated_all") - by_as_of("rated"),
                disputes=count("disputes"),
                unanswered=m("unanswered", as_of),
                reopened=distribution.also,
                origin_ratings=tuple(count(f"ratings_{o}") for o in ORIGINS),  # type: ignore[arg-type]
                origin_scores=tuple(count(f"scores_{o}") for o in ORIGINS),  # type: ignore[arg-type]
                origin_disputes=tuple(count(f"disputes_{o}") for o in ORIGINS),  # type: ignore[arg-type]
            ),
            filed=_Filings(
                filed=count("filed"),
                accepted=count("filings_accepted"),
                rejected=count("filings_rejected"),
                late=count("filings_late"),
                overdue=m("filings_overdue", as_of),
            ),
            judged=_Judged(
                late_rejections=count("late_rejections"),
                late_withdrawals=count("late_withdrawals"),
                answers_with_receipt=count("answers_with_receipt"),
                responses_due=count("responses_all") - by_as_of("responses"),
                responded_on_time=count("responded_all") - by_as_of("responded"),
                resolved=by_as_of("resolved"),
                bad_ratings=count("bad_ratings"),
                rectifications_due=count("rectifications_all") - by_as_of("rectifications"),
                rectified_on_time=count("rectified_all") - by_as_of("rectified"),
            ),
        )
    return out


_T = TypeVar("_T")


def _with_connection(conn_or_engine: Connection | Engine, work: Callable[[Connection], _T]) -> _T:
    if isinstance(conn_or_engine, Connection):
        return work(conn_or_engine)
    # One snapshot for every query, so the figures agree with each other while the indexer writes: a set of figures
    # that no single state of the index gives could not be reproduced by an auditor.
    with conn_or_engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            # pysqlite opens no transaction for reads; in one, WAL keeps the first read's snapshot to the end
            dbapi = conn.connection.dbapi_connection
            if conn.dialect.name == "sqlite" and not getattr(dbapi, "in_transaction", True):
                conn.exec_driver_sql("BEGIN")
            return work(conn)


def compute_metrics(conn_or_engine: Connection | Engine, flt: MetricsFilter) -> Metrics:
    """The metrics of ``flt`` from the SQL index (SQLite or PostgreSQL).

    Given an engine, every query reads one snapshot (PostgreSQL: a read-only REPEATABLE READ transaction; SQLite: one
    transaction). Given a connection, they run in the caller's transaction: use snapshot isolation if the index is
    being written meanwhile.
    """
    return _with_connection(conn_or_engine, lambda conn: _metrics_sql(conn, flt, None)[()])


def agency_scorecards(conn_or_engine: Connection | Engine, flt: MetricsFilter) -> dict[str, Metrics]:
    """Metrics per agency, in agency id order: for each agency having a case that matches ``flt`` (at any time: the
    date range does not choose the agencies), ``compute_metrics`` of ``flt`` narrowed to that agency."""
    grouped = _with_connection(conn_or_engine, lambda conn: _metrics_sql(conn, flt, "agency"))
    return {key[0]: metrics for key, metrics in grouped.items()}


def commitment_scorecards(conn_or_engine: Connection | Engine, flt: MetricsFilter) -> dict[tuple[str, str], Metrics]:
    """Metrics per commitment, keyed and ordered by (agency_id, commitment_id): for each commitment having a case that
    matches ``flt`` (at any time), ``compute_metrics`` of ``flt`` narrowed to that commitment."""
    grouped = _with_connection(conn_or_engine, lambda conn: _metrics_sql(conn, flt, "commitment"))
    return {(key[0], key[1]): metrics for key, metrics in grouped.items()}
