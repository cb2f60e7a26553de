"""Metrics: hand-computed figures for every definition and edge (citizens' ratings and disputes included), and
SQLite = PostgreSQL = pure Python on random rows.

Every hand-computed case runs through all three implementations (``compute_metrics`` on SQLite and on PostgreSQL,
``compute_metrics_from_rows``) and checks they agree before checking the figures. PostgreSQL is the local server
(``CIVIC_TEST_PG`` to point elsewhere): a database of this module's own is created and dropped; rows are
inserted in a transaction that is rolled back, so tests never see each other's rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, create_engine, insert, text
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import make_url

from ledger import cells
from ledger.cases import DISPUTE_RESPONSE_WINDOW
from ledger.filings import AGENCY_ISSUED, CLAIMED, FILED
from ledger.index.cells import rebuild as rebuild_cells
from ledger.index.project import fill_key_origins
from ledger.metrics import (
    CaseRow,
    CommitmentRow,
    DisputeRow,
    EventRow,
    FilingRow,
    InvalidFilter,
    Metrics,
    MetricsFilter,
    RatingRow,
    agency_scorecards,
    commitment_scorecards,
    compute_metrics,
    compute_metrics_from_rows,
    nearest_rank,
    percentile,
    ranks,
    rate,
    scorecards_from_rows,
    table_values,
)
from ledger.records import CaseAction, EntryKind, FilingDecision, filed_case_id
from ledger.store.schema import (
    case_events,
    cases,
    commitments,
    disputes,
    entries,
    filings,
    metadata,
    ratings,
    receipts,
)

#: the server's URL, as the other index tests take it (their conftest reads the same variable)
POSTGRES_URL = os.environ.get("CIVIC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test").replace(
    "postgresql://", "postgresql+psycopg://", 1
)

H, D = 3_600, 86_400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
END = T0 + 10 * D


# --- databases ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[Engine]:
    """A fresh PostgreSQL database with the store's tables, dropped afterwards."""
    admin_url = make_url(POSTGRES_URL)
    name = f"civic_test_metrics_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(admin_url.set(database=name))
    try:
        metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def sqlite() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@dataclass
class World:
    cases: list[CaseRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    commitments: list[CommitmentRow] = field(default_factory=list)
    ratings: list[RatingRow] = field(default_factory=list)
    disputes: list[DisputeRow] = field(default_factory=list)
    filings: list[FilingRow] = field(default_factory=list)
    #: the keys bound to cases (receipts rows): (seq, agency, case id, key, the binding entry's kind)
    bindings: list[tuple[int, str, bytes, str, int]] = field(default_factory=list)

    def metrics(self, flt: MetricsFilter) -> Metrics:
        """The pure-Python figures."""
        return compute_metrics_from_rows(self.cases, self.events, self.commitments, flt, rating_rows=self.ratings,
                                         dispute_rows=self.disputes, filing_rows=self.filings)

    def scorecards(self, flt: MetricsFilter, by: Literal["agency", "commitment"]) -> dict[Any, Metrics]:
        return scorecards_from_rows(self.cases, self.events, self.commitments, flt, by=by, rating_rows=self.ratings,
                                    dispute_rows=self.disputes, filing_rows=self.filings)


def _entry(
    seq: int, kind: int, agency_id: str, occurred_at: int | None, block_time: int, voided_by: int | None
) -> dict:
    filler = hashlib.sha256(b"%d" % seq).digest()
    return dict(
        seq=seq, kind=kind, agency_id=agency_id, actor="0x" + "11" * 20, record_hash=filler, entry_hash=filler,
        running_hash=filler[:24], block_number=seq, block_hash=filler, block_time=block_time, tx_hash=filler,
        log_index=0, occurred_at=occurred_at, voided_by=voided_by,
    )  # fmt: skip


def insert_world(conn: Connection, world: World) -> None:
    """Rows straight into the tables, each case event and commitment with its entry (the foreign keys want it)."""
    entry_rows = [
        _entry(e.seq, EntryKind.CASE_EVENT, e.agency_id, e.occurred_at, e.block_time, e.voided_by) for e in world.events
    ] + [
        _entry(m.seq, EntryKind.COMMITMENT_PUBLISHED, m.agency_id, m.occurred_at, m.occurred_at, m.voided_by)
        for m in world.commitments
    ] + [
        _entry(r.seq, EntryKind.CASE_RATED, r.agency_id, None, r.block_time, None) for r in world.ratings
    ] + [
        _entry(d.seq, EntryKind.CASE_DISPUTED, d.agency_id, None, d.block_time, None) for d in world.disputes
    ] + [
        _entry(f.seq, EntryKind.FILING_RECORDED, f.agency_id, None, f.block_time, None) for f in world.filings
    ] + [
        _entry(seq, kind, agency_id, None, B, None) for seq, agency_id, _, _, kind in world.bindings
    ]
    for table, rows in (
        (entries, entry_rows),
        (case_events, [table_values(e) for e in world.events]),
        (commitments, [table_values(m) for m in world.commitments]),
        (cases, [table_values(c) for c in world.cases]),
        (ratings, [table_values(r) for r in world.ratings]),
        (disputes, [table_values(d) for d in world.disputes]),
        (filings, [table_values(f) for f in world.filings]),
        (receipts, [dict(seq=seq, agency_id=agency_id, case_id=cid, receipt=key, occurred_at=B, block_time=B)
                    for seq, agency_id, cid, key, _ in world.bindings]),
    ):
        if rows:
            conn.execute(insert(table), rows)
    fill_key_origins(conn, 0)  # as the index does once a range's bindings are written
    rebuild_cells(conn)  # as a migration does: the index keeps them as it writes


def in_database(engine: Engine, world: World, work: Callable[[Connection], Any]) -> Any:
    """``work`` on a connection that sees ``world``, then every row rolled back."""
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            insert_world(conn, world)
            return work(conn)
        finally:
            tx.rollback()


@pytest.fixture
def all_three(sqlite: Engine, postgres: Engine) -> Callable[[World, MetricsFilter], Metrics]:
    """Metrics of a world by the three implementations, checked equal (to_dict byte for byte included)."""

    def compute(world: World, flt: MetricsFilter) -> Metrics:
        by_rows = world.metrics(flt)
        by_sqlite = in_database(sqlite, world, lambda conn: compute_metrics(conn, flt))
        by_postgres = in_database(postgres, world, lambda conn: compute_metrics(conn, flt))
        assert by_sqlite == by_rows
        assert by_postgres == by_rows
        assert json.dumps(by_sqlite.to_dict()) == json.dumps(by_postgres.to_dict()) == json.dumps(by_rows.to_dict())
        return by_rows

    return compute


# --- a hand-made world ----------------------------------------------------------------------------------------------

_seq = iter(range(1, 10**9))


def case_id(name: str) -> bytes:
    return hashlib.sha256(b"case:" + name.encode()).digest()


def case(
    name: str,
    opened_at: int,
    status: str = "open",
    *,
    closed_at: int | None = None,
    due_at: int | None = None,
    fulfil_seconds: int | None = None,
    on_time: bool | None = None,
    hold_seconds: int = 0,
    on_hold_since: int | None = None,
    agency_id: str = "ROADS",
    commitment_id: str = "LIGHT",
    district: str = "PUDONG",
    channel: int = 2,
    **changes: Any,
) -> CaseRow:
    row = CaseRow(
        agency_id=agency_id, case_id=case_id(name), commitment_id=commitment_id, commitment_version=1,
        district=district, channel=channel, opened_seq=next(_seq), opened_at=opened_at, status=status,
        closed_at=closed_at, hold_seconds=hold_seconds, on_hold_since=on_hold_since, due_at=due_at,
        fulfil_seconds=fulfil_seconds, on_time=on_time, escalated=False, invalid_transitions=0, last_seq=0,
    )  # fmt: skip
    return replace(row, **changes)


def event_row(
    name: str, occurred_at: int, latency: int, *, agency_id: str = "ROADS", voided_by: int | None = None
) -> EventRow:
    return EventRow(
        seq=next(_seq), agency_id=agency_id, case_id=case_id(name), action=CaseAction.ACCEPTED,
        occurred_at=occurred_at, block_time=occurred_at + latency, details_hash=b"\0" * 32, voided_by=voided_by,
    )  # fmt: skip


def commitment(agency_id: str, commitment_id: str, version: int, target_bps: int, **changes: Any) -> CommitmentRow:
    row = CommitmentRow(
        agency_id=agency_id, commitment_id=commitment_id, version=version, service_code="SVC", name_zh="服务",
        name_en="Service", deadline=48, deadline_unit=1, target_bps=target_bps, valid_from=T0 - 30 * D,
        terms_hash=b"\1" * 32, occurred_at=T0 - 30 * D + version, seq=next(_seq),
    )  # fmt: skip
    return replace(row, **changes)


def hand_world() -> World:
    """Cases of ROADS / LIGHT in PUDONG by hotline (channel 2) unless said otherwise; range [T0, END), as_of END."""
    return World(
        cases=[
            case("c1", T0 + 1 * H, "fulfilled", closed_at=T0 + 5 * H, due_at=T0 + 49 * H, fulfil_seconds=4 * H,
                 on_time=True),
            case("c2", T0 + 2 * H, "fulfilled", closed_at=T0 + 60 * H, due_at=T0 + 50 * H, fulfil_seconds=58 * H,
                 on_time=False),
            # held 10 h: due and time to fulfil exclude it
            case("c3", T0 + 3 * H, "fulfilled", closed_at=T0 + 30 * H, due_at=T0 + 61 * H, fulfil_seconds=17 * H,
                 on_time=True, hold_seconds=10 * H),
            case("c4", T0 + 4 * H, "rejected", closed_at=T0 + 6 * H, due_at=T0 + 52 * H),
            case("c5", T0 + 5 * H, "withdrawn", closed_at=T0 + 7 * H, due_at=T0 + 53 * H),
            # opened before the range, fulfilled in it: closed, not opened
            case("c6", T0 - 5 * D, "fulfilled", closed_at=T0 + 1 * D, due_at=T0 - 3 * D, fulfil_seconds=6 * D,
                 on_time=False),
            case("c7", T0 + 9 * D, due_at=T0 + 11 * D),  # open, not yet due
            case("c8", T0 + 1 * D, due_at=T0 + 3 * D),  # open, overdue
            # on hold since before it was due: not overdue however long the hold
            case("c9", T0 + 2 * D, "on_hold", due_at=T0 + 4 * D, on_hold_since=T0 + 2 * D + 10 * H),
            # put on hold when already overdue: still overdue
            case("c10", T0 + 1 * D, "on_hold", due_at=T0 + 3 * D, on_hold_since=T0 + 5 * D),
            # fulfilled after the range: open (and overdue) at as_of
            case("c11", T0 + 8 * D, "fulfilled", closed_at=T0 + 12 * D, due_at=T0 + 9 * D, fulfil_seconds=4 * D,
                 on_time=False),
            # a working-day deadline without a calendar: no due time, so not in the on-time rate
            case("c12", T0 + 6 * D, "fulfilled", closed_at=T0 + 7 * D, fulfil_seconds=1 * D),
            # closed exactly at start: in the range
            case("c13", T0 - 1 * D, "fulfilled", closed_at=T0, due_at=T0 + 1 * D, fulfil_seconds=1 * D, on_time=True),
            # opened exactly at end: neither opened in the range nor open at as_of
            case("c14", END, due_at=END + 2 * D),
            # rejected exactly at end: not closed in the range, still open (and overdue) at as_of
            case("c15", T0 + 1 * D, "rejected", closed_at=END, due_at=T0 + 3 * D),
            case("c16", T0 + 1 * H, "fulfilled", closed_at=T0 + 3 * H, due_at=T0 + 49 * H, fulfil_seconds=2 * H,
                 on_time=True, district="XUHUI", channel=3),
            case("c17", T0 + 1 * D, "fulfilled", closed_at=T0 + 2 * D, due_at=T0 + 3 * D, fulfil_seconds=1 * D,
                 on_time=True, commitment_id="HOLE"),
            case("c18", T0 + 1 * D, "rejected", closed_at=T0 + 1 * D + H, due_at=T0 + 2 * D, agency_id="WATER",
                 commitment_id="LEAK"),
        ],  # fmt: skip
        events=[
            event_row("c1", T0 + 1 * H, 30),
            event_row("c1", T0 + 5 * H, 90),
            event_row("c2", T0 + 2 * H, 86_400),  # exactly 24 h: not late
            event_row("c2", T0 + 60 * H, 86_401),  # late
            event_row("c3", T0 + 3 * H, -60),  # claimed a minute in the future: kept as it is
            event_row("c3", T0 + 4 * H, 200_000, voided_by=999),  # voided: not counted
            event_row("c6", T0 + 1 * D, 100),
            event_row("c6", T0 - 5 * D, 10),  # recorded before the range
            event_row("c7", END, 0),  # recorded exactly at end: after the range
            event_row("ghost", T0 + 2 * D, 2 * D),  # no case row: agency and city figures only
            event_row("c13", T0 - 100, 100),  # recorded exactly at start: in the range
            event_row("c16", T0 + 1 * H, 500),
            event_row("c18", T0 + 1 * D, 40, agency_id="WATER"),
        ],
        commitments=[
            commitment("ROADS", "LIGHT", 1, 9000),
            commitment("ROADS", "LIGHT", 2, 9500),
            commitment("ROADS", "LIGHT", 3, 9900, voided_by=999),  # voided: version 2 is the latest
            commitment("ROADS", "HOLE", 1, 8000),
            commitment("WATER", "LEAK", 1, 9800),
        ],
    )


RANGE = dict(start=T0, end=END)
LIGHT_PUDONG = MetricsFilter(agency_id="ROADS", commitment_id="LIGHT", district="PUDONG", **RANGE)
NO_FEEDBACK = {
    "ratings": 0, "rating_average": None, "rating_distribution": [0, 0, 0, 0, 0], "rating_response_rate": None,
    "disputes": 0, "disputes_unanswered": 0, "reopened": 0,
}  # fmt: skip
NO_ORIGINS = {
    "ratings_by_key_origin": [0, 0, 0], "rating_average_by_key_origin": [None, None, None],
    "disputes_by_key_origin": [0, 0, 0],
}  # fmt: skip
NO_FILINGS = {
    "filings": 0, "filings_accepted": 0, "filings_rejected": 0, "filings_answered_late": 0, "filings_overdue": 0,
}  # fmt: skip


def test_every_figure_of_one_commitment_in_one_district(all_three):
    m = all_three(hand_world(), LIGHT_PUDONG)
    assert m.to_dict() == {
        "cases_opened": 12,  # c1-c5, c7-c12, c15 (c6, c13 opened before; c14 at end)
        "cases_closed": 8,
        "fulfilled": 6,  # c1, c2, c3, c6, c12, c13 (c11 after the range)
        "rejected": 1,  # c4 (c15 at end)
        "withdrawn": 1,  # c5
        "on_time": 3,  # c1, c3, c13
        "on_time_eligible": 5,  # c12 has no due time
        "on_time_rate": "0.6000",
        "target_rate": "0.9500",  # version 2: version 3 is voided
        # 4 h, 17 h, 1 d, 1 d, 58 h, 6 d: ranks ceil(3) = 3 and ceil(5.4) = 6
        "median_fulfil_seconds": 1 * D,
        "p90_fulfil_seconds": 6 * D,
        "open_cases": 6,  # c7, c8, c9, c10, c11, c15
        "overdue_cases": 4,  # c8, c10, c11, c15
        "events_recorded": 7,  # -60, 30, 90, 100, 100, 86400, 86401
        "latency_median_seconds": 100,  # rank ceil(3.5) = 4
        "latency_max_seconds": 86_401,
        "late_recordings": 1,
        "rejection_rate": "0.1429",  # 1 / (6 + 1); withdrawn left out
        **NO_FEEDBACK, **NO_ORIGINS, **NO_FILINGS,
        "late_rejections": 0, "late_withdrawals": 0,  # c4 and c5 were closed before their due times
        "deadline_cases": 9,  # 5 eligible + 0 late rejections or withdrawals + 4 overdue
        "deadline_rate": "0.3333",
        "responses_due": 0, "responded_on_time": 0, "response_rate": None,  # no response times in these rows
        # no receipts: nobody could contest an answer, so no resolution rate
        "answers_with_receipt": 0, "resolved": 0, "resolution_rate": None,
        "satisfaction_rate": None,
        "rating_coverage": "0.0000",  # 8 closed, none rated
        "bad_ratings": 0, "rectifications_due": 0, "rectified_on_time": 0, "rectification_rate": None,
    }  # fmt: skip


def test_district_and_channel_filters(all_three):
    world = hand_world()
    whole = all_three(world, MetricsFilter(agency_id="ROADS", commitment_id="LIGHT", **RANGE))
    # c16 (XUHUI, web) joins: 2 h fulfilled on time, and its event of 500 s
    assert (whole.cases_opened, whole.fulfilled, whole.on_time, whole.on_time_eligible) == (13, 7, 4, 6)
    assert (whole.on_time_rate, whole.rejection_rate) == (Decimal("0.6667"), Decimal("0.1250"))
    assert (whole.median_fulfil_seconds, whole.p90_fulfil_seconds) == (1 * D, 6 * D)  # ranks 4 and ceil(6.3) = 7
    assert (whole.events_recorded, whole.latency_median_seconds) == (8, 100)
    for flt in (
        MetricsFilter(district="XUHUI", **RANGE),
        MetricsFilter(channel=3, **RANGE),
        MetricsFilter(agency_id="ROADS", district="XUHUI", channel=3, **RANGE),
    ):
        m = all_three(world, flt)
        assert (m.cases_opened, m.fulfilled, m.on_time_rate, m.median_fulfil_seconds) == (1, 1, Decimal(1), 2 * H)
        assert (m.events_recorded, m.latency_median_seconds, m.latency_max_seconds) == (1, 500, 500)
        assert m.target_rate is None  # no single commitment named
    nothing = all_three(world, MetricsFilter(district="XUHUI", channel=2, **RANGE))
    assert (nothing.cases_opened, nothing.events_recorded, nothing.open_cases) == (0, 0, 0)


def test_agency_and_city_figures_count_events_of_cases_without_a_row(all_three):
    world = hand_world()
    roads = all_three(world, MetricsFilter(agency_id="ROADS", **RANGE))
    assert (roads.cases_opened, roads.fulfilled) == (14, 8)  # + c16, c17
    # the ghost's late event counts for its agency: -60, 30, 90, 100, 100, 500, 86400, 86401, 172800
    assert (roads.events_recorded, roads.latency_median_seconds) == (9, 100)
    assert (roads.latency_max_seconds, roads.late_recordings) == (2 * D, 2)
    city = all_three(world, MetricsFilter(**RANGE))
    assert (city.cases_opened, city.rejected, city.events_recorded, city.latency_median_seconds) == (15, 2, 10, 100)
    assert city.rejection_rate == rate(2, 8 + 2) == Decimal("0.2000")


def test_a_commitment_filter_reports_its_own_target(all_three):
    m = all_three(hand_world(), MetricsFilter(agency_id="ROADS", commitment_id="HOLE", **RANGE))
    assert (m.cases_opened, m.on_time_rate, m.events_recorded) == (1, Decimal("1.0000"), 0)
    assert m.target_rate == Decimal("0.8")
    assert m.to_dict()["target_rate"] == "0.8000"
    unknown = all_three(hand_world(), MetricsFilter(agency_id="ROADS", commitment_id="NONE", **RANGE))
    assert unknown.target_rate is None and unknown.cases_opened == 0


def test_no_fulfilled_case_leaves_rates_and_times_empty_not_zero(all_three):
    m = all_three(hand_world(), MetricsFilter(agency_id="WATER", **RANGE))
    assert (m.cases_opened, m.rejected, m.fulfilled, m.on_time_eligible) == (1, 1, 0, 0)
    assert (m.on_time_rate, m.median_fulfil_seconds, m.p90_fulfil_seconds) == (None, None, None)
    assert m.rejection_rate == Decimal("1.0000")
    assert (m.events_recorded, m.latency_median_seconds, m.latency_max_seconds) == (1, 40, 40)


def test_an_empty_range_still_counts_what_is_open_at_as_of(all_three):
    flt = replace(LIGHT_PUDONG, start=T0 + 20 * D, end=T0 + 21 * D, as_of=None)
    m = all_three(hand_world(), flt)
    assert m.to_dict() == {
        "cases_opened": 0, "cases_closed": 0, "fulfilled": 0, "rejected": 0, "withdrawn": 0, "on_time": 0,
        "on_time_eligible": 0, "on_time_rate": None, "target_rate": "0.9500", "median_fulfil_seconds": None,
        "p90_fulfil_seconds": None,
        "open_cases": 5,  # c7, c8, c9, c10, c14; c11 and c15 have closed by now
        "overdue_cases": 4,  # c7, c8, c10, c14; c9's hold began before it was due
        "events_recorded": 0, "latency_median_seconds": None, "latency_max_seconds": None, "late_recordings": 0,
        "rejection_rate": None, **NO_FEEDBACK, **NO_ORIGINS, **NO_FILINGS,
        # nothing met its deadline in the range, and four cases are past theirs: the rate a city publishes is 0
        "late_rejections": 0, "late_withdrawals": 0, "deadline_cases": 4, "deadline_rate": "0.0000",
        "responses_due": 0, "responded_on_time": 0, "response_rate": None, "answers_with_receipt": 0, "resolved": 0,
        "resolution_rate": None,
        "satisfaction_rate": None, "rating_coverage": None,
        "bad_ratings": 0, "rectifications_due": 0, "rectified_on_time": 0, "rectification_rate": None,
    }  # fmt: skip
    assert all_three(World(), flt) == Metrics(
        cases_opened=0, cases_closed=0, fulfilled=0, rejected=0, withdrawn=0, on_time=0, on_time_eligible=0,
        on_time_rate=None, target_rate=None, median_fulfil_seconds=None, p90_fulfil_seconds=None, open_cases=0,
        overdue_cases=0, events_recorded=0, latency_median_seconds=None, latency_max_seconds=None, late_recordings=0,
        rejection_rate=None,
    )  # fmt: skip


RECEIPT = "0x" + "ab" * 20


def rating_row(name: str, score: int, block_time: int, *, agency_id: str = "ROADS") -> RatingRow:
    return RatingRow(seq=next(_seq), agency_id=agency_id, case_id=case_id(name), score=score,
                     comment_hash=b"\0" * 32, receipt=RECEIPT, block_time=block_time)


def dispute_row(name: str, block_time: int, answered_at: int | None = None, *, agency_id: str = "ROADS") -> DisputeRow:
    return DisputeRow(
        seq=next(_seq), agency_id=agency_id, case_id=case_id(name), closure=1, reason_hash=b"\0" * 32,
        receipt=RECEIPT, block_time=block_time, answer_seq=None if answered_at is None else next(_seq),
        answer_action=None if answered_at is None else int(CaseAction.DISPUTE_REJECTED), answered_at=answered_at,
    )  # fmt: skip


def feedback_world() -> World:
    """The hand-made world with receipts, ratings, disputes and reopenings."""
    world = hand_world()
    rated = {"c1": (5, T0 + 6 * H), "c2": (2, T0 + 3 * D), "c4": (1, END), "c13": (4, T0), "c16": (3, T0 + 4 * H),
             "c18": (1, T0 + 1 * D + 2 * H)}  # fmt: skip
    with_receipt = {"c1", "c2", "c3", "c4", "c11", "c13", "c16", "c18"}
    names = {c.case_id: f"c{i + 1}" for i, c in enumerate(world.cases)}
    world.cases = [
        replace(c, receipt=RECEIPT if names[c.case_id] in with_receipt else None,
                rating=rated.get(names[c.case_id], (None, None))[0],
                rated_at=rated.get(names[c.case_id], (None, None))[1])
        for c in world.cases
    ]  # fmt: skip
    world.ratings = [
        rating_row(name, score, at, agency_id="WATER" if name == "c18" else "ROADS")
        for name, (score, at) in rated.items()
    ] + [rating_row("ghost", 5, T0 + 2 * D)]  # a rating of a case without a row: agency and city figures only
    world.disputes = [
        dispute_row("c2", T0 + 1 * D, T0 + 2 * D),  # in range, answered
        dispute_row("c1", T0 + 2 * D),  # in range; its answer is not due before END
        dispute_row("c3", T0 - 1 * D),  # due T0 + 9 d, never answered: unanswered at END
        dispute_row("c13", T0 - 5 * D, END),  # due T0 + 5 d, answered only at END: unanswered at END
        dispute_row("c4", T0 - 1 * D, T0 + 10 * D - 1),  # answered late, but before END
        dispute_row("c16", T0 + 1 * H),  # XUHUI
        dispute_row("ghost", T0 - 20 * D),
        dispute_row("c18", T0 + 1 * D, agency_id="WATER"),
    ]
    reopened = [
        replace(event_row("c2", T0 + 2 * D, 0), action=int(CaseAction.REOPENED)),
        replace(event_row("c11", END, 0), action=int(CaseAction.REOPENED)),  # recorded at END: after the range
        replace(event_row("c1", T0 + 1 * D, 0, voided_by=4321), action=int(CaseAction.REOPENED)),  # voided
        replace(event_row("ghost", T0 + 3 * D, 0), action=int(CaseAction.REOPENED)),
    ]
    world.events = world.events + reopened
    return world


def feedback_of(m: Metrics) -> dict[str, Any]:
    return {k: v for k, v in m.to_dict().items() if k in NO_FEEDBACK}


def test_ratings_disputes_and_reopenings(all_three):
    world = feedback_world()
    assert feedback_of(all_three(world, LIGHT_PUDONG)) == {
        "ratings": 3,  # c1, c2, c13 (c4's at END is after the range; c16 is in XUHUI)
        "rating_distribution": [0, 1, 0, 1, 1],
        "rating_average": "3.6667",  # (5 + 2 + 4) / 3
        # closed in range with a receipt: c1, c2, c3, c4, c13; rated before as_of: c1, c2, c13 (c4 at as_of)
        "rating_response_rate": "0.6000",
        "disputes": 2,  # c2, c1
        "disputes_unanswered": 2,  # c3, c13
        "reopened": 1,  # c2 (c11's at END, c1's voided)
    }
    roads = all_three(world, MetricsFilter(agency_id="ROADS", **RANGE))
    # + c16 (3) and the ghost (5): 2 + 3 + 4 + 5 + 5 = 19 over 5
    assert (roads.ratings, roads.rating_distribution, roads.rating_average) == (5, (0, 1, 1, 1, 2), Decimal("3.8"))
    assert roads.rating_response_rate == rate(4, 6)  # + c16, rated
    assert (roads.disputes, roads.disputes_unanswered, roads.reopened) == (3, 3, 2)  # + c16; + the ghost; + ghost
    city = all_three(world, MetricsFilter(**RANGE))
    assert (city.ratings, city.rating_response_rate, city.disputes, city.disputes_unanswered) == (
        6, rate(5, 7), 4, 3)
    xuhui = all_three(world, MetricsFilter(district="XUHUI", **RANGE))
    assert feedback_of(xuhui) == {"ratings": 1, "rating_distribution": [0, 0, 1, 0, 0], "rating_average": "3.0000",
                                  "rating_response_rate": "1.0000", "disputes": 1, "disputes_unanswered": 0,
                                  "reopened": 0}


def test_an_unanswered_dispute_counts_once_its_answer_is_overdue(all_three):
    """The snapshot: a dispute counts from just after its deadline until its answer (exclusive of as_of, like
    every snapshot figure); the range does not apply."""
    world = feedback_world()

    def unanswered(as_of: int) -> int:
        return all_three(world, replace(LIGHT_PUDONG, as_of=as_of)).disputes_unanswered

    assert unanswered(T0 - 1 * D + DISPUTE_RESPONSE_WINDOW) == 1  # c13 (due T0 + 5 d); c3 and c4 due right now
    assert unanswered(T0 - 1 * D + DISPUTE_RESPONSE_WINDOW + 1) == 3  # + c3, + c4 (answered later)
    assert unanswered(T0 + 10 * D - 1) == 3  # c4's answer comes at this very instant: not yet
    assert unanswered(T0 + 10 * D) == 2  # c4 answered
    assert unanswered(T0 + 5 * D) == 0  # nothing due yet (c13 due at T0 + 5 d, not before)


def test_feedback_scorecards_agree(sqlite, postgres):
    world = feedback_world()
    flt = MetricsFilter(**RANGE)
    for by, scorecards in (("agency", agency_scorecards), ("commitment", commitment_scorecards)):
        expected = world.scorecards(flt, by)  # type: ignore[arg-type]
        for engine in (sqlite, postgres):
            got = in_database(engine, world, lambda conn, f=scorecards: f(conn, flt))
            assert list(got.items()) == list(expected.items())
    assert expected[("ROADS", "LIGHT")].ratings == 4  # c1, c2, c13, c16: the ghost has no commitment


def test_on_hold_overdue_is_judged_when_the_hold_began(all_three):
    """Due at T0 + 3 d. On hold since T0 + 2 d: not overdue at any as_of. Since T0 + 4 d: overdue from due time on."""
    held_early = case("early", T0, "on_hold", due_at=T0 + 3 * D, on_hold_since=T0 + 2 * D)
    held_late = case("late", T0, "on_hold", due_at=T0 + 3 * D, on_hold_since=T0 + 4 * D)
    world = World(cases=[held_early, held_late])
    overdue = {
        as_of: all_three(world, MetricsFilter(start=T0, end=T0 + 30 * D, as_of=as_of)).overdue_cases
        for as_of in (T0 + 3 * D, T0 + 3 * D + 1, T0 + 4 * D, T0 + 30 * D)
    }
    # at exactly the due time nothing is overdue yet; after it only the late hold is
    assert overdue == {T0 + 3 * D: 0, T0 + 3 * D + 1: 1, T0 + 4 * D: 1, T0 + 30 * D: 1}
    # before a hold begins, the case counts as any open case (the hold is not running yet)
    early_view = MetricsFilter(start=T0, end=T0 + 30 * D, as_of=T0 + 3 * D + 5)
    assert all_three(World(cases=[held_late]), early_view).overdue_cases == 1
    assert all_three(World(cases=[held_early]), early_view).overdue_cases == 0


def test_voided_entries_are_not_counted(all_three):
    world = World(
        cases=[case("v", T0, "fulfilled", closed_at=T0 + H, due_at=T0 + D, fulfil_seconds=H, on_time=True)],
        events=[event_row("v", T0, 5), event_row("v", T0 + H, 3 * D, voided_by=1234)],
        commitments=[commitment("ROADS", "LIGHT", 1, 9000, voided_by=55)],
    )
    m = all_three(world, MetricsFilter(agency_id="ROADS", commitment_id="LIGHT", **RANGE))
    assert (m.events_recorded, m.latency_max_seconds, m.late_recordings) == (1, 5, 0)
    assert m.target_rate is None  # its only version is voided


def test_scorecards_are_the_filter_narrowed_to_each_group(sqlite, postgres):
    world = hand_world()
    flt = MetricsFilter(**RANGE)
    expected_agencies = scorecards_from_rows(world.cases, world.events, world.commitments, flt, by="agency")
    expected_commitments = scorecards_from_rows(world.cases, world.events, world.commitments, flt, by="commitment")
    assert list(expected_agencies) == ["ROADS", "WATER"]
    assert list(expected_commitments) == [("ROADS", "HOLE"), ("ROADS", "LIGHT"), ("WATER", "LEAK")]
    assert expected_agencies["ROADS"] == compute_metrics_from_rows(
        world.cases, world.events, world.commitments, replace(flt, agency_id="ROADS")
    )
    assert expected_commitments[("ROADS", "LIGHT")].target_rate == Decimal("0.9500")
    for engine in (sqlite, postgres):
        assert in_database(engine, world, lambda conn: agency_scorecards(conn, flt)) == expected_agencies
        assert in_database(engine, world, lambda conn: commitment_scorecards(conn, flt)) == expected_commitments
    # a group idle in the range still has a scorecard (its open cases, if nothing else)
    late = MetricsFilter(start=T0 + 20 * D, end=T0 + 21 * D)
    idle = in_database(postgres, world, lambda conn: agency_scorecards(conn, late))
    assert list(idle) == ["ROADS", "WATER"] and idle["WATER"].open_cases == 0 and idle["ROADS"].open_cases == 5


def test_scorecards_by_commitment_read_their_percentiles_in_several_statements_alike(
    sqlite, postgres, monkeypatch: pytest.MonkeyPatch
):
    """A city with more commitments than one statement reads (``ledger.cells._GROUPS_A_STATEMENT``; SQLite takes 500
    terms of a UNION ALL at most) gets the same scorecards: here one statement per commitment."""
    world = hand_world()
    flt = MetricsFilter(**RANGE)
    expected = scorecards_from_rows(world.cases, world.events, world.commitments, flt, by="commitment")
    assert sum(m.median_fulfil_seconds is not None for m in expected.values()) >= 2  # their exact values are read
    statements: list[str] = []
    monkeypatch.setattr(cells, "_GROUPS_A_STATEMENT", 1)

    def seen(*args: Any) -> None:
        statements.append(args[2])

    for engine in (sqlite, postgres):
        sqlalchemy_event.listen(engine, "before_cursor_execute", seen)
        try:
            assert in_database(engine, world, lambda conn: commitment_scorecards(conn, flt)) == expected
        finally:
            sqlalchemy_event.remove(engine, "before_cursor_execute", seen)
    assert sum("figure_points.value" in statement for statement in statements) >= 4


def test_figures_over_months_add_up_blocks_days_and_parts_of_days_exactly(sqlite, postgres):
    """Four hundred cases fulfilled about every seven hours over four months (times to fulfil spread over many buckets,
    latencies too), and ranges starting and ending anywhere in their 32-day blocks, on a day's edge or inside one:
    every figure is the rows': the cells of 32-day blocks, of days, and the rows of the parts of days add up exactly
    (the random worlds below spread over blocks too, but hold too few rows to meet every boundary)."""
    rng = random.Random(15)
    rows, events = [], []
    for i in range(400):
        closed = T0 + i * 7 * H + rng.randrange(H)
        fulfil = rng.choice([rng.randrange(60), rng.randrange(30 * D)])
        rows.append(case(f"m{i}", closed - fulfil, "fulfilled", closed_at=closed, due_at=closed + rng.randrange(-D, D),
                         fulfil_seconds=fulfil, on_time=rng.random() < 0.5,
                         district=rng.choice(["PUDONG", "XUHUI"])))  # fmt: skip
        events.append(event_row(f"m{i}", closed - rng.randrange(3 * D), rng.randrange(3 * D)))
    world = World(cases=rows, events=events, commitments=[commitment("ROADS", "LIGHT", 1, 9_000)])
    span = 117 * D
    filters = []
    for _ in range(30):
        start = T0 + rng.randrange(span) // (D if rng.random() < 0.5 else 1) * (D if rng.random() < 0.5 else 1)
        end = min(start + rng.randrange(1, span), T0 + span)
        filters.append(MetricsFilter(start=start, end=max(end, start + 1),
                                     district=rng.choice([None, "PUDONG"])))  # fmt: skip
    filters.append(MetricsFilter(end=T0 + 50 * D + 5 * H))
    filters.append(MetricsFilter(start=T0 + 50 * D + 5 * H, as_of=T0 + span))
    expected = [world.metrics(flt) for flt in filters]
    assert sum(m.median_fulfil_seconds is not None and m.median_fulfil_seconds >= 128 for m in expected) >= 10
    for engine in (sqlite, postgres):
        got = in_database(engine, world, lambda conn: [compute_metrics(conn, flt) for flt in filters])
        for flt, one, wanted in zip(filters, got, expected, strict=True):
            assert one == wanted, flt


def test_compute_metrics_takes_an_engine_too(sqlite, postgres):
    for engine in (sqlite, postgres):
        with engine.begin() as conn:
            insert_world(conn, hand_world())
        try:
            assert compute_metrics(engine, LIGHT_PUDONG) == compute_metrics_from_rows(
                hand_world().cases, hand_world().events, hand_world().commitments, LIGHT_PUDONG
            )
            assert list(agency_scorecards(engine, MetricsFilter(**RANGE))) == ["ROADS", "WATER"]
        finally:
            with engine.begin() as conn:
                for table in (cases, case_events, commitments, entries):
                    conn.execute(table.delete())


@pytest.fixture
def wal_sqlite(tmp_path) -> Iterator[Engine]:
    """A SQLite file in WAL mode, as the store runs it: readers and a writer side by side."""
    engine = create_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    sqlalchemy_event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA journal_mode=WAL"))
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_given_an_engine_every_query_reads_one_snapshot(kind, request, postgres):
    """An event indexed between two of compute_metrics' queries must not show in half of the figures: a mix of two
    states of the index is a set of figures nobody could reproduce."""
    engine = request.getfixturevalue("wal_sqlite") if kind == "sqlite" else postgres
    late = event_row("c1", T0 + 2 * H, 5)
    wrote: list[bool] = []

    def write_once(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SELECT") and not wrote:  # after the first query, from another connection
            wrote.append(True)
            with engine.begin() as other:
                insert_world(other, World(events=[late]))

    with engine.begin() as conn:
        insert_world(conn, hand_world())
    sqlalchemy_event.listen(engine, "after_cursor_execute", write_once)
    try:
        during = compute_metrics(engine, LIGHT_PUDONG)
        after = compute_metrics(engine, LIGHT_PUDONG)
    finally:
        sqlalchemy_event.remove(engine, "after_cursor_execute", write_once)
        with engine.begin() as conn:
            for table in (cases, case_events, commitments, entries):
                conn.execute(table.delete())
    assert wrote and (during.events_recorded, after.events_recorded) == (7, 8)


def test_metrics_to_dict_is_json_with_exact_rates(all_three):
    m = all_three(hand_world(), LIGHT_PUDONG)
    line = json.dumps(m.to_dict())
    assert '"on_time_rate": "0.6000"' in line and '"rejection_rate": "0.1429"' in line
    assert json.loads(line)["p90_fulfil_seconds"] == 6 * D


def test_row_types_match_the_tables():
    """CaseRow, EventRow, CommitmentRow, RatingRow and DisputeRow are rows of their tables (plus the entry's
    voided_by): no column missed."""
    for row_type, table in ((CaseRow, cases), (EventRow, case_events), (CommitmentRow, commitments),
                            (RatingRow, ratings), (DisputeRow, disputes), (FilingRow, filings)):
        names = [f.name for f in fields(row_type) if f.name != "voided_by"]
        assert names == [column.name for column in table.columns], row_type.__name__


# --- the arithmetic --------------------------------------------------------------------------------------------------


def test_nearest_rank_percentiles():
    assert percentile([], Fraction(1, 2)) is None
    assert percentile([7], Fraction(1, 2)) == percentile([7], Fraction(9, 10)) == 7
    assert percentile([1, 2], Fraction(1, 2)) == 1  # the lower middle: no interpolation
    assert percentile(list(range(1, 11)), Fraction(9, 10)) == 9
    assert percentile(list(range(1, 12)), Fraction(9, 10)) == 10  # ceil(9.9)
    assert [nearest_rank(n, Fraction(1, 2)) for n in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError):
        nearest_rank(0, Fraction(1, 2))
    with pytest.raises(ValueError):
        nearest_rank(3, Fraction(0))


def test_rates_round_half_to_even_at_four_places():
    assert rate(1, 3) == Decimal("0.3333") and str(rate(2, 3)) == "0.6667"
    assert str(rate(1, 20_000)) == "0.0000"  # 0.00005: the tie goes to the even 0.0000
    assert str(rate(3, 20_000)) == "0.0002"  # 0.00015 -> 0.0002
    assert str(rate(5, 5)) == "1.0000" and str(rate(0, 9)) == "0.0000"
    assert rate(0, 0) is None


@given(st.integers(0, 10**7), st.integers(1, 10**7))
def test_rate_is_the_exact_fraction_rounded_half_even(numerator, denominator):
    # round() of a Fraction rounds half to even, exactly
    assert rate(numerator, denominator) == Decimal(round(Fraction(numerator, denominator) * 10_000)).scaleb(-4)


def test_filter_validation():
    with pytest.raises(InvalidFilter, match="before end"):
        MetricsFilter(start=10, end=10)
    with pytest.raises(InvalidFilter, match="as_of is needed"):
        MetricsFilter(start=10)
    with pytest.raises(InvalidFilter, match="needs agency_id"):
        MetricsFilter(commitment_id="LIGHT", end=10)
    with pytest.raises(InvalidFilter, match="channel"):
        MetricsFilter(channel=0, end=10)
    with pytest.raises(InvalidFilter, match="unix seconds"):
        MetricsFilter(end=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidFilter, match="district"):
        MetricsFilter(district="", end=10)
    assert MetricsFilter(end=10).as_of == 10
    assert MetricsFilter(as_of=5).now == 5  # all time, open cases at 5
    assert isinstance(InvalidFilter("x"), ValueError)


# --- the same figures everywhere, on random rows --------------------------------------------------------------------

B = 1_000_000  # random times are B + a few hundred seconds, so boundaries and ties are hit often
STATUSES = ["open", "on_hold", "fulfilled", "rejected", "withdrawn"]
LATENCIES = st.one_of(st.sampled_from([-5, 0, 1, 86_399, 86_400, 86_401]), st.integers(-100, 200_000))
small_time = st.integers(B, B + 120)


@st.composite
def case_rows(draw: st.DrawFn, index: int) -> CaseRow:
    status = draw(st.sampled_from(STATUSES))
    opened = draw(small_time)
    closed = opened + draw(st.integers(-3, 60)) if status in ("fulfilled", "rejected", "withdrawn") else None
    due = draw(st.none() | st.integers(opened - 5, opened + 80))
    on_hold_since = draw(st.none() | st.integers(opened, opened + 80)) if status == "on_hold" else None
    fulfilled = status == "fulfilled"
    receipt = draw(st.sampled_from([None, RECEIPT]))
    rated_at = draw(st.none() | small_time) if receipt else None
    rating = None if rated_at is None else draw(st.integers(1, 5))
    bad = rating is not None and rating <= 2
    return CaseRow(
        agency_id=draw(st.sampled_from(["A", "B"])), case_id=b"%031d" % index + b"c",
        commitment_id=draw(st.sampled_from(["C1", "C2"])), commitment_version=1,
        district=draw(st.sampled_from(["D1", "D2", "D3"])), channel=draw(st.integers(1, 3)), opened_seq=index,
        opened_at=opened, status=status, closed_at=closed, hold_seconds=draw(st.integers(0, 30)),
        on_hold_since=on_hold_since, due_at=due,
        fulfil_seconds=draw(st.none() | st.integers(0, 60)) if fulfilled else None,
        on_time=draw(st.booleans()) if fulfilled and due is not None else None,
        escalated=False, invalid_transitions=0, last_seq=index, receipt=receipt,
        rating=rating, rated_at=rated_at,
        responded_at=draw(st.none() | st.integers(opened - 3, opened + 60)),
        response_due=draw(st.none() | st.integers(opened, opened + 40)),
        disputed_at=draw(st.none() | small_time) if receipt else None,
        rectified_at=draw(st.none() | small_time) if bad else None,
        rectification_due=draw(st.none() | st.integers(B, B + 150)) if bad else None,
    )  # fmt: skip


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n_cases = draw(st.integers(0, 25))
    case_list = [draw(case_rows(i)) for i in range(n_cases)]
    event_list = []
    for seq in range(draw(st.integers(0, 40))):
        # mostly events of known cases; some of cases without a row, some with another agency's case id (a case is
        # (agency, case id): they are not that case's)
        kind = draw(st.integers(0, 5)) if case_list else 0
        if kind == 0:
            agency_id, cid = draw(st.sampled_from(["A", "B"])), b"%031d" % (1000 + seq) + b"c"
        else:
            owner = draw(st.sampled_from(case_list))
            agency_id, cid = owner.agency_id, owner.case_id
            if kind == 1:
                agency_id = "B" if owner.agency_id == "A" else "A"
        block_time = draw(small_time)
        event_list.append(
            EventRow(
                seq=seq, agency_id=agency_id, case_id=cid, action=draw(st.integers(1, 10)),
                occurred_at=block_time - draw(LATENCIES), block_time=block_time, details_hash=b"\0" * 32,
                voided_by=draw(st.sampled_from([None, None, None, 10_000])),
            )
        )  # fmt: skip
    def some_case() -> tuple[str, bytes]:
        """Mostly a known case, some of cases without a row."""
        if case_list and draw(st.integers(0, 4)):
            owner = draw(st.sampled_from(case_list))
            return owner.agency_id, owner.case_id
        return draw(st.sampled_from(["A", "B"])), b"%031d" % draw(st.integers(2000, 2005)) + b"c"

    # keys bound to cases (a receipt issued, a filing accepted, a claim), seqs between the ratings' and disputes': a
    # rating or dispute is signed by the key bound last before it (its origin), or by one never bound (agency-issued)
    binding_kinds = {EntryKind.RECEIPT_ISSUED: AGENCY_ISSUED, EntryKind.FILING_ANSWERED: FILED,
                     EntryKind.RECEIPT_CLAIMED: CLAIMED}
    bindings: list[tuple[int, str, bytes, str, int]] = []
    bound: dict[tuple[str, bytes], list[tuple[int, str, str]]] = {}

    def bind_until(agency_id: str, cid: bytes, seq: int) -> tuple[str, str]:
        """Maybe bind a new key to the case just before `seq`; the key that signs at `seq`, and its origin."""
        if draw(st.booleans()):
            kind = draw(st.sampled_from(list(binding_kinds)))
            key = "0x" + f"{len(bindings) + 1:040x}"
            bindings.append((seq - 1, agency_id, cid, key, int(kind)))
            bound.setdefault((agency_id, cid), []).append((seq - 1, key, binding_kinds[kind]))
        earlier = [b for b in bound.get((agency_id, cid), []) if b[0] < seq]
        if earlier and draw(st.integers(0, 4)):
            _, key, origin = earlier[-1]
            return key, origin
        return RECEIPT, AGENCY_ISSUED  # a key no receipts row names

    rating_list = []
    for seq in range(20_000, 20_000 + 2 * draw(st.integers(0, 15)), 2):
        agency_id, cid = some_case()
        key, origin = bind_until(agency_id, cid, seq)
        rating_list.append(RatingRow(seq=seq, agency_id=agency_id, case_id=cid, score=draw(st.integers(1, 5)),
                                     comment_hash=b"\0" * 32, receipt=key, block_time=draw(small_time),
                                     key_origin=origin))
    dispute_list = []
    for seq in range(30_000, 30_000 + 2 * draw(st.integers(0, 15)), 2):
        agency_id, cid = some_case()
        key, origin = bind_until(agency_id, cid, seq)
        # around as_of - DISPUTE_RESPONSE_WINDOW, so that answers fall due on either side of as_of
        due = B - DISPUTE_RESPONSE_WINDOW
        block_time = draw(st.integers(due - 10, due + 130) | small_time)
        answered_at = draw(st.none() | st.integers(B - 5, B + 130))
        dispute_list.append(DisputeRow(
            seq=seq, agency_id=agency_id, case_id=cid, closure=1, reason_hash=b"\0" * 32, receipt=key,
            block_time=block_time, answer_seq=None if answered_at is None else seq + 1,
            answer_action=None if answered_at is None else int(CaseAction.REOPENED), answered_at=answered_at,
            key_origin=origin,
        ))  # fmt: skip
    filing_list = []
    for seq in range(40_000, 40_000 + draw(st.integers(0, 15))):
        filed_at = draw(small_time)
        answered_at = draw(st.none() | st.integers(filed_at, B + 130))
        filing_list.append(FilingRow(
            seq=seq, agency_id=draw(st.sampled_from(["A", "B"])), commitment_id=draw(st.sampled_from(["C1", "C2"])),
            district=draw(st.sampled_from(["D1", "D2", "D3"])), channel=draw(st.integers(1, 3)),
            content_hash=b"\1" * 32, receipt=RECEIPT, relayer=RECEIPT, block_time=filed_at,
            answer_due=filed_at + draw(st.integers(0, 60)), answer_seq=None if answered_at is None else seq + 100,
            decision=None if answered_at is None else draw(st.integers(1, 4)), answered_at=answered_at,
            filed_case_id=filed_case_id(seq),
        ))  # fmt: skip
    commitment_list = []
    seq = 5_000
    for agency_id in ("A", "B"):
        for commitment_id in ("C1", "C2"):
            for version in range(1, draw(st.integers(0, 3)) + 1):
                seq += 1
                commitment_list.append(
                    replace(
                        commitment(agency_id, commitment_id, version, draw(st.integers(0, 10_000))),
                        seq=seq,
                        voided_by=draw(st.sampled_from([None, None, 77])),
                    )
                )
    return World(cases=case_list, events=event_list, commitments=commitment_list, ratings=rating_list,
                 disputes=dispute_list, filings=filing_list, bindings=bindings)


@st.composite
def filters(draw: st.DrawFn) -> MetricsFilter:
    agency_id = draw(st.sampled_from([None, None, "A", "B"]))
    start = draw(st.none() | small_time)
    end = draw(st.none() | st.integers((start or B) + 1, B + 130))
    return MetricsFilter(
        agency_id=agency_id,
        commitment_id=draw(st.none() | st.sampled_from(["C1", "C2"])) if agency_id else None,
        start=start,
        end=end,
        # mostly unfiltered: each filter alone already leaves few of a handful of rows
        district=draw(st.sampled_from([None, None, None, "D1", "D2"])),
        channel=draw(st.sampled_from([None, None, None, 1, 2])),
        as_of=draw(small_time) if end is None or draw(st.booleans()) else None,
    )


#: the moments of each kind of row of a random world
MOMENTS = {
    CaseRow: ("opened_at", "closed_at", "on_hold_since", "due_at", "rated_at", "responded_at", "response_due",
              "disputed_at", "rectified_at", "rectification_due"),
    EventRow: ("occurred_at", "block_time"),
    RatingRow: ("block_time",),
    DisputeRow: ("block_time", "answered_at"),
    FilingRow: ("block_time", "answer_due", "answered_at"),
    MetricsFilter: ("start", "end", "as_of"),
}
#: how far apart a world's moments are spread: as drawn (seconds apart), or about a day or half a day per second, so
#: that its rows fall on many days and several 32-day blocks and the cells of both levels are read
spreads = st.sampled_from([1, 1, 86_399, 40_003])
#: the earliest moment a random world holds is at least this many seconds before B (a dispute's, less its window)
REACH = DISPUTE_RESPONSE_WINDOW + 200_100


def spread(world: World, flt: MetricsFilter, scale: int) -> tuple[World, MetricsFilter]:
    """The world and filter with every moment t at ``B + (REACH + t - B) * scale`` instead (none negative): the same
    order of moments, `scale` times as far apart (durations, windows and stored values stay as they are)."""
    if scale == 1:
        return world, flt

    def moved(row: Any) -> Any:
        times = {name: getattr(row, name) for name in MOMENTS[type(row)]}
        return replace(row, **{name: None if t is None else B + (REACH + t - B) * scale for name, t in times.items()})

    return replace(world, cases=[moved(r) for r in world.cases], events=[moved(r) for r in world.events],
                   ratings=[moved(r) for r in world.ratings], disputes=[moved(r) for r in world.disputes],
                   filings=[moved(r) for r in world.filings]), moved(flt)  # fmt: skip


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds(), flt=filters(), scale=spreads)
def test_sqlite_postgres_and_python_give_identical_metrics(sqlite, postgres, world, flt, scale):
    world, flt = spread(world, flt, scale)
    expected = world.metrics(flt)
    assert in_database(sqlite, world, lambda conn: compute_metrics(conn, flt)) == expected
    assert in_database(postgres, world, lambda conn: compute_metrics(conn, flt)) == expected


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds(), flt=filters(), scale=spreads)
def test_sqlite_postgres_and_python_give_identical_scorecards(sqlite, postgres, world, flt, scale):
    world, flt = spread(world, flt, scale)
    groupings: list[tuple[Literal["agency", "commitment"], Callable[..., dict]]] = [
        ("agency", agency_scorecards),
        ("commitment", commitment_scorecards),
    ]
    for by, scorecards in groupings:
        expected = world.scorecards(flt, by)
        for engine in (sqlite, postgres):
            got = in_database(engine, world, lambda conn, f=scorecards: f(conn, flt))
            assert list(got.items()) == list(expected.items())


@given(world=worlds(), t1=small_time, t2=small_time)
def test_open_cases_move_by_opened_minus_closed(world, t1, t2):
    """open(t2) = open(t1) + opened in [t1, t2) - closed in [t1, t2), for cases that close after they open."""
    t1, t2 = min(t1, t2), max(t1, t2) + 1
    consistent = [c for c in world.cases if c.closed_at is None or c.closed_at >= c.opened_at]

    def at(flt: MetricsFilter) -> Metrics:
        return compute_metrics_from_rows(consistent, [], [], flt)

    span = at(MetricsFilter(start=t1, end=t2))
    assert at(MetricsFilter(as_of=t2)).open_cases == (
        at(MetricsFilter(as_of=t1)).open_cases + span.cases_opened - span.cases_closed
    )


def test_filings_figures(all_three):
    """Filed in range, answered in range (accepted, rejected, late), and unanswered past the window at as_of."""
    def filing(filed_at: int, due: int, answered_at: int | None = None, decision: int | None = None,
               **changes: Any) -> FilingRow:
        seq = next(_seq)
        row = FilingRow(seq=seq, agency_id="ROADS", commitment_id="LIGHT", district="PUDONG", channel=3,
                        content_hash=b"\1" * 32, receipt=RECEIPT, relayer=RECEIPT, block_time=filed_at,
                        answer_due=due, answer_seq=None if answered_at is None else seq + 10_000,
                        decision=decision, answered_at=answered_at, filed_case_id=filed_case_id(seq))
        return replace(row, **changes)

    world = World(filings=[
        filing(T0 + D, T0 + 2 * D, T0 + D + 3600, int(FilingDecision.ACCEPTED)),  # on time
        filing(T0 + D, T0 + 2 * D, T0 + 3 * D, int(FilingDecision.SPAM)),  # late
        filing(T0 + D, T0 + 2 * D),  # never answered: overdue
        filing(T0 + 6 * D, T0 + 7 * D + 5),  # not due yet at as_of
        filing(T0 - D, T0, T0 + D, int(FilingDecision.DUPLICATE)),  # filed before the range, answered (late) in it
        filing(T0 + D, T0 + 2 * D, agency_id="WATER"),  # another agency's
    ])
    flt = MetricsFilter(agency_id="ROADS", start=T0, end=T0 + 7 * D)
    m = all_three(world, flt)
    assert (m.filings, m.filings_accepted, m.filings_rejected, m.filings_answered_late, m.filings_overdue) == (
        4, 1, 2, 2, 1)
    assert all_three(world, MetricsFilter(start=T0, end=T0 + 7 * D)).filings_overdue == 2
    district = all_three(world, MetricsFilter(district="ELSEWHERE", start=T0, end=T0 + 7 * D))
    assert district.filings == district.filings_overdue == 0


def test_ratings_and_disputes_are_counted_by_the_origin_of_their_key(all_three):
    """A key filed with the citizen's own request, one claimed from a printed code, one the agency issued (and one no
    receipt row names, counted as agency-issued): counted apart, each with its own average."""
    world = hand_world()
    keys = {"filed": "0x" + "f1" * 20, "claimed": "0x" + "c1" * 20, "issued": "0x" + "a1" * 20}
    kinds = {"filed": EntryKind.FILING_ANSWERED, "claimed": EntryKind.RECEIPT_CLAIMED,
             "issued": EntryKind.RECEIPT_ISSUED}
    origins = {"filed": FILED, "claimed": CLAIMED, "issued": AGENCY_ISSUED}
    for name, score in (("c1", 5), ("c2", 4), ("c3", 1)):
        origin = {"c1": "filed", "c2": "claimed", "c3": "issued"}[name]
        bind = next(_seq)
        world.bindings.append((bind, "ROADS", case_id(name), keys[origin], int(kinds[origin])))
        world.ratings.append(replace(rating_row(name, score, T0 + 2 * D), receipt=keys[origin],
                                     key_origin=origins[origin]))
    world.ratings.append(rating_row("c4", 2, T0 + 2 * D))  # a key no receipt row names
    world.disputes.append(replace(dispute_row("c1", T0 + 3 * D), receipt=keys["filed"], key_origin=FILED))
    m = all_three(world, MetricsFilter(agency_id="ROADS", **RANGE))
    assert m.ratings_by_key_origin == (1, 1, 2)
    assert m.rating_average_by_key_origin == (Decimal("5.0000"), Decimal("4.0000"), Decimal("1.5000"))
    assert m.disputes_by_key_origin == (1, 0, 0)
    assert m.to_dict()["rating_average_by_key_origin"] == ["5.0000", "4.0000", "1.5000"]


# --- the figures a city publishes ------------------------------------------------------------------------------------


def city_world() -> World:
    """Range [T0, END), as_of END: each case is one edge of the figures a city publishes."""

    def fulfilled(name: str, on_time: bool, **changes: Any) -> CaseRow:
        row = case(name, T0 + 1 * H, "fulfilled", closed_at=T0 + 2 * D, due_at=T0 + (3 if on_time else 1) * D,
                   fulfil_seconds=2 * D, on_time=on_time)
        return replace(row, **changes)

    def rated(name: str, score: int, rated_at: int, **changes: Any) -> CaseRow:
        return fulfilled(name, True, receipt=RECEIPT, rating=score, rated_at=rated_at, **changes)

    return World(
        cases=[
            case("late-rejection", T0 + 1 * H, "rejected", closed_at=T0 + 5 * D, due_at=T0 + 3 * D),
            case("rejected-in-time", T0 + 1 * H, "rejected", closed_at=T0 + 1 * D, due_at=T0 + 3 * D),
            case("rejected-no-due", T0 + 1 * H, "rejected", closed_at=T0 + 5 * D),
            case("late-withdrawal", T0 + 1 * H, "withdrawn", closed_at=T0 + 5 * D, due_at=T0 + 3 * D),
            case("withdrawn-in-time", T0 + 1 * H, "withdrawn", closed_at=T0 + 1 * D, due_at=T0 + 3 * D),
            case("overdue", T0 + 1 * D, due_at=T0 + 2 * D),
            fulfilled("on-time", True, receipt=RECEIPT),
            fulfilled("late-disputed", False, receipt=RECEIPT, disputed_at=T0 + 3 * D),
            fulfilled("disputed-after-as-of", True, receipt=RECEIPT, disputed_at=END),
            fulfilled("no-receipt", True),  # nobody could contest it: not in the resolution rate
            case("rejected-with-receipt", T0 + 1 * H, "rejected", closed_at=T0 + 1 * D, receipt=RECEIPT),
            # responses: in time; late; none and due; none and not yet due; after as_of (not judged)
            case("answered", T0 + 1 * H, responded_at=T0 + 2 * H, response_due=T0 + 1 * D, due_at=END + D),
            case("answered-late", T0 + 1 * H, responded_at=T0 + 2 * D, response_due=T0 + 1 * D, due_at=END + D),
            case("unanswered", T0 + 1 * H, response_due=T0 + 1 * D, due_at=END + D),
            case("not-yet-due", END - H, response_due=END + D),
            case("answered-after-as-of", END - H, responded_at=END, response_due=END + D),
            # bad ratings: rectified in time; late; not at all and due; not yet due; before the range; a good one
            rated("rectified", 2, T0 + 3 * D, rectified_at=T0 + 5 * D, rectification_due=T0 + 8 * D),
            rated("rectified-late", 1, T0 + 3 * D, rectified_at=END - H, rectification_due=T0 + 8 * D),
            rated("unrectified", 1, T0 + 3 * D, rectification_due=T0 + 8 * D),
            rated("not-yet-rectified", 2, END - H, rectification_due=END + 20 * D),
            rated("rated-before", 1, T0 - D, rectification_due=T0 + 14 * D),
            rated("satisfied", 5, T0 + 3 * D),
        ],
        ratings=[rating_row(name, score, T0 + 3 * D) for name, score in
                 (("rectified", 2), ("rectified-late", 1), ("unrectified", 1), ("satisfied", 5))]
                + [rating_row("other", 4, T0 + 4 * D)],
    )  # fmt: skip


def test_the_figures_a_city_publishes(all_three):
    m = all_three(city_world(), MetricsFilter(agency_id="ROADS", **RANGE))
    # fulfilled in range with a due time: on-time, late-disputed, disputed-after-as-of, no-receipt and the six rated
    assert (m.fulfilled, m.on_time, m.on_time_eligible, m.on_time_rate) == (10, 9, 10, Decimal("0.9000"))
    assert (m.late_rejections, m.late_withdrawals, m.overdue_cases) == (1, 1, 1)
    assert (m.deadline_cases, m.deadline_rate) == (13, Decimal("0.6923"))  # 9 / (10 + 1 + 1 + 1)
    # answered, answered-late, unanswered are judged; not-yet-due and answered-after-as-of are not
    assert (m.responses_due, m.responded_on_time, m.response_rate) == (3, 1, Decimal("0.3333"))
    # of the answers with a receipt (nine fulfilled, one rejected), late-disputed was contested before as_of and
    # disputed-after-as-of was not, then
    assert (m.answers_with_receipt, m.resolved, m.resolution_rate) == (10, 8, Decimal("0.8000"))
    assert (m.ratings, m.satisfaction_rate) == (5, Decimal("0.4000"))  # 5 and 4 of 2, 1, 1, 5, 4
    # the six rated cases, of the 16 closed in range (rated-before's rating was before the range, but it was rated)
    assert m.rating_coverage == Decimal("0.3750")
    # rated-before was rated before the range; not-yet-rectified is not due yet
    assert (m.bad_ratings, m.rectifications_due, m.rectified_on_time) == (4, 3, 1)
    assert m.rectification_rate == Decimal("0.3333")
    later = all_three(city_world(), MetricsFilter(agency_id="ROADS", start=T0, end=END, as_of=END + 30 * D))
    assert (later.rectifications_due, later.rectified_on_time) == (4, 1)  # not-yet-rectified is due by then
    assert (later.responses_due, later.responded_on_time) == (5, 2)  # answered-after-as-of counts, in time


def test_rankings_leave_small_samples_unranked_and_share_ties():
    cards = {"A": fulfilled_only(30, 0), "B": fulfilled_only(27, 3), "C": fulfilled_only(54, 6),
             "D": fulfilled_only(2, 0), "E": fulfilled_only(0, 0)}
    assert ranks(cards, "deadline_rate") == {"A": 1, "B": 2, "C": 2, "D": None, "E": None}
    assert ranks(cards, "deadline_rate", min_sample=1) == {"A": 1, "B": 3, "C": 3, "D": 1, "E": None}
    with pytest.raises(InvalidFilter, match="figure must be one of"):
        ranks(cards, "median_fulfil_seconds")


def fulfilled_only(on_time: int, late: int) -> Metrics:
    """The metrics of an agency with `on_time` cases fulfilled in time and `late` after, from rows (no database)."""
    rows = [case(f"r{i}", T0 + H, "fulfilled", closed_at=T0 + 2 * D, due_at=T0 + (3 if i < on_time else 1) * D,
                 fulfil_seconds=2 * D, on_time=i < on_time) for i in range(on_time + late)]  # fmt: skip
    return compute_metrics_from_rows(rows, [], [], MetricsFilter(**RANGE))
