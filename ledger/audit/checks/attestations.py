"""Audit attestations: every auditor's checkpoint recorded on the ledger says what the chain says, every auditor key
was registered by governance when it attested and was never an agency key, and what the public API shows of
attestations (the list, the city-wide summary, the reports served by their hash) is what the ledger holds.

An auditor may sign any running hash: the contract checks only that the block and its hash are real, so a lying or
broken auditor's checkpoint is caught here, by everyone who audits — the chain's own entry count and running hash
after the last entry of that block are re-derived from the log, and the block's hash is read from the node.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from ledger.audit.apiread import ApiError
from ledger.audit.checks import Check
from ledger.audit.checks._api import horizon
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import entry_pointer, hex0x
from ledger.chain.logs import DecodedEntry
from ledger.encoding import ZERO_HEAD, keccak
from ledger.records import AuditVerdict, EntryKind

NAME = "attestations"
AUDITOR_CHANGES = frozenset({EntryKind.AUDITOR_AUTHORIZED, EntryKind.AUDITOR_REVOKED})
#: reports fetched from the API per run (each can be megabytes): drawn from the secret seed beyond this many
REPORTS_PER_RUN = 20


def heads_by_block(logged: list[DecodedEntry], running: dict[int, bytes]) -> tuple[list[int], list[tuple[int, bytes]]]:
    """(block numbers, (entry count, running hash) after each of those blocks), from the log alone (`running`: the
    model's head after each logged entry): what the contract held at the end of every block that holds an entry."""
    blocks: list[int] = []
    states: list[tuple[int, bytes]] = []
    for e in logged:
        state = (e.seq + (e.record["count"] if e.kind == EntryKind.BATCH_ANCHORED else 1), running[e.seq])
        if blocks and blocks[-1] == e.block_number:
            states[-1] = state
        else:
            blocks.append(e.block_number)
            states.append(state)
    return blocks, states


def state_at(blocks: list[int], states: list[tuple[int, bytes]], block: int) -> tuple[int, bytes]:
    """The (entry count, running hash) at the end of `block`."""
    i = bisect_right(blocks, block) - 1
    return states[i] if i >= 0 else (0, ZERO_HEAD)


def truth(ctx: AuditContext, blocks: list[int], states: list[tuple[int, bytes]], block: int) -> tuple[int, bytes]:
    """The ledger's (entry count, running hash) at the end of `block`: the contract's own, read at that block, where
    the node keeps its state; else re-derived from the log (a log the node altered is ``log_complete``'s finding,
    not the auditor's)."""
    cache: dict[int, tuple[int, bytes]] = ctx.cache.setdefault("contract_heads", {})
    if block not in cache:
        assert ctx.reader is not None  # the audit reads the chain through a reader
        found = ctx.reader.contract_head_at(block)
        cache[block] = found if found is not None else state_at(blocks, states, block)
    return cache[block]


def run(ctx: AuditContext, result: CheckResult) -> None:
    logged = ctx.model.logged
    attested = [e for e in logged if e.kind == EntryKind.AUDIT_ATTESTED]
    agency_keys = {e.signer for e in logged if e.kind == EntryKind.SIGNER_AUTHORIZED}
    auditors: dict[str, bool] = {}  # key -> registered now (replayed in seq order)
    blocks, states = heads_by_block(logged, ctx.model.running)
    last_block: dict[str, int] = {}
    for e in logged:
        if e.kind in AUDITOR_CHANGES:
            key = e.signer or ""
            if key in agency_keys:
                result.add(Finding(NAME, f"auditor key {key} is (or was) also an agency key: an auditor must be "
                                   "independent of every agency", **entry_pointer(e), field="auditor", actual=key))
            auditors[key] = e.kind == EntryKind.AUDITOR_AUTHORIZED
            continue
        if e.kind != EntryKind.AUDIT_ATTESTED:
            continue
        r = e.record
        if not auditors.get(e.actor):
            result.add(Finding(NAME, f"attestation by {e.actor}, which was not a registered auditor at that point",
                               **entry_pointer(e), field="auditor", actual=e.actor))
        if e.actor in agency_keys:
            result.add(Finding(NAME, f"attestation by {e.actor}, an agency key: an agency cannot audit itself",
                               **entry_pointer(e), field="auditor", actual=e.actor))
        if r["block_number"] <= last_block.get(e.actor, 0) or r["block_number"] >= e.block_number:
            result.add(Finding(NAME, f"attestation of block {r['block_number']}: not after the auditor's previous "
                               "one, or not before the block that recorded it", **entry_pointer(e),
                               field="block_number", actual=r["block_number"]))
        last_block[e.actor] = max(last_block.get(e.actor, 0), r["block_number"])
        passed = r["verdict"] == AuditVerdict.PASSED
        if r["verdict"] not in (AuditVerdict.PASSED, AuditVerdict.FAILED) or passed != (r["findings"] == 0):
            result.add(Finding(NAME, f"attestation's verdict {r['verdict']} contradicts its {r['findings']} findings",
                               **entry_pointer(e), field="verdict", actual=r["verdict"]))
        count, head = truth(ctx, blocks, states, r["block_number"])
        claimed = (r["entry_count"], bytes(r["running_hash"]))
        if claimed != (count, head):
            result.add(Finding(
                NAME, f"auditor {e.actor} attested block {r['block_number']} with entry count {claimed[0]} and "
                f"running hash {hex0x(claimed[1])}; the chain had {count} and {hex0x(head)} there",
                **entry_pointer(e), field="running_hash", expected=[count, hex0x(head)],
                actual=[claimed[0], hex0x(claimed[1])],
            ))
    # The block hashes the attestations name are the chain's (the contract checked them against BLOCKHASH when it
    # recorded them; a node serving another history is caught here).
    named = sorted({e.record["block_number"] for e in attested})
    if named:
        assert ctx.reader is not None  # (truth() has read through it already)
        answers = ctx.reader.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in named])
        chain_hash = {n: (a or {}).get("hash") for n, a in zip(named, answers, strict=True)}
        for e in attested:
            found = chain_hash.get(e.record["block_number"])
            if found is None or bytes.fromhex(found[2:]) != bytes(e.record["block_hash"]):
                result.add(Finding(NAME, f"attestation names block {e.record['block_number']} with hash "
                                   f"{hex0x(e.record['block_hash'])}; the node's block has {found}",
                                   **entry_pointer(e), field="block_hash", expected=found,
                                   actual=hex0x(e.record["block_hash"])))
    result.counts.update(attestations=len(attested), auditors=len(auditors),
                         auditors_registered=sum(auditors.values()))
    if ctx.api is not None:
        matches = {e.seq: (e.record["entry_count"], bytes(e.record["running_hash"]))
                   == truth(ctx, blocks, states, e.record["block_number"]) for e in attested}
        _api(ctx, result, attested, matches)


def _api(ctx: AuditContext, result: CheckResult, attested: list[DecodedEntry], matches: dict[int, bool]) -> None:
    """The API's attestations list equals the log's (up to the API's position), its ``matches_ledger`` included (an
    operator could vouch for a lying auditor, or disown an honest one); the reports it serves by hash hash to their
    names."""
    api = ctx.api
    assert api is not None
    position = horizon(ctx).count  # min(the API's position, the audited block's)
    expected = {e.seq: e for e in attested if e.seq < position}
    try:
        served = {int(item["seq"]): item for item in api.pages("/attestations")}
    except ApiError as exc:
        result.add(Finding(NAME, f"the API does not list attestations: {exc}", subject="GET /api/v1/attestations"))
        return
    for seq, e in expected.items():
        item = served.get(seq)
        if item is None:
            result.add(Finding(NAME, f"the API omits the attestation at seq {seq} (auditor {e.actor})",
                               **entry_pointer(e), subject="GET /api/v1/attestations"))
            continue
        diffs = _differences(e, item, matches[seq])
        if diffs:
            field, want, got = diffs[0]
            result.add(Finding(NAME, f"the API's attestation at seq {seq} differs from the ledger in "
                               f"{', '.join(d[0] for d in diffs)}", **entry_pointer(e),
                               subject="GET /api/v1/attestations", field=field, expected=want, actual=got))
    for seq in sorted(set(served) - {e.seq for e in attested}):
        if seq < position:
            result.add(Finding(NAME, f"the API lists an attestation at seq {seq} that the ledger does not hold",
                               seq=seq, subject="GET /api/v1/attestations", actual=served[seq]))
    # Reports by hash: a drawn sample when there are many.
    hashes = sorted({hex0x(e.record["report_hash"]) or "" for e in expected.values()})
    if len(hashes) > REPORTS_PER_RUN:
        hashes = sorted(ctx.rng("attestation reports").sample(hashes, REPORTS_PER_RUN))
    fetched = missing = 0
    for report_hash in hashes:
        status, body = api.fetch(f"/audit-reports/{report_hash}")
        if status == 404:
            missing += 1
            continue
        if status >= 400:
            result.add(Finding(NAME, f"the API fails to serve the attested report {report_hash}: HTTP {status}",
                               subject=f"GET /api/v1/audit-reports/{report_hash}"))
            continue
        fetched += 1
        if "0x" + keccak(body).hex() != report_hash:
            result.add(Finding(NAME, f"the API serves, as report {report_hash}, bytes that hash to "
                               f"0x{keccak(body).hex()}: not the report the auditor attested",
                               subject=f"GET /api/v1/audit-reports/{report_hash}", field="body",
                               expected=report_hash, actual="0x" + keccak(body).hex()))
    if missing:
        result.notes.append(f"{missing} attested report(s) are not served by the API (never uploaded, or withheld)")
    result.counts.update(api_attestations=len(served), reports_checked=fetched, reports_missing=missing)


def _differences(e: DecodedEntry, item: dict[str, Any], matches: bool) -> list[tuple[str, Any, Any]]:
    r = e.record
    want: dict[str, Any] = {
        "auditor": e.actor, "block_number": r["block_number"], "block_hash": hex0x(r["block_hash"]),
        "entry_count": r["entry_count"], "running_hash": hex0x(bytes(r["running_hash"])),
        "report_hash": hex0x(r["report_hash"]), "verdict": AuditVerdict(r["verdict"]).name.lower(),
        "findings": r["findings"], "matches_ledger": matches,
    }
    out = []
    for field, value in want.items():
        got = item.get(field)
        same = str(got).lower() == str(value).lower() if isinstance(value, str) else got == value
        if not same:
            out.append((field, value, got))
    return out


CHECK = Check(
    NAME,
    "Audit attestations true to the chain",
    "Every attestation recorded on the ledger was made by a key governance had registered as an auditor (never an "
    "agency key), names a block after its auditor's previous one with that block's real hash, and claims the entry "
    "count and running hash the log re-derives at the end of that block, with a verdict that agrees with its "
    "findings; the public API lists exactly these attestations, and every report it serves by hash hashes to it.",
    run,
)
