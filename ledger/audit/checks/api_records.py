"""API records equal on-chain data: every entry, agency, key change, commitment version and case the public API
serves (pages, single resources and bulk exports) is what the chain says, field by field, proofs included.

Withheld batches (``ledger.audit.batchfiles``): the entries of a batch whose file the audit could not read either are
not served by an honest API (its index quarantines the batch), and their absence is no finding — the batch is the
anchoring agency's finding (``batches_complete``). Against the operator: an API that does not serve the entries of a
batch whose file the audit read and checked against its anchor (it withholds a batch that can be indexed), and one
that serves entries of a batch whose file cannot be read (from the API itself, or at all: one that can never match).
When the audit read files from elsewhere (``--batches``) and that source lacks a file the API may have, the entries
the API serves are not compared, and a warning says so.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from ledger.audit import expected
from ledger.audit.apiread import ApiError
from ledger.audit.batchfiles import WITHHELD_MEANING, WITHHELD_MISSING
from ledger.audit.checks import Check
from ledger.audit.checks._api import (
    FAILED,
    Horizon,
    differs,
    fetch,
    finality_of,
    horizon,
    lag,
    moved,
    node_head,
    unfinal,
    withheld_of,
)
from ledger.audit.checks.batches import span as batch_span
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import (
    FEEDBACK_KINDS,
    AgencyState,
    CaseRecord,
    CommitmentState,
    LedgerModel,
    entry_pointer,
    hex0x,
)
from ledger.audit.sampling import catch_chance, sample_size
from ledger.chain.logs import DecodedEntry
from ledger.encoding import code_text
from ledger.metrics import CaseRow, is_case_overdue_at
from ledger.records import EntryKind

NAME = "api_records"


def _finding(e: DecodedEntry | None, what: str, diffs: list[tuple[str, Any, Any]], subject: str) -> Finding:
    return differs(NAME, e, what, diffs, subject)


def run(ctx: AuditContext, result: CheckResult) -> None:
    h = horizon(ctx)
    result.notes.append(h.note)
    _chain_facts(ctx, h, result)
    _entries(ctx, h, result)
    _batches(ctx, h, result)
    _agencies(ctx, h, result)
    _commitments(ctx, h, result)
    _cases(ctx, h, result)
    result.counts["api_requests"] = ctx.api.requests


def _chain_facts(ctx: AuditContext, h: Horizon, result: CheckResult) -> None:
    facts, chain = h.facts, ctx.chain
    subject = "GET /api/v1/chain"
    if facts.get("chain_id") != chain.chain_id:
        result.add(Finding(NAME, f"the API says chain id {facts.get('chain_id')}, the node serves {chain.chain_id}",
                           subject=subject, field="chain_id", expected=chain.chain_id, actual=facts.get("chain_id")))
    if str(facts.get("contract_address", "")).lower() != chain.address.lower():
        result.add(Finding(NAME, f"the API names contract {facts.get('contract_address')}, audited: {chain.address}",
                           subject=subject, field="contract_address", expected=chain.address,
                           actual=facts.get("contract_address")))
    count = int(facts.get("entry_count") or 0)
    chain_count = ctx.model.count
    last = facts.get("last_indexed_block")
    if h.beyond:
        result.notes.append(h.note)
    elif count > chain_count:
        result.add(Finding(
            NAME, f"the API says {count} entries are indexed, but the chain has {chain_count}: it serves entries "
            "that are not on the chain", subject=subject, field="entry_count", expected=chain_count, actual=count,
        ))
    elif not h.consistent:
        want = "0x" + (ctx.model.running[count - 1].hex() if count else "00" * 24)
        result.add(Finding(
            NAME, f"the API says running hash {facts.get('running_hash')} after {count} entries; the chain's "
            f"running hash after {count} entries is {want}", subject=subject, field="running_hash", expected=want,
            actual=facts.get("running_hash"),
        ))
    head = node_head(ctx) if isinstance(last, int) and last > chain.block_number else chain.block_number
    if isinstance(last, int) and head is not None and last > head:
        if count > chain_count and not h.beyond:
            result.add(Finding(
                NAME, f"the API says it indexed up to block {last}, but the chain's head was block {head} after it "
                "answered: it indexed blocks that are no longer on the chain", subject=subject,
                field="last_indexed_block", expected=head, actual=last,
            ))
        else:
            result.notes.append(f"the node is behind the API (its head is block {head}, the API's position block "
                                f"{last}): the API's position past block {head} could not be checked")
    elif isinstance(last, int) and last >= 0 and (h.beyond or (count <= chain_count and h.consistent)):
        _position(ctx, result, facts, count, last)
    _lag(ctx, result, facts)
    totals = withheld_of(ctx, h).counts()
    if totals is not None and not h.beyond:
        for field, total in totals.items():
            if facts.get(field) != total:
                result.add(Finding(NAME, f"the API says {field} is {facts.get(field)!r}; the chain's batches whose "
                                   f"file is unavailable or cannot match make it {total}", subject=subject, field=field,
                                   expected=total, actual=facts.get(field)))
    if facts.get("halted_reason"):
        result.warn(Finding(NAME, f"the service's indexing is halted: {facts['halted_reason']}", subject=subject))
    result.counts["api_entry_count"] = count


def _position(ctx: AuditContext, result: CheckResult, facts: dict[str, Any], count: int, last: int) -> None:
    """The API's entry count and running hash are the contract's at the block it says it has indexed up to: an index
    frozen before some entries cannot claim a later block to hide how far behind it is."""
    if ctx.reader is None:
        return
    at = ctx.reader.contract_head_at(last)
    if at is None:
        result.notes.append(f"the node keeps no state at block {last}: the API's position there was not checked")
        return
    served = str(facts.get("running_hash", "")).lower()
    if (at[0], "0x" + at[1].hex()) != (count, served):
        result.add(Finding(
            NAME, f"the API says it indexed up to block {last} with {count} entries (running hash {served}); at "
            f"block {last} the contract had {at[0]} entries (running hash 0x{at[1].hex()}): its position is not the "
            "chain's", subject="GET /api/v1/chain", field="last_indexed_block", expected=at[0], actual=count,
        ))


def _lag(ctx: AuditContext, result: CheckResult, facts: dict[str, Any]) -> None:
    """The API's position more than ``max_lag_blocks`` blocks, or its first unindexed block more than
    ``max_lag_seconds`` of block time, behind the audited block is a finding: the API serves an old ledger."""
    behind = lag(ctx, facts)
    if behind is None:
        result.counts["api_lag_blocks"] = 0
        return
    blocks, seconds = behind
    result.counts["api_lag_blocks"] = blocks
    config = ctx.config
    text = (f"the API serves the ledger as of block {facts.get('last_indexed_block')}, {blocks} blocks / "
            f"{_duration(seconds)} behind the chain (audited block {ctx.chain.block_number})")
    if blocks > config.max_lag_blocks or seconds > config.max_lag_seconds:
        result.add(Finding(
            NAME, f"{text}: more than the {config.max_lag_blocks} blocks or {_duration(config.max_lag_seconds)} "
            "allowed (--max-lag-blocks, --max-lag-seconds)", subject="GET /api/v1/chain", field="last_indexed_block",
            expected=ctx.chain.block_number, actual=facts.get("last_indexed_block"),
        ))
    else:
        result.notes.append(text)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def _entries(ctx: AuditContext, h: Horizon, result: CheckResult) -> None:
    full, api = ctx.model, ctx.api
    finality = finality_of(ctx, h)
    strange_blocks: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for view, path, builder in (
        ("entry", "/entries", expected.entry),
        ("exported entry", "/export/entries.jsonl", expected.entry_export),
    ):
        served: set[int] = set()  # seqs seen (items are compared as they stream by, not kept)
        unread_batched: Counter[int] = Counter()  # served entries of batches the audit could not read, by batch
        merkle_checked = 0
        later = 0  # entries past the audited block (the API is ahead of it): not compared
        rows: Iterable[dict[str, Any]] = api.pages(path) if view == "entry" else api.lines(path)
        try:
            for item in rows:
                seq = item.get("seq")
                if not isinstance(seq, int):
                    result.add(Finding(NAME, f"the API serves an {view} without a seq", subject=f"GET /api/v1{path}"))
                    continue
                if h.beyond and seq >= ctx.chain.contract_count:
                    later += 1
                    continue
                if seq in served:
                    e = full.by_seq.get(seq)
                    result.add(Finding(NAME, f"duplicated entry: the API serves seq {seq} twice ({view} list)",
                                       **(entry_pointer(e) if e else {"seq": seq}), subject=f"GET /api/v1{path}"))
                    continue
                served.add(seq)
                e = full.by_seq.get(seq)
                anchor = full.batch_of(seq) if e is None and seq in full.running else None
                if anchor is not None:
                    unread_batched[anchor.seq] += 1  # an entry of a batch whose file the audit could not read
                    continue
                if e is None or seq >= ctx.chain.contract_count:
                    block_hash = (item.get("proof") or item).get("block_hash")
                    strange_blocks.setdefault(str(block_hash).lower(), []).append((seq, item))
                    continue
                diffs = expected.differences(builder(e, full), item)
                if view == "entry":
                    wrong = expected.merkle_problem(e, full, item.get("proof"))
                    if wrong is not None:
                        merkle_checked += 1
                        (result.warn if wrong[1] else result.add)(Finding(
                            NAME, f"entry seq {seq}: {wrong[0]}", **entry_pointer(e), subject=f"GET /api/v1{path}",
                            field="proof.batch.merkle_proof",
                        ))
                    elif full.anchors and full.batch_of(seq) is not None:
                        merkle_checked += 1
                if not finality.ok(item, e.block_number):
                    diffs.append(("final", f"false (block {e.block_number} > finalized {finality.block})", True))
                if diffs:
                    fields = {d[0] for d in diffs}
                    if fields & {"proof.block_hash", "block_hash"}:
                        block_hash = (item.get("proof") or item).get("block_hash")
                        strange_blocks.setdefault(str(block_hash).lower(), []).append((seq, item))
                    result.add(_finding(e, f"{view} seq {seq}", diffs, f"GET /api/v1{path}"))
        except ApiError as exc:
            result.add(Finding(NAME, f"the API failed while listing entries: {exc}", subject=f"GET /api/v1{path}"))
            continue
        missing = [seq for seq in range(h.count) if seq not in served]
        withheld_alike = Counter[int]()
        for first, last, anchor in _batch_runs(full, missing):
            if anchor is not None and anchor.seq in full.unread:
                withheld_alike[anchor.seq] += last - first + 1  # withheld by its agency: not served, rightly
                continue
            e = full.by_seq.get(first)
            span = f"seq {first}" if first == last else f"seqs {first}-{last} ({last - first + 1} entries)"
            why = ""
            if anchor is not None and ctx.batch_files is not None:
                outcome = ctx.batch_files.get(anchor.seq)
                why = (f", in batch seq {anchor.seq} of {code_text(anchor.agency_id)}, whose file the audit read from "
                       f"{outcome.where if outcome is not None else ctx.batch_source} and found matching its anchor: "
                       "the API withholds entries of a batch that can be indexed")
            result.add(Finding(NAME, f"missing from the API ({view} list): {span}, on chain{why}",
                               **(entry_pointer(e) if e else {"seq": first}), subject=f"GET /api/v1{path}"))
        result.counts["entries_compared" if view == "entry" else "exported_entries_compared"] = (
            len(served) - sum(unread_batched.values())
        )
        if later:
            result.notes.append(f"{later} {view}s past the audited block were not compared")
        if withheld_alike:
            result.notes.append(
                f"{sum(withheld_alike.values())} {view}s of {len(withheld_alike)} withheld batch(es) (seq "
                f"{', '.join(str(s) for s in sorted(withheld_alike))}) are not served by the API, nor could the audit "
                "read them (batches_complete reports them against their agencies)"
            )
        _served_unread(ctx, result, view, path, unread_batched)
        if view == "entry" and full.anchors:
            result.counts["merkle_proofs_checked"] = merkle_checked
    _reorganised(ctx, strange_blocks, result)


def _batch_runs(model: LedgerModel, seqs: list[int]) -> list[tuple[int, int, DecodedEntry | None]]:
    """Runs of consecutive `seqs` (ascending), split where a batch starts or ends: (first, last, the batch's anchor or
    None)."""
    out: list[tuple[int, int, DecodedEntry | None]] = []
    for seq in seqs:
        anchor = model.batch_of(seq) if model.anchors else None
        if out and out[-1][1] == seq - 1 and out[-1][2] is anchor:
            out[-1] = (out[-1][0], seq, anchor)
        else:
            out.append((seq, seq, anchor))
    return out


def _served_unread(ctx: AuditContext, result: CheckResult, view: str, path: str, served: Counter[int]) -> None:
    """Entries the API serves of batches whose files the audit could not read (`served`: how many, by batch)."""
    if not served:
        return
    model, outcomes = ctx.model, ctx.batch_files
    if outcomes is None:
        result.notes.append(f"{sum(served.values())} {view}s of batches whose files were not read were not compared "
                            "(no batch files were given: batches_complete is skipped)")
        return
    subject = f"GET /api/v1{path}"
    for seq, n in sorted(served.items()):
        anchor = model.anchors[seq]
        outcome = outcomes.get(seq)
        kind = outcome.withheld if outcome is not None else WITHHELD_MISSING
        where = outcome.where if outcome is not None else ctx.batch_source
        agency = code_text(anchor.agency_id)
        if kind == WITHHELD_MISSING and not ctx.batches_from_api:
            result.warn(Finding(
                NAME, f"the API serves {n} {view}(s) of batch seq {seq} of {agency}, whose file the audit could not "
                f"read from {where}: they were not compared (give --batches the API, or a copy of its files)",
                **entry_pointer(anchor), subject=subject,
            ))
            continue
        why = ("the API does not serve the batch's file itself" if kind == WITHHELD_MISSING
               else f"the batch {WITHHELD_MEANING[kind]}")
        result.add(Finding(
            NAME, f"the API serves {n} {view}(s) of batch seq {seq} of {agency} ({batch_span(anchor)}), whose file "
            f"cannot be read ({where}): {why}; the index should have quarantined the batch, not served entries nobody "
            "can check", **entry_pointer(anchor), subject=subject, field="batch", actual=n,
        ))


def _batches(ctx: AuditContext, h: Horizon, result: CheckResult) -> None:
    """``GET /batches``: every batch anchored within the API's position, as on chain (root, count, file hash, signer,
    the anchoring proof, the batch's record, entry and running hash), none other; none said withheld whose file the
    audit read and found matching."""
    model = ctx.model
    anchors = {seq: a for seq, a in model.anchors.items() if seq < h.count}
    if not anchors:
        return
    path = "/batches"
    subject = f"GET /api/v1{path}"
    finality = finality_of(ctx, h)
    served: set[int] = set()
    try:
        for item in ctx.api.pages(path):
            seq = item.get("seq")
            anchor = anchors.get(seq) if isinstance(seq, int) else None
            if anchor is None:
                if isinstance(seq, int) and seq >= h.count:
                    continue  # indexed after the API's position was read
                result.add(Finding(NAME, f"the API lists a batch at seq {seq}, which the chain does not have",
                                   seq=seq if isinstance(seq, int) else None, subject=subject))
                continue
            if seq in served:
                result.add(Finding(NAME, f"duplicated batch: the API lists batch seq {seq} twice",
                                   **entry_pointer(anchor), subject=subject))
                continue
            served.add(seq)
            claim = item.get("withheld")
            if claim and seq in model.contents:
                outcome = (ctx.batch_files or {}).get(seq)
                result.add(Finding(
                    NAME, f"the API says batch seq {seq} of {code_text(anchor.agency_id)} is withheld ({claim}: "
                    f"{item.get('withheld_reason') or 'no reason given'}), but its file, read from "
                    f"{outcome.where if outcome is not None else ctx.batch_source}, matches the anchor: the batch can "
                    "be indexed", **entry_pointer(anchor), subject=subject, field="withheld", expected=None,
                    actual=claim,
                ))
            diffs = expected.differences(expected.batch(anchor, model), item)
            if not finality.ok(item, anchor.block_number):
                diffs.append(("final", f"false (block {anchor.block_number} > finalized {finality.block})", True))
            if diffs:
                result.add(_finding(anchor, f"batch seq {seq}", diffs, subject))
    except ApiError as exc:
        result.add(Finding(NAME, f"the API does not list the chain's {len(anchors)} batches: {exc}", subject=subject))
        return
    for seq in sorted(set(anchors) - served):
        result.add(Finding(NAME, f"missing from the API: batch seq {seq}, anchored on chain",
                           **entry_pointer(anchors[seq]), subject=subject))
    result.counts["batches_compared"] = len(served)


def _reorganised(ctx: AuditContext, blocks: dict[str, list[tuple[int, dict[str, Any]]]], result: CheckResult) -> None:
    """Entries the API serves from blocks the chain does not have (at that seq, or at all)."""
    if not blocks:
        return
    rpc = ctx.reader.rpc if ctx.reader is not None else None
    for block_hash, items in list(blocks.items())[:100]:
        on_chain: Any = "unknown"
        if rpc is not None and block_hash.startswith("0x"):
            on_chain = rpc.try_call("eth_getBlockByHash", [block_hash, False])[0]
        seqs = sorted({seq for seq, _ in items})
        block = (items[0][1].get("proof") or items[0][1]).get("block_number")
        beyond = [s for s in seqs if s >= ctx.chain.contract_count]
        if on_chain is None:
            why = f"block {block} ({block_hash}) is not on the chain: the index kept a reorganised block"
        elif on_chain == "unknown":
            why = f"block {block} ({block_hash}) could not be looked up"
        elif beyond and isinstance(block, int) and block > ctx.chain.block_number:
            result.notes.append(f"seqs {beyond[0]}-{beyond[-1]} are in block {block}, after the audited block")
            continue
        else:
            why = f"block {block} ({block_hash}) holds no such entry on the chain"
        if beyond:
            e = None
            result.add(Finding(
                NAME, f"the API serves seq {beyond[0]}" + (f"-{beyond[-1]}" if len(beyond) > 1 else "")
                + f", which the chain does not have (entry count {ctx.chain.contract_count}): {why}",
                seq=beyond[0], tx_hash=(items[0][1].get("proof") or items[0][1]).get("tx_hash"),
                block_number=block if isinstance(block, int) else None, subject="GET /api/v1/entries",
            ))
        for seq in [s for s in seqs if s < ctx.chain.contract_count]:
            e = ctx.model.by_seq.get(seq)
            if e is not None:
                result.add(Finding(NAME, f"seq {seq}: the API's proof names {why}; on chain the entry is in block "
                                   f"{e.block_number} (0x{e.block_hash.hex()})", **entry_pointer(e),
                                   subject="GET /api/v1/entries", field="proof.block_hash",
                                   expected=hex0x(e.block_hash), actual=block_hash))




def _agencies(ctx: AuditContext, h: Horizon, result: CheckResult) -> None:
    """Every agency's page as the page shows it: its list item and ``/agencies/{id}`` (keys, key history, the
    registration, how many of its batches and entries are withheld, finality), its commitments
    (``/commitments?agency_id=``) and its withheld batches (``/batches?agency_id=&withheld=true``)."""
    api, model = ctx.api, h.model
    try:
        listed = {item.get("agency_id"): item for item in api.pages("/agencies")}
    except ApiError as exc:
        result.add(Finding(NAME, f"the API failed to list agencies: {exc}", subject="GET /api/v1/agencies"))
        return
    later = {a for a in listed if not h.untouched(a)}  # changed past the audited block: an audit there compares them
    for agency_id in later:
        listed.pop(agency_id)
    finality = finality_of(ctx, h)
    withheld = withheld_of(ctx, h)
    for agency_id, state in sorted(model.agencies.items()):
        if agency_id in later:
            continue
        item = listed.pop(agency_id, None)
        subject = f"GET /api/v1/agencies/{agency_id}"
        counts = withheld.counts(agency_id) or {}
        if item is None:
            result.add(Finding(NAME, f"agency {agency_id} is missing from the API's agency list",
                               **entry_pointer(state.registration), subject="GET /api/v1/agencies"))
        else:
            diffs = expected.differences({**expected.agency(model, agency_id), **counts}, item)
            diffs += unfinal(finality, item, state.registration, "final")
            if diffs:
                result.add(_finding(state.registration, f"agency {agency_id}", diffs, "GET /api/v1/agencies"))
        detail = fetch(ctx, result, NAME, f"/agencies/{quote(agency_id, safe='')}", state.registration)
        if detail is None:  # (FAILED is not None)
            result.add(Finding(NAME, f"agency {agency_id}: the API answers 404", **entry_pointer(state.registration),
                               subject=subject))
        elif detail is not FAILED:
            diffs = expected.differences({**expected.agency(model, agency_id, detail=True), **counts}, detail)
            diffs += unfinal(finality, detail, state.registration, "final")
            for i, (change, e) in enumerate(zip(detail.get("key_history") or [], state.key_history, strict=False)):
                if isinstance(change, dict):
                    diffs += unfinal(finality, change, e[0], f"key_history[{i}].final")
            if diffs:
                pointer = _history_entry(state, diffs[0])
                result.add(_finding(pointer, f"agency {agency_id}", diffs, subject))
        _agency_commitments(ctx, h, result, agency_id)
        _agency_withheld(ctx, h, result, agency_id, withheld)
    for agency_id in listed:
        result.add(Finding(NAME, f"the API lists agency {agency_id}, which the chain has not registered",
                           subject="GET /api/v1/agencies", actual=agency_id))
    result.counts["agencies_compared"] = len(set(model.agencies) - later)
    if later:
        result.notes.append(f"agencies with entries past the audited block, not compared: {', '.join(sorted(later))}")
    if withheld.unknown:
        result.notes.append(
            "withheld batches of " + ", ".join(sorted(withheld.unknown)) + " were not compared: the audit read batch "
            f"files from {ctx.batch_source or 'nowhere'}, which lacks some the API may have"
        )


def _agency_commitments(ctx: AuditContext, h: Horizon, result: CheckResult, agency_id: str) -> None:
    """``/commitments?agency_id=`` (the agency's page lists its commitments so): exactly the agency's commitments,
    each as in the whole list."""
    params = {"agency_id": agency_id}
    subject = f"GET {ctx.api.path_of('/commitments', params)}"
    try:
        listed = {(i.get("agency_id"), i.get("commitment_id")): i for i in ctx.api.pages("/commitments", params)}
    except ApiError as exc:
        result.add(Finding(NAME, f"the API failed to list the commitments of agency {agency_id}: {exc}",
                           subject=subject))
        return
    for key, c in sorted(h.model.commitments.items()):
        if key[0] != agency_id or not c.versions:
            continue
        item = listed.pop(key, None)
        if item is None:
            result.add(Finding(NAME, f"commitment {key[0]}/{key[1]} is missing from the agency's commitments",
                               **entry_pointer(c.current[1]), subject=subject, field="items",
                               expected=key[1]))
            continue
        diffs = expected.differences(expected.commitment_summary(c), item)
        if diffs:
            result.add(_finding(c.current[1], f"commitment {key[0]}/{key[1]}", diffs, subject))
    for other, commitment_id in listed:
        result.add(Finding(NAME, f"the API lists commitment {other}/{commitment_id} among the commitments of agency "
                           f"{agency_id}, which the chain does not have", subject=subject, field="items",
                           actual=f"{other}/{commitment_id}"))


def _agency_withheld(ctx: AuditContext, h: Horizon, result: CheckResult, agency_id: str,
                     withheld: expected.Withheld) -> None:
    """``/batches?agency_id=&withheld=true`` (the agency's page lists why its figures lack some entries so): exactly
    the agency's batches whose file cannot be read, each as on chain."""
    want = withheld.seqs(agency_id)
    if want is None:
        return
    params = {"agency_id": agency_id, "withheld": "true"}
    subject = f"GET {ctx.api.path_of('/batches', params)}"
    try:
        items = list(ctx.api.pages("/batches", params))
    except ApiError as exc:
        result.add(Finding(NAME, f"the API failed to list the withheld batches of agency {agency_id}: {exc}",
                           subject=subject))
        return
    model, served = ctx.model, set()
    for item in items:
        seq = item.get("seq")
        if isinstance(seq, int) and seq >= h.count:
            continue  # anchored after the API's position was read
        anchor = model.anchors.get(seq) if isinstance(seq, int) else None
        if seq not in want or anchor is None:
            why = ("its file matches the anchor: the batch can be indexed" if seq in model.contents
                   else "the chain has no such batch of the agency")
            result.add(Finding(NAME, f"the API lists batch seq {seq} among the withheld batches of agency {agency_id}:"
                               f" {why}", **(entry_pointer(anchor) if anchor is not None else {}), subject=subject,
                               field="withheld", expected=None, actual=item.get("withheld")))
            continue
        served.add(seq)
        diffs = expected.differences(expected.batch(anchor, model), item)
        if not item.get("withheld"):
            diffs.append(("withheld", "missing or impossible", item.get("withheld")))
        if diffs:
            result.add(_finding(anchor, f"withheld batch seq {seq}", diffs, subject))
    for seq in sorted(want - served):
        result.add(Finding(NAME, f"the API does not list batch seq {seq} among the withheld batches of agency "
                           f"{agency_id}, though its file is unavailable or cannot match",
                           **entry_pointer(model.anchors[seq]),
                           subject=subject, field="items", expected=seq))


def _history_entry(state: AgencyState, diff: tuple[str, Any, Any]) -> DecodedEntry:
    """The entry a difference in an agency's page is about: a key change (the first one missing, when the history is
    cut short), else the registration."""
    field, _, served = diff
    index = -1
    if field.startswith("key_history["):
        index = int(field[len("key_history["):].split("]")[0])
    elif field == "key_history (length)" and isinstance(served, int):
        index = served
    if 0 <= index < len(state.key_history):
        return state.key_history[index][0]
    return state.registration


def _commitments(ctx: AuditContext, h: Horizon, result: CheckResult) -> None:
    api, model = ctx.api, h.model
    try:
        listed = {(i.get("agency_id"), i.get("commitment_id")): i for i in api.pages("/commitments")}
    except ApiError as exc:
        result.add(Finding(NAME, f"the API failed to list commitments: {exc}", subject="GET /api/v1/commitments"))
        return
    versions = 0
    finality = finality_of(ctx, h)
    listed = {key: item for key, item in listed.items() if h.untouched(key[0])}
    for key, c in sorted(model.commitments.items()):
        if not c.versions or not h.untouched(key[0]):
            continue
        agency_id, commitment_id = key
        base = f"/commitments/{quote(agency_id, safe='')}/{quote(commitment_id, safe='')}"
        current_row, current_entry = c.current
        item = listed.pop(key, None)
        if item is None:
            result.add(Finding(NAME, f"commitment {agency_id}/{commitment_id} is missing from the API's list",
                               **entry_pointer(current_entry), subject="GET /api/v1/commitments"))
        else:
            diffs = expected.differences(expected.commitment_summary(c), item)
            diffs += unfinal(finality, item, current_entry, "final")
            if diffs:
                result.add(_finding(current_entry, f"commitment {agency_id}/{commitment_id}", diffs,
                                    "GET /api/v1/commitments"))
        history = fetch(ctx, result, NAME, base, current_entry)
        if history is FAILED:
            continue
        if history is None:
            result.add(Finding(NAME, f"commitment {agency_id}/{commitment_id}: the API answers 404",
                               **entry_pointer(current_entry), subject=f"GET /api/v1{base}"))
            continue
        diffs = expected.differences(expected.commitment_history(c), history)
        ordered = sorted(c.versions, key=lambda v: v[0].version)
        for i, (served, (_, e)) in enumerate(zip(history.get("versions") or [], ordered, strict=False)):
            if isinstance(served, dict):
                diffs += unfinal(finality, served, e, f"versions[{i}].final")
        if diffs:
            result.add(_finding(_version_entry(c, diffs[0][0]), f"commitment {agency_id}/{commitment_id} (versions)",
                                diffs, f"GET /api/v1{base}"))
        for row, e in c.versions:
            versions += 1
            one = fetch(ctx, result, NAME, f"{base}/versions/{row.version}", e)
            if one is FAILED:
                continue
            want = expected.commitment_version(c, row.version)
            diffs = [("(whole)", "the version", None)] if one is None else expected.differences(want, one)
            if isinstance(one, dict):
                diffs += unfinal(finality, one, e, "final")
            if diffs:
                result.add(_finding(e, f"commitment {agency_id}/{commitment_id} version {row.version}", diffs,
                                    f"GET /api/v1{base}/versions/{row.version}"))
    for agency_id, commitment_id in listed:
        result.add(Finding(NAME, f"the API lists commitment {agency_id}/{commitment_id}, which the chain does not have",
                           subject="GET /api/v1/commitments"))
    result.counts["commitment_versions_compared"] = versions


def _version_entry(c: CommitmentState, field: str) -> DecodedEntry:
    ordered = sorted(c.versions, key=lambda v: v[0].version)
    if field.startswith("versions["):
        index = int(field[len("versions["):].split("]")[0])
        if index < len(ordered):
            return ordered[index][1]
    return c.current[1]


def sample_cases(model: LedgerModel, limit: int, rng: random.Random) -> tuple[list[CaseRecord], bool]:
    """Every case when there are at most `limit`, else `limit` of them drawn at random by `rng` (from the audit's
    secret seed: the operator cannot know which until the report names the seed), in (agency, case id) order."""
    records = sorted(model.cases.values(), key=lambda r: (r.agency_id, r.case_id))
    if len(records) <= limit:
        return records, False
    return sorted(rng.sample(records, limit), key=lambda r: (r.agency_id, r.case_id)), True


def case_sample_size(ctx: AuditContext, population: int) -> int:
    """How many case views to fetch: the least n catching a lie in one of ``assume_lies`` views with probability
    ``confidence`` (``ledger.audit.sampling``), when a confidence was asked for; else ``case_sample``."""
    config = ctx.config
    if config.confidence is None:
        return config.case_sample
    return sample_size(population, config.assume_lies, config.confidence)


def _case_pointer(record: CaseRecord, field: str) -> DecodedEntry:
    if field.startswith("events["):
        index = int(field[len("events["):].split("]")[0])
        if index < len(record.events):
            return record.events[index]
    return record.events[-1]


def _cases(ctx: AuditContext, h: Horizon, result: CheckResult) -> None:
    """Every case state (bulk export) and the case views; a case the index changed while it was audited (a live
    index moves on) is reported as a warning, not a finding, saying so."""
    api, model = ctx.api, h.model
    pending: list[tuple[tuple[str, bytes] | None, Finding]] = []

    def add(record: CaseRecord | None, finding: Finding) -> None:
        pending.append((None if record is None else (record.agency_id, record.case_id), finding))

    # Every case row, from the bulk export.
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    later: set[tuple[Any, str]] = set()  # cases the API has changed past the audited block (it is ahead): not compared
    try:
        for row in api.lines("/export/cases.jsonl"):
            key = (row.get("agency_id"), str(row.get("case_id", "")).lower())
            if not h.case_untouched(str(key[0]), row.get("last_seq")):
                later.add(key)
                continue
            if key in rows:
                add(None, Finding(NAME, f"the API exports case {key[0]}/{key[1]} twice",
                                  subject="GET /api/v1/export/cases.jsonl"))
            rows[key] = row
    except ApiError as exc:
        result.add(Finding(NAME, f"the API failed to export cases: {exc}", subject="GET /api/v1/export/cases.jsonl"))
    compared = 0
    for record in model.cases.values():
        want = expected.case_row(record)
        key = (record.agency_id, hex0x(record.case_id))
        if key in later or not h.case_untouched(record.agency_id, -1):
            continue
        got = rows.pop(key, None)
        subject = f"case {record.agency_id}/{key[1]} (GET /api/v1/export/cases.jsonl)"
        if want is None:
            if got is not None:
                add(record, Finding(NAME, "the API exports a state for a case that has no opening standing on chain",
                                    **entry_pointer(record.events[-1]), subject=subject))
            continue
        compared += 1
        if got is None:
            add(record, Finding(NAME, "case missing from the API's case export", **entry_pointer(record.events[0]),
                                subject=subject))
            continue
        diffs = expected.differences(want, got)
        if diffs:
            add(record, _finding(record.events[-1], "case state", diffs, subject))
    for agency_id, case_id in rows:
        try:
            found = ctx.model.cases.get((agency_id, bytes.fromhex(case_id[2:])))
        except ValueError:
            found = None
        add(found, Finding(NAME, f"the API exports case {agency_id}/{case_id}, which has no events on chain"
                           + (" at its position" if found else ""), subject="GET /api/v1/export/cases.jsonl"))
    result.counts["case_rows_compared"] = compared

    if later:
        result.notes.append(f"{len(later)} cases changed past the audited block were not compared")
    # A sample (or all) of the cases, one by one, with every event and its proof: drawn from the secret seed.
    population = len(model.cases)
    size = case_sample_size(ctx, population)
    sample, sampled = sample_cases(model, size, ctx.rng("case views"))
    k = min(ctx.config.assume_lies, population)
    chance = catch_chance(population, k, len(sample)) if population else 1.0
    result.notes.append(
        f"case views: {len(sample)} of {population} cases fetched one by one"
        + (" (drawn at random from the audit's seed)" if sampled else " (all of them)")
        + (f", for a confidence of {ctx.config.confidence}" if ctx.config.confidence is not None else "")
        + f": a lie in {k} case view(s) is caught with probability {chance:.4f}; every case's state was compared "
        "through the bulk export"
    )
    ctx.stats["case_views"] = {"population": population, "sample": len(sample), "assume_lies": k,
                               "catch_chance": round(chance, 6)}
    skipped_views = 0
    for record in sample:
        path = f"/cases/{quote(record.agency_id, safe='')}/0x{record.case_id.hex()}"
        before = int(time.time())
        view = fetch(ctx, result, NAME, path, record.events[-1])
        if view is FAILED:
            continue
        after = int(time.time())
        if view is None:
            add(record, Finding(NAME, "the API has no such case (404), but the chain has its events",
                                **entry_pointer(record.events[0]), subject=f"GET /api/v1{path}"))
            continue
        seqs = [item.get("seq") for item in view.get("events") or [] if isinstance(item, dict)]
        if not h.case_untouched(record.agency_id, max((q for q in seqs if isinstance(q, int)), default=-1)):
            skipped_views += 1
            continue
        diffs = expected.differences(expected.case_view(record, model), view)
        finality = finality_of(ctx, h)
        for i, (item, e) in enumerate(zip(view.get("events") or [], record.events, strict=False)):
            if isinstance(item, dict) and not finality.ok(item, e.block_number):
                diffs.append((f"events[{i}].final", False, True))
        state = record.state
        if state is not None and state.status in ("open", "on_hold"):
            row = CaseRow(agency_id=record.agency_id, case_id=record.case_id, **state.row())
            then, now = is_case_overdue_at(row, before), is_case_overdue_at(row, after + 1)
            if then == now and view.get("overdue") is not then:
                diffs.append(("overdue", then, view.get("overdue")))
        if diffs:
            add(record, _finding(_case_pointer(record, diffs[0][0]), "case", diffs, f"GET /api/v1{path}"))
    result.counts["case_views_compared"] = len(sample) - skipped_views
    if skipped_views:
        result.notes.append(f"{skipped_views} sampled case views changed past the audited block were not compared")

    touched = _touched_cases(ctx, h) if pending else set()
    for case_key, finding in pending:
        if touched is None or (case_key is not None and case_key in touched):
            result.warn(dataclasses.replace(finding, message=finding.message + " (the index moved on during the "
                                            "audit and this case has newer events: may follow from that)"))
        else:
            result.add(finding)


def _touched_cases(ctx: AuditContext, h: Horizon) -> set[tuple[str, bytes]] | None:
    """Cases given events after the API's position, if the index moved on during the audit (an empty set if it did
    not; None if which cannot be told)."""
    now = moved(ctx, h)
    if now is None:
        return set()
    newer = [e for e in ctx.model.entries if e.seq >= h.count]
    last = now.get("last_indexed_block")
    if isinstance(last, int) and last > ctx.chain.block_number:
        if ctx.reader is None:
            return None
        newer += ctx.reader.entries_between(ctx.chain.block_number + 1, last)
    return {(code_text(e.agency_id), e.record["case_id"]) for e in newer
            if e.kind == EntryKind.CASE_EVENT or e.kind in FEEDBACK_KINDS}


CHECK = Check(
    NAME,
    "API records equal on-chain data",
    "Every entry the public API lists and exports (all fields, hashes and proofs: tx hash, block number and hash, "
    "block time, log index, entry hash), every agency's page (its keys and key history, its withheld batches and "
    "entries, its commitments and withheld batches as the page lists them), every commitment version and "
    "retirement, every case state (bulk export) and a sample of case views with all their events equals what the "
    "chain says; /chain's entry count and running hash are the chain's; no entry is missing, duplicated or from a "
    "block that is not on the chain. A withheld batch's entries are rightly not served when the audit cannot read its "
    "file either; not serving those of a batch whose file matches, or serving those of one whose file cannot be read, "
    "is the operator's finding.",
    run,
    needs_api=True,
)
