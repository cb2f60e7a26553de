"""Request and response bodies of the agency write API (``api/routes/write.py``); the citizen API's answers reuse
:class:`ErrorOut` and :class:`SubmissionError`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.bodies import MAX_JSON_DEPTH, nests_too_deep
from ledger.relay.verify import MAX_CONTRACT_SIGNATURE


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
    #: 0x-hex, 65 bytes (r, s, v); a contract wallet's (ERC-1271) as the wallet takes it, at most 4096 bytes
    signature: str = Field(min_length=1, max_length=2 + 2 * MAX_CONTRACT_SIGNATURE)
    #: optional: the address the client expects the signature to recover to; required for a contract wallet (its
    #: address: the signature is put to it on chain)
    signer: str | None = Field(default=None, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _typed_data_as_text(cls, data: Any) -> Any:
        """``eth_signTypedData_v4`` takes the typed data as a JSON string; accept it in that form too."""
        if isinstance(data, dict) and isinstance(data.get("typed_data"), str):
            if nests_too_deep(data["typed_data"]):
                raise ValueError(f"typed_data nests deeper than {MAX_JSON_DEPTH} levels: no typed data does")
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
