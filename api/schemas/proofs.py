"""Proofs: where an entry is on chain (:class:`Proof`), and a batched record's Merkle inclusion proof
(:class:`BatchProof`, made by ``api.batches``). Every resource that shows a recorded entry carries one."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from api.schemas._common import _BLOCK, _ENTRY, _FILE, _RECORD, _ROOT, _TX, Hex32, Model

_SIBLING = "0x9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"


class BatchProof(Model):
    """Where a batched record is in its Merkle-anchored batch, and its inclusion proof.

    The batch's events are entries ``seq`` to ``seq + count - 1``; this record is entry ``seq + index``, line
    ``index + 2`` of the batch file. The tree is OpenZeppelin's standard Merkle tree over ``(uint256 index, bytes32
    recordHash)`` (``@openzeppelin/merkle-tree``): leaf = ``keccak256(keccak256(abi.encode(index, recordHash)))``,
    each step the keccak256 of the sorted pair. Check it off chain by hashing up from the leaf with ``merkle_proof``
    to ``root``, or on chain with the contract's view ``verifyBatchEntry(seq, index, recordHash, merkle_proof)``;
    ``root`` itself is on chain (``batchRoot(seq)``, and the ``BatchAnchored`` log the proof points to)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 1200,
                    "index": 57,
                    "root": _ROOT,
                    "count": 10000,
                    "file_hash": _FILE,
                    "file_url": "/api/v1/batches/1200/file",
                    "merkle_proof": [_SIBLING, _RECORD],
                    "proof_unavailable": None,
                }
            ]
        }
    )
    seq: int = Field(ge=0, description="the batch: seq of its first entry (GET /api/v1/batches/{seq})", examples=[1200])
    index: int = Field(
        ge=0, description="the record's position in the batch (its seq − the batch's seq)", examples=[57]
    )
    root: Hex32 = Field(description="Merkle root anchored on chain for the batch", examples=[_ROOT])
    count: int = Field(ge=1, description="entries in the batch", examples=[10000])
    file_hash: Hex32 = Field(description="keccak256 of the batch file's bytes, anchored on chain", examples=[_FILE])
    file_url: str = Field(
        description="where this service serves the batch file", examples=["/api/v1/batches/1200/file"]
    )
    merkle_proof: list[Hex32] | None = Field(
        description="sibling hashes from the record's leaf up to the root (null: not available, see "
        "proof_unavailable)",
        examples=[[_SIBLING, _RECORD]],
    )
    proof_unavailable: str | None = Field(
        default=None,
        description="why there is no merkle_proof now (e.g. the batch file is not available from this service yet); "
        "null when there is one",
        examples=[None],
    )


class Proof(Model):
    """Where an entry is on chain: enough to fetch it from any node (``eth_getTransactionReceipt(tx_hash)``, the log
    at ``log_index``, whose first indexed topic after the event signature is ``seq``) and check it yourself.

    A batched record (``batch`` set) has no log of its own: ``tx_hash``, ``block_*`` and ``log_index`` are those of
    its batch's ``BatchAnchored`` log (whose ``seq`` topic is the batch's first seq), ``entry_hash`` is the entry hash
    the record would have as a single entry (shown, not folded: the running hash folds the batch's entry hash once),
    and ``batch`` carries the Merkle proof that ties the record to the anchored root."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 42,
                    "tx_hash": _TX,
                    "block_number": 17,
                    "block_hash": _BLOCK,
                    "block_time": 1793491200,
                    "log_index": 3,
                    "entry_hash": _ENTRY,
                }
            ]
        }
    )
    seq: int = Field(ge=0, description="position of the entry in the ledger, from 0", examples=[42])
    tx_hash: Hex32 = Field(description="hash of the transaction that recorded the entry", examples=[_TX])
    block_number: int = Field(ge=0, description="block holding that transaction", examples=[17])
    block_hash: Hex32 = Field(description="hash of that block (changes if the block is reorganised)", examples=[_BLOCK])
    block_time: int = Field(description="timestamp of that block: when the entry was recorded", examples=[1793491200])
    log_index: int = Field(ge=0, description="index of the entry's event among the block's logs", examples=[3])
    entry_hash: Hex32 = Field(description="entry hash as docs/ledger-format.md defines it", examples=[_ENTRY])
    batch: BatchProof | None = Field(
        default=None, description="for a record written in a Merkle-anchored batch: the batch and the record's "
        "inclusion proof; null for an entry written on its own"
    )
