"""The indexer: follows the ledger's events into the SQL store, resumably, and survives reorganisations.

How a sync goes
    From the block after ``sync_state.last_block`` up to the head, in block ranges sized to about
    ``target_logs`` logs (never more than ``max_block_range`` blocks; halved and retried when the node says a range
    or response is too large: ``ledger.chain.reader.RangeSizer``, as the auditor sizes them), each range is: raw
    ``eth_getLogs`` (no web3 formatters; the node reads are ``ledger.chain.reader.LedgerReader``'s), decoded by
    :mod:`ledger.chain.logs`; block headers where needed; then the contract's own ``entryCount()`` and ``runningHash()``
    at the range's last block, **by block hash**, must equal the count and running hash folded over the store's
    entries plus the new ones, or the range is refused (:class:`~ledger.errors.IndexIntegrityError`). (A node that
    keeps no state that old — a pruned node — cannot answer; those ranges are checked at the first later block that
    has state, which covers them because the running hash is cumulative.) Everything a range changes — entries,
    per-kind rows, corrections, case states, block hashes and ``sync_state`` — is written in ONE transaction: a
    crash leaves the store at the end of the last range, and the next sync resumes there. The next range's logs are
    fetched in a background thread while a range is checked and written.

Finality and reorganisations
    ``blocks`` keeps the hashes of the last ``keep_blocks`` indexed blocks. Every sync first compares the stored hash
    of the last indexed block with the node's; on a difference it finds the first orphaned block. Blocks newer than
    ``head - confirmations`` are indexed at once but are not final: :meth:`Indexer.finalized_block` says up to
    where data is final, and never decreases. If the first orphaned block is above it, everything from that block on
    is rolled back (entries, per-kind rows, voids by rolled-back corrections, retirements, case states re-folded,
    due times recomputed) and indexed again from the new chain. If it is at or below it, a block already reported
    final has changed: indexing halts (``sync_state.halted_reason``, a CRITICAL log line, the optional ``alert``
    callback) and raises :class:`~ledger.errors.ReorgTooDeep` until an operator calls :meth:`Indexer.clear_halt`.

Merkle-anchored batches (``ledger.batches``)
    A ``BatchAnchored`` log stands for ``count`` case events, entries ``seq`` to ``seq + count - 1``, whose records
    are in the published batch file. The range check folds the anchor's entry hash once and advances the count by
    ``count``, as the contract does. Once the contract vouches for the range, each anchor's file is read from the
    batch directory (``batch_dir``: a ``BatchStore`` directory, files named by their hash; the service's is
    ``<data dir>/batches``) and checked against the anchor by :func:`ledger.batches.read.read_batch` — the bytes hash to
    the file hash, every line is a canonical, well-formed case event, the count and the Merkle root are the
    anchored ones. The batch then gives one ``batches`` row and, per event, an ``entries`` row exactly like a case
    event written alone (kind CASE_EVENT, the anchor's agency and signer as actor, its record hash, and its own entry
    hash ``entry_hash(seq, CASE_EVENT, agency, signer, record_hash)`` — shown, not folded), whose proof columns are
    the anchoring transaction's, whose ``running_hash`` is the head after the batch, and whose ``batch_seq`` and
    ``batch_index`` say where it sits; plus its ``case_events`` row and the case fold, so metrics and the API treat
    it as any other case event — except that a batched event of a case whose id carries ``RECEIPT_CASE_FLAG`` is
    never folded into its case (``ledger.cases.batched_event_applies``): its entry and ``case_events`` row are written,
    the fold leaves it out (and it answers no dispute). Ranges are sized by entries, batched ones included.

Withheld batches (a missing or impossible file never stops indexing)
    A batch whose file cannot be read is withheld, not waited for: the range check still folds its anchor once and
    advances the count by ``count`` (the contract vouches for that), its ``batches`` row is written with ``withheld``
    and ``withheld_reason`` saying why, no ``entries`` row exists for its seqs, and indexing goes on with everything
    after it; one CRITICAL log line and one ``alert`` per batch, when its range is written. ``withheld`` is
    ``missing`` when no file with the anchored hash is in the batch directory (or none is configured): a sync looks
    again when the directory changed since it last looked (a file added, removed or renamed there), and every
    :data:`WITHHELD_FULL_LOOK_SECONDS` anyway — one listing of the directory, then a read only of a file that is new
    or changed since it was last looked at; in between, only the files found wanting (present under the anchored
    hash's name, but not that file) are looked at again. Thousands of batches withheld on purpose thus cost an idle
    sync nothing — and when the right file appears, its entries, case events and the
    corrections aimed at them are written at their seqs and the cases they touch re-folded (their earlier-seq events
    arrive after later ones), all in one transaction, and the row is no longer withheld: the store then holds exactly
    what a sync with the file there from the start gives. It is ``impossible`` when the file with the anchored hash is
    malformed or holds another count or root: the anchor fixes the file by its hash, so no file can ever match, and the
    batch stays withheld for ever. ``sync_state.halted_reason`` is for deep reorganisations only.

Derived rows (a pure function of the entries; dropping the store and re-syncing gives the same rows)
    * Corrections (the rule is ``ledger.cases.voided_entries``): a correction is ``applied`` when its target
      belongs to the same agency, is not voided already and is not a receipt, rating or dispute (those are the
      citizen's: an agency cannot void them); it then sets the target's ``entries.voided_by``.
      Voiding is final: a correction that voids another correction does not restore that one's target (record the
      entry again instead). Voiding a case event re-folds its case. Voiding a commitment version, retirement or
      holiday calendar marks the entry only: the contract still counts that version, retirement or calendar, so
      deadlines follow the contract's view.
    * Cases: ``ledger.cases`` folds each case's non-voided events, with its receipts, ratings and disputes (rows of
      ``receipts``, ``ratings``, ``disputes``; the ``cases`` columns receipt, rating, rated_at, disputes, reopened,
      dispute_open). A case that gets new entries continues from its stored row (the same result as re-folding, see
      ``CaseProgress``), kept in a bounded in-memory cache of recently written rows so that most cases need no read;
      corrections, reorgs and cases without an Opened are re-folded from all their entries. A case with no
      non-voided Opened has no row. Only a case id with ``RECEIPT_CASE_FLAG`` can have a receipt (the contract sees
      to it), so only such cases cost a look at the receipt, rating and dispute tables.
    * Disputes: a dispute's answer (``answer_seq``, ``answer_action``, ``answered_at``) is the case's first
      non-voided Reopened or DisputeRejected event after it (``ledger.cases.dispute_answers``), set when that event
      is indexed and worked out again whenever the case is re-folded.
    * A new holiday calendar version recomputes ``due_at`` and ``on_time`` of the working-day cases of that
      jurisdiction that the year can affect.
    * Auditors and attestations (entries of no agency: ``entries.agency_id`` is ``NO_AGENCY``): an AuditorAuthorized
      entry opens an ``auditors`` row, an AuditorRevoked one closes it (``revoked_seq``); an AuditAttested entry is an
      ``attestations`` row whose ``matches_ledger`` says whether its checkpoint is the ledger the index holds
      (:func:`checkpoint_matches`: the running hash after that many entries, and that many entries at that block),
      decided when the range is written (:func:`settle_attestations`; the contract never records a count beyond the
      ledger's, so the index always has the entries by then). No correction voids them: a correction applies only to
      its own agency's entries, and no agency is the zero id.

Node access
    Reads are JSON-RPC over HTTP through the one client (``ledger.chain.rpc.JsonRpc``: keep-alive, batches, timeouts,
    no redirects); timeouts, connection errors, HTTP 5xx and 429 (``Retry-After`` honoured) and rate-limit errors
    are retried by its policy, with exponential backoff and jitter.
    The embedded eth-tester chain has no raw JSON-RPC, so it is not supported: index an anvil (or any node).
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import OperationalError

from ledger.batches import BatchStore
from ledger.batches.read import (
    WITHHELD_IMPOSSIBLE,
    WITHHELD_MISSING,
    BatchContent,
    BatchFileProblem,
    read_batch_file,
    withheld_kind,
)
from ledger.cases import (
    ANSWERS,
    CASE_STATE_FIELDS,
    FULFILLED,
    Answer,
    CaseProgress,
    CaseState,
    CommitmentVersion,
    Event,
    Feedback,
    batched_event_applies,
    correction_applies,
    dispute_answers,
    due_time,
    voided_entries,
)
from ledger.chain.contract import Chain, Ledger
from ledger.chain.logs import DecodedEntry, LogDecoder
from ledger.chain.reader import LedgerReader, RangeSizer
from ledger.chain.rpc import JsonRpc, RangeTooLarge, RetryPolicy, RpcError
from ledger.encoding import ZERO_HEAD, code_text, display_text, entry_hashes_in_order, fold
from ledger.errors import ChainMismatch, IndexIntegrityError, NodeUnavailable, ReorgTooDeep
from ledger.records import RECEIPT_CASE_FLAG, CaseAction, DeadlineUnit, EntryKind
from ledger.store.db import Store
from ledger.store.schema import (
    agencies,
    attestations,
    auditors,
    batches,
    blocks,
    case_events,
    cases,
    commitment_retirements,
    commitments,
    corrections,
    disputes,
    entries,
    holiday_calendars,
    ratings,
    receipts,
    signer_changes,
    sync_state,
)
from ledger.workdays import YearCalendar, local_day_start, year_days

log = logging.getLogger(__name__)

#: rows per statement when selecting by a list of keys (well under SQLite's and PostgreSQL's parameter limits)
_CHUNK = 400
#: per-case tables other than case_events: receipts, ratings and disputes (each row one entry, keyed by seq)
_FEEDBACK_TABLES = (receipts, ratings, disputes)

# ---------------------------------------------------------------------------------------------------- JSON-RPC


# -------------------------------------------------------------------------------------------------- reports


@dataclass
class SyncReport:
    """What one :meth:`Indexer.sync` did."""

    from_block: int
    to_block: int
    head: int
    finalized_block: int
    #: entries indexed, batched ones included (each counts), and how many of them came in Merkle-anchored batches
    entries: int = 0
    batched_entries: int = 0
    #: batches withheld by the ranges of this sync (their file missing or impossible) and the entries they stand for
    withheld_batches: int = 0
    withheld_entries: int = 0
    #: withheld batches whose file was published since: their entries written at their seqs (not in ``entries``)
    released_batches: int = 0
    ranges: int = 0
    #: blocks rolled back because of reorganisations, and how many reorganisations
    rolled_back_blocks: int = 0
    reorgs: int = 0
    #: log queries the node refused as too large (each was split)
    splits: int = 0
    entry_count: int = 0
    running_hash: bytes = ZERO_HEAD
    seconds: float = 0.0

    @property
    def entries_per_s(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else 0.0


_UNKNOWN: Any = object()  # not in the case cache
_ORPHAN: Any = object()  # cached: the case has events but no row (no non-voided Opened)


class _StateMoved(Exception):
    """Another indexer wrote to this store since this one read its state: re-read and go on from there."""


class _ReorgDetected(Exception):
    """A block the current range depends on changed while it was read: check for a reorganisation and retry."""


#: how often the withheld batches are looked for even when nothing was added to the batch directory (a file
#: overwritten in place, not renamed there, does not change the directory)
WITHHELD_FULL_LOOK_SECONDS = 600.0

_WHAT = {"missing": "file missing", "hash": "file hash differs", "count": "count differs", "root": "root differs",
         "malformed": "malformed file"}


@dataclass(frozen=True)
class Withheld:
    """Why a batch's entries are not indexed: ``kind`` is ``WITHHELD_MISSING`` or ``WITHHELD_IMPOSSIBLE``
    (``ledger.batches.read.withheld_kind``), ``reason`` the words stored and shown."""

    kind: str
    reason: str


@dataclass
class _Caches:
    """Small, slowly changing facts every range needs, mirrored from the store (reloaded after a rollback)."""

    jurisdiction: dict[str, str] = field(default_factory=dict)  # agency → jurisdiction
    versions: dict[tuple[str, str], list[CommitmentVersion]] = field(default_factory=dict)  # by seq
    calendars: dict[str, dict[int, YearCalendar]] = field(default_factory=dict)  # jurisdiction → year → latest
    calendar_versions: dict[tuple[str, int], int] = field(default_factory=dict)

    def calendars_of(self, agency: str) -> dict[int, YearCalendar]:
        return self.calendars.get(self.jurisdiction.get(agency, ""), {})


ENTRY_COLUMNS = (
    "seq", "kind", "agency_id", "actor", "record_hash", "entry_hash", "running_hash", "block_number", "block_hash",
    "block_time", "tx_hash", "log_index", "occurred_at", "voided_by", "batch_seq", "batch_index",
)
EVENT_COLUMNS = (
    "seq", "agency_id", "case_id", "action", "occurred_at", "block_time", "details_hash", "commitment_id", "district",
    "channel",
)
CASE_COLUMNS = ("agency_id", "case_id", *CASE_STATE_FIELDS)
RECEIPT_COLUMNS = ("seq", "agency_id", "case_id", "receipt", "occurred_at", "block_time")
RATING_COLUMNS = ("seq", "agency_id", "case_id", "score", "comment_hash", "receipt", "block_time")
DISPUTE_COLUMNS = (
    "seq", "agency_id", "case_id", "closure", "reason_hash", "receipt", "block_time", "answer_seq", "answer_action",
    "answered_at",
)


class _Statements:
    """The hot path's SQL, as plain DBAPI statements: executemany with tuples skips SQLAlchemy's per-row parameter
    processing, which otherwise costs more than everything else per entry."""

    def __init__(self, dialect: Any) -> None:
        ph = "?" if dialect.paramstyle == "qmark" else "%s"
        q = dialect.identifier_preparer.quote

        def insert_sql(table: Any, columns: Sequence[str]) -> str:
            if set(columns) != set(table.columns.keys()):
                raise RuntimeError(f"{table.name}: the indexer's columns do not match the schema")
            return (
                f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in columns)}) "
                f"VALUES ({', '.join([ph] * len(columns))})"
            )

        self.insert_entries = insert_sql(entries, ENTRY_COLUMNS)
        self.insert_case_events = insert_sql(case_events, EVENT_COLUMNS)
        self.insert_cases = insert_sql(cases, CASE_COLUMNS)
        self.insert_receipts = insert_sql(receipts, RECEIPT_COLUMNS)
        self.insert_ratings = insert_sql(ratings, RATING_COLUMNS)
        self.insert_disputes = insert_sql(disputes, DISPUTE_COLUMNS)
        # A dispute's answer: the case's first Reopened or DisputeRejected event after it (ledger.cases).
        self.answer_disputes = (
            f"UPDATE {q(disputes.name)} SET {q('answer_seq')} = {ph}, {q('answer_action')} = {ph}, "
            f"{q('answered_at')} = {ph} WHERE {q('agency_id')} = {ph} AND {q('case_id')} = {ph} AND "
            f"{q('answer_seq')} IS NULL AND {q('seq')} < {ph}"
        )
        self.postgresql = dialect.name == "postgresql"
        #: table name -> (PostgreSQL, SQLite) statement: which of these cases have rows in the table before a seq
        self.rows_before: dict[str, tuple[str, str]] = {}
        for table in (case_events, receipts):
            before = (
                f"SELECT DISTINCT {q('case_id')} FROM {q(table.name)} WHERE {q('agency_id')} = {ph} AND "
                f"{q('case_id')} {{}} AND {q('seq')} < {ph}"
            )
            # PostgreSQL: one array parameter; SQLite: a list of them, filled in per chunk
            self.rows_before[table.name] = (before.format(f"= ANY({ph})"), before.format("IN ({})"))
        self.update_cases = (
            f"UPDATE {q(cases.name)} SET {', '.join(f'{q(c)} = {ph}' for c in CASE_STATE_FIELDS)} "
            f"WHERE {q('agency_id')} = {ph} AND {q('case_id')} = {ph}"
        )


# -------------------------------------------------------------------------------------------------- indexer


class Indexer:
    """Indexes one deployed ledger into one store (one ledger per store). Two indexers on the same store (say the
    service's and an operator's ``sync``) are safe: their writes take turns and each notices the other's."""

    def __init__(
        self,
        chain: Chain,
        contract_address: str,
        store: Store,
        *,
        confirmations: int = 12,
        max_block_range: int = 2000,
        deploy_block: int | None = None,
        target_logs: int = 10_000,
        keep_blocks: int | None = None,
        request_timeout: float = 30.0,
        max_retries: int = 8,
        backoff: float = 0.25,
        check_code: bool = True,
        alert: Callable[[str], None] | None = None,
        rpc: JsonRpc | None = None,
        case_cache_size: int = 200_000,
        batch_dir: str | Path | None = None,
        batch_store: BatchStore | None = None,
    ) -> None:
        if confirmations < 0 or max_block_range < 1 or target_logs < 1:
            raise ValueError("confirmations must be >= 0, max_block_range and target_logs >= 1")
        self.chain = chain
        self.address = to_checksum_address(contract_address)
        self.store = store
        self.confirmations = confirmations
        self.max_block_range = max_block_range
        self.target_logs = target_logs
        #: block hashes kept for reorg detection: more than the confirmation depth, so a reorg that reaches a final
        #: block is always seen as one
        self.keep_blocks = max(keep_blocks or confirmations + 64, confirmations + 2)
        self.alert = alert
        #: where published batch files are read (``ledger.batches.BatchStore``, files named by their hash): the
        #: service keeps them in ``<data dir>/batches``. None: every batch is withheld (missing) until one is given.
        self.batch_dir: Path | None = (
            batch_store.directory if batch_store is not None else Path(batch_dir) if batch_dir is not None else None
        )
        self.rpc = rpc or JsonRpc.for_chain(
            chain, timeout=request_timeout, policy=RetryPolicy(max_retries=max_retries, backoff=backoff)
        )
        # The log prefetching thread has a session of its own (requests sessions are not thread-safe).
        self._prefetch_rpc = self.rpc.clone()
        if check_code:
            Ledger(chain, self.address)  # refuses an address without this package's contract code
        self._deploy_block = deploy_block
        self._decoder = LogDecoder()
        self._batch_topic = next(t for t, (name, _, _) in self._decoder.table.items() if name == "BatchAnchored")
        self._sql = _Statements(store.engine.dialect)
        self.reader = LedgerReader(self.rpc, self.address)
        self._ranges = RangeSizer(max_block_range, target_logs)
        self._caches: _Caches | None = None
        #: case rows as stored (or _ORPHAN), most recently written last: new events of a recent case need no read
        self._case_cache: dict[tuple[str, bytes], Any] = {}
        self.case_cache_size = case_cache_size
        self._call_by_hash = True  # EIP-1898 block-hash calls; dropped for nodes that refuse them
        self._unverified = False  # ranges committed without the contract's check (no state on the node there)
        #: (last_block, entry_count, running_hash, withheld batches) as this indexer last wrote them; None when unknown
        self._written: tuple[Any, ...] | None = None
        #: withheld (missing) batch → the identity of its file when it was last read (None: there was none), so a
        #: sync reads a file again only when it changed
        self._looked: dict[int, tuple[int, int, int] | None] = {}
        #: the batch directory's modification time when the withheld batches were last looked for, and when the last
        #: full look was: a sync looks again only when a file was added, removed or renamed there since, or every
        #: ``WITHHELD_FULL_LOOK_SECONDS`` — so thousands of batches withheld on purpose cost an idle sync nothing
        self._looked_dir: int | None = None
        self._full_look_at = 0.0

    # -- public

    def finalized_block(self) -> int:
        """Highest block whose indexed data is final (-1 before any): the API shows data above it as unconfirmed."""
        state = self._read_state()
        return -1 if state is None else int(state["finalized_block"])

    def last_block(self) -> int:
        """Highest block whose events are all in the store (-1 before any)."""
        state = self._read_state()
        return -1 if state is None else int(state["last_block"])

    def halted_reason(self) -> str | None:
        state = self._read_state()
        return None if state is None else state["halted_reason"]

    def clear_halt(self) -> None:
        """Operator action after :class:`ReorgTooDeep`: accept the new chain. The next sync rolls back to the fork
        (from the deployment block when the fork is older than the kept block hashes) and indexes the new chain."""
        with self.store.begin() as conn:
            conn.execute(
                update(sync_state)
                .where(sync_state.c.contract_address == self.address)
                .values(halted_reason=None, finalized_block=-1)
            )
        log.warning("halt cleared by the operator for %s: the next sync accepts the reorganised chain", self.address)

    def sync(self, to_block: int | None = None) -> SyncReport:
        """Index up to `to_block` (default: the head). Blocks above head - confirmations are indexed but not final."""
        started = time.perf_counter()
        state = self._ensure_state()
        if state["halted_reason"]:
            raise ReorgTooDeep(f"indexing is halted: {state['halted_reason']} (an operator must clear the halt)")
        head = self.reader.head()
        target = head if to_block is None else min(to_block, head)
        report = SyncReport(from_block=int(state["last_block"]) + 1, to_block=target, head=head,
                            finalized_block=int(state["finalized_block"]))
        self._check_reorg(report)
        # While one range is checked and written, the next one's logs are already being fetched: the node works
        # on them while this process works on the store.
        prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="indexer-logs")
        try:
            self._sync_ranges(target, report, prefetcher)
        finally:
            prefetcher.shutdown(wait=False, cancel_futures=True)
        self._release_withheld(report)
        finalized = self._advance_finality(head)
        after = self._read_state()
        assert after is not None
        report.finalized_block = finalized
        report.entry_count = int(after["entry_count"])
        report.running_hash = bytes(after["running_hash"])
        report.to_block = int(after["last_block"])
        report.seconds = time.perf_counter() - started
        if report.entries or report.reorgs or report.withheld_batches or report.released_batches:
            log.info(
                "indexed %d entries in blocks %d-%d (%d ranges, %.0f entries/s; %d batches withheld, %d released); "
                "final up to block %d",
                report.entries, report.from_block, report.to_block, report.ranges, report.entries_per_s,
                report.withheld_batches, report.released_batches, finalized,
            )
        return report

    def _sync_ranges(self, target: int, report: SyncReport, prefetcher: ThreadPoolExecutor) -> None:
        races = 0
        ranges = self._ranges
        ahead: tuple[int, int, Future[list[dict[str, Any]]]] | None = None
        while True:
            # Python's cyclic collector, left on, keeps walking the many objects a range holds (a third of
            # the CPU time); nothing here makes reference cycles, so it is paused while a range is processed.
            with _gc_paused():
                state = self._read_state()
                assert state is not None
                if self._written is not None and self._written != _position(state):
                    self._forget()  # another indexer wrote here meanwhile: what this one mirrors may be stale
                start = int(state["last_block"]) + 1
                if start > target:
                    return
                if ahead is not None and ahead[0] == start:
                    end, fetching = ahead[1], ahead[2]
                else:
                    if ahead is not None:
                        ahead[2].cancel()
                    end, fetching = ranges.end(start, target), None
                ahead = None
                try:
                    logs = fetching.result() if fetching is not None else self.reader.logs(start, end)
                except RangeTooLarge:
                    report.splits += 1
                    if end == start:
                        raise
                    span = ranges.refused(start, end)
                    log.info("the node refused blocks %d-%d as too large; trying %d blocks", start, end, span)
                    continue
                # Aim the next range at about target_logs entries, and start fetching it. A batch anchor is one log
                # but `count` entries.
                ranges.served(start, end, len(logs) + self._batched_in(logs))
                if end < target:
                    following = (end + 1, ranges.end(end + 1, target))
                    ahead = (*following, prefetcher.submit(self.reader.logs, *following, self._prefetch_rpc))
                try:
                    count, batched, withheld = self._index_range(state, start, end, target, logs)
                except _StateMoved:
                    log.info("another indexer advanced this store; continuing from where it stopped")
                    if ahead is not None:
                        ahead[2].cancel()
                        ahead = None
                    continue
                except _ReorgDetected as exc:
                    races += 1
                    if races > 20:
                        raise NodeUnavailable(f"the chain kept changing under the indexer: {exc}") from exc
                    log.info("a block changed while reading %d-%d (%s); checking for a reorganisation", start, end, exc)
                    if ahead is not None:
                        ahead[2].cancel()
                        ahead = None
                    self._check_reorg(report)
                    continue
                report.entries += count
                report.batched_entries += batched
                report.withheld_batches += len(withheld)
                report.withheld_entries += sum(n for n, _ in withheld)
                report.ranges += 1

    def run(self, poll_interval: float = 2.0, stop_event: threading.Event | None = None) -> None:
        """Sync, then keep following the head every `poll_interval` seconds until `stop_event` is set. Transient
        failures (node or database unreachable) are logged and retried; a halt or an integrity failure stops it."""
        stop = stop_event or threading.Event()
        while not stop.is_set():
            try:
                self.sync()
            except (ReorgTooDeep, IndexIntegrityError, ChainMismatch):
                raise
            except (NodeUnavailable, RpcError, OperationalError) as exc:
                log.warning("sync failed, retrying in %.1f s: %s", poll_interval, exc)
            stop.wait(poll_interval)

    # -- state

    def _read_state(self, conn: Connection | None = None) -> dict[str, Any] | None:
        """The sync state row, with ``withheld``: how many batches are withheld as missing and as impossible (a
        withheld batch released by another indexer changes the store without moving the rest of the state)."""
        if conn is None:
            with self.store.connect() as own:
                return self._read_state(own)
        row = conn.execute(select(sync_state).where(sync_state.c.contract_address == self.address)).mappings().first()
        if row is None:
            return None
        state = dict(row)
        counts: dict[str, int] = dict(
            conn.execute(
                select(batches.c.withheld, func.count()).where(batches.c.withheld.is_not(None))
                .group_by(batches.c.withheld)
            ).all()
        )
        state["withheld"] = (int(counts.get(WITHHELD_MISSING, 0)), int(counts.get(WITHHELD_IMPOSSIBLE, 0)))
        return state

    def _ensure_state(self) -> dict[str, Any]:
        state = self._read_state()
        chain_id = self.chain.chain_id
        if state is not None:
            if int(state["chain_id"]) != chain_id:
                raise ChainMismatch(
                    f"the store indexes {self.address} on chain {state['chain_id']}, but the node serves chain "
                    f"{chain_id}: use another store"
                )
            return state
        with self.store.connect() as conn:
            other = conn.execute(select(sync_state.c.contract_address)).scalar()
        if other is not None:  # entries are keyed by seq alone: one ledger per store
            raise ChainMismatch(f"this store already indexes the ledger at {other}: use another one for {self.address}")
        deploy_block = self._deploy_block if self._deploy_block is not None else self._find_deploy_block()
        with self.store.begin() as conn:
            conn.execute(
                insert(sync_state).values(
                    contract_address=self.address, chain_id=chain_id, deploy_block=deploy_block,
                    last_block=deploy_block - 1, entry_count=0, running_hash=ZERO_HEAD, halted_reason=None,
                    finalized_block=-1,
                )
            )
        log.info("indexing %s on chain %d from block %d", self.address, chain_id, deploy_block)
        state = self._read_state()
        assert state is not None
        return state

    def _find_deploy_block(self) -> int:
        """The contract's creation block, by bisection on eth_getCode (0 when the node keeps no old state)."""
        reader = self.reader
        head = reader.head()
        try:
            if not reader.has_code(head):
                raise ChainMismatch(f"no contract at {self.address} on this chain")
            return reader.deploy_block(head)
        except RpcError:
            log.warning("the node cannot tell when the contract was deployed (no archive state); starting at block 0")
            return 0

    def _advance_finality(self, head: int) -> int:
        with self.store.begin() as conn:
            state = self._read_state(conn)
            assert state is not None
            finalized = max(int(state["finalized_block"]), min(int(state["last_block"]), head - self.confirmations))
            if finalized != state["finalized_block"]:
                conn.execute(
                    update(sync_state)
                    .where(sync_state.c.contract_address == self.address)
                    .values(finalized_block=finalized)
                )
        return finalized

    # -- node reads

    def _contract_head(self, block: int, block_hash: str) -> tuple[int, bytes] | None:
        """The contract's entryCount() and runningHash() at exactly that block (by hash when the node can), or
        None when the node keeps no state that old (a pruned node: the check then happens at a later block)."""
        try:
            return self.reader.head_or_zero({"blockHash": block_hash} if self._call_by_hash else hex(block))
        except RpcError as exc:
            # The block is gone (a reorg), the node does not take block hashes (EIP-1898), or it has no state there.
            header = self.reader.headers([block])[block]
            if header is None or "0x" + _hash(header).hex() != block_hash:
                raise _ReorgDetected(f"block {block} changed during the read") from exc
            if self._call_by_hash:
                try:
                    found = self.reader.head_or_zero(hex(block))
                except RpcError:
                    pass
                else:
                    log.info("the node does not take calls by block hash (EIP-1898); calling by number")
                    self._call_by_hash = False
                    return found
            log.debug("no contract state at block %d on the node (%s)", block, exc.message)
            return None

    def _batched_in(self, logs: list[dict[str, Any]]) -> int:
        """Entries beyond one per log that these logs' batch anchors stand for (for sizing ranges)."""
        topic = self._batch_topic
        extra = 0
        for entry in logs:
            topics = entry.get("topics")
            if topics and topics[0] == topic:
                extra += max(0, int(entry["data"][66:130], 16) - 1)  # the second data word: count
        return extra

    # -- one range

    def _index_range(
        self, state: dict[str, Any], start: int, end: int, target: int, logs: list[Any]
    ) -> tuple[int, int, list[tuple[int, Withheld]]]:
        """Check and write one range; returns (entries indexed, of which batched, and the batches withheld with the
        entries each stands for)."""
        if any(entry.get("removed") for entry in logs):
            raise _ReorgDetected("the node marked logs as removed")
        decoded = self._decoder.decode(logs)
        decoded.sort(key=lambda e: e.seq)
        window = range(max(start, target - self.keep_blocks + 1), end + 1)
        numbers = {end, *window}
        numbers.update(e.block_number for e in decoded if e.block_time is None)
        previous = self._stored_hash(start - 1)
        if previous is not None:
            numbers.add(start - 1)
        headers = self.reader.headers(numbers)
        for number, header in headers.items():
            if header is None:
                raise _ReorgDetected(f"block {number} is no longer on the chain")
        if previous is not None and _hash(headers[start - 1]) != previous:
            raise _ReorgDetected(f"block {start - 1} changed")
        for e in decoded:
            header = headers.get(e.block_number)
            if header is not None and _hash(header) != e.block_hash:
                raise _ReorgDetected(f"the log of entry {e.seq} names another block {e.block_number}")
            if e.block_time is None:
                e.block_time = _timestamp(header)

        # The chain vouches for the whole log so far: count and running hash at the range's last block.
        count, head = int(state["entry_count"]), bytes(state["running_hash"])
        running: list[bytes] = []
        expected_seq = count
        anchors: list[DecodedEntry] = []
        for e in decoded:
            if e.seq != expected_seq:
                break
            # A batch anchor is folded once, for all its entries (seq to seq + count - 1).
            head = fold(head, e.entry_hash)
            running.append(head)
            if e.kind == EntryKind.BATCH_ANCHORED:
                anchors.append(e)
                expected_seq += e.record["count"]
            else:
                expected_seq += 1
        complete = len(running) == len(decoded)  # no gap in the seqs
        end_hash = "0x" + _hash(headers[end]).hex()
        vouched = self._contract_head(end, end_hash)
        if vouched is None:
            # A node without state at that block (pruned, or anvil after loading a state file): the running hash is
            # cumulative, so the first later range whose block has state checks these entries too.
            if not self._unverified:
                log.warning(
                    "the node has no contract state at block %d: entries from there on are checked against the "
                    "contract at the first later block that has state", end,
                )
            self._unverified = True
            vouched = (expected_seq, head) if complete else (-1, ZERO_HEAD)
        else:
            self._unverified = False
        chain_count, chain_head = vouched
        if not complete or chain_count != expected_seq or chain_head != head:
            # A reorganisation between the reads looks the same: rule it out before calling it an integrity failure.
            again = self.reader.headers({end, *(e.block_number for e in decoded)})
            if (
                any(header is None for header in again.values())
                or _hash(again[end]) != _hash(headers[end])
                or any(_hash(again[e.block_number]) != e.block_hash for e in decoded)
            ):
                raise _ReorgDetected(f"blocks {start}-{end} changed while they were read")
            raise IndexIntegrityError(
                f"blocks {start}-{end}: the logs give {len(decoded)} entries from seq {count}"
                f"{'' if complete else f' with a gap at seq {expected_seq}'}, "
                f"ending at count {expected_seq} and running hash 0x{head.hex()}, but the contract at block {end} "
                f"reports count {chain_count} and running hash 0x{chain_head.hex()}: the node's logs are incomplete "
                "or altered; indexing stops here"
            )

        # The chain vouches for the anchors; their files must match them (read once the range is known good). A
        # batch whose file cannot be read is withheld: the range is written all the same.
        contents = {e.seq: self._batch_content(e) for e in anchors}
        try:
            self._commit_range(decoded, running, headers, sorted({*window, end}), _position(state), end,
                               expected_seq, head, contents)
        except BaseException:
            # The caches may hold this range's commitments, calendars and case rows, which were not committed.
            self._forget()
            raise
        withheld: list[tuple[int, Withheld]] = []
        for e in anchors:
            found = contents[e.seq]
            if isinstance(found, Withheld):
                withheld.append((e.record["count"], found))
                self._announce(found.reason)
        batched = sum(c.count for c in contents.values() if isinstance(c, BatchContent))
        return len(decoded) - len(anchors) + batched, batched, withheld

    def _announce(self, reason: str) -> None:
        """Say once, when its range is written, that a batch is withheld: a CRITICAL log line and the alert."""
        log.critical("BATCH WITHHELD on %s: %s", self.address, reason)
        if self.alert is not None:
            self.alert(reason)

    def _batch_content(self, e: DecodedEntry) -> BatchContent | Withheld:
        """The anchored batch's file, checked against the anchor (``ledger.batches.read``), or why it is withheld."""
        r = e.record
        return self._read_batch(e.seq, r["count"], r["root"], r["file_hash"], e.tx_hash, e.log_index, e.block_number)

    def _read_batch(
        self, seq: int, count: int, root: bytes, file_hash: bytes, tx_hash: bytes, log_index: int, block: int
    ) -> BatchContent | Withheld:
        where = (f"seq {seq} ({count} entries, anchored in tx 0x{tx_hash.hex()} log {log_index}, block {block}; "
                 f"file hash 0x{file_hash.hex()})")
        if self.batch_dir is None:
            return Withheld(WITHHELD_MISSING, f"batch {where}: file missing: no batch directory is configured "
                            "(Indexer batch_dir); its entries are withheld until one is given and the file is there")
        self._looked[seq] = self._file_identity(file_hash)
        try:
            return read_batch_file(self.batch_dir, root, count, file_hash)
        except BatchFileProblem as exc:
            # the reason is public (the API shows it): the file's name, not where this server keeps it
            path = BatchStore(self.batch_dir).path(file_hash)
            problem = exc.message.replace(str(path), path.name)
            if withheld_kind(count, exc.kind) == WITHHELD_MISSING:
                return Withheld(WITHHELD_MISSING, f"batch {where}: {_WHAT[exc.kind]}: {problem}; its entries are "
                                "withheld until the file with the anchored hash is published")
            return Withheld(WITHHELD_IMPOSSIBLE, f"batch {where}: {_WHAT[exc.kind]}: {problem}; the file with the "
                            "anchored hash does not match the anchor, so no file ever can: its entries are withheld "
                            "for ever")

    def _file_identity(self, file_hash: bytes) -> tuple[int, int, int] | None:
        """The batch file's identity on disk (inode, size, modification time), or None when there is none."""
        assert self.batch_dir is not None
        try:
            stat = BatchStore(self.batch_dir).path(file_hash).stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _commit_range(
        self,
        decoded: list[DecodedEntry],
        running: list[bytes],
        headers: dict[int, dict[str, Any] | None],
        keep: list[int],
        read_at: tuple[Any, ...],
        end: int,
        count: int,
        head: bytes,
        contents: dict[int, BatchContent | Withheld],
    ) -> None:
        """Write one range: everything or nothing."""
        with self.store.begin() as conn:
            self._lock_state(conn, read_at)
            caches = self._load_caches(conn)
            self._write_entries(conn, decoded, running, caches, contents)
            settle_attestations(conn, count)
            conn.execute(
                insert(blocks),
                [{"number": n, "hash": _hash(headers[n]), "timestamp": _timestamp(headers[n])} for n in keep],
            )
            conn.execute(delete(blocks).where(blocks.c.number <= end - self.keep_blocks))
            conn.execute(
                update(sync_state)
                .where(sync_state.c.contract_address == self.address)
                .values(last_block=end, entry_count=count, running_hash=head)
            )
            written = self._read_state(conn)
        assert written is not None
        self._written = _position(written)

    def _lock_state(self, conn: Connection, read_at: tuple[Any, ...] | None) -> dict[str, Any]:
        """Take the write lock on this ledger's sync state (a no-op UPDATE locks the row on PostgreSQL and the
        database on SQLite) and check nobody moved it since `read_at`: two indexers on one store never interleave
        their writes, the second waits, then notices and carries on from the new state."""
        conn.execute(
            update(sync_state)
            .where(sync_state.c.contract_address == self.address)
            .values(last_block=sync_state.c.last_block)
        )
        state = self._read_state(conn)
        assert state is not None
        if read_at is not None and _position(state) != read_at:
            raise _StateMoved()
        return state

    def _stored_hash(self, number: int) -> bytes | None:
        with self.store.connect() as conn:
            value = conn.execute(select(blocks.c.hash).where(blocks.c.number == number)).scalar()
        return None if value is None else bytes(value)

    # -- writing entries and derived rows

    def _write_entries(
        self, conn: Connection, decoded: list[DecodedEntry], running: list[bytes], caches: _Caches,
        contents: dict[int, BatchContent | Withheld] | None = None,
    ) -> None:
        entry_rows: list[tuple[Any, ...]] = []
        batch_rows: list[dict[str, Any]] = []
        per_kind: dict[Any, list[dict[str, Any]]] = {}
        event_rows: list[tuple[Any, ...]] = []
        new_events: dict[tuple[str, bytes], list[Event]] = {}
        #: receipts, ratings and disputes: rows per table, and per case what the fold reads of them
        feedback_rows: dict[str, list[tuple[Any, ...]]] = {}
        new_feedback: dict[tuple[str, bytes], list[Feedback]] = {}
        #: Reopened and DisputeRejected events, which answer disputes: (seq, agency, case id, action, block time)
        answers: list[tuple[int, str, bytes, int, int]] = []
        retirements: list[tuple[int, str, str]] = []
        #: (seq, auditor) of each AuditorRevoked entry: ends the auditor's open registration
        auditor_revocations: list[tuple[int, str | None]] = []
        correction_entries: list[DecodedEntry] = []
        changed_years: set[tuple[str, int]] = set()
        for e, running_hash in zip(decoded, running, strict=True):
            assert e.block_time is not None  # _index_range fills it in from the block's header when the log lacks it
            agency = code_text(e.agency_id)
            r = e.record
            kind = e.kind
            if kind == EntryKind.BATCH_ANCHORED:
                assert contents is not None
                content = contents[e.seq]
                withheld = content if isinstance(content, Withheld) else None
                batch_rows.append(
                    {"seq": e.seq, "agency_id": agency, "signer": e.actor, "root": r["root"], "count": r["count"],
                     "file_hash": r["file_hash"], "entry_hash": e.entry_hash, "block_number": e.block_number,
                     "block_time": e.block_time, "tx_hash": e.tx_hash, "log_index": e.log_index,
                     "block_hash": e.block_hash, "running_hash": running_hash,
                     "withheld": None if withheld is None else withheld.kind,
                     "withheld_reason": None if withheld is None else withheld.reason}
                )
                if withheld is None:
                    assert isinstance(content, BatchContent)
                    proof = (e.block_number, e.block_hash, e.block_time, e.tx_hash, e.log_index)
                    _batched_rows(e.seq, agency, e.agency_id, e.actor, running_hash, proof, content, entry_rows,
                                  event_rows, new_events, answers)
                continue
            entry_rows.append(
                (
                    e.seq, int(kind), agency, e.actor, e.record_hash, e.entry_hash, running_hash, e.block_number,
                    e.block_hash, e.block_time, e.tx_hash, e.log_index,
                    # governance entries, citizens' ratings and disputes (and batch anchors) claim no time
                    r["occurred_at"] if kind == EntryKind.CASE_EVENT else r.get("occurred_at"), None, None, None,
                )
            )
            if kind == EntryKind.CASE_EVENT:
                case_id, action, at = r["case_id"], r["action"], r["occurred_at"]
                intake: tuple[Any, Any, int | None]
                if action == CaseAction.OPENED:
                    event = Event(e.seq, action, at, code_text(r["commitment_id"]), code_text(r["district"]),
                                  r["channel"])
                    intake = (event.commitment_id, event.district, event.channel)
                else:
                    event = Event(e.seq, action, at)
                    intake = (None, None, None)
                    if action in ANSWERS:
                        answers.append((e.seq, agency, case_id, action, e.block_time))
                event_rows.append(
                    (e.seq, agency, case_id, action, at, e.block_time, r["details_hash"], *intake)
                )
                new_events.setdefault((agency, case_id), []).append(event)
            elif kind == EntryKind.RECEIPT_ISSUED:
                case_id = r["case_id"]
                feedback_rows.setdefault(self._sql.insert_receipts, []).append(
                    (e.seq, agency, case_id, r["receipt"], r["occurred_at"], e.block_time)
                )
                new_feedback.setdefault((agency, case_id), []).append(
                    Feedback(e.seq, kind, r["receipt"], e.block_time)
                )
            elif kind == EntryKind.CASE_RATED:
                # the entry's actor is the receipt key that signed it (the contract checked the signature)
                case_id = r["case_id"]
                feedback_rows.setdefault(self._sql.insert_ratings, []).append(
                    (e.seq, agency, case_id, r["score"], r["comment_hash"], e.actor, e.block_time)
                )
                new_feedback.setdefault((agency, case_id), []).append(
                    Feedback(e.seq, kind, e.actor, e.block_time, r["score"])
                )
            elif kind == EntryKind.CASE_DISPUTED:
                case_id = r["case_id"]
                feedback_rows.setdefault(self._sql.insert_disputes, []).append(
                    (e.seq, agency, case_id, r["closure"], r["reason_hash"], e.actor, e.block_time, None, None, None)
                )
                new_feedback.setdefault((agency, case_id), []).append(Feedback(e.seq, kind, e.actor, e.block_time))
            elif kind == EntryKind.CORRECTION:
                correction_entries.append(e)
            elif kind == EntryKind.AGENCY_REGISTERED:
                jurisdiction = code_text(r["jurisdiction"])
                caches.jurisdiction[agency] = jurisdiction
                per_kind.setdefault(agencies, []).append(
                    {"agency_id": agency, "jurisdiction": jurisdiction, "name_zh": display_text(r["name_zh"]),
                     "name_en": display_text(r["name_en"]), "seq": e.seq}
                )
            elif kind in (EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED):
                per_kind.setdefault(signer_changes, []).append(
                    {"seq": e.seq, "agency_id": agency, "signer": e.signer,
                     "authorized": kind == EntryKind.SIGNER_AUTHORIZED}
                )
            elif kind == EntryKind.AUDIT_ATTESTED:
                # the entry's actor is the auditor key that signed it (the contract checked the signature)
                per_kind.setdefault(attestations, []).append(
                    {"seq": e.seq, "auditor": e.actor, "block_number": r["block_number"],
                     "block_hash": r["block_hash"], "entry_count": r["entry_count"],
                     "running_hash": r["running_hash"], "report_hash": r["report_hash"], "verdict": r["verdict"],
                     "findings": r["findings"], "recorded_block": e.block_number, "recorded_at": e.block_time,
                     "tx_hash": e.tx_hash, "matches_ledger": None}
                )
            elif kind == EntryKind.AUDITOR_AUTHORIZED:
                per_kind.setdefault(auditors, []).append({"seq": e.seq, "auditor": e.signer, "revoked_seq": None})
            elif kind == EntryKind.AUDITOR_REVOKED:
                auditor_revocations.append((e.seq, e.signer))
            elif kind == EntryKind.COMMITMENT_PUBLISHED:
                commitment = code_text(r["commitment_id"])
                assert e.version is not None
                per_kind.setdefault(commitments, []).append(
                    {
                        "agency_id": agency, "commitment_id": commitment, "version": e.version,
                        "service_code": code_text(r["service_code"]), "name_zh": display_text(r["name_zh"]),
                        "name_en": display_text(r["name_en"]), "deadline": r["deadline"],
                        "deadline_unit": r["deadline_unit"], "target_bps": r["target_bps"],
                        "valid_from": r["valid_from"], "terms_hash": r["terms_hash"], "occurred_at": r["occurred_at"],
                        "seq": e.seq, "retired_seq": None,
                    }
                )
                caches.versions.setdefault((agency, commitment), []).append(
                    CommitmentVersion(e.version, e.seq, r["deadline"], r["deadline_unit"])
                )
            elif kind == EntryKind.COMMITMENT_RETIRED:
                commitment = code_text(r["commitment_id"])
                per_kind.setdefault(commitment_retirements, []).append(
                    {"seq": e.seq, "agency_id": agency, "commitment_id": commitment,
                     "reason_hash": r["reason_hash"], "occurred_at": r["occurred_at"]}
                )
                retirements.append((e.seq, agency, commitment))
            elif kind == EntryKind.HOLIDAY_CALENDAR_PUBLISHED:
                assert e.jurisdiction is not None and e.version is not None
                jurisdiction = code_text(e.jurisdiction)
                per_kind.setdefault(holiday_calendars, []).append(
                    {
                        "jurisdiction": jurisdiction, "year": r["year"], "version": e.version, "agency_id": agency,
                        "holidays": _days_json(r["holidays"]), "workdays": _days_json(r["workdays"]),
                        "occurred_at": r["occurred_at"], "seq": e.seq,
                    }
                )
                if e.version > caches.calendar_versions.get((jurisdiction, r["year"]), 0):
                    caches.calendar_versions[(jurisdiction, r["year"])] = e.version
                    caches.calendars.setdefault(jurisdiction, {})[r["year"]] = YearCalendar.of(
                        r["year"], r["holidays"], r["workdays"]
                    )
                    changed_years.add((jurisdiction, r["year"]))

        if entry_rows:
            conn.exec_driver_sql(self._sql.insert_entries, entry_rows)
        if batch_rows:
            conn.execute(insert(batches), batch_rows)
        for table, rows in per_kind.items():
            conn.execute(insert(table), rows)
        if event_rows:
            conn.exec_driver_sql(self._sql.insert_case_events, event_rows)
        for statement, statement_rows in feedback_rows.items():
            conn.exec_driver_sql(statement, statement_rows)
        # Each answer takes the case's disputes before it that have none yet; a case re-folded below (its answer
        # voided by a correction, say) has its answers worked out again there.
        for seq, agency, case_id, action, block_time in answers:
            conn.exec_driver_sql(self._sql.answer_disputes, (seq, action, block_time, agency, case_id, seq))
        for seq, agency, commitment in retirements:
            conn.execute(
                update(commitments)
                .where(commitments.c.agency_id == agency, commitments.c.commitment_id == commitment)
                .values(retired_seq=seq)
            )
        for seq, auditor in auditor_revocations:
            # the contract revokes only a registered auditor: its one registration without a revocation
            conn.execute(
                update(auditors)
                .where(auditors.c.auditor == auditor, auditors.c.revoked_seq.is_(None), auditors.c.seq < seq)
                .values(revoked_seq=seq)
            )
        refold: set[tuple[str, bytes]] = set()
        if correction_entries:
            refold |= self._apply_corrections(conn, correction_entries)
        self._update_cases(conn, new_events, new_feedback, refold, caches,
                           first_new_seq=decoded[0].seq if decoded else 0)
        for jurisdiction, year in sorted(changed_years):
            self._recompute_due(conn, jurisdiction, year, caches)

    def _apply_corrections(self, conn: Connection, found: list[DecodedEntry]) -> set[tuple[str, bytes]]:
        """Void the targets (in seq order, each seeing the voids before it); returns the cases to re-fold."""
        refold: set[tuple[str, bytes]] = set()
        rows = []
        for e in found:
            agency, target = code_text(e.agency_id), int(e.record["target_seq"])
            row = conn.execute(
                select(entries.c.agency_id, entries.c.kind, entries.c.voided_by).where(entries.c.seq == target)
            ).first()
            target_entry = None if row is None else (row.agency_id, row.kind)
            applied = correction_applies(agency, target_entry, row is not None and row.voided_by is not None)
            if row is not None and applied:
                conn.execute(update(entries).where(entries.c.seq == target).values(voided_by=e.seq))
                if row.kind == EntryKind.CASE_EVENT:
                    case = conn.execute(
                        select(case_events.c.agency_id, case_events.c.case_id).where(case_events.c.seq == target)
                    ).one()
                    refold.add((case.agency_id, bytes(case.case_id)))
            rows.append(
                {"seq": e.seq, "agency_id": agency, "target_seq": target, "reason_hash": e.record["reason_hash"],
                 "occurred_at": e.record["occurred_at"], "applied": applied}
            )
        conn.execute(insert(corrections), rows)
        return refold

    def _update_cases(
        self,
        conn: Connection,
        new_events: dict[tuple[str, bytes], list[Event]],
        new_feedback: dict[tuple[str, bytes], list[Feedback]],
        refold: set[tuple[str, bytes]],
        caches: _Caches,
        first_new_seq: int,
    ) -> None:
        """Bring the case rows of every case that got events, receipts, ratings or disputes (or lost events to
        corrections) up to date."""
        incremental = [key for key in new_events if key not in refold]
        incremental += [key for key in new_feedback if key not in refold and key not in new_events]
        cache = self._case_cache
        known: dict[tuple[str, bytes], CaseState | None] = {}
        unknown: list[tuple[str, bytes]] = []
        for key in incremental:
            found = cache.get(key, _UNKNOWN)
            if found is _UNKNOWN:
                unknown.append(key)
            elif found is _ORPHAN:
                refold.add(key)  # entries but no row: re-fold with the new ones
            else:
                known[key] = found
        # Not in the cache: a case with no earlier entry is new; one with earlier entries has a row to continue
        # from, or (entries before its Opened, or a voided Opened) none, and is re-folded from everything.
        seen_before = self._keys_with_entries_before(conn, unknown, first_new_seq)
        stored = self._load_cases(conn, seen_before)
        for key in unknown:
            if key not in seen_before:
                known[key] = None
            elif key in stored:
                known[key] = stored[key]
            else:
                refold.add(key)
        changes: list[tuple[tuple[str, bytes], CaseState | None, CaseState | None]] = []
        no_events: list[Event] = []
        for key, old in known.items():
            if key in refold:
                continue
            agency = key[0]
            progress = CaseProgress() if old is None else CaseProgress.from_state(old)
            feedback = new_feedback.get(key)
            if feedback is None:
                for event in new_events[key]:
                    progress.apply(event)
            else:
                progress.advance(new_events.get(key, no_events), feedback)
            new = progress.state(self._versions(caches, agency, progress.commitment_id), caches.calendars_of(agency))
            changes.append((key, old, new))
        self._write_cases(conn, changes)
        if refold:
            self._refold(conn, refold, caches)

    def _keys_with_entries_before(
        self, conn: Connection, keys: Sequence[tuple[str, bytes]], seq: int
    ) -> set[tuple[str, bytes]]:
        """Which of these cases have events — or, for a case id that can have a receipt, a receipt — with a smaller
        seq (plain SQL: this runs for every new case)."""
        found = self._keys_with_rows_before(conn, case_events.name, keys, seq)
        flagged = [key for key in keys if key[1][0] & RECEIPT_CASE_FLAG and key not in found]
        if flagged:
            # A rating or dispute needs the case's receipt first (the contract refuses it otherwise, and the chain's
            # running hash vouches for every entry indexed), so the receipts table is enough.
            found |= self._keys_with_rows_before(conn, receipts.name, flagged, seq)
        return found

    def _keys_with_rows_before(
        self, conn: Connection, table: str, keys: Sequence[tuple[str, bytes]], seq: int
    ) -> set[tuple[str, bytes]]:
        found: set[tuple[str, bytes]] = set()
        by_agency: dict[str, list[bytes]] = {}
        for agency, case_id in keys:
            by_agency.setdefault(agency, []).append(case_id)
        any_sql, in_sql = self._sql.rows_before[table]
        for agency, ids in sorted(by_agency.items()):
            for chunk in _chunks(ids):
                if self._sql.postgresql:
                    sql, params = any_sql, (agency, chunk, seq)
                else:
                    sql = in_sql.format(", ".join("?" * len(chunk)))
                    params = (agency, *chunk, seq)
                found.update((agency, bytes(row[0])) for row in conn.exec_driver_sql(sql, params))
        return found

    def _versions(self, caches: _Caches, agency: str, commitment_id: Any) -> list[CommitmentVersion]:
        return caches.versions.get((agency, commitment_id), [])

    def _load_cases(self, conn: Connection, keys: Iterable[tuple[str, bytes]]) -> dict[tuple[str, bytes], CaseState]:
        out: dict[tuple[str, bytes], CaseState] = {}
        for where in _case_filters(cases.c.agency_id, cases.c.case_id, keys):
            for row in conn.execute(select(cases).where(where)).mappings():
                out[(row["agency_id"], bytes(row["case_id"]))] = CaseState(**{n: row[n] for n in CASE_STATE_FIELDS})
        return out

    def _refold(self, conn: Connection, keys: Iterable[tuple[str, bytes]], caches: _Caches) -> None:
        """Re-fold cases from all their non-voided events (but batched events that do not apply to their case) and
        their receipts, ratings and disputes in the store; rows appear, change or disappear. Their disputes' answers are
        worked out again too."""
        keys = sorted(set(keys))
        events: dict[tuple[str, bytes], list[Event]] = {key: [] for key in keys}
        answers: dict[tuple[str, bytes], list[Answer]] = {}
        c = case_events.c
        for where in _case_filters(c.agency_id, c.case_id, keys):
            rows = conn.execute(
                select(c.seq, c.agency_id, c.case_id, c.action, c.occurred_at, c.commitment_id, c.district, c.channel,
                       c.block_time, entries.c.batch_seq)
                .join(entries, entries.c.seq == c.seq)
                .where(where)
                .where(entries.c.voided_by.is_(None))
                .order_by(c.seq)
            )
            for row in rows:
                key = (row.agency_id, bytes(row.case_id))
                if row.batch_seq is not None and not batched_event_applies(key[1]):
                    continue
                events[key].append(
                    Event(row.seq, row.action, row.occurred_at, row.commitment_id or "", row.district or "",
                          row.channel or 0)
                )
                if row.action in ANSWERS:
                    answers.setdefault(key, []).append(Answer(row.seq, row.action, row.block_time))
        feedback, dispute_rows = self._load_feedback(conn, keys)
        stored = self._load_cases(conn, keys)
        changes: list[tuple[tuple[str, bytes], CaseState | None, CaseState | None]] = []
        for key in keys:
            agency = key[0]
            progress = CaseProgress()
            progress.advance(events[key], feedback.get(key, ()))
            new = progress.state(self._versions(caches, agency, progress.commitment_id), caches.calendars_of(agency))
            changes.append((key, stored.get(key), new))
        self._write_cases(conn, changes, has_events={key for key in keys if events[key] or key in feedback})
        updates = []
        for key, case_disputes in dispute_rows.items():
            found = dispute_answers([seq for seq, _ in case_disputes], answers.get(key, ()))
            for seq, current in case_disputes:
                answer = found[seq]
                wanted = (None, None, None) if answer is None else tuple(answer)
                if wanted != current:
                    updates.append({"_seq": seq, "answer_seq": wanted[0], "answer_action": wanted[1],
                                    "answered_at": wanted[2]})
        if updates:
            conn.execute(update(disputes).where(disputes.c.seq == bindparam("_seq")), updates)

    def _load_feedback(
        self, conn: Connection, keys: Sequence[tuple[str, bytes]]
    ) -> tuple[dict[tuple[str, bytes], list[Feedback]], dict[tuple[str, bytes], list[tuple[int, tuple[Any, ...]]]]]:
        """The receipts, ratings and disputes of these cases (only case ids that can have a receipt have any), in
        seq order; and each case's disputes as (seq, its stored answer)."""
        flagged = [key for key in keys if key[1][0] & RECEIPT_CASE_FLAG]
        feedback: dict[tuple[str, bytes], list[Feedback]] = {}
        dispute_rows: dict[tuple[str, bytes], list[tuple[int, tuple[Any, ...]]]] = {}
        if not flagged:
            return feedback, dispute_rows
        kinds = {receipts.name: EntryKind.RECEIPT_ISSUED, ratings.name: EntryKind.CASE_RATED,
                 disputes.name: EntryKind.CASE_DISPUTED}
        for table in _FEEDBACK_TABLES:
            t = table.c
            score = t.score if table is ratings else None
            answer = (t.answer_seq, t.answer_action, t.answered_at) if table is disputes else ()
            columns = [t.seq, t.agency_id, t.case_id, t.receipt, t.block_time, *([score] if score is not None else []),
                       *answer]
            for where in _case_filters(t.agency_id, t.case_id, flagged):
                for row in conn.execute(select(*columns).where(where)):
                    key = (row.agency_id, bytes(row.case_id))
                    feedback.setdefault(key, []).append(Feedback(
                        row.seq, kinds[table.name], row.receipt, row.block_time,
                        row.score if score is not None else 0,
                    ))
                    if table is disputes:
                        dispute_rows.setdefault(key, []).append(
                            (row.seq, (row.answer_seq, row.answer_action, row.answered_at))
                        )
        for items in feedback.values():
            items.sort()
        for rows in dispute_rows.values():
            rows.sort()
        return feedback, dispute_rows

    def _write_cases(
        self,
        conn: Connection,
        changes: list[tuple[tuple[str, bytes], CaseState | None, CaseState | None]],
        has_events: set[tuple[str, bytes]] | None = None,
    ) -> None:
        """Store (key, old row, new row) changes, and mirror them in the case cache. A key without a new row is
        remembered as an orphan when it has events (always, unless `has_events` says otherwise)."""
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        deletes: list[tuple[str, bytes]] = []
        cache = self._case_cache
        for key, old, new in changes:
            if new is None:
                if old is not None:
                    deletes.append(key)
                cache.pop(key, None)
                if has_events is None or key in has_events:
                    cache[key] = _ORPHAN
                continue
            if old is None:
                inserts.append((*key, *new))
            elif new != old:
                updates.append((*new, *key))
            cache.pop(key, None)  # re-inserted at the end: the dict's order is least recently written first
            cache[key] = new
        if inserts:
            conn.exec_driver_sql(self._sql.insert_cases, inserts)
        if updates:
            conn.exec_driver_sql(self._sql.update_cases, updates)
        for where in _case_filters(cases.c.agency_id, cases.c.case_id, deletes):
            conn.execute(delete(cases).where(where))
        excess = len(cache) - self.case_cache_size
        if excess > 0:
            for key in list(itertools.islice(cache, excess)):
                del cache[key]

    def _recompute_due(self, conn: Connection, jurisdiction: str, year: int, caches: _Caches) -> None:
        """A calendar of `year` changed: recompute due times of the jurisdiction's working-day cases it can affect
        (opened before the year ends, due — or without a due time — after it starts)."""
        members = [a for a, j in caches.jurisdiction.items() if j == jurisdiction]
        if not members:
            return
        first, end = year_days(year)
        year_start, year_end = local_day_start(first), local_day_start(end)
        calendars = caches.calendars.get(jurisdiction, {})
        updates = []
        rows = conn.execute(
            select(cases.c.agency_id, cases.c.case_id, cases.c.commitment_id, cases.c.commitment_version,
                   cases.c.opened_at, cases.c.hold_seconds, cases.c.status, cases.c.closed_at, cases.c.due_at,
                   cases.c.on_time)
            .where(cases.c.agency_id.in_(members))
            .where(cases.c.opened_at < year_end)
            .where((cases.c.due_at.is_(None)) | (cases.c.due_at >= year_start))
        )
        for row in rows:
            version = next(
                (v for v in self._versions(caches, row.agency_id, row.commitment_id)
                 if v.version == row.commitment_version),
                None,
            )
            if version is None or version.deadline_unit != DeadlineUnit.WORKING_DAYS:
                continue
            due_at = due_time(row.opened_at, row.hold_seconds, version, calendars)
            on_time = None
            if row.status == FULFILLED and due_at is not None:
                on_time = row.closed_at <= due_at
            if due_at != row.due_at or on_time != row.on_time:
                updates.append({"_agency": row.agency_id, "_case": bytes(row.case_id), "due_at": due_at,
                                "on_time": on_time})
        if updates:
            conn.execute(
                update(cases).where(cases.c.agency_id == bindparam("_agency"), cases.c.case_id == bindparam("_case")),
                updates,
            )
            self._case_cache.clear()  # rare (a calendar changed): simpler than patching cached rows

    def _forget(self) -> None:
        """Drop everything mirrored from the store (after a failed write or a rollback)."""
        self._caches = None
        self._case_cache.clear()
        self._written = None

    def _load_caches(self, conn: Connection) -> _Caches:
        if self._caches is not None:
            return self._caches
        caches = _Caches()
        for agency_row in conn.execute(select(agencies.c.agency_id, agencies.c.jurisdiction)):
            caches.jurisdiction[agency_row.agency_id] = agency_row.jurisdiction
        for row in conn.execute(
            select(commitments.c.agency_id, commitments.c.commitment_id, commitments.c.version, commitments.c.seq,
                   commitments.c.deadline, commitments.c.deadline_unit).order_by(commitments.c.seq)
        ):
            caches.versions.setdefault((row.agency_id, row.commitment_id), []).append(
                CommitmentVersion(row.version, row.seq, row.deadline, row.deadline_unit)
            )
        for row in conn.execute(
            select(holiday_calendars).order_by(holiday_calendars.c.jurisdiction, holiday_calendars.c.year,
                                               holiday_calendars.c.version)
        ):
            caches.calendar_versions[(row.jurisdiction, row.year)] = row.version
            caches.calendars.setdefault(row.jurisdiction, {})[row.year] = YearCalendar.of(
                row.year, json.loads(row.holidays), json.loads(row.workdays)
            )
        self._caches = caches
        return caches

    # -- withheld batches

    def _release_withheld(self, report: SyncReport) -> None:
        """Look again for the files of the batches withheld as missing: write the entries of each whose file is there
        and matches now, and mark one whose file turns out impossible. A file is read only when it is new or changed
        since this indexer last looked at it."""
        if self.batch_dir is None:
            return
        try:
            stamp = self.batch_dir.stat().st_mtime_ns  # before the listing: a file added during it moves the stamp
        except OSError:
            return  # no directory: nothing is published
        now = time.monotonic()
        full = now - self._full_look_at >= WITHHELD_FULL_LOOK_SECONDS
        query = select(batches).where(batches.c.withheld == WITHHELD_MISSING).order_by(batches.c.seq)
        present: set[str] | None = None
        if stamp != self._looked_dir or full:
            with os.scandir(self.batch_dir) as listing:
                present = {entry.name for entry in listing}
            self._looked_dir = stamp
            if full:
                self._full_look_at = now
        else:
            # nothing added or renamed: only files found wanting before can have changed (rewritten in place);
            # there are only as many as the operator put there, whatever an agency anchors
            wanting = [seq for seq, identity in self._looked.items() if identity is not None]
            if not wanting:
                return
            query = query.where(batches.c.seq.in_(wanting))
        with self.store.connect() as conn:
            rows = conn.execute(query).mappings().all()
        store = BatchStore(self.batch_dir)
        for row in rows:
            seq, file_hash = int(row["seq"]), bytes(row["file_hash"])
            if present is not None and store.path(file_hash).name not in present:
                continue  # still no file
            identity = self._file_identity(file_hash)
            if identity is None or (seq in self._looked and self._looked[seq] == identity):
                continue  # still no file, or the one already found wanting
            found = self._read_batch(seq, int(row["count"]), bytes(row["root"]), file_hash, bytes(row["tx_hash"]),
                                     int(row["log_index"]), int(row["block_number"]))
            if isinstance(found, Withheld):
                if (found.kind, found.reason) != (row["withheld"], row["withheld_reason"]):
                    self._still_withheld(seq, found)
                continue
            if self._release(row, found):
                report.released_batches += 1

    def _still_withheld(self, seq: int, withheld: Withheld) -> None:
        """A withheld batch's file changed but still cannot be indexed: say what is wrong now."""
        with self.store.begin() as conn:
            self._lock_state(conn, None)
            conn.execute(
                update(batches)
                .where(batches.c.seq == seq, batches.c.withheld == WITHHELD_MISSING)
                .values(withheld=withheld.kind, withheld_reason=withheld.reason)
            )
        if withheld.kind == WITHHELD_IMPOSSIBLE:
            log.warning("withheld batch seq %d of %s can never be indexed now: %s", seq, self.address, withheld.reason)

    def _release(self, row: Any, content: BatchContent) -> bool:
        """Write a withheld batch's entries at their seqs, in one transaction: entries and case events, the corrections
        aimed at them applied as they would have been, the cases they touch re-folded (their events come in out of
        seq order), the batch no longer withheld. False when another indexer released it (or a reorganisation
        removed it) meanwhile."""
        seq, count, agency = int(row["seq"]), int(row["count"]), row["agency_id"]
        self._forget()
        try:
            with self.store.begin() as conn:
                self._lock_state(conn, None)
                still = conn.execute(select(batches.c.withheld).where(batches.c.seq == seq)).scalar()
                if still != WITHHELD_MISSING:
                    return False
                caches = self._load_caches(conn)
                entry_rows: list[tuple[Any, ...]] = []
                event_rows: list[tuple[Any, ...]] = []
                new_events: dict[tuple[str, bytes], list[Event]] = {}
                proof = (int(row["block_number"]), bytes(row["block_hash"]), int(row["block_time"]),
                         bytes(row["tx_hash"]), int(row["log_index"]))
                _batched_rows(seq, agency, _code_word(agency), row["signer"], bytes(row["running_hash"]), proof,
                              content, entry_rows, event_rows, new_events, [])
                conn.exec_driver_sql(self._sql.insert_entries, entry_rows)
                conn.exec_driver_sql(self._sql.insert_case_events, event_rows)
                self._void_released(conn, seq, count, agency)
                conn.execute(update(batches).where(batches.c.seq == seq).values(withheld=None, withheld_reason=None))
                # dispute answers included: an earlier-seq Reopened may now answer a dispute a later one answered
                self._refold(conn, new_events, caches)
        finally:
            self._forget()
        log.warning("withheld batch seq %d of %s released: its file is published, its %d entries are indexed", seq,
                    self.address, count)
        return True

    def _void_released(self, conn: Connection, first: int, count: int, agency: str) -> None:
        """Apply the corrections aimed at the entries of a batch released now (they were refused while it was
        withheld), by the one rule (``ledger.cases.voided_entries``): every such correction comes after the batch."""
        c = corrections.c
        found = conn.execute(
            select(c.seq, c.agency_id, c.target_seq)
            .where(c.target_seq >= first, c.target_seq < first + count)
            .order_by(c.seq)
        ).all()
        if not found:
            return
        log_order: list[tuple[int, Any, int | None, int]] = [
            (seq, agency, None, int(EntryKind.CASE_EVENT)) for seq in range(first, first + count)
        ]
        log_order += [(int(r.seq), r.agency_id, int(r.target_seq), int(EntryKind.CORRECTION)) for r in found]
        for target, by in voided_entries(log_order).items():
            conn.execute(update(entries).where(entries.c.seq == target).values(voided_by=by))
            conn.execute(update(corrections).where(c.seq == by).values(applied=True))

    # -- reorganisations

    def _check_reorg(self, report: SyncReport) -> None:
        """Compare the last indexed block with the node's; roll back a shallow reorg, halt on a deep one."""
        with self.store.connect() as conn:
            stored = {int(r.number): bytes(r.hash) for r in conn.execute(select(blocks.c.number, blocks.c.hash))}
        if not stored:
            return
        top = max(stored)
        if _hash_or_none(self.reader.headers([top])[top]) == stored[top]:
            return
        node = self.reader.headers(stored)
        common = [n for n in sorted(stored, reverse=True) if _hash_or_none(node[n]) == stored[n]]
        state = self._read_state()
        assert state is not None
        finalized = int(state["finalized_block"])
        deploy_block = int(state["deploy_block"])
        if common:
            first_orphaned: int | None = common[0] + 1
        elif min(stored) <= deploy_block or finalized < 0:
            # The whole indexed history changed, or nothing was reported final yet (a fresh index, or an operator
            # cleared a halt): index everything again.
            first_orphaned = deploy_block
        else:
            first_orphaned = None  # older than every kept hash: at least that deep
        if first_orphaned is None or first_orphaned <= finalized:
            where = (
                f"at block {first_orphaned}" if first_orphaned is not None else f"below block {min(stored)}"
            )
            reason = (
                f"chain reorganisation {where}, at or below block {finalized} which was already reported final "
                f"(confirmation depth {self.confirmations}); indexed data up to block {state['last_block']} no "
                "longer matches the node"
            )
            with self.store.begin() as conn:
                conn.execute(
                    update(sync_state)
                    .where(sync_state.c.contract_address == self.address)
                    .values(halted_reason=reason)
                )
            log.critical("INDEXING HALTED for %s: %s", self.address, reason)
            if self.alert is not None:
                self.alert(reason)
            raise ReorgTooDeep(reason)
        keep_to = first_orphaned - 1
        rolled_back = int(state["last_block"]) - keep_to
        log.warning("chain reorganisation: rolling back blocks %d-%d of %s", first_orphaned, state["last_block"],
                    self.address)
        self._rollback(keep_to)
        report.reorgs += 1
        report.rolled_back_blocks += rolled_back

    def _rollback(self, keep_to: int) -> None:
        """Remove everything indexed above block `keep_to`, in one transaction, and re-derive what it touched."""
        self._forget()
        self._looked.clear()
        self._looked_dir = None
        try:
            self._rollback_in_transaction(keep_to)
        finally:
            self._forget()  # reloaded from the store as needed

    def _rollback_in_transaction(self, keep_to: int) -> None:
        with self.store.begin() as conn:
            state = self._lock_state(conn, None)
            if int(state["last_block"]) <= keep_to:
                return  # another indexer rolled back already
            # the first seq above the fork: of an entry, or of a batch (a withheld one has no entries)
            firsts = [
                conn.execute(select(func.min(table.c.seq)).where(table.c.block_number > keep_to)).scalar()
                for table in (entries, batches)
            ]
            first = min((int(f) for f in firsts if f is not None), default=None)
            count = int(state["entry_count"]) if first is None else first
            affected: set[tuple[str, bytes]] = set()
            for table in (case_events, *_FEEDBACK_TABLES):
                for row in conn.execute(
                    select(table.c.agency_id, table.c.case_id).where(table.c.seq >= count).distinct()
                ):
                    affected.add((row.agency_id, bytes(row.case_id)))
            unvoid = [
                int(t) for t in conn.execute(
                    select(corrections.c.target_seq).where(corrections.c.seq >= count, corrections.c.applied)
                ).scalars()
            ]
            for chunk in _chunks(unvoid):
                conn.execute(update(entries).where(entries.c.seq.in_(chunk)).values(voided_by=None))
                for row in conn.execute(
                    select(case_events.c.agency_id, case_events.c.case_id).where(case_events.c.seq.in_(chunk))
                ):
                    affected.add((row.agency_id, bytes(row.case_id)))
            years = {
                (row.jurisdiction, int(row.year))
                for row in conn.execute(
                    select(holiday_calendars.c.jurisdiction, holiday_calendars.c.year)
                    .where(holiday_calendars.c.seq >= count)
                )
            }
            conn.execute(update(commitments).where(commitments.c.retired_seq >= count).values(retired_seq=None))
            conn.execute(update(auditors).where(auditors.c.revoked_seq >= count).values(revoked_seq=None))
            for table in (agencies, signer_changes, commitments, commitment_retirements, case_events,
                          corrections, holiday_calendars, *_FEEDBACK_TABLES, batches, auditors, attestations):
                conn.execute(delete(table).where(table.c.seq >= count))
            # answers rolled back (the re-fold below works out the answers of the affected cases again)
            conn.execute(update(disputes).where(disputes.c.answer_seq >= count)
                         .values(answer_seq=None, answer_action=None, answered_at=None))
            conn.execute(delete(entries).where(entries.c.seq >= count))
            running = conn.execute(select(entries.c.running_hash).where(entries.c.seq == count - 1)).scalar()
            if running is None and count > 0:  # the last entry kept is in a withheld batch: the head after it
                running = conn.execute(
                    select(batches.c.running_hash).where(batches.c.seq < count).order_by(batches.c.seq.desc()).limit(1)
                ).scalar()
            conn.execute(delete(blocks).where(blocks.c.number > keep_to))
            conn.execute(
                update(sync_state)
                .where(sync_state.c.contract_address == self.address)
                .values(last_block=keep_to, entry_count=count,
                        running_hash=ZERO_HEAD if running is None else bytes(running))
            )
            caches = self._load_caches(conn)
            self._refold(conn, affected, caches)
            for jurisdiction, year in sorted(years):
                self._recompute_due(conn, jurisdiction, year, caches)
        log.info("rolled back to block %d (%d entries kept)", keep_to, count)


def settle_attestations(conn: Connection, indexed: int) -> None:
    """Decide ``matches_ledger`` of every attestation still undecided whose checkpoint the index has reached
    (``entry_count`` at most `indexed`, the entries the store holds): :func:`checkpoint_matches`."""
    a = attestations.c
    pending = conn.execute(
        select(a.seq, a.entry_count, a.block_number, a.running_hash)
        .where(a.matches_ledger.is_(None), a.entry_count <= indexed)
        .order_by(a.seq)
    ).all()
    for row in pending:
        matches = checkpoint_matches(conn, int(row.entry_count), int(row.block_number), bytes(row.running_hash))
        conn.execute(update(attestations).where(a.seq == row.seq).values(matches_ledger=matches))


def checkpoint_matches(conn: Connection, count: int, block_number: int, running_hash: bytes) -> bool:
    """Whether a checkpoint (``count`` entries, ``running_hash`` after them, at ``block_number``) is the ledger's as
    the index holds it: the running hash the index folded after exactly ``count`` entries is ``running_hash`` — a
    count inside a Merkle-anchored batch has none, since the contract adds a batch's entries at once —, and
    ``count`` is the ledger's entry count after block ``block_number`` (its entry ``count - 1`` in that block or an
    earlier one, its entry ``count`` in a later one). The index must hold at least ``count`` entries, and every
    block up to ``block_number``."""
    e, b = entries.c, batches.c
    if count == 0:
        head = ZERO_HEAD
        last_block = -1
    else:
        # after a batch (withheld or not: its row has the head after it), or after an entry written on its own
        found = conn.execute(
            select(b.running_hash, b.block_number).where(b.seq + b.count == count)
        ).first() or conn.execute(
            select(e.running_hash, e.block_number).where(e.seq == count - 1, e.batch_seq.is_(None))
        ).first()
        if found is None:
            return False  # inside a batch: the ledger never had that count
        head, last_block = bytes(found[0]), int(found[1])
    following = conn.execute(select(e.block_number).where(e.seq == count)).scalar()
    if following is None:  # the next entry may be in a withheld batch, which has no entry rows
        following = conn.execute(select(b.block_number).where(b.seq == count)).scalar()
    return head == running_hash and last_block <= block_number and (following is None or following > block_number)


def _batched_rows(
    first: int,
    agency: str,
    agency_word: bytes,
    actor: str,
    running_hash: bytes,
    proof: tuple[int, bytes, int, bytes, int],
    content: BatchContent,
    entry_rows: list[tuple[Any, ...]],
    event_rows: list[tuple[Any, ...]],
    new_events: dict[tuple[str, bytes], list[Event]],
    answers: list[tuple[int, str, bytes, int, int]],
) -> None:
    """The rows of a batch's events (entries ``first`` on): each an entry of kind CASE_EVENT like one written alone
    (agency and actor of the anchor, its own record hash and entry hash), with the anchoring transaction as its proof
    (``proof``: block number, block hash, block time, tx hash, log index), the running hash after the batch, and its
    place in the batch; plus its case_events row and, when it applies to its case (``batched_event_applies``), what the
    case fold needs."""
    block_time = proof[2]
    opened, answering = CaseAction.OPENED, ANSWERS
    case_kind = int(EntryKind.CASE_EVENT)
    entry_hashes = entry_hashes_in_order(first, case_kind, agency_word, actor, content.record_hashes)
    for index, ((case_id, action, at, commitment, district, channel, details), record_hash, entry_hash) in enumerate(
        zip(content.events, content.record_hashes, entry_hashes, strict=True)
    ):
        seq = first + index
        entry_rows.append(
            (seq, case_kind, agency, actor, record_hash, entry_hash, running_hash, *proof, at, None, first, index)
        )
        if action == opened:
            event = Event(seq, action, at, code_text(commitment), code_text(district), channel)
            event_rows.append((seq, agency, case_id, action, at, block_time, details, event.commitment_id,
                               event.district, channel))
        else:
            event = Event(seq, action, at)
            event_rows.append((seq, agency, case_id, action, at, block_time, details, None, None, None))
        if not batched_event_applies(case_id):
            continue  # on the ledger, never folded into its case (a receipt case: ledger.cases)
        if action in answering:
            answers.append((seq, agency, case_id, action, block_time))
        found = new_events.get((agency, case_id))
        if found is None:
            new_events[(agency, case_id)] = [event]
        else:
            found.append(event)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause automatic garbage collection (reference counting still frees everything without cycles)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _position(state: dict[str, Any]) -> tuple[Any, ...]:
    """What another indexer's writes change: where indexing stands, and the withheld batches."""
    return int(state["last_block"]), int(state["entry_count"]), bytes(state["running_hash"]), state["withheld"]


def _hash(header: dict[str, Any] | None) -> bytes:
    assert header is not None
    return bytes.fromhex(header["hash"][2:])


def _timestamp(header: dict[str, Any] | None) -> int:
    assert header is not None
    return int(header["timestamp"], 16)


def _hash_or_none(header: dict[str, Any] | None) -> bytes | None:
    return None if header is None else bytes.fromhex(header["hash"][2:])


def _code_word(code: str) -> bytes:
    """A code's bytes32 from its text in the index (the inverse of ``ledger.encoding.code_text``)."""
    if len(code) == 66 and code.startswith("0x"):
        return bytes.fromhex(code[2:])
    return code.encode("ascii").ljust(32, b"\0")


def _days_json(days: Iterable[int]) -> str:
    return json.dumps([int(d) for d in days], separators=(",", ":"))


def _case_filters(agency_column: Any, case_column: Any, keys: Iterable[tuple[str, bytes]]) -> Iterator[Any]:
    """WHERE clauses selecting cases by (agency, case id), one agency and a chunk of ids at a time: unlike a
    row-value IN, ``agency_id = ? AND case_id IN (…)`` uses the (agency_id, case_id, …) index on SQLite."""
    by_agency: dict[str, list[bytes]] = {}
    for agency, case_id in keys:
        by_agency.setdefault(agency, []).append(case_id)
    for agency in sorted(by_agency):
        for chunk in _chunks(by_agency[agency]):
            yield (agency_column == agency) & case_column.in_(chunk)


def _chunks(items: Sequence[Any] | Iterable[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]
