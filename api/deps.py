"""Dependencies shared by the routers: settings, a read connection to the index, the figures cache, the hot paths'
reader. Each is one of the app's (``request.app.state``); declare it as a parameter of the annotated type, e.g.
``settings: Settings``, ``conn: Snapshot``, ``cache: Figures``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from api.read.figures import FiguresCache
from api.settings import ApiSettings
from ledger.store.db import Store


async def get_settings(request: Request) -> ApiSettings:
    # asynchronous: a lookup, not worth a thread (FastAPI runs a plain function dependency in its thread pool)
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_conn(request: Request) -> Iterator[Connection]:
    """One connection (and so one consistent snapshot on PostgreSQL) per request; declare it with
    ``Depends(get_conn, scope="function")``, so that it is closed before the answer is sent (see :data:`Snapshot`)."""
    store: Store = request.app.state.store
    with store.engine.connect() as conn:
        yield conn


def get_snapshot(request: Request) -> Iterator[Connection]:
    """A read connection inside one transaction, so all of a request's queries see one state of the index while the
    indexer writes (``api.read._common.read_snapshot``)."""
    from api.read._common import read_snapshot

    with read_snapshot(request.app.state.store) as conn:
        yield conn


async def get_figures_cache(request: Request) -> FiguresCache:
    """The app's computed metrics and scorecards (``api.routes.public.register`` makes it)."""
    return request.app.state.figures_cache


#: the app's settings
Settings = Annotated[ApiSettings, Depends(get_settings)]
#: a read connection in one snapshot of the index, for the request (:func:`get_snapshot`). Closed when the endpoint
#: returns, before the answer is sent ("function" scope): a client reading slowly never holds a snapshot (on SQLite a
#: snapshot held stops the WAL from being checkpointed; on PostgreSQL it holds a pooled connection)
Snapshot = Annotated[Connection, Depends(get_snapshot, scope="function")]
#: the app's cache of computed figures (:func:`get_figures_cache`)
Figures = Annotated[FiguresCache, Depends(get_figures_cache)]


#: connections of each process's reader on PostgreSQL. One process runs Python one request at a time, so a few
#: statements in flight keep it busy; a request finding them all taken waits for one (never opening more: a
#: PostgreSQL connection costs a server process, and opening one costs more than a lookup). Override with
#: ``ApiSettings.extra["read_connections"]``.
READ_CONNECTIONS = 4


class IndexReader:
    """One-statement reads of the index for the hot paths (``api.read._common.single_read``'s statements), awaited.

    On PostgreSQL a few connections of its own, asynchronous (psycopg's ``AsyncConnection``) and in autocommit, so a
    read is one round trip during which the event loop serves other requests, with no thread hand-off; on SQLite the
    store's engine in the thread pool (an in-memory database exists only there, and SQLite has no asynchronous
    driver). Bound to the event loop it was first used on; :func:`index_reader` gives the app's."""

    def __init__(self, store: Store, connections: int) -> None:
        self.store = store
        self.loop = asyncio.get_running_loop()
        self.size = connections
        self._postgresql = store.dialect == "postgresql"
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._closed = False

    async def rows(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        """The rows of ``sql`` (``:name`` parameters)."""
        from api.read._common import compiled, single_read

        if not self._postgresql:
            return await run_in_threadpool(single_read, self.store.engine, sql, params)
        statement, _ = compiled(sql, self.store.engine.dialect)  # psycopg takes the parameters by name
        async with self._slots:
            while True:
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._connect()
                try:
                    async with conn.cursor() as cursor:
                        await cursor.execute(statement, params)
                        rows = await cursor.fetchall()
                except psycopg.OperationalError:
                    lost = conn.broken
                    conn.pgconn.finish()
                    if reused and lost:
                        continue  # an idle connection the server dropped (e.g. it restarted): once more, afresh
                    raise
                except BaseException:
                    # failed, or cancelled mid-statement: the connection's state is unknown, so it is not reused
                    conn.pgconn.finish()
                    raise
                if self._closed:
                    conn.pgconn.finish()
                else:
                    self._idle.append(conn)
                return rows

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        # the arguments the store's engine connects with (its URL, whatever the driver options given there)
        engine = self.store.engine
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        return await psycopg.AsyncConnection.connect(*args, **kwargs, autocommit=True)

    def close(self) -> None:
        """Close the idle connections (those in use are closed when they come back)."""
        self._closed = True
        while self._idle:
            self._idle.pop().pgconn.finish()


def index_reader(app: Any) -> IndexReader:
    """The app's :class:`IndexReader` for the running event loop (made on first use; a new one if the app is now
    served on another loop, e.g. by another test client)."""
    reader: IndexReader | None = getattr(app.state, "index_reader", None)
    if reader is None or reader.loop is not asyncio.get_running_loop():
        if reader is not None:
            reader.close()
        settings: ApiSettings = app.state.settings
        size = int(settings.extra.get("read_connections", READ_CONNECTIONS))
        reader = app.state.index_reader = IndexReader(app.state.store, size)
    return reader


def close_index_reader(app: Any) -> None:
    reader: IndexReader | None = getattr(app.state, "index_reader", None)
    app.state.index_reader = None
    if reader is not None:
        reader.close()
