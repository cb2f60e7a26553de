"""What may go in a batch (:func:`batchable`), and anchoring a batch on chain, exactly once: publish the file, then
``anchorBatch`` unless already anchored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.batches.format import Batch
from ledger.batches.store import BatchStore
from ledger.chain.contract import Ledger
from ledger.encoding import code_text
from ledger.errors import LedgerError
from ledger.importer import Row
from ledger.records import CaseAction, CaseEvent, is_receipt_case, short_code

#: why a row asking for a receipt is refused when a file is read for a batch (``ledger.importer.read_rows``'s
#: ``no_receipts``)
NO_BATCH_RECEIPTS = ("receipt requested, but batched cases get no receipts (the ledger tracks a receipt case's state "
                     "one event at a time): import this row with `case import --receipts`")
#: why an event of a case opened with a receipt is refused from a batch
BATCH_RECEIPT_CASE = ("the case was opened with a receipt: the ledger tracks its state one event at a time, so its "
                      "events are recorded with `case import` or `case update`, not in a batch")


@dataclass(frozen=True)
class Anchored:
    """Where a batch landed: its first seq, the anchoring transaction and block."""

    seq: int
    tx_hash: bytes
    block_number: int


def find_anchored(ledger: Ledger, agency_id: bytes, file_hash: bytes, from_block: int = 0) -> Anchored | None:
    """The anchoring of the batch file `file_hash` by `agency_id`, if any (so a retried anchor is not doubled)."""
    event = ledger.contract.events.BatchAnchored()
    logs = ledger.w3.eth.get_logs({
        "address": ledger.address, "fromBlock": from_block, "toBlock": "latest",
        "topics": [ledger.contract.events.BatchAnchored.topic, None, "0x" + agency_id.hex()],
    })
    for log in logs:
        args: Any = event.process_log(log)["args"]
        if bytes(args["fileHash"]) == file_hash:
            return Anchored(int(args["seq"]), bytes(log["transactionHash"]), int(log["blockNumber"]))
    return None


def anchor(ledger: Ledger, signer: LocalAccount, batch: Batch, store: BatchStore, *, from_block: int = 0) -> Anchored:
    """Publish the batch file, then anchor it once: if this agency already anchored the same file (a retry after a
    timeout or crash), return that anchoring instead of sending a second one."""
    store.put(batch)
    agency_id = ledger.agency_of(signer.address)
    if agency_id == b"\0" * 32:
        raise LedgerError(f"{signer.address} is not an authorised agency key")
    found = find_anchored(ledger, agency_id, batch.file_hash, from_block)
    if found is not None:
        return found
    # A mined anchoring is found above; one still waiting in the node's pool is not, so refuse to send a second.
    pending = ledger.w3.eth.get_transaction_count(signer.address, "pending")
    if pending > ledger.w3.eth.get_transaction_count(signer.address, "latest"):
        raise LedgerError(
            f"{signer.address} has a transaction waiting in the node's pool (perhaps this batch's anchoring): "
            "wait until it is mined, then run again"
        )
    receipt = ledger.anchor_batch(signer, batch.root, batch.count, batch.file_hash)
    (log,) = ledger.contract.events.BatchAnchored().process_receipt(receipt)
    return Anchored(int(log["args"]["seq"]), bytes(receipt["transactionHash"]), int(receipt["blockNumber"]))


def batchable(ledger: Ledger, agency: str, rows: Sequence[Row]) -> tuple[list[CaseEvent], list[tuple[int, str]]]:
    """Which of an agency's rows may go in a batch: their events, in order, and ``(line, why)`` for every other row,
    sorted by line. The contract checks nothing of a batched event, so what it would refuse in a single one is
    refused here, before anything is published. A row is refused, with the first reason that applies, when

    - it could not be read (``row.error``; a row asking for a receipt is refused there, with
      :data:`NO_BATCH_RECEIPTS`, when ``read_rows`` is given it as ``no_receipts``);
    - its case was opened with a receipt (:func:`ledger.records.is_receipt_case`): the ledger tracks such a case's
      state one event at a time, so none of its events goes in a batch (:data:`BATCH_RECEIPT_CASE`);
    - it is a ``dispute_rejected`` or a ``rectified``: it answers a citizen's dispute or rating, which only a case
      with a receipt can have;
    - its claimed time is after the chain's latest block time: the ledger refuses claimed times in the future;
    - it opens a case under a commitment the agency (`agency`, its code) has not published, or has retired (each
      commitment's state read from `ledger` once)."""
    agency_id = short_code(agency)
    now = int(ledger.w3.eth.get_block("latest")["timestamp"])
    commitments: dict[bytes, str | None] = {}
    events: list[CaseEvent] = []
    refused = [(r.line, r.error or "invalid row") for r in rows if r.record is None]
    for row in rows:
        event = row.record
        if event is None:
            continue
        why = None
        if is_receipt_case(event.case_id):
            why = BATCH_RECEIPT_CASE
        elif event.action is CaseAction.DISPUTE_REJECTED:
            why = "dispute_rejected answers a citizen's dispute, which only a case with a receipt can have"
        elif event.action is CaseAction.RECTIFIED:
            why = "rectified answers a citizen's rating, which only a case with a receipt can have"
        elif event.occurred_at > now:
            why = (f"occurred_at is after the chain's latest block time "
                   f"({datetime.fromtimestamp(now, UTC).isoformat()}): the ledger refuses claimed times in "
                   "the future")
        elif event.action is CaseAction.OPENED:
            if event.commitment_id not in commitments:
                version, retired = ledger.commitment_state(agency_id, event.commitment_id)
                name = code_text(event.commitment_id)
                commitments[event.commitment_id] = (
                    f"UnknownCommitment: {agency} has not published commitment {name}" if version == 0
                    else f"CommitmentIsRetired: commitment {name} of {agency} is retired" if retired else None
                )
            why = commitments[event.commitment_id]
        if why is None:
            events.append(event)
        else:
            refused.append((row.line, why))
    return events, sorted(refused)
