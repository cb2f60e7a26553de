"""Chain facts, under ``/api/v1``: where the ledger is, how far the index has read it, the node's head and who
audits the ledger."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import threading
import time
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from api import attestations
from api.deps import Settings, Snapshot
from api.http import SHORT, conditional, etag_of
from api.ops import MAX_BLOCK_QUANTITY, node_quantity
from api.read._common import to_hex
from api.read.batches import withheld_counts
from api.routes._common import NOT_MODIFIED, ok, read_route, read_router, state_of
from api.schemas.chain import ChainFacts, NodeStatus
from ledger.chain.rpc import JsonRpc, RetryPolicy, RpcError
from ledger.encoding import module_address
from ledger.errors import NodeUnavailable

TAG = {"name": "chain", "description": "Where the ledger lives, and how far the index has read it"}
#: how long a node's answer about its head is reused, and how long the node is given to answer
NODE_CACHE_SECONDS = 1.0
NODE_TIMEOUT = (1.0, 2.0)

# --- node status ------------------------------------------------------------------------------------------------------


class NodeProbe:
    """Asks the configured node for its chain id and head, at most once a second, never for longer than a couple of
    seconds, and never failing: a node that is down is reported, not raised."""

    def __init__(self, rpc_url: str | None) -> None:
        self.rpc_url = rpc_url
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        # the one JSON-RPC client, asked once (no retries: the next request asks again a second later)
        self._rpc = JsonRpc(rpc_url, timeout=NODE_TIMEOUT, policy=RetryPolicy(max_retries=0)) if rpc_url else None

    def status(self) -> dict[str, Any]:
        if self._rpc is None:
            return {"configured": False, "reachable": None}
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < NODE_CACHE_SECONDS:
                return dict(self._cached[1])
            answer = self._ask(self._rpc)
            self._cached = (time.monotonic(), answer)
            return dict(answer)

    @staticmethod
    def _ask(rpc: JsonRpc) -> dict[str, Any]:
        try:
            chain_id, head = rpc.batch([("eth_chainId", []), ("eth_blockNumber", [])])
            # a chain id or head out of range (negative, past int64) is garbage, not a node answering for a chain
            return {"configured": True, "reachable": True, "chain_id": node_quantity(chain_id),
                    "head_block": node_quantity(head, MAX_BLOCK_QUANTITY)}
        except NodeUnavailable:
            # the message names the failure, never the URL (it may carry an API key)
            return {"configured": True, "reachable": False, "error": "node unreachable"}
        except (RpcError, ValueError, TypeError) as exc:
            error = f"node answered unexpectedly: {type(exc).__name__}"
            return {"configured": True, "reachable": False, "error": error}


async def get_node_probe(request: Request) -> NodeProbe:
    """The app's :class:`NodeProbe` (``api.routes.public.register`` makes it)."""
    return request.app.state.node_probe


Probe = Annotated[NodeProbe, Depends(get_node_probe)]

router = read_router("chain")


@read_route(
    router,
    "/chain",
    operation_id="getChain",
    response_model=ChainFacts,
    summary="Chain facts: where the ledger is and how far the index has read it",
    responses={**ok("Chain facts"), **NOT_MODIFIED},
)
def chain_facts(request: Request, response: Response, conn: Snapshot, settings: Settings, probe: Probe) -> Any:
    """The chain id, contract address, indexed entry count and running hash (compare them with the contract's
    `entryCount()` and `runningHash()` at `last_indexed_block`), and the finalized block. The Merkle-anchored
    batches whose file is missing or cannot match the anchor are withheld: their entries count in `entry_count`
    but are not served; `batches_withheld` and `entries_withheld` say how many, `withheld_batches_url` lists them
    with why. When the service has a node, also that node's head (best effort: a node that is down is reported in
    `node`, never an error). `audit` says who audits the ledger and how far: each registered auditor's latest
    attestation, and "audited up to block `audited_to_block` by `auditors` auditors" (see `AuditSummary`)."""
    state = state_of(conn, settings)
    withheld = withheld_counts(conn).values() if any(state.withheld) else ()
    node = probe.status()
    if node.get("head_block") is not None and state.last_block >= 0:
        node["behind_blocks"] = max(0, node["head_block"] - state.last_block)
    facts = ChainFacts(
        chain_id=state.chain_id,
        contract_address=state.contract_address,
        filings_address=None if state.contract_address is None else module_address(state.contract_address),
        deploy_block=state.deploy_block,
        entry_count=state.entry_count,
        running_hash=to_hex(state.running_hash),
        last_indexed_block=state.last_block,
        finalized_block=state.finalized_block,
        halted_reason=state.halted_reason,
        batches_withheld=sum(b for b, _ in withheld),
        entries_withheld=sum(n for _, n in withheld),
        node=NodeStatus(**node),
        audit=attestations.audit_summary(conn, state, attestations.audit_reports(request.app)),
    )
    etag = etag_of("chain", facts.model_dump_json())
    return conditional(request, response, etag, SHORT) or facts

