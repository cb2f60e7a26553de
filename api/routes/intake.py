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
``PUT``, ``GET`` and ``DELETE /api/v1/intake/webhook``
    Have each new filing POSTed to the agency's case system, signed (``api.webhooks``: HMAC, retries with backoff,
    one delivery id per filing); see how deliveries stand; stop them.

Refusals: 401 ``unauthenticated`` (no token, malformed, not signed) or ``token_expired``; 403 ``unauthorized_signer``
(the key is not authorised for the agency the token names); 404 ``not_found``; 503 ``node_unavailable`` when the chain
cannot be asked who the key is. Answers are ``Cache-Control: no-store``: they hold personal data. Logs name the agency
and seqs, never the content.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from eth_utils import to_checksum_address
from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from api.errors import refusal
from api.read._common import read_snapshot
from api.read.filings import filing, filings_page
from api.read.state import index_state
from api.routes._common import INT64_MAX
from api.routes.write import RelayService, _chain, _GuardedRoute, _Unavailable
from api.schemas.write import ErrorOut
from api.settings import ApiSettings
from api.webhooks import Deliverer, WebhookBook, WebhookRefused, check_url
from ledger.chain.access import AccessRefused, read_token
from ledger.records import short_code
from ledger.relay.store import CitizenFiles
from ledger.store.schema import filings

log = logging.getLogger("api.intake")

PREFIX = "/api/v1/intake"
#: how long the chain's answer "this key is authorised for that agency" is remembered
AUTH_CACHE_SECONDS = 30.0
NO_STORE = {"Cache-Control": "no-store"}


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="where to POST each new filing (https)",
                     examples=["https://cases.roads.example.gov/civic-ledger"])


def intake_item(view: Any, files: CitizenFiles) -> dict[str, Any]:
    """A filing as the intake shows it, and its webhook sends it: the filing as the ledger holds it (``view``, a
    ``FilingView``), the content from the private store (null when this service holds none), its photos' paths."""
    stored = files.filing(view.receipt, bytes.fromhex(view.content_hash[2:]))
    photos = []
    if stored is not None:
        for index, attachment in enumerate(stored.content.attachments, start=1):
            photos.append({**attachment.model_dump(), "url": f"{PREFIX}/filings/{view.seq}/photos/{index}"})
    return {"filing": view.model_dump(mode="json"),
            "content": None if stored is None else stored.content.model_dump(mode="json"), "photos": photos}


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
        return intake_item(view, files)

    def next_filing(agency: str, cursor: int) -> tuple[int, dict[str, Any]] | None:
        """The agency's first filing after seq `cursor`, as the intake shows it (what its webhook is sent)."""
        with read_snapshot(app.state.store) as conn:
            index = index_state(conn, settings.contract_address, settings.chain_id)
            items, _ = filings_page(conn, index, int(time.time()), agency_id=agency, answered=None, receipt=None,
                                    after=cursor, limit=1)
        return None if not items else (items[0].seq, intake_item(items[0], files))

    book = WebhookBook(settings.data_dir / "intake")
    deliverer = Deliverer(book, next_filing, allow_private=settings.webhook_allow_private,
                          poll_interval=float(settings.extra.get("webhook_poll_seconds", "2")))
    app.state.webhook_deliverer = deliverer

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        deliverer.start()
        try:
            yield
        finally:
            await run_in_threadpool(deliverer.stop)
            book.close()

    router = APIRouter(prefix=PREFIX, tags=["intake"], lifespan=lifespan, route_class=_GuardedRoute)
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

    @router.put("/webhook", operation_id="setIntakeWebhook", responses=responses,
                summary="Have your agency's new filings POSTed to your case system, signed (authenticated)")
    async def set_webhook(request: Request, body: WebhookIn) -> Response:
        """Each new filing is POSTed to `url` in seq order, signed with a secret shown in this answer only (see
        `api.webhooks`: headers X-Civic-Delivery and X-Civic-Signature). Setting it again replaces the URL and the
        secret; deliveries start after the filings indexed now."""
        def work(agency: str) -> Response:
            try:
                check_url(body.url, allow_private=settings.webhook_allow_private)
            except WebhookRefused as exc:
                return refusal("invalid_body", f"url: {exc}", field="url", headers=NO_STORE)
            with read_snapshot(request.app.state.store) as conn:
                latest = conn.execute(select(func.max(filings.c.seq)).where(filings.c.agency_id == agency)).scalar()
            hook = book.set(agency, body.url, -1 if latest is None else int(latest))
            log.info("webhook of %s set", agency)
            return JSONResponse({**hook.public(), "secret": hook.secret}, headers=NO_STORE)

        return await guarded(request, work)

    @router.get("/webhook", operation_id="getIntakeWebhook", responses=responses,
                summary="Your agency's webhook and how its deliveries stand (authenticated)")
    async def get_webhook(request: Request) -> Response:
        def work(agency: str) -> Response:
            hook = book.get(agency)
            if hook is None:
                return refusal("not_found", "your agency has no webhook", headers=NO_STORE)
            return JSONResponse(hook.public(), headers=NO_STORE)

        return await guarded(request, work)

    @router.delete("/webhook", operation_id="deleteIntakeWebhook", responses=responses,
                   summary="Stop the deliveries (authenticated)")
    async def delete_webhook(request: Request) -> Response:
        def work(agency: str) -> Response:
            if not book.delete(agency):
                return refusal("not_found", "your agency has no webhook", headers=NO_STORE)
            log.info("webhook of %s deleted", agency)
            return Response(status_code=204, headers=NO_STORE)

        return await guarded(request, work)

    app.include_router(router)
    app.openapi_tags = (app.openapi_tags or []) + [
        {"name": "intake", "description": "An agency's citizens' filings with their private content (authenticated)"}
    ]


__all__ = ["register"]
