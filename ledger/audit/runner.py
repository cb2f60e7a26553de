"""Run the audit: read the chain (and the public API's own account of its position, first), rebuild the state,
run every check of ``ledger.audit.checks.CHECKS`` in order, and assemble the report."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from ledger.audit.apiread import ApiError, PublicApi
from ledger.audit.batchfiles import anchors_of, load, source_for
from ledger.audit.build import BackgroundBuild
from ledger.audit.chainread import ChainReader
from ledger.audit.checks import CHECKS
from ledger.audit.context import AuditConfig, AuditContext
from ledger.audit.errors import CannotAudit
from ledger.audit.model import AuditReport, CheckResult
from ledger.audit.rebuild import rebuild
from ledger.audit.rpc import Rpc

TOOL = "civic-audit 0.1.0"

#: progress(stage, done, total): stages "logs", "headers", "rebuild", then "check <title>" per check
Progress = Callable[[str, int, int], None]


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_audit(
    config: AuditConfig,
    *,
    api_client: httpx.Client | None = None,
    compiled: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    """Audit the ledger `config` names. `api_client` serves the public API in place of ``config.api_url`` (tests);
    `compiled` is a fresh build made beforehand (else one is made now, in the background, unless
    ``config.compile`` is off). Raises :class:`CannotAudit` when the audit cannot run at all."""
    report_progress = progress or (lambda stage, done, total: None)
    started, clock = int(time.time()), time.perf_counter()
    rpc = Rpc(config.rpc_url, timeout=config.timeout)
    reader = ChainReader(
        rpc, config.contract, expected_chain_id=config.chain_id, from_block=config.from_block,
        to_block=config.to_block, progress=report_progress,
    )
    try:
        reader.preflight()  # a wrong chain or a dead node stops here, before the build starts
    except CannotAudit:
        rpc.close()
        raise
    api = None
    if config.api_url or api_client is not None:
        api = PublicApi(config.api_url, client=api_client, timeout=config.timeout,
                        max_response_bytes=config.max_response_bytes, max_export_bytes=config.max_export_bytes)
    build: Callable[[], dict[str, Any]] | None
    if isinstance(compiled, dict):
        build = lambda: compiled  # noqa: E731
    elif compiled is not None:
        build = compiled
    elif config.compile:
        # overlaps with reading the chain
        build = BackgroundBuild(Path(config.build_cache) if config.build_cache else None,
                                use_cache=config.use_build_cache)
    else:
        build = None
    try:
        facts = None
        if api is not None:
            try:
                facts = api.get("/chain")
            except ApiError as exc:
                raise CannotAudit(f"the public API at {api.where} cannot be audited: {exc}") from exc
        # Hundreds of thousands of small objects and no reference cycles: the cyclic collector would spend a third
        # of the time walking them (as in the indexer), so it is paused while they are made.
        with gc_paused():
            chain = reader.read()
            # Batch anchors stand for the events of their published files: fetched and checked before the rebuild.
            anchors = anchors_of(chain.entries)
            source = source_for(config.batches, api, config.timeout)
            outcomes = None
            if source is not None:
                try:
                    report_progress("batches", 0, len(anchors))
                    outcomes = load(anchors, source)
                    report_progress("batches", len(anchors), len(anchors))
                finally:
                    source.close()
            contents = {seq: o.content for seq, o in (outcomes or {}).items() if o.content is not None}
            report_progress("rebuild", 0, 1)
            model = rebuild(chain.entries, contents)
            report_progress("rebuild", 1, 1)
        ctx = AuditContext(config=config, chain=chain, model=model, reader=reader, api=api, compiled=build,
                           batch_files=outcomes, batch_source=None if source is None else source.description,
                           batches_from_api=api is not None and source is not None and source.serves(api))
        if facts is not None:
            ctx.cache["api_chain_facts"] = facts
        results: dict[str, CheckResult] = {}
        errors: list[str] = []
        # The code check waits for the compiler: it runs last, so the others overlap with the build.
        order = sorted(CHECKS, key=lambda c: c.name == "contract_code")
        for i, check in enumerate(order):
            report_progress(f"check {check.title}", i, len(CHECKS))
            result = check.new_result(config.max_findings)
            begun = time.perf_counter()
            if check.needs_api and api is None:
                result.skip("no public API given (--api): nothing to compare with")
            else:
                try:
                    check.run(ctx, result)
                except CannotAudit:
                    raise
                except Exception as exc:  # a check that breaks must never look like one that passed
                    result.skip(f"the check could not complete: {type(exc).__name__}: {exc}")
                    errors.append(f"{check.name}: {type(exc).__name__}: {exc}")
                else:
                    result.settle()
            result.seconds = time.perf_counter() - begun
            results[check.name] = result
        report_progress("done", len(CHECKS), len(CHECKS))
        days = Counter((e.block_time or 0) // 86_400 for e in model.entries)
        per_day = {datetime.fromtimestamp(day * 86_400, timezone.utc).date().isoformat(): n for day, n in days.items()}
        stats = dict(ctx.stats)
        stats["entries_per_day"] = dict(sorted(per_day.items()))
        ordered = [results[c.name] for c in CHECKS]
        stats["findings_per_check"] = {r.name: r.finding_total() for r in ordered}
        stats["entries_by_kind"] = dict(Counter(e.kind.name.lower() for e in model.entries))
        if model.anchors:
            stats["batches"] = {"anchored": len(model.anchors), "read": len(model.contents),
                                "batched_entries": sum(a.record["count"] for a in model.anchors.values())}
        stats["cases"] = len(model.cases)
        stats["log_seconds"] = round(chain.seconds, 3)
        target = {
            "rpc": chain.rpc_where,
            "chain_id": chain.chain_id,
            "contract": chain.address,
            "block_number": chain.block_number,
            "block_hash": "0x" + chain.block_hash.hex(),
            "block_time": chain.block_time,
            "from_block": chain.from_block,
            "entry_count": chain.contract_count,
            "running_hash": "0x" + chain.contract_head.hex(),
            "api": api.where if api is not None else None,
            "batches": ctx.batch_source,
            "case_sample": config.case_sample,
            "case_views": ctx.stats.get("case_views"),
            "confidence": config.confidence,
            "assume_lies": config.assume_lies,
            "max_lag_blocks": config.max_lag_blocks,
            "max_lag_seconds": config.max_lag_seconds,
            # the seed every sample was drawn from: published only now, with the report, so that the operator could
            # not know the samples while they were taken, and anyone can replay them (--seed)
            "seed": config.seed,
            "thresholds": config.thresholds.to_dict(),
        }
        return AuditReport(TOOL, target, ordered, started, time.perf_counter() - clock, stats, errors)
    finally:
        rpc.close()
        if api is not None and api_client is None:
            api.close()
