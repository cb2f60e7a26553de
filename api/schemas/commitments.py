"""Commitments and their versions (``/api/v1/commitments``, ``api.routes.commitments``; read by
``api.read.commitments``)."""

from __future__ import annotations

from pydantic import Field

from api.schemas._common import _FINAL, _RECORD, Code, DeadlineUnitName, Hex32, Model, Rate
from api.schemas.proofs import Proof


class CommitmentVersion(Model):
    """One published version of a commitment: immutable once final."""

    agency_id: Code = Field(examples=["DEMO-ROADS"])
    commitment_id: Code = Field(examples=["STREETLIGHT-48H"])
    version: int = Field(ge=1, description="1 for the first publication, then +1 per amendment", examples=[1])
    service_code: Code = Field(description="service code", examples=["STREETLIGHT-48H"])
    name_zh: str = Field(examples=["路灯故障48小时内修复"])
    name_en: str = Field(examples=["Dark streetlight repaired within 48 hours"])
    deadline: int = Field(ge=0, description="the deadline, in deadline_unit", examples=[48])
    deadline_unit: DeadlineUnitName = Field(
        description="calendar_hours, or working_days (against the jurisdiction's holiday calendar)",
        examples=["calendar_hours"],
    )
    target_bps: int = Field(ge=0, description="target on-time rate in basis points", examples=[9500])
    target_rate: Rate = Field(description="target on-time rate, target_bps / 10000", examples=["0.9500"])
    valid_from: int = Field(description="from when the version applies", examples=[1791676800])
    terms_hash: Hex32 = Field(description="keccak256 of the full terms text (published elsewhere)", examples=[_RECORD])
    occurred_at: int = Field(description="when the agency says it published it", examples=[1791676800])
    final: bool = Field(description=_FINAL)
    proof: Proof


class CommitmentVersionState(CommitmentVersion):
    voided_by: int | None = Field(
        description="seq of the correction that voided this version (a voided version does not count), if any",
        examples=[None],
    )


class Retirement(Model):
    reason_hash: Hex32 = Field(description="keccak256 of the reason text", examples=[_RECORD])
    occurred_at: int = Field(description="when the agency says it retired the commitment", examples=[1793491200])
    final: bool = Field(description=_FINAL)
    proof: Proof


class CommitmentSummary(CommitmentVersionState):
    """The current version of a commitment (its latest version not voided, or the latest if all are)."""

    retired: bool = Field(description="whether the commitment is retired (no new cases)", examples=[False])
    retirement: Retirement | None = Field(description="the retirement entry, if retired")
    version_count: int = Field(ge=1, description="how many versions were published", examples=[1])


class CommitmentPage(Model):
    items: list[CommitmentSummary] = Field(description="commitments in (agency id, commitment id) order")
    next: str | None = Field(description="pass as `after` for the next page; null on the last", examples=[None])


class CommitmentHistory(Model):
    agency_id: Code = Field(examples=["DEMO-ROADS"])
    commitment_id: Code = Field(examples=["STREETLIGHT-48H"])
    current_version: int = Field(ge=1, description="the version in force: the latest not voided", examples=[1])
    retired: bool = Field(examples=[False])
    retirement: Retirement | None = Field(description="the retirement entry, if retired")
    versions: list[CommitmentVersionState] = Field(description="every version, oldest first")
