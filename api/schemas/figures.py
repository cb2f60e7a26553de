"""Published figures (``api.routes.figures``: metrics and scorecards; ``api.routes.commitments``: a commitment's
trend): the values ``ledger.metrics`` defines, and the selection they are for."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from api.schemas._common import _BATCHES_WITHHELD, _ENTRIES_WITHHELD, Code, Model, Rate


class MetricsValues(Model):
    """The published figures (ledger/metrics.py defines each one exactly; an auditor's script recomputes them)."""

    cases_opened: int = Field(ge=0, description="cases whose opening is in the range", examples=[120])
    cases_closed: int = Field(ge=0, description="fulfilled + rejected + withdrawn", examples=[110])
    fulfilled: int = Field(ge=0, description="cases fulfilled in the range", examples=[100])
    rejected: int = Field(ge=0, description="cases rejected in the range", examples=[6])
    withdrawn: int = Field(ge=0, description="cases withdrawn in the range", examples=[4])
    on_time: int = Field(ge=0, description="of those fulfilled with a due time, fulfilled by it", examples=[95])
    on_time_eligible: int = Field(ge=0, description="fulfilled in the range with a due time", examples=[100])
    on_time_rate: Rate | None = Field(
        description="on_time / on_time_eligible (null: none eligible)", examples=["0.9500"]
    )
    target_rate: Rate | None = Field(
        description="the commitment's target (its latest version not voided); null unless one commitment is selected",
        examples=["0.9500"],
    )
    median_fulfil_seconds: int | None = Field(
        description="median time to fulfil, hold time excluded (nearest rank)", examples=[86400]
    )
    p90_fulfil_seconds: int | None = Field(description="90th percentile of the same (nearest rank)", examples=[160000])
    open_cases: int = Field(ge=0, description="cases open at as_of (the range does not apply)", examples=[12])
    overdue_cases: int = Field(
        ge=0, description="of those, past their due time at as_of (holds excluded)", examples=[2]
    )
    events_recorded: int = Field(
        ge=0, description="case events recorded (block time) in the range, voided ones left out"
    )
    latency_median_seconds: int | None = Field(description="median recording latency: block time − claimed time")
    latency_max_seconds: int | None = Field(description="largest recording latency")
    late_recordings: int = Field(ge=0, description="events recorded more than 24 h after their claimed time")
    rejection_rate: Rate | None = Field(description="rejected / (fulfilled + rejected) over cases closed in the range")
    ratings: int = Field(
        ge=0, description="ratings by receipt holders recorded (block time) in the range", examples=[40]
    )
    rating_average: str | None = Field(
        pattern=r"^[1-5]\.\d{4}$",
        description="mean score of those ratings, 1 to 5, as a 4-place decimal (null: no rating)",
        examples=["4.2500"],
    )
    rating_distribution: list[int] = Field(
        min_length=5, max_length=5, description="how many of those ratings scored 1, 2, 3, 4 and 5",
        examples=[[1, 2, 5, 12, 20]],
    )
    rating_response_rate: Rate | None = Field(
        description="of the cases closed in the range that have a receipt, the share rated by as_of",
        examples=["0.3600"],
    )
    disputes: int = Field(ge=0, description="disputes of a fulfilment recorded in the range", examples=[3])
    disputes_unanswered: int = Field(
        ge=0, description="disputes whose 10-day answer deadline passed before as_of without an answer (a snapshot)",
        examples=[1],
    )
    reopened: int = Field(ge=0, description="Reopened case events recorded in the range", examples=[2])
    ratings_by_key_origin: list[int] = Field(
        min_length=3, max_length=3,
        description="those ratings by the origin of the key that signed them: filed (the citizen's own, with the "
        "request), claimed (a printed code moved to the holder's key), agency-issued (a code the agency printed)",
        examples=[[12, 3, 20]],
    )
    rating_average_by_key_origin: list[Annotated[str, Field(pattern=r"^[1-5]\.\d{4}$")] | None] = Field(
        min_length=3, max_length=3, description="the mean score of each of those, in the same order",
        examples=[["4.2500", "3.0000", "4.9000"]],
    )
    disputes_by_key_origin: list[int] = Field(
        min_length=3, max_length=3, description="disputes in the range by the origin of their key, in the same order",
        examples=[[2, 0, 1]],
    )
    filings: int = Field(ge=0, description="citizens' filings made in the range (by block time)", examples=[40])
    filings_accepted: int = Field(ge=0, description="filings accepted in the range (their cases opened)",
                                  examples=[31])
    filings_rejected: int = Field(ge=0, description="filings rejected in the range (duplicate, out of scope, spam)",
                                  examples=[6])
    filings_answered_late: int = Field(
        ge=0, description="of the filings answered in the range, those answered after their window (one working day)",
        examples=[2],
    )
    filings_overdue: int = Field(
        ge=0, description="filings unanswered at as_of past their answer's due time (a snapshot)", examples=[1]
    )
    late_rejections: int = Field(
        ge=0, description="cases rejected in the range after their due time", examples=[1]
    )
    late_withdrawals: int = Field(
        ge=0, description="cases recorded withdrawn in the range after their due time", examples=[0]
    )
    deadline_cases: int = Field(
        ge=0, description="on_time_eligible + late_rejections + late_withdrawals + overdue_cases: every case whose "
        "deadline was met or missed in the range, the overdue open ones included", examples=[110],
    )
    deadline_rate: Rate | None = Field(
        description="the on-time rate a city publishes: on_time / deadline_cases (late cases left open, rejected or "
        "withdrawn count against it)", examples=["0.8636"],
    )
    responses_due: int = Field(
        ge=0, description="cases opened in the range whose response was made by as_of or was due before it",
        examples=[118],
    )
    responded_on_time: int = Field(
        ge=0, description="of those, responded to (accepted, put on hold or answered) by the response's due time, one "
        "working day", examples=[112],
    )
    response_rate: Rate | None = Field(description="responded_on_time / responses_due", examples=["0.9492"])
    answers_with_receipt: int = Field(
        ge=0, description="cases fulfilled or rejected in the range that have a receipt (their citizen could contest "
        "the answer)", examples=[80],
    )
    resolved: int = Field(
        ge=0, description="of those, the fulfilled ones that no dispute contested before as_of", examples=[73]
    )
    resolution_rate: Rate | None = Field(description="resolved / answers_with_receipt", examples=["0.9125"])
    satisfaction_rate: Rate | None = Field(
        description="ratings in the range that scored 4 or 5, over all ratings in it", examples=["0.8000"]
    )
    rating_coverage: Rate | None = Field(
        description="of the cases closed in the range, the share rated by as_of (with or without a receipt)",
        examples=["0.3300"],
    )
    bad_ratings: int = Field(
        ge=0, description="cases whose rating of 1 or 2 was made in the range (差评)", examples=[4]
    )
    rectifications_due: int = Field(
        ge=0, description="of those made before as_of, the ones rectified by as_of or whose rectification was due "
        "before it (15 working days)", examples=[3],
    )
    rectified_on_time: int = Field(
        ge=0, description="of those, rectified by the due time (差评整改)", examples=[3]
    )
    rectification_rate: Rate | None = Field(description="rectified_on_time / rectifications_due",
                                            examples=["1.0000"])


class MetricsFilterEcho(Model):
    """The selection the figures are for, as applied (times as unix seconds): repeat it to reproduce them."""

    agency_id: Code | None = Field(default=None, examples=["DEMO-ROADS"])
    commitment_id: Code | None = Field(default=None, examples=["STREETLIGHT-48H"])
    from_: int | None = Field(default=None, alias="from", description="start of the range (inclusive)")
    to: int | None = Field(default=None, description="end of the range (exclusive)")
    district: Code | None = Field(default=None, examples=["EAST"])
    channel: int | None = Field(default=None, description="intake channel code", examples=[2])
    as_of: int = Field(description="instant of the open and overdue counts", examples=[1793491200])


class MetricsResponse(Model):
    filter: MetricsFilterEcho
    metrics: MetricsValues


class Scorecard(Model):
    agency_id: Code = Field(examples=["DEMO-ROADS"])
    agency_name_zh: str | None = Field(examples=["示范市道路管理所"])
    agency_name_en: str | None = Field(examples=["Demo City Roads Office"])
    commitment_id: Code | None = Field(default=None, description="set when by=commitment", examples=["STREETLIGHT-48H"])
    commitment_name_zh: str | None = Field(default=None, examples=["路灯故障48小时内修复"])
    commitment_name_en: str | None = Field(default=None, examples=["Dark streetlight repaired within 48 hours"])
    target_rate: Rate | None = Field(
        default=None, description="the commitment's target on-time rate (by=commitment)", examples=["0.9500"]
    )
    retired: bool | None = Field(default=None, description="whether the commitment is retired (by=commitment)")
    batches_withheld: int | None = Field(
        default=None, ge=0, description=_BATCHES_WITHHELD + ", whatever the filter (by=agency; null by commitment: "
        "a withheld batch's events are not known)",
        examples=[0],
    )
    entries_withheld: int | None = Field(
        default=None, ge=0, description=_ENTRIES_WITHHELD + " (by=agency; null by commitment)", examples=[0]
    )
    metrics: MetricsValues
    ranks: dict[str, int | None] = Field(
        description="its rank among the scorecards by each ranked figure (1: the highest rate; equal rates share a "
        "rank); null when that rate rests on fewer cases than min_ranked_sample, or there is none",
        examples=[{"deadline_rate": 1, "response_rate": 3, "resolution_rate": None}],
    )


class ScorecardsResponse(Model):
    by: Literal["agency", "commitment"] = Field(description="one scorecard per agency or per commitment")
    filter: MetricsFilterEcho
    items: list[Scorecard] = Field(
        description="one per agency (commitment) having a case matching the filter, at any time, in id order"
    )
    min_ranked_sample: int = Field(
        description="the fewest cases a rate may rest on to be ranked (its denominator)", examples=[30]
    )


class TrendBucket(Model):
    start: int = Field(description="start of the bucket (inclusive)", examples=[1793404800])
    end: int = Field(description="end of the bucket (exclusive)", examples=[1793491200])
    on_time_rate: Rate | None = Field(description="metrics.on_time_rate, repeated for charts", examples=["0.9500"])
    metrics: MetricsValues = Field(description="every figure of the bucket (open and overdue at min(end, now))")


class TrendResponse(Model):
    agency_id: Code = Field(examples=["DEMO-ROADS"])
    commitment_id: Code = Field(examples=["STREETLIGHT-48H"])
    bucket: Literal["day", "week"] = Field(description="bucket length: a day or a week")
    from_: int = Field(alias="from", description="start of the first bucket")
    to: int = Field(description="end of the last bucket")
    target_rate: Rate | None = Field(description="the commitment's target on-time rate", examples=["0.9500"])
    buckets: list[TrendBucket]
