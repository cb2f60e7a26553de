"""The store: Alembic migrations build exactly ``schema.py`` on SQLite and PostgreSQL; opening is idempotent; the
URL's password stays hidden; dumps are ordered alike on both databases."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, text

from ledger.store.db import head_revision, normalize_url, open_store
from ledger.store.schema import (
    FIGURE_INDEXES,
    GAP_INDEXES,
    STATISTICS,
    blocks,
    metadata,
    sync_state,
)


def _expression_index(name: str | None, kind: str) -> bool:
    return kind == "index" and name is not None and name.startswith(("ix_figure_time_", "ix_figure_value_",
                                                                      "ix_figure_gap_"))


def _diffs(url: str) -> list[object]:
    """What Alembic finds differs between the database and ``schema.py``. It cannot compare indexes on expressions
    (it reads them back as text): those are compared by name and expression below."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "compare_server_default": True,
                "include_name": lambda name, kind, _parents: not _expression_index(name, kind),
                "include_object": lambda _object, name, kind, _reflected, _to: not _expression_index(name, kind),
            })  # fmt: skip
            diffs = list(compare_metadata(context, metadata))
        postgresql_only = {index.name for index in FIGURE_INDEXES if index.dialect_options["postgresql"]["using"]}
        wanted = {index.name for index in (*FIGURE_INDEXES, *GAP_INDEXES)
                  if index.name and _expression_index(index.name, "index")
                  and (engine.dialect.name == "postgresql" or index.name not in postgresql_only)}
        listing = ("SELECT name FROM sqlite_master WHERE type = 'index'" if engine.dialect.name == "sqlite"
                   else "SELECT indexname FROM pg_indexes")  # the inspector leaves expressions out on SQLite
        with engine.connect() as conn:
            found = set(conn.execute(text(listing)).scalars())
        diffs += [("missing expression index", name) for name in sorted(wanted - found)]
        if engine.dialect.name == "postgresql":  # the extended statistics (ledger.store.schema.STATISTICS)
            with engine.connect() as conn:
                statistics = set(conn.execute(text("SELECT stxname FROM pg_statistic_ext")).scalars())
            named = [statement.split(" EXISTS ")[1].split()[0] for statement in STATISTICS]
            diffs += [("missing statistics", name) for name in named if name not in statistics]
        return diffs
    finally:
        engine.dispose()


def _schema(url: str) -> dict[str, object]:
    """Tables, columns (type, nullability), keys and indexes as the database reports them."""
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        out: dict[str, object] = {}
        for table in sorted(insp.get_table_names()):
            if table == "alembic_version":
                continue
            out[table] = (
                [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
                insp.get_pk_constraint(table)["constrained_columns"],
                sorted((tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in insp.get_foreign_keys(table)),
                sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)),
                sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
            )
        if engine.dialect.name == "postgresql":  # every index as PostgreSQL writes it: expressions, INCLUDE, WHERE
            with engine.connect() as conn:
                out["index definitions"] = sorted(conn.execute(text(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename != 'alembic_version'"
                )).scalars())
        return out
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_schema(store_url: str) -> None:
    store = open_store(store_url)
    assert store.revision() == head_revision()
    assert _diffs(store_url) == []
    store.close()


def test_create_all_equals_migrations(sqlite_url: Callable[[], str], pg_database: Callable[[], str]) -> None:
    """Reflected back, the migrated schema equals metadata.create_all's, on each database."""
    for make in (sqlite_url, pg_database):
        migrated, created = make(), make()
        open_store(migrated).close()
        engine = create_engine(created)
        metadata.create_all(engine)
        engine.dispose()
        assert _diffs(created) == []
        assert _schema(migrated) == _schema(created)


def test_open_is_idempotent_and_keeps_rows(store_url: str) -> None:
    store = open_store(store_url)
    with store.begin() as conn:
        conn.execute(insert(blocks).values(number=7, hash=b"\1" * 32, timestamp=1))
    store.close()
    again = open_store(store_url)
    assert again.dump()["blocks"] == [(7, b"\1" * 32, 1)]
    again.close()


def test_sqlite_pragmas(sqlite_url: Callable[[], str]) -> None:
    store = open_store(sqlite_url())
    with store.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_in_memory_sqlite_is_one_database() -> None:
    store = open_store("sqlite://")
    with store.begin() as conn:
        conn.execute(insert(blocks).values(number=1, hash=b"\0" * 32, timestamp=1))
    assert store.dump()["blocks"] == [(1, b"\0" * 32, 1)]


def test_password_is_hidden(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cret-Pa55"
    # Trust authentication ignores the password, so the store opens and logs its migration.
    url = pg_url.replace("postgres@", f"postgres:{secret}@")
    assert secret in url
    with caplog.at_level(logging.DEBUG):
        store = open_store(url)
    assert secret not in repr(store) and secret not in store.url and "***" in store.url
    assert secret not in caplog.text
    store.close()


def test_normalize_url() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_dump_orders_alike_on_both_databases(pg_url: str, sqlite_url: Callable[[], str]) -> None:
    rows = [
        {"contract_address": a, "chain_id": 1, "deploy_block": 0, "last_block": -1, "entry_count": 0,
         "running_hash": b"\0" * 24, "halted_reason": None, "finalized_block": -1}
        for a in ("0xb", "0xB", "0xa", "0x_", "0x-", "0xA")
    ]
    dumps = []
    for url in (pg_url, sqlite_url()):
        store = open_store(url)
        with store.begin() as conn:
            conn.execute(insert(sync_state), rows)
        dumps.append(store.dump())
        store.close()
    assert dumps[0] == dumps[1]
    assert [r[0] for r in dumps[0]["sync_state"]] == sorted(r["contract_address"] for r in rows)


def test_the_comparison_would_notice_a_difference(sqlite_url: Callable[[], str]) -> None:
    url = sqlite_url()
    open_store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_cases_channel"))
        conn.execute(text("ALTER TABLE blocks ADD COLUMN extra INTEGER"))
    engine.dispose()
    kinds = sorted(d[0] if isinstance(d, tuple) else d[0][0] for d in _diffs(url))  # type: ignore[index]
    assert kinds == ["add_index", "remove_column"]
