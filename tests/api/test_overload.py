"""The API under expensive reads: a statement that runs past ``ApiSettings.statement_timeout_ms`` is stopped and the
request answered 503 ``query_timeout`` with ``Retry-After`` — on SQLite (a real slow statement: figures over a large
index) and PostgreSQL (a statement waiting on a lock), through SQLAlchemy (the figures' snapshot) and through the
drivers (``api.deps.IndexReader``'s one-statement reads) —; a pool with no free connection is a fast 503
``overloaded``; any other database failure is still a 500."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import text

from api.app import create_app
from api.errors import OVERLOADED_RETRY_AFTER, QUERY_TIMEOUT_RETRY_AFTER
from api.settings import ApiSettings
from ledger.index.cells import rebuild as rebuild_cells
from ledger.store.db import open_store
from tests.support.postgres import admin, schema_url

METRICS = "/api/v1/metrics"
#: a fixed instant, so that every request asks the same figures
AS_OF = {"as_of": "2024-01-01T00:00:00Z"}
#: an instant late in a day of MANY_CASES: the figures read that day's tens of thousands of rows up to it (the days
#: before are read from the figure cells)
AS_OF_LATE_IN_A_DAY = {"as_of": "2023-11-15T23:00:00Z"}

#: many case rows of one agency, one a second, written straight into the index (with their figure cells)
MANY_CASES = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
INSERT INTO cases (agency_id, case_id, commitment_id, commitment_version, district, channel, opened_seq, opened_at,
                   status, closed_at, hold_seconds, due_at, fulfil_seconds, on_time, escalated, invalid_transitions,
                   last_seq)
SELECT 'SH-ROADS', randomblob(32), 'C' || (i % 7), 1, 'D' || (i % 13), 1 + i % 6, i, 1700000000 + i,
       CASE i % 3 WHEN 0 THEN 'open' ELSE 'fulfilled' END,
       CASE i % 3 WHEN 0 THEN NULL ELSE 1700003600 + i END, 0, 1700007200 + i,
       CASE i % 3 WHEN 0 THEN NULL ELSE 3600 END, CASE i % 3 WHEN 0 THEN NULL ELSE 1 END, 0, 0, i
FROM n
"""
#: many ledgers' sync states: the hot paths' one statement (``api.read.state.STATE_SQL``) reads every one
MANY_STATES = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO sync_state (contract_address, chain_id, deploy_block, last_block, entry_count, running_hash,
                        halted_reason, finalized_block)
SELECT printf('0x%040x', i), 1, 0, -1, 0, zeroblob(24), NULL, -1 FROM n
"""


def _sqlite_store(directory: Path, statement: str, count: int, *, cells: bool = False) -> str:
    url = f"sqlite:///{directory / 'index.sqlite3'}"
    store = open_store(url)
    try:
        with store.begin() as conn:
            conn.execute(text(statement), {"count": count})
            if cells:  # as the index would have kept them
                rebuild_cells(conn)
    finally:
        store.close()
    return url


@pytest.fixture(scope="module")
def many_cases(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _sqlite_store(tmp_path_factory.mktemp("many-cases"), MANY_CASES, 150_000, cells=True)


@pytest.fixture(scope="module")
def many_states(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _sqlite_store(tmp_path_factory.mktemp("many-states"), MANY_STATES, 200_000)


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[tuple[str, str]]:
    """A throwaway PostgreSQL schema with the index's tables: (its name, its URL)."""
    name = f"civic_overload_{uuid.uuid4().hex[:16]}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        url = schema_url(name)
        open_store(url).close()
        yield name, url
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@contextmanager
def _client(url: str, tmp_path: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_app(ApiSettings(store_url=url, data_dir=tmp_path, **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _assert_503(response: httpx.Response, code: str, retry_after: int) -> str:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(retry_after)
    error = response.json()["error"]
    assert error["code"] == code
    return str(error["message"])


def _assert_query_timeout(response: httpx.Response) -> None:
    message = _assert_503(response, "query_timeout", QUERY_TIMEOUT_RETRY_AFTER)
    assert "took too long" in message and "try again later" in message


@contextmanager
def _locked(schema: str, table: str) -> Iterator[None]:
    """Another session holds `table` locked against every read, as a long migration or maintenance would."""
    with admin() as holder, holder.transaction():
        holder.execute(sql.SQL("LOCK TABLE {}.{} IN ACCESS EXCLUSIVE MODE").format(
            sql.Identifier(schema), sql.Identifier(table)))
        yield


# --- the statement timeout --------------------------------------------------------------------------------------------


def test_figures_over_a_large_index_past_the_timeout_are_a_503_sqlite(many_cases: str, tmp_path: Path) -> None:
    with _client(many_cases, tmp_path, statement_timeout_ms=5) as client:
        started = time.monotonic()
        _assert_query_timeout(client.get(METRICS, params=AS_OF_LATE_IN_A_DAY))
        assert time.monotonic() - started < 5
        _assert_query_timeout(client.get("/api/v1/scorecards", params=AS_OF_LATE_IN_A_DAY))
        # the failure was not kept: the same request is stopped again, not answered from the figures' cache
        _assert_query_timeout(client.get(METRICS, params=AS_OF_LATE_IN_A_DAY))
    # without the bound, the same figures are computed (the statement is slow, not failing)
    with _client(many_cases, tmp_path, statement_timeout_ms=0) as client:
        answer = client.get(METRICS, params=AS_OF)
        assert answer.status_code == 200, answer.text
        assert answer.json()["metrics"]["cases_opened"] == 150_000


def test_a_slow_one_statement_read_past_the_timeout_is_a_503_sqlite(many_states: str, tmp_path: Path) -> None:
    """The hot paths read through the driver (``api.read._common.single_read``): its sqlite3 error maps the same."""
    with _client(many_states, tmp_path, statement_timeout_ms=5) as client:
        _assert_query_timeout(client.get(METRICS, params=AS_OF))
        _assert_query_timeout(client.get("/api/v1/scorecards", params=AS_OF))


def test_a_read_waiting_past_the_timeout_is_a_503_postgresql(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    schema, url = pg_schema
    with _client(url, tmp_path, statement_timeout_ms=300) as client:
        assert client.get(METRICS, params=AS_OF).status_code == 200
        # the figures' snapshot (SQLAlchemy) waits on the cases
        with _locked(schema, "cases"):
            started = time.monotonic()
            _assert_query_timeout(client.get(METRICS, params={"as_of": "2024-01-02T00:00:00Z"}))
            assert 0.3 <= time.monotonic() - started < 5
        # the hot paths' asynchronous reader (psycopg, its own connections) waits on the sync state
        with _locked(schema, "sync_state"):
            _assert_query_timeout(client.get(METRICS, params=AS_OF))
        # and once the lock is gone, both answer again
        assert client.get(METRICS, params={"as_of": "2024-01-02T00:00:00Z"}).status_code == 200
        assert client.get(METRICS, params=AS_OF).status_code == 200


# --- the pool, and the errors that are neither ------------------------------------------------------------------------


def test_no_free_connection_is_a_fast_503_overloaded(many_states: str, tmp_path: Path) -> None:
    with _client(many_states, tmp_path) as client:
        app: Any = client.app
        served = app.state.store
        assert served.engine.pool.timeout() == 5  # the API waits 5 s for a connection, not SQLAlchemy's 30
        # the same store with a pool that waits 0.2 s, every one of its connections taken by other work
        busy = open_store(many_states, pool_timeout=0.2)
        taken: list[Any] = []
        try:
            while len(taken) < 15:  # SQLAlchemy's pool: 5, and 10 beyond
                taken.append(busy.engine.connect())
            app.state.store = busy
            started = time.monotonic()
            message = _assert_503(client.get(METRICS, params=AS_OF), "overloaded", OVERLOADED_RETRY_AFTER)
            assert time.monotonic() - started < 2
            assert "too many requests at once" in message
        finally:
            app.state.store = served
            for conn in taken:
                conn.close()
            busy.close()


def test_other_database_failures_are_still_500(tmp_path: Path) -> None:
    url = _sqlite_store(tmp_path, "DROP TABLE cases", 0)
    with _client(url, tmp_path) as client:
        response = client.get(METRICS, params=AS_OF)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
