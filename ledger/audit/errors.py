"""Why an audit could not run at all (exit code 2), as opposed to what it found (exit code 1)."""

from __future__ import annotations

from ledger.errors import LedgerError


class CannotAudit(LedgerError):
    """The audit could not run: the node is unreachable, serves another chain, has no contract at the address, or the
    public API named on the command line does not answer. The message says which, for a person."""
