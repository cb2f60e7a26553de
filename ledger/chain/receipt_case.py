"""A receipt case read from the chain itself, for when the index lacks it or lags: the entry that bound a receipt
key to its case — an agency's ReceiptIssued, the acceptance of the key's filing, or a receipt claim — and the state
the contract tracks for its case.

Citizens never depend on the index being whole: an index halted or behind must not cost a citizen their rating or
their dispute window while the chain would take them. The contract's ``receiptCase(agencyId, caseId)`` is the state
that decides (read by ``Ledger.receipt_case``, the one reader); this module finds the case of a receipt key the
index has not seen, and (:func:`cases_with_receipts`) which of many cases the contract tracks as issued a receipt.

The look-up (:class:`ChainReceipts`)
    The contract keeps, per receipt key, the seq and block of the entry that last used it (``receiptIssuance``; a
    key serves one case only). A look-up is one call and, for a key that was used, one ``eth_getLogs`` of that one
    block, of the ledger and its filings module, filtered by the entry's seq topic: its cost does not grow with the
    chain, the index's lag or the number of receipts, and a key never used costs the call alone. A key whose filing
    is not answered yet has no case: it is not found here. Reads are at the latest block; an entry the node no
    longer has at that block (a reorganisation between the two reads) is not found, and the next look-up asks again.

Node failures are raised as ``ledger.errors.NodeUnavailable``; the caller decides what an unreachable node means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from web3.exceptions import Web3Exception

from ledger.chain.contract import Ledger, LoggedEntry, ReceiptCaseState
from ledger.errors import LedgerError, NodeUnavailable
from ledger.records import FilingAnswer, FilingDecision, Receipt, ReceiptClaim, filed_case_id

_T = TypeVar("_T")


@dataclass(frozen=True)
class IssuedReceipt:
    """The entry that bound a receipt key to its case, as read from the chain, with what a proof of it needs: a
    ReceiptIssued entry, an accepted filing's FilingAnswered, or a ReceiptClaimed."""

    entry: LoggedEntry
    block_hash: bytes
    #: the block's timestamp
    block_time: int
    #: the key's checksummed address
    address: str
    case_id: bytes
    #: when the key was bound: the time a ReceiptIssued claims, else the entry's block time
    issued_at: int

    @property
    def agency_id(self) -> bytes:
        return bytes(self.entry.agency_id)

    @classmethod
    def of(cls, entry: LoggedEntry, address: str, block_hash: bytes, block_time: int) -> IssuedReceipt | None:
        """The binding `entry` makes of the key at `address`, or None when it binds no case to it."""
        record = entry.record
        if isinstance(record, Receipt) and to_checksum_address(record.receipt) == address:
            return cls(entry, block_hash, block_time, address, bytes(record.case_id), record.occurred_at)
        if isinstance(record, FilingAnswer) and record.decision == FilingDecision.ACCEPTED:
            return cls(entry, block_hash, block_time, address, filed_case_id(record.filing_seq), block_time)
        if isinstance(record, ReceiptClaim) and to_checksum_address(record.receipt) == address:
            return cls(entry, block_hash, block_time, address, bytes(record.case_id), block_time)
        return None


class ChainReceipts:
    """The chain's side of receipts: a receipt key's ReceiptIssued entry, its case's state, the head. Holds no
    state of its own, so it is safe to share between threads."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._topics = [ledger.contract.events.ReceiptIssued.topic, ledger.filings.events.FilingAnswered.topic,
                        ledger.filings.events.ReceiptClaimed.topic]

    def head(self) -> int:
        return int(self._node(lambda: self.ledger.w3.eth.block_number))

    def case_state(self, agency_id: bytes, case_id: bytes) -> ReceiptCaseState:
        """The contract's ``receiptCase`` of the case now (status NONE: no receipt was issued for it)."""
        return self._node(lambda: self.ledger.receipt_case(agency_id, case_id))

    def find(self, address: str) -> IssuedReceipt | None:
        """The entry that bound this receipt key to its case, with its block's hash and time; None when it was never
        bound (never used, or used by a filing not answered yet, or its block was just reorganised away)."""
        address = to_checksum_address(address)
        issuance = self._node(lambda: self.ledger.receipt_issuance(address))
        if issuance is None:
            return None
        seq, number = issuance
        logs = self._node(lambda: self.ledger.w3.eth.get_logs({
            "address": self.ledger.addresses, "fromBlock": number, "toBlock": number,
            "topics": [self._topics, "0x" + seq.to_bytes(32, "big").hex()],
        }))
        for log in logs:
            entry = self.ledger.decode_log(log)
            if entry is None or entry.seq != seq:
                continue
            block = self._node(lambda: self.ledger.w3.eth.get_block(number))
            if bytes(block["hash"]) != bytes(log["blockHash"]):
                return None  # reorganised between the reads
            return IssuedReceipt.of(entry, address, bytes(log["blockHash"]), int(block["timestamp"]))
        return None

    @staticmethod
    def _node(call: Callable[[], _T]) -> _T:
        try:
            return call()
        except (OSError, Web3Exception) as exc:  # requests' errors are OSErrors; web3's own, RPC errors included
            raise NodeUnavailable(f"the node did not answer a read of the ledger: {type(exc).__name__}") from exc


_RECEIPT_CASE_SELECTOR = keccak(b"receiptCase(bytes32,bytes32)")[:4]


def cases_with_receipts(ledger: Ledger, agency_id: bytes, case_ids: list[bytes]) -> set[bytes]:
    """Of these case ids of the agency, the ones the contract tracks as issued a receipt: ``receiptCase`` read in
    JSON-RPC batches of 500 calls (an import may ask about thousands of references)."""
    found: set[bytes] = set()
    provider: Any = ledger.w3.provider
    for start in range(0, len(case_ids), 500):
        chunk = case_ids[start : start + 500]
        calls = [("eth_call", [{"to": ledger.address, "data": "0x" + (_RECEIPT_CASE_SELECTOR + agency_id + c).hex()},
                               "latest"]) for c in chunk]
        answers = provider.make_batch_request(calls) if len(calls) > 1 else [provider.make_request(*calls[0])]
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise LedgerError(f"the node answered a batch of {len(chunk)} calls with {answers!r:.200}")
        for case_id, answer in zip(chunk, answers, strict=True):
            if "error" in answer:
                raise LedgerError(f"could not read a case's receipt state from the ledger: {answer['error']}")
            result = bytes.fromhex(str(answer["result"])[2:])
            if int.from_bytes(result[32:64], "big") != 0:  # ReceiptCase.status (the second word) is not None
                found.add(case_id)
    return found


__all__ = ["ChainReceipts", "IssuedReceipt", "cases_with_receipts"]
