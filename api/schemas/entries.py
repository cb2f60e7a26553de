"""Ledger entries (``/api/v1/entries``, ``api.routes.entries``; read by ``api.read.entries``)."""

from __future__ import annotations

from pydantic import Field

from api.schemas._common import (
    _ADDRESS,
    _ENTRY,
    _FINAL,
    _HEAD,
    _NOT_APPLIED,
    _RECORD,
    HEX24_PATTERN,
    Address,
    Code,
    EntryKindName,
    Hex32,
    Model,
)
from api.schemas.proofs import Proof


class Entry(Model):
    """One ledger entry exactly as the chain has it (what later corrections did to it is shown where it matters:
    on cases and commitments)."""

    seq: int = Field(ge=0, description="position in the ledger, from 0", examples=[42])
    kind: EntryKindName = Field(description="what the entry is", examples=["case_event"])
    kind_code: int = Field(ge=0, le=255, description="the kind as the contract numbers it", examples=[5])
    agency_id: Code | None = Field(
        description="agency the entry belongs to; null for an entry of no agency (auditor_authorized, "
        "auditor_revoked, audit_attested: the entry hash binds the zero bytes32 there)",
        examples=["DEMO-ROADS"],
    )
    actor: Address = Field(
        description="key that authorised the entry (the governance account for kinds 0–2, 12 and 13; the auditor key "
        "for 14)",
        examples=[_ADDRESS],
    )
    record_hash: Hex32 = Field(description="EIP-712 hashStruct of the record", examples=[_RECORD])
    entry_hash: Hex32 = Field(description="entry hash (binds seq, kind, agency, actor, record hash)", examples=[_ENTRY])
    running_hash: str = Field(
        pattern=HEX24_PATTERN, description="running hash after this entry (bytes24)", examples=[_HEAD]
    )
    occurred_at: int | None = Field(
        description="time the agency says it happened (null for governance entries)", examples=[1793487600]
    )
    not_applied_reason: str | None = Field(
        default=None, description=_NOT_APPLIED, examples=[None]
    )
    final: bool = Field(description=_FINAL, examples=[True])
    proof: Proof


class EntryPage(Model):
    items: list[Entry] = Field(description="entries in seq order")
    next: int | None = Field(
        description="pass as `after` for the next page; null when this page reached the end of the log as it stands "
        "(to follow new entries, pass the last seq you have)",
        examples=[141],
    )
