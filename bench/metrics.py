"""Metrics query time at province scale in PostgreSQL (a benchmark, not a test).

Run: .venv/bin/python bench/metrics.py [--cases N] [--selections S] [--repeat R] [--seed SEED]
         [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--keep | --reuse NAME]

What it does
    1. Creates a database of its own on that server (``civic_bench_metrics_<pid>``) with the tables of
       ``ledger.store.schema`` (so a column added there is there), and loads N cases over two years
       (``bench/_metrics_data.py`` says what they are: entries, case events, receipts, ratings, disputes, filings,
       corrections, each case's row folded by ``ledger.cases``) by COPY ... FREEZE, one connection per table, generated
       as they are sent (the rows of ``cases`` folded in a second process): ``load_s``. Keys and indexes are dropped
       for the load and built afterwards. Memory stays bounded.
    2. ``build_index``: the primary keys, unique constraints and indexes of the schema, then VACUUM ANALYZE:
       ``index_build_s`` (``maintenance_work_mem`` of :data:`MAINTENANCE_WORK_MEM`). This is the hook for any
       structure a technique builds over the rows (aggregates, summaries): build it there and it is counted.
       Then the foreign keys, validated (``foreign_keys_s``, apart).
    3. ``citywide_ms``: ``compute_metrics`` of the whole city over the last 90 days, ``as_of`` the end of the data;
       the median of ``--repeat`` runs after one untimed run.
    4. ``--warm`` untimed random selections of the next seed, as a running service has answered selections of every
       shape (its statements built and compiled; ``--warm 0``: a process answering its first). Then ``--selections``
       random selections (seeded: the same ones every run), each timed once and never repeated, no result reused: 80 %
       ``compute_metrics``, 10 % ``agency_scorecards``, 10 % ``commitment_scorecards``; each dimension drawn
       independently — an agency (40 %; with one of its commitments half the time), a district (30 %), a channel (25 %)
       — over a range of whole minutes (``ledger.metrics.whole_step``) from 1 day to the whole two years (log-uniform
       length; half of them ending at the end of the data), ``as_of`` the range's end or (30 %) a whole minute inside
       it. Reported: p50, p90, p99 (nearest rank), max and the slowest selection, over all of them (``*_ms_any_filter``)
       and apart for metrics and scorecards.
    5. Drops the database (also on Ctrl-C, SIGTERM or an error), unless ``--keep``: then ``--reuse NAME`` times
       selections on it again without loading (running ``build_index`` again, which builds only what is missing
       and analyzes: what a changed ``build_index`` adds is timed alone).

Output: a readable report on stderr, then one JSON line on stdout (cases, events, ratings, filings, load_s,
index_build_s, citywide_ms, p50/p90/p99/max_ms_any_filter, the database's size, the machine, ...).

``load`` is also ``bench/api.py``'s loader (through ``bench/siblings.py``): called on tables created with their keys,
it builds the keys again (primary, unique, foreign) before it returns; that caller builds the indexes. Its fold
process is spawned, so it imports the caller's main script: that script's work must be under
``if __name__ == "__main__"``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import signal
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from _metrics_data import (
    AGENCIES,
    CHANNELS,
    COLUMNS,
    DAY,
    DISTRICTS,
    NOW,
    SEED,
    START,
    Counts,
    generate,
)
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, Engine, UniqueConstraint, create_engine, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.schema import AddConstraint, CreateTable

from ledger.index.cells import TABLES, rebuild_tables
from ledger.index.project import fill_key_origins
from ledger.metrics import (
    TIME_STEP,
    MetricsFilter,
    agency_scorecards,
    commitment_scorecards,
    compute_metrics,
    percentile,
    whole_step,
)
from ledger.store.schema import create_statistics, metadata, ratings

__all__ = ["DAY", "NOW", "START", "Loaded", "build_index", "load"]

#: ``maintenance_work_mem`` while keys and indexes are built (an operator building them sets it so)
MAINTENANCE_WORK_MEM = "1GB"
#: the tables built from the loaded ones by build_index (the index keeps them as it writes: ledger.index.cells)
DERIVED = TABLES
#: memory for each sort and hash of the build (the figure cells are sums grouped by day and key)
WORK_MEM = "256MB"
P50, P90, P99 = Fraction(1, 2), Fraction(9, 10), Fraction(99, 100)


@dataclass
class Loaded:
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0

    @property
    def cases(self) -> int:
        return self.counts.cases

    @property
    def events(self) -> int:
        return self.counts.events


# --- the database -----------------------------------------------------------------------------------------------------


def load(conninfo: str, n_cases: int, *, seed: int = SEED, keys: bool = True) -> Loaded:
    """Load ``n_cases`` generated cases into the schema's tables, which must exist (they are emptied): their keys are
    dropped, every table is written by COPY ... FREEZE on a connection of its own (truncated in the same transaction,
    so the rows are written frozen and need no vacuum), while the rows are generated. With ``keys``, the primary,
    unique and foreign keys are built again before returning; without, that is left to :func:`build_index` and
    :func:`add_foreign_keys`. Indexes are never built here."""
    began = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        _drop_keys(conn)
    interval = sys.getswitchinterval()
    # the COPY writers are threads waiting on their sockets: let them have the GIL soon when the server is ready
    sys.setswitchinterval(0.001)
    try:
        with ExitStack() as stack:
            copies = {}
            for table, columns in COLUMNS.items():
                conn = stack.enter_context(psycopg.connect(conninfo))  # commits when the load ends without error
                cur = stack.enter_context(conn.cursor())
                cur.execute(f"TRUNCATE {table}")
                statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FREEZE)"
                copies[table] = stack.enter_context(cur.copy(statement, writer=QueuedLibpqWriter(cur)))
            # the cases' rows are folded in a process of their own: the other core, shared with the server
            counts = generate(n_cases, seed, lambda table, lines: copies[table].write(lines), fold_apart=True)
    finally:
        sys.setswitchinterval(interval)
    if keys:
        engine = create_engine(make_url(conninfo).set(drivername="postgresql+psycopg"))
        try:
            with engine.begin() as sa_conn:
                _build_keys(sa_conn)
                _add_foreign_keys(sa_conn)
        finally:
            engine.dispose()
    return Loaded(counts, time.perf_counter() - began)


def _drop_keys(conn: psycopg.Connection[Any]) -> None:
    """Drop every foreign key of the schema, and the primary and unique keys of the tables loaded."""
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname, c.contype FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE n.nspname = current_schema() AND c.contype IN ('f', 'p', 'u') AND c.conrelid::regclass::text = ANY(%s)"
        " ORDER BY c.contype = 'f' DESC",
        ([table.name for table in metadata.sorted_tables],),
    ).fetchall()
    for table, name, kind in rows:
        if kind == "f" or table in COLUMNS:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')


def _build_keys(conn: Connection) -> None:
    """The schema's primary keys and unique constraints that the database lacks."""
    found = inspect(conn)
    for table in metadata.sorted_tables:
        if table.primary_key.columns and not found.get_pk_constraint(table.name)["constrained_columns"]:
            conn.execute(AddConstraint(table.primary_key))
        unique = {tuple(u["column_names"]) for u in found.get_unique_constraints(table.name)}
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint) and tuple(constraint.columns.keys()) not in unique:
                conn.execute(AddConstraint(constraint))


def _add_foreign_keys(conn: Connection) -> None:
    """The schema's foreign keys that the database lacks, validated."""
    found = inspect(conn)
    for table in metadata.sorted_tables:
        present = {(tuple(fk["constrained_columns"]), fk["referred_table"])
                   for fk in found.get_foreign_keys(table.name)}  # fmt: skip
        for constraint in table.foreign_key_constraints:
            if (tuple(constraint.column_keys), constraint.referred_table.name) not in present:
                conn.execute(AddConstraint(constraint))


def build_index(engine: Engine) -> None:
    """Everything built over the loaded rows before a selection is timed (``index_build_s``): today the schema's
    primary and unique keys and its indexes, then VACUUM ANALYZE. Builds only what is missing, so it can run again on a
    kept database. A technique that precomputes (aggregates per day, per group...) builds its structures here."""
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'"))
        conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        metadata.create_all(conn, checkfirst=True)  # the tables not loaded (DERIVED: built from what is), if missing
        _build_keys(conn)
        for table in metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
        create_statistics(conn)  # the VACUUM (ANALYZE) below fills them
        # the index stores each rating's and dispute's key origin as it writes them; the loaded rows have none
        if conn.execute(select(ratings.c.seq).where(ratings.c.key_origin.is_(None)).limit(1)).first() is not None:
            fill_key_origins(conn, 0)
        # the figure cells, which the index keeps as it writes (ledger.index.cells): built whole from the rows
        empty = [table for table in DERIVED if conn.execute(select(table).limit(1)).first() is None]
        if empty:
            rebuild_tables(conn, empty)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE)"))


def add_foreign_keys(engine: Engine) -> None:
    with engine.begin() as conn:
        _add_foreign_keys(conn)


def _check_schema(engine: Engine, name: str) -> None:
    """A kept database is reused only if its tables have the schema's columns."""
    found = inspect(engine)
    for table in metadata.sorted_tables:
        if table.name not in COLUMNS and not found.has_table(table.name):
            continue  # not loaded (derived from the rows, or the indexer's lease): build_index creates it
        have = {column["name"] for column in found.get_columns(table.name)}
        if have != set(table.c.keys()):
            sys.exit(f"database {name} was loaded with another schema ({table.name}'s columns differ): load it again")


# --- selections -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    #: compute_metrics, agency_scorecards or commitment_scorecards
    function: Callable[[Engine, MetricsFilter], object]
    flt: MetricsFilter

    @property
    def is_scorecard(self) -> bool:
        return self.function is not compute_metrics

    def describe(self) -> str:
        f = self.flt
        names = [self.function.__name__]
        names += [
            f"{name}={value}"
            for name, value in (
                ("agency", f.agency_id),
                ("commitment", f.commitment_id),
                ("district", f.district),
                ("channel", f.channel),
            )
            if value
        ]
        assert f.start is not None and f.end is not None
        names.append(f"[{_minute(f.start)}, {_minute(f.end)}) ({(f.end - f.start) / DAY:.1f} days)")
        if f.as_of != f.end:
            names.append(f"as_of {_minute(f.now)}")
        return " ".join(names)


def _minute(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%MZ")


def draw_selections(count: int, seed: int) -> list[Selection]:
    """``count`` random selections (see the module docstring), the same for the same seed."""
    rng = random.Random(seed)
    minutes = (NOW - START) // TIME_STEP
    drawn = []
    for _ in range(count):
        r = rng.random()
        function: Callable[[Engine, MetricsFilter], object] = (
            compute_metrics if r < 0.8 else agency_scorecards if r < 0.9 else commitment_scorecards
        )
        agency = commitment = district = None
        channel = None
        if rng.random() < 0.4:
            agency = rng.choice(list(AGENCIES))
            if rng.random() < 0.5:
                commitment = rng.choice(AGENCIES[agency][1])[0]
        if rng.random() < 0.3:
            district = rng.choice(list(DISTRICTS))
        if rng.random() < 0.25:
            channel = int(rng.choice(list(CHANNELS)))
        length = TIME_STEP * round(math.exp(rng.uniform(math.log(DAY // TIME_STEP), math.log(minutes))))
        end = NOW if rng.random() < 0.5 else whole_step(rng.randrange(START + length, NOW + 1))
        start = end - length
        as_of = end if rng.random() < 0.7 else whole_step(rng.randrange(start + TIME_STEP, end))
        flt = MetricsFilter(agency_id=agency, commitment_id=commitment, district=district, channel=channel,
                            start=start, end=end, as_of=as_of)  # fmt: skip
        drawn.append(Selection(function, flt))
    return drawn


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000


@dataclass(frozen=True)
class Spread:
    """Nearest-rank percentiles of timings (ms)."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    maximum: float | None

    @classmethod
    def of(cls, timings: list[float]) -> Spread:
        micros = sorted(round(ms * 1000) for ms in timings)  # integers: ledger.metrics.percentile's nearest rank

        def at(p: Fraction) -> float | None:
            value = percentile(micros, p)
            return None if value is None else round(value / 1000, 1)

        return cls(len(micros), at(P50), at(P90), at(P99), at(Fraction(1)))


# --- the run ----------------------------------------------------------------------------------------------------------


def _stopped(signum: int, _frame: FrameType | None) -> None:
    sys.exit(128 + signum)  # SystemExit: the database is dropped on the way out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--selections", type=int, default=200, help="random selections timed (at least 200 for p99)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the city-wide selection (median)")
    parser.add_argument("--warm", type=int, default=200,
                        help="untimed selections of another seed first, as a running service has answered (0: none)")
    parser.add_argument("--seed", type=int, default=SEED, help="of the data and of the selections")
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    kept.add_argument("--reuse", metavar="NAME", help="time selections on a kept database, without loading")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stopped)

    admin_url = make_url(args.url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = args.reuse or f"civic_bench_metrics_{os.getpid()}"
    created = False
    engine: Engine | None = None
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if args.reuse and not exists:
                sys.exit(f"no database {name} to reuse")
            if not args.reuse:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                created = True
        bench_url = admin_url.set(database=name)
        engine = create_engine(bench_url)
        figures = _reuse(admin, engine, name) if args.reuse else _load(admin, engine, bench_url, name, args)
        _time(engine, figures, args)
        if args.keep:
            _say(f'database kept: {name} (again: --reuse {name}; drop it with DROP DATABASE "{name}")')
        print(json.dumps(figures))
    finally:
        if engine is not None:
            engine.dispose()
        if created and not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _load(admin: Engine, engine: Engine, bench_url: URL, name: str, args: argparse.Namespace) -> dict[str, Any]:
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            conn.execute(CreateTable(table))  # its keys are dropped for the load, its indexes built after
    conninfo = bench_url.set(drivername="postgresql").render_as_string(hide_password=False)
    _say(f"loading {args.cases:,} cases into {name} ...")
    loaded = load(conninfo, args.cases, seed=args.seed, keys=False)
    counts = loaded.counts
    _say(f"loaded in {loaded.seconds:.0f} s ({args.cases / loaded.seconds:,.0f} cases/s): {counts}")
    began = time.perf_counter()
    build_index(engine)
    index_seconds = time.perf_counter() - began
    _say(f"build_index: {index_seconds:.1f} s")
    began = time.perf_counter()
    add_foreign_keys(engine)
    fk_seconds = time.perf_counter() - began
    _say(f"foreign keys: {fk_seconds:.1f} s")
    figures: dict[str, Any] = {
        "cases": counts.cases, "events": counts.events, "entries": counts.entries, "receipts": counts.receipts,
        "ratings": counts.ratings, "disputes": counts.disputes, "filings": counts.filings, "seed": args.seed,
        "load_s": round(loaded.seconds, 1), "index_build_s": round(index_seconds, 1),
        "foreign_keys_s": round(fk_seconds, 1),
    }  # fmt: skip
    if args.keep:  # what a --reuse run reports of the load
        remembered = json.dumps(figures).replace("'", "''")
        with admin.connect() as conn:
            conn.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{remembered}'"))
    return figures


def _reuse(admin: Engine, engine: Engine, name: str) -> dict[str, Any]:
    _check_schema(engine, name)
    with admin.connect() as conn:
        remembered = conn.execute(
            text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar()
    figures: dict[str, Any] = json.loads(remembered) if remembered else {}
    figures["reused"] = name
    began = time.perf_counter()
    build_index(engine)
    figures["index_build_s"] = round(time.perf_counter() - began, 1)
    _say(f"reusing {name}: build_index (what is missing, and VACUUM ANALYZE) {figures['index_build_s']} s")
    return figures


def _time(engine: Engine, figures: dict[str, Any], args: argparse.Namespace) -> None:
    """Time the city-wide selection and the random ones; add the figures."""
    load_average = os.getloadavg()[0]
    city = MetricsFilter(start=whole_step(NOW - 90 * DAY), end=NOW)
    compute_metrics(engine, city)  # untimed: the server's caches as in a running service
    runs = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        compute_metrics(engine, city)
        runs.append(_ms(began))
    figures["citywide_ms"] = round(statistics.median(runs), 1)
    _say(f"city-wide, last 90 days: {figures['citywide_ms']} ms (median of {args.repeat}; "
         f"{min(runs):.0f}-{max(runs):.0f})")  # fmt: skip

    # A running service has answered selections of every shape: its statements are built and compiled (no figure
    # is cached, and the timed selections are others).
    for selection in draw_selections(args.warm, args.seed + 1):
        selection.function(engine, selection.flt)
    figures["warm_selections"] = args.warm
    selections = draw_selections(args.selections, args.seed)
    timings: list[tuple[float, Selection]] = []
    for i, selection in enumerate(selections, 1):
        began = time.perf_counter()
        selection.function(engine, selection.flt)
        timings.append((_ms(began), selection))
        if i % 20 == 0 or i == len(selections):
            _say(f"  {i}/{len(selections)} selections, slowest so far {max(t for t, _ in timings):,.0f} ms")
    every = Spread.of([t for t, _ in timings])
    metrics_only = Spread.of([t for t, s in timings if not s.is_scorecard])
    scorecards = Spread.of([t for t, s in timings if s.is_scorecard])
    slowest_ms, slowest = max(timings, key=lambda pair: pair[0])
    with engine.connect() as conn:
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        server = conn.execute(text("SHOW server_version")).scalar_one()
    figures.update({
        "p50_ms_any_filter": every.p50, "p90_ms_any_filter": every.p90, "p99_ms_any_filter": every.p99,
        "max_ms_any_filter": every.maximum, "selections": every.count, "slowest_selection": slowest.describe(),
        "metrics_p99_ms": metrics_only.p99, "scorecards_p99_ms": scorecards.p99, "db_mb": round(size / 2**20),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "postgresql": server,
                    "load_average": [round(load_average, 1), round(os.getloadavg()[0], 1)]},
    })  # fmt: skip

    _say("")
    _say(
        f"{figures['cases']:,} cases, {figures['events']:,} case events, {figures['ratings']:,} ratings, "
        f"{figures['filings']:,} filings; database {figures['db_mb']:,} MB; PostgreSQL {server}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load_average:.1f} to {os.getloadavg()[0]:.1f}"
    )
    if "load_s" in figures:
        _say(f"{'load':40} {figures['load_s']:>10,.1f} s")
    _say(f"{'build_index (keys, indexes, analyze)':40} {figures['index_build_s']:>10,.1f} s")
    _say(f"{'city-wide, last 90 days (median)':40} {figures['citywide_ms']:>10,.1f} ms")
    _say(f"{'selections':24} {'n':>5} {'p50 ms':>10} {'p90 ms':>10} {'p99 ms':>10} {'max ms':>10}")
    for label, spread in (("any", every), ("compute_metrics", metrics_only), ("scorecards", scorecards)):
        _say(f"{label:24} {spread.count:>5} {_shown(spread.p50)} {_shown(spread.p90)} {_shown(spread.p99)} "
             f"{_shown(spread.maximum)}")  # fmt: skip
    _say(f"slowest ({slowest_ms:,.0f} ms): {slowest.describe()}")


def _shown(ms: float | None) -> str:
    return f"{'-':>10}" if ms is None else f"{ms:>10,.1f}"


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the database is dropped by then
        sys.exit(130)
