"""Citizens filing requests and claiming receipts (``POST /api/v1/filings``, ``POST /api/v1/receipt-claims``,
``api.routes.filing_writes``). The content's shape is ``ledger.filings.FilingContent`` itself: one definition of what
a request may say."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.citizen import _CASE, _HEX32, _RECEIPT, _SALT, _SIGNATURE
from ledger.filings import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, FilingContent

_CODE = r"^[!-~]{1,32}$"
_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
#: base64 of the largest photo, with room for padding
_PHOTO_CHARS = (MAX_ATTACHMENT_BYTES + 2) // 3 * 4


class FilingRecordIn(BaseModel):
    """The Filing record the receipt key signed (EIP-712, the filings module's domain: ``GET /api/v1/chain``
    names it): public codes and hashes only."""

    model_config = ConfigDict(extra="forbid")

    agency_id: str = Field(pattern=_CODE, description="the agency asked", examples=["DEMO-ROADS"])
    commitment_id: str = Field(pattern=_CODE, description="the commitment (service) the request falls under",
                               examples=["STREETLIGHT-48H"])
    district: str = Field(pattern=_CODE, description="district code: the finest location on the ledger",
                          examples=["EAST"])
    channel: int = Field(ge=1, le=255, description="intake channel code (3 web, 4 app)", examples=[3])
    content_hash: str = Field(pattern=_HEX32, description="keccak256(salt ‖ utf8(canonical content))")
    receipt: str = Field(pattern=_ADDRESS, description="the new receipt key's address (the key stays on the device)",
                         examples=[_RECEIPT])


class PhotoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_type: str = Field(description="image/jpeg, image/png or image/webp", examples=["image/jpeg"])
    data: str = Field(max_length=_PHOTO_CHARS, description=f"the photo's bytes, base64 (at most "
                      f"{MAX_ATTACHMENT_BYTES} bytes)")


class FilingIn(BaseModel):
    """A filing signed in the browser by a key made there, with the private content it commits to."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "filing": {"agency_id": "DEMO-ROADS", "commitment_id": "STREETLIGHT-48H", "district": "EAST",
                               "channel": 3, "content_hash": "0x…", "receipt": _RECEIPT},
                    "signature": _SIGNATURE,
                    "salt": _SALT,
                    "content": {"description": "The street light outside No. 12 has been out for three nights.",
                                "address": "12 Harbour Road", "lat": "31.2304", "long": "121.4737"},
                    "work": 183211,
                }
            ]
        },
    )

    filing: FilingRecordIn
    signature: str = Field(min_length=1, max_length=200, description="the receipt key's EIP-712 signature, 0x-hex")
    salt: str = Field(pattern=_HEX32, description="32 random bytes the browser chose for the content's hash",
                      examples=[_SALT])
    content: FilingContent = Field(description="what the request says: kept in the service's private store, shown "
                                               "only to the agency asked")
    photos: list[PhotoIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS,
                                  description="the photos content.attachments names, in its order")
    work: int | None = Field(default=None, ge=0, lt=2**64,
                             description="the proof of work's nonce (ledger.filings.work_digest)")


class ReceiptClaimIn(BaseModel):
    """A printed receipt moved to a key of the holder's own: the claim signed by the printed code's key and by the
    new one (EIP-712, the filings module's domain)."""

    model_config = ConfigDict(extra="forbid")

    agency_id: str = Field(pattern=_CODE, examples=["DEMO-ROADS"])
    case_id: str = Field(pattern=_HEX32, examples=[_CASE])
    receipt: str = Field(pattern=_ADDRESS, description="the new key's address", examples=[_RECEIPT])
    signature: str = Field(min_length=1, max_length=200, description="the printed code's key's signature")
    new_key_signature: str = Field(min_length=1, max_length=200, description="the new key's signature")


class FilingSubmissionOut(BaseModel):
    """A filing or receipt claim accepted for relaying, and how far it got."""

    id: str = Field(description="the submission's id (follow it at the Location given)")
    kind: str = Field(description="filing | receipt_claim")
    status: str = Field(description="pending | sent | recorded | failed")
    receipt: str = Field(description="the filing's key (a claim: the printed code's key)")
    agency_id: str
    record_hash: str
    tx_hash: str | None = None
    seq: int | None = Field(default=None, description="the entry's seq once recorded (a filing's id)")
    case_id: str | None = Field(default=None, description="the case the filing opens once the agency accepts it "
                                "(its id follows from the filing's seq); a claim: the case claimed")
    service_request_id: str | None = Field(default=None, description="the same, as Open311 names it")
    receipt_code: str | None = Field(default=None, description="only when the service made the key: its code, shown "
                                     "this once and kept nowhere")
    error: dict[str, str] | None = None
