"""Keeping the figure cells (``ledger.cells``) as the index writes, and building them whole.

By difference, in the writer's transaction (:class:`CellChanges`): every path that writes a case's rows (its
``cases`` row, ratings, disputes) or a filing's row first hands the keys to :meth:`CellChanges.before`, which counts
what those rows contribute now and subtracts it, once per key and transaction; :meth:`CellChanges.apply`, before the
transaction commits, counts them again and adds. Readers in other transactions see the cells and the rows change
together. A path that forgets to call ``before`` leaves cells that disagree with the rows: the equality tests of
``tests/ledger/test_indexer_figures.py`` index real entries and compare the figures with the rows' own.

Whole (:func:`rebuild`): from every row, in SQL, for a migration, the benchmark's load, or a test's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, literal, or_, select, union_all
from sqlalchemy.dialects import postgresql, sqlite

from ledger.cells import (
    ANY,
    AXES,
    BLOCK_DAYS,
    COUNTERS,
    CUBOIDS,
    DAY,
    DIMENSIONS,
    DISTRIBUTIONS,
    FINEST,
    SOURCES,
    Distribution,
    contributions,
    roll_up,
    roll_up_values,
)
from ledger.index.sql import chunks
from ledger.store.schema import figure_cells, figure_points, figure_values

__all__ = ["CellChanges", "before", "rebuild", "tracked"]

_KEY = ("cuboid", *DIMENSIONS, "level", "period")


class CellChanges:
    """The cells' difference made by one transaction of the index (module docstring)."""

    def __init__(self) -> None:
        self._cases: set[tuple[str, bytes]] = set()
        self._filings: set[int] = set()
        self._delta: dict[tuple[tuple[Any, ...], int], list[int]] = {}
        self._values: dict[tuple[int, tuple[Any, ...], int, int], int] = {}
        self._points: dict[tuple[Any, ...], int] = {}

    def before(
        self, conn: Connection, cases: Iterable[tuple[str, bytes]] = (), filing_seqs: Iterable[int] = ()
    ) -> None:
        """Subtract what these cases' and filings' rows contribute now, unless done already in this transaction."""
        new_cases = set(cases) - self._cases
        new_filings = set(filing_seqs) - self._filings
        self._count(conn, new_cases, new_filings, -1)
        self._cases |= new_cases
        self._filings |= new_filings

    def apply(self, conn: Connection) -> None:
        """Add what the rows handed to :meth:`before` contribute now, and write the difference."""
        self._count(conn, self._cases, self._filings, 1)
        cells = roll_up(self._delta)
        buckets = roll_up_values(self._values)
        points = [(point, [n]) for point, n in self._points.items() if n]
        self._delta.clear()
        self._values.clear()
        self._points.clear()
        self._cases.clear()
        self._filings.clear()
        _add_rows(conn, figure_cells, _KEY, [((cuboid, *key, level, period), values)
                                              for (cuboid, key, level, period), values in cells.items() if any(values)])
        _add_rows(conn, figure_values, _VALUE_KEY, [((number, cuboid, *key, level, period, at), [n])
                                                    for (number, cuboid, key, level, period, at), n in buckets.items()
                                                    if n])
        _add_rows(conn, figure_points, _POINT_KEY, points)

    def _count(self, conn: Connection, cases: set[tuple[str, bytes]], filing_seqs: set[int], sign: int) -> None:
        by_agency: dict[str, list[bytes]] = {}
        for agency, case_id in sorted(cases):
            by_agency.setdefault(agency, []).append(case_id)
        asked = [("cases", {"agency": agency, "ids": chunk}) for agency, ids in by_agency.items()
                 for chunk in chunks(ids)]
        asked += [("filings", {"seqs": chunk}) for chunk in chunks(sorted(filing_seqs))]
        for owner, params in asked:
            counts, values, points = contributions(conn, owner, params)
            for key, counted in counts.items():
                cell = self._delta.setdefault(key, [0] * len(COUNTERS))
                for j, value in enumerate(counted):
                    cell[j] += sign * value
            for value_key, n in values.items():
                self._values[value_key] = self._values.get(value_key, 0) + sign * n
            for point, n in points.items():
                self._points[point] = self._points.get(point, 0) + sign * n


def _insert_for(conn: Connection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


_VALUE_KEY = ("distribution", *_KEY, "bucket")
_POINT_KEY = tuple(column.name for column in figure_points.primary_key.columns)


def _add_rows(
    conn: Connection, table: Any, key: Sequence[str], rows: list[tuple[tuple[Any, ...], list[int]]]
) -> None:
    """Add each row's counts (the columns of `table` after its `key`) to the stored ones (a row not stored yet starts
    at 0); a row whose counts are all brought to 0 is not kept, however it came to be (a rebuild makes none)."""
    if not rows:
        return
    t = table.c
    counts = [column.name for column in table.columns if column.name not in key]
    statement = _insert_for(conn, table)
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={name: t[name] + statement.excluded[name] for name in counts}
    )
    values = [dict(zip((*key, *counts), (*at, *n), strict=True)) for at, n in sorted(rows)]
    for chunk in chunks(values, 500):
        conn.execute(statement, chunk)
    emptied = [{f"_{name}": v for name, v in zip(key, at, strict=True)} for at, n in rows if any(x < 0 for x in n)]
    if emptied:
        zero = and_(*(t[name] == 0 for name in counts))
        conn.execute(table.delete().where(*(t[name] == bindparam(f"_{name}") for name in key), zero), emptied)


def _includes_unknown(cuboid: int) -> bool:
    """Whether a cuboid counts the marks of a case without a ``cases`` row (``ledger.cells.cell_keys``)."""
    return cuboid == FINEST or not CUBOIDS[cuboid] - {"agency_id"}


def _roll_up_rows(conn: Connection, table: Any, grouped: Sequence[str]) -> None:
    """In SQL, from the finest cuboid's days (already in `table`): its 32 days, then every other cuboid (days and 32
    days in one statement) from the smallest cuboid already built that is keyed by more dimensions, so that each pass
    reads as few rows as can be (the finest cuboid is the largest by far). `grouped` names the columns besides the
    key that rows are grouped by (a distribution and a bucket); the rest are summed."""
    t = table.c
    extra = [t[name] for name in grouped]
    sums = [column.name for column in table.columns if column.name not in {*_KEY, *grouped}]
    columns = [*grouped, *_KEY, *sums]
    totals = [func.sum(t[name]) for name in sums]
    dims = [t[name] for name in DIMENSIONS]
    block = t.period // BLOCK_DAYS
    query = select(*extra, literal(FINEST), *dims, literal(1), block, *totals)
    query = query.where(t.cuboid == FINEST, t.level == 0).group_by(*extra, *dims, block)
    rows = {FINEST: conn.execute(insert(table).from_select(columns, query)).rowcount}
    for number in sorted(range(len(CUBOIDS)), key=lambda n: -len(CUBOIDS[n])):
        if number == FINEST:
            continue
        keyed = CUBOIDS[number]
        parents = [p for p in rows if CUBOIDS[p] > keyed and (_includes_unknown(p) or not _includes_unknown(number))]
        parent = min(parents, key=lambda p: (rows[p] if rows[p] >= 0 else 1 << 62, len(CUBOIDS[p])))
        keys = [t[name] for name in DIMENSIONS if name in keyed]
        values = [t[name] if name in keyed else literal(ANY[name]) for name in DIMENSIONS]
        query = select(*extra, literal(number), *values, t.level, t.period, *totals).where(t.cuboid == parent)
        if _includes_unknown(parent) and not _includes_unknown(number):  # the finest: leave out the unknown marks
            query = query.where(t.commitment_id != ANY["commitment_id"])
        query = query.group_by(*extra, *keys, t.level, t.period)
        rows[number] = conn.execute(insert(table).from_select(columns, query)).rowcount


#: the tables the index keeps by difference (:class:`CellChanges`), in the order :func:`rebuild` makes them
TABLES = (figure_cells, figure_values, figure_points)


def rebuild(conn: Connection) -> None:
    """Every cell, bucket cell and point again, from every row."""
    rebuild_tables(conn, TABLES)


def rebuild_tables(conn: Connection, tables: Sequence[Any]) -> None:
    """These of :data:`TABLES` again, from every row (a migration that adds one builds that one)."""
    builders = {figure_cells: _rebuild_cells, figure_values: _rebuild_values, figure_points: _rebuild_points}
    for table in TABLES:
        if table in tables:
            builders[table](conn)


def _rebuild_cells(conn: Connection) -> None:
    """Every cell again: the finest cuboid's days from the rows (one pass per time (axis), their counts summed per
    cell in one statement); then the rest from those (:func:`_roll_up_rows`)."""
    conn.execute(figure_cells.delete())
    names = [counter.name for counter in COUNTERS]
    parts = []
    for axis in AXES:
        columns = zip(DIMENSIONS, axis.source.dims, strict=True)
        dims: list[Any] = [func.coalesce(column, literal(ANY[name])).label(name) for name, column in columns]
        day = (axis.time // DAY).label("period")
        mine = {counter.name: func.sum(counter.summand()) for counter in axis.counters}
        parts.append(
            select(*dims, day, *(mine.get(name, literal(0)).label(name) for name in names))
            .select_from(axis.source.from_clause())
            .where(axis.time.is_not(None), *axis.source.marks())
            .group_by(*dims, day)
        )
    every = union_all(*parts).subquery()
    u = every.c
    query = (
        select(literal(FINEST), *(u[name] for name in DIMENSIONS), literal(0), u.period,
               *(func.sum(u[name]) for name in names))
        .group_by(*(u[name] for name in DIMENSIONS), u.period)
        .having(or_(*(func.sum(u[name]) != 0 for name in names)))  # a group of rows may count nothing
    )
    conn.execute(insert(figure_cells).from_select([*_KEY, *names], query))
    _roll_up_rows(conn, figure_cells, ())


_TRACKED = "civic_ledger.cell_changes"


@contextmanager
def tracked(conn: Connection) -> Iterator[CellChanges]:
    """Keep the cells in step with what the block writes in `conn`'s transaction: every :func:`before` in it is
    collected, and the difference written at its end (nothing when it raises: the transaction is rolled back)."""
    changes = CellChanges()
    conn.info[_TRACKED] = changes
    try:
        yield changes
        changes.apply(conn)
    finally:
        conn.info.pop(_TRACKED, None)


def before(conn: Connection, cases: Iterable[tuple[str, bytes]] = (), filing_seqs: Iterable[int] = ()) -> None:
    """Say that these cases' and filings' rows are about to change (:meth:`CellChanges.before`); outside a
    :func:`tracked` block (a migration, which rebuilds the cells after) it does nothing."""
    changes = conn.info.get(_TRACKED)
    if changes is not None:
        changes.before(conn, cases, filing_seqs)


def _counted_values(distribution: Distribution, columns: Callable[[list[Any]], tuple[list[Any], list[Any]]]) -> Any:
    """How many values of `distribution` the rows hold, per group: ``columns(dims)`` (given its marks' dimensions, ''
    (0) where the case has no row) says what to select before the count and what to group by."""
    source = SOURCES[distribution.source]
    named = zip(DIMENSIONS, source.dims, strict=True)
    selected, grouped = columns([func.coalesce(column, literal(ANY[name])) for name, column in named])
    return (
        select(*selected, func.count())
        .select_from(source.from_clause())
        .where(distribution.time.is_not(None), distribution.condition, *source.marks())
        .group_by(*grouped)
    )


def _rebuild_values(conn: Connection) -> None:
    """Every bucket cell again: the finest cuboid's days from the rows, then the other cuboids and 32 days."""
    conn.execute(figure_values.delete())
    for d in DISTRIBUTIONS.values():
        day = d.time // DAY  # one expression, selected and grouped by

        def cells(dims: list[Any], d: Distribution = d, day: Any = day) -> tuple[list[Any], list[Any]]:
            return [literal(d.number), literal(FINEST), *dims, literal(0), day, d.bucket], [*dims, day, d.bucket]

        query = _counted_values(d, cells)
        conn.execute(insert(figure_values).from_select([*_VALUE_KEY, "n"], query))
    _roll_up_rows(conn, figure_values, ("distribution", "bucket"))


def _rebuild_points(conn: Connection) -> None:
    """Every point again, from the rows (:func:`ledger.cells.contributions` counts them alike)."""
    conn.execute(figure_points.delete())
    for d in DISTRIBUTIONS.values():

        def points(dims: list[Any], d: Distribution = d) -> tuple[list[Any], list[Any]]:
            return [literal(d.number), d.bucket, d.time, d.value, *dims], [d.bucket, d.time, d.value, *dims]

        query = _counted_values(d, points)
        conn.execute(insert(figure_points).from_select([*_POINT_KEY, "n"], query))
