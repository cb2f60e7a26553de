"""What the read modules share: the ledger's enums as the API names them, bytes as it shows them, code order, a read
snapshot, the one-statement reads of the hot paths (:func:`single_read`, and :func:`named` to read their rows by
column name), and an entry's proof (:func:`proof_columns`, :func:`proof_of`; a batched record's Merkle proof from
``api.batches``). Reads the index's tables (``ledger.store.schema``); builds only ``api.schemas`` models.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, text
from sqlalchemy.engine import Dialect, Engine, RowMapping

from api.batches import BatchKey, BatchProofs
from api.schemas.proofs import BatchProof, Proof
from ledger.cases import BATCHED_RECEIPT_CASE_EVENT, batched_event_applies
from ledger.records import CHANNEL_NAMES, CaseAction, DeadlineUnit, EntryKind
from ledger.store.db import Store
from ledger.store.schema import NO_AGENCY, batches, entries

#: the ledger's enums as the API names them (code -> lowercase name; CHANNEL_CODES the other way)
KIND_NAMES = {kind.value: kind.name.lower() for kind in EntryKind}
ACTION_NAMES = {action.value: action.name.lower() for action in CaseAction}
CHANNEL_CODES = {name: code for code, name in CHANNEL_NAMES.items()}
UNIT_NAMES = {unit.value: unit.name.lower() for unit in DeadlineUnit}


def to_hex(value: bytes | memoryview) -> str:
    """Bytes as the API shows them: 0x + lowercase hex."""
    return "0x" + bytes(value).hex()


def code_order(column: Any, conn: Connection) -> Any:
    """``column`` compared and sorted by code point (codes are ASCII, so bytewise)."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


@contextmanager
def read_snapshot(store: Store) -> Iterator[Connection]:
    """A read connection inside one transaction, so every query sees the same state of the index while the indexer
    writes (PostgreSQL: read-only REPEATABLE READ; SQLite: one read transaction under WAL)."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            # pysqlite opens no transaction for reads; in one, WAL keeps the first read's snapshot to the end
            dbapi = conn.connection.dbapi_connection
            if conn.dialect.name == "sqlite" and not getattr(dbapi, "in_transaction", True):
                conn.exec_driver_sql("BEGIN")
            yield conn


# --- one statement, one round trip -----------------------------------------------------------------------------------

#: (statement text, dialect name) -> (the SQL in the driver's parameter style, parameter names if positional)
_COMPILED: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}


def compiled(sql: str, dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """``sql`` (with ``:name`` parameters) in the dialect's driver's parameter style, and the parameter names in
    order when that style is positional (SQLite), else None (psycopg takes the names)."""
    key = (sql, dialect.name)
    found = _COMPILED.get(key)
    if found is None:
        done = text(sql).compile(dialect=dialect)
        names = tuple(done.positiontup) if done.positiontup else None
        found = _COMPILED[key] = (done.string, names)
    return found


def single_read(engine: Engine, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of one SELECT (``:name`` parameters), run on a pooled connection in autocommit mode: no BEGIN and no
    COMMIT, so one round trip; one statement reads one snapshot by itself. Through the driver, not SQLAlchemy's
    result layer (which costs more than the statement here), so values come back as the driver gives them (SQLite
    booleans as 0 and 1). The API's hot paths read through ``api.deps.IndexReader`` (asynchronously on
    PostgreSQL, with this on SQLite)."""
    statement, names = compiled(sql, engine.dialect)
    args: Any = params if names is None else tuple(params[name] for name in names)
    pooled = engine.raw_connection()
    dbapi = pooled.driver_connection
    assert dbapi is not None  # a pooled connection that is not closed has its driver's connection
    # psycopg outside autocommit would send a BEGIN first (pysqlite opens no transaction for a SELECT)
    switch = engine.dialect.name == "postgresql" and not dbapi.autocommit
    try:
        if switch:
            dbapi.autocommit = True
        try:
            cursor = dbapi.cursor()
            try:
                cursor.execute(statement, args)
                return cursor.fetchall()
            finally:
                cursor.close()
        finally:
            if switch and not dbapi.closed:
                dbapi.autocommit = False  # as the pool's other users expect it
    except engine.dialect.loaded_dbapi.Error as exc:
        if engine.dialect.is_disconnect(exc, dbapi, None):
            pooled.invalidate(exc)
        raise
    finally:
        pooled.close()


def select_list(columns: Sequence[tuple[str, str]]) -> str:
    """The select list of a statement for :func:`single_read` from its ``(name, SQL expression)`` columns, in order:
    each expression ``AS`` its name, so that the names are the columns' and :func:`named` reads its rows by them."""
    return ",\n       ".join(f"{expression} AS {name}" for name, expression in columns)


def named(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A row of :func:`single_read` (the driver's tuple) by column name: ``names`` are its select list's, in order."""
    return dict(zip(names, row, strict=True))


# --- proofs and entries -----------------------------------------------------------------------------------------------

_PROOF_COLUMNS = ("seq", "tx_hash", "block_number", "block_hash", "block_time", "log_index", "entry_hash")


def proof_columns() -> list[ColumnElement[Any]]:
    """The entry columns a proof needs, labelled ``p_<name>`` so they never clash with a joined table's."""
    return [entries.c[name].label(f"p_{name}") for name in _PROOF_COLUMNS]


def batch_columns() -> list[ColumnElement[Any]]:
    """What a batched record's proof needs beside :func:`proof_columns`: its place in the batch and record hash
    (``p_batch_seq``, ``p_batch_index``, ``p_record_hash``) and the batch's root, count and file hash (``b_root``,
    ``b_count``, ``b_file_hash``; null for an entry written on its own). Select from :func:`with_batches`."""
    return [
        entries.c.batch_seq.label("p_batch_seq"),
        entries.c.batch_index.label("p_batch_index"),
        entries.c.record_hash.label("p_record_hash"),
        batches.c.root.label("b_root"),
        batches.c.count.label("b_count"),
        batches.c.file_hash.label("b_file_hash"),
    ]


def with_batches(source: Any) -> Any:
    """``source`` (entries, or a join holding it) joined to the batch of each entry, if any."""
    return source.outerjoin(batches, batches.c.seq == entries.c.batch_seq)


def batch_key_of(seq: Any, root: Any, count: Any, file_hash: Any) -> BatchKey | None:
    """The batch of a row's entry (None: not batched, or its batch row is not there)."""
    if seq is None or root is None:
        return None
    return BatchKey.of(seq, root, count, file_hash)


def _batch_proof(row: RowMapping, proofs: BatchProofs | None) -> BatchProof | None:
    if "p_batch_seq" not in row:
        return None
    key = batch_key_of(row["p_batch_seq"], row["b_root"], row["b_count"], row["b_file_hash"])
    if key is None:
        return None
    return (proofs or BatchProofs(None)).proof(key, row["p_batch_index"], bytes(row["p_record_hash"]))


def batch_keys(rows: Iterable[RowMapping]) -> list[BatchKey]:
    """The batches of rows selected with :func:`batch_columns`, each once."""
    keys = (batch_key_of(r["p_batch_seq"], r["b_root"], r["b_count"], r["b_file_hash"]) for r in rows)
    return list(dict.fromkeys(key for key in keys if key is not None))


def proof_of(row: RowMapping, proofs: BatchProofs | None = None) -> Proof:
    """The proof of the row's entry (:func:`proof_columns`; with :func:`batch_columns`, a batched record's
    ``batch``, from ``proofs``)."""
    return Proof(
        seq=row["p_seq"],
        tx_hash=to_hex(row["p_tx_hash"]),
        block_number=row["p_block_number"],
        block_hash=to_hex(row["p_block_hash"]),
        block_time=row["p_block_time"],
        log_index=row["p_log_index"],
        entry_hash=to_hex(row["p_entry_hash"]),
        batch=_batch_proof(row, proofs),
    )


def not_applied_reason(batch_seq: int | None, case_id: bytes | None) -> str | None:
    """Why a case event does not apply to its case, or None when it does: an event written in a batch (``batch_seq``
    set) for a case that has a receipt (``ledger.cases.batched_event_applies``)."""
    if batch_seq is None or case_id is None or batched_event_applies(bytes(case_id)):
        return None
    return BATCHED_RECEIPT_CASE_EVENT


def agency_of_entry(stored: str) -> str | None:
    """An entry's agency as the API shows it: its code, or None for an entry of no agency (the auditors')."""
    return None if stored == NO_AGENCY else stored
