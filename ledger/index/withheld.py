"""Withheld batches, the file side: reading an anchored batch's published file for the indexer, saying why a batch is
withheld when it cannot be read, and looking again — cheaply — for the files of the batches withheld so far.

A missing or impossible file never stops indexing
    A batch whose file cannot be read is withheld, not waited for: the range check still folds its anchor once and
    advances the count by ``count`` (the contract vouches for that), its ``batches`` row is written with ``withheld``
    and ``withheld_reason`` saying why (:class:`Withheld`), no ``entries`` row exists for its seqs, and indexing goes
    on with everything after it; one CRITICAL log line and one ``alert`` per batch, when its range is written
    (:mod:`ledger.index.sync`). ``sync_state.halted_reason`` is for deep reorganisations only.

Reading a file
    Once the contract vouches for a range, each anchor's file is read from the batch directory (``batch_dir``: a
    ``BatchStore`` directory, files named by their hash; the service's is ``<data dir>/batches``) and checked against
    the anchor by :func:`ledger.batches.read.read_batch_file` — the bytes hash to the file hash, every line is a
    canonical, well-formed case event, the count and the Merkle root are the anchored ones. ``withheld`` is
    ``missing`` when no file with the anchored hash is in the batch directory (or none is configured). It is
    ``impossible`` when the file with the anchored hash is malformed or holds another count or root: the anchor
    fixes the file by its hash, so no file can ever match, and the batch stays withheld for ever.

Looking again
    A sync looks again for the missing files when the directory changed since it last looked (a file added, removed
    or renamed there), and every :data:`WITHHELD_FULL_LOOK_SECONDS` anyway — one listing of the directory, then a
    read only of a file that is new or changed since it was last looked at; in between, only the files found
    wanting (present under the anchored hash's name, but not that file) are looked at again. Thousands of batches
    withheld on purpose thus cost an idle sync nothing — and when the right file appears, the indexer writes its
    entries at their seqs (:meth:`ledger.index.project.Projection.release`), in one transaction, and the row is no
    longer withheld: the store then holds exactly what a sync with the file there from the start gives.

What it touches: the batch directory (listing, stat, reading; never writing) and, to find the withheld batches, a
read of the ``batches`` table. It writes nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ledger.batches import BatchStore
from ledger.batches.read import (
    WITHHELD_IMPOSSIBLE,
    WITHHELD_MISSING,
    BatchContent,
    BatchFileProblem,
    read_batch_file,
    withheld_kind,
)
from ledger.chain.logs import DecodedEntry
from ledger.store.db import Store
from ledger.store.schema import batches

#: how often the withheld batches are looked for even when nothing was added to the batch directory (a file
#: overwritten in place, not renamed there, does not change the directory)
WITHHELD_FULL_LOOK_SECONDS = 600.0

_WHAT = {"missing": "file missing", "hash": "file hash differs", "count": "count differs", "root": "root differs",
         "malformed": "malformed file"}


@dataclass(frozen=True)
class Withheld:
    """Why a batch's entries are not indexed: ``kind`` is ``WITHHELD_MISSING`` or ``WITHHELD_IMPOSSIBLE``
    (``ledger.batches.read.withheld_kind``), ``reason`` the words stored and shown."""

    kind: str
    reason: str


class WithheldBatches:
    """One indexer's view of the published batch files: reads them, and remembers what it looked at so that a sync
    reads a file again only when it may have changed."""

    def __init__(self, batch_dir: Path | None) -> None:
        #: where published batch files are read (``ledger.batches.BatchStore``, files named by their hash): the
        #: service keeps them in ``<data dir>/batches``. None: every batch is withheld (missing) until one is given.
        self.batch_dir = batch_dir
        #: withheld (missing) batch → the identity of its file when it was last read (None: there was none), so a
        #: sync reads a file again only when it changed
        self._looked: dict[int, tuple[int, int, int] | None] = {}
        #: the batch directory's modification time when the withheld batches were last looked for, and when the last
        #: full look was: a sync looks again only when a file was added, removed or renamed there since, or every
        #: ``WITHHELD_FULL_LOOK_SECONDS`` — so thousands of batches withheld on purpose cost an idle sync nothing
        self._looked_dir: int | None = None
        self._full_look_at = 0.0

    def forget(self) -> None:
        """Forget what was looked at (after a rollback: the withheld batches may be others now)."""
        self._looked.clear()
        self._looked_dir = None

    def content(self, e: DecodedEntry) -> BatchContent | Withheld:
        """The anchored batch's file, checked against the anchor (``ledger.batches.read``), or why it is withheld."""
        r = e.record
        return self.read(e.seq, r["count"], r["root"], r["file_hash"], e.tx_hash, e.log_index, e.block_number)

    def read(
        self, seq: int, count: int, root: bytes, file_hash: bytes, tx_hash: bytes, log_index: int, block: int
    ) -> BatchContent | Withheld:
        where = (f"seq {seq} ({count} entries, anchored in tx 0x{tx_hash.hex()} log {log_index}, block {block}; "
                 f"file hash 0x{file_hash.hex()})")
        if self.batch_dir is None:
            return Withheld(WITHHELD_MISSING, f"batch {where}: file missing: no batch directory is configured "
                            "(Indexer batch_dir); its entries are withheld until one is given and the file is there")
        self._looked[seq] = self._file_identity(file_hash)
        try:
            return read_batch_file(self.batch_dir, root, count, file_hash)
        except BatchFileProblem as exc:
            # the reason is public (the API shows it): the file's name, not where this server keeps it
            path = BatchStore(self.batch_dir).path(file_hash)
            problem = exc.message.replace(str(path), path.name)
            if withheld_kind(count, exc.kind) == WITHHELD_MISSING:
                return Withheld(WITHHELD_MISSING, f"batch {where}: {_WHAT[exc.kind]}: {problem}; its entries are "
                                "withheld until the file with the anchored hash is published")
            return Withheld(WITHHELD_IMPOSSIBLE, f"batch {where}: {_WHAT[exc.kind]}: {problem}; the file with the "
                            "anchored hash does not match the anchor, so no file ever can: its entries are withheld "
                            "for ever")

    def _file_identity(self, file_hash: bytes) -> tuple[int, int, int] | None:
        """The batch file's identity on disk (inode, size, modification time), or None when there is none."""
        assert self.batch_dir is not None
        try:
            stat = BatchStore(self.batch_dir).path(file_hash).stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def look_again(self, store: Store) -> Iterator[tuple[Any, BatchContent | Withheld]]:
        """Look again for the files of the batches withheld as missing in `store`: each whose file is new or changed
        since this indexer last looked at it, with its ``batches`` row, read again — its content when it is there
        and matches now, or why it is still withheld. Lazily: the caller writes each before the next is read."""
        if self.batch_dir is None:
            return
        try:
            stamp = self.batch_dir.stat().st_mtime_ns  # before the listing: a file added during it moves the stamp
        except OSError:
            return  # no directory: nothing is published
        now = time.monotonic()
        full = now - self._full_look_at >= WITHHELD_FULL_LOOK_SECONDS
        query = select(batches).where(batches.c.withheld == WITHHELD_MISSING).order_by(batches.c.seq)
        present: set[str] | None = None
        if stamp != self._looked_dir or full:
            with os.scandir(self.batch_dir) as listing:
                present = {entry.name for entry in listing}
            self._looked_dir = stamp
            if full:
                self._full_look_at = now
        else:
            # nothing added or renamed: only files found wanting before can have changed (rewritten in place);
            # there are only as many as the operator put there, whatever an agency anchors
            wanting = [seq for seq, identity in self._looked.items() if identity is not None]
            if not wanting:
                return
            query = query.where(batches.c.seq.in_(wanting))
        with store.connect() as conn:
            rows = conn.execute(query).mappings().all()
        files = BatchStore(self.batch_dir)
        for row in rows:
            seq, file_hash = int(row["seq"]), bytes(row["file_hash"])
            if present is not None and files.path(file_hash).name not in present:
                continue  # still no file
            identity = self._file_identity(file_hash)
            if identity is None or (seq in self._looked and self._looked[seq] == identity):
                continue  # still no file, or the one already found wanting
            yield row, self.read(seq, int(row["count"]), bytes(row["root"]), file_hash, bytes(row["tx_hash"]),
                                 int(row["log_index"]), int(row["block_number"]))
