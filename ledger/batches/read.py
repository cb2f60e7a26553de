"""Reading a published batch file against its anchor, fast: what the indexer and the auditor do with every batch.

:func:`read_batch` checks a file's bytes against the anchoring entry's ``(root, count, fileHash)`` — in this order:
the bytes hash to ``fileHash``; every line is a well-formed case event in canonical form (``ledger.batches`` defines
the format); the file holds ``count`` events; they build the Merkle ``root`` — and returns the events as plain tuples
with their record hashes. A failure raises :class:`BatchFileProblem`, whose ``kind`` says what is wrong (``missing``,
``hash``, ``malformed`` with the line, ``count``, ``root``).

The file is read by the batch file's one parser (``ledger.batches.format.read_events``): it accepts exactly the files
:func:`ledger.batches.rebuild` accepts, with its message (naming the line) for the others, without building a
pydantic ``CaseEvent`` per line (about four times faster; ``tests/ledger/test_batchread.py`` checks the verdicts
agree).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ledger.batches import MAX_ENTRIES, MerkleTree
from ledger.batches.format import EventTuple, read_events
from ledger.encoding import keccak
from ledger.errors import InvalidRecord, LedgerError

MISSING, HASH, MALFORMED, COUNT, ROOT = "missing", "hash", "malformed", "count", "root"
#: problems another file may still cure: no file hashing to the anchored hash is there (yet). The others are problems
#: of the file with the anchored hash itself, which no other file can replace: such a batch can never be read.
CURABLE = frozenset({MISSING, HASH})

#: a withheld batch (its events not indexed, not applied) whose file is not published (yet): it may still be read
WITHHELD_MISSING = "missing"
#: a withheld batch that can never be read: the file with the anchored hash does not match the anchor (malformed,
#: another count or root), or no file can hold the anchored count; the anchor fixes the file by its hash
WITHHELD_IMPOSSIBLE = "impossible"


def withheld_kind(count: int, problem: str | None) -> str:
    """The one rule for what kind of withheld batch an anchor of `count` entries is, given the `problem` kind its
    file had (None: no file could be looked for, e.g. no batch directory): the indexer and the auditor both use it."""
    if count > MAX_ENTRIES or (problem is not None and problem not in CURABLE):
        return WITHHELD_IMPOSSIBLE
    return WITHHELD_MISSING


class BatchFileProblem(LedgerError):
    """A batch file that is not available, or does not match its anchor. ``kind`` is one of ``missing``, ``hash``,
    ``malformed``, ``count``, ``root``; ``line`` the file's line (1 is the header) for a malformed one."""

    def __init__(self, kind: str, message: str, line: int | None = None) -> None:
        self.kind, self.message, self.line = kind, message, line
        super().__init__(message)


@dataclass(frozen=True)
class BatchContent:
    """A batch file checked against its anchor: its events (in file order: event ``i`` is entry ``seq + i``) and
    their record hashes."""

    root: bytes
    file_hash: bytes
    events: list[EventTuple]
    record_hashes: list[bytes]

    @property
    def count(self) -> int:
        return len(self.events)


def read_batch(content: bytes, root: bytes, count: int, file_hash: bytes) -> BatchContent:
    """The events of the batch file `content`, checked against the anchor's `root`, `count` and `file_hash`;
    :class:`BatchFileProblem` says what does not match."""
    found = keccak(content)
    if found != file_hash:
        raise BatchFileProblem(
            HASH, f"the file hashes to 0x{found.hex()}, not to the anchored file hash 0x{file_hash.hex()}"
            + _also(content, root, count)
        )
    return check_content(content, root, count, file_hash)


def check_content(content: bytes, root: bytes, count: int, file_hash: bytes) -> BatchContent:
    """:func:`read_batch` without the file-hash check (for bytes already known to hash to `file_hash`)."""
    parsed = parse(content)
    if parsed.count != count:
        raise BatchFileProblem(
            COUNT, f"the file holds {parsed.count} events, the anchor says {count}"
            + ("" if parsed.count > count else f": {count - parsed.count} missing")
        )
    built = MerkleTree.of_records(parsed.record_hashes).root
    if built != root:
        raise BatchFileProblem(
            ROOT, f"the file's {parsed.count} events build Merkle root 0x{built.hex()}, the anchor says 0x{root.hex()}"
        )
    return BatchContent(root, file_hash, parsed.events, parsed.record_hashes)


@dataclass(frozen=True)
class _Parsed:
    events: list[EventTuple]
    record_hashes: list[bytes]

    @property
    def count(self) -> int:
        return len(self.events)


def parse(content: bytes) -> _Parsed:
    """The events and record hashes of a batch file (no anchor to compare with); malformed: BatchFileProblem."""
    try:
        events, hashes = read_events(content)
    except InvalidRecord as exc:
        text = str(exc)
        match = re.match(r"line (\d+)", text)
        raise BatchFileProblem(MALFORMED, f"malformed batch file: {text}",
                               int(match.group(1)) if match else None) from exc
    return _Parsed(events, hashes)


def _also(content: bytes, root: bytes, count: int) -> str:
    """For a file that does not hash to the anchor: what else differs, when that can be said."""
    try:
        parsed = parse(content)
    except BatchFileProblem as exc:
        return f"; it is also malformed ({exc.message.removeprefix('malformed batch file: ')})"
    if parsed.count != count:
        return f"; it holds {parsed.count} events, the anchor says {count}"
    built = MerkleTree.of_records(parsed.record_hashes).root
    if built != root:
        return f"; its {count} events build another Merkle root (0x{built.hex()}): an event was altered"
    return "; its events still build the anchored root (only the file's bytes differ)"


def read_batch_file(directory: Path, root: bytes, count: int, file_hash: bytes) -> BatchContent:
    """The batch file named by `file_hash` in a ``BatchStore`` directory, checked against its anchor."""
    path = Path(directory) / f"{file_hash.hex()}.csv"
    try:
        content = path.read_bytes()
    except FileNotFoundError as exc:
        raise BatchFileProblem(MISSING, f"the batch file {path} is missing") from exc
    except OSError as exc:
        raise BatchFileProblem(MISSING, f"the batch file {path} cannot be read: {exc}") from exc
    try:
        return read_batch(content, root, count, file_hash)
    except BatchFileProblem as exc:
        raise BatchFileProblem(exc.kind, f"{path}: {exc.message}", exc.line) from exc
