"""Merkle-anchored batches: many case events kept in a published file, one transaction on chain.

An agency with a high volume (a city hotline: 100,000 cases a day) writes its case events as a batch. The service

1. writes the batch file (below) and hashes it (``fileHash = keccak256(file bytes)``);
2. builds a Merkle tree over the events, **OpenZeppelin's standard Merkle tree** over ``(uint256 index, bytes32
   recordHash)``: leaf = ``keccak256(bytes.concat(keccak256(abi.encode(index, recordHash))))``, leaves sorted,
   inner nodes the keccak256 of the sorted pair. Chosen over RFC 9162 because the contract checks proofs with
   OpenZeppelin's audited ``MerkleProof`` (keccak256, which the EVM prices cheaper than SHA-256), the same tree is
   built by the widely used ``@openzeppelin/merkle-tree`` library (auditors can rebuild it in JavaScript as well
   as with this module), and the double-hashed leaf can never be confused with an inner node;
3. anchors ``(root, count, fileHash)`` with ``anchorBatch``: the events become entries ``seq`` to ``seq+count-1``;
   the running hash advances once, over the batch's entry hash, and the count by ``count``. So a withheld file, or
   one missing or changing an entry, is detectable by anyone who rebuilds the log;
4. stores the file where the API serves it (``BatchStore``), named by its hash.

``index`` is the event's position in the file (its seq minus the batch's first seq), ``recordHash`` the event's
EIP-712 ``hashStruct`` — the same record hash a directly written case event has, so the indexer and metrics treat
batched entries exactly like single ones.

The batch file is UTF-8 CSV, one header line then one line per event, ``\\n`` line ends, no quoting (every field is
a number or 0x-hex)::

    index,caseId,action,occurredAt,commitmentId,district,channel,detailsHash
    0,0x…,1,1790000000,0x…,0x…,2,0x…

Speed: hashing goes through the C keccak of ``ledger.logs`` and the record hash is computed from the event's words
directly, so building a batch runs well above 50,000 entries a second (``bench/batches.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.chain import Ledger
from ledger.errors import InvalidRecord, LedgerError
from ledger.files import HashedFiles
from ledger.logs import _keccak_256, keccak
from ledger.records import CaseAction, CaseEvent, EntryKind, entry_hash

HEADER = "index,caseId,action,occurredAt,commitmentId,district,channel,detailsHash"
BATCH_TYPEHASH = keccak(b"Batch(bytes32 root,uint64 count,bytes32 fileHash)")
_CASE_TYPEHASH = CaseEvent.typehash()
#: the most entries one batch may hold: the contract's MAX_BATCH_ENTRIES, which refuses larger anchors (BatchTooLarge)
MAX_ENTRIES = 2**20
_SMALL_WORDS = [i.to_bytes(32, "big") for i in range(256)]  # a file of about 300 MB; larger batches are split by the caller


def record_hash(event: CaseEvent) -> bytes:
    """EIP-712 hashStruct of a case event, from its words (equal to ``CaseEvent.struct_hash``; tested)."""
    return _keccak_256(
        _CASE_TYPEHASH + event.case_id + int(event.action).to_bytes(32, "big") + event.occurred_at.to_bytes(32, "big")
        + event.commitment_id + event.district + event.channel.to_bytes(32, "big") + event.details_hash
    ).digest()


def leaf_hash(index: int, record: bytes) -> bytes:
    """OpenZeppelin standard leaf of ``(uint256 index, bytes32 recordHash)``."""
    return _keccak_256(_keccak_256(index.to_bytes(32, "big") + record).digest()).digest()


def _pair(a: bytes, b: bytes) -> bytes:
    return _keccak_256(a + b if a < b else b + a).digest()


class MerkleTree:
    """OpenZeppelin's standard Merkle tree (``@openzeppelin/merkle-tree``, ``StandardMerkleTree``) over given leaves:
    leaves sorted, stored at the end of a flat array in reverse, node ``i`` the sorted-pair hash of ``2i+1`` and
    ``2i+2``. Proofs list sibling hashes from the leaf up; ``MerkleProof.verify`` checks them."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        n = len(leaves)
        if n == 0:
            raise InvalidRecord("a batch needs at least one entry")
        order = sorted(range(n), key=leaves.__getitem__)
        size = 2 * n - 1
        tree: list[bytes] = [b""] * size
        position = [0] * n  # value index -> tree index
        for rank, value_index in enumerate(order):
            tree[size - 1 - rank] = leaves[value_index]
            position[value_index] = size - 1 - rank
        for i in range(size - 1 - n, -1, -1):
            a, b = tree[2 * i + 1], tree[2 * i + 2]
            tree[i] = _keccak_256(a + b if a < b else b + a).digest()
        self.tree, self.position = tree, position

    @classmethod
    def of_records(cls, record_hashes: Sequence[bytes]) -> MerkleTree:
        """The tree of a batch whose entry ``i`` has record hash ``record_hashes[i]`` (leaves :func:`leaf_hash`)."""
        return cls([leaf_hash(index, record) for index, record in enumerate(record_hashes)])

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def proof(self, value_index: int) -> list[bytes]:
        i = self.position[value_index]
        out = []
        while i > 0:
            out.append(self.tree[i + 1 if i % 2 else i - 1])
            i = (i - 1) // 2
        return out


def verify_proof(root: bytes, index: int, record: bytes, proof: Sequence[bytes]) -> bool:
    """Off-chain twin of ``CivicLedger.verifyBatchEntry``: does the proof lead from the leaf to the root?"""
    node = leaf_hash(index, record)
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root


def batch_hash(root: bytes, count: int, file_hash: bytes) -> bytes:
    """The record hash a batch folds into the running hash: keccak256(abi.encode(BATCH_TYPEHASH, root, count,
    fileHash)), i.e. ``BatchAnchor(root, count, file_hash).struct_hash()``."""
    return keccak(BATCH_TYPEHASH + root + count.to_bytes(32, "big") + file_hash)


def batch_entry_hash(seq: int, agency_id: bytes, signer: str, root: bytes, count: int, file_hash: bytes) -> bytes:
    return entry_hash(seq, EntryKind.BATCH_ANCHORED, agency_id, signer, batch_hash(root, count, file_hash))


@dataclass(frozen=True)
class Batch:
    """A built batch: its events, their record hashes, the file's bytes and hash, and the tree."""

    events: tuple[CaseEvent, ...]
    record_hashes: tuple[bytes, ...]
    content: bytes
    file_hash: bytes
    tree: MerkleTree

    @property
    def root(self) -> bytes:
        return self.tree.root

    @property
    def count(self) -> int:
        return len(self.events)

    def proof(self, index: int) -> list[bytes]:
        return self.tree.proof(index)


def build_batch(events: Sequence[CaseEvent]) -> Batch:
    """The batch of `events`, in the given order (validated records; at most MAX_ENTRIES)."""
    if not events:
        raise InvalidRecord("a batch needs at least one entry")
    if len(events) > MAX_ENTRIES:
        raise InvalidRecord(f"a batch holds at most {MAX_ENTRIES:,} entries; split it")
    lines = [HEADER]
    hashes = []
    keccak_256, typehash, words = _keccak_256, _CASE_TYPEHASH, _SMALL_WORDS
    for index, e in enumerate(events):
        action, channel = int(e.action), e.channel
        # the event's seven ABI words: hashed for the record hash, hex-encoded once for the file's line
        body = (e.case_id + words[action] + e.occurred_at.to_bytes(32, "big") + e.commitment_id + e.district
                + words[channel] + e.details_hash)
        r = keccak_256(typehash + body).digest()
        hashes.append(r)
        h = body.hex()
        lines.append(
            f"{index},0x{h[0:64]},{action},{e.occurred_at},0x{h[192:256]},0x{h[256:320]},{channel},0x{h[384:448]}"
        )
    content = ("\n".join(lines) + "\n").encode("ascii")
    return Batch(tuple(events), tuple(hashes), content, keccak(content), MerkleTree.of_records(hashes))


def parse_batch_file(content: bytes) -> list[CaseEvent]:
    """The events of a batch file, each validated as a case event; InvalidRecord names the first bad line."""
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(f"a batch file is ASCII; byte {exc.start} is not") from exc
    lines = text.split("\n")
    if lines[0] != HEADER:
        raise InvalidRecord(f"line 1: the header must be {HEADER!r}")
    if lines[-1] != "":
        raise InvalidRecord("the file must end with a line end")
    events = []
    for number, line in enumerate(lines[1:-1], start=2):
        fields = line.split(",")
        if len(fields) != 8:
            raise InvalidRecord(f"line {number}: expected 8 fields, got {len(fields)}")
        if fields[0] != str(number - 2):
            raise InvalidRecord(f"line {number}: index must be {number - 2}, got {fields[0]!r}")
        try:
            action, occurred_at, channel = int(fields[2]), int(fields[3]), int(fields[6])
            events.append(CaseEvent(
                case_id=fields[1], action=CaseAction(action), occurred_at=occurred_at, commitment_id=fields[4],
                district=fields[5], channel=channel, details_hash=fields[7],
            ))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise InvalidRecord(f"line {number}: not a well-formed case event: {exc}") from exc
    if not events:
        raise InvalidRecord("a batch file holds at least one event")
    return events


def rebuild(content: bytes) -> Batch:
    """Parse a published batch file and rebuild its tree (what the indexer and the auditor do)."""
    batch = build_batch(parse_batch_file(content))
    if batch.content != content:
        raise InvalidRecord("the batch file is not in canonical form (numbers, lower-case 0x-hex, one line per event)")
    return batch


class BatchStore:
    """Batch files on disk, named by their hash (``ledger.files.HashedFiles``); what the API serves and the indexer
    reads."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._files = HashedFiles(self.directory, ".csv")

    def path(self, file_hash: bytes) -> Path:
        return self._files.path(file_hash)

    def put(self, batch: Batch) -> Path:
        """Publish the batch's file, durably, before returning: the caller anchors it next, and an anchored file that
        a crash loses is a batch nobody can check (``HashedFiles.put``: a temporary file fsynced, renamed over the
        name, the directory fsynced; a corrupt file already under the name is replaced)."""
        return self._files.put(batch.content, batch.file_hash)

    def get(self, file_hash: bytes) -> bytes | None:
        """The file's bytes, or None when it is not here; a file whose bytes do not match its name is refused."""
        return self._files.get(file_hash)


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
