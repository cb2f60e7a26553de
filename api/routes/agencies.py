"""Agencies, under ``/api/v1``: every registered agency with its current keys, and one agency's key history."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from typing import Annotated, Any

from fastapi import Query, Request, Response

from api.deps import Settings, Snapshot
from api.errors import not_found
from api.http import SHORT, conditional, next_link, view_etag
from api.read.agencies import agencies_page, agency
from api.routes._common import (
    DEFAULT_LIMIT,
    LINK_HEADER,
    NOT_FOUND,
    NOT_MODIFIED,
    AgencyPath,
    Limit,
    ok,
    read_route,
    read_router,
    state_of,
)
from api.schemas._common import CODE_PATTERN
from api.schemas.agencies import AgencyDetail, AgencyPage

TAG = {"name": "agencies", "description": "Registered agencies and their signing keys"}

router = read_router("agencies")


@read_route(
    router,
    "/agencies",
    operation_id="listAgencies",
    response_model=AgencyPage,
    summary="Agencies, with their current keys",
    responses={**ok("A page of agencies", headers=LINK_HEADER), **NOT_MODIFIED},
)
def list_agencies(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    after: Annotated[
        str | None,
        Query(pattern=CODE_PATTERN, description="cursor: the `next` of the previous page"),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Any:
    """Every registered agency, with the keys authorised to write for it now and the proof of its registration."""
    state = state_of(conn, settings)
    if (cached := conditional(request, response, view_etag(request, state.position), SHORT)) is not None:
        return cached
    items, more = agencies_page(conn, state, after, limit)
    nxt = items[-1].agency_id if more and items else None
    if nxt is not None:
        response.headers["Link"] = next_link(request, after=nxt, limit=limit)
    return AgencyPage(items=items, next=nxt)


@read_route(
    router,
    "/agencies/{agency_id}",
    operation_id="getAgency",
    response_model=AgencyDetail,
    summary="One agency, with its key history",
    responses={**ok("The agency"), **NOT_MODIFIED, **NOT_FOUND},
)
def get_agency(
    request: Request, response: Response, conn: Snapshot, settings: Settings, agency_id: AgencyPath
) -> Any:
    """The agency, its current keys, every authorisation and revocation of a key, each with its proof, and how
    many of its batches and entries are withheld (their batch file missing or not matching the anchor)."""
    state = state_of(conn, settings)
    if (cached := conditional(request, response, view_etag(request, state.position), SHORT)) is not None:
        return cached
    found = agency(conn, state, agency_id)
    if found is None:
        raise not_found(f"no agency {agency_id!r}")
    return found

