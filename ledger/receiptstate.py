"""A receipt case read from the chain itself, for when the index lacks it or lags: the ReceiptIssued entry of a
receipt key, found in the blocks the index has not read yet, and the state the contract tracks for its case.

Citizens never depend on the index being whole: an index halted or behind must not cost a citizen their rating or
their dispute window while the chain would take them. The contract's ``receiptCase(agencyId, caseId)`` is the state
that decides (read by ``Ledger.receipt_case``, the one reader); this module finds the case of a receipt key the
index has not seen, which the contract cannot look up by key.

The search (:class:`ChainReceipts`)
    ``receipt`` is not an indexed topic of ReceiptIssued, so a node cannot filter logs by it. The search asks the
    node for the contract's ReceiptIssued logs only (topic0), only in the blocks after the index's last block, in
    ranges of ``step`` blocks, and keeps every receipt it decodes, by address. What it read is remembered between
    look-ups, so each block is asked for once however many citizens look; blocks the index reads since are
    forgotten. One look-up reads at most ``max_ranges`` new ranges: a node far ahead of a halted index is searched
    over several look-ups, never in one unbounded request (:attr:`TailSearch.complete` says whether the search
    reached the head). The hash of the last block searched is kept: if a reorganisation replaced it, the search
    starts again. At most ``max_remembered`` receipts are kept; past that the memory starts over (the search is
    bounded per look-up either way). A receipt found here is used only once the contract confirms it is its case's
    receipt (the caller reads ``receiptCase``).

Node failures are raised as ``ledger.errors.NodeUnavailable``; the caller decides what an unreachable node means.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from eth_utils import to_checksum_address
from web3.exceptions import BlockNotFound, Web3Exception

from ledger.chain import Ledger, LoggedEntry, ReceiptCaseState
from ledger.errors import NodeUnavailable
from ledger.records import EntryKind, Receipt

#: blocks per eth_getLogs request (well under the 10,000-block cap common among providers)
DEFAULT_STEP = 2_000
#: ranges one look-up may read: 100,000 blocks (about 2.3 days of 2-second blocks)
DEFAULT_MAX_RANGES = 50
#: receipts remembered from the blocks beyond the index (about 300 bytes each)
DEFAULT_MAX_REMEMBERED = 100_000


@dataclass(frozen=True)
class IssuedReceipt:
    """A ReceiptIssued entry as read from the chain, with what a proof of it needs."""

    entry: LoggedEntry
    block_hash: bytes
    #: the block's timestamp; None until the receipt is asked for (one block read, for the hits only)
    block_time: int | None = None

    @property
    def record(self) -> Receipt:
        assert isinstance(self.entry.record, Receipt)
        return self.entry.record

    @property
    def address(self) -> str:
        return to_checksum_address(self.record.receipt)

    @property
    def agency_id(self) -> bytes:
        return bytes(self.entry.agency_id)

    @property
    def case_id(self) -> bytes:
        return bytes(self.record.case_id)


@dataclass(frozen=True)
class TailSearch:
    """What a search of the blocks after the index found: the receipt (None: not there), and how far it read."""

    found: IssuedReceipt | None
    #: the last block searched (the index's last block when nothing was)
    searched_to: int
    head: int

    @property
    def complete(self) -> bool:
        """Whether every block up to the head was searched (a miss then means no such receipt on chain)."""
        return self.searched_to >= self.head


class ChainReceipts:
    """The chain's side of receipts: a receipt key's ReceiptIssued entry beyond the index, its case's state, the
    head. Safe to share between threads (one search runs at a time; the others then use what it read)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        step: int = DEFAULT_STEP,
        max_ranges: int = DEFAULT_MAX_RANGES,
        max_remembered: int = DEFAULT_MAX_REMEMBERED,
    ) -> None:
        if step < 1 or max_ranges < 1 or max_remembered < 1:
            raise ValueError("step, max_ranges and max_remembered must be >= 1")
        self.ledger = ledger
        self.step, self.max_ranges, self.max_remembered = step, max_ranges, max_remembered
        self._topic = ledger.contract.events.ReceiptIssued.topic
        self._lock = threading.Lock()
        self._start = 0  # first block the memory covers
        self._end = -1  # last block searched (below _start: none yet)
        self._end_hash: bytes | None = None
        self._seen: dict[str, IssuedReceipt] = {}

    # -- reads

    def head(self) -> int:
        return int(self._node(lambda: self.ledger.w3.eth.block_number))

    def case_state(self, agency_id: bytes, case_id: bytes) -> ReceiptCaseState:
        """The contract's ``receiptCase`` of the case now (status NONE: no receipt was issued for it)."""
        return self._node(lambda: self.ledger.receipt_case(agency_id, case_id))  # type: ignore[no-any-return]

    def find(self, address: str, after_block: int) -> TailSearch:
        """The first ReceiptIssued entry of this (checksummed) receipt address in the blocks after `after_block`
        (the index's last block), searching at most ``max_ranges`` ranges of new blocks on the way."""
        with self._lock:
            head = self.head()
            self._forget_up_to(after_block)
            if self._end >= self._start and self._end_hash is not None and self._hash_of(self._end) != self._end_hash:
                self._reset(after_block)  # reorganised (or gone) since it was searched: search it again
            searched = self._end
            for _ in range(self.max_ranges):
                if self._end >= head or address in self._seen:  # a receipt seen on the way needs no more reading
                    break
                self._search(self._end + 1, min(head, self._end + self.step))
            if self._end != searched or (self._end >= self._start and self._end_hash is None):
                self._end_hash = self._hash_of(self._end)
            found = self._seen.get(address)
            if found is not None and found.block_time is None:
                number = found.entry.block_number
                at = int(self._node(lambda: self.ledger.w3.eth.get_block(number)["timestamp"]))
                found = self._seen[address] = replace(found, block_time=at)
            return TailSearch(found, max(self._end, after_block), head)

    # -- the memory of what was searched

    def _reset(self, after_block: int) -> None:
        self._start, self._end, self._end_hash, self._seen = after_block + 1, after_block, None, {}

    def _forget_up_to(self, after_block: int) -> None:
        """Drop what the index has read since (it answers for those blocks now); start over if the index went back
        (a reorganisation it rolled back) or has read past everything searched."""
        if after_block + 1 < self._start or after_block >= self._end:
            self._reset(after_block)
        elif after_block >= self._start:
            self._seen = {a: r for a, r in self._seen.items() if r.entry.block_number > after_block}
            self._start = after_block + 1

    def _hash_of(self, number: int) -> bytes | None:
        """The hash of block `number` now (None: the node has no such block, e.g. after a reorganisation)."""

        def read() -> bytes | None:
            try:
                return bytes(self.ledger.w3.eth.get_block(number)["hash"])
            except BlockNotFound:
                return None

        return self._node(read)  # type: ignore[no-any-return]

    def _search(self, from_block: int, to_block: int) -> None:
        logs = self._node(lambda: self.ledger.w3.eth.get_logs({
            "address": self.ledger.address, "fromBlock": from_block, "toBlock": to_block, "topics": [self._topic],
        }))
        for log in logs:
            entry = self.ledger.decode_log(log)
            if entry is None or entry.kind is not EntryKind.RECEIPT_ISSUED:
                continue
            issued = IssuedReceipt(entry, bytes(log["blockHash"]))
            if len(self._seen) >= self.max_remembered and issued.address not in self._seen:
                self._seen = {}  # bounded memory: start over (a later look-up searches these blocks again)
                self._start = from_block
            self._seen.setdefault(issued.address, issued)  # the first issued: logs come in ledger order
        self._end = to_block

    @staticmethod
    def _node(call: Any) -> Any:
        try:
            return call()
        except (OSError, Web3Exception) as exc:  # requests' errors are OSErrors; web3's own, RPC errors included
            raise NodeUnavailable(f"the node did not answer a read of the ledger: {type(exc).__name__}") from exc


__all__ = ["ChainReceipts", "IssuedReceipt", "TailSearch"]
