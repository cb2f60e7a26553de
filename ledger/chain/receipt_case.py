"""A receipt case read from the chain itself, for when the index lacks it or lags: the ReceiptIssued entry of a
receipt key and the state the contract tracks for its case.

Citizens never depend on the index being whole: an index halted or behind must not cost a citizen their rating or
their dispute window while the chain would take them. The contract's ``receiptCase(agencyId, caseId)`` is the state
that decides (read by ``Ledger.receipt_case``, the one reader); this module finds the case of a receipt key the
index has not seen, and (:func:`cases_with_receipts`) which of many cases the contract tracks as issued a receipt.

The look-up (:class:`ChainReceipts`)
    The contract keeps, per receipt key, the seq and block of the entry that issued it (``receiptIssuance``; a key
    serves one case only). A look-up is one call and, for a key that was issued, one ``eth_getLogs`` of that one
    block filtered by the entry's seq topic: its cost does not grow with the chain, the index's lag or the number of
    receipts, and a key never issued costs the call alone. Reads are at the latest block; an entry the node no
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
from ledger.records import EntryKind, Receipt

_T = TypeVar("_T")


@dataclass(frozen=True)
class IssuedReceipt:
    """A ReceiptIssued entry as read from the chain, with what a proof of it needs."""

    entry: LoggedEntry
    block_hash: bytes
    #: the block's timestamp
    block_time: int

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


class ChainReceipts:
    """The chain's side of receipts: a receipt key's ReceiptIssued entry, its case's state, the head. Holds no
    state of its own, so it is safe to share between threads."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._topic = ledger.contract.events.ReceiptIssued.topic

    def head(self) -> int:
        return int(self._node(lambda: self.ledger.w3.eth.block_number))

    def case_state(self, agency_id: bytes, case_id: bytes) -> ReceiptCaseState:
        """The contract's ``receiptCase`` of the case now (status NONE: no receipt was issued for it)."""
        return self._node(lambda: self.ledger.receipt_case(agency_id, case_id))

    def find(self, address: str) -> IssuedReceipt | None:
        """The ReceiptIssued entry of this receipt key, with its block's hash and time; None when it was never
        issued (or its block was just reorganised away)."""
        issuance = self._node(lambda: self.ledger.receipt_issuance(address))
        if issuance is None:
            return None
        seq, number = issuance
        logs = self._node(lambda: self.ledger.w3.eth.get_logs({
            "address": self.ledger.address, "fromBlock": number, "toBlock": number,
            "topics": [self._topic, "0x" + seq.to_bytes(32, "big").hex()],
        }))
        for log in logs:
            entry = self.ledger.decode_log(log)
            if entry is not None and entry.kind is EntryKind.RECEIPT_ISSUED and entry.seq == seq:
                block = self._node(lambda: self.ledger.w3.eth.get_block(number))
                if bytes(block["hash"]) != bytes(log["blockHash"]):
                    return None  # reorganised between the reads
                return IssuedReceipt(entry, bytes(log["blockHash"]), int(block["timestamp"]))
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
