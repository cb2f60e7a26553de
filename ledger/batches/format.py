"""The batch file (one parser, one writer) and a batch's hashes: what ``anchorBatch`` commits to.

The file is UTF-8 CSV, one header line then one line per event, ``\\n`` line ends, no quoting (every field is a
number or 0x-hex); see :mod:`ledger.batches`. Its columns are :data:`COLUMNS`; a line's canonical text is what
:func:`build_batch` writes (:func:`_line`): numbers in decimal without leading zeros, bytes32 as ``0x`` and 64
lower-case hex digits.

The parser
    :func:`_event_lines` checks the file's frame (ASCII, the header, the final line end) and :func:`_event` reads one
    line as a validated ``CaseEvent``, naming the line in its ``InvalidRecord``: together they are
    :func:`parse_batch_file`. :func:`read_events` is the same parser for files that must be canonical (what
    :func:`rebuild` accepts, as the indexer and the auditor read every anchored batch): a line in canonical form whose
    values pass ``CaseEvent``'s checks (mirrored in :func:`read_events`, without building a pydantic model: about
    four times faster) is taken as it is; any other line goes through :func:`_event`, which says what is wrong with
    it, or is valid but not canonical. Its verdicts and messages are :func:`rebuild`'s
    (``tests/ledger/test_batchread.py`` checks they agree on hundreds of altered files).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.batches.merkle import MerkleTree
from ledger.encoding import entry_hash, keccak, keccak_256
from ledger.errors import InvalidRecord
from ledger.records import UINT64_MAX, CaseAction, CaseEvent, EntryKind

#: the batch file's columns, in order, with their ABI types: the event's index in the batch, then the fields of the
#: ``CaseEvent`` struct in its order
COLUMNS: tuple[tuple[str, str], ...] = (("index", "uint64"), *((name, kind) for _, name, kind in CaseEvent.FIELDS))
HEADER = ",".join(name for name, _ in COLUMNS)
#: a line in canonical form: each value as :func:`_line` writes it, a number in decimal without leading zeros, a
#: bytes32 as 0x and 64 lower-case hex digits (the groups: the numbers' digits, the bytes32 values' hex digits)
_CANONICAL_LINE = re.compile(",".join(r"0x([0-9a-f]{64})" if kind == "bytes32" else r"(0|[1-9][0-9]*)"
                                      for _, kind in COLUMNS))
BATCH_TYPEHASH = keccak(b"Batch(bytes32 root,uint64 count,bytes32 fileHash)")
_CASE_TYPEHASH = CaseEvent.typehash()
#: the most entries one batch may hold: the contract's MAX_BATCH_ENTRIES, which refuses larger anchors (BatchTooLarge)
MAX_ENTRIES = 2**20  # a file of about 300 MB; larger batches are split by the caller
_SMALL_WORDS = [i.to_bytes(32, "big") for i in range(256)]
_SMALL_HEX = [f"{i:064x}" for i in range(256)]
_ZERO_HEX = "0" * 64
_ACTIONS = frozenset(int(a) for a in CaseAction)
_OPENED = int(CaseAction.OPENED)
_EMPTY = "a batch file holds at least one event"
_TOO_LARGE = f"a batch holds at most {MAX_ENTRIES:,} entries; split it"
_NOT_CANONICAL = "the batch file is not in canonical form (numbers, lower-case 0x-hex, one line per event)"

#: one batched case event: (case_id, action, occurred_at, commitment_id, district, channel, details_hash), the
#: intake fields zero except on Opened — the fields of ``CaseEvent`` as the indexer and the auditor use them
EventTuple = tuple[bytes, int, int, bytes, bytes, int, bytes]


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
        raise InvalidRecord(_TOO_LARGE)
    lines = [HEADER]
    hashes = []
    hasher, typehash = keccak_256, _CASE_TYPEHASH
    for index, e in enumerate(events):
        # the event's seven ABI words: hashed for the record hash, hex-encoded once for the file's line
        body = _words(e)
        r = hasher(typehash + body).digest()
        hashes.append(r)
        lines.append(_line(index, int(e.action), e.occurred_at, e.channel, body.hex()))
    content = ("\n".join(lines) + "\n").encode("ascii")
    return Batch(tuple(events), tuple(hashes), content, keccak(content), MerkleTree.of_records(hashes))


def _line(index: int, action: int, occurred_at: int, channel: int, words: str) -> str:
    """The canonical line of the event at `index`, `words` the hex of its seven ABI words (the writer's one form)."""
    return (f"{index},0x{words[0:64]},{action},{occurred_at},0x{words[192:256]},0x{words[256:320]},{channel},"
            f"0x{words[384:448]}")


def _words(event: CaseEvent) -> bytes:
    """The event's seven ABI words, as its record hash and its line have them."""
    return (event.case_id + _SMALL_WORDS[int(event.action)] + event.occurred_at.to_bytes(32, "big")
            + event.commitment_id + event.district + _SMALL_WORDS[event.channel] + event.details_hash)


def _event_lines(content: bytes) -> list[str]:
    """The event lines of a batch file, its frame checked: ASCII, the header, a line end after the last line."""
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(f"a batch file is ASCII; byte {exc.start} is not") from exc
    lines = text.split("\n")
    if lines[0] != HEADER:
        raise InvalidRecord(f"line 1: the header must be {HEADER!r}")
    if lines[-1] != "":
        raise InvalidRecord("the file must end with a line end")
    return lines[1:-1]


def _event(number: int, line: str) -> CaseEvent:
    """The file's line `number` (1 is the header) as a validated case event; InvalidRecord names the line."""
    fields = line.split(",")
    if len(fields) != len(COLUMNS):
        raise InvalidRecord(f"line {number}: expected {len(COLUMNS)} fields, got {len(fields)}")
    if fields[0] != str(number - 2):
        raise InvalidRecord(f"line {number}: index must be {number - 2}, got {fields[0]!r}")
    try:
        # the numbers as integers (in column order), the action as a CaseAction; the bytes32 fields stay 0x-hex text,
        # which the model's validators decode
        values: dict[str, Any] = {
            attribute: text if kind == "bytes32" else int(text)
            for (attribute, _, kind), text in zip(CaseEvent.FIELDS, fields[1:])
        }
        values["action"] = CaseAction(values["action"])
        return CaseEvent.model_validate(values)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidRecord(f"line {number}: not a well-formed case event: {exc}") from exc


def parse_batch_file(content: bytes) -> list[CaseEvent]:
    """The events of a batch file, each validated as a case event; InvalidRecord names the first bad line."""
    events = [_event(number, line) for number, line in enumerate(_event_lines(content), start=2)]
    if not events:
        raise InvalidRecord(_EMPTY)
    return events


def read_events(content: bytes) -> tuple[list[EventTuple], list[bytes]]:
    """The events of a batch file in canonical form, as tuples, and their record hashes: exactly the files
    :func:`rebuild` accepts, and its InvalidRecord for the others (see the module docstring)."""
    lines = _event_lines(content)
    events: list[EventTuple] = []
    hashes: list[bytes] = []
    canonical = True
    match, hasher, typehash, small, zero = _CANONICAL_LINE.fullmatch, keccak_256, _CASE_TYPEHASH, _SMALL_HEX, _ZERO_HEX
    actions, opened = _ACTIONS, _OPENED
    for index, line in enumerate(lines):
        m = match(line)
        if m is not None:
            position, case, action_text, at_text, commitment, district, channel_text, details = m.groups()
            action, at, channel = int(action_text), int(at_text), int(channel_text)
            # CaseEvent's checks: a known action, 0 < occurred_at <= 2**64 - 1, a uint8 channel, a case id, and the
            # intake fields on Opened only
            if (
                int(position) == index and action in actions and 0 < at <= UINT64_MAX and channel <= 255
                and case != zero and (
                    (commitment != zero and district != zero and channel != 0) if action == opened
                    else (commitment == zero and district == zero and channel == 0)
                )
            ):
                body = bytes.fromhex(case + small[action] + f"{at:064x}" + commitment + district + small[channel]
                                     + details)
                hashes.append(hasher(typehash + body).digest())
                events.append((body[0:32], action, at, body[96:128], body[128:160], channel, body[192:224]))
                continue
        # not the canonical line of a valid event: the parser decides, and says what is wrong
        event = _event(index + 2, line)
        words = _words(event)
        canonical = canonical and line == _line(index, int(event.action), event.occurred_at, event.channel,
                                                words.hex())
        hashes.append(hasher(typehash + words).digest())
        events.append((event.case_id, int(event.action), event.occurred_at, event.commitment_id, event.district,
                       event.channel, event.details_hash))
    if not events:
        raise InvalidRecord(_EMPTY)
    if len(events) > MAX_ENTRIES:
        raise InvalidRecord(_TOO_LARGE)
    if not canonical:
        raise InvalidRecord(_NOT_CANONICAL)
    return events, hashes


def rebuild(content: bytes) -> Batch:
    """Parse a published batch file and rebuild its tree (what the indexer and the auditor do)."""
    batch = build_batch(parse_batch_file(content))
    if batch.content != content:
        raise InvalidRecord(_NOT_CANONICAL)
    return batch
