"""The chain facts (``GET /api/v1/chain``, ``api.routes.chain``): where the ledger lives, how far the index has read
it, what its node says and how far independent audits vouch for it."""

from __future__ import annotations

from pydantic import Field

from api.schemas._common import _ADDRESS, _HEAD, HEX24_PATTERN, Address, Model
from api.schemas.audit import AuditSummary


class NodeStatus(Model):
    configured: bool = Field(description="whether the service is configured with a JSON-RPC node to ask")
    reachable: bool | None = Field(
        description="whether the node answered just now (null when none is configured)", examples=[True]
    )
    chain_id: int | None = Field(default=None, description="chain id the node reports", examples=[31337])
    head_block: int | None = Field(default=None, description="the node's latest block number", examples=[270])
    behind_blocks: int | None = Field(
        default=None, description="head_block minus last_indexed_block: how far the index lags", examples=[4]
    )
    error: str | None = Field(default=None, description="why the node could not be asked, when it could not")


class ChainFacts(Model):
    """Where the ledger lives and how far the index has read it."""

    chain_id: int | None = Field(description="EIP-155 chain id of the ledger's chain", examples=[31337])
    contract_address: Address | None = Field(description="address of the CivicLedger contract", examples=[_ADDRESS])
    filings_address: Address | None = Field(
        default=None,
        description="address of the ledger's filings module (created by the ledger's constructor, its address "
        "derived from the ledger's): citizens sign filings and receipt claims in its EIP-712 domain, and its view "
        "verifyBatchEntry checks a batched entry's Merkle proof on chain",
        examples=["0xa16E02E87b7454126E5E10d957A927A7F5B5d2be"],
    )
    deploy_block: int | None = Field(description="block the contract was deployed in", examples=[8])
    entry_count: int = Field(ge=0, description="entries indexed (the contract's entryCount() at that block)")
    running_hash: str = Field(
        pattern=HEX24_PATTERN,
        description="running hash over those entries (bytes24; the contract's runningHash())",
        examples=[_HEAD],
    )
    last_indexed_block: int = Field(ge=-1, description="highest block whose entries are all indexed (-1: none yet)")
    finalized_block: int = Field(
        ge=-1, description="highest block considered final: entries at or below it will not change"
    )
    halted_reason: str | None = Field(
        description="set when indexing stopped on purpose (a reorganisation deeper than the confirmation depth)"
    )
    batches_withheld: int = Field(
        default=0, ge=0, description="Merkle-anchored batches whose entries are not indexed because their file is "
        "missing or cannot match the anchor (listed at withheld_batches_url); indexing goes on past them",
        examples=[1],
    )
    entries_withheld: int = Field(
        default=0, ge=0, description="entries those batches stand for: counted in entry_count, but not shown",
        examples=[500],
    )
    withheld_batches_url: str = Field(
        default="/api/v1/batches?withheld=true", description="the list of the withheld batches, with why each is",
        examples=["/api/v1/batches?withheld=true"],
    )
    node: NodeStatus = Field(description="what the chain's node says right now (best effort, never an error)")
    audit: AuditSummary = Field(description="independent audits of the ledger: registered auditors and how far their "
                                "attestations vouch for it")
