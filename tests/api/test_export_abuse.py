"""Bulk exports under abuse: many slow readers, readers that stall or go away, and more exports than the server will
stream at once. The API is served by uvicorn on a loopback port and read through real sockets; a slow reader asks for
an export, reads its headers and stops reading, so the server's writes back up and its stream waits on the client.

What must hold: a reader holds no connection of the pool nor any transaction while it stalls (other requests are
answered at once, and SQLite can checkpoint its WAL), exports beyond the caps are refused (429 per client, 503 per
server, with Retry-After), every slot is given back (stream done, client gone, client stalled past the send timeout),
and an export stays exact: the same bytes read in many chunks as in one, on SQLite and PostgreSQL, and an entries
export cut short rather than mixing two histories when the index is rolled back under it."""

from __future__ import annotations

import dataclasses
import gc
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from api.app import create_app
from api.errors import ApiError
from api.read import exports as read_exports
from api.routes import exports
from api.routes.exports import ExportResponse, ExportSlots, export_slots
from api.settings import ApiSettings
from ledger.index.sync import Indexer
from ledger.store.db import open_store
from ledger.store.schema import cases, entries
from tests.support import everything as ev
from tests.support.city import IndexedCity
from tests.support.city import count as count_rows
from tests.support.pool import wait_for

V1 = "/api/v1"
ENTRIES = f"{V1}/export/entries.jsonl"
#: the send buffer of the server's sockets: small, so a reader that stops reading stalls the stream after a few
#: chunks instead of after the megabytes the kernel would otherwise buffer
SERVER_SNDBUF = 8192
#: the receive buffer of a slow reader's socket, for the same reason
CLIENT_RCVBUF = 4096
#: the database pool of a file-backed store (SQLAlchemy's QueuePool: 5 and 10 more): more slow readers than this
POOL_SIZE = 5 + 10


class SlowReader:
    """An export asked for on a socket of its own, whose headers are read and then nothing more until told."""

    def __init__(self, port: int, path: str = ENTRIES, forwarded_for: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
        self.sock.settimeout(20)
        self.sock.connect(("127.0.0.1", port))
        extra = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n".encode())
        self.data = b""
        while b"\r\n\r\n" not in self.data:
            got = self.sock.recv(1024)
            assert got, "the server closed the connection before its headers"
            self.data += got
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.headers = head.decode("latin-1").lower()

    def read_to_end(self) -> bytes:
        """Everything the server sends until it closes the connection (the raw, chunked body)."""
        while got := self.sock.recv(65536):
            self.data += got
        return self.data

    def close(self) -> None:
        self.sock.close()


@dataclass
class Served:
    """An app served on a loopback port, and the slow readers opened on it (closed before the server stops: uvicorn
    waits for the responses still streaming)."""

    app: FastAPI
    port: int
    readers: list[SlowReader] = field(default_factory=list)

    def reader(self, path: str = ENTRIES, forwarded_for: str | None = None) -> SlowReader:
        reader = SlowReader(self.port, path, forwarded_for)
        self.readers.append(reader)
        return reader

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def running(self) -> int:
        """Exports streaming now."""
        return export_slots(self.app).running


@contextmanager
def served(app: FastAPI) -> Iterator[Served]:
    """``app`` served by uvicorn in a thread on a free loopback port. Unlike ``tests.support.browser.serve_app`` the
    listening socket has a small send buffer (inherited by each connection, see :data:`SERVER_SNDBUF`) and uvicorn
    leaves logging as it is, so that its records reach ``caplog``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SNDBUF)
    sock.bind(("127.0.0.1", 0))
    # uvicorn's own proxy handling off, as ``python -m api`` serves: the app decides whom to believe (``api.clients``)
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on", proxy_headers=False,
                            timeout_graceful_shutdown=5)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "the server to start", timeout=15)
    assert thread.is_alive(), "the server did not start"
    running = Served(app, sock.getsockname()[1])
    try:
        yield running
    finally:
        for reader in running.readers:
            reader.close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def complete(raw: bytes) -> bool:
    """Whether a chunked body ends with its last chunk (not cut short)."""
    return raw.endswith(b"\r\n0\r\n\r\n") or raw == b"0\r\n\r\n"


def dechunk(raw: bytes) -> bytes:
    """The body of a complete chunked transfer."""
    body, rest = b"", raw
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", "trailing bytes after the last chunk"
            return body
        body, rest = body + rest[:size], rest[size + 2 :]


def settings_of(base: ApiSettings, **changes: Any) -> ApiSettings:
    """``base`` with ``changes``; ``send_timeout`` goes to ``extra["export_send_timeout"]``."""
    extra = dict(base.extra)
    if "send_timeout" in changes:
        extra["export_send_timeout"] = str(changes.pop("send_timeout"))
    return dataclasses.replace(base, extra=extra, **changes)


def no_traceback(records: list[logging.LogRecord]) -> None:
    for record in records:
        assert record.exc_info is None, record.getMessage()
        assert "Exception in ASGI application" not in record.getMessage()


def a_case(store: Any) -> tuple[str, str]:
    with store.connect() as conn:
        row = conn.execute(select(cases.c.agency_id, cases.c.case_id).limit(1)).one()
    return row.agency_id, "0x" + bytes(row.case_id).hex()


# --- (a) many slow readers, other requests still answered -------------------------------------------------------------


def test_slow_readers_beyond_the_pool_hold_no_connection_and_others_are_served(
    api_settings: ApiSettings, city_store: Any
) -> None:
    """More stalled exports than the database pool has connections: none of them holds one, and a case lookup, the
    metrics and one more export are answered at once (before, each stalled export held pooled connections, and the
    requests after them waited 30 s for one)."""
    n = POOL_SIZE + 5
    app = create_app(settings_of(api_settings, max_exports=n + 4, max_exports_per_client=n + 4, send_timeout=60))
    agency, case_id = a_case(city_store)
    with served(app) as server:
        readers = [server.reader() for _ in range(n)]
        assert [r.status for r in readers] == [200] * n
        assert server.running == n
        pool = app.state.store.engine.pool
        wait_for(lambda: pool.checkedout() == 0, "no pooled connection held by the stalled exports", timeout=10)
        with httpx.Client(timeout=20) as http:
            for path in (f"{V1}/cases/{agency}/{case_id}", f"{V1}/metrics", f"{V1}/export/cases.csv"):
                started = time.monotonic()
                answer = http.get(server.url(path))
                took = time.monotonic() - started
                assert answer.status_code == 200, (path, answer.text[:200])
                assert took < 5, f"{path} took {took:.1f} s while {n} exports stalled"
        # the export answered above gave its slot back; the stalled ones hold theirs, and still no connection
        wait_for(lambda: server.running == n, "the finished export's slot given back")
        assert pool.checkedout() == 0
        for reader in readers:
            reader.close()
        wait_for(lambda: server.running == 0, "every slot given back once the readers went away", timeout=10)


# --- (b) the caps -----------------------------------------------------------------------------------------------------


def test_caps_per_client_and_per_server(api_settings: ApiSettings) -> None:
    """One export at a time per client (an IPv4 address, an IPv6 /64, behind a trusted proxy the address it
    forwarded), two per server: beyond, 429 rate_limited (budget exports) or 503 exports_busy, with Retry-After;
    HEAD and revalidation take no slot."""
    app = create_app(settings_of(api_settings, max_exports=2, max_exports_per_client=1,
                                 trusted_proxies=("127.0.0.1",), send_timeout=60))  # fmt: skip
    with served(app) as server, httpx.Client(base_url=server.url(""), timeout=20) as http:

        def get(who: str, path: str = ENTRIES, **headers: str) -> httpx.Response:
            return http.get(path, headers={"X-Forwarded-For": who, **headers})

        first = server.reader(forwarded_for="198.51.100.7")
        assert first.status == 200
        again = get("198.51.100.7", f"{V1}/export/cases.csv")
        assert again.status_code == 429, again.text
        error = again.json()["error"]
        assert error["code"] == "rate_limited" and error["budget"] == "exports"
        assert int(again.headers["retry-after"]) > 0

        v6 = server.reader(forwarded_for="2001:db8:5:6::1")
        assert v6.status == 200
        same_64 = get("2001:db8:5:6::ffff")
        assert same_64.status_code == 429 and same_64.json()["error"]["budget"] == "exports"
        assert server.running == 2

        busy = get("203.0.113.9")
        assert busy.status_code == 503, busy.text
        assert busy.json()["error"]["code"] == "exports_busy"
        assert int(busy.headers["retry-after"]) > 0
        # no stream, no slot: HEAD, and a revalidation answered 304
        head = http.head(ENTRIES, headers={"X-Forwarded-For": "203.0.113.9"})
        assert head.status_code == 200
        assert get("203.0.113.9", **{"If-None-Match": head.headers["etag"]}).status_code == 304
        assert server.running == 2

        first.close()
        wait_for(lambda: server.running == 1, "the slot of the client that went away")
        done = get("203.0.113.9", f"{V1}/export/cases.csv")
        assert done.status_code == 200 and done.text.startswith("agency_id,case_id,")
        wait_for(lambda: server.running == 1, "its slot given back when its stream ended")
        v6.close()
        wait_for(lambda: server.running == 0, "every slot given back")


def test_the_slots_count_per_client_and_in_total() -> None:
    slots = ExportSlots(total=3, per_client=2)
    a1, a2 = slots.take("a"), slots.take("a")
    with pytest.raises(ApiError) as refused:
        slots.take("a")
    assert refused.value.code == "rate_limited" and refused.value.extra["budget"] == "exports"
    b1 = slots.take("b")
    with pytest.raises(ApiError) as busy:
        slots.take("c")
    assert busy.value.code == "exports_busy" and busy.value.headers["Retry-After"]
    a1.release()
    a1.release()  # once only
    assert (slots.running, slots.of("a")) == (2, 1)
    c1 = slots.take("c")
    for slot in (a2, b1, c1):
        slot.release()
    assert slots.running == 0
    unlimited = ExportSlots(total=0, per_client=0)
    assert len([unlimited.take("a") for _ in range(50)]) == unlimited.running == 50


# --- (c) slots given back ---------------------------------------------------------------------------------------------


def test_a_reader_stalled_past_the_send_timeout_loses_its_slot(
    api_settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that takes no chunk for the send timeout has its connection closed and its slot given back, with one
    warning and no traceback in the log; a client that reads on is served in full."""
    app = create_app(settings_of(api_settings, max_exports=4, max_exports_per_client=4, send_timeout=0.5))
    with served(app) as server:
        stalled = server.reader()
        wait_for(lambda: server.running == 0, "the stalled export's slot given back", timeout=10)
        raw = stalled.read_to_end()  # the server closed the connection: the body ends here, cut short
        assert raw and not complete(raw)
        with httpx.Client(timeout=20) as http:
            whole = http.get(server.url(ENTRIES))
        assert whole.status_code == 200 and whole.text.endswith("\n")
        wait_for(lambda: server.running == 0, "the reader's slot given back")
    timeouts = [r for r in caplog.records if r.name == exports.__name__]
    assert len(timeouts) == 1 and timeouts[0].levelno == logging.WARNING
    assert "took nothing for 0.5 s" in timeouts[0].getMessage()
    no_traceback(caplog.records)


def test_slots_are_given_back_when_done_gone_or_never_sent(
    api_settings: ApiSettings, city_store: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A slot is given back when the stream ends, when its client goes away mid-stream (and the rows are no longer
    read for nobody), and when a response is made but never sent."""
    monkeypatch.setattr(read_exports, "EXPORT_BATCH", 10)
    monkeypatch.setattr(exports, "EXPORT_CHUNK_ROWS", 50)
    app = create_app(settings_of(api_settings, max_exports=1, max_exports_per_client=1, send_timeout=60))
    chunks_read: list[int] = []
    with served(app) as server:
        # done: read to the end
        with httpx.Client(timeout=20) as http:
            assert http.get(server.url(f"{V1}/export/cases.jsonl")).status_code == 200
        wait_for(lambda: server.running == 0, "the slot given back when the stream ended")
        # gone: the client closes its connection mid-stream

        def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if "ORDER BY entries.seq" in statement:
                chunks_read.append(1)

        event.listen(app.state.store.engine, "before_cursor_execute", count)
        gone = server.reader()
        assert server.running == 1
        gone.sock.recv(100)  # a few bytes of the body, then away
        gone.close()
        wait_for(lambda: server.running == 0, "the slot of the client that went away", timeout=10)
        time.sleep(0.2)
        assert 0 < len(chunks_read) < count_rows(city_store, entries) / 10 / 2, "rows read for a client gone"
        # and the one slot is free again for the next
        again = server.reader()
        assert again.status == 200
        again.close()
        wait_for(lambda: server.running == 0, "the slot given back again", timeout=10)
    no_traceback(caplog.records)
    # never sent: a response made but never called (its caller failed first) gives its slot back when collected
    slots = ExportSlots(total=1, per_client=1)
    response = ExportResponse(never_read(), slots.take("192.0.2.1"), send_timeout=1, media_type="text/csv",
                              headers={})  # fmt: skip
    assert slots.running == 1
    del response
    gc.collect()
    assert slots.running == 0 and slots.of("192.0.2.1") == 0


def never_read() -> Generator[str, None, None]:
    yield "never read\n"


# --- (d) exact --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def city_client(
    request: pytest.FixtureRequest, indexed_city: IndexedCity, api_settings: ApiSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    """A client of the API on the demo city, indexed into SQLite (the shared index) or into PostgreSQL (afresh)."""
    if request.param == "sqlite":
        with TestClient(create_app(api_settings)) as client:
            yield client
        return
    with ev.store_url("postgresql", tmp_path_factory.mktemp("city-pg")) as url:
        store = open_store(url)
        try:
            Indexer(indexed_city.chain, indexed_city.ledger.address, store, confirmations=0).sync()
        finally:
            store.close()
        with TestClient(create_app(dataclasses.replace(api_settings, store_url=url))) as client:
            yield client


@pytest.mark.parametrize("path", ["entries.csv", "entries.jsonl", "cases.csv", "cases.jsonl"])
def test_an_export_read_in_many_chunks_is_the_export_read_in_one(
    city_client: TestClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The same bytes read in chunks of 7 rows (each its own snapshot, keyset-paginated) as in one chunk (one
    snapshot: the export as it was read before it read in chunks), whole and of one agency; the cases in the
    documented order (agencies by code point, then case ids by their bytes), on SQLite and PostgreSQL alike."""
    url = f"{V1}/export/{path}"
    answers = {}
    for agency in (None, "DEMO-ROADS"):
        params = {"agency_id": agency} if agency else {}
        monkeypatch.setattr(read_exports, "EXPORT_BATCH", 10**9)
        whole = city_client.get(url, params=params)
        monkeypatch.setattr(read_exports, "EXPORT_BATCH", 7)
        monkeypatch.setattr(exports, "EXPORT_CHUNK_ROWS", 3)
        chunked = city_client.get(url, params=params)
        monkeypatch.undo()
        assert whole.status_code == chunked.status_code == 200
        assert chunked.content == whole.content and len(whole.content) > 1000
        answers[agency] = whole.text
    if path == "cases.csv":
        everyone = [line.split(",")[:2] for line in answers[None].splitlines()[1:]]
        assert len({agency for agency, _ in everyone}) > 1  # several agencies: the keyset goes from one to the next
        order = [(agency.encode(), bytes.fromhex(case_id[2:])) for agency, case_id in everyone]
        assert order == sorted(order) and len(set(order)) == len(order)
        roads = [line.split(",")[:2] for line in answers["DEMO-ROADS"].splitlines()[1:]]
        assert roads == [key for key in everyone if key[0] == "DEMO-ROADS"]


# --- (e) short transactions, and the position kept --------------------------------------------------------------------


@pytest.fixture
def index_copy(indexed_city: IndexedCity, tmp_path: Path) -> Path:
    """A copy of the demo city's SQLite index, to change under an export."""
    source_path = make_url(indexed_city.store_url).database
    assert source_path is not None
    copy = tmp_path / "index.sqlite"
    source, target = sqlite3.connect(source_path), sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return copy


def change_index(path: Path, statements: list[str]) -> None:
    """Change the index as the indexer does: in one transaction, beside its readers."""
    db = sqlite3.connect(path)
    try:
        with db:
            for statement in statements:
                db.execute(statement)
    finally:
        db.close()


def test_sqlite_checkpoints_while_an_export_stalls(api_settings: ApiSettings, index_copy: Path) -> None:
    """A stalled export holds no read transaction: a TRUNCATE checkpoint (which waits for every reader still using the
    WAL) succeeds at once, so the WAL cannot grow without bound behind a slow reader; the export then goes on to its
    end."""
    app = create_app(settings_of(api_settings, store_url=f"sqlite:///{index_copy}", send_timeout=60))
    with served(app) as server:
        assert httpx.head(server.url(ENTRIES)).status_code == 200  # the app's pool holds the database open
        # a write beside it: the WAL holds frames, which a reader's snapshot would keep a checkpoint from resetting
        change_index(index_copy, ["CREATE TABLE scratch (x)", "INSERT INTO scratch VALUES (1)"])
        assert index_copy.with_name("index.sqlite-wal").stat().st_size > 0
        stalled = server.reader()
        time.sleep(0.3)  # a few chunks read, then its writes back up: it waits on the client
        assert server.running == 1
        checkpoint = sqlite3.connect(index_copy, timeout=2)
        try:
            busy, _, _ = checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            checkpoint.close()
        assert busy == 0
        assert server.running == 1
        assert complete(stalled.read_to_end())


@pytest.mark.parametrize(
    ("change", "cut_short"),
    [
        # the index moves on (blocks without entries, then finality): the export keeps its position
        (["UPDATE sync_state SET last_block = last_block + 5, finalized_block = finalized_block + 5"], False),
        # a reorganisation re-included the last entry of the export's position in another block
        (["UPDATE entries SET block_hash = zeroblob(32) WHERE seq = (SELECT entry_count - 1 FROM sync_state)"], True),
        # a reorganisation rolled the index back below what was already read (before it is synced again)
        (["DELETE FROM entries WHERE seq >= 600", "UPDATE sync_state SET entry_count = 600"], True),
    ],
    ids=["advanced", "reincluded", "rolled-back"],
)
def test_an_entries_export_keeps_its_position_or_is_cut_short(
    api_settings: ApiSettings, index_copy: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    change: list[str], cut_short: bool,
) -> None:
    """The index changes while an entries export stalls part-way. Moving on, the export is still exactly the position
    it started from (the same bytes as without the change); rolled back below it, the stream is cut short (an
    incomplete body: the client knows) rather than mixing two histories."""
    monkeypatch.setattr(read_exports, "EXPORT_BATCH", 100)
    settings = settings_of(api_settings, store_url=f"sqlite:///{index_copy}", send_timeout=60)
    with TestClient(create_app(settings)) as client:
        before = client.get(ENTRIES).content
    app = create_app(settings)
    with served(app) as server:
        reader = server.reader()
        time.sleep(0.3)  # a few chunks read, then its writes back up
        assert server.running == 1
        change_index(index_copy, change)
        raw = reader.read_to_end()
        wait_for(lambda: server.running == 0, "the slot given back")
    if cut_short:
        assert not complete(raw) and len(raw) < len(before)
        assert any("rolled back below its position" in r.getMessage() for r in caplog.records)
    else:
        assert complete(raw) and dechunk(raw) == before
    no_traceback(caplog.records)
