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

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, insert, literal, select
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
    contributions,
    roll_up,
    roll_up_values,
    value_contributions,
)
from ledger.index.sql import chunks
from ledger.store.schema import figure_cells, figure_values

__all__ = ["CellChanges", "before", "rebuild", "tracked"]

_KEY = ("cuboid", *DIMENSIONS, "level", "period")
_NAMES = [counter.name for counter in COUNTERS]


class CellChanges:
    """The cells' difference made by one transaction of the index (module docstring)."""

    def __init__(self) -> None:
        self._cases: set[tuple[str, bytes]] = set()
        self._filings: set[int] = set()
        self._delta: dict[tuple[tuple[Any, ...], int], list[int]] = {}
        self._values: dict[tuple[int, tuple[Any, ...], int, int], int] = {}

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
        self._delta.clear()
        self._values.clear()
        self._cases.clear()
        self._filings.clear()
        _add(conn, {key: values for key, values in cells.items() if any(values)})
        _add_values(conn, {key: n for key, n in buckets.items() if n})

    def _count(self, conn: Connection, cases: set[tuple[str, bytes]], filing_seqs: set[int], sign: int) -> None:
        by_agency: dict[str, list[bytes]] = {}
        for agency, case_id in sorted(cases):
            by_agency.setdefault(agency, []).append(case_id)
        asked = [("cases", {"agency": agency, "ids": chunk}) for agency, ids in by_agency.items()
                 for chunk in chunks(ids)]
        asked += [("filings", {"seqs": chunk}) for chunk in chunks(sorted(filing_seqs))]
        for owner, params in asked:
            for key, values in contributions(conn, owner, params).items():
                cell = self._delta.setdefault(key, [0] * len(COUNTERS))
                for j, value in enumerate(values):
                    cell[j] += sign * value
            for value_key, n in value_contributions(conn, owner, params).items():
                self._values[value_key] = self._values.get(value_key, 0) + sign * n


def _insert_for(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(figure_cells)


def _add(conn: Connection, cells: dict[tuple[int, tuple[Any, ...], int, int], list[int]]) -> None:
    """Add each cell's values to the stored ones (a cell not stored yet starts at 0)."""
    if not cells:
        return
    statement = _insert_for(conn)
    statement = statement.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={name: figure_cells.c[name] + statement.excluded[name] for name in _NAMES},
    )
    rows = [
        {"cuboid": cuboid, **dict(zip(DIMENSIONS, key, strict=True)), "level": level, "period": period,
         **dict(zip(_NAMES, values, strict=True))}
        for (cuboid, key, level, period), values in sorted(cells.items())
    ]
    for chunk in chunks(rows, 500):
        conn.execute(statement, chunk)
    # a cell all of whose counts are 0 is not kept, however it came to be (a rebuild makes none)
    emptied = [{f"_{name}": value for name, value in zip(_KEY, (cuboid, *key, level, period), strict=True)}
               for (cuboid, key, level, period), values in cells.items() if any(v < 0 for v in values)]
    if emptied:
        g = figure_cells.c
        conn.execute(
            figure_cells.delete().where(*(g[name] == bindparam(f"_{name}") for name in _KEY), _all_zero()), emptied
        )


_VALUE_KEY = ("distribution", *_KEY, "bucket")


def _add_values(conn: Connection, buckets: dict[tuple[int, int, tuple[Any, ...], int, int, int], int]) -> None:
    """Add to each bucket cell's count (one not stored yet starts at 0); a count brought to 0 is not kept."""
    if not buckets:
        return
    v = figure_values.c
    statement = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(figure_values)
    statement = statement.on_conflict_do_update(index_elements=list(_VALUE_KEY), set_={"n": v.n + statement.excluded.n})
    rows = [
        {"distribution": number, "cuboid": cuboid, **dict(zip(DIMENSIONS, key, strict=True)), "level": level,
         "period": period, "bucket": bucket_number, "n": n}
        for (number, cuboid, key, level, period, bucket_number), n in sorted(buckets.items())
    ]
    for chunk in chunks(rows, 500):
        conn.execute(statement, chunk)
    emptied = [
        {f"_{name}": value for name, value in zip(_VALUE_KEY, (number, cuboid, *key, level, period, at), strict=True)}
        for (number, cuboid, key, level, period, at), n in buckets.items() if n < 0
    ]
    if emptied:
        conn.execute(figure_values.delete().where(*(v[name] == bindparam(f"_{name}") for name in _VALUE_KEY),
                                                  v.n == 0), emptied)


def _all_zero() -> ColumnElement[bool]:
    g = figure_cells.c
    return and_(*(g[name] == 0 for name in _NAMES))


def rebuild(conn: Connection) -> None:
    """Every cell again, from every row: the finest cuboid's days from the rows, one pass per time (axis); the other
    cuboids' days from those; every 32 days from the days."""
    g = figure_cells.c
    conn.execute(figure_cells.delete())
    statement = _insert_for(conn)
    for axis in AXES:
        names = [counter.name for counter in axis.counters]
        columns = zip(DIMENSIONS, axis.source.dims, strict=True)
        dims: list[Any] = [func.coalesce(column, literal(ANY[name])) for name, column in columns]
        day = axis.time // DAY
        query = (
            select(literal(FINEST), *dims, literal(0), day, *(func.sum(c.summand()) for c in axis.counters))
            .select_from(axis.source.from_clause())
            .where(axis.time.is_not(None), *axis.source.marks())
            .group_by(*dims, day)
        )
        upsert = statement.from_select([*_KEY, *names], query).on_conflict_do_update(
            index_elements=list(_KEY), set_={name: g[name] + statement.excluded[name] for name in names}
        )
        conn.execute(upsert)
    finest = and_(g.cuboid == FINEST, g.level == 0)
    for number, keyed in enumerate(CUBOIDS):
        if number == FINEST:
            continue
        dims = [g[name] if name in keyed else literal(ANY[name]) for name in DIMENSIONS]
        query = select(literal(number), *dims, literal(0), g.period, *(func.sum(g[name]) for name in _NAMES)).where(
            finest
        )
        if keyed - {"agency_id"}:  # marks of a case without a row count only where the agency alone is the key
            query = query.where(g.commitment_id != ANY["commitment_id"])
        keys = [g[name] for name in DIMENSIONS if name in keyed]
        conn.execute(insert(figure_cells).from_select([*_KEY, *_NAMES], query.group_by(*keys, g.period)))
    conn.execute(figure_cells.delete().where(_all_zero()))  # a group of rows may count nothing
    _rebuild_values(conn)
    block = g.period // BLOCK_DAYS
    days = [g[name] for name in DIMENSIONS]
    conn.execute(
        insert(figure_cells).from_select(
            [*_KEY, *_NAMES],
            select(g.cuboid, *days, literal(1), block, *(func.sum(g[name]) for name in _NAMES))
            .where(g.level == 0)
            .group_by(g.cuboid, *days, block),
        )
    )


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


def _rebuild_values(conn: Connection) -> None:
    """Every bucket cell again: the finest cuboid's days from the rows, then the other cuboids and 32 days."""
    v = figure_values.c
    conn.execute(figure_values.delete())
    for distribution in DISTRIBUTIONS.values():
        source = SOURCES[distribution.source]
        columns = zip(DIMENSIONS, source.dims, strict=True)
        dims: list[Any] = [func.coalesce(column, literal(ANY[name])) for name, column in columns]
        day = distribution.time // DAY
        number = distribution.bucket
        query = (
            select(literal(distribution.number), literal(FINEST), *dims, literal(0), day, number, func.count())
            .select_from(source.from_clause())
            .where(distribution.time.is_not(None), distribution.condition, *source.marks())
            .group_by(*dims, day, number)
        )
        conn.execute(insert(figure_values).from_select(list(_VALUE_KEY) + ["n"], query))
    finest = and_(v.cuboid == FINEST, v.level == 0)
    for cuboid, keyed in enumerate(CUBOIDS):
        if cuboid == FINEST:
            continue
        dims = [v[name] if name in keyed else literal(ANY[name]) for name in DIMENSIONS]
        query = select(v.distribution, literal(cuboid), *dims, literal(0), v.period, v.bucket, func.sum(v.n)).where(
            finest
        )
        if keyed - {"agency_id"}:
            query = query.where(v.commitment_id != ANY["commitment_id"])
        keys = [v[name] for name in DIMENSIONS if name in keyed]
        conn.execute(insert(figure_values).from_select(
            list(_VALUE_KEY) + ["n"], query.group_by(v.distribution, *keys, v.period, v.bucket)))
    block = v.period // BLOCK_DAYS
    days = [v[name] for name in DIMENSIONS]
    conn.execute(insert(figure_values).from_select(
        list(_VALUE_KEY) + ["n"],
        select(v.distribution, v.cuboid, *days, literal(1), block, v.bucket, func.sum(v.n))
        .where(v.level == 0)
        .group_by(v.distribution, v.cuboid, *days, block, v.bucket),
    ))
