"""The agency writer: records go into a durable outbox, then onto the chain in batches, exactly once.

``submit`` stores a record in the :class:`~ledger.writer.outbox.Outbox` and returns once it is on disk. ``flush`` (or
the background thread ``start`` runs, flushing by size or time) sends everything pending, in submission order: runs of
case events as ``recordCaseEvents`` batches of up to ``batch_size``, every other record in a transaction of its own.

How "exactly once" holds, whatever fails:

- Identical records get the same idempotency key, so submitting one again returns the stored row.
- The writer keeps its own nonce. Each transaction is signed locally and stored (nonce and raw bytes, with its rows
  moved to ``sent``) *before* it is broadcast. From then on only those same bytes are ever broadcast again: a
  transaction is never signed a second time with another nonce while the first might still land.
- A broadcast whose answer was lost (timeout, dropped connection, 5xx) is simply broadcast again; "already known" or
  "nonce too low" then means it is in the pool or mined, which a receipt lookup confirms.
- ``recover`` (run before the first flush, and again after the node was unreachable) settles every ``sent``
  transaction: mined → its rows are recorded with their ``seq``; unknown to the node → broadcast again; its nonce
  taken by another transaction → it can never be mined, and its rows fail with a message saying so. It also notices
  mined transactions the node no longer has (a reorg, or a dev chain restarted from an older state file) and
  broadcasts them again.

Receipts (:class:`~ledger.records.Receipt`, the public key of a citizen's receipt) go out right after their case's
Opened event: the planner (``ledger.writer.planner``) moves them past the case events submitted with them, into one
``issueReceipts`` transaction per run (up to ``batch_size``), and never past a later event of their own case. The
ledger would accept a receipt before its case's Opened event, but the auditor reports a receipt for an unopened
case, so a receipt is sent only once the outbox has seen that case's Opened event recorded (``Outbox.receipt_case``):
while it is in flight the writer waits for it, and if the ledger refused it the receipt fails too, with a message
saying so.

A contract revert is permanent: every transaction is run once on the latest state before it is signed (to measure
its gas, so a revert spends no nonce), the revert is decoded into :class:`~ledger.errors.ContractReverted` naming the
custom error, and the row fails with that message. A batch that reverts is halved until the bad entries are
isolated, so one bad entry never blocks the others. A transaction that passes that check but reverts once mined (the
state changed in between) puts its rows back to pending — its nonce is spent, so that is safe — up to
``max_attempts`` times. An entry stamped after the latest block's time is early rather than wrong: it waits for a
newer block (see ``Writer._ready_prefix``). Transient RPC failures (connection errors, timeouts, HTTP 5xx, 429
honouring Retry-After) are retried with exponential backoff; when retries run out the flush raises
:class:`~ledger.errors.NodeUnavailable` and everything waits in the outbox.

Writers that send records someone else signed (``ledger.relay.writer.RelayWriter``) may find a refused record on chain
already, put there by a copy of the same signature: ``found_on_chain`` names that transaction and the rows are
recorded with it instead of failing. ``gas_spent`` tells them what each settled transaction cost.

The private key never leaves the signer object: nothing here logs or formats it, and ``repr(writer)`` shows only the
signer's address.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.providers.rpc import HTTPProvider
from web3.types import BlockIdentifier

from ledger.chain.contract import REVERT_ERRORS, Ledger
from ledger.chain.rpc import RATE_LIMITED, RetryPolicy, retry_after_seconds
from ledger.errors import ContractReverted, InvalidRecord, NodeUnavailable, OutboxError, WriterError
from ledger.records import (
    CaseEvent,
    Commitment,
    Correction,
    FilingAnswer,
    HolidayCalendar,
    Receipt,
    Record,
    Retirement,
)
from ledger.writer import planner
from ledger.writer.outbox import Outbox, OutboxItem, OutboxState, TxState, default_idempotency_key
from ledger.writer.planner import MAX_BATCH, MAX_CALLDATA

log = logging.getLogger(__name__)

T = TypeVar("T")

#: records an agency key writes directly — to the ledger, and its answers to filings to the filings module
#: (governance records go through Ledger.register_agency and friends)
WRITABLE: tuple[type[Record], ...] = (
    Commitment, Retirement, CaseEvent, Correction, HolidayCalendar, Receipt, FilingAnswer,
)


class _Hold(Exception):
    """Internal: a receipt's case is not opened on chain yet; it and everything after it wait for a later flush."""


@dataclass(frozen=True)
class _Receipt:
    status: int
    block_number: int
    #: seq of every entry the transaction recorded on this ledger, in log order
    seqs: tuple[int, ...]
    #: gas the transaction used (what its sender paid for, whether it succeeded or reverted)
    gas_used: int = 0


@dataclass
class _InFlight:
    """A signed, stored transaction whose outcome the writer is waiting for."""

    tx_hash: str
    sender: str
    nonce: int
    raw: bytes


@dataclass(frozen=True)
class FoundOnChain:
    """A transaction someone else sent that recorded the records of some outbox rows: its hash, sender and nonce
    (the sender's), and the seq of each row's entry, in row order."""

    tx_hash: str
    sender: str
    nonce: int
    seqs: tuple[int, ...]


class _NonceTaken(Exception):
    """Internal: another transaction used this one's nonce, so it can never be mined."""


@dataclass
class WriterStats:
    """Counters since the writer was created (for benchmarks, tests and operators)."""

    signed: int = 0  # transactions signed (each nonce exactly once)
    broadcasts: int = 0  # send_raw_transaction calls, re-broadcasts of the same bytes included
    estimates: int = 0
    retries: int = 0  # transient RPC failures retried
    recorded: int = 0  # entries seen on chain
    failed: int = 0  # entries refused


class Writer:
    """Writes an agency's records through a durable outbox. One writer per outbox (a lock file enforces it)."""

    def __init__(
        self,
        ledger: Ledger,
        signer: LocalAccount,
        outbox: Outbox,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_retries: int = 6,
        retry_backoff: float = 0.1,
        max_backoff: float = 5.0,
        max_retry_after: float = 60.0,
        rpc_timeout: float = 10.0,
        receipt_timeout: float = 120.0,
        rebroadcast_after: float = 10.0,
        max_in_flight: int = 8,
        max_attempts: int = 3,
        max_clock_skew: float = 60.0,
        max_hold: float = 300.0,
        gas_margin: float = 1.25,
        max_fee_per_gas: int | None = None,
        max_priority_fee_per_gas: int | None = None,
        gas_price: int | None = None,
    ) -> None:
        """
        :param batch_size: case events per ``recordCaseEvents`` transaction (1 to ``MAX_BATCH``); also the number of
            pending entries that makes the background thread flush at once
        :param flush_interval: seconds the background thread lets an entry wait for a batch to fill
        :param max_retries: retries of one RPC call on transient errors before giving up (NodeUnavailable)
        :param retry_backoff: first backoff in seconds, doubled per retry up to ``max_backoff``
        :param max_retry_after: the longest ``Retry-After`` honoured on a 429/503
        :param rpc_timeout: HTTP timeout of one JSON-RPC request
        :param receipt_timeout: how long a flush waits for one transaction to be mined
        :param rebroadcast_after: while waiting, how often to check the node still has the transaction
        :param max_in_flight: transactions broadcast before waiting for the oldest receipt
        :param max_attempts: times an entry may be in a transaction that reverted on chain before it fails
        :param max_clock_skew: an entry stamped up to this many seconds ahead of the writer's clock, but after the
            latest block, waits for a newer block instead of failing (see ``_ready_prefix``)
        :param max_hold: the longest such an entry waits, in seconds since it was submitted
        :param gas_margin: gas limit = estimate × margin
        :param max_fee_per_gas: EIP-1559 fee cap; default 2 × base fee + priority fee
        :param max_priority_fee_per_gas: default the node's ``eth_maxPriorityFeePerGas``
        :param gas_price: for chains without EIP-1559; default the node's ``eth_gasPrice``
        """
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH} (calldata stays under {MAX_CALLDATA} bytes)")
        if max_in_flight < 1 or max_retries < 0 or max_attempts < 1 or gas_margin < 1:
            raise ValueError("max_in_flight and max_attempts must be ≥ 1, max_retries ≥ 0, gas_margin ≥ 1")
        self.ledger = ledger
        self.signer = signer
        self.address: str = signer.address
        self.outbox = outbox
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._retry = RetryPolicy(max_retries=max_retries, backoff=retry_backoff, max_backoff=max_backoff,
                                  max_retry_after=max_retry_after)
        self.receipt_timeout = receipt_timeout
        self.rebroadcast_after = rebroadcast_after
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.max_clock_skew = max_clock_skew
        self.max_hold = max_hold
        self.gas_margin = gas_margin
        self.max_fee_per_gas = max_fee_per_gas
        self.max_priority_fee_per_gas = max_priority_fee_per_gas
        self.gas_price = gas_price
        self.stats = WriterStats()
        self.last_error: Exception | None = None

        self._w3, self._raw_http = _own_web3(ledger.w3, rpc_timeout)
        self._lock_file = _lock_outbox(outbox.path)
        self._flush_lock = threading.Lock()
        self._ready = False  # recover() has reconciled the outbox with the node since the last failure
        self._nonce = 0
        self._chain_id = 0
        self._fees: dict[str, int] = {}
        self._block_time = 0
        self._block_gas_limit = 30_000_000
        self._automine_cached: bool | None = None
        self._access_lists: bool | None = None  # whether the node answers eth_createAccessList
        self._holding = False  # the last flush held entries back until a newer block
        #: records submitted in this process, by row id, so flushing them needs no rebuild from JSON
        self._records: dict[int, Record] = {}

        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._pending_hint = outbox.count(OutboxState.PENDING)
        self._first_pending_at: float | None = time.monotonic() if self._pending_hint else None

    def __repr__(self) -> str:
        return f"Writer(ledger={self.ledger.address}, signer={self.address}, outbox={str(self.outbox.path)!r})"

    # ------------------------------------------------------------------ submitting

    def submit(self, record: Record, idempotency_key: str | None = None) -> OutboxItem:
        """Store a record in the outbox (durably, before returning) and return its row. A record (or key) already
        submitted returns the existing row — whatever its state — instead of adding one."""
        return self.submit_many([record], [idempotency_key])[0]

    def submit_many(
        self, records: Sequence[Record], idempotency_keys: Sequence[str | None] | None = None
    ) -> list[OutboxItem]:
        """Store many records in one outbox transaction (one disk sync): the fast way to submit in bulk."""
        keys = list(idempotency_keys) if idempotency_keys is not None else [None] * len(records)
        if len(keys) != len(records):
            raise ValueError("one idempotency key (or None) per record")
        prepared = []
        for record, key in zip(records, keys, strict=True):
            if not isinstance(record, WRITABLE):
                raise InvalidRecord(
                    f"{type(record).__name__} is not written by an agency key"
                    + (" (governance writes it through Ledger)" if isinstance(record, Record) else "")
                )
            hashed = record.struct_hash()
            prepared.append((record, key or default_idempotency_key(self.address, record, hashed), hashed))
        added = self.outbox.add_many(prepared)
        new = 0
        for item, created in added:
            if created:
                self._records[item.id] = item.record
                new += 1
        if new:
            with self._cond:
                self._pending_hint += new
                if self._first_pending_at is None:
                    # The thread may be waiting without a timeout: wake it to start the flush_interval clock.
                    self._first_pending_at = time.monotonic()
                    self._cond.notify_all()
                elif self._pending_hint >= self.batch_size:
                    self._cond.notify_all()
        return [item for item, _ in added]

    def write(self, record: Record, idempotency_key: str | None = None) -> OutboxItem:
        """Submit and flush now; return the recorded row. A revert raises :class:`ContractReverted` naming the
        custom error; any other refusal raises :class:`WriterError`."""
        item = self.submit(record, idempotency_key)
        deadline = time.monotonic() + self.receipt_timeout
        while item.state in (OutboxState.PENDING, OutboxState.SENT) and time.monotonic() < deadline:
            self.flush()
            found = self.outbox.get(item.id)
            assert found is not None
            if found.state is OutboxState.PENDING:
                time.sleep(0.2)  # held until a block as recent as the entry (or planned again after a revert)
            item = found
        if item.state is OutboxState.FAILED:
            raise self.failure(item)
        if item.state is not OutboxState.RECORDED:
            raise WriterError(f"outbox entry {item.id} is still {item.state.value}; it will be sent by a later flush")
        return item

    def failure(self, item: OutboxItem) -> Exception:
        """The error a failed row stands for: the decoded ContractReverted when the contract refused it."""
        if item.revert_data:
            return self.ledger.decode_revert_data(item.revert_data)
        return WriterError(f"outbox entry {item.id} failed: {item.error}")

    # ------------------------------------------------------------------ flushing

    def flush(self) -> list[OutboxItem]:
        """Send every entry pending now and wait for the receipts; return the rows it settled, in id order.

        Failed rows are returned with ``state == FAILED`` and ``error`` naming the decoded custom error (use
        :meth:`failure` for the exception). Raises NodeUnavailable when the node stays unreachable (nothing is lost:
        rows stay pending or sent, and the next flush resumes), WriterError when a transaction cannot proceed.
        """
        with self._flush_lock:
            try:
                return self._flush()
            except BaseException as exc:
                # Whatever was in flight is reconciled with the node (receipts, nonce) before anything new is signed.
                self._ready = False
                self.last_error = exc if isinstance(exc, Exception) else None
                raise
            finally:
                self._refresh_pending_hint()

    def recover(self) -> list[OutboxItem]:
        """Reconcile the outbox with the node: settle every transaction left ``sent`` by a crash or an outage, and
        set the next nonce. Runs by itself before the first flush and after a failed one."""
        with self._flush_lock:
            return self._recover()

    def _flush(self) -> list[OutboxItem]:
        results: dict[int, OutboxItem] = {}
        if not self._ready:
            results.update((item.id, item) for item in self._recover())
        up_to = self.outbox.max_id()
        if not self.outbox.pending(up_to_id=up_to, limit=1):
            return [results[k] for k in sorted(results)]
        self._read_fees()
        self._holding = False
        nudged = False
        window: deque[_InFlight] = deque()
        cursor = 0
        while True:
            chunk = self.outbox.pending(after_id=cursor, up_to_id=up_to, limit=self.batch_size * self.max_in_flight)
            if not chunk:
                break
            records = {item.id: self._records.get(item.id) or item.record for item in chunk}
            ready = self.ready_rows(chunk, records)
            if len(ready) < len(chunk) and not nudged and self._automine():
                # A dev chain that mines only on transactions: its latest block may be long past. Mine an empty
                # block, so the chain's time is now, and look again.
                nudged = True
                self._rpc("mine a block", lambda: _raw_request(self._w3, "evm_mine", []))
                self._read_fees()
                ready = self.ready_rows(chunk, records)
            held = False
            for unit in self.plan_units(ready):
                try:
                    unit = self._opened_first(unit, window, results)
                except _Hold:
                    held = True
                    break
                if unit:
                    self._send_unit(unit, [records[item.id] for item in unit], window, results)
                while len(window) >= self.max_in_flight:
                    self._settle(window.popleft(), results)
            for item in ready:
                self._records.pop(item.id, None)
            if held:
                self._holding = True
                log.debug("holding receipts until their cases' Opened events are recorded")
                break
            self._holding = len(ready) < len(chunk)
            if self._holding:
                first_held = chunk[len(ready)]
                log.debug("holding outbox entries from %d on: occurred_at %d is after the latest block (%d)",
                          first_held.id, getattr(records[first_held.id], "occurred_at", 0), self._block_time)
                break
            cursor = chunk[-1].id
        self._drain(window, results)
        return [results[k] for k in sorted(results)]

    def _ready_prefix(self, chunk: list[OutboxItem], records: dict[int, Record]) -> list[OutboxItem]:
        """The rows that can go now, in order: up to the first stamped after the latest block's time, as of the
        writer's clock (:func:`ledger.writer.planner.ready_prefix` says why and when one goes anyway)."""
        return planner.ready_prefix(chunk, records, block_time=self._block_time, now=time.time(),
                                    max_clock_skew=self.max_clock_skew, max_hold=self.max_hold)

    def _automine(self) -> bool:
        """Whether the node mines a block for each transaction and none otherwise (anvil's and Hardhat's default)."""
        if self._automine_cached is None:
            if self.ledger.chain.embedded:
                self._automine_cached = True
            else:
                answers = (self._rpc("ask the mining mode", partial(_ask_dev_node, self._w3, m))
                           for m in ("anvil_getAutomine", "hardhat_getAutomine"))
                self._automine_cached = next((a for a in answers if a is not None), False)
        return self._automine_cached

    def _plan(self, chunk: list[OutboxItem]) -> list[list[OutboxItem]]:
        """Group rows into transactions of up to ``batch_size`` (:func:`ledger.writer.planner.plan_units`), reading
        records submitted in this process from memory rather than rebuilding them from JSON."""
        return planner.plan_units(chunk, lambda item: self._records.get(item.id) or item.record, self.batch_size)

    def _opened_first(
        self, unit: list[OutboxItem], window: deque[_InFlight], results: dict[int, OutboxItem]
    ) -> list[OutboxItem]:
        """The receipts of `unit` that may go now: each case's Opened event recorded first (or not known here, when
        the case was opened through another outbox). Waits for Opened events in flight; fails a receipt whose case's
        Opened event was refused; raises _Hold when one is still pending (it goes out first, in a later flush)."""
        if not unit or unit[0].record_type != Receipt.__name__:
            return unit
        cases = {}
        for item in unit:
            record = self._records.get(item.id) or item.record
            cases[item.id] = self.outbox.receipt_case(record.case_id)  # type: ignore[attr-defined]
        if window and any(c is not None and c.opened_state is OutboxState.SENT for c in cases.values()):
            self._drain(window, results)
            for item in unit:
                found = cases[item.id]
                if found is not None:
                    cases[item.id] = self.outbox.receipt_case(found.case_id)
        ready, refused = [], []
        for item in unit:
            found = cases[item.id]
            state = found.opened_state if found is not None and found.opened_id is not None else None
            if state is OutboxState.FAILED:
                refused.append((item, found))
            elif state in (OutboxState.PENDING, OutboxState.SENT):
                raise _Hold(item.id)
            else:
                ready.append(item)
        for item, found in refused:
            message = (
                f"receipt not issued: the Opened event of its case (outbox entry {found.opened_id if found else '?'}) "
                "was refused, and a receipt must not open a case that does not exist"
            )
            for failed in self.outbox.record_failed([item.id], message):
                results[failed.id] = failed
            self.stats.failed += 1
            log.warning("outbox entry %d refused: its case's Opened event (entry %s) was refused", item.id,
                        found.opened_id if found else "?")
        return ready

    def _send_unit(
        self, items: list[OutboxItem], records: list[Record], window: deque[_InFlight], results: dict[int, OutboxItem]
    ) -> None:
        """Estimate, sign, store and broadcast one transaction; isolate bad entries of a batch by halving it."""
        calldata = self.encode_unit(items, records)
        to = self.unit_target(items, records)
        gas, revert = self._try_estimate(records, calldata, to)
        if revert is not None and window:
            # The estimate ran on the latest state, which may lack our own in-flight transactions (a commitment
            # published just before the cases opened under it): settle them, then judge again.
            self._drain(window, results)
            gas, revert = self._try_estimate(records, calldata, to)
        if revert is not None:
            if len(items) > 1 and self.unit_splittable(items):
                for part, part_records in planner.split_unit(items, records):
                    self._send_unit(part, part_records, window, results)
                return
            # One entry, or a unit that cannot be split (a relayed batch: one signature for all its entries).
            self.gas_spent(items, 0)
            if self._recorded_elsewhere(items, revert, results):
                return
            ids = [item.id for item in items]
            # the error's name only: its arguments may name a citizen's receipt key (kept with the entries instead)
            log.warning("outbox entries %s refused by the contract: %s", ",".join(map(str, ids)), revert.error_name)
            for item in self.outbox.record_failed(ids, str(revert), revert_data=revert.raw or None):
                results[item.id] = item
            self.stats.failed += len(ids)
            return
        assert gas is not None
        nonce = self._nonce
        tx: dict[str, Any] = {
            "chainId": self._chain_id,
            "nonce": nonce,
            "to": to,
            "value": 0,
            "data": calldata,
            "gas": gas,
            **self._fees,
        }
        signed = self.signer.sign_transaction(tx)
        flight = _InFlight("0x" + bytes(signed.hash).hex(), self.address, nonce, bytes(signed.raw_transaction))
        # Durable before it leaves the process: after a crash, recover() finds these bytes and this nonce.
        self.outbox.record_signed([item.id for item in items], tx_hash=flight.tx_hash, sender=self.address,
                                  nonce=nonce, raw=flight.raw)
        self._nonce = nonce + 1
        self.stats.signed += 1
        log.debug("signed %s: nonce %d, %d entries, gas %d", flight.tx_hash, nonce, len(items), gas)
        window.append(flight)
        try:
            self._broadcast(flight)
        except _NonceTaken:
            window.remove(flight)
            self._drop(flight, results)
            raise self._nonce_taken_error(flight) from None

    def _encode(self, records: Sequence[Record]) -> bytes:
        return planner.encode_records(records, self.ledger)

    def _try_estimate(
        self, records: Sequence[Record], calldata: bytes, to: str
    ) -> tuple[int | None, ContractReverted | None]:
        """The gas limit for this calldata (gas used × margin), or the decoded revert that makes it impossible.

        ``eth_createAccessList`` runs the call once and reports the gas it used; ``eth_estimateGas`` searches for the
        smallest sufficient limit by running it repeatedly — ten times slower on anvil for a batch of 500, and the
        largest cost of a flush. So the access-list answer is used where the node has it (geth, Besu, Nethermind,
        anvil, Hardhat), the estimate elsewhere. Either way nothing is signed, so a revert spends no nonce.
        """
        params: Any = {"from": self.address, "to": to, "data": "0x" + calldata.hex()}
        self.stats.estimates += 1
        if self._raw_http and self._access_lists is not False:
            try:
                result = self._rpc(
                    "measure gas", lambda: _raw_request(self._w3, "eth_createAccessList", [params, "latest"])
                )
            except Web3RPCError as exc:
                if _unknown_method(exc):
                    self._access_lists = False  # fall through to eth_estimateGas from now on
                else:
                    return self._why_reverted(params, len(records))
            else:
                self._access_lists = True
                if result.get("error"):  # geth reports the EVM error here, without the revert data
                    return self._why_reverted(params, len(records))
                return self._gas_limit(int(result["gasUsed"], 16)), None
        try:
            estimate = self._rpc("estimate gas", lambda: self._w3.eth.estimate_gas(params))
        except REVERT_ERRORS as exc:
            return None, self.ledger.decode_revert(exc)
        except Web3RPCError as exc:  # not a revert: e.g. the account cannot pay for the gas
            raise self._estimate_refused(exc, len(records)) from exc
        return self._gas_limit(estimate), None

    def _why_reverted(self, params: Any, entries: int) -> tuple[int | None, ContractReverted | None]:
        """The call failed when measured: run it with eth_call, whose error carries the revert data to decode."""
        try:
            self._rpc("read a revert", lambda: self._w3.eth.call(params, "latest"))
        except REVERT_ERRORS as exc:
            return None, self.ledger.decode_revert(exc)
        except Web3RPCError as exc:
            raise self._estimate_refused(exc, entries) from exc
        # It passes now (state moved on between the two calls): measure it the slow, certain way.
        try:
            return self._gas_limit(self._rpc("estimate gas", lambda: self._w3.eth.estimate_gas(params))), None
        except REVERT_ERRORS as exc:
            return None, self.ledger.decode_revert(exc)

    def _gas_limit(self, gas: int) -> int:
        return min(int(gas * self.gas_margin), self._block_gas_limit)

    def _estimate_refused(self, exc: Web3RPCError, entries: int) -> WriterError:
        return WriterError(
            f"the node refused to estimate gas for {entries} entries: {_rpc_message(exc)}; they stay pending"
        )

    def _read_fees(self) -> None:
        block = self._rpc("read the latest block", lambda: self._w3.eth.get_block("latest"))
        self._block_time = int(block["timestamp"])
        self._block_gas_limit = int(block["gasLimit"])
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:  # a chain without EIP-1559
            price = self.gas_price
            if price is None:
                price = self._rpc("read gas price", lambda: self._w3.eth.gas_price)
            self._fees = {"gasPrice": int(price)}
            return
        tip = self.max_priority_fee_per_gas
        if tip is None:
            tip = int(self._rpc("read priority fee", lambda: self._w3.eth.max_priority_fee))
        cap = self.max_fee_per_gas if self.max_fee_per_gas is not None else 2 * int(base_fee) + tip
        self._fees = {"maxFeePerGas": cap, "maxPriorityFeePerGas": min(tip, cap)}

    # ------------------------------------------------------------------ hooks for writers that send other calls

    # A writer sending something other than the agency key's own direct calls (ledger.relay.writer.RelayWriter sends
    # relayed signatures) overrides these; the defaults are this writer's behaviour. Everything else — the outbox,
    # nonces, signing before broadcast, receipts, retries, recovery — is shared.

    def ready_rows(self, chunk: list[OutboxItem], records: dict[int, Record]) -> list[OutboxItem]:
        """The leading rows of `chunk` (pending, in submission order) that may be sent now; the rest wait for a
        later flush. Default: up to the first entry stamped after the latest block (see ``_ready_prefix``)."""
        return self._ready_prefix(chunk, records)

    def plan_units(self, ready: list[OutboxItem]) -> list[list[OutboxItem]]:
        """Group ready rows into transactions, in order. Default: consecutive case events share a batch of up to
        ``batch_size``; every other record is a transaction of its own."""
        return self._plan(ready)

    def encode_unit(self, items: list[OutboxItem], records: Sequence[Record]) -> bytes:
        """Calldata of the transaction carrying these rows (whose records are `records`). Default: the direct
        call (``recordCaseEvents`` for several case events)."""
        return self._encode(records)

    def unit_target(self, items: list[OutboxItem], records: Sequence[Record]) -> str:
        """The contract the transaction carrying these rows goes to. Default: the direct call's (the ledger, or its
        filings module for an answer to a filing: ``ledger.writer.planner.unit_target``)."""
        return planner.unit_target(records, self.ledger)

    def unit_splittable(self, items: list[OutboxItem]) -> bool:
        """Whether a unit whose gas estimate reverts may be halved to isolate the bad entries (default: yes).
        When not, every row of the unit fails with the decoded error."""
        return True

    def found_on_chain(self, items: list[OutboxItem], revert: ContractReverted) -> FoundOnChain | None:
        """Rows the contract refused (`revert`) may already be on chain, sent by someone else: a relayed signature
        copied and submitted directly consumes its nonce, so ours then reverts. Return the transaction that recorded
        exactly these rows' records, or None to fail them (default: None — the agency's own direct calls carry no
        signature anyone could copy)."""
        return None

    def gas_spent(self, items: list[OutboxItem], gas: int) -> None:
        """Told once per settled transaction: the gas this writer's key paid for one carrying `items` (mined, whether
        it succeeded or reverted), or 0 when they were settled without a transaction of ours. Default: nothing."""

    def notice_pending(self) -> int:
        """Count the outbox's pending rows and wake the background thread when there are any: for rows this
        writer did not submit itself (another process sharing the outbox). Returns the count."""
        count = self.outbox.count(OutboxState.PENDING)
        if count:
            with self._cond:
                self._pending_hint = max(self._pending_hint, count)
                if self._first_pending_at is None:
                    self._first_pending_at = time.monotonic()
                    self._cond.notify_all()
        return count

    # ------------------------------------------------------------------ broadcasting and receipts

    def _broadcast(self, flight: _InFlight) -> None:
        """Broadcast the stored bytes; safe to repeat. Raises _NonceTaken, WriterError or NodeUnavailable."""

        def send() -> Any:
            self.stats.broadcasts += 1
            return self._w3.eth.send_raw_transaction(flight.raw)

        try:
            self._rpc(f"broadcast {flight.tx_hash}", send)
            return
        except Web3RPCError as exc:
            message = _rpc_message(exc)
        if any(s in message.lower() for s in ("already known", "known transaction", "already imported")):
            return  # in the pool already: an earlier broadcast got through
        # "nonce too low" and the like: an earlier broadcast of ours may have been mined (its answer lost on the way
        # back), or another transaction took the nonce. The node knows which.
        status = self._tx_status(flight)
        if status in ("mined", "pending"):
            return
        if status == "nonce_taken":
            raise _NonceTaken(flight.tx_hash)
        raise WriterError(
            f"the node refused transaction {flight.tx_hash} (nonce {flight.nonce} of {flight.sender}): {message}. "
            "It stays in the outbox and the same signed bytes are broadcast again by the next flush; fix the cause "
            "first (e.g. fund the account)."
        )

    def _tx_status(self, flight: _InFlight) -> str:
        """'mined', 'pending' (in the node's pool), 'nonce_taken' (can never be mined) or 'unknown'."""
        # Read the account's mined count before looking for the receipt: had ours been mined before the count was
        # read, the receipt would be there — so "no receipt and count > nonce" means another transaction took it.
        mined_count = self._count(flight.sender, "latest")
        if self._receipt(flight.tx_hash) is not None:
            return "mined"
        if mined_count > flight.nonce:
            return "nonce_taken"

        def lookup() -> Any:
            try:
                return self._w3.eth.get_transaction(flight.tx_hash)  # type: ignore[arg-type]  # 0x-hex is fine
            except TransactionNotFound:
                return None

        return "pending" if self._rpc(f"look up {flight.tx_hash}", lookup) is not None else "unknown"

    def _receipt(self, tx_hash: str) -> _Receipt | None:
        if self._raw_http:
            # Straight from the JSON: web3's receipt formatting costs ~0.1 ms per log, 50 ms for a batch of 500.
            result = self._rpc(
                f"read receipt of {tx_hash}", lambda: _raw_request(self._w3, "eth_getTransactionReceipt", [tx_hash])
            )
            if result is None:
                return None
            topics = self.ledger.entry_event_topics
            addresses = {a.lower() for a in self.ledger.addresses}  # the ledger's entries, and its module's
            seqs = tuple(
                int(entry["topics"][1], 16)
                for entry in result["logs"]
                if entry["topics"] and entry["address"].lower() in addresses
                and bytes.fromhex(entry["topics"][0][2:]) in topics
            )
            return _Receipt(int(result["status"], 16), int(result["blockNumber"], 16), seqs,
                            int(result.get("gasUsed") or "0x0", 16))

        def fetch() -> Any:
            try:
                return self._w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]  # 0x-hex is fine
            except TransactionNotFound:
                return None

        receipt = self._rpc(f"read receipt of {tx_hash}", fetch)
        if receipt is None:
            return None
        topics = self.ledger.entry_event_topics
        seqs = tuple(
            int.from_bytes(bytes(entry["topics"][1]), "big")
            for entry in receipt["logs"]
            if entry["topics"] and entry["address"] in self.ledger.addresses and bytes(entry["topics"][0]) in topics
        )
        return _Receipt(int(receipt["status"]), int(receipt["blockNumber"]), seqs, int(receipt.get("gasUsed", 0)))

    def _settle(self, flight: _InFlight, results: dict[int, OutboxItem]) -> None:
        """Wait for one transaction's receipt and record the outcome of its rows."""
        deadline = time.monotonic() + self.receipt_timeout
        check_at = time.monotonic() + self.rebroadcast_after
        poll = 0.002
        while True:
            receipt = self._receipt(flight.tx_hash)
            if receipt is not None:
                break
            now = time.monotonic()
            if now >= check_at:
                status = self._tx_status(flight)
                if status == "nonce_taken":
                    self._drop(flight, results)
                    raise self._nonce_taken_error(flight)
                if status == "unknown":  # the node forgot it (restart, pool eviction): the same bytes again
                    log.info("node no longer has %s (nonce %d); broadcasting it again", flight.tx_hash, flight.nonce)
                    try:
                        self._broadcast(flight)
                    except _NonceTaken:
                        self._drop(flight, results)
                        raise self._nonce_taken_error(flight) from None
                check_at = now + self.rebroadcast_after
                continue
            if now >= deadline:
                raise WriterError(
                    f"transaction {flight.tx_hash} (nonce {flight.nonce}) was not mined within "
                    f"{self.receipt_timeout:g} s; it stays in the outbox and the next flush checks it again"
                )
            time.sleep(poll)
            poll = min(poll * 2, 0.25)
        self._apply_receipt(flight, receipt, results)

    def _drain(self, window: deque[_InFlight], results: dict[int, OutboxItem]) -> None:
        while window:
            self._settle(window.popleft(), results)

    def _apply_receipt(self, flight: _InFlight, receipt: _Receipt, results: dict[int, OutboxItem]) -> None:
        if receipt.status == 1:
            items = self.outbox.record_mined(flight.tx_hash, receipt.seqs)
            self.stats.recorded += len(items)
            self.gas_spent(items, receipt.gas_used)
        else:
            # Mined but reverted: the state changed between estimate and inclusion. Its nonce is spent, so the rows
            # can safely go into a new transaction; the next estimate isolates and fails any entry still refused.
            revert = self._replay(flight, receipt.block_number)
            log.warning("transaction %s reverted on chain (%s); its entries are planned again", flight.tx_hash,
                        revert.error_name)
            items = self.outbox.record_tx_failed(
                flight.tx_hash, TxState.REVERTED, f"transaction {flight.tx_hash} reverted on chain: {revert}",
                revert_data=revert.raw or None, requeue=True, max_attempts=self.max_attempts,
            )
            self.gas_spent(items, receipt.gas_used)
            if self._recorded_elsewhere(items, revert, results):
                return
            self.stats.failed += sum(1 for item in items if item.state is OutboxState.FAILED)
        results.update((item.id, item) for item in items)

    def _recorded_elsewhere(
        self, items: list[OutboxItem], revert: ContractReverted, results: dict[int, OutboxItem]
    ) -> bool:
        """Whether the refused rows' records are on chain already, put there by someone else's transaction
        (:meth:`found_on_chain`); if so they are recorded with it."""
        found = self.found_on_chain(items, revert)
        if found is None:
            return False
        log.info("outbox entries %d… were recorded by %s, sent by %s", items[0].id, found.tx_hash, found.sender)
        recorded = self.outbox.record_found([item.id for item in items], tx_hash=found.tx_hash, sender=found.sender,
                                            nonce=found.nonce, seqs=found.seqs)
        self.stats.recorded += len(recorded)
        results.update((item.id, item) for item in recorded)
        return True

    def _replay(self, flight: _InFlight, block_number: int) -> ContractReverted:
        """Why a mined transaction reverted: call it again on the state before its block."""
        tx_hash: Any = flight.tx_hash
        tx: Any = self._rpc(f"look up {flight.tx_hash}", lambda: self._w3.eth.get_transaction(tx_hash))
        call: Any = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self._rpc("replay a reverted transaction", lambda: self._w3.eth.call(call, max(block_number - 1, 0)))
        except REVERT_ERRORS as exc:
            return self.ledger.decode_revert(exc)
        return ContractReverted("UnknownRevert", {"transaction": flight.tx_hash, "note": "out of gas?"})

    def _drop(self, flight: _InFlight, results: dict[int, OutboxItem]) -> None:
        message = (
            f"nonce {flight.nonce} of {flight.sender} was used by another transaction, so {flight.tx_hash} can never "
            "be mined and these entries were not recorded. Is another writer using this key? Once that is settled, "
            "send them again with Outbox.requeue."
        )
        log.error("%s", message)
        items = self.outbox.record_tx_failed(flight.tx_hash, TxState.DROPPED, message)
        self.stats.failed += len(items)
        results.update((item.id, item) for item in items)

    def _nonce_taken_error(self, flight: _InFlight) -> WriterError:
        return WriterError(
            f"nonce {flight.nonce} of {flight.sender} was used by another transaction; the entries of "
            f"{flight.tx_hash} are marked failed (requeue them once no other writer uses this key)"
        )

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> list[OutboxItem]:
        self._ready = False
        results: dict[int, OutboxItem] = {}
        self._chain_id = int(self._rpc("read chain id", lambda: self._w3.eth.chain_id))
        mined_count = self._count(self.address, "latest")
        # Transactions recorded as mined at or above the account's mined count are gone from the chain: the node
        # lost blocks. Their nonces are free again, so their same bytes are valid again.
        for tx in self.outbox.transactions(state=TxState.MINED, sender=self.address, min_nonce=mined_count):
            if self._receipt(tx.tx_hash) is None:
                log.warning("%s (nonce %d) is no longer on chain; broadcasting it again", tx.tx_hash, tx.nonce)
                self.outbox.reopen(tx.tx_hash)
        window: deque[_InFlight] = deque()
        for tx in self.outbox.transactions(state=TxState.SENT):
            flight = _InFlight(tx.tx_hash, tx.sender, tx.nonce, tx.raw)
            receipt = self._receipt(tx.tx_hash)
            if receipt is not None:
                self._apply_receipt(flight, receipt, results)
                continue
            try:
                self._broadcast(flight)
            except _NonceTaken:
                self._drop(flight, results)
                continue
            window.append(flight)
        self._drain(window, results)
        pending_count = self._count(self.address, "pending")
        used = self.outbox.max_nonce(self.address, (TxState.SENT, TxState.MINED, TxState.REVERTED))
        self._nonce = max(int(pending_count), used + 1 if used is not None else 0)
        self._ready = True
        if results:
            log.info("recovered %d outbox entries; next nonce %d", len(results), self._nonce)
        return [results[k] for k in sorted(results)]

    # ------------------------------------------------------------------ retries

    def _count(self, address: str, block: BlockIdentifier) -> int:
        """The account's transaction count (next nonce) as of `block`."""
        account: Any = address
        count = self._rpc(f"read the nonce of {address}", lambda: self._w3.eth.get_transaction_count(account, block))
        return int(count)

    def _rpc(self, what: str, call: Callable[[], T]) -> T:
        """Run one RPC call, retrying transient failures by the writer's retry policy (``ledger.chain.rpc``)."""

        def give_up(exc: Exception, attempts: int) -> Exception:
            return NodeUnavailable(
                f"{what}: the node did not answer after {attempts} attempts ({_describe(exc)}); "
                "entries wait in the outbox"
            )

        def retried() -> None:
            self.stats.retries += 1

        try:
            return self._retry.run(what, call, _transient, give_up, on_retry=retried, describe=_describe)
        except requests.HTTPError as exc:  # not transient: 401, 403, 404…: a wrong URL or credentials
            raise NodeUnavailable(f"{what}: the node's endpoint refused the request ({exc})") from exc

    # ------------------------------------------------------------------ background thread

    def start(self) -> None:
        """Flush in a background thread whenever ``batch_size`` entries are pending or the oldest pending entry has
        waited ``flush_interval`` seconds. Recovery runs first. Failures are logged and retried with backoff."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"ledger-writer-{self.address[:10]}", daemon=True)
        self._thread.start()

    def stop(self, *, flush: bool = True, timeout: float | None = None) -> None:
        """Stop the background thread; with ``flush``, send what is still pending (raising if that fails)."""
        thread = self._thread
        if thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            thread.join(timeout)
            self._thread = None
        if flush and self.outbox.count(OutboxState.PENDING) + len(self.outbox.transactions(state=TxState.SENT)):
            self.flush()

    def close(self) -> None:
        """Stop the thread without flushing and release the outbox lock (the outbox itself is the caller's)."""
        self.stop(flush=False)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        backoff = max(self.flush_interval, 0.05)
        while True:
            with self._cond:
                while not self._stopping and self._ready and not self._due():
                    self._cond.wait(self._wait_time())
                if self._stopping:
                    return
            try:
                if not self._ready:  # at start, and after a failure: settle what was in flight first
                    self.recover()
                if self._due():
                    self.flush()
            except Exception as exc:  # noqa: BLE001 - keep going: entries wait in the outbox; the error is visible in last_error
                self._ready = False
                self.last_error = exc
                log.warning("background flush failed (%s); retrying in %.1f s", _describe(exc), backoff)
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, timeout=backoff)
                backoff = min(backoff * 2, 30.0)
            else:
                self.last_error = None
                backoff = max(self.flush_interval, 0.05)

    def _due(self) -> bool:
        # Entries held for a newer block are looked at again after flush_interval, not in a busy loop.
        if self._pending_hint >= self.batch_size and not self._holding:
            return True
        return self._first_pending_at is not None and time.monotonic() - self._first_pending_at >= self.flush_interval

    def _wait_time(self) -> float | None:
        if self._first_pending_at is None:
            return None
        return max(0.0, self._first_pending_at + self.flush_interval - time.monotonic())

    def _refresh_pending_hint(self) -> None:
        count = self.outbox.count(OutboxState.PENDING)
        with self._cond:
            self._pending_hint = count
            self._first_pending_at = time.monotonic() if count else None


# ---------------------------------------------------------------------- helpers


def _own_web3(w3: Web3, timeout: float) -> tuple[Web3, bool]:
    """A connection of the writer's own to the ledger's node: no automatic HTTP retries (the writer decides what
    is safe to retry and honours Retry-After), its own timeout, and no middleware (web3's validation middleware
    would ask the node for its chain id before every estimate)."""
    provider = w3.provider
    if isinstance(provider, HTTPProvider):
        kwargs = {**provider.get_request_kwargs(), "timeout": timeout}  # headers (API keys…) carried over
        own = HTTPProvider(provider.endpoint_uri, request_kwargs=kwargs, exception_retry_configuration=None)
        return Web3(own, middleware=[]), True
    return w3, False  # the embedded chain: nothing to time out


def _raw_request(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in response:
        raise Web3RPCError(json.dumps(response["error"]), rpc_response=response)
    return response.get("result")


def _unknown_method(exc: Web3RPCError) -> bool:
    """Whether a JSON-RPC error says the node does not implement the method."""
    response = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    text = _rpc_message(exc).lower()
    return code == -32601 or any(s in text for s in ("not found", "not supported", "unsupported", "not available"))


def _ask_dev_node(w3: Web3, method: str) -> bool | None:
    """A development node's answer to `method`, or None when the node does not know it."""
    try:
        return bool(_raw_request(w3, method, []))
    except Web3RPCError:
        return None
    except requests.HTTPError as exc:  # some gateways answer an unknown method with a 4xx
        status = exc.response.status_code if exc.response is not None else 0
        if 400 <= status < 500 and status not in (408, 425, 429):
            return None
        raise


def _lock_outbox(path: Path) -> IO[str] | None:
    """Hold an exclusive lock next to the outbox for the writer's life: two writers on one outbox would sign
    different transactions with the same nonces. The OS releases it when the process dies, however it dies."""
    lock_path = path.with_name(path.name + ".lock")
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise OutboxError(
            f"outbox {path} is in use by another writer ({holder or 'unknown process'}); one writer per outbox"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def _transient(exc: BaseException) -> float | None:
    """Seconds to wait at least before retrying (0 when the error gives no hint), or None when not transient."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.HTTPError):
            response = current.response
            status = response.status_code if response is not None else 0
            if status in (408, 425, 429) or status >= 500:
                return retry_after_seconds(response.headers.get("Retry-After") if response is not None else None)
            return None
        if isinstance(current, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                                ConnectionError, TimeoutError)):
            return 0.0
        if isinstance(current, Web3RPCError):
            if RATE_LIMITED.search(_rpc_message(current)):
                return 0.0
            return None
        if isinstance(current, json.JSONDecodeError):  # a truncated or non-JSON answer from a proxy in the way
            return 0.0
        current = current.__cause__ or current.__context__
    return None


def _rpc_message(exc: Web3RPCError) -> str:
    response = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    return str(exc.message if hasattr(exc, "message") else exc)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["WRITABLE", "FoundOnChain", "Writer", "WriterStats"]
