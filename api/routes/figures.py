"""Published figures, under ``/api/v1``: metrics for any selection, and scorecards per agency or per commitment.

Both are served from the app's figures cache (``api.read.figures.FiguresCache``, keyed by the normalised selection and
the index's content, so exact) after one statement awaited on the event loop (``api.deps.IndexReader``) says where
the index stands, and computed in a snapshot in the thread pool only when the cache has not seen them. Either way the
answer is byte for byte what the response model serialises to (``response_model`` still documents it).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from api.clients import client_of
from api.deps import Figures, Settings, index_reader
from api.errors import invalid
from api.http import (
    SHORT,
    TIME_DESCRIPTION,
    TIME_EXAMPLES,
    TIME_PATTERN,
    cache_headers,
    etag_of,
    not_modified,
    not_modified_response,
    optional_time,
)
from api.overload import ExpensiveWork
from api.ratelimit import Budget
from api.read._common import CHANNEL_CODES, read_snapshot
from api.read.agencies import agency_names
from api.read.batches import withheld_counts
from api.read.commitments import commitment_info
from api.read.figures import FiguresCache
from api.read.state import STATE_SQL, index_content_in, index_content_of
from api.routes._common import (
    NOT_FOUND,
    NOT_MODIFIED,
    AgencyQuery,
    metric_values,
    ok,
    read_route,
    read_router,
    require_agency,
    serialise,
    unix_now,
)
from api.schemas._common import CODE_PATTERN
from api.schemas.figures import MetricsFilterEcho, MetricsResponse, Scorecard, ScorecardsResponse
from api.settings import ApiSettings
from ledger.metrics import (
    MIN_RANKED_SAMPLE,
    RANKED_FIGURES,
    InvalidFilter,
    Metrics,
    MetricsFilter,
    agency_scorecards,
    commitment_scorecards,
    compute_metrics,
    ranks,
    whole_step,
)

TAG = {"name": "metrics", "description": "Published figures, as ledger/metrics.py defines them"}

# --- the selection ----------------------------------------------------------------------------------------------------

CommitmentQuery = Annotated[
    str | None,
    Query(
        pattern=CODE_PATTERN,
        description="only this commitment of the agency (needs agency_id: commitment ids are per agency)",
        examples=["STREETLIGHT-48H"],
    ),
]
DistrictQuery = Annotated[
    str | None, Query(pattern=CODE_PATTERN, description="only cases of this district", examples=["EAST"])
]
CHANNEL_PATTERN = r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]\d?|counter|hotline|web|app|mail|proactive)$"
ChannelQuery = Annotated[
    str | None,
    Query(
        description="only cases that came in by this channel: a code 1–255 or a name (counter 1, hotline 2, web 3, "
        "app 4, mail 5, proactive 6)",
        examples=["hotline"],
        json_schema_extra={"pattern": CHANNEL_PATTERN},
    ),
]


def _time_query(what: str, alias: str | None = None) -> Any:
    return Query(
        alias=alias,
        description=f"{what}: {TIME_DESCRIPTION}",
        examples=TIME_EXAMPLES,
        json_schema_extra={"pattern": TIME_PATTERN},
    )


FromQuery = Annotated[str | None, _time_query("start of the range, inclusive (default: open)", alias="from")]
ToQuery = Annotated[str | None, _time_query("end of the range, exclusive (default: open)")]
AsOfQuery = Annotated[
    str | None,
    _time_query("instant of the open and overdue counts (default: the end of the range, or now if it has none or "
                "it is later)"),
]


def _channel(value: str | None) -> int | None:
    if value is None:
        return None
    if value in CHANNEL_CODES:
        return CHANNEL_CODES[value]
    if re.fullmatch(CHANNEL_PATTERN, value):
        return int(value)
    names = ", ".join(CHANNEL_CODES)
    raise invalid(f"channel: {value!r} is not a channel; give a code from 1 to 255 or one of {names}", param="channel")


def minute_time(value: str | None, name: str) -> int | None:
    """A time parameter (``api.http.parse_time``) taken to the whole minute (``ledger.metrics.TIME_STEP``): the rule
    of every figures endpoint's times."""
    moment = optional_time(value, name)
    return None if moment is None else whole_step(moment)


def _metrics_filter(
    *,
    agency_id: str | None,
    commitment_id: str | None,
    from_: str | None,
    to: str | None,
    district: str | None,
    channel: str | None,
    as_of: str | None,
    now: int,
) -> MetricsFilter:
    # to the whole minute: one answer per minute for the same question, computed once and cached, whoever asks it
    # and however many seconds they give; `filter` in the answer says the times applied, which the figures are of
    start, end, at = minute_time(from_, "from"), minute_time(to, "to"), minute_time(as_of, "as_of")
    if start is not None and end is not None and start == end:
        raise invalid("from and to fall in the same minute: times are taken to the whole minute, so the range would "
                      "be empty; give a range of a minute or more")
    if at is None:
        # the snapshot figures are taken at the end of the range, but never in the future (nothing is known there)
        at = whole_step(now) if end is None else min(end, whole_step(now))
    try:
        return MetricsFilter(
            agency_id=agency_id,
            commitment_id=commitment_id,
            start=start,
            end=end,
            district=district,
            channel=_channel(channel),
            as_of=at,
        )
    except InvalidFilter as exc:
        # the filter names the range start and end; the API calls them from and to
        message = re.sub(r"\bend\b", "to", re.sub(r"\bstart\b", "from", str(exc)))
        raise invalid(message) from None


def _echo(flt: MetricsFilter) -> MetricsFilterEcho:
    return MetricsFilterEcho(
        agency_id=flt.agency_id,
        commitment_id=flt.commitment_id,
        **{"from": flt.start},  # by its alias: mypy (without pydantic's plugin) knows only that name
        to=flt.end,
        district=flt.district,
        channel=flt.channel,
        as_of=flt.now,
    )


# --- the endpoints ----------------------------------------------------------------------------------------------------

router = read_router("metrics")


def _etag(position: tuple[Any, ...], asked: tuple[Any, ...]) -> str:
    """The ETag of a figures answer: of the index position and of the selection as applied (not of the query's
    spelling: the same question asked in other words, or other seconds of the minute, is the same answer)."""
    return etag_of("figures", *position, *asked)


async def figures(
    request: Request,
    settings: ApiSettings,
    cache: FiguresCache,
    asked: tuple[Any, ...],
    compute: Callable[[Connection], Any],
    require: tuple[str | None, str | None],
) -> Response:
    """An answer of the figures endpoints: from the cache when the index holds what it held when the answer was
    computed (one statement to find out, no thread), else computed in one snapshot in the thread pool, and kept.
    A computation is expensive: charged to the client's expensive budget, run once however many ask for it at once,
    and shed first under load (``api.overload``)."""
    rows = await index_reader(request.app).rows(STATE_SQL, {})
    content = index_content_of(rows, settings.contract_address, settings.chain_id)
    etag = _etag(content.state.position, asked)
    if not_modified(request, etag):
        return not_modified_response(etag, SHORT)
    body = cache.get(asked, content.key)
    if body is None:
        work: ExpensiveWork = request.app.state.figure_work
        budget: Budget = request.app.state.expensive_budget

        async def computed() -> tuple[tuple[Any, ...], bytes]:
            return await run_in_threadpool(compute_figures, request.app, settings, cache, asked, compute, require)

        client = client_of(request)
        position, body = await work.run((asked, content.key), computed, admit=lambda: budget.charge(client),
                                        client=client)
        etag = _etag(position, asked)  # the index may have moved on since its state was read above
        if not_modified(request, etag):
            return not_modified_response(etag, SHORT)
    return Response(body, media_type="application/json", headers=cache_headers(etag, SHORT))


def compute_figures(
    app: Any,
    settings: ApiSettings,
    cache: FiguresCache,
    asked: tuple[Any, ...],
    compute: Callable[[Connection], Any],
    require: tuple[str | None, str | None],
) -> tuple[tuple[Any, ...], bytes]:
    """(the index position, the answer) read in one snapshot, whose state the figures and their cache key are of."""
    with read_snapshot(app.state.store) as conn:
        if conn.dialect.name == "postgresql":
            # one core per computation: its share of time (``api.overload``) is then its share of the machine, and
            # parallel workers do not take the cores the cheap reads need
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        content = index_content_in(conn, settings.contract_address, settings.chain_id)

        def computed() -> bytes:
            require_agency(conn, *require)
            return serialise(compute(conn))

        return content.state.position, cache.get_or_compute(asked, content.key, computed)


@read_route(
    router,
    "/metrics",
    operation_id="getMetrics",
    response_model=MetricsResponse,
    summary="Published metrics for any selection",
    responses={**ok("The metrics"), **NOT_MODIFIED, **NOT_FOUND},
)
async def get_metrics(
    request: Request,
    settings: Settings,
    cache: Figures,
    agency_id: AgencyQuery = None,
    commitment_id: CommitmentQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    district: DistrictQuery = None,
    channel: ChannelQuery = None,
    as_of: AsOfQuery = None,
) -> Any:
    """`ledger.metrics.compute_metrics` of the selection: cases opened and closed, on-time rate against the
    target, median and p90 time to fulfil (hold time excluded), open and overdue cases, recording latency,
    rejection rate. The range is `[from, to)`; `filter` in the answer is the selection as applied, to repeat."""
    flt = _metrics_filter(
        agency_id=agency_id, commitment_id=commitment_id, from_=from_, to=to, district=district,
        channel=channel, as_of=as_of, now=unix_now(),
    )

    def compute(conn: Connection) -> MetricsResponse:
        return MetricsResponse(filter=_echo(flt), metrics=metric_values(compute_metrics(conn, flt)))

    return await figures(request, settings, cache, ("metrics", flt), compute, (agency_id, commitment_id))


@read_route(
    router,
    "/scorecards",
    operation_id="getScorecards",
    response_model=ScorecardsResponse,
    summary="Metrics per agency or per commitment",
    responses={**ok("The scorecards"), **NOT_MODIFIED, **NOT_FOUND},
)
async def get_scorecards(
    request: Request,
    settings: Settings,
    cache: Figures,
    by: Annotated[Literal["agency", "commitment"], Query(description="one scorecard per agency or commitment")] = (
        "agency"
    ),
    agency_id: AgencyQuery = None,
    commitment_id: CommitmentQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    district: DistrictQuery = None,
    channel: ChannelQuery = None,
    as_of: AsOfQuery = None,
) -> Any:
    """`ledger.metrics.agency_scorecards` or `commitment_scorecards`: for each agency (commitment) that has a
    case matching the filter at any time, the metrics of the filter narrowed to it, with names and targets; an
    agency's scorecard also says how many of its batches and entries are withheld (not in the metrics: their batch
    file is missing or does not match the anchor)."""
    flt = _metrics_filter(
        agency_id=agency_id, commitment_id=commitment_id, from_=from_, to=to, district=district,
        channel=channel, as_of=as_of, now=unix_now(),
    )

    def compute(conn: Connection) -> ScorecardsResponse:
        names = agency_names(conn)
        items: list[Scorecard] = []
        scored: dict[Any, Metrics] = (
            agency_scorecards(conn, flt) if by == "agency" else commitment_scorecards(conn, flt)
        )
        by_figure = {figure: ranks(scored, figure) for figure in RANKED_FIGURES}

        def ranks_of(key: Any) -> dict[str, int | None]:
            return {figure: by_figure[figure][key] for figure in RANKED_FIGURES}

        if by == "agency":
            withheld = withheld_counts(conn, agency_id)
            for aid, metrics in scored.items():
                zh, en = names.get(aid, (None, None))
                batches_withheld, entries_withheld = withheld.get(aid, (0, 0))
                items.append(
                    Scorecard(agency_id=aid, agency_name_zh=zh, agency_name_en=en,
                              batches_withheld=batches_withheld, entries_withheld=entries_withheld,
                              metrics=metric_values(metrics), ranks=ranks_of(aid))
                )
        else:
            info = commitment_info(conn, agency_id)
            for (aid, cid), metrics in scored.items():
                zh, en = names.get(aid, (None, None))
                about = info.get((aid, cid))
                items.append(
                    Scorecard(
                        agency_id=aid,
                        agency_name_zh=zh,
                        agency_name_en=en,
                        commitment_id=cid,
                        commitment_name_zh=about.name_zh if about else None,
                        commitment_name_en=about.name_en if about else None,
                        target_rate=str(metrics.target_rate) if metrics.target_rate is not None else None,
                        retired=about.retired if about else None,
                        metrics=metric_values(metrics),
                        ranks=ranks_of((aid, cid)),
                    )
                )
        return ScorecardsResponse(by=by, filter=_echo(flt), items=items, min_ranked_sample=MIN_RANKED_SAMPLE)

    return await figures(request, settings, cache, ("scorecards", by, flt), compute, (agency_id, commitment_id))

