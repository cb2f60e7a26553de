"""Merkle batches complete: every anchored batch's published file is available, hashes to the anchored file hash,
holds well-formed case events in canonical form (a line that is not is reported with its number), exactly the
anchored count of them, and they build the anchored Merkle root (OpenZeppelin's standard tree over (index, record
hash), ``ledger.batches``). So a withheld batch, or a file missing, adding or changing an entry, is found, pointing at
the anchoring transaction and log.

The files are fetched and checked before the rebuild (``ledger.audit.batchfiles``): a batch that passes gives its
events to every other check (authorisation of the anchoring signer, transitions, timeliness with the anchor's block
time, the API's records, the metrics); one that does not leaves them out, and this check says so. That the log's
running hash and count reproduce the contract's, each batch folded once over its anchor and counted ``count`` times,
is the log check's rule (``log_complete``).
"""

from __future__ import annotations

from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import entry_pointer, hex0x
from ledger.batches import batch_hash
from ledger.records import EntryKind

NAME = "batches_complete"

_WHAT = {
    "missing": "the batch file is not available",
    "hash": "the published file is not the anchored one",
    "malformed": "the batch file is malformed",
    "count": "the batch file does not hold the anchored number of entries",
    "root": "the batch file's entries do not build the anchored Merkle root",
}


def run(ctx: AuditContext, result: CheckResult) -> None:
    model = ctx.model
    anchors = [model.anchors[seq] for seq in sorted(model.anchors)]
    if not anchors:
        result.not_applicable("not applicable: no batch is anchored on this ledger (up to the audited block)")
        return
    total = sum(a.record["count"] for a in anchors)
    result.counts.update(batches=len(anchors), batched_entries=total)
    outcomes = ctx.batch_files
    if outcomes is None:
        result.skip(
            f"{len(anchors)} batches ({total} entries) are anchored, but no batch files were given (--batches DIR or "
            "URL, or --api): their files were not checked, and their entries are missing from the other checks"
        )
        return
    result.notes.append(f"batch files read from {ctx.batch_source}")
    verified = entries = 0
    for anchor in anchors:
        r = anchor.record
        # The record hash the running hash folds is the anchor's (root, count, file hash): as the log check folds it.
        if anchor.record_hash != batch_hash(r["root"], r["count"], r["file_hash"]):
            result.add(Finding(NAME, "the anchor's record hash is not the hash of its root, count and file hash",
                               **entry_pointer(anchor), subject=f"batch seq {anchor.seq}"))
        outcome = outcomes.get(anchor.seq)
        if outcome is None:
            result.add(Finding(NAME, f"batch seq {anchor.seq}: its file was not fetched", **entry_pointer(anchor),
                               subject=f"batch seq {anchor.seq}"))
            continue
        problem = outcome.problem
        if problem is None:
            verified += 1
            entries += r["count"]
            continue
        n = r["count"]
        span = f"{n} entries, seq {anchor.seq}-{anchor.seq + n - 1}" if n > 1 else f"1 entry, seq {anchor.seq}"
        expected, actual, field = None, None, "file"
        if problem.kind == "hash":
            expected, field = hex0x(r["file_hash"]), "file_hash"
        elif problem.kind == "count":
            expected, field = n, "count"
        elif problem.kind == "root":
            expected, field = hex0x(r["root"]), "root"
        elif problem.kind == "malformed" and problem.line is not None:
            field = f"line {problem.line}"
        detail = problem.message if problem.kind == "missing" else f"{problem.message} (read from {outcome.where})"
        result.add(Finding(
            NAME, f"batch of {span}: {_WHAT[problem.kind]}: {detail}; its entries are left out of the other checks",
            **entry_pointer(anchor), subject=f"batch seq {anchor.seq} (file 0x{r['file_hash'].hex()})",
            field=field, expected=expected, actual=actual,
        ))
    result.counts.update(batches_verified=verified, entries_verified=entries,
                         batches_failed=len(anchors) - verified)
    kinds = {e.kind for e in model.logged}
    if EntryKind.BATCH_ANCHORED in kinds:
        result.notes.append(
            "each batch's events join the other checks as case events of the anchor's agency, signed by the anchor's "
            "signer, recorded at the anchor's block time; the running hash folds each batch once (log_complete)"
        )


CHECK = Check(
    NAME,
    "Merkle batches complete and roots matching",
    "Every anchored batch's file is available (--batches DIR or API URL; by default the API's GET "
    "/api/v1/batches/{seq}/file), hashes to the anchored file hash, holds only well-formed case events in canonical "
    "form (a bad line is named), exactly the anchored count of them, and they rebuild the anchored Merkle root "
    "(OpenZeppelin standard tree over (index, record hash), docs/ledger-format.md). The batch's events then join "
    "every other check; a withheld batch or a file missing an entry is a finding at the anchoring transaction.",
    run,
)
