"""Merkle batches complete: every anchored batch's published file is available, hashes to the anchored file hash,
holds well-formed case events in canonical form (a line that is not is reported with its number), exactly the
anchored count of them, and they build the anchored Merkle root (OpenZeppelin's standard tree over (index, record
hash), ``ledger.batches``); and no batch holds an event of a receipt case.

A batch whose file is not available or does not match is *withheld* (``ledger.audit.batchfiles``): a finding
**against the agency that anchored it** — the anchor's agency, signed by its key — pointing at the anchoring
transaction and log, with the seqs and number of entries withheld, what is wrong, and whether the file is merely not
published (yet) or can never match (a file with the anchored hash that does not match, or a count no file can
hold). Its entries stay counted in the log (the running hash and count, ``log_complete``) but none of its events is
applied — exactly as the index quarantines it — so the other checks go on with everything else. The findings are
also counted per agency (the report's ``withheld_by_agency``).

A batched event of a receipt case (an id with ``RECEIPT_CASE_FLAG``) is never applied to its case
(``ledger.cases.batched_event_applies``): the contract tracks such a case and never sees inside a batch, so a
fulfilment hidden there would close the case where its citizen could neither rate nor dispute it. Each one is a
finding against the agency, at the event's seq and the anchoring transaction and log.

The files are fetched and checked before the rebuild: a batch that passes gives its events to every other check
(authorisation of the anchoring signer, transitions, timeliness with the anchor's block time, the API's records, the
metrics).
"""

from __future__ import annotations

from collections import Counter

from ledger.audit.batchfiles import WITHHELD_MEANING, WITHHELD_MISSING, BatchOutcome
from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import entry_pointer, hex0x
from ledger.batches import batch_hash
from ledger.cases import BATCHED_RECEIPT_CASE_EVENT
from ledger.chain.logs import DecodedEntry
from ledger.encoding import code_text
from ledger.records import CaseAction, EntryKind

NAME = "batches_complete"

_WHAT = {
    "missing": "the batch file is not available",
    "hash": "the published file is not the anchored one",
    "malformed": "the batch file is malformed",
    "count": "the batch file does not hold the anchored number of entries",
    "root": "the batch file's entries do not build the anchored Merkle root",
}


def span(anchor: DecodedEntry) -> str:
    """The entries a batch stands for, for a person: "5 entries, seq 10-14"."""
    n = anchor.record["count"]
    return f"{n} entries, seq {anchor.seq}-{anchor.seq + n - 1}" if n > 1 else f"1 entry, seq {anchor.seq}"


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
            "URL, or --api): their files were not checked, and their events are missing from the other checks"
        )
        return
    result.notes.append(f"batch files read from {ctx.batch_source}")
    verified = entries = 0
    tally: dict[str, Counter[str]] = {}
    for anchor in anchors:
        r = anchor.record
        agency = code_text(anchor.agency_id)
        # The record hash the running hash folds is the anchor's (root, count, file hash): as the log check folds it.
        if anchor.record_hash != batch_hash(r["root"], r["count"], r["file_hash"]):
            result.add(Finding(NAME, "the anchor's record hash is not the hash of its root, count and file hash",
                               **entry_pointer(anchor), subject=f"batch seq {anchor.seq}"))
        outcome = outcomes.get(anchor.seq)
        if outcome is None:
            result.add(Finding(NAME, f"batch seq {anchor.seq}: its file was not fetched", **entry_pointer(anchor),
                               subject=f"batch seq {anchor.seq}"))
            continue
        kind = outcome.withheld
        if kind is None:
            verified += 1
            entries += r["count"]
            continue
        counts = tally.setdefault(agency, Counter())
        counts["batches"] += 1
        counts["entries"] += r["count"]
        counts["not_published" if kind == WITHHELD_MISSING else "never_match"] += 1
        result.add(_withheld(anchor, outcome, kind, agency))
    hidden = 0
    for seq in sorted(model.not_applied):
        e = model.not_applied[seq]
        batch = model.batch_of(seq)
        if batch is None:  # not possible: only batched events are kept there
            continue
        hidden += 1
        agency = code_text(e.agency_id)
        tally.setdefault(agency, Counter())["hidden_receipt_events"] += 1
        action = CaseAction(e.record["action"]).name.lower()
        case = f"0x{e.record['case_id'].hex()}"
        result.add(Finding(
            NAME, f"receipt case event hidden in a batch: {action} of receipt case {case}, entry {seq - batch.seq} "
            f"of batch seq {batch.seq} anchored by {agency}: {BATCHED_RECEIPT_CASE_EVENT}",
            **entry_pointer(e), subject=f"case {agency}/{case} (batch seq {batch.seq})", field="action",
            actual=action, agency=agency,
        ))
    withheld = [c for c in tally.values() if c["batches"]]
    result.counts.update(
        batches_verified=verified, entries_verified=entries, batches_withheld=sum(c["batches"] for c in withheld),
        entries_withheld=sum(c["entries"] for c in withheld),
        batches_not_published=sum(c["not_published"] for c in withheld),
        batches_never_matching=sum(c["never_match"] for c in withheld), receipt_events_hidden=hidden,
    )
    if tally:
        ctx.stats["withheld_by_agency"] = {agency: {
            "batches": c["batches"], "entries": c["entries"], "not_published": c["not_published"],
            "never_match": c["never_match"], "hidden_receipt_events": c["hidden_receipt_events"],
        } for agency, c in sorted(tally.items())}
        result.notes.append("against the agencies that anchored them: " + "; ".join(
            _agency_line(agency, c) for agency, c in sorted(tally.items())
        ))
    if any(e.kind == EntryKind.BATCH_ANCHORED for e in model.logged):
        result.notes.append(
            "each batch's events join the other checks as case events of the anchor's agency, signed by the anchor's "
            "signer, recorded at the anchor's block time; the running hash folds each batch once (log_complete); a "
            "withheld batch's entries are counted in the log, and none of its events is applied"
        )


def _withheld(anchor: DecodedEntry, outcome: BatchOutcome, kind: str, agency: str) -> Finding:
    """The finding against `agency` for its withheld batch."""
    r = anchor.record
    problem = outcome.problem
    what, detail, field, expected = _WHAT["missing"], "its file was not read", "file", None
    if problem is not None:
        what = _WHAT[problem.kind]
        detail = problem.message if problem.kind == "missing" else f"{problem.message} (read from {outcome.where})"
        if problem.kind == "hash":
            expected, field = hex0x(r["file_hash"]), "file_hash"
        elif problem.kind == "count":
            expected, field = r["count"], "count"
        elif problem.kind == "root":
            expected, field = hex0x(r["root"]), "root"
        elif problem.kind == "malformed" and problem.line is not None:
            field = f"line {problem.line}"
    return Finding(
        NAME, f"batch of {span(anchor)} withheld by {agency} — {WITHHELD_MEANING[kind]}: {what}: {detail}; its "
        "entries are counted in the log, but none of its events is applied (as the index quarantines it)",
        **entry_pointer(anchor), subject=f"agency {agency}, batch seq {anchor.seq} (file 0x{r['file_hash'].hex()})",
        field=field, expected=expected, agency=agency,
    )


def _agency_line(agency: str, c: Counter[str]) -> str:
    parts = []
    if c["batches"]:
        kinds = [f"{c['not_published']} not published (yet)"] if c["not_published"] else []
        kinds += [f"{c['never_match']} can never match"] if c["never_match"] else []
        parts.append(f"{c['batches']} batch{'es' if c['batches'] > 1 else ''} withheld ({c['entries']:,} entries; "
                     f"{', '.join(kinds)})")
    if c["hidden_receipt_events"]:
        parts.append(f"{c['hidden_receipt_events']} receipt case event(s) hidden in batches")
    return f"{agency}: {', '.join(parts)}"


CHECK = Check(
    NAME,
    "Merkle batches complete and roots matching",
    "Every anchored batch's file is available (--batches DIR or API URL; by default the API's GET "
    "/api/v1/batches/{seq}/file), hashes to the anchored file hash, holds only well-formed case events in canonical "
    "form (a bad line is named), exactly the anchored count of them, and they rebuild the anchored Merkle root "
    "(OpenZeppelin standard tree over (index, record hash), docs/ledger-format.md). The batch's events then join "
    "every other check. A withheld batch (file not published yet, or one that can never match) is a finding against "
    "the agency that anchored it, at the anchoring transaction; its entries are counted in the log but none of its "
    "events is applied, as the index quarantines it. A batched event of a receipt case is never applied to its case "
    "(ledger.cases.batched_event_applies) and is a finding against the agency.",
    run,
)
