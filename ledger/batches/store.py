"""Where published batch files live: on disk, named by their hash."""

from __future__ import annotations

from pathlib import Path

from ledger.batches.format import Batch
from ledger.files import HashedFiles


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
