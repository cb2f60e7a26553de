"""Merkle-anchored batches, under ``/api/v1``: every batch in seq order a page at a time, one batch with its
anchoring proof, and its file byte for byte as anchored."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from api.batches import Unavailable, verified_files
from api.deps import Settings, Snapshot
from api.errors import ApiError, not_found
from api.http import (
    IMMUTABLE,
    SHORT,
    cache_headers,
    conditional,
    etag_of,
    next_link,
    not_modified,
    not_modified_response,
    view_etag,
)
from api.read._common import read_snapshot, to_hex
from api.read.batches import batch_containing, batch_info, batch_row, batch_rows
from api.read.state import IndexState
from api.routes._common import (
    CACHE_HEADERS,
    DEFAULT_LIMIT,
    INT64_MAX,
    LINK_HEADER,
    NOT_FOUND,
    NOT_MODIFIED,
    PREFIX,
    AgencyQuery,
    Limit,
    ok,
    read_route,
    read_router,
    require_agency,
    state_of,
)
from api.schemas.batches import BatchInfo, BatchPage
from api.schemas.errors import ErrorResponse
from ledger.batches import HEADER as BATCH_HEADER

TAG = {"name": "batches", "description": "Merkle-anchored batches of case events, and their files"}

router = read_router("batches")

BatchSeq = Annotated[
    int, Path(ge=0, le=INT64_MAX, description="the batch: seq of its first entry", examples=[1200])
]


def batch_or_404(conn: Connection, seq: int) -> Any:
    row = batch_row(conn, seq)
    if row is None:
        found = batch_containing(conn, seq)
        if found is not None:
            inside = found["seq"]
            raise not_found(f"no batch starts at seq {seq}: entry {seq} is in batch #{inside} "
                            f"({PREFIX}/batches/{inside})")
        raise not_found(f"no batch anchored at seq {seq}")
    return row


@read_route(
    router,
    "/batches",
    operation_id="listBatches",
    response_model=BatchPage,
    summary="Merkle-anchored batches, in seq order, a page at a time",
    responses={**ok("A page of batches", headers=LINK_HEADER), **NOT_MODIFIED, **NOT_FOUND},
)
def list_batches(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
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
    limit: Limit = DEFAULT_LIMIT,
) -> Any:
    """Every batch an agency anchored: its root, entry count and file hash as on chain, the anchoring
    transaction, block and log index, the batch's entry hash, whether this service has its file, and whether its
    entries are withheld (`withheld`: missing, or impossible for ever) and why."""
    state = state_of(conn, settings)
    if agency_id is not None:
        require_agency(conn, agency_id)
    rows, more = batch_rows(conn, after, limit, agency_id, withheld)
    files = verified_files(request.app)
    present = [files.present(bytes(row["file_hash"])) for row in rows]
    if (cached := conditional(request, response, view_etag(request, state.position, present), SHORT)) is not None:
        return cached
    items = [batch_info(row, state, available) for row, available in zip(rows, present, strict=True)]
    nxt = items[-1].seq if more and items else None
    if nxt is not None:
        response.headers["Link"] = next_link(request, after=nxt, limit=limit, **(
            {"agency_id": agency_id} if agency_id is not None else {}), **(
            {"withheld": str(withheld).lower()} if withheld is not None else {}))
    return BatchPage(items=items, next=nxt)


@read_route(
    router,
    "/batches/{seq}",
    operation_id="getBatch",
    response_model=BatchInfo,
    summary="One Merkle-anchored batch: root, count, file hash and the anchoring proof",
    responses={**ok("The batch"), **NOT_MODIFIED, **NOT_FOUND},
)
def get_batch(request: Request, response: Response, conn: Snapshot, settings: Settings, seq: BatchSeq) -> Any:
    """The batch whose first entry is `seq`: its root, count and file hash (check them against the contract's
    `batchRoot(seq)` and the `BatchAnchored` log at `proof`), the batch's record and entry hash (the running
    hash folds the entry hash once for the whole batch), and where its file is served. A withheld batch (its file
    missing or not matching the anchor) says so and why; its entries are not served and have no proofs. Once
    final, indexed and its file here, served as immutable."""
    state = state_of(conn, settings)
    row = batch_or_404(conn, seq)
    available = verified_files(request.app).present(bytes(row["file_hash"]))
    found = batch_info(row, state, available)
    if found.final and available and found.withheld is None:
        etag = etag_of("batch", state.chain_id, state.contract_address, seq, found.entry_hash,
                       found.proof.block_hash)
        return conditional(request, response, etag, IMMUTABLE) or found
    return conditional(request, response, view_etag(request, state.position, available), SHORT) or found


@read_route(
    router,
    "/batches/{seq}/file",
    operation_id="getBatchFile",
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
            "model": ErrorResponse,
            "description": "No such batch (not_found), or its file is not available from this service (yet) "
            "(batch_file_unavailable)",
        },
    },
)
async def get_batch_file(request: Request, settings: Settings, seq: BatchSeq) -> Any:
    """The exact bytes the agency published (`ledger.batches`: a header line, then one line per event, `\\n`
    line ends), whose keccak256 is the anchored `file_hash`: rebuild the tree from it and compare the root with
    `batchRoot(seq)`. The ETag is the file hash; served as immutable once the anchoring is final. A file is
    checked against its hash before it is first served, never passed on altered."""

    def look() -> tuple[IndexState, Any]:
        with read_snapshot(request.app.state.store) as conn:
            return state_of(conn, settings), batch_or_404(conn, seq)

    state, row = await run_in_threadpool(look)
    file_hash = bytes(row["file_hash"])
    etag = f'"{to_hex(file_hash)}"'
    cache = IMMUTABLE if state.is_final(row["block_number"]) else SHORT
    if not_modified(request, etag):
        return not_modified_response(etag, cache)
    checked = await run_in_threadpool(verified_files(request.app).check, file_hash)
    if isinstance(checked, Unavailable):
        if checked.code == "file_altered":
            message = (f"the file of batch #{seq} ({to_hex(file_hash)}) is not available: the copy "
                       "stored here does not hash to it (it was altered), so it is not served")
        else:
            message = (f"the file of batch #{seq} ({to_hex(file_hash)}) is not available from this "
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

