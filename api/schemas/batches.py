"""Merkle-anchored batches (``/api/v1/batches``, ``api.routes.batches``; read by ``api.read.batches``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from api.schemas._common import (
    _ADDRESS,
    _BLOCK,
    _ENTRY,
    _FILE,
    _FINAL,
    _HEAD,
    _RECORD,
    _ROOT,
    _TX,
    HEX24_PATTERN,
    Address,
    Code,
    Hex32,
    Model,
)
from api.schemas.proofs import Proof


class BatchInfo(Model):
    """A Merkle-anchored batch of case events: one ``BatchAnchored`` log on chain (root, count, file hash), the file
    published here, and its events as entries ``seq`` to ``last_seq`` (each with its Merkle proof) — unless the batch
    is ``withheld``: its file is missing or cannot match the anchor, so its entries are counted (the contract counts
    them) but not indexed, and have no proofs. A ``missing`` file may still be published (the entries then appear at
    their seqs); an ``impossible`` batch (the file with the anchored hash does not match the anchor) never can be."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 1200,
                    "last_seq": 11199,
                    "count": 10000,
                    "agency_id": "DEMO-HOTLINE",
                    "signer": _ADDRESS,
                    "root": _ROOT,
                    "file_hash": _FILE,
                    "record_hash": _RECORD,
                    "entry_hash": _ENTRY,
                    "running_hash": _HEAD,
                    "final": True,
                    "file_url": "/api/v1/batches/1200/file",
                    "file_available": True,
                    "withheld": None,
                    "withheld_reason": None,
                    "proof": {
                        "seq": 1200,
                        "tx_hash": _TX,
                        "block_number": 17,
                        "block_hash": _BLOCK,
                        "block_time": 1793491200,
                        "log_index": 0,
                        "entry_hash": _ENTRY,
                        "batch": None,
                    },
                }
            ]
        }
    )
    seq: int = Field(ge=0, description="seq of the batch's first entry (the BatchAnchored log's seq)", examples=[1200])
    last_seq: int = Field(ge=0, description="seq of its last entry: seq + count − 1", examples=[11199])
    count: int = Field(ge=1, description="entries in the batch (lines of its file after the header)", examples=[10000])
    agency_id: Code = Field(description="agency that anchored it", examples=["DEMO-HOTLINE"])
    signer: Address = Field(description="the agency key that sent the anchoring transaction", examples=[_ADDRESS])
    root: Hex32 = Field(description="Merkle root over (index, record hash) of its events (batchRoot(seq))",
                        examples=[_ROOT])
    file_hash: Hex32 = Field(description="keccak256 of the batch file's bytes", examples=[_FILE])
    record_hash: Hex32 = Field(
        description="keccak256(abi.encode(BATCH_TYPEHASH, root, count, fileHash)): the batch's record hash",
        examples=[_RECORD],
    )
    entry_hash: Hex32 = Field(
        description="the batch's entry hash (kind 11, batch_anchored), which the running hash folds once for the "
        "whole batch",
        examples=[_ENTRY],
    )
    running_hash: str = Field(pattern=HEX24_PATTERN, description="running hash after the batch", examples=[_HEAD])
    final: bool = Field(description=_FINAL)
    file_url: str = Field(description="where this service serves the file", examples=["/api/v1/batches/1200/file"])
    file_available: bool = Field(description="whether this service has the file now")
    withheld: Literal["missing", "impossible"] | None = Field(
        default=None,
        description="null: its entries are indexed. missing: no file with the anchored hash is published yet (its "
        "entries appear once it is); impossible: the file with the anchored hash does not match the anchor, so the "
        "batch can never be indexed",
        examples=[None],
    )
    withheld_reason: str | None = Field(
        default=None, description="what is wrong with the file, in the indexer's words (null when not withheld)",
        examples=[None],
    )
    proof: Proof = Field(description="the anchoring: transaction, block and log index of the BatchAnchored log")


class BatchPage(Model):
    items: list[BatchInfo] = Field(description="batches in seq order")
    next: int | None = Field(
        description="pass as `after` for the next page; null when this page reached the last batch", examples=[None]
    )
