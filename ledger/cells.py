"""Figure cells: the counts the published figures are made of, kept by the index per day, so that a figure of any
selection reads a few hundred rows instead of the selection's cases.

Marks
    Every count figure of ``ledger.metrics`` counts *marks*: rows of one table (``cases``, ``ratings``, ``disputes``,
    ``filings``) meeting a condition, each with one time tested against the date range or ``as_of`` (a
    one-time :class:`Counter`), or with two (a :class:`Tally`: ``t1`` tested against the range, ``t2`` against
    ``as_of``; ``t2`` null stands for "never"). A mark's dimensions are its case's agency, commitment, district and
    channel (a filing's own; a rating or dispute of a case without a ``cases`` row has only its agency).

Cells
    ``figure_cells`` holds, per *cuboid* (which of the four dimensions it is keyed by, :data:`CUBOIDS`; a
    selection reads the one keyed by exactly the dimensions it names or groups by), per key and per day (level 0) and
    per 32 days (level 1), every counter: how many marks have that counter's time in that day. A tally has four
    counters: its marks by ``t1`` (``_all``), those with no ``t2`` (``_inf``), those with ``t1 <= t2`` (``_fin``),
    and those again by ``t2`` (``_end``). Cells count whole UTC days; the part of a day before a boundary of the
    selection is counted from the rows (an index range of at most one day), or from the points (below) for a counter
    that counts a distribution's points (``Counter.points``: the events and late recordings, from the latencies').

From cells to figures (:class:`Reading`)
    ``below(x)``: for every counter, how many marks have its time ``< x``: the level-1 cells before ``x``'s block, the
    level-0 cells of its block before its day, and the rows of its day before it. A count in ``[s, e)`` is
    ``below(e) - below(s)``. For a tally, ``M(x, y) = #{t1 < x, t2 >= y}``:

    * marks without ``t2``: ``below(x)._inf``;
    * marks with ``t1 <= t2``: when ``x >= y``, every one with ``t2 < y`` has ``t1 < x``, so ``below(x)._fin -
      below(y)._end``; when ``x < y``, the marks spanning ``[x, y)``, counted from the rows;
    * marks with ``t2 < t1``: none when ``x <= y``; otherwise counted from the rows (few: the condition is unusual).

    A snapshot (open cases at ``as_of``) is ``M(as_of, as_of)``; "``t1`` in range and ``t2 < as_of``" is
    ``count in range - (M(e, as_of) - M(s, as_of))``. Every figure so read equals the one the rows give, exactly;
    ``tests/ledger/test_metrics.py`` compares them with the pure-Python definitions on random rows.

Percentiles
    ``figure_values`` counts the values of each distribution (:data:`DISTRIBUTIONS`) per cuboid, key, period and
    bucket (:func:`bucket`: none wider than 1/64 of its values), so the bucket holding a rank is found by counting;
    ``figure_points`` holds each value with its bucket, time and dimensions, so the exact value at that rank is read
    from the points of that one bucket in the selection's time range (:func:`read_distribution`).

Keeping them
    The index changes cells (and points) by difference: before a transaction first writes a case's rows (or a
    filing's), the case's contributions are counted from the rows and subtracted; at its end they are counted again
    and added (``ledger.index.cells``). A store built otherwise (a migration, a test's rows) rebuilds them whole.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    FromClause,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.sql import Select

from ledger.cases import BAD_RATING_MAX, DISPUTE_RESPONSE_WINDOW, FULFILLED, ON_HOLD, REJECTED, WITHDRAWN
from ledger.filings import AGENCY_ISSUED, CLAIMED, FILED
from ledger.records import CaseAction, FilingDecision
from ledger.store.schema import (
    CELL_COUNTERS,
    CUBOIDS,
    FIGURE_TIMES,
    FIGURE_VALUES,
    REOPENED_ACTION,
    SPANS,
    case_events,
    cases,
    disputes,
    entries,
    figure_cells,
    figure_points,
    figure_values,
    filings,
    ratings,
    span_gap,
    span_range,
)

DAY = 86_400
#: days per level-1 cell
BLOCK_DAYS = 32
#: the dimensions of a mark, in key order; a cell of a cuboid that is not keyed by one holds '' (0 for the channel)
DIMENSIONS = ("agency_id", "commitment_id", "district", "channel")
ANY: dict[str, Any] = {"agency_id": "", "commitment_id": "", "district": "", "channel": 0}

__all__ = ["BLOCK_DAYS", "DAY", "DIMENSIONS", "SOURCES", "TALLIES", "Reading", "Selection", "cuboid_of"]


# --- sources: the tables marks come from ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A table marks come from, with the columns that give a mark its dimensions and its case."""

    name: str
    table: Any
    #: the mark's dimensions (its case's, through an outer join, for case events, ratings and disputes)
    dims: tuple[ColumnElement[Any], ...]
    #: whether the dimensions other than the agency come from the case (absent when the case has no row)
    through_case: bool
    #: the rows that are marks at all (case events: those whose entry is not voided)
    base: ColumnElement[bool] | None = None

    def from_clause(self, with_case: bool = True) -> FromClause:
        """The source's rows, joined to their entry (case events) and, `with_case`, to their case."""
        rows: FromClause = self.table
        if self.table is case_events:  # an event is counted unless its entry says it is voided
            rows = rows.outerjoin(entries, entries.c.seq == case_events.c.seq)
        if self.through_case and with_case:
            t, c = self.table.c, cases.c
            rows = rows.outerjoin(cases, and_(c.agency_id == t.agency_id, c.case_id == t.case_id))
        return rows

    def own_agency(self) -> ColumnElement[Any]:
        return self.table.c.agency_id

    def marks(self) -> list[ColumnElement[bool]]:
        return [] if self.base is None else [self.base]


#: a case event recorded more than this many seconds after its claimed time is a late recording
LATE_RECORDING_SECONDS = 86_400

_c, _r, _d, _f, _e = cases.c, ratings.c, disputes.c, filings.c, case_events.c
SOURCES = {
    "cases": Source("cases", cases, (_c.agency_id, _c.commitment_id, _c.district, _c.channel), False),
    "events": Source("events", case_events, (_e.agency_id, _c.commitment_id, _c.district, _c.channel), True,
                     entries.c.voided_by.is_(None)),
    "ratings": Source("ratings", ratings, (_r.agency_id, _c.commitment_id, _c.district, _c.channel), True),
    "disputes": Source("disputes", disputes, (_d.agency_id, _c.commitment_id, _c.district, _c.channel), True),
    "filings": Source("filings", filings, (_f.agency_id, _f.commitment_id, _f.district, _f.channel), False),
}


def _one(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


# --- counters and tallies ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counter:
    """A one-time count: the sum of `value` (1 for a plain count) over the source's rows meeting `condition`, by the
    time `time`."""

    name: str
    source: str
    time: ColumnElement[Any]
    condition: ColumnElement[bool]
    value: ColumnElement[Any] | None = None
    #: the counter is also a count of a distribution's points (``figure_points``): (its name, the value a point must
    #: exceed to count, None: every point); the parts of days count it from them, not from the rows
    points: tuple[str, int | None] | None = None

    def summand(self) -> ColumnElement[Any]:
        return case((self.condition, literal(1) if self.value is None else self.value), else_=0)


@dataclass(frozen=True)
class Tally:
    """A two-time count: marks of `source` meeting `condition`, with `t1` (not null) and `t2` (null: never)."""

    name: str
    source: str
    t1: ColumnElement[Any]
    t2: ColumnElement[Any]
    condition: ColumnElement[bool]

    def counters(self) -> list[Counter]:
        base = and_(self.condition, self.t1.is_not(None))
        return [
            Counter(f"{self.name}_all", self.source, self.t1, base),
            Counter(f"{self.name}_inf", self.source, self.t1, and_(base, self.t2.is_(None))),
            Counter(f"{self.name}_fin", self.source, self.t1, and_(base, self.t2 >= self.t1)),
            Counter(f"{self.name}_end", self.source, self.t2, and_(base, self.t2 >= self.t1)),
        ]


def _sql_text(expression: ColumnElement[Any]) -> str:
    """An expression's SQL, its values written in: two expressions are the same if their texts are."""
    return str(expression.compile(compile_kwargs={"literal_binds": True}))


_T = FIGURE_TIMES
if _sql_text(_T["dispute_answer_due"]) != (
        f"disputes.block_time + {DISPUTE_RESPONSE_WINDOW}"):
    raise RuntimeError("ledger.store.schema.FIGURE_TIMES must add ledger.cases.DISPUTE_RESPONSE_WINDOW")
_ORIGINS = (FILED, CLAIMED, AGENCY_ISSUED)

TALLIES: dict[str, Tally] = {
    t.name: t
    for t in (
        # open at as_of: opened before it, not closed before it
        Tally("open", "cases", _c.opened_at, _c.closed_at, true()),
        # overdue at as_of: open, and past the due time (a case on hold only if it was late when the hold began)
        Tally("overdue", "cases", _T["overdue_from"], _c.closed_at,
              and_(_c.due_at.is_not(None),
                   or_(_c.status != ON_HOLD, _c.on_hold_since.is_(None), _c.due_at < _c.on_hold_since))),
        # closed with a receipt, rated (before as_of)
        Tally("rated", "cases", *SPANS["rated"], _c.receipt.is_not(None)),
        # fulfilled with a receipt, disputed (before as_of)
        Tally("resolved", "cases", *SPANS["resolved"],
              and_(_c.status == FULFILLED, _c.receipt.is_not(None))),
        # opened, judged on its response: answered, or the answer's time passed
        Tally("responses", "cases", *SPANS["responses"],
              _c.response_due.is_not(None)),
        # opened, answered by the response's due time
        Tally("responded", "cases", *SPANS["responded"], _c.responded_at <= _c.response_due),
        # rated badly, judged on its rectification: rectified, or its time passed (and rated, before as_of)
        Tally("rectifications", "cases", *SPANS["rectifications"],
              and_(_c.rating <= BAD_RATING_MAX, _c.rectification_due.is_not(None))),
        # rated badly, rectified by its due time
        Tally("rectified", "cases", *SPANS["rectified"],
              and_(_c.rating <= BAD_RATING_MAX, _c.rectified_at <= _c.rectification_due)),
        # a dispute whose answer was due (before as_of), unanswered by then
        Tally("unanswered", "disputes", _T["dispute_answer_due"], _d.answered_at, true()),
        # a filing made and due (before as_of), unanswered by then
        Tally("filings_overdue", "filings", _T["filing_overdue_from"], _f.answered_at, true()),
    )
}

_closed = _c.closed_at
_late = _c.closed_at > _c.due_at
_accepted = int(FilingDecision.ACCEPTED)
COUNTERS: list[Counter] = [
    Counter("fulfilled", "cases", _closed, _c.status == FULFILLED),
    Counter("rejected", "cases", _closed, _c.status == REJECTED),
    Counter("withdrawn", "cases", _closed, _c.status == WITHDRAWN),
    Counter("on_time", "cases", _closed, and_(_c.status == FULFILLED, _c.on_time.is_(True))),
    Counter("on_time_eligible", "cases", _closed, and_(_c.status == FULFILLED, _c.on_time.is_not(None))),
    Counter("late_rejections", "cases", _closed, and_(_c.status == REJECTED, _late)),
    Counter("late_withdrawals", "cases", _closed, and_(_c.status == WITHDRAWN, _late)),
    Counter("answers_with_receipt", "cases", _closed, and_(_c.receipt.is_not(None), _c.status != WITHDRAWN)),
    Counter("bad_ratings", "cases", _c.rated_at, _c.rating <= BAD_RATING_MAX),
    *(Counter(f"score_{k}", "ratings", _r.block_time, _r.score == k) for k in range(1, 6)),
    *(Counter(f"ratings_{o}", "ratings", _r.block_time, _r.key_origin == o) for o in _ORIGINS),
    *(Counter(f"scores_{o}", "ratings", _r.block_time, _r.key_origin == o, _r.score) for o in _ORIGINS),
    Counter("disputes", "disputes", _d.block_time, true()),
    *(Counter(f"disputes_{o}", "disputes", _d.block_time, _d.key_origin == o) for o in _ORIGINS),
    # an event is a point of its latency, a late recording one above LATE_RECORDING_SECONDS (checked below)
    Counter("events", "events", _e.block_time, true(), points=("latency", None)),
    Counter("late_recordings", "events", _e.block_time, FIGURE_VALUES["latency"] > LATE_RECORDING_SECONDS,
            points=("latency", LATE_RECORDING_SECONDS)),
    # the action written out, so that the statement implies the index of reopenings' condition
    Counter("reopened", "events", _e.block_time, _e.action == literal_column(str(REOPENED_ACTION))),
    Counter("filed", "filings", _f.block_time, true()),
    Counter("filings_accepted", "filings", _f.answered_at, _f.decision == _accepted),
    Counter("filings_rejected", "filings", _f.answered_at, _f.decision != _accepted),
    Counter("filings_late", "filings", _f.answered_at, _f.answered_at > _f.answer_due),
    *(counter for tally in TALLIES.values() for counter in tally.counters()),
]
if tuple(counter.name for counter in COUNTERS) != CELL_COUNTERS:
    raise RuntimeError("ledger.store.schema.CELL_COUNTERS must name ledger.cells.COUNTERS, in order")


@dataclass(frozen=True)
class Axis:
    """The counters of one source that share one time: one pass over the rows (or the index range) counts them."""

    source: Source
    time: ColumnElement[Any]
    counters: tuple[Counter, ...]

    @property
    def from_rows(self) -> tuple[Counter, ...]:
        """The counters the parts of days count from the rows (the others from the points)."""
        return tuple(counter for counter in self.counters if counter.points is None)


def _axes() -> list[Axis]:
    grouped: dict[tuple[str, str], list[Counter]] = {}
    times: dict[tuple[str, str], ColumnElement[Any]] = {}
    for counter in COUNTERS:
        # the same expression compiles to the same text: that is what makes two counters share an axis
        key = (counter.source, _sql_text(counter.time))
        grouped.setdefault(key, []).append(counter)
        times.setdefault(key, counter.time)
    return [Axis(SOURCES[source], times[(source, text)], tuple(found)) for (source, text), found in grouped.items()]


AXES = _axes()


# --- cuboids ----------------------------------------------------------------------------------------------------------


def cuboid_of(dimensions: Iterable[str]) -> int:
    """The number of the cuboid keyed by exactly these dimensions (:data:`CUBOIDS`)."""
    wanted = frozenset(dimensions)
    for number, keyed in enumerate(CUBOIDS):
        if keyed == wanted:
            return number
    raise ValueError(f"no cuboid is keyed by {sorted(wanted)}")


FINEST = len(CUBOIDS) - 1
if CUBOIDS[FINEST] != frozenset(DIMENSIONS):
    raise RuntimeError("the last cuboid must be keyed by every dimension")


def cell_keys(dims: Sequence[Any]) -> list[tuple[int, tuple[Any, ...]]]:
    """The (cuboid, key) of every cell a mark with these dimensions counts in. A mark whose case has no row (no
    commitment, district or channel) counts in the cuboids keyed by its agency at most, and in the finest one with
    those dimensions '' (0), which no selection reads (one reading it fixes a district and a channel)."""
    known = dims[1] is not None
    out = []
    for number, keyed in enumerate(CUBOIDS):
        if not known and number != FINEST and keyed - {"agency_id"}:
            continue
        key = tuple(
            (v if v is not None else ANY[d]) if d in keyed else ANY[d] for d, v in zip(DIMENSIONS, dims, strict=True)
        )
        out.append((number, key))
    return out


# --- reading ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What a figure is read for: fixed dimensions (name -> value) and the dimensions it is grouped by."""

    fixed: Mapping[str, Any]
    groups: tuple[str, ...] = ()

    @property
    def cuboid(self) -> int:
        return cuboid_of({*self.fixed, *self.groups})

    @property
    def narrows(self) -> bool:
        """Whether marks must have a case row: a commitment, district or channel is fixed or grouped by."""
        return bool({*self.fixed, *self.groups} - {"agency_id"})


_GroupKey = tuple[Any, ...]


@dataclass
class Reading:
    """The counters of a selection, below each boundary asked for (see the module docstring)."""

    selection: Selection
    #: boundary (None for +infinity) -> group -> counter name -> count of marks with its time below the boundary
    below: dict[int | None, dict[_GroupKey, dict[str, int]]] = field(default_factory=dict)
    conn: Connection | None = None

    def at(self, x: int | None, group: _GroupKey, name: str) -> int:
        """Marks of counter `name` with time < x (x None: all), in `group`."""
        return self.below[x].get(group, {}).get(name, 0)

    def in_range(self, start: int | None, end: int | None, group: _GroupKey, name: str) -> int:
        low = 0 if start is None else self.at(start, group, name)
        return self.at(end, group, name) - low

    def m(self, tally: str, x: int | None, y: int, spans: Mapping[tuple[str, int | None, int], dict[_GroupKey, int]],
          group: _GroupKey) -> int:
        """``#{t1 < x, t2 >= y}`` of `tally` in `group` (x None: +infinity; see the module docstring); `spans` holds
        the counts read from the rows (:func:`read_spans`)."""
        infinite = self.at(x, group, f"{tally}_inf")
        if x is not None and x < y:
            ordered = spans[(tally, x, y)].get(group, 0)
        else:
            ordered = self.at(x, group, f"{tally}_fin") - self.at(y, group, f"{tally}_end")
        disordered = 0 if x is not None and x <= y else spans[(tally, x, y)].get(group, 0)
        return infinite + ordered + disordered


def _group_columns(source: Source, selection: Selection) -> list[ColumnElement[Any]]:
    by_name = dict(zip(DIMENSIONS, source.dims, strict=True))
    if not selection.narrows:
        by_name["agency_id"] = source.own_agency()
    return [by_name[name] for name in selection.groups]


def _source_conditions(source: Source, selection: Selection) -> list[ColumnElement[bool]]:
    """The rows of `source` the selection takes: its fixed dimensions, and a case row when it narrows."""
    by_name = dict(zip(DIMENSIONS, source.dims, strict=True))
    conditions: list[ColumnElement[bool]] = source.marks()
    if not selection.narrows:
        by_name["agency_id"] = source.own_agency()
    elif source.through_case:
        conditions.append(cases.c.agency_id.is_not(None))
    conditions += [by_name[name] == value for name, value in selection.fixed.items()]
    return conditions


def _cell_conditions(cells: Any, selection: Selection) -> list[ColumnElement[bool]]:
    """The cells (of ``figure_cells`` or ``figure_values``: their columns `cells`) of the selection's cuboid, with its
    fixed dimensions; the dimensions it does not name are '' (0) in that cuboid."""
    conditions = [cells.cuboid == selection.cuboid]
    for name in DIMENSIONS:
        if name in selection.fixed:
            conditions.append(cells[name] == selection.fixed[name])
        elif name not in selection.groups:
            conditions.append(cells[name] == ANY[name])
    return conditions


def read(conn: Connection, selection: Selection, boundaries: Iterable[int | None]) -> Reading:
    """The selection's counters below each boundary: cells for whole days, rows for the part of a day."""
    reading = Reading(selection, conn=conn)
    g = figure_cells.c
    fixed = _cell_conditions(g, selection)
    group_columns = [g[name] for name in selection.groups]
    partial: list[int] = []
    for x in dict.fromkeys(boundaries):
        if x is None:
            periods = g.level == 1
        else:
            day = x // DAY
            block = day // BLOCK_DAYS
            periods = or_(and_(g.level == 1, g.period < block),
                          and_(g.level == 0, g.period >= block * BLOCK_DAYS, g.period < day))
            if x % DAY:
                partial.append(x)
        query = (
            select(*group_columns, *(func.sum(g[c.name]) for c in COUNTERS))
            .where(*fixed, periods)
            .group_by(*group_columns)
        )
        found: dict[_GroupKey, dict[str, int]] = {}
        n = len(group_columns)
        for row in conn.execute(query):
            if row[n] is None:  # no group columns and no cells: the one aggregate row is all NULL
                continue
            found[tuple(row[:n])] = {c.name: int(v or 0) for c, v in zip(COUNTERS, row[n:], strict=True)}
        reading.below[x] = found
    if partial:
        _add_partial_days(conn, reading, partial)
    return reading


def _day_segments(boundaries: Iterable[int]) -> tuple[list[tuple[int, int]], dict[int, list[int]]]:
    """The parts of days before the boundaries (``[x - x % DAY, x)``), cut where another boundary of the same day
    falls: disjoint segments ``[low, high)``, and for each boundary the indexes of the segments its part is made of."""
    by_day: dict[int, set[int]] = {}
    for x in boundaries:
        by_day.setdefault(x - x % DAY, set()).add(x)
    segments: list[tuple[int, int]] = []
    made_of: dict[int, list[int]] = {}
    for day, xs in sorted(by_day.items()):
        first, low = len(segments), day
        for x in sorted(xs):
            segments.append((low, x))
            low = x
            made_of[x] = list(range(first, len(segments)))
    return segments, made_of


def _shape(fixed: Iterable[str], groups: tuple[str, ...]) -> Selection:
    """A selection with a parameter ``fixed_<name>`` in place of each fixed value (:func:`_shape_values` gives their
    values): statements built for it are the same for every selection of its shape."""
    return Selection({name: bindparam(f"fixed_{name}") for name in fixed}, groups)


def _shape_values(selection: Selection) -> dict[str, Any]:
    return {f"fixed_{name}": value for name, value in selection.fixed.items()}


def _in_segment(time: ColumnElement[Any], i: int) -> ColumnElement[bool]:
    """`time` in segment `i` of a partial days' statement: ``[low_<i>, high_<i>)``, bound by _add_partial_days."""
    return and_(time >= bindparam(f"low_{i}", type_=BigInteger), time < bindparam(f"high_{i}", type_=BigInteger))


@functools.lru_cache(maxsize=4096)
def _partial_days_statement(
    axis_number: int, fixed: tuple[str, ...], groups: tuple[str, ...], segments: int
) -> Select[Any]:
    """Axis `axis_number`'s counters summed by group and segment over the rows with their time in one of `segments`
    disjoint ranges ``[low_<i>, high_<i>)`` (the segment ``i``), for the selection's shape (:func:`_shape`) of `fixed`
    and `groups`. Built once for each shape (building one takes longer than running it)."""
    axis, shape = AXES[axis_number], _shape(fixed, groups)
    source, counters = axis.source, axis.from_rows
    columns = _group_columns(source, shape)
    # when some of the axis's counters are read from the points, only the rows the others count (an index may hold
    # only those: ix_case_events_reopened)
    counted = [] if counters == axis.counters else [or_(*(counter.condition for counter in counters))]
    parts = [_in_segment(axis.time, i) for i in range(segments)]
    segment = case(*((part, i) for i, part in enumerate(parts)))
    # counted in a subquery, grouped outside it: the segment's expression carries parameters, which PostgreSQL would
    # not take for the same expression in GROUP BY
    marks = (
        select(*(column.label(f"g{i}") for i, column in enumerate(columns)), segment.label("segment"),
               *(counter.summand().label(f"c{i}") for i, counter in enumerate(counters)))
        .select_from(source.from_clause(shape.narrows))
        .where(or_(*parts), *counted, *_source_conditions(source, shape))
        .subquery()
    )
    keys = [marks.c[f"g{i}"] for i in range(len(columns))] + [marks.c.segment]
    return select(*keys, *(func.sum(marks.c[f"c{i}"]) for i in range(len(counters)))).group_by(*keys)


#: the counters the parts of days count from the points, by distribution
_FROM_POINTS = {
    name: tuple(counter for counter in COUNTERS if counter.points is not None and counter.points[0] == name)
    for name in dict.fromkeys(counter.points[0] for counter in COUNTERS if counter.points is not None)
}


@functools.lru_cache(maxsize=4096)
def _partial_points_statement(name: str, fixed: tuple[str, ...], groups: tuple[str, ...], segments: int) -> Select[Any]:
    """The counters of distribution `name`'s points (:data:`_FROM_POINTS`) summed by group and segment over the points
    with their time in ``[low_<i>, high_<i>)`` (the segment ``i``), for the selection's shape: one UNION ALL term per
    segment, each a range of ``ix_figure_points_time`` (which holds every column read)."""
    p, shape = figure_points.c, _shape(fixed, groups)
    number, counters = DISTRIBUTIONS[name].number, _FROM_POINTS[name]

    def counted(counter: Counter) -> ColumnElement[Any]:
        least = counter.points[1]  # type: ignore[index]
        return p.n if least is None else case((p.value > least, p.n), else_=0)

    terms = [
        select(*(p[group] for group in groups), literal_column(str(i)).label("segment"),
               *(counted(counter).label(f"c{j}") for j, counter in enumerate(counters)))
        .where(p.distribution == number, _in_segment(p.time, i), *_point_conditions(shape))
        for i in range(segments)
    ]  # fmt: skip
    return _summed(terms, groups, "segment", [f"c{j}" for j in range(len(counters))])


#: segments a partial days' statement has at least (a selection's three boundaries make at most three): the unused
#: ones are empty, so that a selection with fewer uses the same statement, already built and compiled
_SEGMENTS = 3


def _add_partial_days(conn: Connection, reading: Reading, boundaries: list[int]) -> None:
    """Add to ``reading.below[x]`` the marks of the part of x's day before x, counted from the rows: one pass per
    axis, each row counted once in the one segment (:func:`_day_segments`) holding its time."""
    selection = reading.selection
    segments, made_of = _day_segments(boundaries)
    params = _shape_values(selection)
    count = max(len(segments), _SEGMENTS)
    for i in range(count):
        low, high = segments[i] if i < len(segments) else (0, 0)  # [0, 0) holds no time
        params |= {f"low_{i}": low, f"high_{i}": high}
    n = len(selection.groups)
    shape = (tuple(selection.fixed), selection.groups, count)
    statements = [(_partial_days_statement(number, *shape), axis.from_rows)
                  for number, axis in enumerate(AXES) if axis.from_rows]  # fmt: skip
    statements += [(_partial_points_statement(name, *shape), counters) for name, counters in _FROM_POINTS.items()]
    for query, counters in statements:
        found: dict[int, dict[_GroupKey, list[int]]] = {}
        for row in conn.execute(query, params):
            found.setdefault(int(row[n]), {})[tuple(row[:n])] = [int(v or 0) for v in row[n + 1:]]
        for x, parts in made_of.items():
            for part in parts:
                for group, sums in found.get(part, {}).items():
                    counts = reading.below[x].setdefault(group, {})
                    for counter, value in zip(counters, sums, strict=True):
                        counts[counter.name] = counts.get(counter.name, 0) + value


def read_spans(
    conn: Connection, selection: Selection, asked: Iterable[tuple[str, int | None, int]]
) -> dict[tuple[str, int | None, int], dict[_GroupKey, int]]:
    """For each (tally, x, y) asked, the part of ``M(x, y)`` cells cannot give, counted from the rows: the marks with
    ``t1 <= t2`` spanning ``[x, y)`` when ``x < y``; those with ``t2 < t1`` when ``x > y`` (x None: +infinity);
    nothing when ``x == y``."""
    out: dict[tuple[str, int | None, int], dict[_GroupKey, int]] = {}
    for name, x, y in asked:
        if x is not None and x == y:
            continue
        tally = TALLIES[name]
        source = SOURCES[tally.source]
        groups = _group_columns(source, selection)
        if x is not None and x < y and name in SPANS and conn.dialect.name == "postgresql":
            # t1 <= x - 1 and y <= t2: [x - 1, y) within [t1, t2), found by its GiST index
            marks = span_range(name).op("@>")(func.int8range(x - 1, y, literal_column("'[)'")))
        elif x is not None and x < y:
            marks = and_(tally.t2 >= tally.t1, tally.t1 < x, tally.t2 >= y)
        else:
            # t2 < t1 (as t2 - t1 < 0 for the spans: their partial index; ledger.store.schema.span_gap says why)
            disordered = span_gap(name) < 0 if name in SPANS else tally.t2 < tally.t1
            marks = and_(disordered, tally.t2 >= y) if x is None else and_(disordered, tally.t1 < x, tally.t2 >= y)
        query = (
            select(*groups, func.count())
            .select_from(source.from_clause(selection.narrows))
            .where(tally.condition, tally.t1.is_not(None), marks, *_source_conditions(source, selection))
            .group_by(*groups)
        )
        n = len(groups)
        out[(name, x, y)] = {tuple(row[:n]): int(row[n]) for row in conn.execute(query) if row[n]}
    return out




# --- distributions: exact percentiles from buckets of values ----------------------------------------------------------
#
# A value v >= 0 below 2 * SUB is its own bucket; above, the bucket holds the values with v's highest SUB_BITS + 1 bits
# (64 buckets to each doubling, none wider than 1/64 of its values); a negative value's bucket mirrors -v's below -1.
# The nearest-rank percentile is found by counting buckets (``figure_values``), then among the points of its one bucket
# (``figure_points``: each value with its bucket, time and dimensions) in the selection's time range.

SUB_BITS = 6
_SUB = 1 << SUB_BITS
_EXACT = 2 * _SUB
#: the widest shift a 63-bit value needs
_MAX_SHIFT = 63 - SUB_BITS - 1


def bucket(value: int) -> int:
    """The bucket of a value (see above)."""
    if value < 0:
        return -1 - bucket(-value)
    if value < _EXACT:
        return value
    shift = value.bit_length() - SUB_BITS - 1
    return _EXACT + (shift - 1) * _SUB + (value >> shift) - _SUB


def bucket_bounds(number: int) -> tuple[int, int]:
    """The least and greatest value of a bucket (-1 holds none: it would be -0's)."""
    if number == -1:
        raise ValueError("bucket -1 holds no value")
    if number < 0:
        low, high = bucket_bounds(-1 - number)
        return -high, -low
    if number < _EXACT:
        return number, number
    shift, mantissa = divmod(number - _EXACT, _SUB)
    shift += 1
    return (mantissa + _SUB) << shift, ((mantissa + _SUB + 1) << shift) - 1


def bucket_sql(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """:func:`bucket` in SQL, for both databases (shifts and comparisons only)."""

    def positive(v: ColumnElement[Any]) -> ColumnElement[Any]:
        # constants written out (PostgreSQL shifts a bigint by an integer, not by a bigint parameter)
        def shifted(shift: int) -> ColumnElement[Any]:
            return v.op(">>")(literal_column(str(shift))) + literal_column(str(_EXACT + (shift - 2) * _SUB))

        whens = [(v < literal_column(str(_EXACT)), v)]
        whens += [(v < literal_column(str(_EXACT << shift)), shifted(shift)) for shift in range(1, _MAX_SHIFT)]
        return case(*whens, else_=shifted(_MAX_SHIFT))  # the top bit of a 63-bit value: no bound to compare with

    return case((value >= literal_column("0"), positive(value)), else_=literal_column("-1") - positive(-value))


@dataclass(frozen=True)
class Distribution:
    """The values a percentile is of: `value` of the source's rows meeting `condition`, in time by `time`."""

    number: int
    source: str
    time: ColumnElement[Any]
    value: ColumnElement[Any]
    condition: ColumnElement[bool]

    @functools.cached_property
    def bucket(self) -> ColumnElement[Any]:
        """:func:`bucket_sql` of the value (built once: it is a long expression)."""
        return bucket_sql(self.value)


DISTRIBUTIONS = {
    # time to fulfil, of the cases fulfilled (by closing time)
    "fulfil": Distribution(0, "cases", _c.closed_at, _c.fulfil_seconds,
                           and_(_c.status == FULFILLED, _c.fulfil_seconds.is_not(None))),
    # recording latency, of the case events (by block time)
    "latency": Distribution(1, "events", _e.block_time, FIGURE_VALUES["latency"], true()),
}


def _check_counters_of_points() -> None:
    """A counter counted from a distribution's points counts the same marks: those of the distribution's source at its
    time, every one (the distribution has no condition), or those whose value exceeds the least it names."""
    for counter in COUNTERS:
        if counter.points is None:
            continue
        name, least = counter.points
        distribution = DISTRIBUTIONS[name]
        wanted = true() if least is None else distribution.value > least
        mine = (counter.source, counter.time, counter.condition, true())
        theirs = (distribution.source, distribution.time, wanted, distribution.condition)
        if mine[0] != theirs[0] or [_sql_text(e) for e in mine[1:]] != [_sql_text(e) for e in theirs[1:]]:
            raise RuntimeError(f"counter {counter.name} is not a count of the points of {name}")
    if REOPENED_ACTION != int(CaseAction.REOPENED):
        raise RuntimeError("ledger.store.schema.REOPENED_ACTION must be ledger.records.CaseAction.REOPENED")


_check_counters_of_points()


# --- contributions: what rows count, per finest key and day -----------------------------------------------------------


#: which rows a contribution is counted of: a case's (its row, events, ratings, disputes: ``agency`` and the case ids
#: ``ids``), or filings' (their ``seqs``); each a condition with bound parameters, so that every statement below is
#: built once and its compiled form reused
_OWNERS = {
    "cases": lambda source: and_(source.table.c.agency_id == bindparam("agency"),
                                 source.table.c.case_id.in_(bindparam("ids", expanding=True))),
    "filings": lambda source: source.table.c.seq.in_(bindparam("seqs", expanding=True)),
}
_OWNED = {"cases": ("cases", "events", "ratings", "disputes"), "filings": ("filings",)}

#: what a finest cell's counters add up to: (dimensions, day) -> a value per counter (the order of COUNTERS)
Counts = dict[tuple[tuple[Any, ...], int], list[int]]
#: what the finest bucket cells add up to: (distribution, dimensions, day, bucket) -> how many values
Values = dict[tuple[int, tuple[Any, ...], int, int], int]
#: the points (``figure_points``): (distribution, bucket, time, value, *dimensions) -> how many values
Points = dict[tuple[Any, ...], int]


@dataclass(frozen=True)
class _RowPlan:
    """One statement over a source's rows (those of some cases or filings) that reads each row once, with what it
    counts: per axis of the source its day and every counter's summand, per distribution its time (null when the row
    is not one of its values) and value."""

    query: Any
    #: per axis: the slots (in COUNTERS) of its counters
    axes: tuple[tuple[int, ...], ...]
    #: the numbers of the source's distributions
    distributions: tuple[int, ...]


@functools.cache
def _row_plan(source_name: str, owner: str) -> _RowPlan:
    source = SOURCES[source_name]
    slot = {counter.name: i for i, counter in enumerate(COUNTERS)}
    columns: list[ColumnElement[Any]] = [*source.dims]
    axes = []
    for axis in AXES:
        if axis.source is source:
            columns += [axis.time // DAY, *(counter.summand() for counter in axis.counters)]
            axes.append(tuple(slot[counter.name] for counter in axis.counters))
    numbers = []
    for distribution in DISTRIBUTIONS.values():
        if distribution.source == source_name:
            counted = and_(distribution.time.is_not(None), distribution.condition)
            columns += [case((counted, distribution.time)), distribution.value]
            numbers.append(distribution.number)
    query = select(*columns).select_from(source.from_clause()).where(*source.marks(), _OWNERS[owner](source))
    return _RowPlan(query, tuple(axes), tuple(numbers))


def contributions(conn: Connection, owner: str, params: Mapping[str, Any]) -> tuple[Counts, Values, Points]:
    """What the rows of some cases of one agency (`owner` "cases", `params` its ``agency`` and ``ids``) or of some
    filings (`owner` "filings", `params` their ``seqs``) count in the finest cells, bucket cells and points: one
    statement per source, each row read once (the counts are those a ``GROUP BY`` of dimensions and day would give)."""
    counts: Counts = {}
    values: Values = {}
    points: Points = {}
    for source_name in _OWNED[owner]:
        plan = _row_plan(source_name, owner)
        for row in conn.execute(plan.query, dict(params)):
            dims = tuple(row[:4])
            at = 4
            for slots in plan.axes:
                day, summands = row[at], row[at + 1:at + 1 + len(slots)]
                at += 1 + len(slots)
                if day is None or not any(summands):
                    continue
                cell = counts.setdefault((dims, int(day)), [0] * len(COUNTERS))
                for i, summand in zip(slots, summands, strict=True):
                    cell[i] += int(summand or 0)
            for number in plan.distributions:
                time, value = row[at], row[at + 1]
                at += 2
                if time is not None:
                    number_ = bucket(int(value))
                    key = (number, dims, int(time) // DAY, number_)
                    values[key] = values.get(key, 0) + 1
                    point = (number, number_, int(time), int(value), *_point_dims(dims))
                    points[point] = points.get(point, 0) + 1
    return counts, values, points


def _point_dims(dims: Sequence[Any]) -> tuple[Any, ...]:
    """A point's dimensions: its mark's, '' (0) where its case has no row."""
    return tuple(ANY[name] if v is None else v for name, v in zip(DIMENSIONS, dims, strict=True))


def _periods(dims: Sequence[Any], day: int) -> Iterator[tuple[int, tuple[Any, ...], int, int]]:
    """Every (cuboid, key, level, period) a finest cell of these dimensions and day adds to."""
    for cuboid, key in cell_keys(dims):
        yield cuboid, key, 0, day
        yield cuboid, key, 1, day // BLOCK_DAYS


def roll_up(finest: Counts) -> dict[tuple[int, tuple[Any, ...], int, int], list[int]]:
    """The cells `finest` contributions add to: (cuboid, key, level, period) -> counters."""
    out: dict[tuple[int, tuple[Any, ...], int, int], list[int]] = {}
    for (dims, day), counted in finest.items():
        for at in _periods(dims, day):
            cell = out.setdefault(at, [0] * len(COUNTERS))
            for i, value in enumerate(counted):
                cell[i] += value
    return out


def roll_up_values(finest: Values) -> dict[tuple[int, int, tuple[Any, ...], int, int, int], int]:
    """The bucket cells `finest` adds to: (distribution, cuboid, key, level, period, bucket) -> values."""
    out: dict[tuple[int, int, tuple[Any, ...], int, int, int], int] = {}
    for (number, dims, day, bucket_number), n in finest.items():
        for cuboid, key, level, period in _periods(dims, day):
            cell = (number, cuboid, key, level, period, bucket_number)
            out[cell] = out.get(cell, 0) + n
    return out


@dataclass(frozen=True)
class Spread:
    """What the figures need of a distribution in one group: how many values, and the value at each rank asked."""

    count: int
    at_rank: dict[int, int]


_Windows = list[tuple[int | None, int | None]]


def _cell_periods(g: Any, start: int | None, end: int | None) -> tuple[list[ColumnElement[bool]], _Windows]:
    """The cells wholly inside ``[start, end)`` (conditions on `g`'s level and period, each one range: none when no
    cell is) and the parts of days left (windows)."""
    first_day = None if start is None else -(-start // DAY)
    last_day = None if end is None else end // DAY  # exclusive
    if first_day is not None and last_day is not None and first_day >= last_day:
        return [], [(start, end)]
    windows: _Windows = []
    if start is not None and start % DAY:
        windows.append((start, first_day * DAY))  # type: ignore[operator]
    if end is not None and end % DAY:
        windows.append((last_day * DAY, end))  # type: ignore[operator]
    first_block = None if first_day is None else -(-first_day // BLOCK_DAYS)
    last_block = None if last_day is None else last_day // BLOCK_DAYS
    parts: list[ColumnElement[bool]] = []
    if first_block is None or last_block is None or first_block < last_block:
        blocks = [g.level == 1]
        if first_block is not None:
            blocks.append(g.period >= first_block)
        if last_block is not None:
            blocks.append(g.period < last_block)
        parts.append(and_(*blocks))
        if first_day is not None and first_block is not None and first_day < first_block * BLOCK_DAYS:
            parts.append(and_(g.level == 0, g.period >= first_day, g.period < first_block * BLOCK_DAYS))
        if last_day is not None and last_block is not None and last_block * BLOCK_DAYS < last_day:
            parts.append(and_(g.level == 0, g.period >= last_block * BLOCK_DAYS, g.period < last_day))
    else:
        parts.append(and_(g.level == 0, g.period >= first_day, g.period < last_day))
    return parts, windows


def _point_conditions(selection: Selection) -> list[ColumnElement[bool]]:
    """The points of the selection: its fixed dimensions, and a case row when it narrows (``cell_keys``)."""
    p = figure_points.c
    conditions = [p[name] == value for name, value in selection.fixed.items()]
    if selection.narrows:
        conditions.append(p.commitment_id != ANY["commitment_id"])
    return conditions


def _window(time: ColumnElement[Any], low: int | None, high: int | None) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [time.is_not(None)]
    if low is not None:
        conditions.append(time >= low)
    if high is not None:
        conditions.append(time < high)
    return and_(*conditions)


def _summed(parts: Sequence[Select[Any]], groups: tuple[str, ...], by: str,
            sums: Sequence[str] = ("n",)) -> Select[Any]:
    """The sums of the counts (columns `sums`: ``n``) the `parts` select (each its groups' columns, `by` and those),
    per group and `by`, over all of them (one term of a UNION ALL each)."""
    each = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    grouped = [each.c[name] for name in groups]
    return select(*grouped, each.c[by], *(func.sum(each.c[name]) for name in sums)).group_by(*grouped, each.c[by])


#: groups a statement of :func:`_refinements` reads at most (SQLite takes 500 terms of a UNION ALL at most)
_GROUPS_A_STATEMENT = 100


def _refinements(selection: Selection, number: int, start: int | None, end: int | None,
                 wanted: Mapping[_GroupKey, Mapping[int, tuple[int, int]]]) -> list[Any]:
    """How many points of each value the buckets `wanted` asks of each group hold in ``[start, end)``: statements
    grouped by group and value. Read from the keys alone: grouped by commitment, one range of
    ``ix_figure_points_group`` (distribution, agency, commitment, bucket, time) per group and bucket, each group's own
    buckets (:data:`_GROUPS_A_STATEMENT` groups a statement); else one range of the primary key (distribution, bucket,
    time) per bucket."""
    p = figure_points.c
    point_groups = [p[name] for name in selection.groups]
    common = [p.distribution == number, _window(p.time, start, end), *_point_conditions(selection)]

    def buckets(asked: Mapping[int, tuple[int, int]]) -> list[int]:
        return sorted({bucket_number for bucket_number, _ in asked.values()})

    def of(group: _GroupKey) -> list[ColumnElement[bool]]:
        return [column == value for column, value in zip(point_groups, group, strict=True)]

    if "commitment_id" in selection.groups:
        parts = [select(*point_groups, p.value, p.n).where(*common, *of(group), p.bucket.in_(buckets(asked)))
                 for group, asked in wanted.items()]  # fmt: skip
        return [_summed(parts[at:at + _GROUPS_A_STATEMENT], selection.groups, "value")
                for at in range(0, len(parts), _GROUPS_A_STATEMENT)]  # fmt: skip
    every = sorted({b for asked in wanted.values() for b in buckets(asked)})
    per_group = [and_(*of(group), p.bucket.in_(buckets(asked))) for group, asked in wanted.items()]
    return [
        select(*point_groups, p.value, func.sum(p.n))
        .where(*common, p.bucket.in_(every), or_(*per_group))
        .group_by(*point_groups, p.value)
    ]


def read_distribution(
    conn: Connection, selection: Selection, name: str, start: int | None, end: int | None,
    ranks: Callable[[int], Iterable[int]],
) -> dict[_GroupKey, Spread]:
    """Per group, how many values of distribution `name` have their time in ``[start, end)``, and the value at each
    1-based rank ``ranks(count)`` names (ascending): bucket counts from the cells for whole days and from the points
    (``figure_points``) for the parts of days, then the values of the one bucket holding each rank, from its points in
    ``[start, end)``."""
    distribution = DISTRIBUTIONS[name]
    v, p = figure_values.c, figure_points.c
    periods, windows = _cell_periods(v, start, end)
    histograms: dict[_GroupKey, dict[int, int]] = {}
    groups_v = [v[name_] for name_ in selection.groups]
    n_groups = len(groups_v)
    queries = []
    if periods:
        # one term for each range of periods, so that each is a range of the key (an OR of them is planned as one
        # filter over every period of the place)
        fixed = [v.distribution == distribution.number, *_cell_conditions(v, selection)]
        queries.append(_summed([select(*groups_v, v.bucket, v.n).where(*fixed, part) for part in periods],
                               selection.groups, "bucket"))  # fmt: skip
    if windows:
        # one term per part of a day, each a range of ix_figure_points_time (an OR of them is planned as a filter over
        # every point of a fixed agency's, through the index led by the agency)
        point_groups = [p[name_] for name_ in selection.groups]
        fixed_points = [p.distribution == distribution.number, *_point_conditions(selection)]
        queries.append(_summed([select(*point_groups, p.bucket, p.n).where(*fixed_points, _window(p.time, low, high))
                                for low, high in windows], selection.groups, "bucket"))  # fmt: skip
    for query in queries:
        for row in conn.execute(query):
            counts = histograms.setdefault(tuple(row[:n_groups]), {})
            counts[int(row[n_groups])] = counts.get(int(row[n_groups]), 0) + int(row[n_groups + 1])
    # the bucket and the rank within it of every rank asked
    wanted: dict[_GroupKey, dict[int, tuple[int, int]]] = {}
    out: dict[_GroupKey, Spread] = {}
    for group, counts in histograms.items():
        total = sum(counts.values())
        if total <= 0:
            continue
        out[group] = Spread(total, {})
        ordered = sorted(b for b, n in counts.items() if n)
        cumulative, i = 0, 0
        for rank in sorted(set(ranks(total))):
            while cumulative + counts[ordered[i]] < rank:
                cumulative += counts[ordered[i]]
                i += 1
            low, high = bucket_bounds(ordered[i])
            if low == high:
                out[group].at_rank[rank] = low
            else:
                wanted.setdefault(group, {})[rank] = (ordered[i], rank - cumulative)
    if wanted:
        found: dict[_GroupKey, list[tuple[int, int]]] = {}
        for row in (row for query in _refinements(selection, distribution.number, start, end, wanted)
                    for row in conn.execute(query)):
            found.setdefault(tuple(row[:n_groups]), []).append((int(row[n_groups]), int(row[n_groups + 1])))
        for group, asked in wanted.items():
            values = sorted(found.get(group, []))
            for rank, (number_, within) in asked.items():
                low, high = bucket_bounds(number_)
                seen = 0
                for value, n in values:
                    if low <= value <= high:
                        seen += n
                        if seen >= within:
                            out[group].at_rank[rank] = value
                            break
                else:
                    raise RuntimeError(f"figure cells disagree with the rows: bucket {number_} of {name} is short")
    return out
