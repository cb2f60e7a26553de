"""Audit routes of the API, under ``/api/v1``: the auditors governance registered, their attestations (each with the
index's verdict on its checkpoint, ``matches_ledger``), and audit reports served by their hash (``api.attestations``).

``PUT /api/v1/audit-reports/{hash}`` lets anyone publish a report an indexed attestation names: it counts as a write
(``write_rate_per_minute`` per client address, its own token buckets), and is refused, each a ``{"error": {"code",
"message"}}`` (``api.errors``), when:

======  ======================  ==========================================================================
429     ``rate_limited``        too many writes from this client address (``Retry-After``)
404     ``report_not_attested`` no indexed attestation names this hash (checked before the body is read)
413     ``body_too_large``      the body is over ``MAX_REPORT_BYTES`` (8 MiB): by its Content-Length, or while
                                it is read (a chunked body has none)
422     ``hash_mismatch``       keccak256 of the body is not the hash in the path
400     ``invalid_json``        the body is not JSON (UTF-8; NaN and Infinity are not JSON)
======  ======================  ==========================================================================

An accepted report is written durably (``ledger.files.HashedFiles``) before the answer: 201 when it was not here,
200 when it already was. ``GET`` gives its exact bytes (``application/json``; immutable: the name is the hash).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import json
from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import attestations
from api.bodies import nests_too_deep, read_body
from api.deps import Settings, Snapshot
from api.errors import ApiError, not_found
from api.http import IMMUTABLE, SHORT, conditional, next_link, not_modified, not_modified_response, view_etag
from api.ratelimit import Budget
from api.read._common import read_snapshot, to_hex
from api.routes._common import (
    CACHE_HEADERS,
    DEFAULT_LIMIT,
    INT64_MAX,
    LINK_HEADER,
    NOT_FOUND,
    NOT_MODIFIED,
    PREFIX,
    Limit,
    include,
    read_route,
    read_router,
    state_of,
)
from api.schemas.audit import Attestation, AttestationPage, Auditor, AuditorPage
from api.schemas.errors import ErrorResponse
from api.settings import ApiSettings
from ledger.encoding import keccak
from ledger.errors import LedgerError

REPORT_HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
ReportHash = Annotated[
    str,
    Path(pattern=REPORT_HASH_PATTERN, description="keccak256 of the report's bytes (0x + 64 hex digits), as an "
         "attestation names it", examples=["0x1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8"]),
]
AuditorQuery = Annotated[
    str | None,
    Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="only this auditor key's attestations",
          examples=["0x448742A18a57Bd81d51bB4b9B4ff47aBA6daaB65"]),
]


def _ok(description: str, **extra: Any) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "headers": {**CACHE_HEADERS, **extra}}}


def _stored(report_hash: bytes, size: int) -> dict[str, Any]:
    return {"report_hash": to_hex(report_hash), "report_url": attestations.report_url(report_hash),
            "bytes": size}


def _not_json(_: str) -> Any:
    raise ValueError("not JSON")


TAG = {"name": "audits", "description": "Registered auditors, their attestations, and audit reports by hash"}
After = Annotated[
    int | None,
    Query(ge=0, le=INT64_MAX, description="cursor: items with seq above this (the `next` of the previous page)"),
]

router = read_router("audits")


def read(path: str, **kwargs: Any) -> Any:
    return read_route(router, path, **kwargs)


@read(
    "/auditors",
    operation_id="listAuditors",
    response_model=AuditorPage,
    summary="Auditor keys registered by governance, each registration with its proof",
    responses={**_ok("A page of registrations", **LINK_HEADER), **NOT_MODIFIED},
)
def list_auditors(request: Request, response: Response, conn: Snapshot, settings: Settings, after: After = None,
                  limit: Limit = DEFAULT_LIMIT) -> Any:
    """Every registration of an auditor key (an `auditor_authorized` entry), whether it stands or was revoked (an
    `auditor_revoked` entry), how many attestations the key has recorded and its latest one. Only a registered
    key's attestations are recorded by the contract; an auditor key is never an agency key."""
    state = state_of(conn, settings)
    reports = attestations.audit_reports(request.app)
    items, more = attestations.auditors_page(conn, state, reports, after, limit)
    if (cached := conditional(request, response, view_etag(request, state.position, _availability(items)),
                              SHORT)) is not None:
        return cached
    nxt = items[-1].registration.seq if more and items else None
    if nxt is not None:
        response.headers["Link"] = next_link(request, after=nxt, limit=limit)
    return AuditorPage(items=items, next=nxt)

@read(
    "/attestations",
    operation_id="listAttestations",
    response_model=AttestationPage,
    summary="Audit attestations recorded on the ledger, in seq order, a page at a time",
    responses={**_ok("A page of attestations", **LINK_HEADER), **NOT_MODIFIED},
)
def list_attestations(request: Request, response: Response, conn: Snapshot, settings: Settings,
                      auditor: AuditorQuery = None, after: After = None, limit: Limit = DEFAULT_LIMIT) -> Any:
    """Every attestation (an `audit_attested` entry): the auditor's checkpoint (block, entry count, running hash),
    its report hash, verdict and findings, whether the checkpoint is the ledger's (`matches_ledger`: the contract
    cannot check the running hash, the index does), whether the report is published here, and the proof."""
    key = None if auditor is None else to_checksum_address(auditor)
    state = state_of(conn, settings)
    reports = attestations.audit_reports(request.app)
    items, more = attestations.attestations_page(conn, state, reports, after, limit, key)
    if (cached := conditional(request, response, view_etag(request, state.position, _availability(items)),
                              SHORT)) is not None:
        return cached
    nxt = items[-1].seq if more and items else None
    if nxt is not None:
        params: dict[str, Any] = {"after": nxt, "limit": limit}
        if key is not None:
            params["auditor"] = key
        response.headers["Link"] = next_link(request, **params)
    return AttestationPage(items=items, next=nxt)

@read(
    "/attestations/{seq}",
    operation_id="getAttestation",
    response_model=Attestation,
    summary="One audit attestation",
    responses={**_ok("The attestation"), **NOT_MODIFIED, **NOT_FOUND},
)
def get_attestation(
    request: Request,
    response: Response,
    conn: Snapshot,
    settings: Settings,
    seq: Annotated[int, Path(ge=0, le=INT64_MAX, description="the attestation's entry seq", examples=[1205])],
) -> Any:
    """The attestation recorded as entry `seq`, with its proof and the index's verdict on its checkpoint."""
    state = state_of(conn, settings)
    found = attestations.attestation(conn, state, attestations.audit_reports(request.app), seq)
    if found is None:
        raise not_found(f"no attestation at seq {seq} ({PREFIX}/attestations lists them)")
    etag = view_etag(request, state.position, found.report_available)
    return conditional(request, response, etag, SHORT) or found

@read(
    "/audit-reports/{report_hash}",
    operation_id="getAuditReport",
    summary="An audit report, byte for byte, by its keccak256",
    response_class=Response,
    responses={
        200: {
            "description": "The report's exact bytes: their keccak256 is the hash in the path",
            "content": {"application/json": {"schema": {"type": "object"}}},
            "headers": CACHE_HEADERS,
        },
        **NOT_MODIFIED,
        404: {"model": ErrorResponse, "description": "No report with this hash is published here "
              "(report_unavailable)"},
    },
)
async def get_report(request: Request, report_hash: ReportHash) -> Response:
    """The JSON report an auditor's attestation names by its hash, exactly as published (check: keccak256 of the
    bytes is the hash). Served as immutable: its name is its content."""
    digest = bytes.fromhex(report_hash[2:])
    etag = f'"{to_hex(digest)}"'
    if not_modified(request, etag):
        return not_modified_response(etag, IMMUTABLE)
    reports = attestations.audit_reports(request.app)
    try:
        content = await run_in_threadpool(reports.get, digest)
    except LedgerError:
        content = None  # altered on disk: never served as the named report
    if content is None:
        raise ApiError("report_unavailable", f"no report {to_hex(digest)} is published here (an "
                       f"auditor or anyone holding it may publish it: PUT {request.url.path})")
    return Response(content, media_type="application/json", headers={"ETag": etag, "Cache-Control": IMMUTABLE})

@router.put(
    "/audit-reports/{report_hash}",
    operation_id="putAuditReport",
    summary="Publish an audit report an attestation names (a write: rate limited)",
    status_code=201,
    responses={
        200: {"description": "Already published: nothing changed"},
        201: {"description": "Published (written durably)"},
        404: {"model": ErrorResponse, "description": "report_not_attested: no indexed attestation names "
              "this hash"},
        400: {"model": ErrorResponse, "description": "invalid_json: the body is not JSON"},
        413: {"model": ErrorResponse, "description": "body_too_large: over 8 MiB"},
        422: {"model": ErrorResponse, "description": "hash_mismatch: keccak256 of the body is another "
              "hash"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "the report, byte for byte as hashed"}}}}},
)
async def put_report(request: Request, report_hash: ReportHash) -> Response:
    """Store the body as the report with this hash, when an indexed attestation names the hash, the body hashes
    to it (keccak256), is at most 8 MiB and is JSON. Anyone may publish it (the hash makes it the auditor's)."""
    writes: Budget = request.app.state.report_writes
    writes.charge_request(request)
    digest = bytes.fromhex(report_hash[2:])
    named = await run_in_threadpool(_attested, request.app, digest)
    if not named:
        raise ApiError("report_not_attested", f"no attestation on the ledger names report "
                       f"{to_hex(digest)}: only a report an indexed attestation commits to is kept")
    body = await read_body(request, attestations.MAX_REPORT_BYTES)
    if keccak(body) != digest:
        raise ApiError("hash_mismatch", f"the body's keccak256 is {to_hex(keccak(body))}, not "
                       f"{to_hex(digest)}")
    try:
        if nests_too_deep(body):
            raise ValueError("too deep")
        json.loads(body, parse_constant=_not_json)
    except ValueError:
        raise ApiError("invalid_json", "the report is not JSON (UTF-8)") from None
    reports = attestations.audit_reports(request.app)
    existed = await run_in_threadpool(reports.present, digest)
    await run_in_threadpool(reports.put, body, digest)
    return JSONResponse(_stored(digest, len(body)), status_code=200 if existed else 201)

def other_method(request: Request) -> Response:
    # The GET (with HEAD) and PUT of a report are separate routes, and a 405 would list only one's methods.
    raise ApiError("method_not_allowed", f"{request.method} is not allowed here",
                   headers={"Allow": "GET, HEAD, PUT"})

router.add_api_route("/audit-reports/{report_hash}", other_method, methods=["DELETE", "OPTIONS", "PATCH", "POST"],
                     include_in_schema=False)


def _availability(items: list[Any]) -> tuple[bool, ...]:
    """Which reports of a page's attestations are published (the answer changes when one is)."""
    out = []
    for item in items:
        found = item.latest_attestation if isinstance(item, Auditor) else item
        out.append(found is not None and found.report_available)
    return tuple(out)


def _attested(app: FastAPI, digest: bytes) -> bool:
    with read_snapshot(app.state.store) as conn:
        return attestations.report_attested(conn, digest)


def register(app: FastAPI, settings: ApiSettings) -> None:
    """Include the audit routes (after ``api.routes.public``: its error handlers, read rate limit and CORS apply), with
    the budget of report writes (``write_rate_per_minute`` per client; none when 0)."""
    app.state.report_writes = Budget("reports", settings.write_rate_per_minute, "audit reports")
    include(app, router, settings)
    app.openapi_tags = (app.openapi_tags or []) + [TAG]


__all__ = ["register", "router"]
