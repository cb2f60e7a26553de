"""Citizens' filings (``/api/v1/filings``, ``api.routes.filings``; read by ``api.read.filings``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas._common import _ADDRESS, _CASE, _FINAL, Address, ChannelName, Code, Hex32, Model
from api.schemas.proofs import Proof

FilingDecisionName = Literal["accepted", "duplicate", "out_of_scope", "spam"]


class FilingAnswerView(Model):
    """The agency's answer to a filing, as recorded on the ledger."""

    seq: int = Field(ge=0, description="the answer's entry", examples=[43])
    decision: FilingDecisionName = Field(description="accepted, or why it was rejected", examples=["accepted"])
    case_id: Hex32 | None = Field(
        description="the case an acceptance opened (its id derives from the filing); null for a rejection",
        examples=[_CASE],
    )
    duplicate_of: Hex32 | None = Field(description="the case a duplicate duplicates; null otherwise", examples=[None])
    reason_hash: Hex32 | None = Field(
        description="keccak256 of the published reason (a rejection) or note; null when none", examples=[None]
    )
    answered_at: int = Field(description="block time of the answer", examples=[1793491200])
    late: bool = Field(description="whether the answer came after `answer_due`", examples=[False])


class FilingView(Model):
    """A citizen's filing: what the ledger holds of it (public codes and hashes; the request's text stays off chain),
    when its answer is due, and the answer."""

    seq: int = Field(ge=0, description="the filing's entry: its id", examples=[42])
    agency_id: Code = Field(description="the agency asked", examples=["DEMO-ROADS"])
    commitment_id: Code = Field(description="the commitment (service) it falls under", examples=["STREETLIGHT-48H"])
    district: Code = Field(description="district code", examples=["EAST"])
    channel: ChannelName | None = Field(description="intake channel (null: a code the API has no name for)",
                                        examples=["web"])
    content_hash: Hex32 = Field(description="keccak256(salt ‖ content) of the request's private text and attachments")
    receipt: Address = Field(description="the filer's key: the only one that may rate or dispute the case",
                             examples=[_ADDRESS])
    relayer: Address = Field(description="who submitted the filing's transaction (not signed by the citizen)",
                             examples=[_ADDRESS])
    filed_at: int = Field(description="the filing's block time: the clock of its case starts here",
                          examples=[1793487600])
    answer_due: int = Field(
        description="when the agency's answer is due: the end (local time) of the first working day after the day "
        "of the filing, by the jurisdiction's published calendars (Monday to Friday for a year without one)",
        examples=[1793577600],
    )
    overdue: bool = Field(description="unanswered past `answer_due`, as of this answer", examples=[False])
    answer: FilingAnswerView | None = Field(description="the agency's answer; null while it has not answered")
    final: bool = Field(description=_FINAL, examples=[True])
    proof: Proof


class FilingPage(Model):
    items: list[FilingView] = Field(description="filings in seq order")
    next: int | None = Field(description="pass as `after` for the next page; null when this page is the last")
