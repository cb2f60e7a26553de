"""Merkle-anchored batches as the read API serves them: the batch files, and the inclusion proof of each batched record.

A batch (``ledger.batches``) puts many case events in one published file and anchors the root of a Merkle tree over
them on chain. The index has each batched event as an entry row (``entries.batch_seq``, ``batch_index``) and each batch
as a row of ``batches`` (root, count, file hash, the anchoring transaction); the tree itself is not in the index. A
record's proof is rebuilt here from the batch file (read as :func:`ledger.batches.rebuild` reads it, every line
validated — through ``ledger.batches.read``'s parser, which accepts exactly the same files four times faster — and the
tree built over the records): a 100,000-entry batch takes a second or so, so the rebuilt trees are kept
(:class:`BatchTrees`, least recently used first out, bounded by memory — about 100 bytes an entry, in flat byte
strings, not the tree's Python objects) and a request looks each batch up at most once (:class:`BatchProofs`).

A record whose proof cannot be given (the file is not here yet, or does not rebuild to the anchored root) keeps its
place in every answer, with ``merkle_proof`` null and ``proof_unavailable`` saying why: never an error, since the
record itself is in the index and on chain; the auditor flags the missing file.

The files are served as they are stored (``GET /api/v1/batches/{seq}/file``), streamed from disk; a file is hashed
once (streamed too) before it is first served, so an altered copy is never passed on (:class:`VerifiedFiles`).
"""

from __future__ import annotations

import os
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.schemas.proofs import BatchProof
from ledger.batches import BatchStore, MerkleTree
from ledger.batches import read as batchread
from ledger.batches.read import BatchFileProblem
from ledger.encoding import keccak_256
from ledger.errors import LedgerError

PREFIX = "/api/v1"
#: how long a batch file found damaged is not looked at again (a missing file is looked for on every request: that
#: costs one stat)
FAILURE_SECONDS = 30.0
#: bytes read at a time when hashing a file
CHUNK = 1 << 20


def file_url(seq: int) -> str:
    return f"{PREFIX}/batches/{seq}/file"


def hex32(value: bytes) -> str:
    return "0x" + bytes(value).hex()


@dataclass(frozen=True)
class BatchKey:
    """A batch as the index has it: what its file must rebuild to."""

    seq: int
    root: bytes
    count: int
    file_hash: bytes

    @classmethod
    def of(cls, seq: Any, root: Any, count: Any, file_hash: Any) -> BatchKey:
        return cls(int(seq), bytes(root), int(count), bytes(file_hash))


@dataclass(frozen=True)
class Tree:
    """A batch's rebuilt tree, kept flat: the nodes of OpenZeppelin's standard tree (``ledger.batches.MerkleTree``:
    node ``i`` at ``nodes[32i:32i+32]``), each entry's leaf position, and each entry's record hash."""

    key: BatchKey
    nodes: bytes
    positions: array[int]
    records: bytes

    @property
    def size(self) -> int:
        return len(self.nodes) + len(self.records) + self.positions.itemsize * len(self.positions)

    def record(self, index: int) -> bytes:
        return self.records[32 * index : 32 * index + 32]

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf of entry ``index`` up (what ``MerkleProof.verify`` takes)."""
        i, nodes, out = self.positions[index], self.nodes, []
        while i > 0:
            sibling = i + 1 if i % 2 else i - 1
            out.append(nodes[32 * sibling : 32 * sibling + 32])
            i = (i - 1) // 2
        return out


@dataclass(frozen=True)
class Unavailable:
    """Why a batch's proofs cannot be given now."""

    code: str  # file_missing | file_altered | file_invalid | root_mismatch
    reason: str


def build_tree(store: BatchStore, key: BatchKey) -> Tree | Unavailable:
    """Read the batch file, rebuild and check it against what the index says of the batch."""
    name = hex32(key.file_hash)
    try:
        content = store.get(key.file_hash)
    except LedgerError:
        return Unavailable("file_altered", f"the stored batch file {name} does not hash to its name (it was altered); "
                                           "it is not used")
    if content is None:
        return Unavailable("file_missing", f"the file of batch #{key.seq} ({name}) is not available from this service "
                                           "(yet): the agency publishes it with the batch")
    try:
        # what ledger.batches.rebuild accepts, checked as it checks it, without a pydantic model per line
        records = batchread.parse(content).record_hashes
    except BatchFileProblem as exc:
        reason = exc.message.removeprefix("malformed batch file: ")
        return Unavailable("file_invalid", f"the file of batch #{key.seq} is not a valid batch file: {reason}")
    del content
    tree = MerkleTree.of_records(records)
    if len(records) != key.count or tree.root != key.root:
        return Unavailable(
            "root_mismatch",
            f"the file of batch #{key.seq} rebuilds to {len(records)} entries under root {hex32(tree.root)}, not "
            f"the {key.count} entries under root {hex32(key.root)} anchored on chain",
        )
    return Tree(key, b"".join(tree.tree), array("I", tree.position), b"".join(records))


class BatchTrees:
    """Rebuilt batch trees by batch, least recently used dropped first once they take more than ``max_bytes``.

    One rebuild per batch at a time: concurrent requests for a batch being rebuilt wait for it. A missing file is not
    remembered (it may be published any moment); a damaged one is, for :data:`FAILURE_SECONDS`. Thread-safe; per
    process."""

    def __init__(self, store: BatchStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._trees: OrderedDict[BatchKey, Tree] = OrderedDict()
        self._failures: dict[BatchKey, tuple[float, Unavailable]] = {}
        self._building: dict[BatchKey, threading.Event] = {}
        self._bytes = 0
        #: trees served from memory, and rebuilt from their files
        self.hits = 0
        self.builds = 0

    def peek(self, key: BatchKey) -> Tree | Unavailable | None:
        """The kept answer for ``key``, without building it (None: it would have to be built)."""
        with self._lock:
            tree = self._trees.get(key)
            if tree is not None:
                self._trees.move_to_end(key)
                self.hits += 1
                return tree
            failed = self._failures.get(key)
            if failed is not None and time.monotonic() - failed[0] < FAILURE_SECONDS:
                return failed[1]
            return None

    def get(self, key: BatchKey) -> Tree | Unavailable:
        """The tree of the batch (rebuilt from its file if it is not kept), or why there is none. Blocks."""
        while True:
            found = self.peek(key)
            if found is not None:
                return found
            with self._lock:
                pending = self._building.get(key)
                if pending is None:
                    pending = self._building[key] = threading.Event()
                    break
            pending.wait()
        try:
            built = build_tree(self.store, key)
            with self._lock:
                self.builds += 1
                if isinstance(built, Tree):
                    self._failures.pop(key, None)
                    if built.size <= self.max_bytes:
                        self._trees[key] = built
                        self._bytes += built.size
                        while self._bytes > self.max_bytes:
                            _, dropped = self._trees.popitem(last=False)
                            self._bytes -= dropped.size
                elif built.code != "file_missing":
                    self._failures[key] = (time.monotonic(), built)
            return built
        finally:
            with self._lock:
                del self._building[key]
            pending.set()

    def clear(self) -> None:
        with self._lock:
            self._trees.clear()
            self._failures.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._trees)

    @property
    def bytes_kept(self) -> int:
        return self._bytes


class BatchProofs:
    """One request's batched-record proofs: each batch looked up once in :class:`BatchTrees` and held for the
    request (``keep``: how many batches to hold at once — an export walking the log in seq order needs one).

    :meth:`load` builds what is missing (blocking: run it in a worker thread); :meth:`proof` then answers from what was
    loaded, building only a batch that was not."""

    def __init__(self, trees: BatchTrees | None, keep: int | None = None) -> None:
        self.trees = trees
        self.keep = keep
        self._held: OrderedDict[BatchKey, Tree | Unavailable] = OrderedDict()

    def _lookup(self, key: BatchKey, *, build: bool = True) -> Tree | Unavailable | None:
        found = self._held.get(key)
        if found is not None:
            return found
        if self.trees is None:
            found = Unavailable("file_missing", "this service has no batch files")
        else:
            found = self.trees.get(key) if build else self.trees.peek(key)
            if found is None:
                return None
        self._held[key] = found
        if self.keep is not None:
            while len(self._held) > self.keep:
                self._held.popitem(last=False)
        return found

    def missing(self, keys: Iterable[BatchKey]) -> list[BatchKey]:
        """Those of ``keys`` that would have to be built (a cheap check, fit for the event loop)."""
        return [key for key in dict.fromkeys(keys) if self._lookup(key, build=False) is None]

    def load(self, keys: Iterable[BatchKey]) -> None:
        for key in dict.fromkeys(keys):
            self._lookup(key)

    @property
    def unavailable(self) -> tuple[int, ...]:
        """Seqs of the batches looked up whose proofs could not be given (an ETag part: the answer changes when a
        file is published)."""
        return tuple(sorted(key.seq for key, found in self._held.items() if isinstance(found, Unavailable)))

    def proof(self, key: BatchKey, index: int | None, record_hash: bytes) -> BatchProof:
        """The ``batch`` object of a batched record's proof: where it is in the batch, and its Merkle proof (or why
        there is none)."""
        found = self._lookup(key)
        assert found is not None
        merkle: list[str] | None = None
        reason: str | None = None
        if isinstance(found, Unavailable):
            reason = found.reason
        elif index is None or not 0 <= index < key.count:
            reason = f"the index has entry {index} of batch #{key.seq}, which holds {key.count}"
        elif found.record(index) != bytes(record_hash):
            reason = (f"the record hash indexed for entry {index} of batch #{key.seq} is not the one its file has "
                      f"(line {index + 2}): the index and the file disagree")
        else:
            merkle = [hex32(node) for node in found.proof(index)]
        return BatchProof(
            seq=key.seq,
            index=index if index is not None else 0,
            root=hex32(key.root),
            count=key.count,
            file_hash=hex32(key.file_hash),
            file_url=file_url(key.seq),
            merkle_proof=merkle,
            proof_unavailable=reason,
        )


def batch_trees(app: Any) -> BatchTrees:
    """The app's :class:`BatchTrees` (made on first use, from its settings)."""
    trees: BatchTrees | None = getattr(app.state, "batch_trees", None)
    if trees is None:
        settings = app.state.settings
        trees = app.state.batch_trees = BatchTrees(
            BatchStore(settings.batch_directory), settings.batch_tree_cache_bytes
        )
    return trees


def batch_proofs(app: Any, keep: int | None = None) -> BatchProofs:
    """A request's :class:`BatchProofs` over the app's trees."""
    return BatchProofs(batch_trees(app), keep)


# --- the files --------------------------------------------------------------------------------------------------------


def hash_file(path: Path) -> bytes:
    """keccak256 of a file's bytes, read a chunk at a time."""
    hasher = keccak_256(b"")
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return bytes(hasher.digest())


class VerifiedFiles:
    """Which batch files on disk were hashed and found to be what their name says, by the file's identity on disk
    (device, inode, size, modification time): each is hashed once, then served without being read again here."""

    def __init__(self, store: BatchStore, max_entries: int = 4096) -> None:
        self.store = store
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._verified: OrderedDict[bytes, tuple[int, int, int, int]] = OrderedDict()

    def check(self, file_hash: bytes) -> tuple[Path, os.stat_result] | Unavailable:
        """The file's path and stat if it is here and hashes to its name (blocking: hashes it the first time)."""
        path = self.store.path(file_hash)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return Unavailable("file_missing", "")
        identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if self._verified.get(file_hash) == identity:
                self._verified.move_to_end(file_hash)
                return path, stat
        try:
            actual = hash_file(path)
        except FileNotFoundError:
            return Unavailable("file_missing", "")
        if actual != file_hash:
            return Unavailable("file_altered", "")
        with self._lock:
            self._verified[file_hash] = identity
            while len(self._verified) > self.max_entries:
                self._verified.popitem(last=False)
        return path, stat

    def present(self, file_hash: bytes) -> bool:
        """Whether a file of this name is here (not hashed: a cheap check for lists)."""
        return self.store.path(file_hash).is_file()


def verified_files(app: Any) -> VerifiedFiles:
    found: VerifiedFiles | None = getattr(app.state, "batch_files", None)
    if found is None:
        found = app.state.batch_files = VerifiedFiles(batch_trees(app).store)
    return found
