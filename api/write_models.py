"""Request and response bodies of the agency write API (``api/routes/write.py``)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TypedDataField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: str


class TypedData(BaseModel):
    """EIP-712 typed data exactly as ``eth_signTypedData_v4`` takes it."""

    model_config = ConfigDict(extra="forbid")

    types: dict[str, list[TypedDataField]]
    primaryType: str
    domain: dict[str, Any]
    message: dict[str, Any]


class SignedRecordIn(BaseModel):
    """A record signed by an agency key: the typed data it signed and the signature."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "typed_data": {
                    "types": {"…": "GET /api/v1/agency/typed-data/RecordCaseEvent"},
                    "primaryType": "RecordCaseEvent",
                    "domain": {"name": "CivicLedger", "version": "1", "chainId": 31337,
                               "verifyingContract": "0x…"},
                    "message": {"caseEvent": {"…": "…"}, "nonce": 0, "deadline": 1893456000},
                },
                "signature": "0x…(65 bytes)",
            }
        },
    )

    typed_data: TypedData
    #: 0x-hex, 65 bytes (r, s, v)
    signature: str = Field(min_length=1, max_length=200)
    #: optional: the address the client expects the signature to recover to
    signer: str | None = Field(default=None, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _typed_data_as_text(cls, data: Any) -> Any:
        """``eth_signTypedData_v4`` takes the typed data as a JSON string; accept it in that form too."""
        if isinstance(data, dict) and isinstance(data.get("typed_data"), str):
            try:
                return {**data, "typed_data": json.loads(data["typed_data"])}
            except ValueError:
                raise ValueError("typed_data is a string but not JSON") from None
        return data


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    """Every refusal: a stable ``code`` to branch on and a ``message`` for people."""

    error: ErrorBody


class SubmissionError(BaseModel):
    code: str
    name: str
    message: str | None = None


class SubmissionOut(BaseModel):
    """A relayed submission and how far it got."""

    id: str = Field(description="the submission's id: keccak of the signer and the EIP-712 digest it signed")
    status: str = Field(description="pending | sent | recorded | failed")
    signer: str
    agency_id: str
    primary_type: str
    nonce: int
    record_hash: str = Field(description="struct hash of the signed record (a batch: keccak of its events' hashes)")
    entries: int = Field(description="ledger entries the submission makes (events in a batch)")
    tx_hash: str | None = None
    seq: int | None = Field(default=None, description="seq of the (first) recorded entry")
    seqs: list[int] | None = Field(default=None, description="seq of every recorded entry, for a batch")
    error: SubmissionError | None = None


class ConflictOut(ErrorOut):
    """409: ``stale_nonce`` (with ``expected_nonce``), or ``duplicate``: this signed message was submitted before,
    and the rest of the body is that submission (the fields of a 202 answer)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    status: str | None = None


class NonceOut(BaseModel):
    address: str
    onchain_nonce: int
    pending: int = Field(description="this signer's submissions accepted here and not yet settled")
    next_nonce: int = Field(description="the nonce the next signed record must carry")


class TypedDataTemplate(BaseModel):
    primaryType: str
    types: dict[str, list[TypedDataField]]
    domain: dict[str, Any]
    message_fields: list[str] = Field(description="keys of `message`: the record field, nonce, deadline")
    max_batch: int | None = None


# --- citizens: ratings and disputes signed with the receipt key (api/routes/citizen.py) -------------------------------

_HEX32 = r"^0x[0-9a-fA-F]{64}$"
_ZERO32 = "0x" + "00" * 32
_CASE = "0xc1f38e2d6c9a3e7f0b5d8c2a6e9f3b7d1c5a8e2f6b9d3c7a0e4f8b2d6c9a3e7f"
_SALT = "0x5e1f0c6b9a2d4e8f7a3b6c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b"
_SIGNATURE = "0x" + "8e" * 32 + "3c" * 32 + "1b"


class OffChainTextIn(BaseModel):
    """A comment or a dispute's reason, kept off chain: only keccak256(salt ‖ utf8(text)) goes on chain."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000, description="the text, UTF-8, at most 2000 characters")
    salt: str = Field(
        pattern=_HEX32, description="32 random bytes the browser chose (0x-hex): the hash cannot be guessed from text",
        examples=[_SALT],
    )
    publish: bool = Field(default=False, description="whether the citizen agrees to its publication on the page")


class RatingIn(BaseModel):
    """A rating signed in the browser by the receipt key: the Rating record's fields and the signature."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "agency_id": "DEMO-ROADS",
                    "case_id": _CASE,
                    "score": 4,
                    "comment_hash": "0x…keccak256(salt ‖ utf8(text))",
                    "signature": _SIGNATURE,
                    "comment": {"text": "Fixed the next morning, thank you.", "salt": _SALT, "publish": True},
                }
            ]
        },
    )

    agency_id: str = Field(pattern=r"^[!-~]{1,66}$", description="the agency code, as the case lookup shows it",
                           examples=["DEMO-ROADS"])
    case_id: str = Field(pattern=_HEX32, description="the case id, 0x + 64 hex digits", examples=[_CASE])
    score: int = Field(ge=1, le=5, description="1 (worst) to 5 (best)", examples=[4])
    comment_hash: str = Field(default=_ZERO32, pattern=_HEX32, description="the comment's hash, or zero for none")
    signature: str = Field(
        min_length=1, max_length=200,
        description="EIP-712 signature by the receipt key over the Rating (r ‖ s ‖ v, 65 bytes, 0x-hex, low s)",
        examples=[_SIGNATURE],
    )
    comment: OffChainTextIn | None = Field(default=None, description="the comment behind comment_hash, if any")


class DisputeIn(BaseModel):
    """A dispute of the latest fulfilment, signed in the browser by the receipt key."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "agency_id": "DEMO-ROADS",
                    "case_id": _CASE,
                    "closure": 1,
                    "reason_hash": "0x…keccak256(salt ‖ utf8(text))",
                    "signature": _SIGNATURE,
                    "reason": {"text": "The streetlight is still dark.", "salt": _SALT, "publish": False},
                }
            ]
        },
    )

    agency_id: str = Field(pattern=r"^[!-~]{1,66}$", description="the agency code", examples=["DEMO-ROADS"])
    case_id: str = Field(pattern=_HEX32, description="the case id, 0x + 64 hex digits", examples=[_CASE])
    closure: int = Field(ge=1, lt=2**16, description="the closure disputed: the case's latest (see the receipt view)",
                         examples=[1])
    reason_hash: str = Field(default=_ZERO32, pattern=_HEX32, description="the reason's hash, or zero for none")
    signature: str = Field(
        min_length=1, max_length=200,
        description="EIP-712 signature by the receipt key over the Dispute (r ‖ s ‖ v, 65 bytes, 0x-hex, low s)",
        examples=[_SIGNATURE],
    )
    reason: OffChainTextIn | None = Field(default=None, description="the reason behind reason_hash, if any")


class CitizenSubmissionOut(BaseModel):
    """A rating or dispute accepted for relaying, and how far it got."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0x7d3c…",
                    "kind": "rating",
                    "status": "recorded",
                    "receipt": "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF",
                    "agency_id": "DEMO-ROADS",
                    "case_id": _CASE,
                    "record_hash": "0x…",
                    "tx_hash": "0x…",
                    "seq": 4211,
                }
            ]
        }
    )

    id: str = Field(description="the submission's id: keccak of the receipt address and the EIP-712 digest")
    kind: str = Field(description="rating | dispute")
    status: str = Field(description="pending | sent | recorded | failed")
    receipt: str = Field(description="the receipt key that signed (the entry's actor on chain)")
    agency_id: str
    case_id: str
    record_hash: str = Field(description="EIP-712 struct hash of the signed record")
    tx_hash: str | None = None
    seq: int | None = Field(default=None, description="seq of the recorded entry")
    error: SubmissionError | None = None


class CitizenConflictOut(ErrorOut):
    """409: the case is not in a state to take it (``not_closed``, ``already_rated``, …), or ``duplicate``: this signed
    record was submitted before, and the rest of the body is that submission."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    status: str | None = None
