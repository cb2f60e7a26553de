"""The indexer: follows the ledger's events into the SQL store, resumably, and survives reorganisations.

The parts
    This module is the sync loop (:class:`Indexer`): ranges, their checks against the contract, the one transaction
    each, finality and reorganisations. What a range's entries become in the tables is
    :mod:`ledger.index.project`; the case rows folded from them, :mod:`ledger.index.cases`; the batch files read for
    the anchors, and the batches withheld when they cannot be, :mod:`ledger.index.withheld`; the statements they
    run, :mod:`ledger.index.sql`. The Indexer owns one of each collaborator and drops what they mirror of the store
    whenever it may be stale.

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

Merkle-anchored batches (``ledger.batches``)
    A ``BatchAnchored`` log stands for ``count`` case events, entries ``seq`` to ``seq + count - 1``, whose records
    are in the published batch file. The range check folds the anchor's entry hash once and advances the count by
    ``count``, as the contract does. Once the contract vouches for the range, each anchor's file is read and checked
    (:mod:`ledger.index.withheld`); its events are then written like case events written alone
    (:mod:`ledger.index.project`) — or, when the file cannot be read, the batch is withheld and indexing goes on. A
    sync ends by looking again for the files of the withheld batches and writing those published since. Ranges are
    sized by entries, batched ones included.

Finality and reorganisations
    ``blocks`` keeps the hashes of the last ``keep_blocks`` indexed blocks. Every sync first compares the stored hash
    of the last indexed block with the node's; on a difference it finds the first orphaned block. Blocks newer than
    ``head - confirmations`` are indexed at once but are not final: :meth:`Indexer.finalized_block` says up to
    where data is final, and never decreases. If the first orphaned block is above it, everything from that block on
    is rolled back (entries, per-kind rows, voids by rolled-back corrections, retirements, case states re-folded,
    due times recomputed) and indexed again from the new chain. If it is at or below it, a block already reported
    final has changed: indexing halts (``sync_state.halted_reason``, a CRITICAL log line, the optional ``alert``
    callback) and raises :class:`~ledger.errors.ReorgTooDeep` until an operator calls :meth:`Indexer.clear_halt`.

One writer
    One indexer process writes a store at a time: every sync runs under the store's leader lease
    (:mod:`ledger.index.leader`), waiting for it when another indexer holds it, and every write transaction starts by
    checking, in that transaction, that this indexer still holds it (fencing), so one paused past its lease and
    overtaken writes nothing when it wakes. :meth:`Indexer.run` keeps the lease between its polls, and stands by
    while another indexer leads, taking over when that one's lease ends unrenewed. The confirmation depth is the
    chain's default unless given (``ledger.config.confirmations_for``: ``CIVIC_CONFIRMATIONS``).

Node access
    Reads are JSON-RPC over HTTP through the one client (``ledger.chain.rpc.JsonRpc``: keep-alive, batches, timeouts,
    no redirects); timeouts, connection errors, HTTP 5xx and 429 (``Retry-After`` honoured) and rate-limit errors
    are retried by its policy, with exponential backoff and jitter.
    The embedded eth-tester chain has no raw JSON-RPC, so it is not supported: index an anvil (or any node).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import OperationalError

from ledger.batches import BatchStore
from ledger.batches.read import WITHHELD_IMPOSSIBLE, WITHHELD_MISSING, BatchContent
from ledger.chain.contract import Chain, Ledger
from ledger.chain.logs import DecodedEntry, LogDecoder
from ledger.chain.reader import LedgerReader, RangeSizer
from ledger.chain.rpc import JsonRpc, RangeTooLarge, RetryPolicy, RpcError
from ledger.config import DEFAULT_LEASE_SECONDS, confirmations_for
from ledger.encoding import ZERO_HEAD, fold
from ledger.errors import ChainMismatch, IndexIntegrityError, NodeUnavailable, ReorgTooDeep
from ledger.index import cells
from ledger.index.cases import FEEDBACK_TABLES, CaseFolder
from ledger.index.leader import LeaderLease, NotLeader
from ledger.index.project import Projection, settle_attestations
from ledger.index.sql import Statements, chunks
from ledger.index.withheld import Withheld, WithheldBatches
from ledger.records import EntryKind
from ledger.store.db import Store
from ledger.store.schema import (
    agencies,
    attestations,
    auditors,
    batches,
    blocks,
    case_events,
    commitment_retirements,
    commitments,
    corrections,
    disputes,
    entries,
    filings,
    holiday_calendars,
    signer_changes,
    sync_state,
)

log = logging.getLogger(__name__)

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


class _StateMoved(Exception):
    """Another indexer wrote to this store since this one read its state: re-read and go on from there."""


class _ReorgDetected(Exception):
    """A block the current range depends on changed while it was read: check for a reorganisation and retry."""


# -------------------------------------------------------------------------------------------------- indexer


#: how long to wait before reading a range's logs again when they do not add up (a node's log index behind its head)
_LOG_INDEX_GRACE = 0.2


class Indexer:
    """Indexes one deployed ledger into one store (one ledger per store). Two indexers on the same store (say the
    service's and an operator's ``sync``) are safe: one leads at a time (the leader lease,
    :mod:`ledger.index.leader`), and each notices the other's writes.

    `confirmations` None: the chain's default (``ledger.config.confirmations_for``). `lease_seconds`: how long the
    lease outlives this indexer's last heartbeat (or pass a :class:`LeaderLease` of its own)."""

    def __init__(
        self,
        chain: Chain,
        contract_address: str,
        store: Store,
        *,
        confirmations: int | None = None,
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
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        lease: LeaderLease | None = None,
    ) -> None:
        if confirmations is None:
            confirmations = confirmations_for(chain.chain_id)
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
        self.reader = LedgerReader(self.rpc, self.address)
        self._ranges = RangeSizer(max_block_range, target_logs)
        # The collaborators: the case fold (and what it mirrors of the store), the projection of entries into the
        # tables, and the batch files.
        sql = Statements(store.engine.dialect)
        self._cases = CaseFolder(sql, case_cache_size)
        self._projection = Projection(sql, self._cases)
        self._withheld = WithheldBatches(
            batch_store.directory if batch_store is not None else Path(batch_dir) if batch_dir is not None else None
        )
        self._call_by_hash = True  # EIP-1898 block-hash calls; dropped for nodes that refuse them
        self._unverified = False  # ranges committed without the contract's check (no state on the node there)
        #: (last_block, entry_count, running_hash, withheld batches) as this indexer last wrote them; None when unknown
        self._written: tuple[Any, ...] | None = None
        #: the store's leader lease, and how many blocks (:meth:`leading`, :meth:`run`) keep it now
        self.lease = lease if lease is not None else LeaderLease(store, lease_seconds=lease_seconds)
        self._keeping = 0

    # -- public

    @property
    def batch_dir(self) -> Path | None:
        """Where published batch files are read (``ledger.batches.BatchStore``, files named by their hash): the
        service keeps them in ``<data dir>/batches``. None: every batch is withheld (missing) until one is given."""
        return self._withheld.batch_dir

    @batch_dir.setter
    def batch_dir(self, directory: Path | None) -> None:
        self._withheld.batch_dir = directory

    @property
    def case_cache_size(self) -> int:
        """How many case rows the indexer keeps in memory (new events of a recent case need no read)."""
        return self._cases.cache_size

    @case_cache_size.setter
    def case_cache_size(self, size: int) -> None:
        self._cases.cache_size = size

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

    def clear_halt(self, *, wait: float | None = None) -> None:
        """Operator action after :class:`ReorgTooDeep`: accept the new chain. The next sync rolls back to the fork
        (from the deployment block when the fork is older than the kept block hashes) and indexes the new chain.
        Under the leader lease, as a sync (`wait`: :meth:`leading`)."""
        with self.leading(wait), self.store.begin() as conn:
            self.lease.fence(conn)
            conn.execute(
                update(sync_state)
                .where(sync_state.c.contract_address == self.address)
                .values(halted_reason=None, finalized_block=-1)
            )
        log.warning("halt cleared by the operator for %s: the next sync accepts the reorganised chain", self.address)

    @contextmanager
    def leading(self, wait: float | None = None, *, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold the store's leader lease for the block: taken or renewed, waiting up to `wait` seconds (None: as long
        as it takes) for another indexer to give it up or let it end (:class:`~ledger.index.leader.NotLeader` then);
        given up when the outermost block ends. Every sync runs in one; one around several syncs keeps the store
        between them."""
        self.lease.take(wait, stop=stop)
        with self._keeping_lease():
            yield

    @contextmanager
    def _keeping_lease(self) -> Iterator[None]:
        self._keeping += 1
        try:
            yield
        finally:
            self._keeping -= 1
            if self._keeping == 0:
                self.lease.release()

    def sync(self, to_block: int | None = None, *, wait: float | None = None) -> SyncReport:
        """Index up to `to_block` (default: the head). Blocks above head - confirmations are indexed but not final.
        Under the store's leader lease, waiting up to `wait` seconds for it (None: as long as it takes)."""
        with self.leading(wait):
            return self._sync(to_block)

    def _sync(self, to_block: int | None) -> SyncReport:
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
        """Sync, then keep following the head every `poll_interval` seconds until `stop_event` is set, keeping the
        store's leader lease (renewed at each poll) and giving it up at the end. While another indexer leads, stand
        by, looking at its lease every poll, and take over once it ends. Transient failures (node or database
        unreachable, the lease lost) are logged and retried; a halt or an integrity failure stops it."""
        stop = stop_event or threading.Event()
        leader: str | None = None
        with self._keeping_lease():
            while not stop.is_set():
                try:
                    self.sync(wait=0)
                    leader = None
                except (ReorgTooDeep, IndexIntegrityError, ChainMismatch):
                    raise
                except NotLeader as exc:
                    if exc.holder is None or exc.holder.holder != leader:
                        log.warning("standing by: %s", exc)
                        leader = None if exc.holder is None else exc.holder.holder
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
            self.lease.fence(conn)
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
            self.lease.fence(conn)
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
            # A node whose log index lags its head (anvil, geth: a block is there before its logs are) serves the
            # range short once: read it again before calling it an integrity failure. A node that keeps serving it
            # short or altered is refused below; one that keeps changing its answer is given up on after 20 tries.
            time.sleep(_LOG_INDEX_GRACE)
            if len(self.reader.logs(start, end)) != len(logs):
                raise _ReorgDetected(f"blocks {start}-{end}: a second read gave other logs (the node's log index was "
                                     "behind its head)")
            raise IndexIntegrityError(
                f"blocks {start}-{end}: the logs give {len(decoded)} entries from seq {count}"
                f"{'' if complete else f' with a gap at seq {expected_seq}'}, "
                f"ending at count {expected_seq} and running hash 0x{head.hex()}, but the contract at block {end} "
                f"reports count {chain_count} and running hash 0x{chain_head.hex()}: the node's logs are incomplete "
                "or altered; indexing stops here"
            )

        # The chain vouches for the anchors; their files must match them (read once the range is known good). A
        # batch whose file cannot be read is withheld: the range is written all the same.
        contents = {e.seq: self._withheld.content(e) for e in anchors}
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
        with self.store.begin() as conn, cells.tracked(conn):
            self._lock_state(conn, read_at)
            caches = self._cases.load_caches(conn)
            self._projection.write(conn, decoded, running, caches, contents)
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
        # SQLite: the API's readers, overlapping, would keep the WAL from ever being reset; checkpoint it when large
        self.store.bound_wal()

    def _lock_state(self, conn: Connection, read_at: tuple[Any, ...] | None) -> dict[str, Any]:
        """Take the write lock on this ledger's sync state (a no-op UPDATE locks the row on PostgreSQL and the
        database on SQLite) and check nobody moved it since `read_at`: two indexers on one store never interleave
        their writes, the second waits, then notices and carries on from the new state. First of all, the write is
        fenced: refused unless this indexer still holds the leader lease (:meth:`LeaderLease.fence`)."""
        self.lease.fence(conn)
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

    def _forget(self) -> None:
        """Drop everything mirrored from the store (after a failed write or a rollback)."""
        self._cases.forget()
        self._written = None

    # -- withheld batches

    def _release_withheld(self, report: SyncReport) -> None:
        """Look again for the files of the batches withheld as missing: write the entries of each whose file is there
        and matches now, and mark one whose file turns out impossible. A file is read only when it is new or changed
        since this indexer last looked at it (:meth:`WithheldBatches.look_again`)."""
        for row, found in self._withheld.look_again(self.store):
            if isinstance(found, Withheld):
                if (found.kind, found.reason) != (row["withheld"], row["withheld_reason"]):
                    self._still_withheld(int(row["seq"]), found)
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
        """Write a withheld batch's entries at their seqs, in one transaction (:meth:`Projection.release`). False
        when another indexer released it (or a reorganisation removed it) meanwhile."""
        seq, count = int(row["seq"]), int(row["count"])
        self._forget()
        try:
            with self.store.begin() as conn, cells.tracked(conn):
                self._lock_state(conn, None)
                still = conn.execute(select(batches.c.withheld).where(batches.c.seq == seq)).scalar()
                if still != WITHHELD_MISSING:
                    return False
                caches = self._cases.load_caches(conn)
                self._projection.release(conn, row, content, caches)
        finally:
            self._forget()
        log.warning("withheld batch seq %d of %s released: its file is published, its %d entries are indexed", seq,
                    self.address, count)
        return True

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
                self.lease.fence(conn)
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
        self._withheld.forget()
        try:
            self._rollback_in_transaction(keep_to)
        finally:
            self._forget()  # reloaded from the store as needed

    def _rollback_in_transaction(self, keep_to: int) -> None:
        with self.store.begin() as conn, cells.tracked(conn):
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
            for table in (case_events, *FEEDBACK_TABLES):
                for row in conn.execute(
                    select(table.c.agency_id, table.c.case_id).where(table.c.seq >= count).distinct()
                ):
                    affected.add((row.agency_id, bytes(row.case_id)))
            unvoid = [
                int(t) for t in conn.execute(
                    select(corrections.c.target_seq).where(corrections.c.seq >= count, corrections.c.applied)
                ).scalars()
            ]
            for chunk in chunks(unvoid):
                for row in conn.execute(
                    select(case_events.c.agency_id, case_events.c.case_id).where(case_events.c.seq.in_(chunk))
                ):
                    affected.add((row.agency_id, bytes(row.case_id)))
            f = filings.c
            cells.before(conn, cases=affected, filing_seqs=conn.execute(
                select(f.seq).where((f.seq >= count) | (f.answer_seq >= count))).scalars())
            for chunk in chunks(unvoid):
                conn.execute(update(entries).where(entries.c.seq.in_(chunk)).values(voided_by=None))
            years = {
                (row.jurisdiction, int(row.year))
                for row in conn.execute(
                    select(holiday_calendars.c.jurisdiction, holiday_calendars.c.year)
                    .where(holiday_calendars.c.seq >= count)
                )
            }
            conn.execute(update(commitments).where(commitments.c.retired_seq >= count).values(retired_seq=None))
            conn.execute(update(auditors).where(auditors.c.revoked_seq >= count).values(revoked_seq=None))
            conn.execute(update(filings).where(filings.c.answer_seq >= count).values(
                answer_seq=None, decision=None, case_id=None, duplicate_of=None, reason_hash=None, answered_at=None))
            for table in (agencies, signer_changes, commitments, commitment_retirements, case_events,
                          corrections, holiday_calendars, *FEEDBACK_TABLES, batches, auditors, attestations, filings):
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
            caches = self._cases.load_caches(conn)
            self._cases.refold(conn, affected, caches)
            for jurisdiction, year in sorted(years):
                self._cases.recompute_due(conn, jurisdiction, year, caches)
        log.info("rolled back to block %d (%d entries kept)", keep_to, count)


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
