"""The writer's durable outbox: every entry an agency submits is stored here before ``submit`` returns, and tracked
until it is on chain (or refused for a reason the agency must fix).

One SQLite file (stdlib ``sqlite3``, WAL mode) with two tables, plus ``meta`` for the schema version:

- ``entries``: one row per submitted record, keyed by an idempotency key (UNIQUE). By default the key is
  ``keccak(signer address ‖ entry kind ‖ record struct hash)``, so identical records are the same entry: submitting
  one twice — after a timeout, a crash, a restart — returns the row already there. A row moves
  ``pending → sent → recorded | failed``; ``sent`` rows point at the transaction that carries them, ``recorded``
  rows hold the ledger ``seq`` taken from the receipt.
- ``transactions``: every transaction the writer signed, with its nonce and the raw signed bytes, stored *before*
  it is broadcast. Recovery re-broadcasts those same bytes and never signs the entries again with a new nonce while
  the old transaction might still land. A batch of case events is one transaction for up to hundreds of entries,
  which is why the raw bytes live here once rather than on every row.

A third table, ``receipt_cases``, remembers every case this outbox opened with a flagged id (top bit set: a case
with a receipt), with the outbox rows of its Opened event and of its receipt. It answers two questions: which id a
later event of the agency's reference must use (``ledger.importer.CaseIds``: the same reference always finds the
same case), and whether a receipt may go out (only after its case's Opened event is recorded; if that was refused,
the receipt is refused too — see ``ledger.writer.sender``). It holds case ids only: no reference, and never a receipt
code.

Every state change is one SQLite transaction (``BEGIN IMMEDIATE … COMMIT``), so a crash leaves each row either
before or after a change, never half way. ``synchronous=FULL`` (the default) makes a commit survive power loss;
``NORMAL`` survives a crash of the process but not of the machine, and is several times faster per commit.
Records hold no personal data (the ledger's records are codes, times and hashes), so none is stored here either.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_hash.auto import keccak

from ledger.errors import OutboxError
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Commitment,
    Correction,
    Dispute,
    EntryKind,
    Filing,
    FilingAnswer,
    HolidayCalendar,
    Rating,
    Receipt,
    ReceiptClaim,
    Record,
    Retirement,
    SignerChange,
    is_receipt_case,
)

SCHEMA_VERSION = 2  # 2: receipt_cases

#: Record types an outbox row may hold, by name; ratings and disputes are relayed citizens' records
#: (``ledger.relay.store``).
RECORD_TYPES: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (
        AgencyRegistration, SignerChange, Commitment, Retirement, CaseEvent, Correction, HolidayCalendar, Receipt,
        Rating, Dispute, Filing, FilingAnswer, ReceiptClaim,
    )
}


class OutboxState(str, enum.Enum):
    """Life of an outbox row."""

    PENDING = "pending"  # stored, not yet in a signed transaction
    SENT = "sent"  # in a signed transaction that may or may not be mined yet
    RECORDED = "recorded"  # on chain; `seq` is its ledger sequence number
    FAILED = "failed"  # refused (e.g. the contract reverted); `error` says why; `Outbox.requeue` sends it again


class TxState(str, enum.Enum):
    """Life of a signed transaction."""

    SENT = "sent"  # signed and stored; broadcast or about to be; outcome unknown
    MINED = "mined"  # mined with status 1: its entries are recorded
    REVERTED = "reverted"  # mined with status 0: its entries were not recorded
    DROPPED = "dropped"  # can never be mined (its nonce was used by another transaction)


@dataclass(frozen=True)
class OutboxItem:
    """One outbox row, as read at one moment (re-read it for its current state)."""

    id: int
    idempotency_key: str
    kind: EntryKind
    record_type: str
    record_json: str
    record_hash: str
    state: OutboxState
    tx_nonce: int | None
    tx_hash: str | None
    seq: int | None
    error: str | None
    revert_data: str | None
    attempts: int
    created_at: float
    updated_at: float

    @cached_property
    def record(self) -> Record:
        """The record, rebuilt (and validated again) from its stored JSON."""
        return record_from_json(self.record_type, self.record_json)


@dataclass(frozen=True)
class ReceiptCaseRow:
    """A case this outbox opened with a flagged id: the rows of its Opened event and of its receipt (None when not
    submitted here, or pruned after it was recorded), with their states."""

    case_id: bytes
    opened_id: int | None
    opened_state: OutboxState | None
    receipt_id: int | None
    receipt_state: OutboxState | None

    @property
    def opened(self) -> bool:
        """The case was (or is being) opened with this id: its Opened row is not refused."""
        return self.opened_state is not OutboxState.FAILED

    @property
    def has_receipt(self) -> bool:
        """A receipt was submitted for it and not refused (it is pending, sent or recorded)."""
        return self.receipt_id is not None and self.receipt_state is not OutboxState.FAILED


@dataclass(frozen=True)
class OutboxTx:
    """A signed transaction, as stored before it was broadcast."""

    tx_hash: str
    sender: str
    nonce: int
    raw: bytes
    state: TxState
    entries: int
    created_at: float
    updated_at: float


def record_json(record: Record) -> str:
    """The record's fields as canonical JSON (bytes as 0x-hex, enums as numbers), enough to rebuild it."""
    fields = {name: _jsonable(value) for name, value in record.model_dump().items()}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_from_json(record_type: str, text: str) -> Record:
    try:
        cls = RECORD_TYPES[record_type]
    except KeyError:
        raise OutboxError(f"unknown record type {record_type!r} in the outbox") from None
    return cls.model_validate(json.loads(text))


@contextmanager
def immediate_transaction(db: sqlite3.Connection, lock: threading.RLock) -> Iterator[sqlite3.Connection]:
    """One write transaction on `db` (opened in autocommit mode), taken with ``BEGIN IMMEDIATE`` under `lock` (the
    connection's users in this process): committed when the block ends, rolled back when it raises. The outbox's and
    the relay store's."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def default_idempotency_key(signer: str, record: Record, record_hash: bytes | None = None) -> str:
    """``0x``-hex of keccak(signer address ‖ entry kind ‖ record struct hash): identical records are one entry."""
    struct_hash_ = record.struct_hash() if record_hash is None else record_hash
    return "0x" + keccak(bytes.fromhex(signer.removeprefix("0x")) + bytes([int(record.KIND)]) + struct_hash_).hex()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, enum.IntEnum):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    tx_hash    TEXT PRIMARY KEY,      -- 0x-hex
    sender     TEXT NOT NULL,         -- checksummed address that signed it
    nonce      INTEGER NOT NULL,
    raw        BLOB NOT NULL,         -- the signed bytes: re-broadcast as they are, never re-signed
    state      TEXT NOT NULL CHECK (state IN ('sent', 'mined', 'reverted', 'dropped')),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_by_sender ON transactions (sender, state, nonce);
CREATE TABLE IF NOT EXISTS entries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,   -- submission order
    idempotency_key TEXT NOT NULL UNIQUE,
    kind            INTEGER NOT NULL,                    -- EntryKind
    record_type     TEXT NOT NULL,                       -- records.py class name
    record_json     TEXT NOT NULL,
    record_hash     TEXT NOT NULL,                       -- EIP-712 struct hash, 0x-hex
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'recorded', 'failed')),
    tx_hash         TEXT REFERENCES transactions (tx_hash),
    tx_nonce        INTEGER,
    tx_index        INTEGER,                             -- position within its transaction (batches)
    seq             INTEGER,
    error           TEXT,
    revert_data     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_state ON entries (state, id);
CREATE INDEX IF NOT EXISTS entries_by_tx ON entries (tx_hash, tx_index);
CREATE TABLE IF NOT EXISTS receipt_cases (
    case_id    TEXT PRIMARY KEY,                         -- 0x-hex case id, top bit set
    opened_id  INTEGER REFERENCES entries (id) ON DELETE SET NULL,  -- its Opened event's row
    receipt_id INTEGER REFERENCES entries (id) ON DELETE SET NULL,  -- its Receipt's row
    created_at REAL NOT NULL
);
"""

_ITEM_COLUMNS = (
    "id, idempotency_key, kind, record_type, record_json, record_hash, state, tx_nonce, tx_hash, seq, error, "
    "revert_data, attempts, created_at, updated_at"
)


# Plain dict lookups: calling an Enum class costs microseconds, and a flush reads thousands of rows.
_KINDS = {int(kind): kind for kind in EntryKind}
_STATES = {state.value: state for state in OutboxState}


def _item(row: Sequence[Any]) -> OutboxItem:
    return OutboxItem(
        id=row[0],
        idempotency_key=row[1],
        kind=_KINDS[row[2]],
        record_type=row[3],
        record_json=row[4],
        record_hash=row[5],
        state=_STATES[row[6]],
        tx_nonce=row[7],
        tx_hash=row[8],
        seq=row[9],
        error=row[10],
        revert_data=row[11],
        attempts=row[12],
        created_at=row[13],
        updated_at=row[14],
    )


class Outbox:
    """The durable outbox. Thread-safe: one connection, one lock, one SQLite transaction per change."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are opened explicitly (BEGIN IMMEDIATE) so each change is atomic.
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"outbox {self.path}: the file system does not support SQLite's WAL mode")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        self._migrate()

    # -- plumbing

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db, self._lock)

    def _migrate(self) -> None:
        with self._lock:
            try:
                # executescript commits on its own; every statement is idempotent (IF NOT EXISTS).
                self._db.executescript(_SCHEMA)
                with self._transaction() as db:
                    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                    if row is None:
                        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    elif int(row[0]) > SCHEMA_VERSION:
                        raise OutboxError(
                            f"outbox {self.path} has schema version {row[0]}, newer than this package's "
                            f"{SCHEMA_VERSION}: upgrade civic-ledger"
                        )
                    elif int(row[0]) < SCHEMA_VERSION:
                        self._upgrade_to_2(db)
                        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            except sqlite3.DatabaseError as exc:
                raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    @staticmethod
    def _upgrade_to_2(db: sqlite3.Connection) -> None:
        """1 → 2: receipt_cases (made by the schema script) learns the openings already here whose id has its top
        bit set. Before receipts, a case id was the bare HMAC of its reference, top bit and all; now an id without a
        receipt has the bit cleared, so those cases' later events must be told to keep the old id."""
        rows = db.execute(
            "SELECT id, record_json, created_at FROM entries WHERE record_type = 'CaseEvent' AND state != 'failed'"
        ).fetchall()
        for item_id, text, created_at in rows:
            fields = json.loads(text)
            case_id = str(fields.get("case_id", ""))
            if fields.get("action") == int(CaseAction.OPENED) and len(case_id) == 66 and int(case_id[2:4], 16) >= 0x80:
                db.execute(
                    "INSERT INTO receipt_cases (case_id, opened_id, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (case_id) DO NOTHING",
                    (case_id, item_id, created_at),
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    # -- submitting

    def add(self, record: Record, idempotency_key: str, *, record_hash: bytes | None = None) -> tuple[OutboxItem, bool]:
        """Store a record as a pending entry, or return the entry already stored under that key.

        Returns ``(item, created)``. A key already used for a *different* record is an :class:`OutboxError`:
        that is a bug in the caller's choice of keys, and silently dropping either record would lose one.
        """
        return self.add_many([(record, idempotency_key, record_hash)])[0]

    def add_many(
        self, entries: Iterable[tuple[Record, str, bytes | None]]
    ) -> list[tuple[OutboxItem, bool]]:
        """Store many records in one SQLite transaction (one disk sync for all of them)."""
        prepared = []
        for record, key, record_hash in entries:
            hashed = record.struct_hash() if record_hash is None else record_hash
            prepared.append((record, key, "0x" + hashed.hex(), record_json(record)))
        out: list[tuple[OutboxItem, bool]] = []
        now = time.time()
        with self._transaction() as db:
            for record, key, hash_hex, text in prepared:
                kind, type_name = int(record.KIND), type(record).__name__
                cursor = db.execute(
                    "INSERT INTO entries (idempotency_key, kind, record_type, record_json, record_hash, state, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) "
                    "ON CONFLICT (idempotency_key) DO NOTHING",
                    (key, kind, type_name, text, hash_hex, now, now),
                )
                if cursor.rowcount == 1:
                    item = OutboxItem(
                        id=int(cursor.lastrowid or 0), idempotency_key=key, kind=EntryKind(kind),
                        record_type=type_name, record_json=text, record_hash=hash_hex, state=OutboxState.PENDING,
                        tx_nonce=None, tx_hash=None, seq=None, error=None, revert_data=None, attempts=0,
                        created_at=now, updated_at=now,
                    )
                    item.__dict__["record"] = record  # spare a rebuild from JSON
                    out.append((item, True))
                    self._remember(db, record, item.id, now)
                    continue
                existing = _item(
                    db.execute(f"SELECT {_ITEM_COLUMNS} FROM entries WHERE idempotency_key = ?", (key,)).fetchone()
                )
                if existing.record_hash != hash_hex or existing.record_type != type_name:
                    raise OutboxError(
                        f"idempotency key {key} is already used by outbox entry {existing.id} for a different record"
                    )
                out.append((existing, False))
        return out

    @staticmethod
    def _remember(db: sqlite3.Connection, record: Record, item_id: int, now: float) -> None:
        """Link a new Opened event with a flagged id, or a receipt, to its case in ``receipt_cases``. A link to a
        refused row is replaced; a link to a live one stays (the first Opened, the first receipt: the contract
        refuses a second receipt anyway)."""
        if type(record) is CaseEvent:
            if record.action is not CaseAction.OPENED or not is_receipt_case(record.case_id):
                return
            column = "opened_id"
        elif type(record) is Receipt:
            column = "receipt_id"
        else:
            return
        db.execute(
            f"INSERT INTO receipt_cases (case_id, {column}, created_at) VALUES (?, ?, ?) "
            f"ON CONFLICT (case_id) DO UPDATE SET {column} = excluded.{column} "
            f"WHERE receipt_cases.{column} IS NULL OR EXISTS (SELECT 1 FROM entries e "
            f"WHERE e.id = receipt_cases.{column} AND e.state = 'failed')",
            ("0x" + record.case_id.hex(), item_id, now),
        )

    # -- reading

    def receipt_case(self, case_id: bytes) -> ReceiptCaseRow | None:
        """What this outbox knows of a case opened with a flagged id, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT r.opened_id, o.state, r.receipt_id, x.state FROM receipt_cases r "
                "LEFT JOIN entries o ON o.id = r.opened_id LEFT JOIN entries x ON x.id = r.receipt_id "
                "WHERE r.case_id = ?",
                ("0x" + bytes(case_id).hex(),),
            ).fetchone()
        if row is None:
            return None
        return ReceiptCaseRow(
            case_id=bytes(case_id), opened_id=row[0], opened_state=None if row[1] is None else _STATES[row[1]],
            receipt_id=row[2], receipt_state=None if row[3] is None else _STATES[row[3]],
        )

    def opened_with_receipt(self, case_id: bytes) -> bool:
        """Whether this outbox opened the case with this (flagged) id — its Opened row not refused. A case whose
        Opened row was pruned after it was recorded still counts: the link outlives the row."""
        return bool(self.opened_flagged([case_id]))

    def opened_flagged(self, case_ids: Sequence[bytes]) -> set[bytes]:
        """Of these (flagged) case ids, the ones this outbox opened a case with (:meth:`opened_with_receipt`)."""
        found: set[bytes] = set()
        ids = list(case_ids)
        for start in range(0, len(ids), 500):
            chunk = ["0x" + bytes(c).hex() for c in ids[start : start + 500]]
            with self._lock:
                rows = self._db.execute(
                    f"SELECT r.case_id FROM receipt_cases r LEFT JOIN entries o ON o.id = r.opened_id "
                    f"WHERE r.case_id IN ({','.join('?' * len(chunk))}) AND (o.state IS NULL OR o.state != 'failed')",
                    chunk,
                ).fetchall()
            found.update(bytes.fromhex(row[0][2:]) for row in rows)
        return found

    def get(self, item_id: int) -> OutboxItem | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_ITEM_COLUMNS} FROM entries WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else _item(row)

    def get_by_key(self, idempotency_key: str) -> OutboxItem | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM entries WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return None if row is None else _item(row)

    def items(
        self,
        state: OutboxState | None = None,
        *,
        after_id: int = 0,
        up_to_id: int | None = None,
        limit: int | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[OutboxItem]:
        """Rows in submission order, optionally filtered."""
        params: list[int | str]
        where, params = ["id > ?"], [after_id]
        if state is not None:
            where.append("state = ?")
            params.append(OutboxState(state).value)
        if up_to_id is not None:
            where.append("id <= ?")
            params.append(up_to_id)
        if ids is not None:
            if not ids:
                return []
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params += list(ids)
        sql = f"SELECT {_ITEM_COLUMNS} FROM entries WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return [_item(row) for row in self._db.execute(sql, params)]

    def pending(self, *, after_id: int = 0, up_to_id: int | None = None, limit: int = 5000) -> list[OutboxItem]:
        return self.items(OutboxState.PENDING, after_id=after_id, up_to_id=up_to_id, limit=limit)

    def counts(self) -> dict[OutboxState, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM entries GROUP BY state").fetchall()
        found = {OutboxState(state): count for state, count in rows}
        return {state: found.get(state, 0) for state in OutboxState}

    def count(self, state: OutboxState) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM entries WHERE state = ?", (OutboxState(state).value,)
            ).fetchone()
        return int(row[0])

    def max_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()[0])

    def tx_items(self, tx_hash: str) -> list[OutboxItem]:
        """The rows a transaction carries, in their order within it."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM entries WHERE tx_hash = ? ORDER BY tx_index", (tx_hash,)
            ).fetchall()
        return [_item(row) for row in rows]

    def transaction(self, tx_hash: str) -> OutboxTx | None:
        found = self.transactions(tx_hash=tx_hash)
        return found[0] if found else None

    def transactions(
        self,
        *,
        state: TxState | None = None,
        sender: str | None = None,
        min_nonce: int | None = None,
        tx_hash: str | None = None,
    ) -> list[OutboxTx]:
        """Stored transactions, in nonce order (then signing order)."""
        params: list[int | str]
        where, params = ["1 = 1"], []
        if state is not None:
            where.append("t.state = ?")
            params.append(TxState(state).value)
        if sender is not None:
            where.append("t.sender = ?")
            params.append(sender)
        if min_nonce is not None:
            where.append("t.nonce >= ?")
            params.append(min_nonce)
        if tx_hash is not None:
            where.append("t.tx_hash = ?")
            params.append(tx_hash)
        sql = (
            "SELECT t.tx_hash, t.sender, t.nonce, t.raw, t.state, t.created_at, t.updated_at, "
            "(SELECT COUNT(*) FROM entries e WHERE e.tx_hash = t.tx_hash) "
            f"FROM transactions t WHERE {' AND '.join(where)} ORDER BY t.nonce, t.created_at"
        )
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [
            OutboxTx(tx_hash=r[0], sender=r[1], nonce=r[2], raw=bytes(r[3]), state=TxState(r[4]), created_at=r[5],
                     updated_at=r[6], entries=r[7])
            for r in rows
        ]

    def max_nonce(self, sender: str, states: Sequence[TxState] = (TxState.SENT, TxState.MINED)) -> int | None:
        """The highest nonce of the sender's stored transactions in those states, or None."""
        marks = ",".join("?" * len(states))
        with self._lock:
            row = self._db.execute(
                f"SELECT MAX(nonce) FROM transactions WHERE sender = ? AND state IN ({marks})",
                [sender, *(TxState(s).value for s in states)],
            ).fetchone()
        return None if row[0] is None else int(row[0])

    # -- state changes (each one SQLite transaction)

    def record_signed(self, item_ids: Sequence[int], *, tx_hash: str, sender: str, nonce: int, raw: bytes) -> None:
        """Store a signed transaction and move its rows from pending to sent — before it is broadcast."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO transactions (tx_hash, sender, nonce, raw, state, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'sent', ?, ?)",
                (tx_hash, sender, nonce, raw, now, now),
            )
            changed = db.executemany(
                "UPDATE entries SET state = 'sent', tx_hash = ?, tx_nonce = ?, tx_index = ?, error = NULL, "
                "revert_data = NULL, updated_at = ? WHERE id = ? AND state = 'pending'",
                [(tx_hash, nonce, index, now, item_id) for index, item_id in enumerate(item_ids)],
            ).rowcount
            if changed != len(item_ids):
                raise OutboxError(f"outbox rows changed under the writer while signing {tx_hash} (two writers?)")

    def record_mined(self, tx_hash: str, seqs: Sequence[int]) -> list[OutboxItem]:
        """The transaction was mined (status 1): its rows are recorded with these seqs, in tx order."""
        now = time.time()
        with self._transaction() as db:
            rows = db.execute("SELECT id FROM entries WHERE tx_hash = ? ORDER BY tx_index", (tx_hash,))
            ids = [row[0] for row in rows]
            if len(ids) != len(seqs):
                raise OutboxError(f"transaction {tx_hash} recorded {len(seqs)} entries but carries {len(ids)} rows")
            db.execute("UPDATE transactions SET state = 'mined', updated_at = ? WHERE tx_hash = ?", (now, tx_hash))
            db.executemany(
                "UPDATE entries SET state = 'recorded', seq = ?, error = NULL, revert_data = NULL, updated_at = ? "
                "WHERE id = ?",
                [(seq, now, item_id) for seq, item_id in zip(seqs, ids, strict=True)],
            )
        return self.tx_items(tx_hash)

    def record_tx_failed(
        self,
        tx_hash: str,
        state: TxState,
        error: str,
        *,
        revert_data: str | None = None,
        requeue: bool = False,
        max_attempts: int | None = None,
    ) -> list[OutboxItem]:
        """The transaction reverted or was dropped. Its rows fail with `error`, or with ``requeue`` go back to pending
        (counting an attempt) so they are planned and signed again — safe only because this transaction can no
        longer be mined. Rows that reach ``max_attempts`` fail even when requeued."""
        if state not in (TxState.REVERTED, TxState.DROPPED):
            raise ValueError("a failed transaction is reverted or dropped")
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE transactions SET state = ?, updated_at = ? WHERE tx_hash = ?", (state.value, now, tx_hash)
            )
            if requeue:
                db.execute(
                    "UPDATE entries SET state = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE 'pending' END, "
                    "attempts = attempts + 1, error = ?, revert_data = ?, updated_at = ? "
                    "WHERE tx_hash = ? AND state = 'sent'",
                    (max_attempts or 2**31, error, revert_data, now, tx_hash),
                )
            else:
                db.execute(
                    "UPDATE entries SET state = 'failed', attempts = attempts + 1, error = ?, revert_data = ?, "
                    "updated_at = ? WHERE tx_hash = ? AND state = 'sent'",
                    (error, revert_data, now, tx_hash),
                )
        return self.tx_items(tx_hash)

    def record_found(
        self, item_ids: Sequence[int], *, tx_hash: str, sender: str, nonce: int, seqs: Sequence[int]
    ) -> list[OutboxItem]:
        """Pending (or failed) rows whose records someone else put on chain — a copy of the same signed record, sent
        directly, mined before ours could be: they are recorded with that transaction (stored as mined, with no raw
        bytes: this writer never signed it, so never broadcasts it) and its seqs, in row order."""
        if len(item_ids) != len(seqs):
            raise OutboxError(f"transaction {tx_hash} recorded {len(seqs)} entries, not the {len(item_ids)} rows given")
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO transactions (tx_hash, sender, nonce, raw, state, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'mined', ?, ?) ON CONFLICT (tx_hash) DO NOTHING",
                (tx_hash, sender, nonce, b"", now, now),
            )
            changed = db.executemany(
                "UPDATE entries SET state = 'recorded', tx_hash = ?, tx_nonce = ?, tx_index = ?, seq = ?, "
                "error = NULL, revert_data = NULL, updated_at = ? WHERE id = ? AND state IN ('pending', 'failed')",
                [(tx_hash, nonce, index, seq, now, item_id)
                 for index, (item_id, seq) in enumerate(zip(item_ids, seqs, strict=True))],
            ).rowcount
            if changed != len(item_ids):
                raise OutboxError(f"outbox rows changed under the writer while recording {tx_hash} (two writers?)")
        return self.items(ids=list(item_ids))

    def record_failed(self, item_ids: Sequence[int], error: str, *, revert_data: str | None = None) -> list[OutboxItem]:
        """Pending rows refused before any transaction was signed (e.g. the gas estimate reverted)."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "UPDATE entries SET state = 'failed', attempts = attempts + 1, error = ?, revert_data = ?, "
                "updated_at = ? WHERE id = ? AND state = 'pending'",
                [(error, revert_data, now, item_id) for item_id in item_ids],
            )
        return self.items(ids=list(item_ids))

    def reopen(self, tx_hash: str) -> None:
        """A transaction recorded as mined is no longer on chain (the node lost blocks: a reorg, or a dev chain
        restarted from an older state): its rows go back to sent, so its same signed bytes are broadcast again."""
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE transactions SET state = 'sent', updated_at = ? WHERE tx_hash = ?", (now, tx_hash))
            db.execute(
                "UPDATE entries SET state = 'sent', seq = NULL, updated_at = ? "
                "WHERE tx_hash = ? AND state = 'recorded'",
                (now, tx_hash),
            )

    def requeue(self, item_ids: Sequence[int]) -> int:
        """Operator action: failed rows go back to pending, to be sent again (after the cause was fixed)."""
        now = time.time()
        with self._transaction() as db:
            return db.executemany(
                "UPDATE entries SET state = 'pending', attempts = 0, error = NULL, revert_data = NULL, "
                "tx_hash = NULL, tx_nonce = NULL, tx_index = NULL, updated_at = ? WHERE id = ? AND state = 'failed'",
                [(now, item_id) for item_id in item_ids],
            ).rowcount

    def prune(self, before: float) -> int:
        """Delete recorded rows last changed before `before` (unix time), and mined transactions left without rows.
        A pruned entry's idempotency key is forgotten: submitting the same record again writes it again."""
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM entries WHERE state = 'recorded' AND updated_at < ?", (before,)).rowcount
            db.execute(
                "DELETE FROM transactions WHERE state IN ('mined', 'reverted', 'dropped') AND updated_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.tx_hash = transactions.tx_hash)",
                (before,),
            )
        return deleted
