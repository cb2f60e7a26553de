"""The independent auditor: verifies a Civic Ledger from its chain (and cross-checks its public API) using the
project's own definitions (records, case fold, metrics) on data it reads itself — never the service's database.

``run_audit(AuditConfig(...))`` returns an :class:`AuditReport`; ``civic-audit`` (``ledger.audit.cli``) is the command
line and ``civic-verify-case`` (``ledger.audit.verify_case``) checks one case with its proofs. The checks are listed,
in order, in ``ledger.audit.checks.CHECKS``.

The names below load on first use, so that the command line can start the compiler before the heavy modules load.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AuditConfig": "ledger.audit.context",
    "AuditContext": "ledger.audit.context",
    "Thresholds": "ledger.audit.context",
    "CannotAudit": "ledger.audit.errors",
    "AuditReport": "ledger.audit.model",
    "CheckResult": "ledger.audit.model",
    "Finding": "ledger.audit.model",
    "Status": "ledger.audit.model",
    "run_audit": "ledger.audit.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger.audit' has no attribute {name!r}")
    return getattr(import_module(module), name)
