"""Open the index: an SQLAlchemy engine on a SQLite file (the default) or PostgreSQL, migrated to the latest schema.

``open_store(url)`` is the one way in. It normalises the URL (plain ``postgresql://`` uses psycopg 3, the driver
installed), sets SQLite up for an indexer and readers side by side (WAL, foreign keys on, a busy timeout, a bounded
WAL), and runs the Alembic migrations in ``ledger/store/migrations`` up to head, under a lock on PostgreSQL so that
two processes opening a fresh database do not both create it. The URL's password never appears in a repr or a log
line.

A store opened for serving (the API) may bound how long one statement runs (``statement_timeout_ms``): PostgreSQL's
``statement_timeout`` on each of its connections, SQLite's progress handler interrupting a call into SQLite that runs
past its deadline. Either way the statement fails (``psycopg.errors.QueryCanceled``, ``sqlite3.OperationalError``
"interrupted"; :func:`is_statement_timeout` tells them), ending a PostgreSQL transaction as any error does (a SQLite
one goes on). The indexer, the CLI and the auditor open theirs without. A serving store's pool also waits only
``pool_timeout`` seconds for a free connection.

Long readers keep SQLite's WAL from being reset, so it would grow while they overlap; the indexer calls
:meth:`Store.bound_wal` after each commit, which checkpoints the WAL (and truncates it) once it passes
:data:`WAL_CHECKPOINT_BYTES`, waiting only briefly for readers.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from ledger.store.schema import metadata

log = logging.getLogger(__name__)

#: where the migration environment lives, as a package resource (so it ships inside the package)
MIGRATIONS = "ledger.store:migrations"
#: pg_advisory_lock key taken while migrating ("civicled" in ASCII, any fixed number would do)
_PG_MIGRATION_LOCK = 0x636976696C656400 >> 1
#: SQLSTATE of a statement cancelled, by statement_timeout among others (PostgreSQL Appendix A: query_canceled)
_PG_QUERY_CANCELED = "57014"

#: SQLite: how long a connection waits for a lock (the writer's, or a checkpoint's) before failing
_BUSY_TIMEOUT_MS = 30_000
#: SQLite: the size the WAL is cut back to when it is reset after a checkpoint (``PRAGMA journal_size_limit``)
JOURNAL_SIZE_LIMIT = 64 * 2**20
#: SQLite: past this size of ``<db>-wal``, :meth:`Store.bound_wal` checkpoints and truncates it
WAL_CHECKPOINT_BYTES = 32 * 2**20
#: how long that checkpoint waits for readers on an older snapshot (and another writer) before giving up for now
CHECKPOINT_BUSY_MS = 200
#: after a checkpoint that could not complete, the seconds before :meth:`Store.bound_wal` tries again
CHECKPOINT_RETRY_SECONDS = 5.0
#: SQLite virtual-machine instructions between two looks at a statement's deadline: about 12 ms of work (SQLite
#: runs some 80 million a second here). Each look is a Python call, which must take the GIL back from the threads
#: serving other requests: measured on an aggregate over 400,000 rows while another thread ran Python, looking every
#: 100,000 instructions cost 19%, every 300,000 15%, every 1,000,000 nothing measurable (single-threaded: 2.6% every
#: 1,000, about 1% every 10,000, nothing measurable from 100,000 on). Short statements run fewer instructions than
#: this and are never looked at.
PROGRESS_INSTRUCTIONS = 1_000_000


def default_url(data_dir: Path) -> str:
    """The default store: a SQLite file in the data directory."""
    return f"sqlite:///{Path(data_dir).resolve() / 'index.sqlite3'}"


def normalize_url(url: str) -> str:
    """Pick the installed driver for PostgreSQL URLs given without one (``postgres://`` included)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Store:
    """The index database: an engine on the migrated schema. Use :meth:`begin` for a transaction."""

    def __init__(self, engine: Engine, *, statement_timeout_ms: int = 0) -> None:
        self.engine = engine
        #: the longest one statement on this store's connections may run (0: no limit; :func:`open_store`)
        self.statement_timeout_ms = statement_timeout_ms
        self._wal_retry_at = 0.0

    @property
    def url(self) -> str:
        """The database URL with its password masked (safe to show and log)."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    def connect(self) -> Connection:
        return self.engine.connect()

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, ordered by primary key (compared in Python, so SQLite and PostgreSQL order
        alike whatever their collations): two stores built from the same chain dump equal."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in metadata.sorted_tables:
                key = [table.columns.keys().index(c.name) for c in table.primary_key.columns]
                rows = [tuple(row) for row in conn.execute(select(table))]
                rows.sort(key=lambda row: tuple(row[i] for i in key))
                out[table.name] = rows
        return out

    def drop(self) -> None:
        """Drop every table of the index (and Alembic's version table): the index is rebuilt by a re-sync.
        Reopen with :func:`open_store` to create the schema again."""
        with self.engine.begin() as conn:
            metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        log.warning("dropped every table of the store at %s", self.url)

    def bound_wal(self, limit: int | None = None) -> bool | None:
        """Checkpoint a SQLite file store's WAL and truncate it when it is larger than `limit` bytes (default
        :data:`WAL_CHECKPOINT_BYTES`); call it after a write transaction (the indexer does after each range). The
        checkpoint waits at most :data:`CHECKPOINT_BUSY_MS` for readers still on an older snapshot (and for another
        writer), so it never holds the caller long; one that could not complete is tried again, not sooner than
        :data:`CHECKPOINT_RETRY_SECONDS` later. True when the WAL was truncated, False when it could not be yet,
        None when there was nothing to do (small WAL, not a SQLite file, or waiting to retry)."""
        limit = WAL_CHECKPOINT_BYTES if limit is None else limit
        wal = self._wal_path()
        if wal is None or time.monotonic() < self._wal_retry_at:
            return None
        try:
            if wal.stat().st_size <= limit:
                return None
        except FileNotFoundError:
            return None
        pooled = self.engine.raw_connection()
        try:
            dbapi = pooled.driver_connection
            assert dbapi is not None
            busy = None
            try:
                dbapi.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
                busy, frames, done = dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.OperationalError as exc:  # "database is locked": another writer held on
                reason = str(exc)
            else:
                reason = f"{frames - done} of {frames} frames still read by older snapshots"
            finally:
                dbapi.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        finally:
            pooled.close()
        if busy == 0:
            self._wal_retry_at = 0.0
            return True
        self._wal_retry_at = time.monotonic() + CHECKPOINT_RETRY_SECONDS
        log.debug("the WAL of %s could not be checkpointed yet (%s); trying again later", wal.name, reason)
        return False

    def _wal_path(self) -> Path | None:
        database = self.engine.url.database
        if self.dialect != "sqlite" or database in (None, "", ":memory:"):
            return None
        return Path(f"{database}-wal")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (the API) never block the indexer's writes, nor it theirs. NORMAL sync is durable at every
    # checkpoint and never corrupts; a power cut can lose the last commits, which a re-sync brings back.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    # a WAL that grew while readers held it back is cut back to this when it is next reset
    cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    cursor.close()


# --- statement timeouts -----------------------------------------------------------------------------------------------


class _TimedCursor(sqlite3.Cursor):
    """A cursor whose every call into SQLite (execute, fetch) restarts its connection's clock: the timeout bounds
    one call, as PostgreSQL's bounds one statement (or one FETCH of a server-side cursor), so a result read a batch at
    a time for minutes (an export) is not cut short, while any one step that runs too long is."""

    connection: _TimedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _TimedCursor:
        self.connection.start()
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _TimedCursor:
        self.connection.start()
        return super().executemany(sql, seq_of_parameters)

    def fetchone(self) -> Any:
        self.connection.start()
        return super().fetchone()

    def fetchmany(self, *args: Any, **kwargs: Any) -> list[Any]:
        self.connection.start()
        return super().fetchmany(*args, **kwargs)

    def fetchall(self) -> list[Any]:
        self.connection.start()
        return super().fetchall()

    def __next__(self) -> Any:
        self.connection.start()
        return super().__next__()


class _TimedConnection(sqlite3.Connection):
    """A SQLite connection whose statements are interrupted past :attr:`timeout` seconds (set when it connects;
    infinite: no limit) by its progress handler, looked at every :data:`PROGRESS_INSTRUCTIONS` instructions."""

    timeout = math.inf
    deadline = math.inf

    def start(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def cursor(self, factory: Any = _TimedCursor) -> Any:
        return super().cursor(factory)

    # sqlite3's shortcuts open a plain cursor: through ours instead
    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, seq_of_parameters)

    def commit(self) -> None:
        self.start()
        super().commit()

    def rollback(self) -> None:
        self.start()
        super().rollback()


def _sqlite_timeout(timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.timeout = timeout_ms / 1000
        dbapi_connection.set_progress_handler(dbapi_connection.expired, PROGRESS_INSTRUCTIONS)

    return on_connect


def _with_pg_options(sa_url: Any, options: str) -> Any:
    """``sa_url`` with libpq ``options`` added to those it has: each connection made from it, the engine's pool's
    and any made from ``dialect.create_connect_args(url)`` (``api.deps.IndexReader``), starts with them."""
    given = sa_url.query.get("options")
    if isinstance(given, tuple):
        given = " ".join(given)
    return sa_url.update_query_dict({"options": f"{given} {options}" if given else options})


def is_statement_timeout(exc: BaseException) -> bool:
    """Whether `exc` (a driver's error, or SQLAlchemy's wrapping one) is a statement stopped by the statement
    timeout: PostgreSQL's ``query_canceled`` or SQLite's interruption."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        exc = orig
    if getattr(exc, "sqlstate", None) == _PG_QUERY_CANCELED:
        return True
    return isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted"


@contextmanager
def _no_statement_timeout(conn: Connection) -> Iterator[None]:
    """No statement timeout in `conn`'s transaction (migrations, and waiting for another process's)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL statement_timeout = 0"))  # until the transaction ends
        yield
        return
    dbapi = conn.connection.driver_connection
    if not isinstance(dbapi, _TimedConnection):
        yield
        return
    timeout, dbapi.timeout = dbapi.timeout, math.inf
    try:
        yield
    finally:
        dbapi.timeout = timeout


def open_store(
    url: str,
    *,
    migrate: bool = True,
    echo: bool = False,
    statement_timeout_ms: int = 0,
    pool_timeout: float | None = None,
) -> Store:
    """Open (and unless told otherwise, migrate to head) the store at `url`: ``sqlite:///path/file.sqlite3``,
    ``sqlite://`` (in memory, one shared connection) or ``postgresql://user:password@host/db``.

    For serving: ``statement_timeout_ms`` bounds how long one statement runs on every connection of the store (0:
    no limit; migrating is not bounded), and ``pool_timeout`` how long taking a connection from a full pool waits
    before ``sqlalchemy.exc.TimeoutError`` (None: SQLAlchemy's 30 s)."""
    sa_url = make_url(normalize_url(url))
    kwargs: dict[str, Any] = {"echo": echo}
    connect_args: dict[str, Any] = {}
    sqlite = sa_url.get_backend_name() == "sqlite"
    if sqlite and sa_url.database in (None, "", ":memory:"):
        # One connection for every user, or each would see its own empty database.
        kwargs.update(poolclass=StaticPool)
        connect_args["check_same_thread"] = False
    else:
        if sqlite and sa_url.database:
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        if pool_timeout is not None:
            kwargs["pool_timeout"] = pool_timeout
    if statement_timeout_ms:
        if sqlite:
            connect_args["factory"] = _TimedConnection
        else:
            sa_url = _with_pg_options(sa_url, f"-c statement_timeout={int(statement_timeout_ms)}")
    if connect_args:
        kwargs["connect_args"] = connect_args
    # hide_parameters: a statement's values (a receipt address, a case id) never reach an exception's text, nor a log
    engine = create_engine(sa_url, hide_parameters=True, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if statement_timeout_ms:
            event.listen(engine, "connect", _sqlite_timeout(statement_timeout_ms))
    store = Store(engine, statement_timeout_ms=statement_timeout_ms)
    if migrate:
        upgrade(store)
    return store


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade(store: Store, revision: str = "head") -> None:
    """Migrate the store's schema (nothing to do when it is current)."""
    config = alembic_config()
    with store.engine.begin() as conn, _no_statement_timeout(conn) if store.statement_timeout_ms else nullcontext():
        if conn.dialect.name == "postgresql":
            # Released when the transaction ends; DDL on PostgreSQL is transactional, so all or nothing.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head_revision() and revision == "head":
            return
        log.info("migrating the store at %s from %s to %s", store.url, current or "an empty database", revision)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
