"""The figure cells (``ledger.cells``, ``ledger.index.cells``): the buckets of values are the same in SQL, on SQLite and
PostgreSQL, as in Python, and tile the integers; and the cells the indexer keeps by difference, transaction by
transaction, are the cells :func:`~ledger.index.cells.rebuild` makes from the same rows — after plain ranges,
corrections, a reorganisation rolled back, a withheld batch released, and a holiday calendar published later.

Each ledger is indexed into a SQLite and a PostgreSQL store side by side, on an anvil of this module's own (the
indexer refuses eth-tester). After every sync each store's cells are read, rebuilt in a transaction that is rolled
back, and read again: the two must be equal. (The other indexer tests compare whole store dumps with a sync from
scratch, which keeps its cells by difference too: equal dumps show the cells do not depend on how the ranges fell,
not that they count what the rows hold.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Column, Connection, Engine, Integer, MetaData, Table, create_engine, insert, select

from ledger import receipts
from ledger.batches import BatchStore
from ledger.cells import FINEST, bucket, bucket_bounds, bucket_sql
from ledger.chain.contract import Chain
from ledger.index.cells import TABLES, rebuild
from ledger.index.sync import Indexer, SyncReport
from ledger.records import (
    CaseAction,
    CaseEvent,
    Correction,
    DeadlineUnit,
    FilingDecision,
    HolidayCalendar,
    Receipt,
    text_hash,
)
from ledger.store.db import Store, normalize_url, open_store
from ledger.workdays import is_weekend, local_day, year_of
from tests.support import filed
from tests.support.batched import T0, anchor, life, plain_case_id
from tests.support.batched import index as index_batches
from tests.support.feedback import code_of, rate, receipt_case_id, write_feedback
from tests.support.indexing import index, mine
from tests.support.scenario import WORKING_DAYS_COMMITMENT, write_everything
from tests.support.world import World, build_world

DAY = 86_400
#: the greatest magnitude a stored value has (BIGINT, and its negation)
TOP = 2**63 - 1


# ------------------------------------------------------------------------------------------ buckets of values


def _edges() -> list[int]:
    positive = {0, 1, 127, 128, 255, 256, TOP, *range(300)}
    positive |= {2**k + d for k in range(1, 63) for d in (-1, 0, 1)}
    positive |= {(m << s) + d for s in (1, 2, 30, 55, 56) for m in (64, 65, 127) for d in (-1, 0, 1)}
    return sorted(v for p in positive for v in (p, -p) if abs(v) <= TOP)


EDGES = _edges()
_values = Table("bucket_values", MetaData(), Column("id", Integer, primary_key=True),
                Column("value", BigInteger, nullable=False))


def _of_magnitude(bits: int) -> st.SearchStrategy[int]:
    return st.integers(1 << bits, min(TOP, (1 << (bits + 1)) - 1))


#: any value, and values spread over every magnitude of either sign (most integers of the whole range are huge)
magnitudes = st.integers(0, 62).flatmap(_of_magnitude)
values = st.integers(-TOP, TOP) | magnitudes | magnitudes.map(lambda v: -v)


@pytest.fixture
def value_table(store_url: str) -> Iterator[Engine]:
    """A table of values in a fresh SQLite file or PostgreSQL schema."""
    engine = create_engine(normalize_url(store_url))
    _values.metadata.create_all(engine)
    yield engine
    engine.dispose()


def buckets_in_sql(engine: Engine, numbers: list[int]) -> list[int]:
    """:func:`bucket_sql` of each number, stored in a BIGINT column as the index stores values."""
    with engine.begin() as conn:
        conn.execute(_values.delete())
        conn.execute(insert(_values), [{"id": i, "value": v} for i, v in enumerate(numbers)])
        found = {int(i): int(b) for i, b in conn.execute(select(_values.c.id, bucket_sql(_values.c.value)))}
    return [found[i] for i in range(len(numbers))]


def test_bucket_sql_is_bucket_at_the_edges(value_table: Engine) -> None:
    """0, ±1, the last exact values and the first shared ones, every power of two and its neighbours, the first and
    last value of buckets at several widths, and ±(2**63 - 1)."""
    got = buckets_in_sql(value_table, EDGES)
    wrong = [(v, g, bucket(v)) for v, g in zip(EDGES, got, strict=True) if g != bucket(v)]
    assert not wrong, f"{value_table.dialect.name}: (value, SQL, Python) {wrong[:10]}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(numbers=st.lists(values, min_size=1, max_size=60))
def test_bucket_sql_is_bucket_for_any_value(value_table: Engine, numbers: list[int]) -> None:
    assert buckets_in_sql(value_table, numbers) == [bucket(v) for v in numbers]


def test_bucket_bounds_tile_the_integers_and_no_bucket_is_wider_than_a_64th_of_its_values() -> None:
    """From the bucket of -(2**63 - 1) to that of 2**63 - 1, each bucket starts right after the one before; its bounds
    are in it; one of values of magnitude 128 or more is at most 1/64 of its least magnitude wide, and a smaller
    value is a bucket of its own. Number -1 is no value's bucket (a negative value's mirrors its magnitude's below
    -1, 0 being its own): the numbers skip it."""
    last = bucket(TOP)
    assert bucket(-TOP) == -1 - last and (bucket(-1), bucket(0)) == (-2, 0)
    previous = -TOP - 1
    for number in [n for n in range(-1 - last, last + 1) if n != -1]:
        low, high = bucket_bounds(number)
        assert low == previous + 1 and low <= high, number
        assert bucket(low) == number == bucket(high)
        least = min(abs(low), abs(high))
        if least >= 128:
            assert 64 * (high - low + 1) <= least, number
        else:
            assert low == high, number
        previous = high
    assert previous == TOP


@given(value=values)
def test_every_value_is_within_its_buckets_bounds(value: int) -> None:
    low, high = bucket_bounds(bucket(value))
    assert low <= value <= high


# ------------------------------------------------------------------------------------------ kept cells and rebuilt ones


@pytest.fixture
def world(node_chain: Chain) -> World:
    return build_world(node_chain)


@pytest.fixture
def two_stores(sqlite_url: Callable[[], str], pg_database: Callable[[], str]) -> Iterator[dict[str, Store]]:
    """A fresh SQLite store and a fresh PostgreSQL store, closed afterwards."""
    opened = {"sqlite": open_store(sqlite_url()), "postgresql": open_store(pg_database())}
    yield opened
    for store in opened.values():
        store.close()


_Cells = dict[str, dict[tuple[Any, ...], tuple[int, ...]]]
_TABLES = TABLES


def read_cells(conn: Connection) -> _Cells:
    """Every row of ``figure_cells``, ``figure_values`` and ``figure_points``: table -> key -> counts."""
    out: _Cells = {}
    for table in _TABLES:
        keys = [c for c in table.columns if c.primary_key]
        counts = [c for c in table.columns if not c.primary_key]
        out[table.name] = {tuple(row[: len(keys)]): tuple(int(n) for n in row[len(keys):])
                           for row in conn.execute(select(*keys, *counts))}
    return out


def differences(kept: _Cells, rebuilt: _Cells) -> str:
    """How many cells differ, and the differing counts of the finest cuboid's days (each other cell sums those) and
    of the points."""
    lines = []
    for table in _TABLES:
        keys = [c.name for c in table.columns if c.primary_key]
        counts = [c.name for c in table.columns if not c.primary_key]
        # a point is its own finest cell
        at = {"cuboid": keys.index("cuboid"), "level": keys.index("level")} if "cuboid" in keys else None
        mine, theirs = kept[table.name], rebuilt[table.name]
        wrong = sorted(key for key in mine.keys() | theirs.keys() if mine.get(key) != theirs.get(key))
        lines.append(f"{table.name}: {len(wrong)} cells differ; of the finest cuboid's days (kept, rebuilt):")
        zero = (0,) * len(counts)
        for key in [k for k in wrong if at is None or (k[at["cuboid"]] == FINEST and k[at["level"]] == 0)][:12]:
            pairs = zip(counts, mine.get(key, zero), theirs.get(key, zero), strict=True)
            lines.append(f"  {dict(zip(keys, key, strict=True))}: "
                         + ", ".join(f"{name} {a} {b}" for name, a, b in pairs if a != b))
    return "\n".join(lines)


def assert_cells_rebuilt(store: Store, when: str) -> _Cells:
    """The store's cells equal those :func:`rebuild` makes from its rows (rebuilt in a transaction rolled back);
    returns them."""
    with store.connect() as conn:
        transaction = conn.begin()
        try:
            kept = read_cells(conn)
            rebuild(conn)
            rebuilt = read_cells(conn)
        finally:
            transaction.rollback()
    assert kept == rebuilt, f"{store.dialect}, {when}: the kept cells are not the rebuilt ones\n" + differences(
        kept, rebuilt)
    return kept


class Indexed:
    """One ledger indexed into each store by an indexer of its own; after every sync, each store's kept cells are
    checked against rebuilt ones."""

    def __init__(self, stores: dict[str, Store], indexer: Callable[[Store], Indexer]) -> None:
        self.indexers = {name: indexer(store) for name, store in stores.items()}
        #: each store's cells after the last sync
        self.cells: dict[str, _Cells] = {}

    def sync(self, when: str) -> list[SyncReport]:
        reports = []
        for name, indexer in self.indexers.items():
            reports.append(indexer.sync())
            self.cells[name] = assert_cells_rebuilt(indexer.store, when)
        return reports

    def checkpoint(self, stage: str) -> None:
        """Sync at a stage of a scenario (its ``checkpoint``)."""
        self.sync(stage)


def event(world: World, name: str, action: CaseAction, *, days_ago: float = 0, **changes: Any) -> CaseEvent:
    """A case event claimed `days_ago` days before the chain's time (recorded late when that is more than one)."""
    changes.setdefault("details_hash", text_hash(f"{name}:{action.name}:{days_ago}"))
    return world.update(name, action, occurred_at=world.now() - int(days_ago * DAY), **changes)


def void(world: World, target_seq: int) -> int:
    world.ledger.write(world.signer, Correction(target_seq=target_seq, reason_hash=text_hash(f"void {target_seq}"),
                                                occurred_at=world.now()))
    return world.ledger.entry_count() - 1


def seq_of(world: World, case_id: bytes, action: CaseAction) -> int:
    """The seq of the case's last event of this action."""
    return [e.seq for e in world.ledger.entries()
            if isinstance(e.record, CaseEvent) and e.record.case_id == case_id and e.record.action == action][-1]


def rectify(world: World, case_id: bytes) -> None:
    world.ledger.write(world.signer, event(world, "rectified", CaseAction.RECTIFIED, case_id=case_id))


def publish_holidays(world: World, days: int = 14) -> None:
    """A calendar naming every weekday of the next `days` (local) days a holiday, one version per year they reach:
    every working-day due time from now on moves."""
    today = local_day(world.now())
    by_year: dict[int, list[int]] = {}
    for day in range(today, today + days):
        if not is_weekend(day):
            by_year.setdefault(year_of(day), []).append(day)
    for year, holidays in sorted(by_year.items()):
        world.ledger.write(world.signer, HolidayCalendar(year=year, holidays=tuple(holidays), occurred_at=world.now()))


def test_plain_ranges_keep_the_cells_of_cases_feedback_and_filings(world: World, two_stores: dict[str, Store]) -> None:
    """Cases opened (some days back), answered, held, fulfilled, rejected, withdrawn; receipts, ratings good and bad,
    a bad rating rectified, disputes and their answers; filings recorded, accepted and rejected, receipts claimed:
    synced in stages, in ranges of four blocks."""
    indexed = Indexed(two_stores, lambda store: index(world, store, max_block_range=4))
    ledger, signer = world.ledger, world.signer
    names = ("held", "fulfilled", "rejected", "withdrawn", "answered", "late")
    ledger.write_batch(signer, [world.opened(n, occurred_at=world.now() - i * DAY) for i, n in enumerate(names)])
    ledger.write(signer, world.opened("today"))
    ledger.write(signer, event(world, "opened later", CaseAction.ACCEPTED, days_ago=1))
    indexed.sync("cases opened, and an event of a case not opened yet")
    ledger.write_batch(signer, [
        event(world, "held", CaseAction.ON_HOLD, days_ago=0.5),
        event(world, "answered", CaseAction.ACCEPTED, days_ago=0.2),
        event(world, "fulfilled", CaseAction.FULFILLED, days_ago=0.1),
        event(world, "rejected", CaseAction.REJECTED),
        event(world, "late", CaseAction.FULFILLED),  # opened five days ago: late
    ])
    ledger.write(signer, event(world, "withdrawn", CaseAction.WITHDRAWN))
    indexed.sync("cases answered, held and closed")
    ledger.write(signer, event(world, "held", CaseAction.RESUMED))
    ledger.write(signer, event(world, "held", CaseAction.FULFILLED))
    ledger.write(signer, event(world, "today", CaseAction.ESCALATED))
    ledger.write(signer, world.opened("opened later", occurred_at=world.now() - 2 * DAY))
    indexed.sync("a hold ended and the case fulfilled; a case opened after its event")
    f = write_feedback(world, indexed.checkpoint)
    before = dict(indexed.cells)
    rectify(world, f.cases["reopened"])  # rated 2
    indexed.sync("a bad rating rectified")
    assert indexed.cells != before
    filed.write_filings(world, indexed.checkpoint)
    assert all(cells["figure_values"] and cells["figure_points"] for cells in indexed.cells.values())


#: the stages of ``write_everything`` between which it writes its corrections (and a calendar's second version)
CORRECTION_STAGES = ("before the calendar changes", "after the corrections")


def test_corrections_voiding_a_case_event_and_aimed_at_an_opened_keep_the_cells(
    world: World, two_stores: dict[str, Store]
) -> None:
    """Every correction of ``write_everything`` (a fulfilment voided, one refused as voided already, one of the other
    agency's entry, one aimed at an Opened (refused), a correction voided), synced right before them and after; then
    a rated case's fulfilment voided, then corrections aimed at its Opened and a plain case's (refused: no correction
    voids one), the rated case opened again (an invalid transition), events of a case never opened (no row); an
    event and its correction in one range."""
    indexed = Indexed(two_stores, lambda store: index(world, store))
    ledger, signer = world.ledger, world.signer
    write_everything(world, lambda stage: indexed.checkpoint(stage) if stage in CORRECTION_STAGES else None)
    f = write_feedback(world)
    ledger.write_batch(signer, [world.opened("plain", occurred_at=world.now() - 2 * DAY),
                                event(world, "plain", CaseAction.ACCEPTED, days_ago=1),
                                event(world, "plain", CaseAction.FULFILLED)])
    indexed.sync("feedback and a plain case")
    rated = f.cases["rated"]
    void(world, seq_of(world, rated, CaseAction.FULFILLED))
    indexed.sync("a rated case's fulfilment voided")
    void(world, seq_of(world, rated, CaseAction.OPENED))
    void(world, seq_of(world, world.opened("plain").case_id, CaseAction.OPENED))
    ledger.write(signer, event(world, "never opened", CaseAction.ACCEPTED, days_ago=2))
    ledger.write(signer, event(world, "never opened", CaseAction.FULFILLED))
    indexed.sync("Openeds' corrections refused; events of a case without a row")
    ledger.write(signer, world.opened("rated", case_id=rated))
    ledger.write(signer, world.opened("in one range", occurred_at=world.now() - 3 * DAY, channel=3))
    ledger.write(signer, event(world, "in one range", CaseAction.FULFILLED))
    void(world, world.ledger.entry_count() - 1)
    indexed.sync("the rated case opened again; an event voided in its own range")


def test_a_reorganisation_rolled_back_keeps_the_cells(world: World, two_stores: dict[str, Store]) -> None:
    """An orphaned branch voids a fulfilment and an answer, aims a correction at an Opened, rates, reopens, opens a
    receipt case, answers filings, files another and publishes a calendar; the winning branch answers a filing
    otherwise."""
    indexed = Indexed(two_stores, lambda store: index(world, store, confirmations=20))
    ledger, signer = world.ledger, world.signer
    f = write_feedback(world)
    first, second = filed.file(world, "settled"), filed.file(world, "rejected later")
    mine(world, 20)
    indexed.sync("settled")
    snapshot = world.chain.snapshot()
    void(world, seq_of(world, f.cases["rated"], CaseAction.FULFILLED))
    rate(world, "rejected", 3)
    ledger.write(signer, event(world, "r", CaseAction.REOPENED, case_id=f.cases["reopened"]))
    void(world, f.seqs["rejected answer"])
    void(world, seq_of(world, f.cases["late-receipt"], CaseAction.OPENED))
    orphan = receipt_case_id("orphaned receipt")
    ledger.write(signer, world.opened("o", case_id=orphan, occurred_at=world.now() - 3 * DAY))
    ledger.write(signer, Receipt(case_id=orphan, receipt=receipts.address(code_of("orphaned receipt")),
                                 occurred_at=world.now()))
    filed.answer(world, first, FilingDecision.ACCEPTED)
    filed.answer(world, second, FilingDecision.SPAM)
    filed.file(world, "orphaned")
    publish_holidays(world)
    indexed.sync("an orphaned branch")
    world.chain.revert(snapshot)
    filed.answer(world, first, FilingDecision.OUT_OF_SCOPE)
    ledger.write(signer, world.opened("winner"))
    mine(world, 25)
    reports = indexed.sync("rolled back to the winning branch")
    assert [r.reorgs for r in reports] == [1, 1]


def test_a_withheld_batch_released_keeps_the_cells(
    world: World, two_stores: dict[str, Store], tmp_path: Path
) -> None:
    """A batch withheld while a correction of one of its events and later events of its cases are indexed, then its
    file published; a published batch among single entries."""
    published, private = tmp_path / "published", tmp_path / "private"
    indexed = Indexed(two_stores, lambda store: index_batches(world, store, published))
    ledger, signer = world.ledger, world.signer
    ledger.write(signer, world.opened("first"))
    # a batched event claims what time it likes: one claimed a day ahead has a negative recording latency
    ahead = world.opened("ahead", case_id=plain_case_id("ahead"), occurred_at=world.now() + DAY)
    anchor(world, [*life(world, "p", 4), ahead], published)
    batch, anchored = anchor(world, life(world, "m", 4), private)
    void(world, anchored.seq + 5)  # m0's fulfilment (see life)
    ledger.write(signer, world.update("m1", CaseAction.FULFILLED, occurred_at=T0 + 9000, case_id=plain_case_id("m1")))
    ledger.write(signer, world.update("m2", CaseAction.REOPENED, occurred_at=T0 + 9000, case_id=plain_case_id("m2")))
    reports = indexed.sync("a batch withheld")
    assert [r.withheld_batches for r in reports] == [1, 1]
    BatchStore(published).put(batch)
    reports = indexed.sync("the withheld batch released")
    assert [r.released_batches for r in reports] == [1, 1]


def receipt_case_opened(world: World) -> bytes:
    """A receipt case opened two days back, on its own."""
    receipted = receipt_case_id("batched")
    world.ledger.write(world.signer, world.opened("receipted", case_id=receipted, occurred_at=world.now() - 2 * DAY))
    return receipted


def test_a_batched_event_of_a_receipt_case_keeps_the_cells(
    world: World, two_stores: dict[str, Store], tmp_path: Path
) -> None:
    """A batched event of a receipt case is never folded into its case (``ledger.cases.batched_event_applies``), but
    its ``case_events`` row is written, and a rebuild counts it (events, late recordings, latencies) as the figures
    read from the rows do."""
    indexed = Indexed(two_stores, lambda store: index_batches(world, store, tmp_path))
    receipted = receipt_case_opened(world)
    anchor(world, [event(world, "receipted", CaseAction.ACCEPTED, days_ago=1.5, case_id=receipted)], tmp_path)
    indexed.sync("a published batch holding a receipt case's event")


def test_a_released_batch_holding_an_event_of_a_receipt_case_keeps_the_cells(
    world: World, two_stores: dict[str, Store], tmp_path: Path
) -> None:
    """As above, for a batch withheld and then released (``Projection.release``)."""
    published, private = tmp_path / "published", tmp_path / "private"
    indexed = Indexed(two_stores, lambda store: index_batches(world, store, published))
    receipted = receipt_case_opened(world)
    batch, _ = anchor(world, [event(world, "receipted", CaseAction.FULFILLED, days_ago=1.5, case_id=receipted)],
                      private)
    indexed.sync("a withheld batch holding a receipt case's event")
    BatchStore(published).put(batch)
    reports = indexed.sync("that batch released")
    assert [r.released_batches for r in reports] == [1, 1]


def test_a_calendar_published_later_keeps_the_cells(world: World, two_stores: dict[str, Store]) -> None:
    """Due times counted in working days — a working-day case's, the responses', a bad rating's rectification, a
    filing's answer — move when a calendar is published after them (``CaseFolder.recompute_due``), and back when a
    second version withdraws the holidays."""
    indexed = Indexed(two_stores, lambda store: index(world, store))
    ledger, signer = world.ledger, world.signer
    write_feedback(world)
    ledger.write(signer, world.commitment(WORKING_DAYS_COMMITMENT, deadline=3, deadline_unit=DeadlineUnit.WORKING_DAYS))
    ledger.write(signer, world.opened("working days", commitment_id=WORKING_DAYS_COMMITMENT))
    filed.file(world, "calendar")
    indexed.sync("due times without a calendar")
    before = dict(indexed.cells)
    publish_holidays(world)
    indexed.sync("a calendar published: due times move")
    assert all(indexed.cells[name] != before[name] for name in before)
    today = local_day(world.now())
    for year in sorted({year_of(today), year_of(today + 13)}):
        ledger.write(signer, HolidayCalendar(year=year, occurred_at=world.now()))
    indexed.sync("its second version withdraws the holidays")
