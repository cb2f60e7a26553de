"""Cases, under ``/api/v1``: one case and all its events, with proofs.

A hot path: the lookup is one statement awaited on the event loop (``api.deps.IndexReader``), no thread, its JSON
built from the rows, byte for byte what the response model serialises to (``response_model`` still documents it).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from typing import Annotated, Any

from fastapi import Path, Request, Response
from starlette.concurrency import run_in_threadpool

from api.batches import batch_proofs
from api.deps import Settings, index_reader
from api.errors import not_found
from api.http import SHORT, cache_headers, not_modified, not_modified_response, view_etag
from api.read._common import read_snapshot
from api.read.cases import CASE_SQL, CaseLookup, case_batch_keys, case_of, case_view
from api.routes._common import (
    NOT_FOUND,
    NOT_MODIFIED,
    AgencyPath,
    ok,
    read_route,
    read_router,
    serialise,
    state_of,
    unix_now,
)
from api.schemas.cases import CaseView
from api.settings import ApiSettings

TAG = {"name": "cases", "description": "A case and its events"}

router = read_router("cases")


@read_route(
    router,
    "/cases/{agency_id}/{case_id}",
    operation_id="getCase",
    response_model=CaseView,
    summary="One case and all its events, with proofs",
    responses={**ok("The case"), **NOT_MODIFIED, **NOT_FOUND},
)
async def get_case(
    request: Request,
    settings: Settings,
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
    key, now = bytes.fromhex(case_id[2:]), unix_now()
    # one statement, awaited on the event loop (no thread): the state, the case, its names, its events and proofs
    rows = await index_reader(request.app).rows(CASE_SQL, {"agency_id": agency_id, "case_id": key})
    proofs = batch_proofs(request.app)
    batched = case_batch_keys(rows)
    if batched and proofs.missing(batched):  # a batch tree not kept: rebuilt from its file in a worker thread
        await run_in_threadpool(proofs.load, batched)
    found = case_of(rows, settings.contract_address, agency_id, key, now, proofs)
    if found is None:  # an index without its state row yet: the general path
        found = await run_in_threadpool(case_in_snapshot, request, settings, agency_id, key, now, proofs)
    if found.body is None:
        raise not_found(f"no case {case_id.lower()} of agency {agency_id!r}")
    # a batch file published later changes the answer (its records gain their Merkle proofs)
    etag = view_etag(request, found.state.position, found.overdue, proofs.unavailable)
    if not_modified(request, etag):
        return not_modified_response(etag, SHORT)
    return Response(found.body, media_type="application/json", headers=cache_headers(etag, SHORT))


def case_in_snapshot(
    request: Request, settings: ApiSettings, agency_id: str, case_id: bytes, now: int, proofs: Any
) -> CaseLookup:
    with read_snapshot(request.app.state.store) as conn:
        state = state_of(conn, settings)
        view = case_view(conn, state, agency_id, case_id, now, proofs)
    body = None if view is None else serialise(view)
    return CaseLookup(state, body, None if view is None else view.overdue)

