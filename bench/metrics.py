"""Metrics query time over a million cases in PostgreSQL (a benchmark, not a test).

Run: python bench/metrics.py [--cases N] [--repeat R] [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
— creates a database of its own on that server, loads N realistic cases (about 3 case events each, with their
entries) by COPY, ANALYZEs, times ``ledger.metrics.compute_metrics`` for a few typical selections, drops the
database, prints a table and then one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy import Engine, Index, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateTable

from ledger.metrics import (
    MetricsFilter,
    agency_scorecards,
    commitment_scorecards,
    compute_metrics,
)
from ledger.records import CaseAction, EntryKind
from ledger.store.schema import entries, metadata

DAY = 86_400
HOUR = 3_600
#: the data covers one year ending at NOW (2026-01-01T00:00:00Z); "now" for open and overdue is its end
START = 1_735_689_600
NOW = START + 365 * DAY
SEED = 20261121

#: Shanghai's districts -> share of cases (roughly their populations, in ten-thousands)
DISTRICTS = {
    "PUDONG": 578, "MINHANG": 268, "BAOSHAN": 224, "SONGJIANG": 194, "JIADING": 184, "JINGAN": 98, "QINGPU": 127,
    "FENGXIAN": 115, "YANGPU": 123, "XUHUI": 111, "PUTUO": 124, "HUANGPU": 66, "HONGKOU": 76, "CHANGNING": 69,
    "JINSHAN": 82, "CHONGMING": 63,
}  # fmt: skip
#: channel code -> share of cases (a hotline city: 12345 takes most)
CHANNELS = {1: 10, 2: 45, 3: 15, 4: 20, 5: 3, 6: 7}
#: agency -> (share of cases, [(commitment, deadline seconds, target bps, working days?)])
AGENCIES: dict[str, tuple[int, list[tuple[str, int, int]]]] = {
    "SH-ROADS": (18, [("STREETLIGHT-48H", 48 * HOUR, 9500), ("POTHOLE-72H", 72 * HOUR, 9000),
                      ("SIGNAGE-5WD", 7 * DAY, 9000)]),
    "SH-WATER": (14, [("LEAK-24H", 24 * HOUR, 9500), ("METER-3WD", 5 * DAY, 9000),
                      ("PRESSURE-48H", 48 * HOUR, 9000)]),
    "SH-SANITATION": (16, [("WASTE-24H", 24 * HOUR, 9800), ("BULKY-72H", 72 * HOUR, 9500),
                           ("TOILET-48H", 48 * HOUR, 9000)]),
    "SH-HOUSING": (10, [("REPAIR-10WD", 14 * DAY, 8500), ("PERMIT-15WD", 21 * DAY, 9000)]),
    "SH-MARKET": (9, [("LICENCE-3WD", 5 * DAY, 9500), ("COMPLAINT-7WD", 9 * DAY, 9000),
                      ("FOOD-48H", 48 * HOUR, 9500)]),
    "SH-TRANSPORT": (8, [("BUS-72H", 72 * HOUR, 9000), ("PARKING-5WD", 7 * DAY, 8500)]),
    "SH-GREENING": (5, [("TREE-72H", 72 * HOUR, 9000), ("PARK-5WD", 7 * DAY, 9000)]),
    "SH-ECOENV": (6, [("NOISE-48H", 48 * HOUR, 8500), ("AIR-5WD", 7 * DAY, 9000)]),
    "SH-CIVIL": (4, [("MARRIAGE-1WD", 1 * DAY, 9900), ("ASSIST-10WD", 14 * DAY, 9500)]),
    "SH-HEALTH": (5, [("CLINIC-5WD", 7 * DAY, 9000), ("VACCINE-48H", 48 * HOUR, 9500)]),
    "SH-EDUCATION": (3, [("ENROL-10WD", 14 * DAY, 9500)]),
    "SH-PLANNING": (2, [("ZONING-20WD", 28 * DAY, 8000)]),
}  # fmt: skip

_ZERO_HASH = "\\\\x" + "ab" * 32  # a 32-byte value in COPY text format: real width, no generation cost
_HEAD = "\\\\x" + "cd" * 24
_ACTOR = "0x" + "12" * 20


@dataclass
class Loaded:
    cases: int = 0
    events: int = 0
    seconds: float = 0.0


def _hex(value: bytes) -> str:
    return "\\\\x" + value.hex()


def _opt(value: int | None) -> str:
    return "\\N" if value is None else str(value)


def generate(n_cases: int, rng: random.Random) -> Iterator[tuple[list[str], list[tuple[int, int, int, int]]]]:
    """Cases as the fields of ``cases`` COPY lines (opened_seq and last_seq left for the loader to fill in), each with
    its events as (action, occurred_at, block_time, voided)."""
    agency_ids = list(AGENCIES)
    agency_weights = [AGENCIES[a][0] for a in agency_ids]
    channels, channel_weights = list(CHANNELS), list(CHANNELS.values())
    districts, district_weights = list(DISTRICTS), list(DISTRICTS.values())
    span = NOW - START
    closing = {"fulfilled": CaseAction.FULFILLED, "rejected": CaseAction.REJECTED, "withdrawn": CaseAction.WITHDRAWN}
    for i in range(n_cases):
        agency = rng.choices(agency_ids, agency_weights)[0]
        commitment, deadline, _target = rng.choice(AGENCIES[agency][1])
        district = rng.choices(districts, district_weights)[0]
        channel = rng.choices(channels, channel_weights)[0]
        opened_at = START + i * span // n_cases + rng.randrange(600)  # loaded roughly in time order, as indexed
        case_id = (i + 1).to_bytes(4, "big") + rng.randbytes(28)
        roll = rng.random()
        if roll < 0.005:
            outcome, work = "stuck", 10**9  # forgotten cases: the overdue backlog
        elif roll < 0.065:
            outcome, work = "rejected", rng.randrange(HOUR, 2 * DAY)
        elif roll < 0.095:
            outcome, work = "withdrawn", rng.randrange(HOUR, 3 * DAY)
        else:
            outcome, work = "fulfilled", max(600, int(deadline * rng.lognormvariate(-0.5, 0.55)))
        events: list[tuple[int, int]] = [(CaseAction.OPENED, opened_at)]
        if rng.random() < 0.8:
            events.append((CaseAction.ACCEPTED, opened_at + rng.randrange(60, 4 * HOUR)))
        status, on_hold_since, hold_seconds, completed_holds = "open", None, 0, 0
        hold = 0
        if rng.random() < 0.12:  # waiting for the citizen (missing documents, no one home)
            hold_start = opened_at + rng.randrange(min(work, 2 * deadline))
            hold = rng.randrange(HOUR, 4 * DAY)
            if hold_start < NOW:
                events.append((CaseAction.ON_HOLD, hold_start))
                if hold_start + hold < NOW:
                    events.append((CaseAction.RESUMED, hold_start + hold))
                    hold_seconds = completed_holds = hold
                else:
                    status, on_hold_since, hold_seconds = "on_hold", hold_start, NOW - hold_start
        # working-day commitments whose holiday calendar is missing have no due time
        due_at = None if (deadline >= 5 * DAY and rng.random() < 0.01) else opened_at + deadline + completed_holds
        end_at = opened_at + work + hold
        closed_at = fulfil = on_time = None
        if end_at < NOW and outcome != "stuck" and status != "on_hold":
            status, closed_at = outcome, end_at
            events.append((closing[outcome], end_at))
            if outcome == "fulfilled":
                fulfil = end_at - opened_at - hold_seconds
                on_time = None if due_at is None else end_at <= due_at
        fields = [
            agency, _hex(case_id), commitment, "1", district, str(channel), "<opened_seq>", str(opened_at), status,
            _opt(closed_at), str(hold_seconds), _opt(on_hold_since), _opt(due_at), _opt(fulfil),
            "\\N" if on_time is None else ("t" if on_time else "f"), "t" if rng.random() < 0.03 else "f",
            "0", "<last_seq>",
        ]  # fmt: skip
        timed: list[tuple[int, int, int, int]] = []
        for action, occurred in events:
            r = rng.random()
            # most entries are batched within minutes; some a working day later; a few (backdated?) days later
            latency = rng.randrange(5, 300) if r < 0.9 else rng.randrange(300, 20 * HOUR) if r < 0.99 else (
                rng.randrange(DAY, 5 * DAY))
            voided = 1 if rng.random() < 0.001 else 0
            timed.append((action, occurred, occurred + latency, voided))
        yield fields, timed


def load(conninfo: str, n_cases: int) -> Loaded:
    """COPY the generated rows in (indexes are built afterwards: faster than maintaining them row by row)."""
    rng = random.Random(SEED)
    loaded = Loaded()
    began = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=False) as conn:
        seq = 0
        commitment_lines: list[str] = []
        entry_lines: list[str] = []
        for agency, (_share, offered) in AGENCIES.items():
            for commitment, deadline, target in offered:
                entry_lines.append(_entry_line(seq, EntryKind.COMMITMENT_PUBLISHED, agency, START - DAY, START - DAY,
                                               None))  # fmt: skip
                unit, amount = (1, deadline // HOUR) if deadline <= 72 * HOUR else (2, deadline // DAY * 5 // 7)
                commitment_lines.append("\t".join((
                    agency, commitment, "1", commitment.split("-")[0], "服务", "Service", str(amount), str(unit),
                    str(target), str(START - DAY), _ZERO_HASH, str(START - DAY), str(seq), "\\N",
                )))  # fmt: skip
                seq += 1
        _copy(conn, "entries", entry_lines)
        _copy(conn, "commitments", commitment_lines)
        case_buf: list[str] = []
        event_buf: list[str] = []
        entry_buf: list[str] = []
        for i, (fields, events) in enumerate(generate(n_cases, rng)):
            agency, case_hex = fields[0], fields[1]
            fields[6], fields[17] = str(seq), str(seq + len(events) - 1)  # opened_seq, last_seq
            case_buf.append("\t".join(fields))
            for action, occurred, block_time, voided in events:
                intake = (fields[2], fields[4], fields[5]) if action == CaseAction.OPENED else ("\\N",) * 3
                event_buf.append("\t".join(
                    (str(seq), agency, case_hex, str(int(action)), str(occurred), str(block_time), _ZERO_HASH, *intake)
                ))  # fmt: skip
                entry_buf.append(_entry_line(seq, EntryKind.CASE_EVENT, agency, occurred, block_time,
                                             seq + 10_000_000 if voided else None))  # fmt: skip
                seq += 1
                loaded.events += 1
            loaded.cases += 1
            if len(case_buf) >= 100_000 or i == n_cases - 1:
                _copy(conn, "entries", entry_buf)
                _copy(conn, "case_events", event_buf)
                _copy(conn, "cases", case_buf)
                case_buf, event_buf, entry_buf = [], [], []
        conn.commit()
    loaded.seconds = time.perf_counter() - began
    return loaded


def _entry_line(seq: int, kind: int, agency: str, occurred: int, block_time: int, voided_by: int | None) -> str:
    block = (block_time - START) // 2
    return "\t".join((
        str(seq), str(int(kind)), agency, _ACTOR, _ZERO_HASH, _ZERO_HASH, _HEAD, str(block), _ZERO_HASH,
        str(block_time), _ZERO_HASH, str(seq % 100), str(occurred), _opt(voided_by),
    ))  # fmt: skip


#: the columns each COPY line gives, in order (named, so a column added to the schema later is simply left NULL)
COLUMNS = {
    "entries": ("seq", "kind", "agency_id", "actor", "record_hash", "entry_hash", "running_hash", "block_number",
                "block_hash", "block_time", "tx_hash", "log_index", "occurred_at", "voided_by"),
    "commitments": ("agency_id", "commitment_id", "version", "service_code", "name_zh", "name_en", "deadline",
                    "deadline_unit", "target_bps", "valid_from", "terms_hash", "occurred_at", "seq", "retired_seq"),
    "case_events": ("seq", "agency_id", "case_id", "action", "occurred_at", "block_time", "details_hash",
                    "commitment_id", "district", "channel"),
    "cases": ("agency_id", "case_id", "commitment_id", "commitment_version", "district", "channel", "opened_seq",
              "opened_at", "status", "closed_at", "hold_seconds", "on_hold_since", "due_at", "fulfil_seconds",
              "on_time", "escalated", "invalid_transitions", "last_seq"),
}  # fmt: skip


def _copy(conn: psycopg.Connection, table: str, lines: list[str]) -> None:
    columns = ", ".join(COLUMNS[table])
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buf = io.StringIO()
        for line in lines:
            buf.write(line)
            buf.write("\n")
        copy.write(buf.getvalue())


def timed(repeat: int, work: Callable[[], object]) -> float:
    """Median wall time of ``work`` in milliseconds, after one untimed warm-up run (caches as in a running service)."""
    work()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        samples.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(samples), 1)


def proposed_indexes() -> list[Index]:
    """Indexes the metrics queries want that ``ledger/store/schema.py`` does not have (yet): the bench times both.

    ``ix_entries_voided``: the few voided entries, so leaving them out is a small hash anti-join rather than a scan of
    every entry (or a probe per case event when the planner underestimates a join).
    """
    have = {index.name for table in metadata.sorted_tables for index in table.indexes}
    if "ix_entries_voided" in have:  # schema.py has it now: nothing left to propose
        return []
    voided = entries.c.voided_by.is_not(None)
    return [Index("ix_entries_voided", entries.c.seq, postgresql_where=voided, sqlite_where=voided)]


def scenarios(engine: Engine) -> list[tuple[str, str, Callable[[], object], Callable[[object], str]]]:
    """(key, label, work, what it selected) for each typical request."""
    window = dict(start=NOW - 90 * DAY, end=NOW)
    filters: list[tuple[str, str, MetricsFilter]] = [
        ("city", "whole city, 90 days", MetricsFilter(**window)),
        ("agency", "one agency (SH-ROADS), 90 days", MetricsFilter(agency_id="SH-ROADS", **window)),
        ("commitment", "one commitment (SH-ROADS STREETLIGHT-48H), 90 days",
         MetricsFilter(agency_id="SH-ROADS", commitment_id="STREETLIGHT-48H", **window)),
        ("district", "one district (PUDONG), 90 days", MetricsFilter(district="PUDONG", **window)),
        ("channel", "one channel (hotline), 90 days", MetricsFilter(channel=2, **window)),
        ("city_year", "whole city, 365 days", MetricsFilter(start=START, end=NOW)),
    ]  # fmt: skip
    out: list[tuple[str, str, Callable[[], object], Callable[[object], str]]] = [
        (f"metrics_{key}", label, lambda flt=flt: compute_metrics(engine, flt),
         lambda m: f"{m.cases_opened:,} opened, {m.events_recorded:,} events")  # type: ignore[attr-defined]
        for key, label, flt in filters
    ]  # fmt: skip
    flt = MetricsFilter(**window)
    out.append(("agency_scorecards", "agency scorecards, 90 days", lambda: agency_scorecards(engine, flt),
                lambda cards: f"{len(cards):,} agencies"))  # type: ignore[arg-type]  # fmt: skip
    out.append(("commitment_scorecards", "commitment scorecards, 90 days", lambda: commitment_scorecards(engine, flt),
                lambda cards: f"{len(cards):,} commitments"))  # type: ignore[arg-type]  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    admin_url = make_url(args.url)
    db_name = f"civic_bench_metrics_{os.getpid()}"
    bench_url = admin_url.set(database=db_name)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    engine: Engine | None = None
    try:
        engine = create_engine(bench_url)
        with engine.begin() as conn:
            for table in metadata.sorted_tables:
                conn.execute(CreateTable(table))  # without its indexes: they are built after the load
        conninfo = bench_url.set(drivername="postgresql").render_as_string(hide_password=False)
        loaded = load(conninfo, args.cases)
        began = time.perf_counter()
        with engine.begin() as conn:
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        index_seconds = time.perf_counter() - began

        # Each request is timed with schema.py's indexes and then with the proposed ones, back to back, so that the
        # machine's load (other work on it) weighs on both alike.
        extra = proposed_indexes()
        figures: dict[str, object] = {"cases": loaded.cases, "case_events": loaded.events}
        rows: list[tuple[str, float, float | None, str]] = []
        load_before = os.getloadavg()[0]
        for key, label, work, selected in scenarios(engine):
            ms = timed(args.repeat, work)
            ms_proposed = None
            if extra:
                with engine.begin() as conn:
                    for index in extra:
                        index.create(conn)
                ms_proposed = timed(args.repeat, work)
                with engine.begin() as conn:
                    for index in extra:
                        index.drop(conn)
                figures[f"{key}_ms_proposed_index"] = ms_proposed
            figures[f"{key}_ms"] = ms
            rows.append((label, ms, ms_proposed, selected(work())))
        figures = {k: figures[k] for k in sorted(figures, key=lambda k: k.endswith("_proposed_index"))}  # stable

        print(
            f"metrics over {loaded.cases:,} cases and {loaded.events:,} case events in PostgreSQL "
            f"(load {loaded.seconds:.0f} s, indexes + VACUUM ANALYZE {index_seconds:.0f} s); median ms of "
            f"{args.repeat} runs after a warm-up; {platform.machine()}, {os.cpu_count()} cores, load average "
            f"{load_before:.1f} to {os.getloadavg()[0]:.1f}"
        )
        proposed = ", ".join(str(index.name) for index in extra) or "none (schema.py has them)"
        print(f"{'request':52} {'ms':>9} {'+ proposed':>11}  selected   (proposed index: {proposed})")
        for label, ms, ms_proposed, note in rows:
            shown = "" if ms_proposed is None else f"{ms_proposed:11.1f}"
            print(f"{label:52} {ms:9.1f} {shown:>11}  {note}")
        print(json.dumps(figures))
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
