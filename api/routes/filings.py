"""Citizens' filings, under ``/api/v1``: one filing, and the filings of an agency, a state or a filer's key, a page at
a time. What the ledger holds of each (public codes and hashes; the request's text stays off chain), when its answer
is due, and the agency's answer; the auditor compares every one with the chain (``filings_answered``)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from typing import Annotated, Any, Literal

from eth_utils import to_checksum_address
from fastapi import Path, Query, Request, Response

from api.deps import Settings, Snapshot
from api.errors import not_found
from api.http import SHORT, conditional, next_link, view_etag
from api.read.filings import filing, filings_page
from api.routes._common import (
    DEFAULT_LIMIT,
    INT64_MAX,
    LINK_HEADER,
    NOT_FOUND,
    NOT_MODIFIED,
    AgencyQuery,
    Limit,
    ok,
    read_route,
    read_router,
    state_of,
    unix_now,
)
from api.schemas._common import ADDRESS_PATTERN
from api.schemas.filings import FilingPage, FilingView

TAG = {"name": "filings", "description": "Citizens' filings and the agencies' answers"}

router = read_router("filings")


@read_route(
    router,
    "/filings",
    operation_id="listFilings",
    response_model=FilingPage,
    summary="Citizens' filings, in seq order, a page at a time",
    responses={**ok("A page of filings", headers=LINK_HEADER), **NOT_MODIFIED},
)
def list_filings(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    agency_id: AgencyQuery = None,
    state: Annotated[
        Literal["awaiting", "answered", "all"],
        Query(description="awaiting an answer, answered, or all (default)", examples=["awaiting"]),
    ] = "all",
    receipt: Annotated[
        str | None,
        Query(pattern=ADDRESS_PATTERN, description="only the filing made with this key (a filer looks theirs up)"),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=INT64_MAX, description="cursor: filings with seq above this")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Any:
    """Filings with the agency's answer, if any, and when it is due (one working day of the filing). `overdue` is as of
    this answer's time. Walk the pages with `next` (or the `Link` header)."""
    index = state_of(conn, settings)
    etag = view_etag(request, index.position, False)
    if (cached := conditional(request, response, etag, SHORT)) is not None:
        return cached
    answered = None if state == "all" else state == "answered"
    items, more = filings_page(conn, index, unix_now(), agency_id=agency_id, answered=answered,
                               receipt=None if receipt is None else to_checksum_address(receipt), after=after,
                               limit=limit)
    nxt = items[-1].seq if more and items else None
    if nxt is not None:
        response.headers["Link"] = next_link(request, after=nxt, limit=limit)
    return FilingPage(items=items, next=nxt)


@read_route(
    router,
    "/filings/{seq}",
    operation_id="getFiling",
    response_model=FilingView,
    summary="One filing, with its answer",
    responses={**ok("The filing"), **NOT_MODIFIED, **NOT_FOUND},
)
def get_filing(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    seq: Annotated[int, Path(ge=0, le=INT64_MAX, description="the filing's seq", examples=[42])],
) -> Any:
    """The filing at `seq` (its entry), its answer window and the agency's answer."""
    index = state_of(conn, settings)
    etag = view_etag(request, index.position, False)
    if (cached := conditional(request, response, etag, SHORT)) is not None:
        return cached
    found = filing(conn, index, seq, unix_now())
    if found is None:
        raise not_found(f"no filing {seq} (a filing is the entry a citizen's request made; see /api/v1/filings)")
    return found
