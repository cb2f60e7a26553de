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

Speed: hashing goes through the C keccak of ``ledger.encoding`` and the record hash is computed from the event's words
directly, so building a batch runs well above 50,000 entries a second (``bench/batches.py``).
"""

from ledger.batches.format import (
    BATCH_TYPEHASH,
    HEADER,
    MAX_ENTRIES,
    Batch,
    batch_entry_hash,
    batch_hash,
    build_batch,
    parse_batch_file,
    rebuild,
    record_hash,
)
from ledger.batches.merkle import MerkleTree, leaf_hash, verify_proof
from ledger.batches.store import BatchStore
from ledger.batches.submit import Anchored, anchor, find_anchored

__all__ = [
    "BATCH_TYPEHASH", "HEADER", "MAX_ENTRIES", "Anchored", "Batch", "BatchStore", "MerkleTree", "anchor",
    "batch_entry_hash", "batch_hash", "build_batch", "find_anchored", "leaf_hash", "parse_batch_file", "rebuild",
    "record_hash", "verify_proof",
]
