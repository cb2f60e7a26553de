"""The audit's checks, in the order they run: each a name, a title, a description (which states its rule) and a
function ``run(ctx, result)`` that records findings on ``result``. ``CHECKS`` is the one list the auditor runs;
a check that needs the public API is skipped, saying so, when none was named."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    description: str
    run: Callable[[AuditContext, CheckResult], None]
    needs_api: bool = False

    def new_result(self, limit: int = 1000) -> CheckResult:
        return CheckResult(self.name, self.title, self.description, limit=limit)


def _registry() -> list[Check]:
    from ledger.audit.checks import (
        api_records,
        attestations,
        authorisation,
        batches,
        code,
        entry_views,
        feedback,
        filings,
        log,
        metrics,
        open311,
        receipt_views,
        timeliness,
        transitions,
    )

    return [
        code.CHECK,
        log.CHECK,
        authorisation.CHECK,
        transitions.CHECK,
        timeliness.CHECK,
        api_records.CHECK,
        entry_views.CHECK,
        metrics.CHECK,
        open311.CHECK,
        receipt_views.CHECK,
        feedback.CHECK,
        filings.CHECK,
        batches.CHECK,
        attestations.CHECK,
    ]


CHECKS: list[Check] = _registry()


def check_named(name: str) -> Check:
    for check in CHECKS:
        if check.name == name:
            return check
    raise KeyError(f"no check named {name!r}; the checks are {[c.name for c in CHECKS]}")


def run_check(check: Check | str, ctx: AuditContext) -> CheckResult:
    """Run one check on a context (what the runner does for each; handy in tests)."""
    found = check_named(check) if isinstance(check, str) else check
    result = found.new_result(ctx.config.max_findings)
    if found.needs_api and ctx.api is None:
        result.skip("no public API given (--api): nothing to compare with")
        return result
    found.run(ctx, result)
    result.settle()
    return result
