"""Public read API, under ``/api/v1``: chain facts, agencies, commitments, metrics and scorecards, cases, the raw
entry log and bulk exports. No login; every record carries its proof.

``register(app, settings)`` includes the router and installs what reads need around it: the error shape
(``api.errors``), per-address rate limiting (``api.ratelimit``) and CORS for GET/HEAD/OPTIONS. Caching follows
``api.http``: immutable data (final entries, final commitment versions, full pages of final entries) is served
``immutable`` with a strong ETag; everything else with an ETag of the index position and a short max-age; a matching
``If-None-Match`` is answered 304.

The two hot paths answer without a thread: a case lookup is one statement awaited on the event loop
(``api.deps.IndexReader``), its JSON built from the rows; metrics and scorecards are served from
``api.queries.FiguresCache`` (keyed by the normalised selection and the index's content, so exact) after one such
statement says where the index stands, and computed in a snapshot in the thread pool only when the cache has not seen
them. Either way the answer is byte for byte what the response model serialises to (``response_model`` still
documents it).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, some of them local to build_router.

import csv
import io
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import requests
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from api import attestations, errors, models, queries
from api.batches import Unavailable, batch_proofs, verified_files
from api.deps import close_index_reader, get_snapshot, index_reader
from api.errors import ApiError, invalid, not_found
from api.http import (
    IMMUTABLE,
    SHORT,
    TIME_DESCRIPTION,
    TIME_EXAMPLES,
    TIME_PATTERN,
    cache_headers,
    conditional,
    etag_of,
    next_link,
    not_modified,
    not_modified_response,
    optional_time,
    view_etag,
)
from api.ratelimit import RateLimitMiddleware
from api.settings import ApiSettings
from ledger.batches import HEADER as BATCH_HEADER
from ledger.metrics import (
    InvalidFilter,
    Metrics,
    MetricsFilter,
    agency_scorecards,
    commitment_scorecards,
    compute_metrics,
)

PREFIX = "/api/v1"
#: rows per chunk of an export stream (each chunk is one write to the client)
EXPORT_CHUNK_ROWS = 500
#: most buckets one trend request may ask for (each is one compute_metrics)
MAX_TREND_BUCKETS = 400
DAY = 86_400
INT64_MAX = 2**63 - 1
#: how long a node's answer about its head is reused, and how long the node is given to answer
NODE_CACHE_SECONDS = 1.0
NODE_TIMEOUT = (1.0, 2.0)

# --- shared parameter and response declarations ----------------------------------------------------------------------

CODE_DOC = "printable ASCII without spaces, 1 to 66 characters (as written on chain)"
AgencyPath = Annotated[
    str, Path(pattern=models.CODE_PATTERN, description=f"agency code, {CODE_DOC}", examples=["DEMO-ROADS"])
]
CommitmentPath = Annotated[
    str,
    Path(pattern=models.CODE_PATTERN, description=f"commitment code, {CODE_DOC}", examples=["STREETLIGHT-48H"]),
]
AgencyQuery = Annotated[
    str | None,
    Query(pattern=models.CODE_PATTERN, description=f"only this agency ({CODE_DOC})", examples=["DEMO-ROADS"]),
]
CommitmentQuery = Annotated[
    str | None,
    Query(
        pattern=models.CODE_PATTERN,
        description="only this commitment of the agency (needs agency_id: commitment ids are per agency)",
        examples=["STREETLIGHT-48H"],
    ),
]
DistrictQuery = Annotated[
    str | None, Query(pattern=models.CODE_PATTERN, description="only cases of this district", examples=["EAST"])
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

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": models.ErrorResponse, "description": "Invalid request (the problems are in error.detail)"},
    429: {
        "model": models.ErrorResponse,
        "description": "Too many requests from this address",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}
NOT_FOUND = {404: {"model": models.ErrorResponse, "description": "No such resource"}}
CACHE_HEADERS = {
    "ETag": {"description": "entity tag, for If-None-Match", "schema": {"type": "string"}},
    "Cache-Control": {"description": "how long the answer may be reused", "schema": {"type": "string"}},
}
NOT_MODIFIED = {304: {"description": "Not modified: If-None-Match matched the current ETag"}}
LINK_HEADER = {
    "Link": {"description": 'RFC 8288 link to the next page (rel="next"), if any', "schema": {"type": "string"}}
}


def _ok(description: str, *, headers: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "headers": {**CACHE_HEADERS, **(headers or {})}}}


# --- node status ------------------------------------------------------------------------------------------------------


class NodeProbe:
    """Asks the configured node for its chain id and head, at most once a second, never for longer than a couple of
    seconds, and never failing: a node that is down is reported, not raised."""

    def __init__(self, rpc_url: str | None) -> None:
        self.rpc_url = rpc_url
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._session = requests.Session()

    def status(self) -> dict[str, Any]:
        if self.rpc_url is None:
            return {"configured": False, "reachable": None}
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < NODE_CACHE_SECONDS:
                return dict(self._cached[1])
            answer = self._ask()
            self._cached = (time.monotonic(), answer)
            return dict(answer)

    def _ask(self) -> dict[str, Any]:
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
        ]
        try:
            reply = self._session.post(self.rpc_url, json=batch, timeout=NODE_TIMEOUT)  # type: ignore[arg-type]
            reply.raise_for_status()
            results = {item["id"]: item for item in reply.json()}
            return {
                "configured": True,
                "reachable": True,
                "chain_id": int(results[1]["result"], 16),
                "head_block": int(results[2]["result"], 16),
            }
        except requests.RequestException as exc:
            # the message names the failure, never the URL (it may carry an API key)
            return {"configured": True, "reachable": False, "error": f"node unreachable: {type(exc).__name__}"}
        except (ValueError, KeyError, TypeError) as exc:
            error = f"node answered unexpectedly: {type(exc).__name__}"
            return {"configured": True, "reachable": False, "error": error}


# --- helpers ----------------------------------------------------------------------------------------------------------


def _state(conn: Connection, settings: ApiSettings) -> queries.IndexState:
    return queries.index_state(conn, settings.contract_address, settings.chain_id)



def _channel(value: str | None) -> int | None:
    if value is None:
        return None
    if value in queries.CHANNEL_CODES:
        return queries.CHANNEL_CODES[value]
    if re.fullmatch(CHANNEL_PATTERN, value):
        return int(value)
    names = ", ".join(queries.CHANNEL_CODES)
    raise invalid(f"channel: {value!r} is not a channel; give a code from 1 to 255 or one of {names}", param="channel")


def _require_agency(conn: Connection, agency_id: str | None, commitment_id: str | None = None) -> None:
    if agency_id is not None and not queries.agency_exists(conn, agency_id):
        raise not_found(f"no agency {agency_id!r}")
    if agency_id is not None and commitment_id is not None and not queries.commitment_exists(
        conn, agency_id, commitment_id
    ):
        raise not_found(f"no commitment {commitment_id!r} of agency {agency_id!r}")


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
    start, end, at = optional_time(from_, "from"), optional_time(to, "to"), optional_time(as_of, "as_of")
    if at is None:
        # the snapshot figures are taken at the end of the range, but never in the future (nothing is known there)
        at = now if end is None else min(end, now)
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


def _echo(flt: MetricsFilter) -> models.MetricsFilterEcho:
    return models.MetricsFilterEcho(
        agency_id=flt.agency_id,
        commitment_id=flt.commitment_id,
        **{"from": flt.start},  # by its alias: mypy (without pydantic's plugin) knows only that name
        to=flt.end,
        district=flt.district,
        channel=flt.channel,
        as_of=flt.now,
    )


def _values(metrics: Metrics) -> models.MetricsValues:
    return models.MetricsValues(**metrics.to_dict())


def _now() -> int:
    return int(time.time())


def _serialise(model: models.Model) -> bytes:
    """The JSON FastAPI makes of a response model (by alias, compact), for answers returned as a ready Response."""
    return model.model_dump_json(by_alias=True).encode()




# --- export writers ---------------------------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)  # a Merkle proof: its hashes, space-separated
    return value


def _chunks(rows: Iterator[dict[str, Any]], columns: tuple[str, ...], fmt: Literal["csv", "jsonl"]) -> Iterator[str]:
    """Rows as CSV (header first) or JSON Lines, ``EXPORT_CHUNK_ROWS`` rows to a chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    count = 0
    for row in rows:
        if writer is not None:
            writer.writerow([_csv_value(row[name]) for name in columns])
        else:
            buffer.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            buffer.write("\n")
        count += 1
        if count % EXPORT_CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


# --- the router -------------------------------------------------------------------------------------------------------


def read_route(router: APIRouter, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding GET (documented) and HEAD (the same answer without its body) for ``path`` to ``router``."""

    def decorate(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, endpoint, methods=["GET"], **kwargs)
        head_kwargs = {k: v for k, v in kwargs.items() if k in ("response_model", "response_class")}
        router.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False, **head_kwargs)
        return endpoint

    return decorate


def build_router(settings: ApiSettings, figures_cache: queries.FiguresCache | None = None) -> APIRouter:
    """The read API's routes; ``figures_cache`` keeps computed metrics and scorecards (a new one if not given)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            close_index_reader(app)  # before the app's lifespan closes the store

    router = APIRouter(prefix=PREFIX, responses=ERROR_RESPONSES, lifespan=lifespan)
    figures_cache = figures_cache if figures_cache is not None else queries.FiguresCache()
    probe = NodeProbe(settings.rpc_url)
    max_page = settings.max_page_size
    default_page = min(settings.default_page_size, max_page)
    Limit = Annotated[
        int,
        Query(ge=1, le=max_page, description=f"page size, at most {max_page}", examples=[default_page]),
    ]
    Snapshot = Annotated[Connection, Depends(get_snapshot)]

    def read(path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return read_route(router, path, **kwargs)

    # -- chain

    @read(
        "/chain",
        operation_id="getChain",
        response_model=models.ChainFacts,
        tags=["chain"],
        summary="Chain facts: where the ledger is and how far the index has read it",
        responses={**_ok("Chain facts"), **NOT_MODIFIED},
    )
    def chain_facts(request: Request, response: Response, conn: Snapshot) -> Any:
        """The chain id, contract address, indexed entry count and running hash (compare them with the contract's
        `entryCount()` and `runningHash()` at `last_indexed_block`), and the finalized block. The Merkle-anchored
        batches whose file is missing or cannot match the anchor are withheld: their entries count in `entry_count`
        but are not served; `batches_withheld` and `entries_withheld` say how many, `withheld_batches_url` lists them
        with why. When the service has a node, also that node's head (best effort: a node that is down is reported in
        `node`, never an error). `audit` says who audits the ledger and how far: each registered auditor's latest
        attestation, and "audited up to block `audited_to_block` by `auditors` auditors" (see `AuditSummary`)."""
        state = _state(conn, settings)
        withheld = queries.withheld_counts(conn).values() if any(state.withheld) else ()
        node = probe.status()
        if node.get("head_block") is not None and state.last_block >= 0:
            node["behind_blocks"] = max(0, node["head_block"] - state.last_block)
        facts = models.ChainFacts(
            chain_id=state.chain_id,
            contract_address=state.contract_address,
            deploy_block=state.deploy_block,
            entry_count=state.entry_count,
            running_hash=queries.to_hex(state.running_hash),
            last_indexed_block=state.last_block,
            finalized_block=state.finalized_block,
            halted_reason=state.halted_reason,
            batches_withheld=sum(b for b, _ in withheld),
            entries_withheld=sum(n for _, n in withheld),
            node=models.NodeStatus(**node),
            audit=attestations.audit_summary(conn, state, attestations.audit_reports(request.app)),
        )
        etag = etag_of("chain", facts.model_dump_json())
        return conditional(request, response, etag, SHORT) or facts

    # -- agencies

    @read(
        "/agencies",
        operation_id="listAgencies",
        response_model=models.AgencyPage,
        tags=["agencies"],
        summary="Agencies, with their current keys",
        responses={**_ok("A page of agencies", headers=LINK_HEADER), **NOT_MODIFIED},
    )
    def list_agencies(
        request: Request,
        response: Response,
        conn: Snapshot,
        after: Annotated[
            str | None,
            Query(pattern=models.CODE_PATTERN, description="cursor: the `next` of the previous page"),
        ] = None,
        limit: Limit = default_page,
    ) -> Any:
        """Every registered agency, with the keys authorised to write for it now and the proof of its registration."""
        state = _state(conn, settings)
        if (cached := conditional(request, response, view_etag(request, state.position), SHORT)) is not None:
            return cached
        items, more = queries.agencies_page(conn, state, after, limit)
        nxt = items[-1].agency_id if more and items else None
        if nxt is not None:
            response.headers["Link"] = next_link(request, after=nxt, limit=limit)
        return models.AgencyPage(items=items, next=nxt)

    @read(
        "/agencies/{agency_id}",
        operation_id="getAgency",
        response_model=models.AgencyDetail,
        tags=["agencies"],
        summary="One agency, with its key history",
        responses={**_ok("The agency"), **NOT_MODIFIED, **NOT_FOUND},
    )
    def get_agency(request: Request, response: Response, conn: Snapshot, agency_id: AgencyPath) -> Any:
        """The agency, its current keys, every authorisation and revocation of a key, each with its proof, and how
        many of its batches and entries are withheld (their batch file missing or not matching the anchor)."""
        state = _state(conn, settings)
        if (cached := conditional(request, response, view_etag(request, state.position), SHORT)) is not None:
            return cached
        found = queries.agency(conn, state, agency_id)
        if found is None:
            raise not_found(f"no agency {agency_id!r}")
        return found

    # -- commitments

    @read(
        "/commitments",
        operation_id="listCommitments",
        response_model=models.CommitmentPage,
        tags=["commitments"],
        summary="Commitments: the current version of each",
        responses={**_ok("A page of commitments", headers=LINK_HEADER), **NOT_MODIFIED, **NOT_FOUND},
    )
    def list_commitments(
        request: Request,
        response: Response,
        conn: Snapshot,
        agency_id: AgencyQuery = None,
        after: Annotated[
            str | None,
            Query(pattern=r"^[A-Za-z0-9_-]{1,400}$", description="cursor: the `next` of the previous page"),
        ] = None,
        limit: Limit = default_page,
    ) -> Any:
        """Every commitment (of one agency, if given): its current version (the latest not voided), whether it is
        retired, and how many versions it has had. `GET /commitments/{agency_id}/{commitment_id}` has them all."""
        state = _state(conn, settings)
        if (cached := conditional(request, response, view_etag(request, state.position), SHORT)) is not None:
            return cached
        _require_agency(conn, agency_id)
        key = None
        if after is not None:
            key = queries.decode_commitment_cursor(after)
            if key is None:
                raise invalid("after: not a cursor this API gave out; pass the `next` of a page", param="after")
        items, more = queries.commitments_page(conn, state, agency_id, key, limit)
        nxt = queries.encode_commitment_cursor(items[-1].agency_id, items[-1].commitment_id) if more and items else None
        if nxt is not None:
            params: dict[str, Any] = {"after": nxt, "limit": limit}
            if agency_id is not None:
                params = {"agency_id": agency_id, **params}
            response.headers["Link"] = next_link(request, **params)
        return models.CommitmentPage(items=items, next=nxt)

    @read(
        "/commitments/{agency_id}/{commitment_id}",
        operation_id="getCommitment",
        response_model=models.CommitmentHistory,
        tags=["commitments"],
        summary="One commitment: every version, with proofs",
        responses={**_ok("The commitment"), **NOT_MODIFIED, **NOT_FOUND},
    )
    def get_commitment(
        request: Request, response: Response, conn: Snapshot, agency_id: AgencyPath, commitment_id: CommitmentPath
    ) -> Any:
        """Every version of the commitment, oldest first, each with its proof and whether a correction voided it;
        the version in force; the retirement, if any."""
        state = _state(conn, settings)
        if (cached := conditional(request, response, view_etag(request, state.position), SHORT)) is not None:
            return cached
        found = queries.commitment_history(conn, state, agency_id, commitment_id)
        if found is None:
            raise not_found(f"no commitment {commitment_id!r} of agency {agency_id!r}")
        return found

    @read(
        "/commitments/{agency_id}/{commitment_id}/versions/{version}",
        operation_id="getCommitmentVersion",
        response_model=models.CommitmentVersion,
        tags=["commitments"],
        summary="One version of a commitment (immutable once final)",
        responses={**_ok("The version"), **NOT_MODIFIED, **NOT_FOUND},
    )
    def get_commitment_version(
        request: Request,
        response: Response,
        conn: Snapshot,
        agency_id: AgencyPath,
        commitment_id: CommitmentPath,
        version: Annotated[int, Path(ge=1, le=2**31 - 1, description="version number, from 1", examples=[1])],
    ) -> Any:
        """The version as published. Once its block is final it never changes, and is served as immutable."""
        state = _state(conn, settings)
        found = queries.commitment_version(conn, state, agency_id, commitment_id, version)
        if found is None:
            raise not_found(f"no version {version} of commitment {commitment_id!r} of agency {agency_id!r}")
        if found.final:
            etag = etag_of("commitment-version", state.chain_id, state.contract_address, found.proof.seq,
                           found.proof.entry_hash, found.proof.block_hash)
            return conditional(request, response, etag, IMMUTABLE) or found
        return conditional(request, response, view_etag(request, state.position), SHORT) or found

    @read(
        "/commitments/{agency_id}/{commitment_id}/trend",
        operation_id="getCommitmentTrend",
        response_model=models.TrendResponse,
        tags=["commitments", "metrics"],
        summary="On-time rate of a commitment per day or week",
        responses={**_ok("The trend"), **NOT_MODIFIED, **NOT_FOUND},
    )
    def commitment_trend(
        request: Request,
        response: Response,
        conn: Snapshot,
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
        are 1 or 7 days long; the last one ends at `to`. At most 400 buckets."""
        now = _now()
        end = optional_time(to, "to")
        end = now if end is None else end
        length = DAY if bucket == "day" else 7 * DAY
        start = optional_time(from_, "from")
        if start is None:
            # calendar days or ISO weeks (UTC), the current one included: 1970-01-05 was a Monday
            origin = 0 if bucket == "day" else 4 * DAY
            current = end - 1 - (end - 1 - origin) % length
            start = current - ((30 if bucket == "day" else 26) - 1) * length
        if not 0 <= start < end <= INT64_MAX:
            raise invalid(f"from ({start}) must be before to ({end}), both from 1970 on", param="from")
        count = -(-(end - start) // length)
        if count > MAX_TREND_BUCKETS:
            raise invalid(
                f"{count} buckets asked for; at most {MAX_TREND_BUCKETS}: narrow the range or use bucket=week",
                param="from",
            )
        state = _state(conn, settings)
        etag = view_etag(request, state.position, start, end, min(end, now))
        if (cached := conditional(request, response, etag, SHORT)) is not None:
            return cached
        _require_agency(conn, agency_id, commitment_id)
        buckets = []
        target = None
        for i in range(count):
            b0, b1 = start + i * length, min(start + (i + 1) * length, end)
            flt = MetricsFilter(agency_id=agency_id, commitment_id=commitment_id, start=b0, end=b1, as_of=min(b1, now))
            values = _values(compute_metrics(conn, flt))
            target = values.target_rate
            buckets.append(models.TrendBucket(start=b0, end=b1, on_time_rate=values.on_time_rate, metrics=values))
        return models.TrendResponse(
            agency_id=agency_id,
            commitment_id=commitment_id,
            bucket=bucket,
            **{"from": start},  # by its alias: mypy (without pydantic's plugin) knows only that name
            to=end,
            target_rate=target,
            buckets=buckets,
        )

    # -- metrics and scorecards

    async def figures(
        request: Request,
        flt: MetricsFilter,
        asked: tuple[Any, ...],
        compute: Callable[[Connection], Any],
        require: tuple[str | None, str | None],
    ) -> Response:
        """An answer of the figures endpoints: from the cache when the index holds what it held when the answer was
        computed (one statement to find out, no thread), else computed in one snapshot in the thread pool, and kept.
        The ETag and the 304 are as they always were: of the request and of the index position."""
        rows = await index_reader(request.app).rows(queries.STATE_SQL, {})
        content = queries.index_content_of(rows, settings.contract_address, settings.chain_id)
        etag = view_etag(request, content.state.position, flt.now)
        if not_modified(request, etag):
            return not_modified_response(etag, SHORT)
        body = figures_cache.get(asked, content.key)
        if body is None:
            etag, body = await run_in_threadpool(compute_figures, request, flt, asked, compute, require)
            if body is None:
                return not_modified_response(etag, SHORT)
        return Response(body, media_type="application/json", headers=cache_headers(etag, SHORT))

    def compute_figures(
        request: Request,
        flt: MetricsFilter,
        asked: tuple[Any, ...],
        compute: Callable[[Connection], Any],
        require: tuple[str | None, str | None],
    ) -> tuple[str, bytes | None]:
        """(ETag, answer) read in one snapshot, whose state the figures, their cache key and the ETag are all of
        (the index may have moved since the state was read); no answer when the ETag matches If-None-Match."""
        with queries.read_snapshot(request.app.state.store) as conn:
            content = queries.index_content_in(conn, settings.contract_address, settings.chain_id)
            etag = view_etag(request, content.state.position, flt.now)
            if not_modified(request, etag):
                return etag, None

            def computed() -> bytes:
                _require_agency(conn, *require)
                return _serialise(compute(conn))

            return etag, figures_cache.get_or_compute(asked, content.key, computed)

    @read(
        "/metrics",
        operation_id="getMetrics",
        response_model=models.MetricsResponse,
        tags=["metrics"],
        summary="Published metrics for any selection",
        responses={**_ok("The metrics"), **NOT_MODIFIED, **NOT_FOUND},
    )
    async def get_metrics(
        request: Request,
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
            channel=channel, as_of=as_of, now=_now(),
        )

        def compute(conn: Connection) -> models.MetricsResponse:
            return models.MetricsResponse(filter=_echo(flt), metrics=_values(compute_metrics(conn, flt)))

        return await figures(request, flt, ("metrics", flt), compute, (agency_id, commitment_id))

    @read(
        "/scorecards",
        operation_id="getScorecards",
        response_model=models.ScorecardsResponse,
        tags=["metrics"],
        summary="Metrics per agency or per commitment",
        responses={**_ok("The scorecards"), **NOT_MODIFIED, **NOT_FOUND},
    )
    async def get_scorecards(
        request: Request,
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
            channel=channel, as_of=as_of, now=_now(),
        )

        def compute(conn: Connection) -> models.ScorecardsResponse:
            names = queries.agency_names(conn)
            items: list[models.Scorecard] = []
            if by == "agency":
                withheld = queries.withheld_counts(conn, agency_id)
                for aid, metrics in agency_scorecards(conn, flt).items():
                    zh, en = names.get(aid, (None, None))
                    batches_withheld, entries_withheld = withheld.get(aid, (0, 0))
                    items.append(
                        models.Scorecard(agency_id=aid, agency_name_zh=zh, agency_name_en=en,
                                         batches_withheld=batches_withheld, entries_withheld=entries_withheld,
                                         metrics=_values(metrics))
                    )
            else:
                info = queries.commitment_info(conn, agency_id)
                for (aid, cid), metrics in commitment_scorecards(conn, flt).items():
                    zh, en = names.get(aid, (None, None))
                    about = info.get((aid, cid))
                    items.append(
                        models.Scorecard(
                            agency_id=aid,
                            agency_name_zh=zh,
                            agency_name_en=en,
                            commitment_id=cid,
                            commitment_name_zh=about.name_zh if about else None,
                            commitment_name_en=about.name_en if about else None,
                            target_rate=str(metrics.target_rate) if metrics.target_rate is not None else None,
                            retired=about.retired if about else None,
                            metrics=_values(metrics),
                        )
                    )
            return models.ScorecardsResponse(by=by, filter=_echo(flt), items=items)

        return await figures(request, flt, ("scorecards", by, flt), compute, (agency_id, commitment_id))

    # -- cases

    @read(
        "/cases/{agency_id}/{case_id}",
        operation_id="getCase",
        response_model=models.CaseView,
        tags=["cases"],
        summary="One case and all its events, with proofs",
        responses={**_ok("The case"), **NOT_MODIFIED, **NOT_FOUND},
    )
    async def get_case(
        request: Request,
        agency_id: AgencyPath,
        case_id: Annotated[
            str,
            Path(
                pattern=r"^0x[0-9a-fA-F]{64}$",
                description="the case id from the receipt: 0x + 64 hex digits",
                examples=["0x4b1f8e2d6c9a3e7f0b5d8c2a6e9f3b7d1c5a8e2f6b9d3c7a0e4f8b2d6c9a3e7f"],
            ),
        ],
    ) -> Any:
        """The case's state (status, opening and closing, due time, hold time, on time or not, commitment, district,
        channel) and every event recorded for it, voided ones included, each with its claimed time, its recording
        time and the gap between them, and its proof."""
        key, now = bytes.fromhex(case_id[2:]), _now()
        # one statement, awaited on the event loop (no thread): the state, the case, its names, its events and proofs
        rows = await index_reader(request.app).rows(queries.CASE_SQL, {"agency_id": agency_id, "case_id": key})
        proofs = batch_proofs(request.app)
        batched = queries.case_batch_keys(rows)
        if batched and proofs.missing(batched):  # a batch tree not kept: rebuilt from its file in a worker thread
            await run_in_threadpool(proofs.load, batched)
        found = queries.case_of(rows, settings.contract_address, agency_id, key, now, proofs)
        if found is None:  # an index without its state row yet: the general path
            found = await run_in_threadpool(case_in_snapshot, request, agency_id, key, now, proofs)
        if found.body is None:
            raise not_found(f"no case {case_id.lower()} of agency {agency_id!r}")
        # a batch file published later changes the answer (its records gain their Merkle proofs)
        etag = view_etag(request, found.state.position, found.overdue, proofs.unavailable)
        if not_modified(request, etag):
            return not_modified_response(etag, SHORT)
        return Response(found.body, media_type="application/json", headers=cache_headers(etag, SHORT))

    def case_in_snapshot(
        request: Request, agency_id: str, case_id: bytes, now: int, proofs: Any
    ) -> queries.CaseLookup:
        with queries.read_snapshot(request.app.state.store) as conn:
            state = _state(conn, settings)
            view = queries.case_view(conn, state, agency_id, case_id, now, proofs)
        body = None if view is None else _serialise(view)
        return queries.CaseLookup(state, body, None if view is None else view.overdue)

    # -- the entry log

    @read(
        "/entries",
        operation_id="listEntries",
        response_model=models.EntryPage,
        tags=["entries"],
        summary="The raw ledger, in seq order, a page at a time",
        responses={**_ok("A page of entries", headers=LINK_HEADER), **NOT_MODIFIED},
    )
    def list_entries(
        request: Request,
        response: Response,
        conn: Snapshot,
        after: Annotated[
            int | None,
            Query(ge=0, le=INT64_MAX, description="cursor: entries with seq above this (default: from the first)"),
        ] = None,
        limit: Limit = default_page,
    ) -> Any:
        """Every entry in order, each with its hashes and proof: walk the pages with `next` (or the `Link` header)
        to rebuild the running hash and compare it with `/chain`. A record written in a Merkle-anchored batch is an
        entry of its own here (kind case_event) whose `proof.batch` gives its batch and Merkle proof; the running
        hash folds the batch's entry hash once (`GET /api/v1/batches/{seq}`), after the batch's last record. A
        withheld batch (`GET /api/v1/batches?withheld=true`: its file missing or not matching the anchor) leaves its
        seqs out of the log: fold its entry hash once in their place. A full
        page of final entries never changes and is served as immutable (unless a batch file it needs for a proof is
        not here yet)."""
        state = _state(conn, settings)
        proofs = batch_proofs(request.app)
        items, more = queries.entries_page(conn, state, after, limit, proofs)
        nxt = items[-1].seq if more and items else None
        if more and items and all(item.final for item in items) and not proofs.unavailable:
            etag = etag_of("entries", state.chain_id, state.contract_address, after, limit, items[-1].entry_hash)
            cache = IMMUTABLE
        else:
            etag, cache = view_etag(request, state.position, proofs.unavailable), SHORT
        if (cached := conditional(request, response, etag, cache)) is not None:
            return cached
        if nxt is not None:
            response.headers["Link"] = next_link(request, after=nxt, limit=limit)
        return models.EntryPage(items=items, next=nxt)

    @read(
        "/entries/{seq}",
        operation_id="getEntry",
        response_model=models.Entry,
        tags=["entries"],
        summary="One entry (immutable once final)",
        responses={**_ok("The entry"), **NOT_MODIFIED, **NOT_FOUND},
    )
    def get_entry(
        request: Request,
        response: Response,
        conn: Snapshot,
        seq: Annotated[int, Path(ge=0, le=INT64_MAX, description="the entry's seq", examples=[42])],
    ) -> Any:
        """The entry at `seq`. Once its block is final it never changes and is served as immutable (a batched
        record once its Merkle proof can be given, too)."""
        found, etag, cache = one_entry(request, conn, seq)
        return conditional(request, response, etag, cache) or found

    def one_entry(request: Request, conn: Connection, seq: int) -> tuple[models.Entry, str, str]:
        """The entry, its ETag and how long it may be kept."""
        state = _state(conn, settings)
        proofs = batch_proofs(request.app)
        found = queries.entry(conn, state, seq, proofs)
        if found is None:
            inside = queries.batch_containing(conn, seq) if seq < state.entry_count else None
            if inside is not None and inside["withheld"] is not None:
                raise not_found(f"entry {seq} is in batch #{inside['seq']} ({PREFIX}/batches/{inside['seq']}), whose "
                                f"entries are withheld: {inside['withheld_reason']}")
            raise not_found(f"no entry {seq}: the ledger has {state.entry_count} entries indexed (seq 0 to "
                            f"{state.entry_count - 1})")
        if found.final and not proofs.unavailable:
            proof = found.proof
            etag = etag_of("entry", state.chain_id, state.contract_address, seq, proof.entry_hash, proof.block_hash)
            return found, etag, IMMUTABLE
        return found, view_etag(request, state.position, proofs.unavailable), SHORT

    @read(
        "/entries/{seq}/proof",
        operation_id="getEntryProof",
        response_model=models.Proof,
        tags=["entries"],
        summary="One entry's proof alone (a batched record's with its Merkle proof)",
        responses={**_ok("The proof"), **NOT_MODIFIED, **NOT_FOUND},
    )
    def get_entry_proof(
        request: Request,
        response: Response,
        conn: Snapshot,
        seq: Annotated[int, Path(ge=0, le=INT64_MAX, description="the entry's seq", examples=[42])],
    ) -> Any:
        """`proof` of `GET /api/v1/entries/{seq}`: where the entry is on chain and, for a record written in a
        batch, `batch` with its Merkle proof. Cached as the entry is."""
        found, etag, cache = one_entry(request, conn, seq)
        return conditional(request, response, etag_of("proof", etag), cache) or found.proof

    # -- Merkle-anchored batches

    BatchSeq = Annotated[
        int, Path(ge=0, le=INT64_MAX, description="the batch: seq of its first entry", examples=[1200])
    ]

    def batch_or_404(conn: Connection, seq: int) -> Any:
        row = queries.batch_row(conn, seq)
        if row is None:
            found = queries.batch_containing(conn, seq)
            if found is not None:
                inside = found["seq"]
                raise not_found(f"no batch starts at seq {seq}: entry {seq} is in batch #{inside} "
                                f"({PREFIX}/batches/{inside})")
            raise not_found(f"no batch anchored at seq {seq}")
        return row

    @read(
        "/batches",
        operation_id="listBatches",
        response_model=models.BatchPage,
        tags=["batches"],
        summary="Merkle-anchored batches, in seq order, a page at a time",
        responses={**_ok("A page of batches", headers=LINK_HEADER), **NOT_MODIFIED, **NOT_FOUND},
    )
    def list_batches(
        request: Request,
        response: Response,
        conn: Snapshot,
        agency_id: AgencyQuery = None,
        after: Annotated[
            int | None,
            Query(ge=0, le=INT64_MAX, description="cursor: batches whose first seq is above this (the `next` of the "
                  "previous page)"),
        ] = None,
        withheld: Annotated[
            bool | None,
            Query(description="true: only the withheld batches (file missing or not matching the anchor); false: "
                  "only the indexed ones; default: all"),
        ] = None,
        limit: Limit = default_page,
    ) -> Any:
        """Every batch an agency anchored: its root, entry count and file hash as on chain, the anchoring
        transaction, block and log index, the batch's entry hash, whether this service has its file, and whether its
        entries are withheld (`withheld`: missing, or impossible for ever) and why."""
        state = _state(conn, settings)
        if agency_id is not None:
            _require_agency(conn, agency_id)
        rows, more = queries.batch_rows(conn, after, limit, agency_id, withheld)
        files = verified_files(request.app)
        present = [files.present(bytes(row["file_hash"])) for row in rows]
        if (cached := conditional(request, response, view_etag(request, state.position, present), SHORT)) is not None:
            return cached
        items = [queries.batch_info(row, state, available) for row, available in zip(rows, present, strict=True)]
        nxt = items[-1].seq if more and items else None
        if nxt is not None:
            response.headers["Link"] = next_link(request, after=nxt, limit=limit, **(
                {"agency_id": agency_id} if agency_id is not None else {}), **(
                {"withheld": str(withheld).lower()} if withheld is not None else {}))
        return models.BatchPage(items=items, next=nxt)

    @read(
        "/batches/{seq}",
        operation_id="getBatch",
        response_model=models.BatchInfo,
        tags=["batches"],
        summary="One Merkle-anchored batch: root, count, file hash and the anchoring proof",
        responses={**_ok("The batch"), **NOT_MODIFIED, **NOT_FOUND},
    )
    def get_batch(request: Request, response: Response, conn: Snapshot, seq: BatchSeq) -> Any:
        """The batch whose first entry is `seq`: its root, count and file hash (check them against the contract's
        `batchRoot(seq)` and the `BatchAnchored` log at `proof`), the batch's record and entry hash (the running
        hash folds the entry hash once for the whole batch), and where its file is served. A withheld batch (its file
        missing or not matching the anchor) says so and why; its entries are not served and have no proofs. Once
        final, indexed and its file here, served as immutable."""
        state = _state(conn, settings)
        row = batch_or_404(conn, seq)
        available = verified_files(request.app).present(bytes(row["file_hash"]))
        found = queries.batch_info(row, state, available)
        if found.final and available and found.withheld is None:
            etag = etag_of("batch", state.chain_id, state.contract_address, seq, found.entry_hash,
                           found.proof.block_hash)
            return conditional(request, response, etag, IMMUTABLE) or found
        return conditional(request, response, view_etag(request, state.position, available), SHORT) or found

    @read(
        "/batches/{seq}/file",
        operation_id="getBatchFile",
        tags=["batches"],
        summary="The batch file, byte for byte as anchored (CSV)",
        response_class=FileResponse,
        responses={
            200: {
                "description": "The file, streamed; its keccak256 is the batch's file_hash",
                "content": {"text/csv": {"schema": {"type": "string"}, "example": BATCH_HEADER + "\n0,0x…\n"}},
                "headers": {
                    **CACHE_HEADERS,
                    "Content-Disposition": {"description": "attachment file name", "schema": {"type": "string"}},
                },
            },
            **NOT_MODIFIED,
            404: {
                "model": models.ErrorResponse,
                "description": "No such batch (not_found), or its file is not available from this service (yet) "
                "(batch_file_unavailable)",
            },
        },
    )
    async def get_batch_file(request: Request, seq: BatchSeq) -> Any:
        """The exact bytes the agency published (`ledger.batches`: a header line, then one line per event, `\\n`
        line ends), whose keccak256 is the anchored `file_hash`: rebuild the tree from it and compare the root with
        `batchRoot(seq)`. The ETag is the file hash; served as immutable once the anchoring is final. A file is
        checked against its hash before it is first served, never passed on altered."""

        def look() -> tuple[queries.IndexState, Any]:
            with queries.read_snapshot(request.app.state.store) as conn:
                return _state(conn, settings), batch_or_404(conn, seq)

        state, row = await run_in_threadpool(look)
        file_hash = bytes(row["file_hash"])
        etag = f'"{queries.to_hex(file_hash)}"'
        cache = IMMUTABLE if state.is_final(row["block_number"]) else SHORT
        if not_modified(request, etag):
            return not_modified_response(etag, cache)
        checked = await run_in_threadpool(verified_files(request.app).check, file_hash)
        if isinstance(checked, Unavailable):
            if checked.code == "file_altered":
                message = (f"the file of batch #{seq} ({queries.to_hex(file_hash)}) is not available: the copy "
                           "stored here does not hash to it (it was altered), so it is not served")
            else:
                message = (f"the file of batch #{seq} ({queries.to_hex(file_hash)}) is not available from this "
                           "service (yet): the agency publishes it with the batch; try again later")
            raise ApiError("batch_file_unavailable", message)
        path, stat = checked
        return FileResponse(
            path,
            stat_result=stat,
            media_type="text/csv",
            headers={
                **cache_headers(etag, cache),
                "Content-Disposition": f'attachment; filename="batch-{seq}-{file_hash.hex()}.csv"',
            },
        )

    # -- bulk export

    def export(
        request: Request,
        conn: Connection,
        what: Literal["entries", "cases"],
        fmt: Literal["csv", "jsonl"],
        agency_id: str | None,
    ) -> Response:
        state = _state(conn, settings)
        if agency_id is not None:
            _require_agency(conn, agency_id)
        missing: tuple[int, ...] = ()
        if what == "entries":  # a batch file published later gives its records their Merkle proofs
            files = verified_files(request.app)
            missing = tuple(
                seq for seq, file_hash in queries.batch_files(conn, agency_id) if not files.present(file_hash)
            )
        etag = view_etag(request, state.position, missing)
        headers = {
            "ETag": etag,
            "Cache-Control": SHORT,
            "Content-Disposition": f'attachment; filename="{what}.{fmt}"',
        }
        if not_modified(request, etag):
            return not_modified_response(etag, SHORT)
        if request.method == "HEAD":
            return Response(headers=headers, media_type=MEDIA[fmt])
        store = request.app.state.store

        def generate() -> Iterator[str]:
            # its own connection, open for as long as the stream: the request's one closes when the handler returns
            with queries.read_snapshot(store) as stream_conn:
                if what == "entries":
                    # the entries counted when the headers were made: an export is one position of the log
                    # each batch's tree looked up once, only the current one held (its records are consecutive)
                    proofs = batch_proofs(request.app, keep=1)
                    rows = (
                        row
                        for row in queries.export_entries(stream_conn, state, agency_id, proofs=proofs)
                        if row["seq"] < state.entry_count
                    )
                    yield from _chunks(rows, queries.ENTRY_EXPORT_COLUMNS, fmt)
                else:
                    yield from _chunks(queries.export_cases(stream_conn, agency_id), queries.CASE_EXPORT_COLUMNS, fmt)

        return StreamingResponse(generate(), media_type=MEDIA[fmt], headers=headers)

    def _export_route(what: Literal["entries", "cases"], fmt: Literal["csv", "jsonl"]) -> None:
        columns = queries.ENTRY_EXPORT_COLUMNS if what == "entries" else queries.CASE_EXPORT_COLUMNS
        example = ",".join(columns) + "\n" if fmt == "csv" else '{"' + columns[0] + '":…}\n'
        media = MEDIA[fmt].split(";")[0]
        order = "seq order" if what == "entries" else "(agency id, case id) order"
        description = (
            f"Every {what[:-1]} row in {order}, streamed as "
            + ("CSV (a header line, then one line per row; empty = null)" if fmt == "csv" else "JSON Lines")
            + ". Read from the database a batch at a time, so the server's memory stays flat whatever the size. "
            + f"Columns: {', '.join(columns)}."
            + (
                " A record written in a Merkle-anchored batch has batch_seq, batch_index, batch_root, "
                "batch_file_hash and merkle_proof (the sibling hashes, "
                + ("space-separated" if fmt == "csv" else "a list")
                + "; empty with merkle_proof_unavailable saying why when the batch file is not here)."
                if what == "entries" else ""
            )
        )

        def endpoint(
            request: Request,
            conn: Snapshot,
            agency_id: AgencyQuery = None,
        ) -> Response:
            return export(request, conn, what, fmt, agency_id)

        endpoint.__name__ = f"export_{what}_{fmt}"
        read(
            f"/export/{what}.{fmt}",
            operation_id=f"export{what.title()}{fmt.title()}",
            tags=["export"],
            summary=f"Bulk export of {what} as {'CSV' if fmt == 'csv' else 'JSON Lines'}",
            description=description,
            response_class=StreamingResponse,
            responses={
                200: {
                    "description": f"{what}, streamed",
                    "content": {media: {"schema": {"type": "string"}, "example": example}},
                    "headers": {
                        **CACHE_HEADERS,
                        "Content-Disposition": {"description": "attachment file name", "schema": {"type": "string"}},
                    },
                },
                **NOT_MODIFIED,
                **NOT_FOUND,
            },
        )(endpoint)

    for what in ("entries", "cases"):
        for fmt in ("csv", "jsonl"):
            _export_route(what, fmt)

    return router


def register(app: FastAPI, settings: ApiSettings) -> None:
    """Include the read API in ``app``, with the error handlers, rate limiting and CORS it relies on."""
    errors.install(app)
    app.state.figures_cache = queries.FiguresCache()
    app.include_router(build_router(settings, app.state.figures_cache))
    app.openapi_tags = (app.openapi_tags or []) + [
        {"name": "chain", "description": "Where the ledger lives, and how far the index has read it"},
        {"name": "agencies", "description": "Registered agencies and their signing keys"},
        {"name": "commitments", "description": "Service commitments, every version"},
        {"name": "metrics", "description": "Published figures, as ledger/metrics.py defines them"},
        {"name": "cases", "description": "A case and its events"},
        {"name": "entries", "description": "The raw ledger, entry by entry"},
        {"name": "batches", "description": "Merkle-anchored batches of case events, and their files"},
        {"name": "export", "description": "Bulk export, streamed"},
    ]
    # Added before CORS so that CORS is the outer layer: a 429 then carries CORS headers a browser can read.
    app.add_middleware(RateLimitMiddleware, rate_per_minute=settings.read_rate_per_minute)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["ETag", "Link", "Retry-After", "Content-Disposition"],
        max_age=86_400,
    )

