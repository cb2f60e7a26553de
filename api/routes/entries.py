"""The entry log, under ``/api/v1``: the raw ledger in seq order a page at a time, one entry, and one entry's proof
alone (a batched record's with its Merkle proof)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from sqlalchemy import Connection

from api.batches import batch_proofs
from api.deps import Settings, Snapshot
from api.errors import not_found
from api.http import IMMUTABLE, SHORT, conditional, etag_of, next_link, view_etag
from api.read.batches import batch_containing
from api.read.entries import entries_page, entry
from api.routes._common import (
    DEFAULT_LIMIT,
    INT64_MAX,
    LINK_HEADER,
    NOT_FOUND,
    NOT_MODIFIED,
    PREFIX,
    Limit,
    ok,
    read_route,
    read_router,
    state_of,
)
from api.schemas.entries import Entry, EntryPage
from api.schemas.proofs import Proof
from api.settings import ApiSettings

TAG = {"name": "entries", "description": "The raw ledger, entry by entry"}

router = read_router("entries")


@read_route(
    router,
    "/entries",
    operation_id="listEntries",
    response_model=EntryPage,
    summary="The raw ledger, in seq order, a page at a time",
    responses={**ok("A page of entries", headers=LINK_HEADER), **NOT_MODIFIED},
)
def list_entries(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    after: Annotated[
        int | None,
        Query(ge=0, le=INT64_MAX, description="cursor: entries with seq above this (default: from the first)"),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Any:
    """Every entry in order, each with its hashes and proof: walk the pages with `next` (or the `Link` header)
    to rebuild the running hash and compare it with `/chain`. A record written in a Merkle-anchored batch is an
    entry of its own here (kind case_event) whose `proof.batch` gives its batch and Merkle proof; the running
    hash folds the batch's entry hash once (`GET /api/v1/batches/{seq}`), after the batch's last record. A
    withheld batch (`GET /api/v1/batches?withheld=true`: its file missing or not matching the anchor) leaves its
    seqs out of the log: fold its entry hash once in their place. A full
    page of final entries never changes and is served as immutable (unless a batch file it needs for a proof is
    not here yet)."""
    state = state_of(conn, settings)
    proofs = batch_proofs(request.app)
    items, more = entries_page(conn, state, after, limit, proofs)
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
    return EntryPage(items=items, next=nxt)


@read_route(
    router,
    "/entries/{seq}",
    operation_id="getEntry",
    response_model=Entry,
    summary="One entry (immutable once final)",
    responses={**ok("The entry"), **NOT_MODIFIED, **NOT_FOUND},
)
def get_entry(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    seq: Annotated[int, Path(ge=0, le=INT64_MAX, description="the entry's seq", examples=[42])],
) -> Any:
    """The entry at `seq`. Once its block is final it never changes and is served as immutable (a batched
    record once its Merkle proof can be given, too)."""
    found, etag, cache = one_entry(request, conn, settings, seq)
    return conditional(request, response, etag, cache) or found


def one_entry(
    request: Request, conn: Connection, settings: ApiSettings, seq: int
) -> tuple[Entry, str, str]:
    """The entry, its ETag and how long it may be kept."""
    state = state_of(conn, settings)
    proofs = batch_proofs(request.app)
    found = entry(conn, state, seq, proofs)
    if found is None:
        inside = batch_containing(conn, seq) if seq < state.entry_count else None
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


@read_route(
    router,
    "/entries/{seq}/proof",
    operation_id="getEntryProof",
    response_model=Proof,
    summary="One entry's proof alone (a batched record's with its Merkle proof)",
    responses={**ok("The proof"), **NOT_MODIFIED, **NOT_FOUND},
)
def get_entry_proof(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    seq: Annotated[int, Path(ge=0, le=INT64_MAX, description="the entry's seq", examples=[42])],
) -> Any:
    """`proof` of `GET /api/v1/entries/{seq}`: where the entry is on chain and, for a record written in a
    batch, `batch` with its Merkle proof. Cached as the entry is."""
    found, etag, cache = one_entry(request, conn, settings, seq)
    return conditional(request, response, etag_of("proof", etag), cache) or found.proof

