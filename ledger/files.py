"""Files named by the keccak256 of their bytes, in one directory: published durably, read back checked.

What the service keeps beside the index and serves by hash (an audit report). Like the index, such a file is public
and checkable by anyone: its name is its hash.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ledger.encoding import keccak
from ledger.errors import LedgerError


class HashedFiles:
    """Files ``<keccak256 hex><suffix>`` in ``directory``."""

    def __init__(self, directory: Path, suffix: str) -> None:
        self.directory = Path(directory)
        self.suffix = suffix

    def path(self, digest: bytes) -> Path:
        return self.directory / f"{digest.hex()}{self.suffix}"

    def present(self, digest: bytes) -> bool:
        return self.path(digest).is_file()

    def put(self, content: bytes, digest: bytes | None = None) -> Path:
        """Publish `content` durably before returning (`digest`, when given, must be its keccak256).

        The bytes are written by :func:`replacing` (whole or not at all, durably; concurrent puts of one file never
        write into each other's). A file already under the name is kept only when its bytes hash to it; a corrupt one
        (torn by a crash, a disk fault, an edit) is replaced."""
        found = keccak(content)
        if digest is not None and digest != found:
            raise LedgerError(f"the content hashes to 0x{found.hex()}, not 0x{digest.hex()}")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(found)
        if self._intact(path, found, len(content)):
            fsync_directory(self.directory)  # a concurrent put may have renamed it and not synced the directory yet
            return path
        with replacing(path) as out:
            out.write(content)
        return path

    def get(self, digest: bytes) -> bytes | None:
        """The file's bytes, or None when it is not here; a file whose bytes do not match its name is refused
        (:class:`~ledger.errors.LedgerError`): it was altered, and is never served as the named one."""
        try:
            content = self.path(digest).read_bytes()
        except FileNotFoundError:
            return None
        if keccak(content) != digest:
            raise LedgerError(f"{self.path(digest).name} does not hash to its name: the file was altered")
        return content

    @staticmethod
    def _intact(path: Path, digest: bytes, size: int) -> bool:
        """Whether the file under `path` is there with bytes that hash to its name (then it is fsynced too: it may
        have been written by a put that has not synced it yet)."""
        try:
            with path.open("rb") as existing:
                if os.fstat(existing.fileno()).st_size != size or keccak(existing.read()) != digest:
                    return False
                os.fsync(existing.fileno())
                return True
        except FileNotFoundError:
            return False


@contextmanager
def replacing(path: Path, temporary: Path | None = None) -> Iterator[BinaryIO]:
    """Write `path` whole or not at all: the block writes a temporary file beside it (`temporary`, else a unique
    name), which is then flushed, fsynced and renamed over `path` (``os.replace``: atomic, a reader sees the whole file
    or none), and the directory is fsynced so that the rename survives a crash. If the block or any step before the
    rename fails, the temporary file is removed and `path` is untouched. The file is readable by all (0644)."""
    if temporary is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        temporary = Path(name)
        out = os.fdopen(fd, "wb")
    else:
        out = open(temporary, "wb")
    try:
        with out:
            os.fchmod(out.fileno(), 0o644)  # mkstemp makes it owner-only
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """fsync a directory, so that a file created or renamed in it survives a crash (POSIX fsync(2) of the file alone
    does not cover its directory entry)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
