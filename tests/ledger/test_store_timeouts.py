"""The serving store's bounds (``ledger.store.db``): a statement that runs too long is stopped on SQLite and
PostgreSQL — on every connection of the API's engine and on those the API's reader makes from its URL, never while
migrating, never on the indexer's or the CLI's stores —, a full pool fails fast; and SQLite's WAL stays bounded while
readers overlap without pause and a writer (the indexer) writes."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ledger.chain.contract import Chain
from ledger.store import db
from ledger.store.db import JOURNAL_SIZE_LIMIT, Store, is_statement_timeout, open_store
from ledger.store.schema import blocks
from tests.support.indexing import index
from tests.support.postgres import admin
from tests.support.world import build_world

#: a statement that runs for minutes on either database (it counts to a billion)
ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT count(*) FROM n"


@pytest.fixture
def timed(stores: Callable[..., Store], store_url: str) -> Iterator[Store]:
    """The store of `store_url` (SQLite and PostgreSQL) opened as the API opens it, with a 100 ms statement timeout."""
    stores(store_url)  # migrated by a plain store first, as the indexer would
    store = open_store(store_url, statement_timeout_ms=100, pool_timeout=0.2)
    yield store
    store.close()


def _stopped(store: Store, sql: str = ENDLESS) -> tuple[OperationalError, float]:
    started = time.monotonic()
    with store.connect() as conn, pytest.raises(OperationalError) as raised:
        conn.execute(text(sql)).scalar()
    return raised.value, time.monotonic() - started


# --- statement timeouts -----------------------------------------------------------------------------------------------


def test_a_statement_past_the_timeout_is_stopped_and_named_so(timed: Store) -> None:
    error, took = _stopped(timed)
    assert error.orig is not None and is_statement_timeout(error) and is_statement_timeout(error.orig)
    assert 0.1 <= took < 1.5
    # inside a read transaction too; the connection serves the next request (on SQLite, even the same transaction)
    with timed.connect() as conn:
        with conn.begin():
            assert conn.execute(text("SELECT count(*) FROM blocks")).scalar() == 0
            with pytest.raises(OperationalError) as again:
                conn.execute(text(ENDLESS))
            assert is_statement_timeout(again.value)
            if timed.dialect == "sqlite":
                assert conn.execute(text("SELECT 1")).scalar() == 1
        assert conn.execute(text("SELECT 2")).scalar() == 2


def test_other_database_errors_are_not_timeouts(timed: Store) -> None:
    with timed.connect() as conn, pytest.raises(DBAPIError) as raised:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_statement_timeout(raised.value)
    assert not is_statement_timeout(ValueError("interrupted"))


def test_the_time_bounds_one_call_not_a_transaction_or_a_stream(stores: Callable[..., Store], store_url: str) -> None:
    """What is bounded is the database working on one call: a read transaction idle between statements for longer
    than the timeout is not interrupted (nothing runs), nor a result read a batch at a time for longer (an export:
    each fetch is short, though the statement's work adds up to millions of SQLite instructions, past the deadline
    an execute alone would have set)."""
    stores(store_url)
    # the timeout is far longer than any one call here (a fetch of 1,000 rows takes about a millisecond), so a loaded
    # machine cannot make one call overrun it; the idle time and the stream each last longer than it
    timed = open_store(store_url, statement_timeout_ms=1000)
    try:
        with timed.begin() as conn:
            conn.execute(insert(blocks), [{"number": n, "hash": n.to_bytes(32, "big"), "timestamp": n}
                                          for n in range(500)])
        with timed.connect() as conn, conn.begin():
            assert conn.execute(text("SELECT count(*) FROM blocks")).scalar() == 500
            time.sleep(1.2)
            assert conn.execute(text("SELECT max(number) FROM blocks")).scalar() == 499
            result = conn.execution_options(stream_results=True, yield_per=1_000).execute(text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000) SELECT i FROM n"))
            read = 0
            started = time.monotonic()
            while batch := result.fetchmany(1_000):
                read += len(batch)
                time.sleep(0.07)  # 30 batches: 2.1 s in all, twice the timeout
            assert read == 30_000
            assert time.monotonic() - started > 2 * timed.statement_timeout_ms / 1000
    finally:
        timed.close()


def test_the_indexer_and_cli_stores_have_no_timeout(stores: Callable[..., Store], store_url: str) -> None:
    plain = stores(store_url)
    assert plain.statement_timeout_ms == 0
    with plain.connect() as conn:
        if plain.dialect == "postgresql":
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
        else:
            assert type(conn.connection.driver_connection) is sqlite3.Connection
            # the same count the API's store stops at 100 ms runs to its end here (a smaller one: 0.2-0.5 s)
            n = conn.execute(text(ENDLESS.replace("1000000000", "3000000"))).scalar()
            assert n == 3_000_000


def test_every_postgresql_connection_of_the_api_has_the_timeout(pg_url: str) -> None:
    open_store(pg_url).close()
    timed = open_store(pg_url, statement_timeout_ms=100)
    try:
        with timed.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "100ms"
            # the URL's own options are kept (the tests' schema is one)
            assert "civic_test_" in str(conn.execute(text("SHOW search_path")).scalar())
        # the API's asynchronous reader connects with the engine's arguments (api.deps.IndexReader._connect)
        args, kwargs = timed.engine.dialect.create_connect_args(timed.engine.url)
        with psycopg.connect(*args, **kwargs, autocommit=True) as raw:
            assert raw.execute("SHOW statement_timeout").fetchone() == ("100ms",)
            with pytest.raises(psycopg.errors.QueryCanceled) as raised:
                raw.execute("SELECT pg_sleep(2)")
            assert is_statement_timeout(raised.value)
    finally:
        timed.close()


def test_migrating_is_not_bounded_by_the_timeout(pg_url: str) -> None:
    """The API may open a store while another process migrates it: waiting for that migration's lock (and migrating)
    takes longer than any statement timeout."""
    with admin() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (db._PG_MIGRATION_LOCK,))
        opened: list[Store] = []
        opening = threading.Thread(target=lambda: opened.append(open_store(pg_url, statement_timeout_ms=50)))
        opening.start()
        time.sleep(0.4)
        holder.execute("SELECT pg_advisory_unlock(%s)", (db._PG_MIGRATION_LOCK,))
        opening.join(10)
    [store] = opened
    try:
        assert store.revision() == db.head_revision()
        error, _ = _stopped(store, "SELECT pg_sleep(1)")  # and the timeout is back for the statements after
        assert is_statement_timeout(error)
    finally:
        store.close()


def test_a_full_pool_fails_fast(timed: Store) -> None:
    assert timed.engine.pool.timeout() == 0.2  # type: ignore[attr-defined]  # a QueuePool
    held = []
    try:
        started = time.monotonic()
        with pytest.raises(PoolTimeout):
            for _ in range(100):
                held.append(timed.engine.connect())
        assert time.monotonic() - started < 1.5
        assert len(held) == 15  # SQLAlchemy's pool: 5, and 10 beyond
    finally:
        for conn in held:
            conn.close()


# --- the WAL while readers overlap ------------------------------------------------------------------------------------


def _wal_size(store: Store) -> int:
    path = f"{store.engine.url.database}-wal"
    return os.path.getsize(path) if os.path.exists(path) else 0


@contextmanager
def _overlapping_readers(store: Store, hold: float = 0.004) -> Iterator[list[int]]:
    """Three threads opening read transactions without pause, staggered so that one is always open (as API requests
    do): SQLite can never reset the WAL by itself then. Yields the count of transactions read."""
    stop = threading.Event()
    done = [0]

    def read(delay: float) -> None:
        time.sleep(delay)
        while not stop.is_set():
            with store.connect() as conn, conn.begin():
                conn.exec_driver_sql("BEGIN")
                conn.execute(text("SELECT count(*) FROM blocks")).scalar()
                time.sleep(hold)
            done[0] += 1

    threads = [threading.Thread(target=read, args=(i * hold / 3,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        yield done
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _write(store: Store, commits: int, bound: int | None, first: int = 0) -> int:
    """`commits` transactions of 1,000 rows; the WAL's largest size seen after each (and its checkpoint when `bound`
    is given, as the indexer does)."""
    largest = 0
    for c in range(commits):
        with store.begin() as conn:
            conn.execute(insert(blocks), [{"number": first + c * 1000 + n, "hash": os.urandom(32), "timestamp": n}
                                          for n in range(1000)])
        if bound is not None:
            store.bound_wal(bound)
        largest = max(largest, _wal_size(store))
    return largest


def test_the_wal_stays_bounded_while_readers_overlap(
    stores: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 2**20
    # what the readers do to a WAL nobody checkpoints: it keeps the commits (up to all 9 MiB of them, when the
    # readers never leave SQLite a moment to reset it), far past the bound
    unbounded = stores()
    with _overlapping_readers(open_store(str(unbounded.engine.url), statement_timeout_ms=15_000)) as reads:
        assert _write(unbounded, 100, None) > 3 * bound
    assert reads[0] > 10
    # the same with the indexer's checkpoint after each commit: never past the bound, give or take a commit (the
    # checkpoint retried at once here, should a reader have been slow to move to the newest snapshot)
    monkeypatch.setattr(db, "CHECKPOINT_RETRY_SECONDS", 0.0)
    writer = stores()
    api = open_store(str(writer.engine.url), statement_timeout_ms=15_000)
    try:
        with _overlapping_readers(api) as reads:
            assert _write(writer, 100, bound) <= 1.5 * bound
        assert reads[0] > 10
        with api.connect() as conn:  # nothing lost
            assert conn.execute(text("SELECT count(*) FROM blocks")).scalar() == 100_000
            assert conn.execute(text("PRAGMA journal_size_limit")).scalar() == JOURNAL_SIZE_LIMIT
    finally:
        api.close()


def test_a_long_reader_holds_the_checkpoint_back_briefly_and_it_is_tried_again(
    stores: Callable[..., Store], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = stores()
    _write(writer, 3, None)
    reader = open_store(str(writer.engine.url), statement_timeout_ms=15_000)
    try:
        with reader.connect() as conn, conn.begin():
            conn.exec_driver_sql("BEGIN")
            conn.execute(text("SELECT count(*) FROM blocks")).scalar()  # a snapshot from before the next commits
            _write(writer, 3, None, first=3000)
            started = time.monotonic()
            with caplog.at_level(logging.DEBUG, logger="ledger.store.db"):
                assert writer.bound_wal(0) is False
            assert time.monotonic() - started < 1.0  # the writer waited a moment (200 ms), no longer
            assert "could not be checkpointed yet" in caplog.text
            assert writer.bound_wal(0) is None  # not again at once: after CHECKPOINT_RETRY_SECONDS
        monkeypatch.setattr(db, "CHECKPOINT_RETRY_SECONDS", 0.0)
        writer._wal_retry_at = 0.0
        assert writer.bound_wal(0) is True and _wal_size(writer) == 0
    finally:
        reader.close()


def test_the_indexer_checkpoints_after_its_commits(
    node_chain: Chain, stores: Callable[..., Store], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The indexer's range commit is followed by :meth:`Store.bound_wal`: with a reader on an old snapshot the
    checkpoint gives up after a moment (the sync goes on), and once the reader is gone the WAL is truncated."""
    world = build_world(node_chain)
    store = stores()
    monkeypatch.setattr(db, "WAL_CHECKPOINT_BYTES", 0)
    monkeypatch.setattr(db, "CHECKPOINT_RETRY_SECONDS", 0.0)
    reader = open_store(str(store.engine.url), statement_timeout_ms=15_000)
    try:
        with reader.connect() as conn, conn.begin():
            conn.exec_driver_sql("BEGIN")
            conn.execute(text("SELECT count(*) FROM entries")).scalar()
            with caplog.at_level(logging.DEBUG, logger="ledger.store.db"):
                report = index(world, store).sync()
        assert report.entries > 0
        assert "could not be checkpointed yet" in caplog.text
        caplog.clear()
        world.ledger.write(world.signer, world.opened("after"))
        before = _wal_size(store)
        with caplog.at_level(logging.DEBUG, logger="ledger.store.db"):
            assert index(world, store).sync().entries == 1
        assert "could not be checkpointed yet" not in caplog.text
        # truncated after the range; what is left is the finality update written after it
        assert _wal_size(store) < min(before, 64 * 1024)
    finally:
        reader.close()
