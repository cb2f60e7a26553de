"""Single views equal on-chain data: what a person reaches one at a time — an entry and its proof (the page's proof
view, ``#/proof/{seq}``), a batch (``#/batch/{seq}``), a page of the entry log as the page reads it (``#/log``) — is
what the chain says, whatever the lists and exports said (``api_records`` compares those). An operator could serve an
honest list and lie in the single resource a citizen clicks through to.

- ``GET /entries/{seq}`` and ``GET /entries/{seq}/proof`` for entries drawn from the audit's secret seed
  (``ctx.rng("entry views")``): :data:`ENTRY_SAMPLE` of them, or the size ``--confidence`` picks for the number of
  entries (``ledger.audit.sampling``), all of them when there are no more, and besides one entry of each batch whose
  file the audit read (so a Merkle proof is always among them): every field and the proof as on chain, the Merkle
  proof verified against the anchored root (not only compared), ``final`` no earlier than /chain's finalized block.
  The first entry of a batch the API must call withheld must answer 404.
- ``GET /batches/{seq}``: every batch anchored within the API's position (a drawn :data:`BATCH_SAMPLE` when more),
  as on chain, called withheld exactly when its file cannot be read.
- Pages of ``GET /entries`` at cursors and page sizes drawn from the seed (the page's 50 among them): each holds
  exactly the entries that follow its cursor, each as on chain, and ``next`` is its last seq when more follow.

Entries never change once written, so they are compared with the chain's up to the API's position (``_api``).
"""

from __future__ import annotations

import bisect
import random
from typing import Any

from ledger.audit import expected
from ledger.audit.apiread import ApiError
from ledger.audit.checks import Check
from ledger.audit.checks._api import (
    FAILED,
    Finality,
    Horizon,
    differs,
    fetch,
    finality_of,
    horizon,
    unfinal,
    withheld_of,
)
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import LedgerModel, entry_pointer
from ledger.audit.sampling import catch_chance, sample_size
from ledger.chain.logs import DecodedEntry
from ledger.encoding import code_text

NAME = "entry_views"
#: single entries fetched (with their proofs) in a run, unless ``--confidence`` sizes the sample
ENTRY_SAMPLE = 100
#: single batches fetched in a run: all of them when there are at most this many
BATCH_SAMPLE = 200
#: pages of the entry log drawn in a run, and their sizes: the page's own (``api/static/app.js``, ``LOG_PAGE``), and
#: one drawn up to :data:`MAX_PAGE` for each other page
PAGE_DRAWS = 3
LOG_PAGE = 50
MAX_PAGE = 100


def run(ctx: AuditContext, result: CheckResult) -> None:
    h = horizon(ctx)
    result.notes.append(h.note)
    finality = finality_of(ctx, h)
    _entries(ctx, h, result, finality)
    _withheld_entries(ctx, h, result)
    _batches(ctx, h, result, finality)
    _pages(ctx, h, result, finality)
    result.counts["api_requests"] = ctx.api.requests


def population(model: LedgerModel, count: int) -> list[int]:
    """The seqs the API serves one by one at its position (`count` entries): every entry the audit has (those of a
    batch whose file it could not read are not among them)."""
    return sorted(seq for seq in model.by_seq if seq < count)


def entry_sample_size(ctx: AuditContext, total: int) -> int:
    """How many entries to fetch one by one: the least n catching a lie in one of ``assume_lies`` entries with
    probability ``confidence``, when a confidence was asked for; else :data:`ENTRY_SAMPLE`."""
    config = ctx.config
    if config.confidence is None:
        return ENTRY_SAMPLE
    return sample_size(total, config.assume_lies, config.confidence)


def sample_entries(model: LedgerModel, seqs: list[int], n: int, rng: random.Random) -> tuple[list[int], bool]:
    """Every seq of `seqs` when there are at most `n`; else `n` drawn by `rng`, plus one drawn of each batch whose
    file was read (its Merkle proof is then checked too); in seq order, and whether they were drawn."""
    if len(seqs) <= n:
        return seqs, False
    chosen = set(rng.sample(seqs, n))
    limit = seqs[-1] + 1 if seqs else 0
    for seq, anchor in sorted(model.anchors.items()):
        if seq in model.contents and seq < limit:
            chosen.add(seq + rng.randrange(anchor.record["count"]))
    return sorted(chosen), True


def _compare(ctx: AuditContext, result: CheckResult, e: DecodedEntry, item: Any, subject: str,
             finality: Finality, *, proof_only: bool = False) -> None:
    """One entry (or its proof alone) as the API served it, against the chain: fields, finality, Merkle proof."""
    model = ctx.model
    if not isinstance(item, dict):
        result.add(Finding(NAME, f"entry seq {e.seq}: the answer is not a JSON object", **entry_pointer(e),
                           subject=subject, field="(whole)", actual=item))
        return
    want = expected.proof(e, model) if proof_only else expected.entry(e, model)
    diffs = expected.differences(want, item)
    if not proof_only:
        diffs += unfinal(finality, item, e, "final")
    if diffs:
        result.add(differs(NAME, e, f"entry seq {e.seq}" + (" (proof)" if proof_only else ""), diffs, subject))
    wrong = expected.merkle_problem(e, model, item if proof_only else item.get("proof"))
    if wrong is not None:
        (result.warn if wrong[1] else result.add)(Finding(
            NAME, f"entry seq {e.seq}: {wrong[0]}", **entry_pointer(e), subject=subject,
            field="batch.merkle_proof" if proof_only else "proof.batch.merkle_proof",
        ))




def _entries(ctx: AuditContext, h: Horizon, result: CheckResult, finality: Finality) -> None:
    model = ctx.model
    seqs = population(model, h.count)
    n = entry_sample_size(ctx, len(seqs))
    sample, drawn = sample_entries(model, seqs, n, ctx.rng("entry views"))
    k = min(ctx.config.assume_lies, len(seqs))
    chance = catch_chance(len(seqs), k, min(n, len(seqs))) if seqs else 1.0
    merkle = 0
    for seq in sample:
        e = model.by_seq[seq]
        if model.anchors and model.batch_of(seq) is not None:
            merkle += 1
        for path, proof_only in ((f"/entries/{seq}", False), (f"/entries/{seq}/proof", True)):
            item = fetch(ctx, result, NAME, path, e)
            if item is None:
                result.add(Finding(NAME, f"entry seq {seq}: the API answers 404, but the chain has it",
                                   **entry_pointer(e), subject=f"GET /api/v1{path}", field="(whole)"))
            elif item is not FAILED:
                _compare(ctx, result, e, item, f"GET /api/v1{path}", finality, proof_only=proof_only)
    result.counts["entries_fetched"] = len(sample)
    result.counts["merkle_proofs_checked"] = merkle
    ctx.stats["entry_views"] = {"population": len(seqs), "sample": len(sample), "assume_lies": k,
                                "catch_chance": round(chance, 6)}
    result.notes.append(
        f"single entries: {len(sample)} of {len(seqs)} fetched one by one with their proofs"
        + (f" (drawn at random from the audit's seed, {merkle} of them batched)" if drawn else " (all of them)")
        + (f", for a confidence of {ctx.config.confidence}" if ctx.config.confidence is not None else "")
        + f": a lie in {k} single entry view(s) is caught with probability {chance:.4f}; every entry of the lists and "
        "exports is compared by api_records"
    )


def _withheld_entries(ctx: AuditContext, h: Horizon, result: CheckResult) -> None:
    """The first entry of each batch the API must call withheld is not served."""
    withheld = withheld_of(ctx, h)
    for agency_id, anchors in sorted(withheld.by_agency.items()):
        for anchor in anchors:
            path = f"/entries/{anchor.seq}"
            item = fetch(ctx, result, NAME, path, anchor)
            if item is not None and item is not FAILED:
                result.add(Finding(
                    NAME, f"the API serves entry seq {anchor.seq}, the first of a batch of {agency_id} whose file "
                    "cannot be read: nobody can check what it says", **entry_pointer(anchor),
                    subject=f"GET /api/v1{path}", field="(whole)", expected=None, actual="an entry",
                ))


def _batches(ctx: AuditContext, h: Horizon, result: CheckResult, finality: Finality) -> None:
    model = ctx.model
    anchors = sorted(seq for seq in model.anchors if seq < h.count)
    if len(anchors) > BATCH_SAMPLE:
        anchors = sorted(ctx.rng("batch views").sample(anchors, BATCH_SAMPLE))
    withheld = withheld_of(ctx, h)
    for seq in anchors:
        anchor = model.anchors[seq]
        agency = code_text(anchor.agency_id)
        path = f"/batches/{seq}"
        subject = f"GET /api/v1{path}"
        item = fetch(ctx, result, NAME, path, anchor)
        if item is None:
            result.add(Finding(NAME, f"batch seq {seq}: the API answers 404, but it is anchored on chain",
                               **entry_pointer(anchor), subject=subject, field="(whole)"))
            continue
        if item is FAILED:
            continue
        if not isinstance(item, dict):
            result.add(Finding(NAME, f"batch seq {seq}: the answer is not a JSON object", **entry_pointer(anchor),
                               subject=subject, field="(whole)", actual=item))
            continue
        diffs = expected.differences(expected.batch(anchor, model), item)
        diffs += unfinal(finality, item, anchor, "final")
        seqs = withheld.seqs(agency)
        claim = item.get("withheld")
        if claim and seq in model.contents:
            diffs.append(("withheld", None, claim))  # its file matches the anchor: the batch can be indexed
        elif not claim and seqs is not None and seq in seqs:
            diffs.append(("withheld", "missing or impossible (its file cannot be read)", claim))
        if diffs:
            result.add(differs(NAME, anchor, f"batch seq {seq} of {agency}", diffs, subject))
    result.counts["batches_fetched"] = len(anchors)


def _pages(ctx: AuditContext, h: Horizon, result: CheckResult, finality: Finality) -> None:
    """Pages of the entry log at drawn cursors and sizes: exactly the entries following the cursor."""
    model = ctx.model
    seqs = population(model, h.count)
    if not seqs:
        return
    rng = ctx.rng("entry pages")
    shape_known = not withheld_of(ctx, h).unknown  # else the API may serve entries of batches the audit lacks
    for i in range(PAGE_DRAWS):
        limit = LOG_PAGE if i == 0 else rng.randint(1, MAX_PAGE)
        after = None if rng.random() < 0.25 else rng.choice(seqs)
        params = {"after": after, "limit": limit}
        subject = f"GET {ctx.api.path_of('/entries', params)}"
        try:
            page = ctx.api.get("/entries", params)
        except ApiError as exc:
            result.add(Finding(NAME, f"the API refused a page of the entry log: {exc.message}", subject=subject))
            continue
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            result.add(Finding(NAME, "a page of the entry log without items", subject=subject, field="items"))
            continue
        first = 0 if after is None else bisect.bisect_right(seqs, after)
        want = seqs[first:first + limit]
        got = [item.get("seq") if isinstance(item, dict) else None for item in items]
        # entries past the API's position read at the start (the index moved on, or is past the audited block) may
        # end a full page: they are left to an audit at a later block
        inside = [s for s in got if not (isinstance(s, int) and s >= h.count)]
        ok = inside == want or (len(got) == limit and got[:len(inside)] == inside == want[:len(inside)])
        if shape_known and not ok:
            result.add(Finding(NAME, f"a page of the entry log after seq {after} of {limit} entries holds seqs "
                               f"{_span(got)}; the chain's entries there are seqs {_span(want)}", subject=subject,
                               field="items (seqs)", expected=_span(want), actual=_span(got)))
        nxt = page.get("next")
        more = first + limit < len(seqs)
        if shape_known and got and (nxt not in (None, got[-1]) or (more and nxt is None)):
            result.add(Finding(NAME, f"a page of the entry log says next {nxt!r}, though "
                               + ("more entries follow" if more else f"its last entry is seq {got[-1]}"),
                               subject=subject, field="next", expected=got[-1] if more else None, actual=nxt))
        for item, seq in zip(items, got, strict=True):
            e = model.by_seq.get(seq) if isinstance(seq, int) and seq < h.count else None
            if e is not None:
                _compare(ctx, result, e, item, subject, finality)
    result.counts["entry_pages_fetched"] = PAGE_DRAWS


def _span(seqs: list[Any]) -> str:
    if not seqs:
        return "none"
    if all(isinstance(s, int) for s in seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs))):
        return f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0])
    shown = ", ".join(str(s) for s in seqs[:8])
    return shown + (f", … ({len(seqs)} in all)" if len(seqs) > 8 else "")


CHECK = Check(
    NAME,
    "Single entries, proofs and batches equal on-chain data",
    "What a person opens one at a time is what the chain says, not only the lists: GET /entries/{seq} and "
    "/entries/{seq}/proof for entries drawn from the audit's secret seed (100, or the number --confidence picks, and "
    "one of every batch), every field as on chain and each batched entry's Merkle proof verified against the "
    "anchored root; the first entry of a withheld batch is not served; GET /batches/{seq} for every batch, as on "
    "chain and withheld exactly when its file cannot be read; pages of the entry log at drawn cursors and page sizes "
    "(the page's 50 among them) hold exactly the entries after their cursor, each as on chain.",
    run,
    needs_api=True,
)
