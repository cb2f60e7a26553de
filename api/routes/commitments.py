"""Commitments, under ``/api/v1``: the current version of each, one commitment's every version, one version, and a
commitment's on-time rate per day or week."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import time
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Request, Response
from sqlalchemy import Connection

from api.deps import Figures, Settings, Snapshot
from api.errors import invalid, not_found, query_timeout
from api.http import (
    IMMUTABLE,
    SHORT,
    TIME_DESCRIPTION,
    TIME_EXAMPLES,
    TIME_PATTERN,
    conditional,
    etag_of,
    next_link,
    view_etag,
)
from api.read.commitments import (
    commitment_history,
    commitment_version,
    commitments_page,
    decode_commitment_cursor,
    encode_commitment_cursor,
)
from api.routes._common import (
    DEFAULT_LIMIT,
    INT64_MAX,
    LINK_HEADER,
    NOT_FOUND,
    NOT_MODIFIED,
    AgencyPath,
    AgencyQuery,
    CommitmentPath,
    Limit,
    metric_values,
    ok,
    read_route,
    read_router,
    require_agency,
    state_of,
    unix_now,
)
from api.routes.figures import figures, minute_time
from api.schemas.commitments import CommitmentHistory, CommitmentPage, CommitmentVersion
from api.schemas.figures import TrendBucket, TrendResponse
from ledger.metrics import MetricsFilter, compute_metrics, whole_step

TAG = {"name": "commitments", "description": "Service commitments, every version"}
#: most buckets one trend request may ask for (each is one compute_metrics)
MAX_TREND_BUCKETS = 400
DAY = 86_400

router = read_router("commitments")


@read_route(
    router,
    "/commitments",
    operation_id="listCommitments",
    response_model=CommitmentPage,
    summary="Commitments: the current version of each",
    responses={**ok("A page of commitments", headers=LINK_HEADER), **NOT_MODIFIED, **NOT_FOUND},
)
def list_commitments(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    agency_id: AgencyQuery = None,
    after: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z0-9_-]{1,400}$", description="cursor: the `next` of the previous page"),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Any:
    """Every commitment (of one agency, if given): its current version (the latest not voided), whether it is
    retired, and how many versions it has had. `GET /commitments/{agency_id}/{commitment_id}` has them all."""
    state = state_of(conn, settings)
    if (cached := conditional(request, response, view_etag(request, state.position), SHORT)) is not None:
        return cached
    require_agency(conn, agency_id)
    key = None
    if after is not None:
        key = decode_commitment_cursor(after)
        if key is None:
            raise invalid("after: not a cursor this API gave out; pass the `next` of a page", param="after")
    items, more = commitments_page(conn, state, agency_id, key, limit)
    nxt = encode_commitment_cursor(items[-1].agency_id, items[-1].commitment_id) if more and items else None
    if nxt is not None:
        params: dict[str, Any] = {"after": nxt, "limit": limit}
        if agency_id is not None:
            params = {"agency_id": agency_id, **params}
        response.headers["Link"] = next_link(request, **params)
    return CommitmentPage(items=items, next=nxt)


@read_route(
    router,
    "/commitments/{agency_id}/{commitment_id}",
    operation_id="getCommitment",
    response_model=CommitmentHistory,
    summary="One commitment: every version, with proofs",
    responses={**ok("The commitment"), **NOT_MODIFIED, **NOT_FOUND},
)
def get_commitment(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    agency_id: AgencyPath,
    commitment_id: CommitmentPath,
) -> Any:
    """Every version of the commitment, oldest first, each with its proof and whether a correction voided it;
    the version in force; the retirement, if any."""
    state = state_of(conn, settings)
    if (cached := conditional(request, response, view_etag(request, state.position), SHORT)) is not None:
        return cached
    found = commitment_history(conn, state, agency_id, commitment_id)
    if found is None:
        raise not_found(f"no commitment {commitment_id!r} of agency {agency_id!r}")
    return found


@read_route(
    router,
    "/commitments/{agency_id}/{commitment_id}/versions/{version}",
    operation_id="getCommitmentVersion",
    response_model=CommitmentVersion,
    summary="One version of a commitment (immutable once final)",
    responses={**ok("The version"), **NOT_MODIFIED, **NOT_FOUND},
)
def get_commitment_version(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    agency_id: AgencyPath,
    commitment_id: CommitmentPath,
    version: Annotated[int, Path(ge=1, le=2**31 - 1, description="version number, from 1", examples=[1])],
) -> Any:
    """The version as published. Once its block is final it never changes, and is served as immutable."""
    state = state_of(conn, settings)
    found = commitment_version(conn, state, agency_id, commitment_id, version)
    if found is None:
        raise not_found(f"no version {version} of commitment {commitment_id!r} of agency {agency_id!r}")
    if found.final:
        etag = etag_of("commitment-version", state.chain_id, state.contract_address, found.proof.seq,
                       found.proof.entry_hash, found.proof.block_hash)
        return conditional(request, response, etag, IMMUTABLE) or found
    return conditional(request, response, view_etag(request, state.position), SHORT) or found


@read_route(
    router,
    "/commitments/{agency_id}/{commitment_id}/trend",
    operation_id="getCommitmentTrend",
    response_model=TrendResponse,
    tags=["metrics"],  # besides the router's "commitments"
    summary="On-time rate of a commitment per day or week",
    responses={**ok("The trend"), **NOT_MODIFIED, **NOT_FOUND},
)
async def commitment_trend(
    request: Request,
    settings: Settings,
    cache: Figures,
    agency_id: AgencyPath,
    commitment_id: CommitmentPath,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            description="start of the first bucket (default: midnight UTC 29 days before `to`'s day, or the "
            f"Monday 25 weeks before its week, so 30 days or 26 weeks): {TIME_DESCRIPTION}",
            examples=TIME_EXAMPLES,
            json_schema_extra={"pattern": TIME_PATTERN},
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            description=f"end of the last bucket, exclusive (default: now): {TIME_DESCRIPTION}",
            examples=TIME_EXAMPLES,
            json_schema_extra={"pattern": TIME_PATTERN},
        ),
    ] = None,
    bucket: Annotated[Literal["day", "week"], Query(description="bucket length: 1 or 7 days")] = "day",
) -> Any:
    """The commitment's metrics per bucket, each computed by `ledger.metrics.compute_metrics` over
    `[start, end)` (so a bucket's on-time rate is exactly `/metrics` for that range). Buckets start at `from` and
    are 1 or 7 days long; the last one ends at `to`. At most 400 buckets. Times are taken to the whole minute, as
    the figures' are (`/metrics`)."""
    now = whole_step(unix_now())
    end = minute_time(to, "to")
    end = now if end is None else end
    length = DAY if bucket == "day" else 7 * DAY
    start = minute_time(from_, "from")
    if start is None:
        # calendar days or ISO weeks (UTC), the current one included: 1970-01-05 was a Monday
        origin = 0 if bucket == "day" else 4 * DAY
        current = end - 1 - (end - 1 - origin) % length
        start = current - ((30 if bucket == "day" else 26) - 1) * length
    if not 0 <= start < end <= INT64_MAX:
        raise invalid(f"from ({start}) must be before to ({end}), both from 1970 on (times are taken to the whole "
                      "minute)", param="from")
    count = -(-(end - start) // length)
    if count > MAX_TREND_BUCKETS:
        raise invalid(
            f"{count} buckets asked for; at most {MAX_TREND_BUCKETS}: narrow the range or use bucket=week",
            param="from",
        )

    # the buckets are computed in one snapshot, each a statement or a few: together they may run no longer than one
    # statement may, or the snapshot would be held (and a thread taken) for as long as a client's range makes it
    limit_ms = settings.statement_timeout_ms

    def compute(conn: Connection) -> TrendResponse:
        buckets = []
        target = None
        began = time.monotonic()
        for i in range(count):
            if limit_ms and (time.monotonic() - began) * 1000 > limit_ms:
                raise query_timeout(
                    f"the trend took longer than {limit_ms / 1000:g} s to compute ({i} of {count} buckets), so it was "
                    "stopped; ask for fewer buckets (a shorter range, or bucket=week)"
                )
            b0, b1 = start + i * length, min(start + (i + 1) * length, end)
            flt = MetricsFilter(agency_id=agency_id, commitment_id=commitment_id, start=b0, end=b1,
                                as_of=min(b1, now))
            values = metric_values(compute_metrics(conn, flt))
            target = values.target_rate
            buckets.append(TrendBucket(start=b0, end=b1, on_time_rate=values.on_time_rate, metrics=values))
        return TrendResponse(
            agency_id=agency_id,
            commitment_id=commitment_id,
            bucket=bucket,
            **{"from": start},  # by its alias: mypy (without pydantic's plugin) knows only that name
            to=end,
            target_rate=target,
            buckets=buckets,
        )

    asked = ("trend", agency_id, commitment_id, bucket, start, end, min(end, now))
    return await figures(request, settings, cache, asked, compute, (agency_id, commitment_id))
