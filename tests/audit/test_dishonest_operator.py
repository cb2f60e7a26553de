"""The dishonest operator: an operator who has read the auditor's source lies where it hopes the auditor does not
look. For each kind of lie, the audit fails with the check whose job it is, over 20 secret seeds (0 … 19), each
finding naming the path and the field; no other finding appears (so the honest surfaces stay clean on every seed).

- Broad lies — every open Open311 request reported closed, every receipt view showing its case otherwise, one
  commitment's trend (the page's chart), an agency moved in or out of a ranking, an agency's page (its key history,
  its commitments), a batch endpoint, the page's 50-entry log pages, an index frozen before an embarrassing block
  (behind, or claiming the latest block) —
  are caught on every seed.
- A lie in one single entry (``/entries/{seq}``) or one batched entry's proof (``/entries/{seq}/proof``) is a
  single-view lie: those views are sampled, so it is caught with the chance the hypergeometric formula gives
  (docs/audit-guide.md), exactly on the seeds whose sample holds it; the rate is measured, printed and held to a
  binomial band around the theory.

Already measured over the same 20 seeds elsewhere, not repeated here: a lie in one case view outside any fixed sample
(``tests/audit/test_sampling.py::test_operator_lying_in_one_case_view_outside_a_fixed_sample_is_caught``) and a false
figure served only for district and channel together
(``::test_operator_serving_a_false_on_time_rate_only_for_district_and_channel_is_caught``). An honest ledger passes
with zero findings — every check, these included — at the latest block, at a past block and through a lagging node:
``tests/audit/test_position.py::test_honest_ledger_at_the_latest_block_has_zero_findings``,
``::test_honest_ledger_audited_at_a_past_block_has_zero_findings``,
``::test_honest_ledger_through_a_node_behind_the_api_has_zero_findings``.

Each context is built once (chain read, state rebuilt, the lying API up) and only the relevant check is run per seed
(``ledger.audit.checks.run_check``); checks whose sample size does not bear on the lie run with a small case sample.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from math import exp, lgamma, log, log1p
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from ledger.audit.apiread import PublicApi
from ledger.audit.batchfiles import anchors_of, load, source_for
from ledger.audit.chainread import ChainReader
from ledger.audit.checks import run_check
from ledger.audit.checks.entry_views import entry_sample_size, population, sample_entries
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import rebuild
from ledger.audit.rpc import Rpc
from ledger.records import CaseAction
from tests.support.honest import HonestLedger, chain_state, later, opened
from tests.support.lying import all_closed_json, all_closed_xml, lying, lying_open311
from tests.support.sampling import reseeded
from tests.support.tamper import tampered

pytestmark = pytest.mark.slow

SEEDS = range(20)
Wrap = Callable[[FastAPI], Any]


@contextmanager
def operator(h: HonestLedger, index: Path | None = None, wraps: tuple[Wrap, ...] = (),
             **config: Any) -> Iterator[AuditContext]:
    """The audit's context over the chain as it is and the real API serving `index` (default: the honest one), made
    to lie by `wraps`; batch files read from the API, as by default. Read once: each seed then costs one check."""
    rpc = Rpc(h.url)
    reader = ChainReader(rpc, h.ledger.address)

    def wrap(app: FastAPI) -> None:
        for one in wraps:
            one(app)

    try:
        with h.api(index, wrap=wrap) as client:
            api = PublicApi(client=client)
            facts = api.get("/chain")
            chain = reader.read()
            source = source_for(None, api)
            assert source is not None
            outcomes = load(anchors_of(chain.entries), source)
            contents = {seq: o.content for seq, o in outcomes.items() if o.content is not None}
            ctx = AuditContext(config=h.config(batches=None, **config), chain=chain,
                               model=rebuild(chain.entries, contents), reader=reader, api=api, batch_files=outcomes,
                               batch_source=source.description, batches_from_api=True)
            ctx.cache["api_chain_facts"] = facts
            yield ctx
    finally:
        rpc.close()


def each_seed(ctx: AuditContext, check: str) -> Iterator[tuple[int, CheckResult]]:
    """`check` run on `ctx` under each seed (the API's position read afresh each time)."""
    facts = ctx.cache.get("api_chain_facts")
    for seed in SEEDS:
        reseeded(ctx, seed)
        if facts is not None:
            ctx.cache["api_chain_facts"] = facts
        yield seed, run_check(check, ctx)


def only(result: CheckResult, allowed: Callable[[Finding], bool]) -> None:
    """Every finding of `result` is one of the lie's (`allowed`): nothing honest is reported."""
    strays = [f"{f.subject} {f.field}: {f.message}" for f in result.findings if not allowed(f)]
    assert not strays, strays


def band(n: int, p: float, tail: float = 0.001) -> tuple[int, int]:
    """The counts of n draws with chance p each that hold with probability at least 1 - 2·tail: (lo, hi) with
    P(X < lo) <= tail and P(X > hi) <= tail (binomial; in logs, so that n may be large)."""
    pmf = [exp(lgamma(n + 1) - lgamma(x + 1) - lgamma(n - x + 1) + x * log(p) + (n - x) * log1p(-p))
           for x in range(n + 1)]
    lo = 0
    while sum(pmf[: lo + 1]) <= tail:
        lo += 1
    hi = n
    while sum(pmf[hi:]) <= tail:
        hi -= 1
    return lo, hi


# --- broad lies: caught on every seed -------------------------------------------------------------------------------


def test_every_open_open311_request_reported_closed_is_caught_on_every_seed(honest: HonestLedger) -> None:
    """JSON and XML alike: in the single requests (20 drawn) and the request lists (8 drawn filters)."""
    wrap = lying_open311("/open311/v2/requests", json_change=all_closed_json, xml_change=all_closed_xml)
    caught = 0
    with operator(honest, wraps=(wrap,), case_sample=20) as ctx:
        for _, result in each_seed(ctx, "open311"):
            only(result, lambda f: f.field == "status" and f.actual == "closed"
                 and (f.subject or "").startswith("GET /open311/v2/requests"))
            formats = {fmt for fmt in ("JSON", "XML") for f in result.findings if f"({fmt})" in f.message}
            caught += formats == {"JSON", "XML"}
    assert caught == len(SEEDS)


def test_receipt_views_showing_every_case_otherwise_are_caught_on_every_seed(honest: HonestLedger) -> None:
    """Every receipt view shows its case open when it is closed, and fulfilled when it is open."""

    def flipped(body: Any, request: Request) -> Any:
        body["status"] = "fulfilled" if body["status"] in ("open", "on_hold") else "open"
        return body

    def wrap(app: FastAPI) -> None:
        @app.middleware("http")
        async def lie(request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            if not request.url.path.startswith("/api/v1/receipts/") or response.status_code != 200:
                return response
            body = b"".join([chunk async for chunk in response.body_iterator])
            return Response(json.dumps(flipped(json.loads(body), request)), media_type="application/json")

    caught = 0
    with operator(honest, wraps=(wrap,), case_sample=20) as ctx:
        for _, result in each_seed(ctx, "receipt_views"):
            only(result, lambda f: (f.subject or "").startswith("GET /api/v1/receipts/") and f.field == "status")
            caught += len(result.findings) == result.counts["receipt_views_compared"] > 0
    assert caught == len(SEEDS)


def test_a_lie_in_one_commitments_trend_is_caught_on_every_seed(honest: HonestLedger) -> None:
    """The chart of one quiet commitment (not the busiest, whose trend was the only one compared before) shows a
    near-perfect on-time rate in every bucket, for whatever range and bucket length it is asked."""
    with operator(honest) as plain:
        model = plain.model
    cases = {key: sum(1 for r in model.case_rows if (r.agency_id, r.commitment_id) == key)
             for key, c in model.commitments.items() if c.versions}
    agency, commitment = min((n, key) for key, n in cases.items() if n > 0)[1]
    path = f"/api/v1/commitments/{agency}/{commitment}/trend"

    def flattering(body: Any, request: Request) -> Any:
        for bucket in body["buckets"]:
            bucket["on_time_rate"] = bucket["metrics"]["on_time_rate"] = "0.9999"
        return body

    caught = 0
    with operator(honest, wraps=(lying(path, flattering),), metric_sample=0, scorecard_sample=0) as ctx:
        for _, result in each_seed(ctx, "metrics_reproduced"):
            only(result, lambda f: (f.subject or "").startswith(f"{path}?")
                 and (f.field or "").endswith("on_time_rate") and f.actual == "0.9999")
            fields = {f.field.split(".", 1)[1] for f in result.findings}
            caught += fields == {"on_time_rate", "metrics.on_time_rate"}
    assert caught == len(SEEDS)


def test_a_lie_in_the_rankings_is_caught_on_every_seed(honest: HonestLedger) -> None:
    """The scorecards' figures stay honest, but the operator moves the first agency in or out of the on-time ranking
    (ranked first when it rests on too few cases, or left out when it is ranked) and says rankings need 5 cases."""

    def reranked(body: Any, request: Request) -> Any:
        if body["items"] and request.query_params.get("by") == "agency":
            ranks = body["items"][0]["ranks"]
            ranks["deadline_rate"] = 1 if ranks["deadline_rate"] is None else None
            body["min_ranked_sample"] = 5
        return body

    caught = 0
    with operator(honest, wraps=(lying("/api/v1/scorecards", reranked),), metric_sample=0) as ctx:
        for _, result in each_seed(ctx, "metrics_reproduced"):
            only(result, lambda f: (f.subject or "").startswith("/api/v1/scorecards?by=agency")
                 and f.field in ("ranks.deadline_rate", "min_ranked_sample"))
            caught += {f.field for f in result.findings} == {"ranks.deadline_rate", "min_ranked_sample"}
    assert caught == len(SEEDS)


def test_a_lie_in_an_agency_page_is_caught_on_every_seed(honest: HonestLedger) -> None:
    """The roads office's page hides its revoked key; the sanitation office's page hides its retired commitment (the
    lists the auditor compared before stay honest)."""

    def no_revocation(body: Any, request: Request) -> Any:
        body["key_history"] = [change for change in body["key_history"] if change["action"] != "revoked"]
        return body

    def no_retired(body: Any, request: Request) -> Any:
        if request.query_params.get("agency_id") == "DEMO-SANITATION":
            body["items"] = [item for item in body["items"] if not item["retired"]]
        return body

    wraps = (lying("/api/v1/agencies/DEMO-ROADS", no_revocation), lying("/api/v1/commitments", no_retired))
    keys = commitments = 0
    with operator(honest, wraps=wraps, case_sample=20) as ctx:
        for _, result in each_seed(ctx, "api_records"):
            only(result, lambda f: f.subject in ("GET /api/v1/agencies/DEMO-ROADS",
                                                 "GET /api/v1/commitments?agency_id=DEMO-SANITATION"))
            keys += any(f.field == "key_history (length)" and f.seq == honest.seqs["spare revoked"]
                        for f in result.findings)
            commitments += any(f.field == "items" and f.expected == "OLD-SERVICE"
                               and f.seq == honest.seqs["retired"] - 1 for f in result.findings)  # its version
    assert keys == commitments == len(SEEDS)


def test_a_lie_in_a_batch_endpoint_or_the_pages_log_is_caught_on_every_seed(honest: HonestLedger) -> None:
    """``/batches/{seq}`` gives the hotline batch another root, and the log's pages of 50 (what the page's ``#/log``
    asks for) another running hash: every batch is fetched, and a page of 50 is always drawn."""
    batch = honest.seqs["hotline batch"]

    def other_root(body: Any, request: Request) -> Any:
        body["root"] = "0x" + "ab" * 32
        return body

    def other_heads(body: Any, request: Request) -> Any:
        if request.query_params.get("limit") == "50":
            for item in body["items"]:
                item["running_hash"] = "0x" + "cd" * 24
        return body

    wraps = (lying(f"/api/v1/batches/{batch}", other_root), lying("/api/v1/entries", other_heads))
    roots = pages = 0
    with operator(honest, wraps=wraps) as ctx:
        for _, result in each_seed(ctx, "entry_views"):
            only(result, lambda f: (f.subject == f"GET /api/v1/batches/{batch}" and f.field == "root")
                 or ("limit=50" in (f.subject or "") and f.field == "running_hash"))
            roots += any(f.field == "root" and f.seq == batch for f in result.findings)
            pages += any(f.field == "running_hash" for f in result.findings)
    assert roots == pages == len(SEEDS)


@pytest.mark.parametrize("freeze", ["60 blocks behind", "claiming the latest block"])
def test_an_index_frozen_before_an_embarrassing_block_is_caught_on_every_seed(
    honest: HonestLedger, tmp_path: Path, freeze: str
) -> None:
    """The index stops before a case's rejection; then 58 empty blocks pass — or it says it has read every block."""
    with chain_state(honest):
        if freeze == "60 blocks behind":
            index = honest.index_copy(tmp_path)
        t = honest.now()
        honest.write(opened("embarrassing", t), at=t + 60)
        honest.write(later("embarrassing", CaseAction.REJECTED, t + 60), at=t + 120)
        if freeze == "60 blocks behind":
            honest.chain.w3.provider.make_request("anvil_mine", [hex(58)])
        else:
            index = tampered(honest, tmp_path, ("UPDATE sync_state SET last_block = ?",
                                                (int(honest.chain.w3.eth.block_number),)))
        caught = 0
        with operator(honest, index, case_sample=20) as ctx:
            for _, result in each_seed(ctx, "api_records"):
                only(result, lambda f: f.subject == "GET /api/v1/chain" and f.field == "last_indexed_block")
                caught += len(result.findings) == 1
    assert caught == len(SEEDS)


# --- single-view lies: caught as often as the sample looks ------------------------------------------------------------


def test_a_lie_in_one_single_entry_or_one_proof_is_caught_as_the_formula_says(honest: HonestLedger) -> None:
    """``/entries/{seq}`` of one plain entry serves another record hash, and ``/entries/{seq}/proof`` of one batched
    entry a Merkle proof that does not lead to the anchored root (the lists stay honest). A single entry view is
    caught when the drawn sample holds it: n of N for the plain entry; for the batched one, the n or the one entry
    drawn from its batch (1 − (1 − n/N)(1 − 1/c), c its batch's size)."""
    plain = honest.seqs["relayed"]
    batched = honest.seqs["hotline batch"] + 5
    count = honest.seqs["hotline batch count"]

    def other_record(body: Any, request: Request) -> Any:
        body["record_hash"] = "0x" + "ee" * 32
        return body

    def broken_branch(body: Any, request: Request) -> Any:
        body["batch"]["merkle_proof"][0] = "0x" + "11" * 32
        return body

    wraps = (lying(f"/api/v1/entries/{plain}", other_record), lying(f"/api/v1/entries/{batched}/proof", broken_branch))
    caught: dict[str, list[bool]] = {"entry": [], "proof": []}
    looked: dict[str, list[bool]] = {"entry": [], "proof": []}
    with operator(honest, wraps=wraps) as ctx:
        seqs = population(ctx.model, ctx.model.count)
        n = entry_sample_size(ctx, len(seqs))
        for seed, result in each_seed(ctx, "entry_views"):
            only(result, lambda f: (f.subject, f.field) in {(f"GET /api/v1/entries/{plain}", "record_hash"),
                                                            (f"GET /api/v1/entries/{batched}/proof",
                                                             "batch.merkle_proof")})
            caught["entry"].append(any(f.seq == plain for f in result.findings))
            caught["proof"].append(any(f.seq == batched and "does not lead to the anchored root" in f.message
                                       for f in result.findings))
            drawn = set(sample_entries(ctx.model, seqs, n, reseeded(ctx, seed).rng("entry views"))[0])
            looked["entry"].append(plain in drawn)
            looked["proof"].append(batched in drawn)
        # the sample itself, over many more seeds (no request): uniform, as the formula assumes
        many = 2000
        hits = {"entry": 0, "proof": 0}
        for seed in range(many):
            drawn = set(sample_entries(ctx.model, seqs, n, reseeded(ctx, 1000 + seed).rng("entry views"))[0])
            hits["entry"] += plain in drawn
            hits["proof"] += batched in drawn
    assert caught == looked  # caught exactly when looked at: no lie in a view that is compared escapes
    theory = {"entry": n / len(seqs), "proof": 1 - (1 - n / len(seqs)) * (1 - 1 / count)}
    for lie in ("entry", "proof"):
        rate = sum(caught[lie]) / len(SEEDS)
        lo, hi = band(len(SEEDS), theory[lie])
        print(f"single {lie} view lie, default sample n={n} of N={len(seqs)}: caught in {sum(caught[lie])}/20 seeds "
              f"= {rate:.2f} (formula {theory[lie]:.3f}; band {lo}-{hi}); sample holds it in "
              f"{hits[lie]}/{many} seeds = {hits[lie] / many:.3f}")
        assert lo <= sum(caught[lie]) <= hi
        many_lo, many_hi = band(many, theory[lie])
        assert many_lo <= hits[lie] <= many_hi
