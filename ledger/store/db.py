"""Open the index: an SQLAlchemy engine on a SQLite file (the default) or PostgreSQL, migrated to the latest schema.

``open_store(url)`` is the one way in. It normalises the URL (plain ``postgresql://`` uses psycopg 3, the driver
installed), sets SQLite up for an indexer and readers side by side (WAL, foreign keys on, a busy timeout), and runs
the Alembic migrations in ``ledger/store/migrations`` up to head, under a lock on PostgreSQL so that two processes
opening a fresh database do not both create it. The URL's password never appears in a repr or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_store(url: str, *, migrate: bool = True, echo: bool = False) -> Store:
    """Open (and unless told otherwise, migrate to head) the store at `url`: ``sqlite:///path/file.sqlite3``,
    ``sqlite://`` (in memory, one shared connection) or ``postgresql://user:password@host/db``."""
    sa_url = make_url(normalize_url(url))
    kwargs: dict[str, Any] = {"echo": echo}
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database in (None, "", ":memory:"):
            # One connection for every user, or each would see its own empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sa_url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine)
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
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Released when the transaction ends; DDL on PostgreSQL is transactional, so all or nothing.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head_revision() and revision == "head":
            return
        log.info("migrating the store at %s from %s to %s", store.url, current or "an empty database", revision)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
