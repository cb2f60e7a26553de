"""Atom feeds, under ``/api/v1/feeds`` (``api.feeds`` says what each holds):

``receipts/{address}.atom``                 a case, followed by its receipt key's address (the code never leaves the
                                            device: the page derives the address)
``agencies/{agency_id}.atom``               an agency's entries
``commitments/{agency_id}/{commitment_id}.atom``  a commitment's versions and the events of its latest cases

``lang`` (``en`` or ``zh``; else Accept-Language) picks the words. Each answer is cached a minute by anyone on the
way; every query is bounded (at most ``FEED_SIZE`` rows of each table, by an index).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import uuid
from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, select

from api.errors import ApiError, not_found
from api.feeds import FEED_SIZE, MEDIA_TYPE, FeedItem, kind_title, render
from api.http import negotiate_language
from api.read._common import read_snapshot
from api.read.state import index_state
from api.settings import ApiSettings
from ledger.open311 import Lang
from ledger.store.schema import (
    case_events,
    cases,
    commitment_retirements,
    commitments,
    disputes,
    entries,
    filings,
    ratings,
    receipts,
)

PREFIX = "/api/v1/feeds"
CODE_PATTERN = r"^[!-~]{1,32}$"


def _lang(request: Request, given: str | None) -> Lang:
    """The feed's language by the API's one rule (``api.http.negotiate_language``); a bad ``lang`` is a 422."""
    try:
        return negotiate_language(given, request.headers.get("accept-language"))
    except ValueError as exc:
        raise ApiError("invalid_request", str(exc)) from None


def _items(conn: Connection, seqs: set[int], lang: Lang, page: str) -> list[FeedItem]:
    """The entries at `seqs` as feed items, newest first, at most FEED_SIZE."""
    if not seqs:
        return []
    chosen = sorted(seqs, reverse=True)[:FEED_SIZE]
    query = (
        select(entries.c.seq, entries.c.kind, entries.c.agency_id, entries.c.block_time, entries.c.voided_by,
               case_events.c.action, case_events.c.case_id, ratings.c.score)
        .select_from(entries.outerjoin(case_events, case_events.c.seq == entries.c.seq)
                     .outerjoin(ratings, ratings.c.seq == entries.c.seq))
        .where(entries.c.seq.in_(chosen))
        .order_by(entries.c.seq.desc())
    )
    items = []
    for row in conn.execute(query).mappings():
        title = kind_title(row["kind"], lang, row["action"])
        if row["score"] is not None:
            title += f" {row['score']}/5"
        if row["voided_by"] is not None:
            title += " (已被更正作废)" if lang == "zh" else " (voided by a correction)"
        where = f"{row['agency_id']}"
        if row["case_id"] is not None:
            where += f" · {'办件' if lang == 'zh' else 'case'} 0x{bytes(row['case_id']).hex()[:12]}…"
        summary = f"{where} · {'条目' if lang == 'zh' else 'entry'} #{row['seq']}"
        items.append(FeedItem(seq=row["seq"], title=title, at=row["block_time"], link=f"{page}#/proof/{row['seq']}",
                              summary=summary))
    return items


def _latest(conn: Connection, query: Any) -> set[int]:
    return {int(seq) for seq in conn.execute(query.limit(FEED_SIZE)).scalars()}


def register(app: FastAPI, settings: ApiSettings) -> None:
    router = APIRouter(prefix=PREFIX, tags=["feeds"])

    def answer(request: Request, lang: Lang, title: str, key: str, page_path: str, collect: Any) -> Response:
        base = str(request.base_url)
        with read_snapshot(request.app.state.store) as conn:
            state = index_state(conn, settings.contract_address, settings.chain_id)
            seqs = collect(conn)
            items = _items(conn, seqs, lang, base)
            newest = conn.execute(select(entries.c.block_time).order_by(entries.c.seq.desc()).limit(1)).scalar()
        deployment = f"civic-ledger:{state.chain_id}:{(state.contract_address or '').lower()}"
        body = render(
            feed_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{deployment}:feed:{key}").urn, title=title,
            self_url=str(request.url), page_url=f"{base}#{page_path}", items=items, lang=lang,
            item_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{deployment}:entry:").urn + ":{seq}",
            empty_at=int(newest or 0),
        )
        # the language may come from Accept-Language: a shared cache keeps one copy per language asked
        return Response(body, media_type=MEDIA_TYPE,
                        headers={"Cache-Control": "public, max-age=60", "Vary": "Accept-Language"})

    @router.get("/receipts/{address}.atom", operation_id="receiptFeed", response_class=Response,
                summary="A case followed by its receipt key's address (Atom)")
    async def receipt_feed(
        request: Request,
        address: Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")],
        lang: Annotated[str | None, Query(description="en or zh")] = None,
    ) -> Response:
        """The case's filing and answer, its events, its receipt's issue and claim, ratings and disputes."""
        words = _lang(request, lang)
        key = to_checksum_address(address)

        def collect(conn: Connection) -> set[int]:
            seqs: set[int] = set()
            filed = conn.execute(select(filings.c.seq, filings.c.answer_seq, filings.c.agency_id, filings.c.case_id)
                                 .where(filings.c.receipt == key).limit(1)).first()
            issued = conn.execute(select(receipts.c.agency_id, receipts.c.case_id).where(receipts.c.receipt == key)
                                  .order_by(receipts.c.seq).limit(1)).first()
            case: tuple[Any, Any] | None = None if issued is None else (issued.agency_id, issued.case_id)
            if filed is not None:
                seqs |= {s for s in (filed.seq, filed.answer_seq) if s is not None}
                if case is None and filed.case_id is not None:
                    case = (filed.agency_id, filed.case_id)
            if case is None and not seqs:
                raise not_found("no receipt or filing with this key is recorded")
            if case is not None:
                for table in (case_events, receipts, ratings, disputes):
                    seqs |= _latest(conn, select(table.c.seq).where(table.c.agency_id == case[0],
                                                                    table.c.case_id == case[1])
                                    .order_by(table.c.seq.desc()))
            return seqs

        title = "我的办件" if words == "zh" else "My case"
        return await run_in_threadpool(answer, request, words, title, f"receipt:{key}", "/receipt", collect)

    @router.get("/agencies/{agency_id}.atom", operation_id="agencyFeed", response_class=Response,
                summary="An agency's entries (Atom)")
    async def agency_feed(
        request: Request,
        agency_id: Annotated[str, Path(pattern=CODE_PATTERN)],
        lang: Annotated[str | None, Query(description="en or zh")] = None,
    ) -> Response:
        words = _lang(request, lang)

        def collect(conn: Connection) -> set[int]:
            seqs = _latest(conn, select(entries.c.seq).where(entries.c.agency_id == agency_id)
                           .order_by(entries.c.seq.desc()))
            if not seqs:
                raise not_found(f"no agency {agency_id!r} has entries on the ledger")
            return seqs

        title = f"{agency_id} — {'账本记录' if words == 'zh' else 'ledger entries'}"
        return await run_in_threadpool(answer, request, words, title, f"agency:{agency_id}",
                                       f"/agency/{agency_id}", collect)

    @router.get("/commitments/{agency_id}/{commitment_id}.atom", operation_id="commitmentFeed",
                response_class=Response, summary="A commitment's versions and its latest cases' events (Atom)")
    async def commitment_feed(
        request: Request,
        agency_id: Annotated[str, Path(pattern=CODE_PATTERN)],
        commitment_id: Annotated[str, Path(pattern=CODE_PATTERN)],
        lang: Annotated[str | None, Query(description="en or zh")] = None,
    ) -> Response:
        words = _lang(request, lang)

        def collect(conn: Connection) -> set[int]:
            versions = _latest(conn, select(commitments.c.seq).where(commitments.c.agency_id == agency_id,
                                                                     commitments.c.commitment_id == commitment_id)
                               .order_by(commitments.c.seq.desc()))
            if not versions:
                raise not_found(f"agency {agency_id!r} has published no commitment {commitment_id!r}")
            seqs = versions | _latest(conn, select(commitment_retirements.c.seq).where(
                commitment_retirements.c.agency_id == agency_id,
                commitment_retirements.c.commitment_id == commitment_id).order_by(commitment_retirements.c.seq.desc()))
            latest_cases = conn.execute(
                select(cases.c.case_id).where(cases.c.agency_id == agency_id, cases.c.commitment_id == commitment_id)
                .order_by(cases.c.opened_at.desc()).limit(FEED_SIZE)
            ).scalars().all()
            if latest_cases:
                seqs |= _latest(conn, select(case_events.c.seq).where(case_events.c.agency_id == agency_id,
                                                                      case_events.c.case_id.in_(latest_cases))
                                .order_by(case_events.c.seq.desc()))
            return seqs

        title = f"{agency_id} · {commitment_id}"
        return await run_in_threadpool(answer, request, words, title, f"commitment:{agency_id}/{commitment_id}",
                                       f"/commitment/{agency_id}/{commitment_id}", collect)

    app.include_router(router)
    app.openapi_tags = (app.openapi_tags or []) + [
        {"name": "feeds", "description": "Atom feeds: a case by its receipt, an agency, a commitment"}
    ]


__all__ = ["register"]
