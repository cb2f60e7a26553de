"""Run the audit: read the chain (and the public API's own account of its position, first), rebuild the state,
run every check of ``ledger.audit.checks.CHECKS`` in order, and assemble the report."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ledger.audit.apiread import ApiError, PublicApi
from ledger.audit.batchfiles import BatchOutcome, BatchSource, anchors_of, load, source_for
from ledger.audit.build import BackgroundBuild
from ledger.audit.chainread import ChainReader
from ledger.audit.checks import CHECKS
from ledger.audit.context import AuditConfig, AuditContext
from ledger.audit.errors import CannotAudit
from ledger.audit.model import AuditReport, CheckResult
from ledger.audit.rebuild import rebuild
from ledger.audit.rpc import Rpc
from ledger.batches.read import BatchContent
from ledger.chain.logs import DecodedEntry

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
    api = open_api(config, api_client)
    build = build_of(config, compiled)
    try:
        facts = api_position(api)
        # Hundreds of thousands of small objects and no reference cycles: the cyclic collector would spend a third
        # of the time walking them (as in the indexer), so it is paused while they are made.
        with gc_paused():
            chain = reader.read()
            # Batch anchors stand for the events of their published files: fetched and checked before the rebuild.
            batches = fetch_batches(anchors_of(chain.entries), config, api, report_progress)
            report_progress("rebuild", 0, 1)
            model = rebuild(chain.entries, batches.contents)
            report_progress("rebuild", 1, 1)
        ctx = AuditContext(config=config, chain=chain, model=model, reader=reader, api=api, compiled=build,
                           batch_files=batches.outcomes, batch_source=batches.source,
                           batches_from_api=batches.from_api)
        if facts is not None:
            ctx.cache["api_chain_facts"] = facts
        results, errors = run_checks(ctx, report_progress)
        return make_report(ctx, results, errors, started, time.perf_counter() - clock)
    finally:
        rpc.close()
        if api is not None and api_client is None:
            api.close()


# The pieces of an audit, for the one-shot run above and the monitor (ledger.audit.monitor), which reads the chain a
# piece at a time and keeps its model between rounds.


def open_api(config: AuditConfig, api_client: httpx.Client | None = None) -> PublicApi | None:
    """The careful client of the public API `config` names (through `api_client` when given), or None."""
    if not config.api_url and api_client is None:
        return None
    return PublicApi(config.api_url, client=api_client, timeout=config.timeout,
                     max_response_bytes=config.max_response_bytes, max_export_bytes=config.max_export_bytes)


def build_of(
    config: AuditConfig, compiled: dict[str, Any] | Callable[[], dict[str, Any]] | None
) -> Callable[[], dict[str, Any]] | None:
    """What the code check waits for: `compiled` as given, else a build started now in the background (it overlaps
    with reading the chain) unless compiling is off."""
    if isinstance(compiled, dict):
        return lambda: compiled
    if compiled is not None:
        return compiled
    if config.compile:
        return BackgroundBuild(Path(config.build_cache) if config.build_cache else None,
                               use_cache=config.use_build_cache)
    return None


def api_position(api: PublicApi | None) -> dict[str, Any] | None:
    """The API's own account of its position (``/chain``), read before the chain; None without an API."""
    if api is None:
        return None
    try:
        return api.get("/chain")
    except ApiError as exc:
        raise CannotAudit(f"the public API at {api.where} cannot be audited: {exc}") from exc


@dataclass
class Batches:
    """Anchored batches' files as fetched and checked: the outcome of each (None: no source of files), their checked
    contents, by the anchor's seq, and where they were read from."""

    outcomes: dict[int, BatchOutcome] | None
    contents: dict[int, BatchContent]
    source: str | None
    from_api: bool


def fetch_batches(anchors: list[DecodedEntry], config: AuditConfig, api: PublicApi | None,
                  progress: Progress | None = None, *, keep: dict[int, tuple[str, bytes]] | None = None) -> Batches:
    """Fetch and check the files of `anchors` from the source ``config.batches`` names (by default the API).
    `keep`: filled with where each file was read from and its exact bytes, by the anchor's seq."""
    report_progress = progress or (lambda stage, done, total: None)
    found = source_for(config.batches, api, config.timeout)
    if found is None:
        return Batches(None, {}, None, False)
    source = found if keep is None else _Keeping(found, keep)
    try:
        report_progress("batches", 0, len(anchors))
        outcomes = load(anchors, source) if anchors else {}
        report_progress("batches", len(anchors), len(anchors))
    finally:
        source.close()
    contents = {seq: o.content for seq, o in outcomes.items() if o.content is not None}
    return Batches(outcomes, contents, source.description, api is not None and source.serves(api))


class _Keeping(BatchSource):
    """A source that keeps what it fetched."""

    def __init__(self, source: BatchSource, kept: dict[int, tuple[str, bytes]]) -> None:
        self.source, self.kept, self.description = source, kept, source.description

    def fetch(self, anchor: DecodedEntry) -> tuple[str, bytes | None]:
        where, content = self.source.fetch(anchor)
        if content is not None:
            self.kept[anchor.seq] = (where, content)
        return where, content

    def serves(self, api: PublicApi) -> bool:
        return self.source.serves(api)

    def close(self) -> None:
        self.source.close()


def run_checks(
    ctx: AuditContext,
    progress: Progress | None = None,
    *,
    done: Mapping[str, CheckResult] | None = None,
    leave: Mapping[str, str] | None = None,
) -> tuple[list[CheckResult], list[str]]:
    """Run every check of ``CHECKS`` on `ctx`: their results (in ``CHECKS`` order) and the checks that could not
    complete. `done`: results made elsewhere, taken as they are; `leave`: checks not run, each reported skipped with
    the reason given."""
    report_progress = progress or (lambda stage, done, total: None)
    done, leave = done or {}, leave or {}
    api, config = ctx.api, ctx.config
    results: dict[str, CheckResult] = dict(done)
    errors: list[str] = []
    # The code check waits for the compiler: it runs last, so the others overlap with the build.
    order = sorted((c for c in CHECKS if c.name not in done), key=lambda c: c.name == "contract_code")
    for i, check in enumerate(order):
        report_progress(f"check {check.title}", i, len(order))
        result = check.new_result(config.max_findings)
        begun = time.perf_counter()
        if check.name in leave:
            result.skip(leave[check.name])
        elif check.needs_api and api is None:
            result.skip("no public API given (--api): nothing to compare with")
        else:
            try:
                check.run(ctx, result)
            except CannotAudit:
                raise
            except Exception as exc:  # noqa: BLE001 - a check that breaks must never look like one that passed
                result.skip(f"the check could not complete: {type(exc).__name__}: {exc}")
                errors.append(f"{check.name}: {type(exc).__name__}: {exc}")
            else:
                result.settle()
        result.seconds = time.perf_counter() - begun
        results[check.name] = result
    report_progress("done", len(order), len(order))
    return [results[c.name] for c in CHECKS], errors


def make_report(ctx: AuditContext, ordered: list[CheckResult], errors: list[str], started: int, seconds: float,
                target: Mapping[str, Any] | None = None) -> AuditReport:
    """The report of checks run on `ctx`, with the statistics the HTML report charts; `target` adds to what was
    audited."""
    config, chain, model, api = ctx.config, ctx.chain, ctx.model, ctx.api
    days = Counter((e.block_time or 0) // 86_400 for e in model.entries)
    per_day = {datetime.fromtimestamp(day * 86_400, UTC).date().isoformat(): n for day, n in days.items()}
    stats = dict(ctx.stats)
    stats["entries_per_day"] = dict(sorted(per_day.items()))
    stats["findings_per_check"] = {r.name: r.finding_total() for r in ordered}
    stats["entries_by_kind"] = dict(Counter(e.kind.name.lower() for e in model.entries))
    if model.anchors:
        stats["batches"] = {"anchored": len(model.anchors), "read": len(model.contents),
                            "batched_entries": sum(a.record["count"] for a in model.anchors.values())}
    stats["cases"] = len(model.cases)
    stats["log_seconds"] = round(chain.seconds, 3)
    audited = {
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
        **(target or {}),
    }
    return AuditReport(TOOL, audited, ordered, started, seconds, stats, errors)
