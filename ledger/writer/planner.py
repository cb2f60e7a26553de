"""The writer's planner: what goes into the next transactions. Which pending outbox rows may go now, how they group
into units (one transaction each), a unit's calldata, and how a refused unit is split to isolate its bad entries.

The sender (:class:`ledger.writer.sender.Writer`) asks, and does everything that touches the world: nonces, fees,
gas estimates, signing, broadcasting, receipts, retries, the outbox itself. This module is pure: it may import the
records (``ledger.records``) and keccak, never web3, the chain's contract wrapper, SQLite, the outbox or threads. It
does not even import the outbox's row type — a row here is anything with an ``id``, a ``record_type`` and a
``created_at`` (:class:`Row`; ``ledger.writer.outbox.OutboxItem`` is one) — and the direct calls' ABI encoding comes
from the caller (:class:`CallEncoder`; ``ledger.chain.contract.Ledger`` is one).

Limits: a transaction's calldata stays under :data:`MAX_CALLDATA` (node pools refuse larger ones), so a batch holds at
most :data:`MAX_BATCH` case events (the writer refuses a larger ``batch_size``, the cap the planner batches to).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from eth_hash.auto import keccak

from ledger.records import CaseAction, CaseEvent, Receipt, Record

#: geth's and Besu's transaction pools refuse transactions over 128 KiB; stay clear of it
MAX_CALLDATA = 120_000
#: each case event is seven 32-byte words of calldata (a receipt three)
MAX_BATCH = (MAX_CALLDATA - 4 - 64) // (7 * 32)

_ISSUE_RECEIPTS_SELECTOR = keccak(b"issueReceipts((bytes32,address,uint64)[])")[:4]


class Row(Protocol):
    """What the planner reads of an outbox row (``ledger.writer.outbox.OutboxItem``)."""

    @property
    def id(self) -> int: ...

    @property
    def record_type(self) -> str: ...

    @property
    def created_at(self) -> float: ...


class CallEncoder(Protocol):
    """The ABI encoding of the direct calls, and the contract each goes to (``ledger.chain.contract.Ledger``)."""

    def encode_write(self, record: Record) -> bytes: ...

    def encode_batch(self, events: Sequence[CaseEvent]) -> bytes: ...

    def target_of(self, record: Record) -> str: ...


R = TypeVar("R", bound=Row)
T = TypeVar("T")
U = TypeVar("U")


def encode_receipts(receipts: Sequence[Receipt]) -> bytes:
    """Calldata of ``issueReceipts(receipts)``, encoded directly: every field is static, so it is the selector, the
    array's offset and length, then three 32-byte words per receipt (the tests check it against the ABI encoder)."""
    words = [_ISSUE_RECEIPTS_SELECTOR, (32).to_bytes(32, "big"), len(receipts).to_bytes(32, "big")]
    for r in receipts:
        words += (r.case_id, bytes.fromhex(r.receipt[2:]).rjust(32, b"\0"), r.occurred_at.to_bytes(32, "big"))
    return b"".join(words)


def ready_prefix(
    chunk: list[R],
    records: Mapping[int, Record],
    *,
    block_time: int,
    now: float,
    max_clock_skew: float,
    max_hold: float,
) -> list[R]:
    """The rows that can go now, in order: up to the first whose time is after the latest block's (`block_time`).

    The contract refuses ``occurredAt`` after the block's time, and the gas estimate runs on the latest block,
    which trails the wall clock (`now`) by up to a block interval. An entry stamped in that gap is not wrong, only
    early: it waits (and everything after it, to keep submission order) until a block is as recent — normally
    the next one. One stamped beyond ``max_clock_skew`` in the future, or held longer than ``max_hold``, is sent
    anyway, for the contract to refuse it with a clear InvalidOccurredAt.
    """
    for index, item in enumerate(chunk):
        occurred_at = int(getattr(records[item.id], "occurred_at", 0))
        if (
            occurred_at > block_time
            and occurred_at <= now + max_clock_skew
            and now - item.created_at < max_hold
        ):
            return chunk[:index]
    return chunk


def plan_units(rows: list[R], record_of: Callable[[R], Record], batch_size: int) -> list[list[R]]:
    """Group rows into transactions, keeping submission order: consecutive case events share a batch, and the
    receipts among them share an ``issueReceipts`` batch sent right after the case events before them. A receipt
    never moves past a later event of its own case (closing a case before its receipt is on chain would leave
    the receipt on a case the ledger thinks is still open). Each batch holds up to `batch_size` rows; `record_of`
    gives a row's record (asked only of receipts, and of case events while receipts wait in the run)."""
    units: list[list[R]] = []
    events: list[R] = []
    receipts: list[R] = []
    waiting: set[bytes] = set()  # case ids of the receipts in `receipts`

    def close_run() -> None:
        nonlocal events, receipts
        if events:
            units.append(events)
        if receipts:
            units.append(receipts)
        events, receipts = [], []
        waiting.clear()

    for item in rows:
        if item.record_type == CaseEvent.__name__:
            if waiting:
                event = record_of(item)
                if getattr(event, "case_id", None) in waiting and event.action is not CaseAction.OPENED:  # type: ignore[attr-defined]
                    close_run()
            events.append(item)
            if len(events) == batch_size:
                units.append(events)
                events = []
                if receipts:  # they follow the Opened events just batched
                    units.append(receipts)
                    receipts = []
                    waiting.clear()
            continue
        if item.record_type == Receipt.__name__:
            receipt = record_of(item)
            receipts.append(item)
            waiting.add(receipt.case_id)  # type: ignore[attr-defined]
            if len(receipts) == batch_size:
                close_run()
            continue
        close_run()
        units.append([item])
    close_run()
    return units


def encode_records(records: Sequence[Record], encoder: CallEncoder) -> bytes:
    """Calldata of the direct call carrying one unit's records: ``issueReceipts`` for several receipts,
    ``recordCaseEvents`` for several case events, the record's own call for one record."""
    if len(records) > 1:
        if isinstance(records[0], Receipt):
            return encode_receipts(records)  # type: ignore[arg-type]  # a unit holds one kind of record
        return encoder.encode_batch(records)  # type: ignore[arg-type]  # only case events are batched
    return encoder.encode_write(records[0])


def unit_target(records: Sequence[Record], encoder: CallEncoder) -> str:
    """The contract a unit's transaction goes to: the ledger, or its filings module for an answer to a filing (a
    unit holds records of one kind; only case events and receipts are batched, and both go to the ledger)."""
    return encoder.target_of(records[0])


def split_unit(items: list[T], records: list[U]) -> tuple[tuple[list[T], list[U]], tuple[list[T], list[U]]]:
    """The two halves of a unit whose gas estimate reverted, rows with their records, in order: each is sent (and
    halved again if refused) on its own, until the bad entries are isolated and one bad entry never blocks the
    others."""
    half = len(items) // 2
    return (items[:half], records[:half]), (items[half:], records[half:])


__all__ = [
    "MAX_BATCH",
    "MAX_CALLDATA",
    "CallEncoder",
    "Row",
    "encode_receipts",
    "encode_records",
    "plan_units",
    "ready_prefix",
    "split_unit",
    "unit_target",
]
