"""What the response models share: the base :class:`Model`, the field types and patterns (codes, hashes, addresses,
rates), the names of the ledger's enums as the API shows them, the example values and the descriptions several
models repeat. Pydantic only; imported by every module of ``api.schemas`` (and by ``api.read`` and the routes for
the patterns)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# --- shared field types -----------------------------------------------------------------------------------------------

CODE_PATTERN = r"^[!-~]{1,66}$"
HEX32_PATTERN = r"^0x[0-9a-f]{64}$"
HEX24_PATTERN = r"^0x[0-9a-f]{48}$"
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
RATE_PATTERN = r"^[01]\.\d{4}$"

Hex32 = Annotated[str, Field(pattern=HEX32_PATTERN)]
Code = Annotated[str, Field(pattern=CODE_PATTERN)]
Address = Annotated[str, Field(pattern=ADDRESS_PATTERN)]
Rate = Annotated[str, Field(pattern=RATE_PATTERN)]

EntryKindName = Literal[
    "agency_registered",
    "signer_authorized",
    "signer_revoked",
    "commitment_published",
    "commitment_retired",
    "case_event",
    "correction",
    "holiday_calendar_published",
    "receipt_issued",
    "case_rated",
    "case_disputed",
    "batch_anchored",
    "auditor_authorized",
    "auditor_revoked",
    "audit_attested",
    "filing_recorded",
    "filing_answered",
    "receipt_claimed",
]
CaseActionName = Literal[
    "opened",
    "accepted",
    "on_hold",
    "resumed",
    "escalated",
    "fulfilled",
    "rejected",
    "withdrawn",
    "reopened",
    "dispute_rejected",
    "rectified",
]
ChannelName = Literal["counter", "hotline", "web", "app", "mail", "proactive"]
CaseStatus = Literal["open", "on_hold", "fulfilled", "rejected", "withdrawn"]
DeadlineUnitName = Literal["calendar_hours", "working_days"]

# --- example values and descriptions several models show --------------------------------------------------------------

_TX = "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"
_BLOCK = "0x9e4f1c0a0d0c8a1b4f0b7f2d3a7e6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b"
_ENTRY = "0x3f0e8b6c8b1f3e0f6f3e5d1f0c2a8b9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b"
_RECORD = "0x0b7d4c1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"
_HEAD = "0x8c2e7a1f3b5d9c4e6a8b0d2f4e6a8c0b2d4f6e8a0c2b4d6f"
_CASE = "0x4b1f8e2d6c9a3e7f0b5d8c2a6e9f3b7d1c5a8e2f6b9d3c7a0e4f8b2d6c9a3e7f"
_ADDRESS = "0x448742A18a57Bd81d51bB4b9B4ff47aBA6daaB65"
_ROOT = "0x6c1f0e3d7b2a9c8e5f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
_FILE = "0x1d4e7a0b3c6f9e2d5a8b1c4f7e0d3a6b9c2f5e8d1a4b7c0f3e6d9a2b5c8f1e4d"

_FINAL = "whether the entry's block is at or below the finalized block (see /api/v1/chain); only final data is final"
_NOT_APPLIED = (
    "null: applied as any entry. Set on a case event written in a Merkle-anchored batch for a case that has a "
    "receipt: it is on the ledger, but never applied to its case, and this says why"
)
_BATCHES_WITHHELD = (
    "the agency's Merkle-anchored batches whose entries are withheld: their file is missing or cannot match the anchor"
)
_ENTRIES_WITHHELD = "entries those withheld batches stand for: on the ledger, counted, but not indexed"


# --- the base of every response model ---------------------------------------------------------------------------------


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)
