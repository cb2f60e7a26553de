"""Anchoring a batch on chain, exactly once: publish the file, then ``anchorBatch`` unless already anchored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.batches.format import Batch
from ledger.batches.store import BatchStore
from ledger.chain.contract import Ledger
from ledger.errors import LedgerError


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
