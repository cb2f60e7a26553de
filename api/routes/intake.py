"""The agency's intake over HTTP, for its own case system: its citizens' filings with what the filers wrote.

Every request carries ``Authorization: Bearer <token>``, a token an authorised key of the agency signed
(``ledger.chain.access``; ``civic-ledger intake token`` makes one). The token names the agency; the key must be
authorised for it on chain *now* (``CivicLedger.agencyOf``, asked of the node and remembered for
:data:`AUTH_CACHE_SECONDS`), so revoking a key cuts its tokens off within that time. An agency sees its own filings
only: another agency's filing is "not found", exactly as one that does not exist.

``GET /api/v1/intake/filings``
    The agency's filings in seq order, a page at a time (``state`` awaiting, answered or all; ``after``; ``limit``),
    each with what the ledger holds of it (``filing``: as ``GET /api/v1/filings/{seq}`` shows it), the content from the
    service's private store (``content``: ``ledger.filings.FilingContent``; null when this service holds none — filed
    through another relay) and its photos' links.
``GET /api/v1/intake/filings/{seq}`` and ``…/{seq}/photos/{n}``
    One filing; one photo's bytes (from 1).

Refusals: 401 ``unauthenticated`` (no token, malformed, not signed) or ``token_expired``; 403 ``unauthorized_signer``
(the key is not authorised for the agency the token names); 404 ``not_found``; 503 ``node_unavailable`` when the chain
cannot be asked who the key is. Answers are ``Cache-Control: no-store``: they hold personal data. Logs name the agency
and seqs, never the content.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import logging
import threading
import time
from typing import Annotated, Any, Literal

from eth_utils import to_checksum_address
from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.errors import refusal
from api.read._common import read_snapshot
from api.read.filings import filing, filings_page
from api.read.state import index_state
from api.routes._common import INT64_MAX
from api.routes.write import RelayService, _chain, _Unavailable
from api.schemas.write import ErrorOut
from api.settings import ApiSettings
from ledger.chain.access import AccessRefused, read_token
from ledger.records import short_code
from ledger.relay.store import CitizenFiles

log = logging.getLogger("api.intake")

PREFIX = "/api/v1/intake"
#: how long the chain's answer "this key is authorised for that agency" is remembered
AUTH_CACHE_SECONDS = 30.0
NO_STORE = {"Cache-Control": "no-store"}


class _Denied(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def register(app: FastAPI, settings: ApiSettings) -> None:
    service: RelayService = app.state.agency_writes
    files = CitizenFiles(settings.data_dir / "relay")
    authorised: dict[str, tuple[bytes, float]] = {}  # signer -> (its agency on chain, when asked)
    lock = threading.Lock()

    def agency_of_token(request: Request) -> str:
        """The agency the request's token grants, checked (runs in a worker thread)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Denied("unauthenticated", "send Authorization: Bearer <token> (make one with `civic-ledger intake "
                                             "token --key …`)")
        if settings.chain_id is None or not settings.contract_address:
            raise _Unavailable("write_unavailable", "this deployment has no chain configured")
        try:
            access = read_token(token.strip(), settings.chain_id, to_checksum_address(settings.contract_address))
        except AccessRefused as exc:
            raise _Denied(exc.code, exc.message) from None
        now = time.monotonic()
        with lock:
            known = authorised.get(access.signer)
        if known is None or now - known[1] > AUTH_CACHE_SECONDS:
            ledger = service.ledger
            agency = _chain(lambda: ledger.agency_of(access.signer))
            with lock:
                if len(authorised) > 4096:
                    authorised.clear()
                authorised[access.signer] = (agency, now)
            known = (agency, now)
        if known[0] != short_code(access.agency_id):
            raise _Denied("unauthorized_signer", f"the token's key is not an authorised key of {access.agency_id!r} "
                                                 "(revoked, or another agency's)")
        return access.agency_id

    async def guarded(request: Request, work: Any) -> Response:
        try:
            agency = await run_in_threadpool(agency_of_token, request)
            return await run_in_threadpool(work, agency)
        except _Denied as exc:
            log.info("intake refused: %s", exc.code)
            headers = NO_STORE if exc.code == "unauthorized_signer" else {
                "WWW-Authenticate": 'Bearer realm="intake"', **NO_STORE}
            return refusal(exc.code, exc.message, headers=headers)
        except _Unavailable as exc:
            return refusal(exc.code, exc.message)

    def with_content(request: Request, view: Any) -> dict[str, Any]:
        stored = files.filing(view.receipt, bytes.fromhex(view.content_hash[2:]))
        photos = []
        if stored is not None:
            for index, attachment in enumerate(stored.content.attachments, start=1):
                photos.append({**attachment.model_dump(),
                               "url": str(request.url_for("intakePhoto", seq=str(view.seq), number=str(index)))})
        return {"filing": view.model_dump(mode="json"),
                "content": None if stored is None else stored.content.model_dump(mode="json"), "photos": photos}

    router = APIRouter(prefix=PREFIX, tags=["intake"])
    responses: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorOut, "description": "unauthenticated or token_expired"},
        403: {"model": ErrorOut, "description": "unauthorized_signer"},
        404: {"model": ErrorOut, "description": "not_found (or another agency's)"},
        503: {"model": ErrorOut, "description": "the chain cannot be asked who the key is"},
    }

    @router.get("/filings", operation_id="intakeFilings", responses=responses,
                summary="Your agency's filings with what the filers wrote (authenticated)")
    async def intake_filings(
        request: Request,
        state: Annotated[Literal["awaiting", "answered", "all"], Query(description="awaiting an answer, answered, or "
                                                                                   "all")] = "awaiting",
        after: Annotated[int | None, Query(ge=0, le=INT64_MAX, description="cursor: seq above this")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Response:
        """Oldest first; `next` is the cursor of the next page (null on the last)."""
        def work(agency: str) -> Response:
            with read_snapshot(request.app.state.store) as conn:
                index = index_state(conn, settings.contract_address, settings.chain_id)
                answered = None if state == "all" else state == "answered"
                items, more = filings_page(conn, index, int(time.time()), agency_id=agency, answered=answered,
                                           receipt=None, after=after, limit=limit)
            body = {"items": [with_content(request, v) for v in items],
                    "next": items[-1].seq if more and items else None}
            log.info("intake of %s read: %d filings", agency, len(items))
            return JSONResponse(body, headers=NO_STORE)

        return await guarded(request, work)

    def one(request: Request, agency: str, seq: int) -> Any:
        with read_snapshot(request.app.state.store) as conn:
            index = index_state(conn, settings.contract_address, settings.chain_id)
            view = filing(conn, index, seq, int(time.time()))
        return None if view is None or view.agency_id != agency else view

    @router.get("/filings/{seq}", operation_id="intakeFiling", responses=responses,
                summary="One of your agency's filings with what the filer wrote (authenticated)")
    async def intake_filing(request: Request, seq: Annotated[int, Path(ge=0, le=INT64_MAX)]) -> Response:
        def work(agency: str) -> Response:
            view = one(request, agency, seq)
            if view is None:
                return refusal("not_found", f"your agency has no filing {seq}", headers=NO_STORE)
            return JSONResponse(with_content(request, view), headers=NO_STORE)

        return await guarded(request, work)

    @router.get("/filings/{seq}/photos/{number}", name="intakePhoto", operation_id="intakePhoto",
                responses=responses, summary="One photo of one of your agency's filings (authenticated)")
    async def intake_photo(
        request: Request, seq: Annotated[int, Path(ge=0, le=INT64_MAX)], number: Annotated[int, Path(ge=1, le=10)],
    ) -> Response:
        def work(agency: str) -> Response:
            view = one(request, agency, seq)
            stored = None if view is None else files.filing(view.receipt, bytes.fromhex(view.content_hash[2:]))
            if stored is None or number > len(stored.photos):
                return refusal("not_found", f"your agency's filing {seq} has no photo {number} held here",
                               headers=NO_STORE)
            media_type, data = stored.photos[number - 1]
            return Response(data, media_type=media_type,
                            headers={**NO_STORE, "X-Content-Type-Options": "nosniff",
                                     "Content-Disposition": f'attachment; filename="filing-{seq}-{number}"'})

        return await guarded(request, work)

    app.include_router(router)
    app.openapi_tags = (app.openapi_tags or []) + [
        {"name": "intake", "description": "An agency's citizens' filings with their private content (authenticated)"}
    ]


__all__ = ["register"]
