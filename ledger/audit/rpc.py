"""The auditor's JSON-RPC client: the one client (``ledger.chain.rpc.JsonRpc``: raw answers, no web3 formatters, no
redirects followed), configured as an auditor wants it — a minute per request, three retries, batches of 200 calls,
and a node that cannot be reached reported as :class:`CannotAudit`.

The auditor reads the chain only through this client, so what it checks is exactly what the node says.
"""

from __future__ import annotations

from ledger.audit.errors import CannotAudit
from ledger.chain.rpc import JsonRpc, RetryPolicy, RpcError, safe_url

__all__ = ["Rpc", "RpcError", "safe_url"]


class Rpc(JsonRpc):
    """JSON-RPC over HTTP to one node, for the auditor."""

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 3) -> None:
        super().__init__(url, timeout=timeout, policy=RetryPolicy(max_retries=retries, backoff=0.4, max_backoff=3.2),
                         unavailable=CannotAudit, chunk=200)
