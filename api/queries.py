"""SQL of the read API: each function reads the index (SQLite or PostgreSQL) and returns response models.

Keyset pagination throughout (``WHERE key > :after ORDER BY key LIMIT n + 1``), so a page costs the same wherever it
is in the log. Codes are compared and ordered in code-point order on both databases (``COLLATE "C"`` on PostgreSQL,
whose default collation may ignore punctuation), so pages and lists come out alike on either.

The hot paths (a case lookup, :data:`CASE_SQL`; where the index stands, :data:`STATE_SQL`, which every cached answer
needs) are one statement each, run in autocommit mode (``api.deps.IndexReader``; :func:`single_read`): one statement
sees one state of the index by itself, so they need no transaction, and cost one round trip to the database. A case's
answer is JSON built straight from the rows (:func:`case_of`), byte for byte what :func:`case_view` and its response
model give (``tests/api/test_cache.py`` compares them). Computed figures (metrics, scorecards) are kept by
:class:`FiguresCache`, keyed by what was asked and what the index holds.

A record written in a Merkle-anchored batch is an entry row like any other (``entries.batch_seq`` and
``batch_index`` say where it is in its batch); its Merkle proof is not in the index but rebuilt from the batch file
(``api.batches``): every function that shows such a record's proof takes a :class:`api.batches.BatchProofs` for it.
A batch whose file is missing or cannot match its anchor is withheld (``batches.withheld``): its row is there, its
entries are not; where the index stands counts the withheld batches too (:attr:`IndexState.withheld`), since a file
published later changes what the index holds without moving the entry count. A batched case event of a receipt case
is shown with why it does not apply to its case (:func:`not_applied_reason`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, text, tuple_
from sqlalchemy.engine import Dialect, Engine, RowMapping

from api import models
from api.batches import BatchKey, BatchProofs, file_url
from ledger.batches import batch_hash
from ledger.batches.read import WITHHELD_IMPOSSIBLE, WITHHELD_MISSING
from ledger.cases import BATCHED_RECEIPT_CASE_EVENT, batched_event_applies
from ledger.encoding import ZERO_HEAD
from ledger.metrics import CaseRow, is_case_overdue_at, rate_from_bps
from ledger.records import CaseAction, Channel, DeadlineUnit, EntryKind
from ledger.store.db import Store
from ledger.store.schema import (
    NO_AGENCY,
    agencies,
    batches,
    case_events,
    cases,
    commitment_retirements,
    commitments,
    entries,
    signer_changes,
    sync_state,
)

KIND_NAMES = {kind.value: kind.name.lower() for kind in EntryKind}
ACTION_NAMES = {action.value: action.name.lower() for action in CaseAction}
CHANNEL_NAMES = {channel.value: channel.name.lower() for channel in Channel}
CHANNEL_CODES = {name: code for code, name in CHANNEL_NAMES.items()}
UNIT_NAMES = {unit.value: unit.name.lower() for unit in DeadlineUnit}
_CODE = re.compile(models.CODE_PATTERN)


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


# --- where the index stands -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexState:
    """The ``sync_state`` row of the ledger the API serves (an empty index before the first sync)."""

    contract_address: str | None
    chain_id: int | None
    deploy_block: int | None
    last_block: int
    entry_count: int
    running_hash: bytes
    finalized_block: int
    halted_reason: str | None
    #: batches withheld as missing and as impossible: a batch released (its file published) or found impossible
    #: changes the index without moving the rest
    withheld: tuple[int, int] = (0, 0)

    def is_final(self, block_number: int) -> bool:
        return block_number <= self.finalized_block

    @property
    def position(self) -> tuple[Any, ...]:
        """What changes whenever anything the API shows may change (an ETag part)."""
        return (self.chain_id, self.contract_address, self.entry_count, self.last_block, self.finalized_block,
                *self.withheld)


#: the withheld batches as :attr:`IndexState.withheld` counts them (two columns, for the one-statement reads)
WITHHELD_SQL = (
    f"(SELECT count(*) FROM batches w WHERE w.withheld = '{WITHHELD_MISSING}'), "
    f"(SELECT count(*) FROM batches w WHERE w.withheld = '{WITHHELD_IMPOSSIBLE}')"
)


def _withheld_of(missing: Any, impossible: Any) -> tuple[int, int]:
    return int(missing or 0), int(impossible or 0)


def index_state(conn: Connection, contract_address: str | None, chain_id: int | None) -> IndexState:
    rows = conn.execute(select(sync_state)).mappings().all()
    if contract_address is not None:
        rows = [r for r in rows if r["contract_address"].lower() == contract_address.lower()] or rows
    if not rows:
        return IndexState(contract_address, chain_id, None, -1, 0, ZERO_HEAD, -1, None)
    row = rows[0]
    return IndexState(
        contract_address=row["contract_address"],
        chain_id=int(row["chain_id"]),
        deploy_block=int(row["deploy_block"]),
        last_block=int(row["last_block"]),
        entry_count=int(row["entry_count"]),
        running_hash=bytes(row["running_hash"]),
        finalized_block=int(row["finalized_block"]),
        halted_reason=row["halted_reason"],
        withheld=_withheld_of(*conn.execute(text(f"SELECT {WITHHELD_SQL}")).one()),
    )


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


#: where the index stands (every sync_state row), the block hash of the last entry (:class:`IndexContent`; of its
#: batch when that is withheld) and the withheld batches
STATE_SQL = f"""
SELECT contract_address, chain_id, deploy_block, last_block, entry_count, running_hash, finalized_block, halted_reason,
       COALESCE((SELECT e.block_hash FROM entries e WHERE e.seq = s.entry_count - 1),
                (SELECT b.block_hash FROM batches b WHERE b.seq < s.entry_count ORDER BY b.seq DESC LIMIT 1)),
       {WITHHELD_SQL}
FROM sync_state s ORDER BY contract_address
"""


def _pick_state(rows: Sequence[Sequence[Any]], contract_address: str | None) -> Sequence[Any] | None:
    """The row of the ledger the API serves, as :func:`index_state` chooses it (first by contract address when none
    matches)."""
    if not rows:
        return None
    if contract_address is not None:
        wanted = contract_address.lower()
        for row in rows:
            if row[0].lower() == wanted:
                return row
    return rows[0]


def _state_of(row: Sequence[Any], withheld: tuple[int, int]) -> IndexState:
    """The state in the first columns of a row of :data:`STATE_SQL` or :data:`CASE_SQL`."""
    return IndexState(
        contract_address=row[0],
        chain_id=int(row[1]),
        deploy_block=int(row[2]),
        last_block=int(row[3]),
        entry_count=int(row[4]),
        running_hash=bytes(row[5]),
        finalized_block=int(row[6]),
        halted_reason=row[7],
        withheld=withheld,
    )


@dataclass(frozen=True)
class IndexContent:
    """Where the index stands, and what identifies everything it holds."""

    state: IndexState
    #: hash of the block holding the last entry (None: no entry)
    last_entry_block: bytes | None

    @property
    def key(self) -> tuple[Any, ...]:
        """Equal exactly when the index holds the same rows: every row is derived from the entries (and their blocks'
        times), the running hash commits to every entry in order, and the block hash of the last one to every block
        up to it, so to every entry's block and time — even after a reorganisation that re-included the same entries
        elsewhere — and the withheld batches say which of the entries are in the index (a batch released or found
        impossible changes them). ``last_block`` is left out on purpose: it moves with blocks that carry no entry,
        which change nothing."""
        s = self.state
        return (s.chain_id, s.contract_address, s.entry_count, s.running_hash, self.last_entry_block, s.withheld)


def index_content_of(rows: Sequence[Sequence[Any]], contract_address: str | None, chain_id: int | None) -> IndexContent:
    """The :class:`IndexContent` in the rows of :data:`STATE_SQL`, chosen as :func:`index_state` chooses."""
    row = _pick_state(rows, contract_address)
    if row is None:
        return IndexContent(IndexState(contract_address, chain_id, None, -1, 0, ZERO_HEAD, -1, None), None)
    return IndexContent(_state_of(row, _withheld_of(row[9], row[10])), None if row[8] is None else bytes(row[8]))


def index_content_in(conn: Connection, contract_address: str | None, chain_id: int | None) -> IndexContent:
    """The :class:`IndexContent` read on ``conn`` (in its transaction, e.g. a snapshot)."""
    return index_content_of([tuple(r) for r in conn.execute(text(STATE_SQL))], contract_address, chain_id)


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


def _batch_proof(row: RowMapping, proofs: BatchProofs | None) -> models.BatchProof | None:
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


def proof_of(row: RowMapping, proofs: BatchProofs | None = None) -> models.Proof:
    """The proof of the row's entry (:func:`proof_columns`; with :func:`batch_columns`, a batched record's
    ``batch``, from ``proofs``)."""
    return models.Proof(
        seq=row["p_seq"],
        tx_hash=to_hex(row["p_tx_hash"]),
        block_number=row["p_block_number"],
        block_hash=to_hex(row["p_block_hash"]),
        block_time=row["p_block_time"],
        log_index=row["p_log_index"],
        entry_hash=to_hex(row["p_entry_hash"]),
        batch=_batch_proof(row, proofs),
    )


def _entry_query() -> Any:
    """Every entry column, the batch of a batched one and the case id of a batched case event (``c_case_id``)."""
    return select(
        entries,
        batches.c.root.label("b_root"),
        batches.c.count.label("b_count"),
        batches.c.file_hash.label("b_file_hash"),
        case_events.c.case_id.label("c_case_id"),
    ).select_from(
        with_batches(entries).outerjoin(
            case_events, and_(entries.c.batch_seq.is_not(None), case_events.c.seq == entries.c.seq)
        )
    )


def _entry_batch_key(row: RowMapping) -> BatchKey | None:
    return batch_key_of(row["batch_seq"], row["b_root"], row["b_count"], row["b_file_hash"])


def entry_batch_keys(rows: Iterable[RowMapping]) -> list[BatchKey]:
    return list(dict.fromkeys(key for key in map(_entry_batch_key, rows) if key is not None))


def not_applied_reason(batch_seq: int | None, case_id: bytes | None) -> str | None:
    """Why a case event does not apply to its case, or None when it does: an event written in a batch (``batch_seq``
    set) for a case that has a receipt (``ledger.cases.batched_event_applies``)."""
    if batch_seq is None or case_id is None or batched_event_applies(bytes(case_id)):
        return None
    return BATCHED_RECEIPT_CASE_EVENT


def agency_of_entry(stored: str) -> str | None:
    """An entry's agency as the API shows it: its code, or None for an entry of no agency (the auditors')."""
    return None if stored == NO_AGENCY else stored


def _entry(row: RowMapping, state: IndexState, proofs: BatchProofs | None = None) -> models.Entry:
    key = _entry_batch_key(row)
    batch = None
    if key is not None:
        batch = (proofs or BatchProofs(None)).proof(key, row["batch_index"], bytes(row["record_hash"]))
    return models.Entry(
        seq=row["seq"],
        kind=KIND_NAMES[row["kind"]],  # type: ignore[arg-type]
        kind_code=row["kind"],
        agency_id=agency_of_entry(row["agency_id"]),
        actor=row["actor"],
        record_hash=to_hex(row["record_hash"]),
        entry_hash=to_hex(row["entry_hash"]),
        running_hash=to_hex(row["running_hash"]),
        occurred_at=row["occurred_at"],
        not_applied_reason=not_applied_reason(row["batch_seq"], row["c_case_id"]),
        final=state.is_final(row["block_number"]),
        proof=models.Proof(
            seq=row["seq"],
            tx_hash=to_hex(row["tx_hash"]),
            block_number=row["block_number"],
            block_hash=to_hex(row["block_hash"]),
            block_time=row["block_time"],
            log_index=row["log_index"],
            entry_hash=to_hex(row["entry_hash"]),
            batch=batch,
        ),
    )


def entries_page(
    conn: Connection, state: IndexState, after: int | None, limit: int, proofs: BatchProofs | None = None
) -> tuple[list[models.Entry], bool]:
    """Up to ``limit`` entries with seq above ``after``, and whether more follow (batched records with their Merkle
    proofs from ``proofs``)."""
    query = _entry_query().order_by(entries.c.seq).limit(limit + 1)
    if after is not None:
        query = query.where(entries.c.seq > after)
    rows = conn.execute(query).mappings().all()
    return [_entry(row, state, proofs) for row in rows[:limit]], len(rows) > limit


def entry(conn: Connection, state: IndexState, seq: int, proofs: BatchProofs | None = None) -> models.Entry | None:
    row = conn.execute(_entry_query().where(entries.c.seq == seq)).mappings().first()
    return None if row is None else _entry(row, state, proofs)


# --- batches ----------------------------------------------------------------------------------------------------------


def _batch_query() -> Any:
    return select(batches)


def batch_info(row: RowMapping, state: IndexState, available: bool) -> models.BatchInfo:
    root, count, file_hash = bytes(row["root"]), int(row["count"]), bytes(row["file_hash"])
    seq = int(row["seq"])
    return models.BatchInfo(
        seq=seq,
        last_seq=seq + count - 1,
        count=count,
        agency_id=row["agency_id"],
        signer=row["signer"],
        root=to_hex(root),
        file_hash=to_hex(file_hash),
        record_hash=to_hex(batch_hash(root, count, file_hash)),
        entry_hash=to_hex(row["entry_hash"]),
        running_hash=to_hex(row["running_hash"]),
        final=state.is_final(row["block_number"]),
        file_url=file_url(seq),
        file_available=available,
        withheld=row["withheld"],
        withheld_reason=row["withheld_reason"],
        proof=models.Proof(
            seq=seq,
            tx_hash=to_hex(row["tx_hash"]),
            block_number=row["block_number"],
            block_hash=to_hex(row["block_hash"]),
            block_time=row["block_time"],
            log_index=row["log_index"],
            entry_hash=to_hex(row["entry_hash"]),
        ),
    )


def batch_rows(
    conn: Connection, after: int | None, limit: int, agency_id: str | None = None, withheld: bool | None = None
) -> tuple[list[RowMapping], bool]:
    """Up to ``limit`` batches with seq above ``after`` (of one agency, if given; only the withheld ones, or only
    the others, if ``withheld`` says so), and whether more follow."""
    query = _batch_query().order_by(batches.c.seq).limit(limit + 1)
    if after is not None:
        query = query.where(batches.c.seq > after)
    if agency_id is not None:
        query = query.where(batches.c.agency_id == agency_id)
    if withheld is not None:
        query = query.where(batches.c.withheld.is_not(None) if withheld else batches.c.withheld.is_(None))
    rows = conn.execute(query).mappings().all()
    return list(rows[:limit]), len(rows) > limit


def batch_row(conn: Connection, seq: int) -> RowMapping | None:
    return conn.execute(_batch_query().where(batches.c.seq == seq)).mappings().first()


def batch_files(conn: Connection, agency_id: str | None = None) -> list[tuple[int, bytes]]:
    """(seq, file hash) of every batch (of one agency, if given), in seq order."""
    query = select(batches.c.seq, batches.c.file_hash).order_by(batches.c.seq)
    if agency_id is not None:
        query = query.where(batches.c.agency_id == agency_id)
    return [(int(row.seq), bytes(row.file_hash)) for row in conn.execute(query)]


def batch_containing(conn: Connection, seq: int) -> RowMapping | None:
    """The batch holding entry ``seq``, if it is a batched record (indexed or withheld)."""
    row = conn.execute(
        select(batches.c.seq, batches.c.count, batches.c.withheld, batches.c.withheld_reason)
        .where(batches.c.seq <= seq).order_by(batches.c.seq.desc()).limit(1)
    ).mappings().first()
    return row if row is not None and seq < row["seq"] + row["count"] else None


def withheld_counts(conn: Connection, agency_id: str | None = None) -> dict[str, tuple[int, int]]:
    """(batches, entries) withheld, by agency (of one agency, if given); agencies with none are left out."""
    b = batches.c
    query = (
        select(b.agency_id, func.count(), func.sum(b.count)).where(b.withheld.is_not(None)).group_by(b.agency_id)
    )
    if agency_id is not None:
        query = query.where(b.agency_id == agency_id)
    return {row[0]: (int(row[1]), int(row[2] or 0)) for row in conn.execute(query)}


# --- agencies ---------------------------------------------------------------------------------------------------------


def _signer_history(conn: Connection, agency_ids: Sequence[str]) -> dict[str, list[RowMapping]]:
    if not agency_ids:
        return {}
    rows = conn.execute(
        select(signer_changes.c.agency_id, signer_changes.c.signer, signer_changes.c.authorized, *proof_columns())
        .join(entries, entries.c.seq == signer_changes.c.seq)
        .where(signer_changes.c.agency_id.in_(agency_ids))
        .order_by(signer_changes.c.seq)
    ).mappings()
    out: dict[str, list[RowMapping]] = {}
    for row in rows:
        out.setdefault(row["agency_id"], []).append(row)
    return out


def _current_signers(history: Iterable[RowMapping]) -> list[str]:
    """The keys authorised now: the contract's state, which corrections cannot change (so voids are not applied)."""
    current: set[str] = set()
    for change in history:
        (current.add if change["authorized"] else current.discard)(change["signer"])
    return sorted(current, key=str.lower)


def _agency_query(conn: Connection) -> Any:
    return select(agencies, entries.c.block_number, *proof_columns()).join(entries, entries.c.seq == agencies.c.seq)


def _agency(
    row: RowMapping, history: list[RowMapping], state: IndexState, withheld: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    return {
        "agency_id": row["agency_id"],
        "jurisdiction": row["jurisdiction"],
        "name_zh": row["name_zh"],
        "name_en": row["name_en"],
        "signers": _current_signers(history),
        "batches_withheld": withheld[0],
        "entries_withheld": withheld[1],
        "final": state.is_final(row["block_number"]),
        "registration": proof_of(row),
    }


def agencies_page(
    conn: Connection, state: IndexState, after: str | None, limit: int
) -> tuple[list[models.Agency], bool]:
    key = code_order(agencies.c.agency_id, conn)
    query = _agency_query(conn).order_by(key).limit(limit + 1)
    if after is not None:
        query = query.where(key > after)
    rows = conn.execute(query).mappings().all()
    page = rows[:limit]
    history = _signer_history(conn, [row["agency_id"] for row in page])
    withheld = withheld_counts(conn) if any(state.withheld) else {}
    return [
        models.Agency(**_agency(row, history.get(row["agency_id"], []), state, withheld.get(row["agency_id"], (0, 0))))
        for row in page
    ], len(rows) > limit


def agency(conn: Connection, state: IndexState, agency_id: str) -> models.AgencyDetail | None:
    row = conn.execute(_agency_query(conn).where(agencies.c.agency_id == agency_id)).mappings().first()
    if row is None:
        return None
    history = _signer_history(conn, [agency_id]).get(agency_id, [])
    changes = [
        models.SignerChange(
            signer=change["signer"],
            action="authorized" if change["authorized"] else "revoked",
            final=state.is_final(change["p_block_number"]),
            proof=proof_of(change),
        )
        for change in history
    ]
    withheld = withheld_counts(conn, agency_id).get(agency_id, (0, 0))
    return models.AgencyDetail(**_agency(row, history, state, withheld), key_history=changes)


def agency_exists(conn: Connection, agency_id: str) -> bool:
    return conn.execute(select(agencies.c.agency_id).where(agencies.c.agency_id == agency_id)).first() is not None


def agency_names(conn: Connection, agency_ids: Iterable[str] | None = None) -> dict[str, tuple[str, str]]:
    query = select(agencies.c.agency_id, agencies.c.name_zh, agencies.c.name_en)
    if agency_ids is not None:
        query = query.where(agencies.c.agency_id.in_(list(agency_ids)))
    return {row.agency_id: (row.name_zh, row.name_en) for row in conn.execute(query)}


# --- commitments ------------------------------------------------------------------------------------------------------


def _version_query() -> Any:
    return select(commitments, entries.c.voided_by, *proof_columns()).join(entries, entries.c.seq == commitments.c.seq)


def _version_fields(row: RowMapping, state: IndexState) -> dict[str, Any]:
    return {
        "agency_id": row["agency_id"],
        "commitment_id": row["commitment_id"],
        "version": row["version"],
        "service_code": row["service_code"],
        "name_zh": row["name_zh"],
        "name_en": row["name_en"],
        "deadline": row["deadline"],
        "deadline_unit": UNIT_NAMES.get(row["deadline_unit"], "calendar_hours"),
        "target_bps": row["target_bps"],
        "target_rate": str(rate_from_bps(row["target_bps"])),
        "valid_from": row["valid_from"],
        "terms_hash": to_hex(row["terms_hash"]),
        "occurred_at": row["occurred_at"],
        "final": state.is_final(row["p_block_number"]),
        "proof": proof_of(row),
    }


def current_version(versions: Sequence[RowMapping]) -> RowMapping:
    """The version in force: the latest not voided (as the metrics' target), or the latest if every one is."""
    live = [v for v in versions if v["voided_by"] is None]
    return max(live or versions, key=lambda v: v["version"])


def _retirements(conn: Connection, seqs: Iterable[int], state: IndexState) -> dict[int, models.Retirement]:
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    rows = conn.execute(
        select(commitment_retirements, *proof_columns())
        .join(entries, entries.c.seq == commitment_retirements.c.seq)
        .where(commitment_retirements.c.seq.in_(wanted))
    ).mappings()
    return {
        row["seq"]: models.Retirement(
            reason_hash=to_hex(row["reason_hash"]),
            occurred_at=row["occurred_at"],
            final=state.is_final(row["p_block_number"]),
            proof=proof_of(row),
        )
        for row in rows
    }


def _versions_of(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[RowMapping]]:
    out: dict[tuple[str, str], list[RowMapping]] = {}
    if not keys:
        return out
    c = commitments.c
    rows = conn.execute(
        _version_query().where(tuple_(c.agency_id, c.commitment_id).in_(list(keys))).order_by(c.version)
    ).mappings()
    for row in rows:
        out.setdefault((row["agency_id"], row["commitment_id"]), []).append(row)
    return out


def encode_commitment_cursor(agency_id: str, commitment_id: str) -> str:
    return base64.urlsafe_b64encode(f"{agency_id} {commitment_id}".encode()).decode().rstrip("=")


def decode_commitment_cursor(cursor: str) -> tuple[str, str] | None:
    """The key in a cursor from :func:`encode_commitment_cursor`, or None if it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    parts = text.split(" ")
    if len(parts) != 2 or not all(_CODE.fullmatch(part) for part in parts):
        return None
    return parts[0], parts[1]


def commitments_page(
    conn: Connection, state: IndexState, agency_id: str | None, after: tuple[str, str] | None, limit: int
) -> tuple[list[models.CommitmentSummary], bool]:
    c = commitments.c
    a, m = code_order(c.agency_id, conn), code_order(c.commitment_id, conn)
    # GROUP BY, not DISTINCT: PostgreSQL wants DISTINCT's ORDER BY expressions (here collated) in the select list
    query = select(c.agency_id, c.commitment_id).group_by(c.agency_id, c.commitment_id).order_by(a, m).limit(limit + 1)
    if agency_id is not None:
        query = query.where(c.agency_id == agency_id)
    if after is not None:
        query = query.where(or_(a > after[0], and_(c.agency_id == after[0], m > after[1])))
    keys = [(row.agency_id, row.commitment_id) for row in conn.execute(query)]
    page = keys[:limit]
    versions = _versions_of(conn, page)
    current = {key: current_version(versions[key]) for key in page}
    retired_seqs = [r["retired_seq"] for r in current.values() if r["retired_seq"] is not None]
    retirements = _retirements(conn, retired_seqs, state)
    items = []
    for key in page:
        row = current[key]
        retired_seq = row["retired_seq"]
        items.append(
            models.CommitmentSummary(
                **_version_fields(row, state),
                voided_by=row["voided_by"],
                retired=retired_seq is not None,
                retirement=retirements.get(retired_seq) if retired_seq is not None else None,
                version_count=len(versions[key]),
            )
        )
    return items, len(keys) > limit


def commitment_history(
    conn: Connection, state: IndexState, agency_id: str, commitment_id: str
) -> models.CommitmentHistory | None:
    versions = _versions_of(conn, [(agency_id, commitment_id)]).get((agency_id, commitment_id))
    if not versions:
        return None
    current = current_version(versions)
    retired_seq = current["retired_seq"]
    retirement = _retirements(conn, [retired_seq], state).get(retired_seq) if retired_seq is not None else None
    return models.CommitmentHistory(
        agency_id=agency_id,
        commitment_id=commitment_id,
        current_version=current["version"],
        retired=retired_seq is not None,
        retirement=retirement,
        versions=[
            models.CommitmentVersionState(**_version_fields(v, state), voided_by=v["voided_by"]) for v in versions
        ],
    )


def commitment_version(
    conn: Connection, state: IndexState, agency_id: str, commitment_id: str, version: int
) -> models.CommitmentVersion | None:
    c = commitments.c
    row = (
        conn.execute(
            _version_query().where(c.agency_id == agency_id, c.commitment_id == commitment_id, c.version == version)
        )
        .mappings()
        .first()
    )
    return None if row is None else models.CommitmentVersion(**_version_fields(row, state))


def commitment_exists(conn: Connection, agency_id: str, commitment_id: str) -> bool:
    c = commitments.c
    query = select(c.version).where(c.agency_id == agency_id, c.commitment_id == commitment_id).limit(1)
    return conn.execute(query).first() is not None


@dataclass(frozen=True)
class CommitmentInfo:
    name_zh: str
    name_en: str
    target_bps: int
    retired: bool


def commitment_info(conn: Connection, agency_id: str | None = None) -> dict[tuple[str, str], CommitmentInfo]:
    """Names, target and retirement of each commitment's current version (for scorecards)."""
    query = _version_query().order_by(commitments.c.version)
    if agency_id is not None:
        query = query.where(commitments.c.agency_id == agency_id)
    grouped: dict[tuple[str, str], list[RowMapping]] = {}
    for row in conn.execute(query).mappings():
        grouped.setdefault((row["agency_id"], row["commitment_id"]), []).append(row)
    out = {}
    for key, versions in grouped.items():
        row = current_version(versions)
        out[key] = CommitmentInfo(row["name_zh"], row["name_en"], row["target_bps"], row["retired_seq"] is not None)
    return out


# --- cases ------------------------------------------------------------------------------------------------------------


def _is_overdue(row: Any, now: int) -> bool:
    """Whether the case (a ``cases`` row) is overdue at ``now``: ``ledger.metrics.is_case_overdue_at``, the rule of
    the overdue count applied to this one case."""
    fields = {name: row[name] for name in CaseRow.__dataclass_fields__}
    fields["case_id"] = bytes(fields["case_id"])
    return is_case_overdue_at(CaseRow(**fields), now)


#: the fields of a case view that come from its state (all null for a case without one)
CASE_STATE_FIELDS = (
    "status",
    "commitment_id",
    "commitment_version",
    "district",
    "channel",
    "channel_name",
    "opened_at",
    "closed_at",
    "due_at",
    "hold_seconds",
    "on_hold_since",
    "fulfil_seconds",
    "on_time",
    "overdue",
    "escalated",
    "invalid_transitions",
    "has_receipt",
    "rating",
    "rated_at",
    "disputes",
    "reopened",
    "dispute_open",
)


def case_view(
    conn: Connection, state: IndexState, agency_id: str, case_id: bytes, now: int, proofs: BatchProofs | None = None
) -> models.CaseView | None:
    """The case and every event with its proof (batched events with their Merkle proofs, from ``proofs``); None
    when the index has neither."""
    row = (
        conn.execute(select(cases).where(cases.c.agency_id == agency_id, cases.c.case_id == case_id))
        .mappings()
        .first()
    )
    e = case_events.c
    event_rows = conn.execute(
        select(case_events, entries.c.voided_by, *proof_columns(), *batch_columns())
        .select_from(with_batches(case_events.join(entries, entries.c.seq == e.seq)))
        .where(e.agency_id == agency_id, e.case_id == case_id)
        .order_by(e.seq)
    ).mappings()
    events = [
        models.CaseEventItem(
            seq=ev["seq"],
            action=ACTION_NAMES[ev["action"]],  # type: ignore[arg-type]
            action_code=ev["action"],
            occurred_at=ev["occurred_at"],
            recorded_at=ev["block_time"],
            recording_latency_seconds=ev["block_time"] - ev["occurred_at"],
            details_hash=to_hex(ev["details_hash"]),
            commitment_id=ev["commitment_id"],
            district=ev["district"],
            channel=ev["channel"],
            voided_by=ev["voided_by"],
            not_applied_reason=not_applied_reason(ev["p_batch_seq"], case_id),
            final=state.is_final(ev["p_block_number"]),
            proof=proof_of(ev, proofs),
        )
        for ev in event_rows
    ]
    if row is None and not events:
        return None
    fields: dict[str, Any] = {"agency_id": agency_id, "case_id": to_hex(case_id), "events": events}
    if row is None:
        # no opening that stands (voided, or never recorded): the events, and no state
        no_state: dict[str, Any] = dict.fromkeys(CASE_STATE_FIELDS)
        return models.CaseView(**fields, **no_state)
    names = conn.execute(
        select(commitments.c.name_zh, commitments.c.name_en).where(
            commitments.c.agency_id == agency_id,
            commitments.c.commitment_id == row["commitment_id"],
            commitments.c.version == row["commitment_version"],
        )
    ).first()
    return models.CaseView(
        **fields,
        status=row["status"],
        commitment_id=row["commitment_id"],
        commitment_version=row["commitment_version"],
        commitment_name_zh=names.name_zh if names else None,
        commitment_name_en=names.name_en if names else None,
        district=row["district"],
        channel=row["channel"],
        channel_name=CHANNEL_NAMES.get(row["channel"]),  # type: ignore[arg-type]
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        due_at=row["due_at"],
        hold_seconds=row["hold_seconds"],
        on_hold_since=row["on_hold_since"],
        fulfil_seconds=row["fulfil_seconds"],
        on_time=row["on_time"],
        overdue=_is_overdue(row, now),
        escalated=row["escalated"],
        invalid_transitions=row["invalid_transitions"],
        **_feedback_fields(row),
    )


def _feedback_fields(case: Any) -> dict[str, Any]:
    """The case's receipt, rating and dispute columns as the case view shows them (the receipt's address is left to
    ``GET /receipts``: a case view says only whether there is one)."""
    return {
        "has_receipt": case["receipt"] is not None,
        "rating": case["rating"],
        "rated_at": case["rated_at"],
        "disputes": case["disputes"],
        "reopened": case["reopened"],
        "dispute_open": _flag(case["dispute_open"]),
    }


#: the case lookup in one statement: where the index stands, the case's row, its commitment's names and every event
#: with its entry (for the proof and voided_by) and its batch, if batched, and the withheld batches (the last two
#: columns); one row per event (the case's columns repeated), or one row of nulls but the state when there is no
#: event; one set of rows per sync_state row
CASE_SQL = """
SELECT s.contract_address, s.chain_id, s.deploy_block, s.last_block, s.entry_count, s.running_hash,
       s.finalized_block, s.halted_reason,
       e.seq, e.action, e.occurred_at, e.block_time, e.details_hash, e.commitment_id, e.district, e.channel,
       n.seq, n.voided_by, n.tx_hash, n.block_number, n.block_hash, n.block_time, n.log_index, n.entry_hash,
       m.name_zh, m.name_en,
       n.batch_seq, n.batch_index, n.record_hash, b.root, b.count, b.file_hash,
       {case_columns},
       {withheld}
FROM sync_state s
LEFT JOIN case_events e ON e.agency_id = :agency_id AND e.case_id = :case_id
LEFT JOIN entries n ON n.seq = e.seq
LEFT JOIN batches b ON b.seq = n.batch_seq
LEFT JOIN cases c ON c.agency_id = :agency_id AND c.case_id = :case_id
LEFT JOIN commitments m
       ON m.agency_id = c.agency_id AND m.commitment_id = c.commitment_id AND m.version = c.commitment_version
ORDER BY s.contract_address, e.seq
"""
#: the cases columns of a row of CASE_SQL: CaseRow's fields (the table's columns), in its order, from this position
_CASE_AT = 32
#: where the batch columns of a row of CASE_SQL start (batch_seq, batch_index, record_hash, root, count, file_hash)
_BATCH_AT = 26
_CASE_NAMES = tuple(CaseRow.__dataclass_fields__)
CASE_SQL = CASE_SQL.replace("{case_columns}", ", ".join(f"c.{name}" for name in _CASE_NAMES)).replace(
    "{withheld}", WITHHELD_SQL
)
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _flag(value: Any) -> bool | None:
    """A boolean column as the driver gives it (SQLite: 0 or 1)."""
    return None if value is None else bool(value)


@dataclass(frozen=True)
class CaseLookup:
    """A case lookup's answer: the index state it read, and the case's JSON (None: no such case)."""

    state: IndexState
    body: bytes | None
    #: the case view's ``overdue`` (part of its ETag)
    overdue: bool | None


def case_batch_keys(rows: Sequence[Sequence[Any]]) -> list[BatchKey]:
    """The batches of the events in rows of :data:`CASE_SQL`, each once (to load before :func:`case_of`)."""
    at = _BATCH_AT
    keys = (batch_key_of(r[at], r[at + 3], r[at + 4], r[at + 5]) for r in rows if r[8] is not None)
    return list(dict.fromkeys(key for key in keys if key is not None))


def case_of(
    rows: Sequence[Sequence[Any]],
    contract_address: str | None,
    agency_id: str,
    case_id: bytes,
    now: int,
    proofs: BatchProofs | None = None,
) -> CaseLookup | None:
    """The answer of a case lookup from the rows of :data:`CASE_SQL` (parameters ``agency_id``, ``case_id``): JSON
    bytes equal to the :class:`models.CaseView` the slow path gives. None when the index has no state row yet: then
    use :func:`case_view` in a snapshot. Batched events' Merkle proofs come from ``proofs`` (load
    :func:`case_batch_keys` into it first, off the event loop: a batch not loaded is built here)."""
    first = _pick_state(rows, contract_address)
    if first is None:
        return None
    mine = [row for row in rows if row[0] == first[0]]
    state = _state_of(first, _withheld_of(first[-2], first[-1]))
    events = []
    for r in mine:
        if r[8] is None or r[16] is None:  # no event; or (impossible by the foreign key) no entry, which joins nothing
            continue
        block_time = r[11]
        key = batch_key_of(r[_BATCH_AT], r[_BATCH_AT + 3], r[_BATCH_AT + 4], r[_BATCH_AT + 5])
        batch = None
        if key is not None:
            batch = (proofs or BatchProofs(None)).proof(key, r[_BATCH_AT + 1], bytes(r[_BATCH_AT + 2])).model_dump()
        events.append({
            "seq": r[8],
            "action": ACTION_NAMES[r[9]],
            "action_code": r[9],
            "occurred_at": r[10],
            "recorded_at": block_time,
            "recording_latency_seconds": block_time - r[10],
            "details_hash": to_hex(r[12]),
            "commitment_id": r[13],
            "district": r[14],
            "channel": r[15],
            "voided_by": r[17],
            "not_applied_reason": not_applied_reason(r[_BATCH_AT], case_id),
            "final": state.is_final(r[19]),
            "proof": {
                "seq": r[16],
                "tx_hash": to_hex(r[18]),
                "block_number": r[19],
                "block_hash": to_hex(r[20]),
                "block_time": r[21],
                "log_index": r[22],
                "entry_hash": to_hex(r[23]),
                "batch": batch,
            },
        })  # fmt: skip
    row = first if first[_CASE_AT] is not None else None
    if row is None and not events:
        return CaseLookup(state, None, None)
    view: dict[str, Any] = {"agency_id": agency_id, "case_id": to_hex(case_id)}
    if row is None:
        # no opening that stands (voided, or never recorded): the events, and no state
        view.update(dict.fromkeys(("status", "commitment_id", "commitment_version", "commitment_name_zh",
                                   "commitment_name_en", "district", "channel", "channel_name", "opened_at",
                                   "closed_at", "due_at", "hold_seconds", "on_hold_since", "fulfil_seconds", "on_time",
                                   "overdue", "escalated", "invalid_transitions",
                                   *CASE_STATE_FIELDS[16:])))  # fmt: skip
        overdue = None
    else:
        case = dict(zip(_CASE_NAMES, row[_CASE_AT : _CASE_AT + len(_CASE_NAMES)], strict=True))
        case["on_time"], case["escalated"] = _flag(case["on_time"]), _flag(case["escalated"])
        overdue = _is_overdue(case, now)
        view.update(
            status=case["status"],
            commitment_id=case["commitment_id"],
            commitment_version=case["commitment_version"],
            commitment_name_zh=row[24],
            commitment_name_en=row[25],
            district=case["district"],
            channel=case["channel"],
            channel_name=CHANNEL_NAMES.get(case["channel"]),
            opened_at=case["opened_at"],
            closed_at=case["closed_at"],
            due_at=case["due_at"],
            hold_seconds=case["hold_seconds"],
            on_hold_since=case["on_hold_since"],
            fulfil_seconds=case["fulfil_seconds"],
            on_time=case["on_time"],
            overdue=overdue,
            escalated=case["escalated"],
            invalid_transitions=case["invalid_transitions"],
            **_feedback_fields(case),
        )
    view["events"] = events
    return CaseLookup(state, _JSON.encode(view).encode(), overdue)


# --- computed figures, kept -------------------------------------------------------------------------------------------


class FiguresCache:
    """Serialised answers of the figures endpoints (metrics, scorecards), by (what was asked, :attr:`IndexContent.key`).

    Exact: the figures are a function of the normalised request (the filter with its ``as_of`` resolved) and of the
    index's rows, which the content key identifies; the key moves whenever the index does, and answers for any other
    content are dropped as soon as a request sees the new one. One computation per key at a time: concurrent requests
    for a key being computed wait for it rather than computing it again. At most ``max_entries`` answers are kept,
    the least recently used dropped first. Per process (each uvicorn worker has its own).
    """

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[Hashable, Hashable], bytes] = OrderedDict()
        self._computing: dict[tuple[Hashable, Hashable], threading.Event] = {}
        self._content: Hashable = None
        #: answers served from the cache, and computed
        self.hits = 0
        self.misses = 0

    def _see(self, content: Hashable) -> None:
        """Drop the answers for any other content (the index has moved on). Under the lock."""
        if content != self._content:
            self._content = content
            for key in [k for k in self._answers if k[1] != content]:
                del self._answers[key]

    def get(self, request: Hashable, content: Hashable) -> bytes | None:
        with self._lock:
            self._see(content)
            key = (request, content)
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
                self.hits += 1
            return answer

    def get_or_compute(self, request: Hashable, content: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The answer for ``request`` on ``content``: kept, or being computed by another request (waited for), or
        computed now by ``compute`` (which must compute it on exactly that content). An error is not kept."""
        key = (request, content)
        while True:
            with self._lock:
                self._see(content)
                answer = self._answers.get(key)
                if answer is not None:
                    self._answers.move_to_end(key)
                    self.hits += 1
                    return answer
                pending = self._computing.get(key)
                if pending is None:
                    pending = self._computing[key] = threading.Event()
                    break
            pending.wait()  # then look again: kept, or (the computation failed) compute it here
        try:
            answer = compute()
            with self._lock:
                self.misses += 1
                if content == self._content:
                    self._answers[key] = answer
                    while len(self._answers) > self.max_entries:
                        self._answers.popitem(last=False)
            return answer
        finally:
            with self._lock:
                del self._computing[key]
            pending.set()

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)


# --- bulk export ------------------------------------------------------------------------------------------------------

#: rows fetched from the database at a time (server-side cursor on PostgreSQL)
EXPORT_BATCH = 1000

ENTRY_EXPORT_COLUMNS = (
    "seq",
    "kind",
    "kind_code",
    "agency_id",
    "actor",
    "record_hash",
    "entry_hash",
    "running_hash",
    "occurred_at",
    "voided_by",
    "not_applied_reason",
    "block_number",
    "block_hash",
    "block_time",
    "tx_hash",
    "log_index",
    "final",
    "batch_seq",
    "batch_index",
    "batch_root",
    "batch_file_hash",
    "merkle_proof",
    "merkle_proof_unavailable",
)
CASE_EXPORT_COLUMNS = (
    "agency_id",
    "case_id",
    "commitment_id",
    "commitment_version",
    "district",
    "channel",
    "status",
    "opened_seq",
    "opened_at",
    "closed_at",
    "hold_seconds",
    "on_hold_since",
    "due_at",
    "fulfil_seconds",
    "on_time",
    "escalated",
    "invalid_transitions",
    "last_seq",
    "rating",
    "rated_at",
    "disputes",
    "reopened",
    "dispute_open",
)


def _stream(conn: Connection, query: Any, batch: int) -> Iterator[RowMapping]:
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
    try:
        yield from result.mappings()
    finally:
        result.close()


def export_entries(
    conn: Connection,
    state: IndexState,
    agency_id: str | None,
    batch: int = EXPORT_BATCH,
    proofs: BatchProofs | None = None,
) -> Iterator[dict[str, Any]]:
    """Every entry (of one agency, if given) in seq order, as flat JSON-ready dicts; rows are read ``batch`` at a
    time, never all at once. A batched record carries its batch and Merkle proof (``merkle_proof``: a list, or null
    with ``merkle_proof_unavailable`` saying why) from ``proofs`` — give it ``keep=1``: a batch's records are
    consecutive, so each batch is looked up once and only the current one is held."""
    query = _entry_query().order_by(entries.c.seq)
    if agency_id is not None:
        query = query.where(entries.c.agency_id == agency_id)
    proofs = proofs or BatchProofs(None)
    for row in _stream(conn, query, batch):
        key = _entry_batch_key(row)
        found = None if key is None else proofs.proof(key, row["batch_index"], bytes(row["record_hash"]))
        yield {
            "seq": row["seq"],
            "kind": KIND_NAMES.get(row["kind"], str(row["kind"])),
            "kind_code": row["kind"],
            "agency_id": agency_of_entry(row["agency_id"]),
            "actor": row["actor"],
            "record_hash": to_hex(row["record_hash"]),
            "entry_hash": to_hex(row["entry_hash"]),
            "running_hash": to_hex(row["running_hash"]),
            "occurred_at": row["occurred_at"],
            "voided_by": row["voided_by"],
            "not_applied_reason": not_applied_reason(row["batch_seq"], row["c_case_id"]),
            "block_number": row["block_number"],
            "block_hash": to_hex(row["block_hash"]),
            "block_time": row["block_time"],
            "tx_hash": to_hex(row["tx_hash"]),
            "log_index": row["log_index"],
            "final": state.is_final(row["block_number"]),
            "batch_seq": None if found is None else found.seq,
            "batch_index": None if found is None else found.index,
            "batch_root": None if found is None else found.root,
            "batch_file_hash": None if found is None else found.file_hash,
            "merkle_proof": None if found is None else found.merkle_proof,
            "merkle_proof_unavailable": None if found is None else found.proof_unavailable,
        }


def export_cases(conn: Connection, agency_id: str | None, batch: int = EXPORT_BATCH) -> Iterator[dict[str, Any]]:
    """Every case row (of one agency, if given) in (agency, case id) order, read ``batch`` rows at a time."""
    c = cases.c
    query = select(cases).order_by(code_order(c.agency_id, conn), c.case_id)
    if agency_id is not None:
        query = query.where(c.agency_id == agency_id)
    for row in _stream(conn, query, batch):
        out = {name: row[name] for name in CASE_EXPORT_COLUMNS}
        out["case_id"] = to_hex(row["case_id"])
        for flag in ("on_time", "escalated", "dispute_open"):
            out[flag] = None if out[flag] is None else bool(out[flag])
        yield out


def count_rows(conn: Connection, table: Any, agency_id: str | None = None) -> int:
    query = select(func.count()).select_from(table)
    if agency_id is not None:
        query = query.where(table.c.agency_id == agency_id)
    return int(conn.execute(query).scalar_one())
