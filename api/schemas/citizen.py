"""The citizen API (``api.routes.citizen``): a case seen through its receipt and the feedback state (built by
``api.feedback``), and the ratings and disputes a receipt holder posts (signed with the receipt key) with the
service's answers to them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas._common import _FINAL, _RECORD, Address, Hex32, Model
from api.schemas.cases import CaseView
from api.schemas.proofs import Proof
from api.schemas.write import ErrorOut, SubmissionError

_RECEIPT = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"


class ReceiptInfo(Model):
    """The public side of the citizen's receipt: the address of the key derived from its code (never the code)."""

    address: Address = Field(description="address of the receipt key, as recorded on chain", examples=[_RECEIPT])
    issued_at: int = Field(description="when the agency says it issued the receipt", examples=[1793487600])
    final: bool = Field(description=_FINAL)
    proof: Proof = Field(description="proof of the ReceiptIssued entry")


class RatingItem(Model):
    """The receipt holder's rating of the case (at most one, ever)."""

    score: int = Field(ge=1, le=5, description="1 (worst) to 5 (best)", examples=[4])
    comment_hash: Hex32 = Field(
        description="keccak256(salt ‖ utf8(comment)) of the off-chain comment, or zero for none", examples=[_RECORD]
    )
    comment: str | None = Field(
        description="the comment, when the citizen agreed to publish it (it matches comment_hash with its salt)",
        examples=["Fixed the next morning, thank you."],
    )
    rated_at: int = Field(description="block time of the rating", examples=[1793577600])
    final: bool = Field(description=_FINAL)
    proof: Proof


class DisputeAnswer(Model):
    """The agency's answer to a dispute: it reopened the case, or stood by the fulfilment with a reason (hash)."""

    action: Literal["reopened", "dispute_rejected"] = Field(examples=["reopened"])
    seq: int = Field(ge=0, description="seq of the answering case event (in `events`)", examples=[120])
    answered_at: int = Field(description="block time of the answer", examples=[1793664000])


class DisputeItem(Model):
    """A dispute of a fulfilment by the receipt holder, and the agency's answer."""

    closure: int = Field(ge=1, description="which closure of the case was disputed (1 for the first)", examples=[1])
    reason_hash: Hex32 = Field(
        description="keccak256(salt ‖ utf8(reason)) of the off-chain reason, or zero for none", examples=[_RECORD]
    )
    reason: str | None = Field(
        description="the reason, when the citizen agreed to publish it", examples=["The streetlight is still dark."]
    )
    disputed_at: int = Field(description="block time of the dispute", examples=[1793577600])
    answer_due: int = Field(
        description="disputed_at + the response window: the agency must answer by then", examples=[1794441600]
    )
    answer: DisputeAnswer | None = Field(description="the agency's answer (null: none yet)")
    answer_overdue: bool = Field(description="no answer, and answer_due has passed (the auditor flags it)")
    final: bool = Field(description=_FINAL)
    proof: Proof


class FeedbackSubmission(Model):
    """A rating or dispute accepted by this service and not yet in the index (follow it by its id)."""

    id: str = Field(description="the submission's id (GET /api/v1/ratings/{id} or /api/v1/disputes/{id})")
    kind: Literal["rating", "dispute"] = Field(description="what was submitted", examples=["rating"])
    status: str = Field(description="pending | sent | recorded | failed", examples=["sent"])
    closure: int | None = Field(default=None, description="for a dispute: the closure it disputes")


class Feedback(Model):
    """What the receipt holder may do now, as the ledger tracks the case (every recorded closing, reopening and
    answer after the receipt, as the contract counts them), and what they did."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "fulfilled",
                    "closures": 1,
                    "closed_at": 1793574000,
                    "rated": False,
                    "rating": None,
                    "can_rate": True,
                    "rate_refusal": None,
                    "can_dispute": True,
                    "dispute_refusal": None,
                    "dispute_closure": 1,
                    "dispute_deadline": 1796166000,
                    "dispute_window_seconds": 2592000,
                    "response_window_seconds": 864000,
                    "disputes": [],
                    "submissions": [],
                }
            ]
        }
    )

    status: Literal["open", "fulfilled", "closed_unfulfilled"] = Field(
        description="the case as the contract tracks it: open (opened or reopened), fulfilled, or closed otherwise "
        "(rejected or withdrawn)",
        examples=["fulfilled"],
    )
    closures: int = Field(ge=0, description="how many times the case was closed", examples=[1])
    closed_at: int | None = Field(description="block time of the latest closing (null: never closed)")
    rated: bool = Field(description="whether the case has been rated (once ever)")
    rating: RatingItem | None = Field(description="the rating, if any")
    can_rate: bool = Field(description="whether a rating would be accepted now")
    rate_refusal: Literal["claimed", "not_closed", "already_rated", "rating_pending"] | None = Field(
        description="why not, when it would not be (claimed: this key was moved away from, see `claimed_by`)"
    )
    can_dispute: bool = Field(description="whether a dispute of the latest fulfilment would be accepted now")
    dispute_refusal: (
        Literal[
            "claimed", "not_closed", "not_fulfilled", "already_disputed", "closure_disputed", "dispute_window_closed",
            "dispute_pending",
        ]
        | None
    ) = Field(
        description="why not, when it would not be: claimed (this key was moved away from), not_closed, not_fulfilled "
        "(closed otherwise), already_disputed (a dispute awaits the agency's answer), closure_disputed (this closure "
        "was disputed and the agency stood by it: one dispute per closure), dispute_window_closed, dispute_pending "
        "(being recorded)"
    )
    dispute_closure: int | None = Field(
        description="the closure number a dispute must name (the latest closure of a fulfilled case)", examples=[1]
    )
    dispute_deadline: int | None = Field(
        description="until when the latest fulfilment may be disputed (block time; closed_at + the window)"
    )
    dispute_window_seconds: int = Field(description="how long after a fulfilment it may be disputed")
    response_window_seconds: int = Field(description="how long the agency has to answer a dispute")
    claimed_by: str | None = Field(
        default=None,
        description="when the case's receipt was claimed away from this key (a printed code moved to its holder's own "
        "key): the key that holds the case now; this key can no longer rate or dispute it. A rating or dispute made "
        "with this key before the claim stays, and is shown",
        examples=[None],
    )
    claimed_seq: int | None = Field(default=None, description="the claim's entry, when claimed away", examples=[None])
    disputes: list[DisputeItem] = Field(description="every dispute of the case, oldest first")
    submissions: list[FeedbackSubmission] = Field(
        description="ratings and disputes accepted by this service that the index does not show yet"
    )
    source: Literal["index", "chain"] = Field(
        default="index",
        description="where the state above (status, closures, closed_at, rated, can_* and why not, the dispute "
        "deadline) was read: the index, or the contract's own receiptCase on the chain when the index lacks this "
        "receipt or is behind the case's latest change (then `rating`, `disputes` and the case's events are only "
        "what the index has)",
        examples=["index"],
    )
    source_reason: Literal["index_lacks_receipt", "index_behind"] | None = Field(
        default=None,
        description="why the chain was read: the index has no receipt with this key yet (index_lacks_receipt), or "
        "its state of the case is not the chain's (index_behind); null when read from the index",
    )


class ReceiptView(CaseView):
    """A case looked up by its receipt: the case as ``GET /cases/{agency_id}/{case_id}`` shows it (with every
    event and its proof), the receipt, and the feedback state."""

    receipt: ReceiptInfo
    feedback: Feedback


# --- ratings and disputes signed with the receipt key: what is posted, and the answers --------------------------------

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
