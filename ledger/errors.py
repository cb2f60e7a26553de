"""The exceptions Civic Ledger raises, each with a message a person can act on."""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base class of every error this package raises on purpose."""


class BuildError(LedgerError):
    """The contracts could not be compiled, or the shipped artifacts do not match the sources."""


class ChainMismatch(LedgerError):
    """Connected to a node whose chain id or contract code is not the expected one."""


class NodeUnavailable(LedgerError):
    """The JSON-RPC node could not be reached or did not answer."""


class ContractReverted(LedgerError):
    """A call or transaction reverted; carries the decoded custom error when the ABI knows it."""

    def __init__(self, error_name: str, args: dict[str, Any], raw: str = "") -> None:
        self.error_name = error_name
        self.error_args = args
        self.raw = raw
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        super().__init__(f"contract reverted with {error_name}({shown})")


class InvalidRecord(LedgerError):
    """A record failed validation before it was sent anywhere."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value)


class KeyUnavailable(LedgerError):
    """An agency key could not be loaded: missing keystore file or variable, wrong password, malformed key.
    The message names where the key was looked for, never the key or the password."""


class OutboxError(LedgerError):
    """The writer's durable outbox cannot be opened or used, or an idempotency key was reused for another record."""


class WriterError(LedgerError):
    """The writer cannot make progress on its own: another transaction took its nonce, the node refused a signed
    transaction for a reason retrying will not fix, or a transaction was not mined in time. Entries stay in the
    outbox; the message says what to do."""


class ReorgTooDeep(LedgerError):
    """The chain reorganised at or below a block the indexer had already reported final. Indexing stops (the reason
    is kept in the store's sync state) until an operator clears the halt, which accepts the new chain."""


class IndexIntegrityError(LedgerError):
    """The entries read from the node's logs do not add up to the contract's own entry count and running hash at
    that block: logs are missing or altered. Indexing stops rather than store a log the chain does not vouch for."""


class StaleIndex(LedgerError):
    """The store holds what an earlier version derived under a rule this one changed, and cannot be migrated in place:
    rebuild the index from the chain (an empty store, then ``civic-ledger sync``). The message says which rule."""


class InvalidSetting(LedgerError, ValueError):
    """A CIVIC_* setting has a value the service cannot use; the message names the variable."""
