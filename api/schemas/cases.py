"""Cases and their events (``/api/v1/cases``, ``api.routes.cases``; read by ``api.read.cases``)."""

from __future__ import annotations

from pydantic import Field

from api.schemas._common import (
    _CASE,
    _FINAL,
    _NOT_APPLIED,
    _RECORD,
    CaseActionName,
    CaseStatus,
    ChannelName,
    Code,
    Hex32,
    Model,
)
from api.schemas.proofs import Proof
from ledger.cases import BAD_RATING_MAX, RECTIFICATION_WORKING_DAYS
from ledger.filings import ANSWER_WINDOW_WORKING_DAYS
from ledger.workdays import LOCAL_UTC_OFFSET_SECONDS

_LOCAL = f"24:00 at UTC+{LOCAL_UTC_OFFSET_SECONDS // 3600}"
_WORKING_DAYS = "by the jurisdiction's published holiday calendar; Monday to Friday in a year without one"


class CaseEventItem(Model):
    seq: int = Field(ge=0, examples=[57])
    action: CaseActionName = Field(examples=["opened"])
    action_code: int = Field(ge=0, le=255, examples=[1])
    occurred_at: int = Field(description="time the agency says it happened", examples=[1793487600])
    recorded_at: int = Field(description="block time: when it was recorded on chain", examples=[1793491200])
    recording_latency_seconds: int = Field(
        description="recorded_at − occurred_at (more than a day is a late recording)", examples=[3600]
    )
    details_hash: Hex32 = Field(description="keccak256 of the event's details (kept off chain)", examples=[_RECORD])
    commitment_id: Code | None = Field(description="on opened events: the commitment", examples=["STREETLIGHT-48H"])
    district: Code | None = Field(description="on opened events: the district", examples=["EAST"])
    channel: int | None = Field(description="on opened events: the intake channel code", examples=[2])
    voided_by: int | None = Field(description="seq of the correction that voided this event, if any", examples=[None])
    not_applied_reason: str | None = Field(default=None, description=_NOT_APPLIED, examples=[None])
    final: bool = Field(description=_FINAL)
    proof: Proof


class CaseView(Model):
    """A case: its state folded from its events that are not voided (ledger/cases.py), and every event with proof.

    A case whose opening was never recorded (no correction voids one) has no state: then only ``agency_id``,
    ``case_id`` and ``events`` are set."""

    agency_id: Code = Field(examples=["DEMO-ROADS"])
    case_id: Hex32 = Field(description="opaque case id (from the citizen's receipt)", examples=[_CASE])
    status: CaseStatus | None = Field(examples=["fulfilled"])
    commitment_id: Code | None = Field(examples=["STREETLIGHT-48H"])
    commitment_version: int | None = Field(description="version in force when the case opened", examples=[1])
    commitment_name_zh: str | None = Field(default=None, examples=["路灯故障48小时内修复"])
    commitment_name_en: str | None = Field(default=None, examples=["Dark streetlight repaired within 48 hours"])
    district: Code | None = Field(examples=["EAST"])
    channel: int | None = Field(description="intake channel code", examples=[2])
    channel_name: ChannelName | None = Field(
        description="the channel's name, when it is a known code", examples=["hotline"]
    )
    opened_at: int | None = Field(examples=[1793487600])
    closed_at: int | None = Field(description="when fulfilled, rejected or withdrawn", examples=[1793574000])
    due_at: int | None = Field(
        description=f"due time, extended by completed holds (a working-day deadline: {_WORKING_DAYS}); null only "
        "without a commitment version",
        examples=[1793660400],
    )
    hold_seconds: int | None = Field(description="total time on hold (does not count against the deadline)")
    on_hold_since: int | None = Field(description="start of the current hold, while on hold")
    fulfil_seconds: int | None = Field(description="opening to fulfilment, hold time excluded (fulfilled only)")
    on_time: bool | None = Field(description="fulfilled by due_at (fulfilled cases with a due time only)")
    overdue: bool | None = Field(description="open and past its due time now, holds excluded (metrics definition)")
    escalated: bool | None = Field(examples=[False])
    invalid_transitions: int | None = Field(description="events that broke the case state machine", examples=[0])
    has_receipt: bool | None = Field(
        description="whether the citizen was given a receipt (only its holder can rate or dispute the case)",
        examples=[True],
    )
    rating: int | None = Field(description="the receipt holder's rating, 1 to 5 (null: not rated)", examples=[4])
    rated_at: int | None = Field(description="block time of the rating", examples=[1793577600])
    disputes: int | None = Field(description="disputes of the case's fulfilment by the receipt holder", examples=[0])
    reopened: int | None = Field(description="times the agency reopened the case", examples=[0])
    dispute_open: bool | None = Field(description="a dispute awaits the agency's answer", examples=[False])
    responded_at: int | None = Field(
        description="the agency's response: the claimed time (occurred_at) of the case's first valid accepted, "
        "on_hold, fulfilled or rejected event (escalated and withdrawn are no response); null: no response yet",
        examples=[1793491200],
    )
    response_due: int | None = Field(
        description=f"when the response is due, as a filing's answer: the end ({_LOCAL}) of working day "
        f"{ANSWER_WINDOW_WORKING_DAYS} after the day the case opened ({_WORKING_DAYS}). The response is late when "
        "responded_at is after it, overdue while there is none past it",
        examples=[1793635200],
    )
    rectified_at: int | None = Field(
        description=f"the rectification of a bad rating (1 to {BAD_RATING_MAX}, 差评整改): the claimed time "
        "(occurred_at) of the agency's rectified event, valid once and only after such a rating (its details_hash "
        "is the rectification report); null: not rectified",
        examples=[1793750400],
    )
    rectification_due: int | None = Field(
        description=f"when the rectification of a bad rating is due: the end ({_LOCAL}) of working day "
        f"{RECTIFICATION_WORKING_DAYS} after the day of the rating's block time (rated_at; {_WORKING_DAYS}); null: "
        "the case has no bad rating",
        examples=[1795449600],
    )
    events: list[CaseEventItem] = Field(
        description="every event of the case, in ledger order: voided ones included (voided_by), and batched events "
        "not applied to it (not_applied_reason)"
    )
