"""Fetch every anchored batch's published file and check it against its anchor (``ledger.batches.read``): from a
directory (a ``BatchStore``: files named ``<file hash hex>.csv``) or from a public API (``GET
/api/v1/batches/{seq}/file``), whichever ``--batches`` names — by default the API given with ``--api``.

Fetching happens before the state is rebuilt, since the batches' events are part of it; what happened to each batch
(its checked content, or the problem) is kept for the batch check (``ledger.audit.checks.batches``).

A batch whose file cannot be read is *withheld* (:attr:`BatchOutcome.withheld`), of one of the two kinds the index
quarantines it as (``ledger.store.schema``):

``missing``
    no file hashing to the anchored file hash is available (none is published at the source, or the one published
    under that name is another file: ``ledger.batches.read.CURABLE``): it may still be published, and the batch read;
``impossible``
    the file with the anchored hash is published but is malformed, holds another count of events or builds another
    root — since no other file can have that hash, the batch can never be read — or the anchor's count is beyond what
    any batch file can hold (``ledger.batches.MAX_ENTRIES``), published or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ledger.audit.apiread import PREFIX, ApiError, PublicApi
from ledger.audit.errors import CannotAudit
from ledger.batches import MAX_ENTRIES
from ledger.batches.read import (
    COUNT,
    MISSING,
    WITHHELD_IMPOSSIBLE,
    WITHHELD_MISSING,
    BatchContent,
    BatchFileProblem,
    read_batch,
    withheld_kind,
)
from ledger.chain.logs import DecodedEntry
from ledger.records import EntryKind

#: what each kind of withheld batch means, for a person
WITHHELD_MEANING = {
    WITHHELD_MISSING: "file not published (yet): the batch can be read once it is",
    WITHHELD_IMPOSSIBLE: "can never match: no file with the anchored hash can match the anchor",
}


@dataclass(frozen=True)
class BatchOutcome:
    """One anchored batch: its checked content, or what is wrong (``problem.kind``: missing, hash, malformed,
    count, root)."""

    anchor: DecodedEntry
    #: where the file was looked for (a path or a URL)
    where: str
    content: BatchContent | None = None
    problem: BatchFileProblem | None = None

    @property
    def withheld(self) -> str | None:
        """None when the batch was read; else the kind of withheld batch it is: ``missing`` (no file hashing to the
        anchored hash is available: it may still be published) or ``impossible`` (the one that is does not match, or
        none can hold the anchored count: it never can)."""
        if self.content is not None:
            return None
        return withheld_kind(self.anchor.record["count"], None if self.problem is None else self.problem.kind)


class BatchSource:
    """Where published batch files are read from."""

    #: what the report says the source is
    description = ""

    def fetch(self, anchor: DecodedEntry) -> tuple[str, bytes | None]:
        """(where it was looked for, the file's bytes or None when it is not there); BatchFileProblem (missing) when
        it cannot be read at all."""
        raise NotImplementedError

    def serves(self, api: PublicApi) -> bool:
        """Whether the files come from `api` itself (its GET /batches/{seq}/file)."""
        return False

    def close(self) -> None:
        pass


class DirectorySource(BatchSource):
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.description = f"directory {self.directory}"

    def fetch(self, anchor: DecodedEntry) -> tuple[str, bytes | None]:
        path = self.directory / f"{anchor.record['file_hash'].hex()}.csv"
        try:
            return str(path), path.read_bytes()
        except FileNotFoundError:
            return str(path), None
        except OSError as exc:
            raise BatchFileProblem(MISSING, f"{path} cannot be read: {exc}") from exc


class ApiSource(BatchSource):
    """``GET {base}/api/v1/batches/{seq}/file``: the exact bytes the service publishes."""

    def __init__(self, api: PublicApi, *, owned: bool = False) -> None:
        self.api, self.owned = api, owned
        self.description = f"the public API at {api.where} (GET {PREFIX}/batches/{{seq}}/file)"

    def fetch(self, anchor: DecodedEntry) -> tuple[str, bytes | None]:
        path = f"/batches/{anchor.seq}/file"
        where = f"{self.api.where}{PREFIX}{path}"
        try:
            return where, self.api.file(path)  # bounded, no redirect followed; None for 404
        except ApiError as exc:
            raise BatchFileProblem(MISSING, f"GET {where}: {exc.message}") from exc
        except CannotAudit as exc:
            raise BatchFileProblem(MISSING, f"GET {where} failed: {exc}") from exc

    def serves(self, api: PublicApi) -> bool:
        return self.api is api or self.api.where.rstrip("/") == api.where.rstrip("/")

    def close(self) -> None:
        if self.owned:
            self.api.close()


def source_for(batches: str | None, api: PublicApi | None, timeout: float = 60.0) -> BatchSource | None:
    """The source ``--batches`` names: a URL is a public API's base URL, anything else a directory; without it, the
    API given with ``--api`` (None when there is neither)."""
    if batches:
        if batches.startswith(("http://", "https://")):
            return ApiSource(PublicApi(batches, timeout=timeout), owned=True)
        return DirectorySource(Path(batches))
    return ApiSource(api) if api is not None else None


def anchors_of(entries: Iterable[DecodedEntry]) -> list[DecodedEntry]:
    """The batch anchors among logged entries, once each, in seq order."""
    found: dict[int, DecodedEntry] = {}
    for e in entries:
        if e.kind == EntryKind.BATCH_ANCHORED and e.seq not in found:
            found[e.seq] = e
    return [found[seq] for seq in sorted(found)]


def load(anchors: list[DecodedEntry], source: BatchSource, workers: int = 8) -> dict[int, BatchOutcome]:
    """Fetch and check every anchored batch's file (a few at a time), by the anchor's seq."""

    def one(anchor: DecodedEntry) -> BatchOutcome:
        r = anchor.record
        where = source.description
        try:
            if r["count"] > MAX_ENTRIES:  # not fetched: no file can match it (and it would be huge)
                raise BatchFileProblem(COUNT, f"the anchor claims {r['count']:,} entries; a batch file holds at most "
                                       f"{MAX_ENTRIES:,} (ledger.batches.MAX_ENTRIES), so none can match it")
            where, content = source.fetch(anchor)
            if content is None:
                raise BatchFileProblem(MISSING, f"{where} has no such file (not published there)")
            return BatchOutcome(anchor, where, read_batch(content, r["root"], r["count"], r["file_hash"]))
        except BatchFileProblem as exc:
            return BatchOutcome(anchor, where, problem=exc)

    if len(anchors) <= 1:
        return {a.seq: one(a) for a in anchors}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audit-batches") as pool:
        return {outcome.anchor.seq: outcome for outcome in pool.map(one, anchors)}
