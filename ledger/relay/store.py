"""The relay's durable store: every accepted submission, the lanes its records are sent through, what each agency
key has been charged, and citizens' off-chain texts. It touches the SQLite files of one relay directory
(``relays.sqlite``, each lane's outbox, a lock file) and reads the chain's latest block; it checks no signature
(:mod:`ledger.relay.verify` did) and sends nothing (:mod:`ledger.relay.writer` does).

- :class:`RelayStore` keeps every accepted submission (the signed envelope: signer, nonce, deadline, signature,
  records) in a small SQLite file next to the writer's :class:`~ledger.writer.outbox.Outbox`, and puts its records into
  that outbox, one row per entry (:func:`row_key`). A submission is keyed by
  :func:`~ledger.relay.verify.relay_key`: the same signed message submitted twice is the same submission.
  Submissions are serialised (a lock across threads and processes), so the nonce check — the signer's on-chain
  nonce plus its submissions not yet settled — and the insert cannot interleave.
- Budgets. Each agency key's submissions are charged to it (:mod:`ledger.relay.budgets`: transactions and gas per
  rolling hour and day, gas estimated until the receipts say what was paid); one that would pass a budget is refused
  with :class:`~ledger.relay.budgets.BudgetExceeded` before anything is stored, inside the same lock as the nonce
  check. Citizens' records are never charged to an agency.
- Two lanes. Agencies' submissions and citizens' ratings and disputes have an outbox each (``outbox.sqlite``,
  ``citizens-outbox.sqlite``) and a relay writer each, sending from a key each (:data:`LANES`), so each lane has its
  own nonces: no backlog of agency batches, however long, sits in front of a rating — not in the outbox, not in the
  relayer's nonce order.

A crash between storing the envelope and adding its outbox rows leaves an envelope without rows; the store notices
and queues it before anything else (on opening, and before every submission), so submission order — and so each
signer's nonce order — is kept.

Citizens' records: :meth:`RelayStore.submit_citizen` stores the envelope of a checked rating or dispute
(:func:`~ledger.relay.verify.check_citizen_signature`; the receipt address as signer) together with a row naming the
case — so a second rating of a case, or a second dispute of a closure, is refused while the first is in flight — and
the off-chain text, if the citizen wrote one: the comment or reason, the random salt its on-chain hash was made with
(``keccak256(salt ‖ utf8(text))``) and whether the citizen agreed to publish it. That text lives here only: never on
chain, never in the index (which must stay rebuildable from the chain), never in a log. :class:`CitizenFiles` reads
it back, and the state of citizens' submissions, without a chain connection.
"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from eth_utils import to_checksum_address
from web3.exceptions import Web3RPCError

from ledger.chain.contract import Ledger
from ledger.errors import NodeUnavailable, OutboxError
from ledger.filings import FilingContent, attachment_of
from ledger.records import Dispute, Filing, Rating, ReceiptClaim, Record
from ledger.relay.budgets import BudgetBook, BudgetUse, RelayBudgets, estimated_gas
from ledger.relay.verify import (
    CITIZEN_TYPES,
    OffChainText,
    RelayRefused,
    SignedCitizenRecord,
    SignedRecord,
    StaleNonce,
)
from ledger.writer.outbox import (
    Outbox,
    OutboxItem,
    OutboxState,
    immediate_transaction,
    record_from_json,
    record_json,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayStatus:
    key: str
    state: str  # pending | sent | recorded | failed
    signer: str
    agency_id: bytes
    primary_type: str
    nonce: int
    deadline: int
    record_hash: str
    entries: int
    created_at: float
    tx_hash: str | None = None
    #: seq of each recorded entry, in order
    seqs: tuple[int, ...] = ()
    #: for failed submissions: the decoded custom error's name (or a short reason) and a message
    error_name: str | None = None
    error: str | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS relays (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,   -- submission order
    key          TEXT NOT NULL UNIQUE,                -- relay_key(signer, digest)
    signer       TEXT NOT NULL,
    agency_id    TEXT NOT NULL,                       -- 0x-hex bytes32, as authorised when accepted
    primary_type TEXT NOT NULL,
    nonce        TEXT NOT NULL,                       -- uint256, zero-padded decimal so that text order is number order
    deadline     TEXT NOT NULL,
    signature    BLOB NOT NULL,
    record_type  TEXT NOT NULL,
    records_json TEXT NOT NULL,                       -- JSON list of the records (ledger.writer.outbox.record_json)
    record_hash  TEXT NOT NULL,
    entries      INTEGER NOT NULL,
    queued       INTEGER NOT NULL DEFAULT 0,          -- its rows are in the outbox
    settled      TEXT,                                -- NULL until recorded or failed
    created_at   REAL NOT NULL,
    accepted_block INTEGER                            -- the chain's latest block when it was accepted
);
CREATE INDEX IF NOT EXISTS relays_by_signer ON relays (signer, settled, nonce);
CREATE INDEX IF NOT EXISTS relays_unqueued ON relays (queued, id);
-- Citizens' submissions (ratings and disputes; their envelope is in relays, signer = the receipt address, nonce and
-- deadline 0): the case they are about, and the off-chain text of the comment or reason, if any. Never in the index.
CREATE TABLE IF NOT EXISTS citizen_records (
    key          TEXT PRIMARY KEY REFERENCES relays (key),
    primary_type TEXT NOT NULL,                       -- Rating | Dispute
    agency_id    TEXT NOT NULL,                       -- 0x-hex bytes32
    case_id      TEXT NOT NULL,                       -- 0x-hex bytes32
    closure      INTEGER,                             -- disputes: the closure disputed
    text_hash    TEXT NOT NULL,                       -- commentHash or reasonHash, 0x-hex
    salt         BLOB,                                -- the text's salt and the text, when the citizen wrote one
    text         TEXT,
    publish      INTEGER NOT NULL DEFAULT 0           -- whether the citizen agreed to its publication
);
CREATE INDEX IF NOT EXISTS citizen_records_by_case ON citizen_records (agency_id, case_id, primary_type);
-- Citizens' filings (their envelope is in relays, signer = the filer's receipt key): what the request says, private
-- to the agency asked. ``content`` is the canonical JSON the filing's contentHash commits to (with ``salt``:
-- ledger.filings.FilingContent), ``photos`` each photo's bytes. Never on chain, in the index or in a log.
CREATE TABLE IF NOT EXISTS filing_contents (
    key          TEXT PRIMARY KEY REFERENCES relays (key),
    agency_id    TEXT NOT NULL,                       -- 0x-hex bytes32
    receipt      TEXT NOT NULL,                       -- the filer's key (checksummed), as on chain
    content_hash TEXT NOT NULL,                       -- 0x-hex, as on chain
    salt         BLOB NOT NULL,
    content      TEXT NOT NULL,
    created_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS filing_contents_by_filing ON filing_contents (receipt, content_hash);
CREATE INDEX IF NOT EXISTS filing_contents_by_agency ON filing_contents (agency_id, created_at);
CREATE TABLE IF NOT EXISTS filing_photos (
    key          TEXT NOT NULL REFERENCES filing_contents (key),
    position     INTEGER NOT NULL,
    media_type   TEXT NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (key, position)
);
"""

#: ratings and disputes of one agency's cases that may wait in the citizens' lane at a time (see
#: ``RelayStore._refuse_full_queue``): a real citizen waits behind at most this many per agency
CITIZEN_QUEUE_PER_AGENCY = 20
#: what a citizen refused ``citizen_queue_full`` is told to wait (a few blocks drain a queue that size)
CITIZEN_QUEUE_RETRY_SECONDS = 60
#: filings to one agency that may wait in the citizens' lane at a time, and that the relay takes per rolling day
#: (``RelayStore._refuse_filing_flood``): a flood of filings at one agency never costs the relayer more than that, nor
#: delays another agency's filers behind more than that many
FILING_QUEUE_PER_AGENCY = 50
FILINGS_PER_AGENCY_PER_DAY = 2000

#: the citizens' primary types as an SQL list (their submissions have no nonce)
_CITIZEN_TYPE_LIST = ", ".join(f"'{name}'" for name in CITIZEN_TYPES)

_COLUMNS = (
    "key, signer, agency_id, primary_type, nonce, deadline, signature, record_type, records_json, record_hash, "
    "entries, queued, settled, created_at"
)
#: the same columns of ``relays`` aliased ``r``, for queries that join it
_RELAY_COLUMNS = ", ".join(f"r.{c.strip()}" for c in _COLUMNS.split(","))


@dataclass(frozen=True)
class _Envelope:
    key: str
    signer: str
    agency_id: bytes
    primary_type: str
    nonce: int
    deadline: int
    signature: bytes
    record_type: str
    records_json: str
    record_hash: str
    entries: int
    queued: bool
    settled: str | None
    created_at: float

    def records(self) -> list[Record]:
        return [record_from_json(self.record_type, json.dumps(r)) for r in json.loads(self.records_json)]

    def row_keys(self) -> list[str]:
        return [row_key(self.key, i) for i in range(self.entries)]


def _envelope(row: Sequence[Any]) -> _Envelope:
    return _Envelope(row[0], row[1], bytes.fromhex(row[2][2:]), row[3], int(row[4]), int(row[5]), bytes(row[6]),
                     row[7], row[8], row[9], row[10], bool(row[11]), row[12], row[13])


def _records_json(records: Sequence[Record]) -> str:
    """The records as stored in ``relays.records_json``, checked to read back as they are: a record the outbox could
    not rebuild would otherwise be stored, then fail to queue, and stand in front of every later submission."""
    text = json.dumps([json.loads(record_json(r)) for r in records], separators=(",", ":"))
    try:
        for r in json.loads(text):
            record_from_json(type(records[0]).__name__, json.dumps(r))
    except (OutboxError, ValueError) as exc:
        raise OutboxError(f"a {type(records[0]).__name__} cannot be stored for relaying: {exc}") from exc
    return text


def _insert_citizen_envelope(db: sqlite3.Connection, signed: SignedCitizenRecord, agency_hex: str, texts: str,
                             now: float, head: int) -> None:
    """The ``relays`` row of a citizen's signed record (a rating, dispute, claim or filing): one entry, no nonce and
    no deadline, the key that signed it as signer."""
    db.execute(
        f"INSERT INTO relays ({_COLUMNS}, accepted_block) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?)",
        (signed.key, signed.signer, agency_hex, signed.primary_type, _nonce_text(0), _nonce_text(0), signed.signature,
         type(signed.record).__name__, texts, "0x" + signed.record_hash.hex(), 1, now, head),
    )


def row_key(key: str, index: int) -> str:
    """Outbox idempotency key of entry `index` of a submission."""
    return f"{key}/{index}"

def _nonce_text(value: int) -> str:
    return f"{value:078d}"  # 2**256 has 78 digits


#: the relay's lanes: agencies' signed records, and citizens' ratings and disputes. Each has its own outbox and relay
#: writer, sending from its own key (the key's name in the service's ``ledger.chain.keys.KeyStore``,
#: ``DATA_DIR/keys``), so neither waits for the other.
AGENCY_LANE, CITIZEN_LANE = "agencies", "citizens"
LANES: dict[str, tuple[str, str]] = {
    # lane: (outbox file in the relay directory, relayer key name)
    AGENCY_LANE: ("outbox.sqlite", "relayer"),
    CITIZEN_LANE: ("citizens-outbox.sqlite", "relayer-citizens"),
}


def lane_of(primary_type: str) -> str:
    return CITIZEN_LANE if primary_type in CITIZEN_TYPES else AGENCY_LANE


class RelayStore:
    """Accepted submissions and the outbox their entries go through. Safe to share between threads, and between
    processes on one machine (SQLite files plus a lock file)."""

    def __init__(
        self,
        directory: Path | str,
        ledger: Ledger,
        *,
        synchronous: str = "FULL",
        budgets: RelayBudgets | None = None,
        citizen_queue_per_agency: int = CITIZEN_QUEUE_PER_AGENCY,
        filing_queue_per_agency: int = FILING_QUEUE_PER_AGENCY,
        filings_per_agency_per_day: int = FILINGS_PER_AGENCY_PER_DAY,
    ) -> None:
        """:param budgets: what each agency key may make the relayer pay for (default :class:`RelayBudgets`)
        :param citizen_queue_per_agency: ratings, disputes and claims of one agency's cases that may wait in the
            citizens' lane at a time (:data:`CITIZEN_QUEUE_PER_AGENCY`)
        :param filing_queue_per_agency: filings to one agency that may wait at a time (:data:`FILING_QUEUE_PER_AGENCY`)
        :param filings_per_agency_per_day: filings to one agency taken per rolling 24 hours
            (:data:`FILINGS_PER_AGENCY_PER_DAY`)"""
        if min(citizen_queue_per_agency, filing_queue_per_agency, filings_per_agency_per_day) < 1:
            raise ValueError("queue bounds and the daily filing budget must be >= 1")
        self.citizen_queue_per_agency = citizen_queue_per_agency
        self.filing_queue_per_agency = filing_queue_per_agency
        self.filings_per_agency_per_day = filings_per_agency_per_day
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ledger = ledger
        self.budgets = BudgetBook(budgets or RelayBudgets())
        #: the agencies' lane (and citizens' records queued before the lanes were split)
        self.outbox = Outbox(self.directory / LANES[AGENCY_LANE][0], synchronous=synchronous)
        #: the citizens' lane
        self.citizen_outbox = Outbox(self.directory / LANES[CITIZEN_LANE][0], synchronous=synchronous)
        #: called (without arguments) after rows were added to the outbox, e.g. to wake a writer
        self.on_queued: list[Callable[[], None]] = []
        self._thread_lock = threading.RLock()
        self._lock_path = self.directory / "submit.lock"
        try:
            self._db = sqlite3.connect(
                str(self.directory / "relays.sqlite"), isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(relays)")}
            if "accepted_block" not in columns:  # a store made before front-run lookups
                self._db.execute("ALTER TABLE relays ADD COLUMN accepted_block INTEGER")
            BudgetBook.create(self._db)
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot open the relay store in {self.directory}: {exc}") from exc
        with self._exclusive():
            self._queue_orphans()

    def close(self) -> None:
        with self._thread_lock:
            self._db.close()
            self.outbox.close()
            self.citizen_outbox.close()

    def lane_outbox(self, lane: str) -> Outbox:
        """The outbox of a lane (:data:`LANES`)."""
        if lane not in LANES:
            raise ValueError(f"no relay lane {lane!r}; one of {', '.join(LANES)}")
        return self.citizen_outbox if lane == CITIZEN_LANE else self.outbox

    def __repr__(self) -> str:
        return f"RelayStore({str(self.directory)!r})"

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise submissions across threads (RLock) and processes (flock on a lock file)."""
        with self._thread_lock:
            handle: IO[str] = open(self._lock_path, "a+")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                yield
            finally:
                handle.close()  # releases the flock

    # -- submitting

    def submit(
        self, signed: SignedRecord, agency_id: bytes, onchain_nonce: Callable[[], int]
    ) -> tuple[RelayStatus, bool]:
        """Store a checked submission, charge it to its signer's budgets and queue its entries; return ``(status,
        created)``. The same signed message again returns the stored submission with ``created`` False. Raises
        :class:`~ledger.relay.budgets.BudgetExceeded` when it would take the signer past a budget (checked first:
        a flood costs no node call), then :class:`StaleNonce` unless the nonce is the signer's next:
        `onchain_nonce()` (read under the lock) plus its submissions not yet settled."""
        key = signed.key
        primary_type = signed.relay_type.primary_type
        gas = estimated_gas(primary_type, len(signed.records))
        with self._exclusive():
            self._queue_orphans()
            existing = self._get(key)
            if existing is not None:
                return self._status(existing), False
            now = time.time()
            with self._thread_lock:
                self.budgets.check(self._db, signed.signer, gas, now)
            head = self._head_block()
            expected = self._next_nonce(signed.signer, onchain_nonce())
            if signed.nonce != expected:
                raise StaleNonce(signed.nonce, expected)
            records = list(signed.records)
            texts = _records_json(records)
            with self._transaction() as db:
                db.execute(
                    f"INSERT INTO relays ({_COLUMNS}, accepted_block) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?)",
                    (key, signed.signer, "0x" + agency_id.hex(), primary_type,
                     _nonce_text(signed.nonce), _nonce_text(signed.deadline), signed.signature,
                     type(records[0]).__name__, texts, "0x" + signed.record_hash.hex(), len(records), now, head),
                )
                self.budgets.charge(db, key, signed.signer, gas, now)
            envelope = self._get(key)
            assert envelope is not None
            self._queue_or_leave(envelope)
        self._notify()
        return self._status(envelope), True

    def submit_citizen(
        self, signed: SignedCitizenRecord, text: OffChainText | None = None, *, seen_block: int | None = None
    ) -> tuple[RelayStatus, bool]:
        """Store a checked rating, dispute or receipt claim (and a rating's or dispute's off-chain text) and queue it;
        return ``(status, created)``. The same signed message again returns the stored submission with ``created``
        False. While another rating of the case (another dispute of the same closure, another claim of the case) is
        pending, sent or recorded, raises :class:`RelayRefused` ``already_rated`` (``already_disputed``,
        ``already_claimed``) naming it: the contract would refuse the second anyway. `seen_block`: the latest block
        when the caller checked the record against the chain (a copy mined since then is looked for from there)."""
        record = signed.record
        if isinstance(record, Filing):
            raise TypeError("a filing is stored with its content: submit_filing")
        if text is not None and text.hash != signed.text_hash:
            raise RelayRefused("text_mismatch", "the text and salt do not hash to the record's hash")
        key = signed.key
        agency_hex, case_hex = "0x" + record.agency_id.hex(), "0x" + record.case_id.hex()
        closure = record.closure if isinstance(record, Dispute) else None
        with self._exclusive():
            self._queue_orphans()
            existing = self._get(key)
            if existing is not None:
                return self._status(existing), False
            self._refuse_in_flight(record, agency_hex, case_hex)
            self._refuse_full_queue(agency_hex)
            head = self._accepted_block(seen_block)
            texts = _records_json([record])
            with self._transaction() as db:
                _insert_citizen_envelope(db, signed, agency_hex, texts, time.time(), head)
                db.execute(
                    "INSERT INTO citizen_records (key, primary_type, agency_id, case_id, closure, text_hash, salt, "
                    "text, publish) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, signed.primary_type, agency_hex, case_hex, closure, "0x" + signed.text_hash.hex(),
                     None if text is None else bytes(text.salt), None if text is None else text.text,
                     int(text is not None and text.publish)),
                )
            envelope = self._get(key)
            assert envelope is not None
            self._queue_or_leave(envelope)
        self._notify()
        return self._status(envelope), True

    def retry_citizen(self, key: str) -> RelayStatus:
        """Send a failed rating or dispute again (its record is signed once and for all: the same record always has
        the same signature, so "sign again" is no way to retry it). The caller has checked that the chain would take
        it now. Anything but a failed citizen submission is returned as it is."""
        with self._exclusive():
            envelope = self._get(key)
            if envelope is None or envelope.primary_type not in CITIZEN_TYPES or envelope.primary_type == "Filing":
                raise RelayRefused("not_found", "no such rating, dispute or claim (a failed filing is filed anew, "
                                   "with a new key)")
            status = self._status(envelope)
            if status.state != "failed":
                return status
            record = envelope.records()[0]
            assert isinstance(record, (Rating, Dispute, ReceiptClaim))
            self._refuse_in_flight(record, "0x" + record.agency_id.hex(), "0x" + record.case_id.hex(), exclude=key)
            outbox, _ = self._first_row(envelope)
            items = [outbox.get_by_key(row) for row in envelope.row_keys()]
            outbox.requeue([item.id for item in items if item is not None])
            with self._transaction() as db:
                db.execute("UPDATE relays SET settled = NULL WHERE key = ?", (key,))
            envelope = self._get(key)
            assert envelope is not None
        self._notify()
        return self._status(envelope)

    def submit_filing(
        self, signed: SignedCitizenRecord, content: FilingContent, salt: bytes, photos: Sequence[bytes] = (),
        *, seen_block: int | None = None,
    ) -> tuple[RelayStatus, bool]:
        """Store a checked filing with its private content (the canonical content, its salt and the photos' bytes,
        in that order of ``content.attachments``) and queue it; return ``(status, created)``. The same signed filing
        again returns the stored submission with ``created`` False. Refused (:class:`RelayRefused`, nothing stored):
        ``content_mismatch`` when the content, salt or photos are not what the filing's hash commits to;
        ``receipt_in_use`` while another filing with the same key is pending, sent or recorded (a key files once);
        ``filing_queue_full`` / ``filing_budget_exhausted`` at the agency's bounds (:meth:`_refuse_filing_flood`).
        `seen_block` as for :meth:`submit_citizen`."""
        filing = signed.record
        if not isinstance(filing, Filing):
            raise TypeError("submit_filing takes a filing")
        if content.content_hash(salt) != filing.content_hash:
            raise RelayRefused("content_mismatch", "the content and salt do not hash to the filing's contentHash")
        if len(photos) != len(content.attachments) or any(
            attachment_of(a.media_type, data) != a for a, data in zip(content.attachments, photos, strict=False)
        ):
            raise RelayRefused("content_mismatch", "the photos are not those the content names")
        key, agency_hex = signed.key, "0x" + filing.agency_id.hex()
        with self._exclusive():
            self._queue_orphans()
            existing = self._get(key)
            if existing is not None:
                return self._status(existing), False
            with self._thread_lock:
                others = self._db.execute(
                    f"SELECT {_COLUMNS} FROM relays WHERE signer = ? AND primary_type = 'Filing' ORDER BY id",
                    (signed.signer,),
                ).fetchall()
            for other in others:
                status = self._status(_envelope(other))
                if status.state != "failed":
                    raise RelayRefused("receipt_in_use", f"a filing with this receipt key was submitted already "
                                       f"({status.state}): each filing is made with a new key", submission=status.key)
            now = time.time()
            self._refuse_filing_flood(agency_hex, now)
            head = self._accepted_block(seen_block)
            texts = _records_json([filing])
            with self._transaction() as db:
                _insert_citizen_envelope(db, signed, agency_hex, texts, now, head)
                db.execute(
                    "INSERT INTO filing_contents (key, agency_id, receipt, content_hash, salt, content, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, agency_hex, signed.signer, "0x" + filing.content_hash.hex(), bytes(salt),
                     content.canonical(), now),
                )
                db.executemany(
                    "INSERT INTO filing_photos (key, position, media_type, data) VALUES (?, ?, ?, ?)",
                    [(key, i, a.media_type, bytes(data))
                     for i, (a, data) in enumerate(zip(content.attachments, photos, strict=True))],
                )
            envelope = self._get(key)
            assert envelope is not None
            self._queue_or_leave(envelope)
        self._notify()
        return self._status(envelope), True

    def _refuse_filing_flood(self, agency_hex: str, now: float) -> None:
        """RelayRefused ``filing_queue_full`` while ``filing_queue_per_agency`` filings to this agency wait to be
        recorded, and ``filing_budget_exhausted`` once it was filed ``filings_per_agency_per_day`` times in the last
        24 hours (each with the seconds to wait, ``retry_after``). Filing is open to anyone; these bound what a flood
        at one agency costs the relayer and how long it holds up anyone else."""
        with self._thread_lock:
            day = self._db.execute(
                "SELECT created_at FROM filing_contents WHERE agency_id = ? AND created_at > ? ORDER BY created_at",
                (agency_hex, now - 86_400),
            ).fetchall()
            waiting_rows = self._db.execute(
                f"SELECT {_RELAY_COLUMNS} FROM relays r WHERE r.agency_id = ? AND r.primary_type = 'Filing' "
                "AND r.settled IS NULL ORDER BY r.id",
                (agency_hex,),
            ).fetchall()
        if len(day) >= self.filings_per_agency_per_day:
            retry = max(1, int(day[len(day) - self.filings_per_agency_per_day][0] + 86_400 - now) + 1)
            raise RelayRefused(
                "filing_budget_exhausted",
                f"this agency has been sent {len(day)} filings in the last 24 hours, as many as the service relays "
                f"for one agency a day ({self.filings_per_agency_per_day}); try again later",
                retry_after=retry,
            )
        waiting = sum(1 for row in waiting_rows if self._status(_envelope(row)).state not in ("recorded", "failed"))
        if waiting >= self.filing_queue_per_agency:
            raise RelayRefused(
                "filing_queue_full",
                f"{waiting} filings to this agency are waiting to be recorded; try again in a minute (each agency has "
                f"at most {self.filing_queue_per_agency} waiting at a time)",
                retry_after=CITIZEN_QUEUE_RETRY_SECONDS,
            )

    def _refuse_in_flight(self, record: Rating | Dispute | ReceiptClaim, agency_hex: str, case_hex: str,
                          exclude: str | None = None) -> None:
        """RelayRefused while another rating of the case (dispute of the closure, claim of the case) is pending,
        sent or recorded."""
        closure = record.closure if isinstance(record, Dispute) else None
        for other in self._citizen_envelopes(agency_hex, case_hex, record.TYPE_NAME, closure):
            if other.key == exclude:
                continue
            status = self._status(other)
            if status.state != "failed":
                code, what = {
                    Rating: ("already_rated", "a rating of this case"),
                    Dispute: ("already_disputed", "a dispute of this closure"),
                    ReceiptClaim: ("already_claimed", "a claim of this receipt"),
                }[type(record)]
                raise RelayRefused(code, f"{what} was submitted already ({status.state})", submission=status.key)

    def _refuse_full_queue(self, agency_hex: str) -> None:
        """RelayRefused ``citizen_queue_full`` while ``citizen_queue_per_agency`` ratings and disputes of this agency's
        cases are waiting (pending or sent). An agency that issues receipts to keys it holds could otherwise queue any
        number of ratings of its own cases ahead of other agencies' citizens; bounded per agency, its flood delays a
        real citizen by at most that many transactions per agency, and only its own citizens are told to retry."""
        rows = self._db.execute(
            f"SELECT {_RELAY_COLUMNS} FROM relays r JOIN citizen_records c ON c.key = r.key "
            "WHERE r.agency_id = ? AND r.settled IS NULL ORDER BY r.id",
            (agency_hex,),
        ).fetchall()
        waiting = sum(1 for row in rows if self._status(_envelope(row)).state not in ("recorded", "failed"))
        if waiting >= self.citizen_queue_per_agency:
            raise RelayRefused(
                "citizen_queue_full",
                f"{waiting} ratings and disputes of this agency's cases are waiting to be recorded; try again in a "
                f"minute (each agency has at most {self.citizen_queue_per_agency} waiting at a time)",
                retry_after=CITIZEN_QUEUE_RETRY_SECONDS,
            )

    def _citizen_envelopes(
        self, agency_hex: str, case_hex: str, primary_type: str, closure: int | None
    ) -> list[_Envelope]:
        query = (
            f"SELECT {_RELAY_COLUMNS} FROM citizen_records c JOIN relays r ON r.key = c.key "
            "WHERE c.agency_id = ? AND c.case_id = ? AND c.primary_type = ?"
        )
        params: list[Any] = [agency_hex, case_hex, primary_type]
        if closure is not None:
            query += " AND c.closure = ?"
            params.append(closure)
        with self._thread_lock:
            rows = self._db.execute(query + " ORDER BY r.id", params).fetchall()
        return [_envelope(row) for row in rows]

    def _queue_or_leave(self, envelope: _Envelope) -> None:
        """Queue a stored submission; if the outbox fails now (a full disk, a lock held too long), leave it stored and
        unqueued: :meth:`queue_orphans` (the relay writer calls it as it polls, and every submission first) queues it
        later, in order. The submission is durable either way; its status stays ``pending`` until then."""
        try:
            self._queue(envelope)
        except (OutboxError, sqlite3.Error) as exc:
            log.warning("a relay submission was stored but not queued yet: %s", type(exc).__name__)  # no key: a token

    def queue_orphans(self) -> None:
        """Queue what was stored but not queued (a crash, or an outbox failure, between the two), in order."""
        with self._exclusive():
            self._queue_orphans()

    def _queue(self, envelope: _Envelope) -> None:
        """Put the submission's entries into its lane's outbox (idempotent), then mark it queued."""
        records = envelope.records()
        self.lane_outbox(lane_of(envelope.primary_type)).add_many(
            (record, key, None) for record, key in zip(records, envelope.row_keys(), strict=True)
        )
        with self._transaction() as db:
            db.execute("UPDATE relays SET queued = 1 WHERE key = ?", (envelope.key,))

    def _queue_orphans(self) -> None:
        """Envelopes stored by a process that died before queuing them go into the outbox now, in their order."""
        with self._thread_lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM relays WHERE queued = 0 ORDER BY id").fetchall()
        for row in rows:
            try:
                self._queue(_envelope(row))
            except (OutboxError, sqlite3.Error) as exc:  # later ones wait behind it: submission order is kept
                log.warning("a relay submission is still not queued: %s", type(exc).__name__)  # no key: a token
                break
        if rows:
            self._notify()

    def _notify(self) -> None:
        for callback in list(self.on_queued):
            callback()

    def _first_row(self, envelope: _Envelope) -> tuple[Outbox, OutboxItem | None]:
        """The outbox holding the submission's rows, and its first row (None: not queued yet, or pruned). A
        citizen's record queued before the lanes were split is in the agencies' outbox, and is sent from there."""
        outbox = self.lane_outbox(lane_of(envelope.primary_type))
        first = outbox.get_by_key(row_key(envelope.key, 0)) if envelope.queued else None
        if first is None and envelope.queued and outbox is not self.outbox:
            legacy = self.outbox.get_by_key(row_key(envelope.key, 0))
            if legacy is not None:
                return self.outbox, legacy
        return outbox, first

    def _head_block(self) -> int:
        """The chain's latest block number: a submission's entries can only be recorded after it (where the relay
        writer looks for a copy someone else sent first)."""
        try:
            return int(self.ledger.w3.eth.block_number)
        except (OSError, Web3RPCError) as exc:  # requests' errors are OSErrors
            raise NodeUnavailable(f"cannot read the latest block: {type(exc).__name__}") from exc

    def _accepted_block(self, seen_block: int | None) -> int:
        """Where a copy of a submission may first be found: the chain's latest block now, or the block the caller
        checked it at if earlier (a copy mined between that check and now must not be missed)."""
        head = self._head_block()
        return head if seen_block is None else min(head, seen_block)

    def accepted_block(self, key: str) -> int:
        """The latest block when the submission was accepted (0 when it was accepted before this was kept)."""
        with self._thread_lock:
            row = self._db.execute("SELECT accepted_block FROM relays WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    # -- budgets

    def check_budget(self, signed: SignedRecord) -> None:
        """Raise :class:`~ledger.relay.budgets.BudgetExceeded` if the submission would take its signer past a budget
        now: a check that costs no node call, for refusing a flood before anything else is asked of the chain
        (:meth:`submit` checks again, under its lock, before it charges)."""
        gas = estimated_gas(signed.relay_type.primary_type, len(signed.records))
        with self._thread_lock:
            self.budgets.check(self._db, signed.signer, gas, time.time())

    def charge_gas(self, key: str, gas: int) -> None:
        """The relayer paid `gas` for a transaction carrying submission `key` (0: it settled without one of the
        relayer's); it replaces the submission's estimate in its signer's budgets."""
        with self._transaction() as db:
            self.budgets.settle(db, key, gas)

    def budget_usage(self, signer: str, now: float | None = None) -> list[BudgetUse]:
        """Where an agency key stands against each of its budgets."""
        with self._thread_lock:
            return self.budgets.usage(self._db, to_checksum_address(signer), time.time() if now is None else now)

    def _next_nonce(self, signer: str, onchain: int) -> int:
        """The on-chain nonce, moved past every nonce this signer has in submissions not failed (pending, sent, or
        recorded since the chain was read)."""
        taken: set[int] = set()
        with self._thread_lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM relays WHERE signer = ? AND nonce >= ? AND "
                "(settled IS NULL OR settled = 'recorded') AND primary_type NOT IN (" + _CITIZEN_TYPE_LIST + ") "
                "ORDER BY nonce",
                (signer, _nonce_text(onchain)),
            ).fetchall()
        for row in rows:
            envelope = _envelope(row)
            if self._status(envelope).state != "failed":
                taken.add(envelope.nonce)
        expected = onchain
        while expected in taken:
            expected += 1
        return expected

    # -- reading

    def status(self, key: str) -> RelayStatus | None:
        envelope = self._get(key)
        return None if envelope is None else self._status(envelope)

    def envelope(self, key: str) -> _Envelope | None:
        return self._get(key)

    def next_nonce(self, signer: str, onchain: int) -> tuple[int, int]:
        """``(next nonce, submissions of this signer not yet settled)`` given its on-chain nonce."""
        expected = self._next_nonce(signer, onchain)
        return expected, expected - onchain

    def _get(self, key: str) -> _Envelope | None:
        with self._thread_lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM relays WHERE key = ?", (key,)).fetchone()
        return None if row is None else _envelope(row)

    def _status(self, envelope: _Envelope) -> RelayStatus:
        common: dict[str, Any] = dict(
            key=envelope.key, signer=envelope.signer, agency_id=envelope.agency_id,
            primary_type=envelope.primary_type, nonce=envelope.nonce, deadline=envelope.deadline,
            record_hash=envelope.record_hash, entries=envelope.entries, created_at=envelope.created_at,
        )
        outbox, first = self._first_row(envelope)
        if first is None:  # not queued yet, or its outbox rows were pruned after it settled
            return RelayStatus(state=envelope.settled or "pending", **common)
        state = first.state.value
        seqs: tuple[int, ...] = ()
        error_name = error = None
        if first.state is OutboxState.RECORDED:
            rows = outbox.tx_items(first.tx_hash) if first.tx_hash and envelope.entries > 1 else [first]
            seqs = tuple(int(r.seq) for r in rows if r.seq is not None)
        elif first.state is OutboxState.FAILED:
            error = first.error
            if first.revert_data:
                error_name = self.ledger.decode_revert_data(first.revert_data).error_name
            else:
                error_name = "NotRelayed"
        if first.state in (OutboxState.RECORDED, OutboxState.FAILED) and envelope.settled != state:
            with self._transaction() as db:
                db.execute("UPDATE relays SET settled = ? WHERE key = ?", (state, envelope.key))
        return RelayStatus(state=state, tx_hash=first.tx_hash, seqs=seqs, error_name=error_name, error=error,
                           **common)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db, self._thread_lock)


# ---------------------------------------------------------------------- reading citizens' submissions back


@dataclass(frozen=True)
class StoredFiling:
    """A filing's private content as the relay keeps it (:meth:`RelayStore.submit_filing`)."""

    key: str
    agency_id: bytes
    receipt: str
    content: FilingContent
    salt: bytes
    #: each photo's media type and bytes, in the order of ``content.attachments``
    photos: tuple[tuple[str, bytes], ...]
    created_at: float

    def __repr__(self) -> str:  # never the content itself
        return f"StoredFiling({self.key}, {self.content!r})"


@dataclass(frozen=True)
class CitizenSubmission:
    """A rating or dispute accepted for relaying, as far as it got."""

    key: str
    primary_type: str  # Rating | Dispute
    state: str  # pending | sent | recorded | failed
    closure: int | None
    text_hash: str
    tx_hash: str | None
    seq: int | None
    created_at: float


class CitizenFiles:
    """Citizens' submissions and published texts in a relay directory, read without a chain connection or any lock
    (the read API answers with them while the relaying process writes). Each call opens the files afresh and finds
    nothing where there are none yet; nothing is ever written."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @contextmanager
    def _open(self) -> Iterator[sqlite3.Connection | None]:
        relays = self.directory / "relays.sqlite"
        if not relays.exists():
            yield None
            return
        db = sqlite3.connect(str(relays), isolation_level=None, timeout=30)
        try:
            has_table = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'citizen_records'"
            ).fetchone()
            if not has_table:
                yield None
                return
            # the citizens' lane, and the agencies' outbox, where citizens' records queued before the lanes were split
            # still are
            for alias, lane in (("cb", CITIZEN_LANE), ("ob", AGENCY_LANE)):
                outbox = self.directory / LANES[lane][0]
                if outbox.exists():
                    db.execute("ATTACH DATABASE ? AS " + alias, (str(outbox),))
            yield db
        finally:
            db.close()

    def submissions(self, agency_id: bytes, case_id: bytes) -> list[CitizenSubmission]:
        """Every rating and dispute of the case accepted here, oldest first."""
        with self._open() as db:
            if db is None:
                return []
            attached = {row[1] for row in db.execute("PRAGMA database_list")}
            joins = [f"LEFT JOIN {alias}.entries {alias}e ON {alias}e.idempotency_key = r.key || '/0'"
                     for alias in ("cb", "ob") if alias in attached]
            outbox_columns = ", ".join(
                "COALESCE(" + ", ".join([f"{alias}e.{column}" for alias in ("cb", "ob") if alias in attached]
                                        + ["NULL", "NULL"]) + ")"
                for column in ("state", "tx_hash", "seq")
            )
            outbox_join = " ".join(joins)
            rows = db.execute(
                f"SELECT r.key, c.primary_type, r.settled, c.closure, c.text_hash, r.created_at, {outbox_columns} "
                f"FROM citizen_records c JOIN relays r ON r.key = c.key {outbox_join} "
                "WHERE c.agency_id = ? AND c.case_id = ? ORDER BY r.id",
                ("0x" + agency_id.hex(), "0x" + case_id.hex()),
            ).fetchall()
        return [
            CitizenSubmission(key=row[0], primary_type=row[1], state=row[6] or row[2] or "pending", closure=row[3],
                              text_hash=row[4], tx_hash=row[7], seq=row[8], created_at=row[5])
            for row in rows
        ]

    def filing(self, receipt: str, content_hash: bytes) -> StoredFiling | None:
        """The private content of the filing made with this receipt key and content hash (both on chain: the index's
        filings row names them), checked against that hash; None when this service holds none (filed through another
        relay, or lost). Shown only to the agency asked: the caller checks who asks."""
        with self._open() as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT key, agency_id, receipt, salt, content, created_at FROM filing_contents "
                "WHERE receipt = ? AND content_hash = ? ORDER BY created_at LIMIT 1",
                (to_checksum_address(receipt), "0x" + content_hash.hex()),
            ).fetchone()
            if row is None:
                return None
            photos = tuple(
                (media_type, bytes(data)) for media_type, data in db.execute(
                    "SELECT media_type, data FROM filing_photos WHERE key = ? ORDER BY position", (row[0],)
                )
            )
        try:  # a damaged store shows nothing rather than a lie, and never raises with the content in the message
            content = FilingContent.from_canonical(row[4])
            salt = bytes(row[3])
            if len(salt) != 32 or content.content_hash(salt) != content_hash:
                return None
        except ValueError:
            return None
        if len(photos) != len(content.attachments):
            return None
        for attachment, (media_type, data) in zip(content.attachments, photos, strict=True):
            try:
                if media_type != attachment.media_type or attachment_of(attachment.media_type, data) != attachment:
                    return None
            except ValueError:
                return None
        return StoredFiling(key=row[0], agency_id=bytes.fromhex(row[1][2:]), receipt=row[2], content=content,
                            salt=salt, photos=photos, created_at=row[5])

    def published_texts(self, agency_id: bytes, case_id: bytes) -> dict[str, str]:
        """The texts of the case's ratings and disputes whose authors agreed to publish them, by their hash
        (0x-hex). Whether a hash was recorded on chain is the caller's to check (against the index)."""
        with self._open() as db:
            if db is None:
                return {}
            rows = db.execute(
                "SELECT text_hash, text FROM citizen_records WHERE agency_id = ? AND case_id = ? AND publish = 1 "
                "AND text IS NOT NULL",
                ("0x" + agency_id.hex(), "0x" + case_id.hex()),
            ).fetchall()
        return {row[0]: row[1] for row in rows}


__all__ = [
    "AGENCY_LANE",
    "CITIZEN_LANE",
    "LANES",
    "CitizenFiles",
    "CitizenSubmission",
    "RelayStatus",
    "RelayStore",
    "StoredFiling",
    "row_key",
]
