"""Unpredictable samples: the case views and the metric selections the auditor looks at are drawn from a secret seed,
so an operator who reads the auditor's source still cannot know where to lie; the chance of catching a lie follows
the hypergeometric formula of ``ledger.audit.sampling`` (measured here over 20 seeds); ``--seed`` replays a run's
samples exactly, and ``--confidence`` picks the sample size as documented."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from ledger.audit.apiread import PublicApi
from ledger.audit.batchfiles import anchors_of, load, source_for
from ledger.audit.chainread import ChainReader
from ledger.audit.checks import run_check
from ledger.audit.checks.api_records import case_sample_size, sample_cases
from ledger.audit.context import AuditContext
from ledger.audit.rebuild import rebuild
from ledger.audit.rpc import Rpc
from ledger.audit.sampling import InvalidSampling, catch_chance, miss_chance, sample_size
from tests.support.honest import HonestLedger
from tests.support.lying import lying
from tests.support.sampling import reseeded
from tests.support.tamper import query

SEEDS = range(20)

# --- the formula ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("population", "lies", "confidence", "n"), [
    (1000, 1, 0.9, 900), (1000, 1, 0.99, 990), (1000, 10, 0.9, 205), (1000, 10, 0.99, 368),
    (1000, 100, 0.9, 22), (1000, 100, 0.99, 43), (100_000, 10, 0.99, 36_903), (100_000, 100, 0.99, 4_499),
])
def test_sample_size_is_the_least_n_reaching_the_confidence(population: int, lies: int, confidence: float,
                                                            n: int) -> None:
    assert sample_size(population, lies, confidence) == n
    assert catch_chance(population, lies, n) >= confidence > catch_chance(population, lies, n - 1)


def test_one_lie_in_n_of_n_is_caught_with_probability_n_over_n() -> None:
    assert miss_chance(400, 1, 100) == Fraction(3, 4)
    assert catch_chance(10, 3, 10) == 1.0 and catch_chance(10, 3, 0) == 0.0
    assert sample_size(0, 1, 0.99) == 0


@pytest.mark.parametrize(("call", "message"), [
    (lambda: sample_size(100, 1, 1.0), "strictly between 0 and 1"),
    (lambda: sample_size(100, 0, 0.9), "at least 1"),
    (lambda: miss_chance(-1, 1, 1), "must not be negative"),
    (lambda: miss_chance(10, 1, -1), "must not be negative"),
])
def test_impossible_sampling_is_refused_saying_why(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(InvalidSampling, match=message):
        call()


# --- against the honest ledger's API ----------------------------------------------------------------------------------


@contextmanager
def audit_context(h: HonestLedger, wrap: Callable[[FastAPI], Any] | None = None,
                  **config: Any) -> Iterator[AuditContext]:
    """The audit's context over the honest chain and its real API (lying through `wrap`), read once; each seed's run
    of a check then costs only the check."""
    rpc = Rpc(h.url)
    reader = ChainReader(rpc, h.ledger.address)
    chain = reader.read()
    source = source_for(str(h.batch_dir), None, 60.0)
    assert source is not None
    try:
        outcomes = load(anchors_of(chain.entries), source)
    finally:
        source.close()
    contents = {seq: o.content for seq, o in outcomes.items() if o.content is not None}
    with h.api(wrap=wrap) as client:
        api = PublicApi(client=client)
        ctx = AuditContext(config=h.config(**config), chain=chain, model=rebuild(chain.entries, contents),
                           reader=reader, api=api, batch_files=outcomes, batch_source=source.description)
        try:
            yield ctx
        finally:
            rpc.close()


def one_case_view_lie(h: HonestLedger) -> tuple[str, Callable[[FastAPI], None]]:
    """The API lies in one case view alone (a fulfilled case served as rejected): the last case, by id, of the agency
    with the most cases — a case the old fixed hash order would not have put first."""
    agency, case = query(h.index_path, "SELECT agency_id, case_id FROM cases WHERE status = 'fulfilled' "
                               "ORDER BY case_id DESC")[0]
    path = f"/api/v1/cases/{agency}/0x{case.hex()}"

    def change(body: Any, request: Request) -> Any:
        body["status"] = "rejected"
        return body

    return path, lying(path, change)


def caught_case_lie(ctx: AuditContext, path: str) -> bool:
    result = run_check("api_records", ctx)
    assert all(f.subject == f"GET {path}" for f in result.findings), [f.message for f in result.findings]
    return any(f.subject == f"GET {path}" and f.field == "status" for f in result.findings)


@pytest.mark.slow
def test_operator_lying_in_one_case_view_outside_a_fixed_sample_is_caught(honest: HonestLedger) -> None:
    path, wrap = one_case_view_lie(honest)
    with audit_context(honest, wrap) as ctx:
        population = len(ctx.model.cases)
        default_n = min(ctx.config.case_sample, population)
        at_default = sum(caught_case_lie(reseeded(ctx, seed), path) for seed in SEEDS)
        quarter = population // 4
        ctx.config.case_sample = quarter
        at_quarter = sum(caught_case_lie(reseeded(ctx, seed), path) for seed in SEEDS)
    expected = catch_chance(population, 1, quarter)
    assert at_default == len(SEEDS), (
        f"default sample n={default_n} of N={population}: caught {at_default}/20 "
        f"(formula {catch_chance(population, 1, default_n):.2f})"
    )
    # 20 draws of a 1-in-4 chance: 5 expected; 1 to 11 holds with probability > 0.99
    assert 1 <= at_quarter <= 11, (
        f"n={quarter} of N={population}: caught {at_quarter}/20 = {at_quarter / 20:.2f}, formula {expected:.3f}"
    )


@pytest.mark.slow
def test_operator_serving_a_false_on_time_rate_only_for_district_and_channel_is_caught(honest: HonestLedger) -> None:
    def false_rate(body: Any, request: Request) -> Any:
        if "district" in request.query_params and "channel" in request.query_params:
            body["metrics"]["on_time_rate"] = "0.9999"
        return body

    with audit_context(honest, lying("/api/v1/metrics", false_rate)) as ctx:
        caught = 0
        for seed in SEEDS:
            result = run_check("metrics_reproduced", reseeded(ctx, seed))
            hits = [f for f in result.findings if f.field == "on_time_rate"]
            assert all("district=" in (f.subject or "") and "channel=" in (f.subject or "") for f in hits)
            caught += bool(hits)
    # every pair of dimensions is in at least one drawn selection: the district-and-channel lie is always drawn
    assert caught == len(SEEDS), f"caught in {caught}/20 runs"


@pytest.mark.slow
def test_same_seed_replays_the_same_samples_and_another_seed_does_not(honest: HonestLedger) -> None:
    asked: list[str] = []

    def record(app: FastAPI) -> None:
        @app.middleware("http")
        async def log(request: Request, call_next: Any) -> Response:
            asked.append(str(request.url.path) + "?" + str(request.url.query))
            return await call_next(request)  # type: ignore[no-any-return]

    runs: list[tuple[list[str], Any, Any]] = []
    for seed in (7, 7, 8):
        asked.clear()
        report = honest.audit(wrap=record, case_sample=30, seed=seed)
        sampled = sorted(a for a in asked if a.startswith(("/api/v1/cases/", "/api/v1/metrics", "/api/v1/scorecards")))
        runs.append((sampled, report.target["seed"], report.check("api_records").notes))
        assert report.exit_code == 0
    assert runs[0] == runs[1]
    assert runs[0][1] == 7 and runs[2][1] == 8
    assert runs[0][0] != runs[2][0]
    assert not any("seed" in a for a in runs[0][0])  # the seed is never sent to the API


def test_confidence_picks_the_sample_size_as_documented(honest: HonestLedger) -> None:
    ctx = AuditContext.for_entries([], config=honest.config(confidence=0.99, assume_lies=10))
    assert case_sample_size(ctx, 1000) == 368 == sample_size(1000, 10, 0.99)
    ctx.config.confidence = None
    ctx.config.case_sample = 25
    assert case_sample_size(ctx, 1000) == 25


@pytest.mark.slow
def test_confidence_sample_is_drawn_and_reported(honest: HonestLedger) -> None:
    report = honest.audit(honest.index_path, confidence=0.9, assume_lies=10, seed=3)
    views = report.target["case_views"]
    assert views["sample"] == sample_size(views["population"], 10, 0.9)
    assert views["catch_chance"] >= 0.9 and report.exit_code == 0
    assert report.check("api_records").counts["case_views_compared"] == views["sample"]


def test_samples_are_drawn_from_the_seed_not_from_the_ids(honest: HonestLedger) -> None:
    with audit_context(honest) as ctx:
        draws = {tuple(r.case_id for r in sample_cases(ctx.model, 10, reseeded(ctx, s).rng("case views"))[0])
                 for s in range(5)}
        again = tuple(r.case_id for r in sample_cases(ctx.model, 10, reseeded(ctx, 0).rng("case views"))[0])
    assert len(draws) == 5
    assert again in draws
