"""Checks whose data this auditor cannot verify yet: Merkle-anchored batches.

Batches arrive with a later issue (batch-anchor entries with per-record inclusion proofs and published batch files).
Until the contract emits such entries this check reports ``not_applicable`` and says why — it never passes by
default. If the contract's ABI gains such an event before the auditor learns to verify it, the check is ``skipped``
with that reason, so an audit can never look complete without it. (Ratings, the other such check once, are verified
by ``ledger.audit.checks.feedback``.)
"""

from __future__ import annotations

from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult
from ledger.chain import artifact


def _abi_events(*words: str) -> list[str]:
    return [
        item["name"] for item in artifact()["abi"]
        if item["type"] == "event" and any(word in item["name"].lower() for word in words)
    ]


def run_batches(ctx: AuditContext, result: CheckResult) -> None:
    found = _abi_events("batch", "anchor", "merkle")
    given = f" (batch files at {ctx.config.batches!r} were not read)" if ctx.config.batches else ""
    if found:
        result.skip(f"the contract emits {found}, which this auditor version cannot verify yet{given}")
        return
    result.not_applicable(
        "not applicable: no batches on this ledger yet (the contract has no batch-anchor entry; the check that every "
        f"published batch file is complete and matches its anchored Merkle root arrives with batches){given}"
    )


BATCHES = Check(
    "batches_complete",
    "Merkle batches complete and roots matching",
    "Every anchored batch has its published file; the file's records hash to the anchored Merkle root and count; "
    "every record's inclusion proof verifies.",
    run_batches,
)
