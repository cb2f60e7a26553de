"""The auditor's samples replayed under another seed (``ledger.audit.sampling``): one audit context, read once, checked
again as a run with that seed would check it."""

from __future__ import annotations

from ledger.audit.context import AuditContext


def reseeded(ctx: AuditContext, seed: int) -> AuditContext:
    """`ctx` as a run seeded with `seed` samples (its per-run cache dropped)."""
    ctx.config.seed = seed
    ctx.cache.clear()
    return ctx
