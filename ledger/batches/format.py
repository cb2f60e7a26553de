"""The batch file (one parser, one writer) and a batch's hashes: what ``anchorBatch`` commits to.

The file is UTF-8 CSV, one header line then one line per event, ``\\n`` line ends, no quoting (every field is a
number or 0x-hex); see :mod:`ledger.batches`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.batches.merkle import MerkleTree
from ledger.encoding import entry_hash, keccak, keccak_256
from ledger.errors import InvalidRecord
from ledger.records import CaseAction, CaseEvent, EntryKind

HEADER = "index,caseId,action,occurredAt,commitmentId,district,channel,detailsHash"
BATCH_TYPEHASH = keccak(b"Batch(bytes32 root,uint64 count,bytes32 fileHash)")
_CASE_TYPEHASH = CaseEvent.typehash()
#: the most entries one batch may hold: the contract's MAX_BATCH_ENTRIES, which refuses larger anchors (BatchTooLarge)
MAX_ENTRIES = 2**20  # a file of about 300 MB; larger batches are split by the caller
_SMALL_WORDS = [i.to_bytes(32, "big") for i in range(256)]


def record_hash(event: CaseEvent) -> bytes:
    """EIP-712 hashStruct of a case event, from its words (equal to ``CaseEvent.struct_hash``; tested)."""
    return keccak_256(
        _CASE_TYPEHASH + event.case_id + int(event.action).to_bytes(32, "big") + event.occurred_at.to_bytes(32, "big")
        + event.commitment_id + event.district + event.channel.to_bytes(32, "big") + event.details_hash
    ).digest()


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
    hasher, typehash, words = keccak_256, _CASE_TYPEHASH, _SMALL_WORDS
    for index, e in enumerate(events):
        action, channel = int(e.action), e.channel
        # the event's seven ABI words: hashed for the record hash, hex-encoded once for the file's line
        body = (e.case_id + words[action] + e.occurred_at.to_bytes(32, "big") + e.commitment_id + e.district
                + words[channel] + e.details_hash)
        r = hasher(typehash + body).digest()
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
            # model_validate: the bytes32 fields are given as 0x-hex text, which the model's validators decode
            events.append(CaseEvent.model_validate(dict(
                case_id=fields[1], action=CaseAction(action), occurred_at=occurred_at, commitment_id=fields[4],
                district=fields[5], channel=channel, details_hash=fields[7],
            )))
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
