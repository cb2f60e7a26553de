"""Open311 GeoReport v2 read endpoints: commitments as services, cases as service requests, in JSON and XML.

Existing Open311 clients and dashboards read these unchanged: paths, parameters, field and element names are the
specification's (http://wiki.open311.org/GeoReport_v2 and …/Service_Discovery). Everything is read from the index.

Endpoints (each in ``.json`` and ``.xml``), under ``/open311/v2``:

=================================  ========================================================================
``discovery``                      Service Discovery: this endpoint, its formats, and when services changed
``services``                       the service list: every commitment not retired
``services/{service_code}``        a service definition (retired commitments too, so every request's code resolves)
``requests``                       service requests, filtered by the standard parameters (below)
``requests/{service_request_id}``  one service request (a list of one, as the specification has it)
=================================  ========================================================================

Mapping (reversible; see :func:`ledger.open311.service_code_of` and :func:`ledger.open311.service_request_id_of`,
which define it, its escaping and its words)
    * A **service** is a commitment: ``service_code`` is ``<agency id>.<commitment id>``
      (``DEMO-ROADS.STREETLIGHT-48H``); its current (latest) version gives the name, deadline and target; ``group``
      is the agency's name; ``keywords`` hold the commitment's on-chain service code (a category, e.g.
      ``STREETLIGHT``), the agency id and the commitment id. Codes are printable ASCII, so in each part ``%``, ``.``,
      ``,``, ``:`` and ``/`` are written ``%25``, ``%2E``, ``%2C``, ``%3A`` and ``%2F``: the one bare ``.``
      separates the parts, a list of codes can be split at commas, and a code fits in one path segment. The demo's
      codes contain none of these.
    * A **service request** is a case: ``service_request_id`` is ``<agency id>:0x<case id, 64 lowercase hex digits>``
      (agency id escaped as above). ``status`` is ``open`` (open or on hold) or ``closed`` (fulfilled, rejected,
      withdrawn); ``status_notes`` says which, in words (on time or late, on hold, escalated, overdue);
      ``requested_datetime`` is when the case opened, ``updated_datetime`` the latest claimed time among its
      opening, closing and last recorded event, ``expected_datetime`` its due time (hold time excluded; empty when it
      cannot be computed); ``agency_responsible`` is the agency's name and ``service_notice`` the deadline the case
      runs under (the commitment version in force when it opened).
    * **No personal data**: ``address`` is the district code, the finest location the ledger holds; ``lat``,
      ``long``, ``address_id``, ``zipcode`` and ``media_url`` are always empty, and ``description`` too (a case's
      free text is on chain only as a hash).

Times are W3C date-times in the jurisdiction's local time with its offset (``+08:00``, see
:data:`ledger.workdays.LOCAL_UTC_OFFSET_SECONDS`); queries may use any offset or ``Z``.

Parameters of ``requests``: ``service_request_id`` (comma list; overrides every other filter, as the specification
says), ``service_code`` and ``status`` (``open``/``closed``; each a comma list or repeated), ``start_date`` and
``end_date`` (on ``requested_datetime``, inclusive; a date alone means the whole local day). Without dates the last
90 days are searched; a start (end) date alone gives the 90 days after (before) it; a range over 90 days is refused
(400). Results are newest first, 1000 a page (GeoReport v2's limit; ``page_size`` may ask for fewer, or more up to
``ApiSettings.max_page_size``), paged with the common ``page`` and ``page_size`` extension. Every endpoint but
discovery takes ``jurisdiction_id`` (optional: an unknown one is a 404) and ``lang`` = ``en`` or ``zh`` for names
and notes (else the ``Accept-Language`` header decides; English by default). Unknown parameters, ``api_key``
included, are ignored; a malformed known one is a 400.

Errors are Open311 error lists (``[{"code": 404, "description": "…"}]``, ``<errors><error>…``) with the same HTTP
status, also for unknown paths under ``/open311``. **Creating requests is not offered**: a case is opened by the
agency that serves it, which records it on the ledger and gives the citizen a receipt, so ``POST requests`` answers
403 with an error saying so, and any other method 405.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, RootModel
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from api.deps import get_conn
from api.open311_format import (
    FORMATS,
    MEDIA_TYPES,
    W3C_PATTERN,
    Format,
    InvalidDateTime,
    error,
    parse_time,
    render,
)
from api.settings import ApiSettings
from ledger.metrics import is_case_overdue_at
from ledger.open311 import (
    CASE_STATUSES,
    SPECIFICATION_URL,
    Lang,
    deadline_text,
    definition_attributes,
    format_time,
    parse_service_code,
    parse_service_request_id,
    request_status,
    service_code_of,
    service_description,
    service_request_id_of,
    status_notes,
)
from ledger.records import EntryKind
from ledger.store.schema import agencies, case_events, cases, commitments, entries

PREFIX = "/open311/v2"
#: GeoReport v2 §GET Service Requests: "Default query limit is a span of 90 days or first 1000 requests returned"
MAX_SPAN_SECONDS = 90 * 86_400
SPEC_PAGE_SIZE = 1000

# --- the catalogue: agencies and commitments (small tables, read whole per request) ----------------------------------


@dataclass(frozen=True)
class _Agency:
    agency_id: str
    jurisdiction: str
    name_zh: str
    name_en: str

    def name(self, lang: Lang) -> str:
        return self.name_zh if lang == "zh" else self.name_en


@dataclass(frozen=True)
class _Version:
    agency_id: str
    commitment_id: str
    version: int
    service_code: str
    name_zh: str
    name_en: str
    deadline: int
    deadline_unit: int
    target_bps: int
    valid_from: int
    terms_hash: bytes
    retired: bool

    def name(self, lang: Lang) -> str:
        return self.name_zh if lang == "zh" else self.name_en


@dataclass(frozen=True)
class _Catalogue:
    agencies: dict[str, _Agency]
    #: (agency, commitment) -> version number -> version
    versions: dict[tuple[str, str], dict[int, _Version]]

    @classmethod
    def load(cls, conn: Connection) -> _Catalogue:
        agency_rows = {
            r.agency_id: _Agency(r.agency_id, r.jurisdiction, r.name_zh, r.name_en)
            for r in conn.execute(select(agencies.c.agency_id, agencies.c.jurisdiction, agencies.c.name_zh,
                                         agencies.c.name_en))
        }
        versions: dict[tuple[str, str], dict[int, _Version]] = {}
        c = commitments.c
        for r in conn.execute(
            select(c.agency_id, c.commitment_id, c.version, c.service_code, c.name_zh, c.name_en, c.deadline,
                   c.deadline_unit, c.target_bps, c.valid_from, c.terms_hash, c.retired_seq)
        ):
            versions.setdefault((r.agency_id, r.commitment_id), {})[r.version] = _Version(
                r.agency_id, r.commitment_id, r.version, r.service_code, r.name_zh, r.name_en, r.deadline,
                r.deadline_unit, r.target_bps, r.valid_from, bytes(r.terms_hash), r.retired_seq is not None,
            )
        return cls(agency_rows, versions)

    def current(self, key: tuple[str, str]) -> _Version | None:
        """The latest version: the one new cases run under (the contract's view; a correction does not undo a
        published version, see ledger.index.project)."""
        versions = self.versions.get(key)
        return versions[max(versions)] if versions else None

    def jurisdictions(self) -> set[str]:
        return {a.jurisdiction for a in self.agencies.values()}

    def agencies_in(self, jurisdiction: str | None) -> set[str]:
        return {a.agency_id for a in self.agencies.values() if jurisdiction is None or a.jurisdiction == jurisdiction}


# --- words ------------------------------------------------------------------------------------------------------------


def _is_overdue(row: Any, now: int) -> bool:
    """Open and past due at `now` (``ledger.metrics.is_case_overdue_at``, the rule of the overdue count)."""
    return is_case_overdue_at(row, now)


def _status_notes(row: Any, lang: Lang, now: int) -> str:
    return status_notes(row.status, on_time=row.on_time, overdue=_is_overdue(row, now), escalated=row.escalated,
                        lang=lang)


# --- documents --------------------------------------------------------------------------------------------------------


def _service(catalogue: _Catalogue, version: _Version, lang: Lang) -> dict[str, Any]:
    agency = catalogue.agencies.get(version.agency_id)
    return {
        "service_code": service_code_of(version.agency_id, version.commitment_id),
        "service_name": version.name(lang),
        "description": service_description(version.name(lang), version.deadline, version.deadline_unit,
                                           version.target_bps, version.retired, lang),
        # Nothing to fill in: no service definition call is needed (the definition only informs).
        "metadata": False,
        # A case has its id from the moment it opens.
        "type": "realtime",
        "keywords": ", ".join(dict.fromkeys((version.service_code, version.agency_id, version.commitment_id))),
        "group": agency.name(lang) if agency else version.agency_id,
    }


def _service_definition(version: _Version, lang: Lang) -> dict[str, Any]:
    attributes = definition_attributes(version.deadline, version.deadline_unit, version.target_bps, version.version,
                                       version.valid_from, version.terms_hash, version.retired, lang)
    return {"service_code": service_code_of(version.agency_id, version.commitment_id), "attributes": attributes}


def _request(catalogue: _Catalogue, row: Any, lang: Lang, now: int) -> dict[str, Any]:
    key = (row.agency_id, row.commitment_id)
    versions = catalogue.versions.get(key, {})
    own = versions.get(row.commitment_version)
    current = catalogue.current(key) or own
    agency = catalogue.agencies.get(row.agency_id)
    updated = max(t for t in (row.opened_at, row.closed_at, row.last_event_at) if t is not None)
    return {
        "service_request_id": service_request_id_of(row.agency_id, row.case_id),
        "status": request_status(row.status),
        "status_notes": _status_notes(row, lang, now),
        "service_name": current.name(lang) if current else None,
        "service_code": service_code_of(row.agency_id, row.commitment_id),
        "description": None,
        "agency_responsible": agency.name(lang) if agency else row.agency_id,
        "service_notice": deadline_text(own.deadline, own.deadline_unit, lang) if own else None,
        "requested_datetime": format_time(row.opened_at),
        "updated_datetime": format_time(updated),
        "expected_datetime": format_time(row.due_at),
        # The district is the finest location the ledger holds; nothing finer exists to leak.
        "address": row.district,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


# --- queries ----------------------------------------------------------------------------------------------------------


def _request_select() -> Any:
    c = cases.c
    return select(
        c.agency_id, c.case_id, c.commitment_id, c.commitment_version, c.district, c.opened_at, c.status,
        c.closed_at, c.on_hold_since, c.due_at, c.on_time, c.escalated,
        case_events.c.occurred_at.label("last_event_at"),
    ).select_from(cases.outerjoin(case_events, case_events.c.seq == c.last_seq))


def _by_agency(pairs: Iterable[tuple[str, Any]], column: Any) -> Any:
    """``(agency_id = a AND column IN (…)) OR …``: one term per agency, so a long list stays a shallow expression
    (SQLite limits expression depth; a tuple IN is not portable)."""
    grouped: dict[str, list[Any]] = {}
    for agency_id, value in pairs:
        grouped.setdefault(agency_id, []).append(value)
    return or_(*(and_(cases.c.agency_id == a, column.in_(values)) for a, values in grouped.items()))


# --- parameters -------------------------------------------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, status_code: int, description: str) -> None:
        super().__init__(description)
        self.status_code, self.description = status_code, description


def _list_param(request: Request, name: str) -> list[str]:
    """A parameter given as a comma list, repeated, or both; empty items dropped."""
    return [item.strip() for value in request.query_params.getlist(name) for item in value.split(",") if item.strip()]


_LANG_TAG = re.compile(r"\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*")


def _language(request: Request) -> Lang:
    """``lang`` (en or zh, a region allowed: zh-CN) if given, else the best of zh and en in Accept-Language."""
    lang = request.query_params.get("lang")
    if lang is not None:
        primary = lang.strip().lower().split("-")[0].split("_")[0]
        if primary not in ("en", "zh"):
            raise _BadRequest(400, f"lang must be en or zh, not {lang!r}")
        return "zh" if primary == "zh" else "en"
    best: tuple[float, Lang] = (0.0, "en")
    for part in request.headers.get("accept-language", "").split(","):
        match = _LANG_TAG.fullmatch(part)
        if match is None:
            continue
        primary = match.group(1).lower()
        try:
            q = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        if primary in ("en", "zh") and q > best[0]:
            best = (q, "zh" if primary == "zh" else "en")
    return best[1]


def _jurisdiction(request: Request, catalogue: _Catalogue) -> str | None:
    jurisdiction = request.query_params.get("jurisdiction_id")
    if jurisdiction is None or jurisdiction == "":
        return None
    if jurisdiction not in catalogue.jurisdictions():
        known = ", ".join(sorted(catalogue.jurisdictions()))
        raise _BadRequest(404, f"no jurisdiction {jurisdiction!r} here; known: {known}")
    return jurisdiction


def _window(request: Request, now: int) -> tuple[int, int]:
    texts = {name: request.query_params.get(name) or None for name in ("start_date", "end_date")}
    try:
        start = parse_time(texts["start_date"]) if texts["start_date"] else None
        end = parse_time(texts["end_date"], end=True) if texts["end_date"] else None
    except InvalidDateTime as exc:
        raise _BadRequest(400, str(exc)) from exc
    if start is None and end is None:
        return now - MAX_SPAN_SECONDS, now
    if start is None:
        assert end is not None
        return end - MAX_SPAN_SECONDS, end
    if end is None:
        return start, start + MAX_SPAN_SECONDS
    if end < start:
        raise _BadRequest(400, "end_date is before start_date")
    if end - start > MAX_SPAN_SECONDS:
        raise _BadRequest(400, "start_date to end_date may not span more than 90 days (GeoReport v2); page through "
                               "longer periods 90 days at a time")
    return start, end


# --- OpenAPI documentation of the JSON bodies ------------------------------------------------------------------------


class Open311Error(BaseModel):
    code: int = Field(description="the HTTP status")
    description: str


class Open311Errors(RootModel[list[Open311Error]]):
    pass


class DiscoveryEndpoint(BaseModel):
    specification: str
    url: str
    changeset: str
    type: Literal["production", "test"]
    formats: list[str]


class Discovery(BaseModel):
    changeset: str = Field(description="when the service list or definitions last changed")
    contact: str
    key_service: str
    endpoints: list[DiscoveryEndpoint]


class Service(BaseModel):
    service_code: str = Field(description="<agency id>.<commitment id>")
    service_name: str
    description: str
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str


class ServiceAttribute(BaseModel):
    variable: bool
    code: str
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
    required: bool
    datatype_description: str | None
    order: int
    description: str


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[ServiceAttribute]


class ServiceRequest(BaseModel):
    service_request_id: str = Field(description="<agency id>:0x<case id>")
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str | None
    service_code: str
    description: None = Field(description="always empty: a case's free text is on chain only as a hash")
    agency_responsible: str
    service_notice: str | None
    requested_datetime: str | None
    updated_datetime: str | None
    expected_datetime: str | None
    address: str = Field(description="the district code: no location finer than a district is held")
    address_id: None
    zipcode: None
    lat: None = Field(description="always empty: no coordinates are held")
    long: None = Field(description="always empty: no coordinates are held")
    media_url: None


def _documented(fmt: Format, model: Any, errors: Sequence[int]) -> dict[str, Any]:
    """Route arguments documenting the body: the model for JSON, an XML string for XML, and the error lists. Any
    client error ("4XX") is an Open311 error list; saying so also keeps FastAPI from documenting a 422 that these
    routes never give (they read every parameter as text and check it themselves)."""
    media_type = MEDIA_TYPES[fmt]

    def described(description: str) -> dict[str, Any]:
        if fmt == "json":
            return {"model": Open311Errors, "description": description}
        return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}

    responses: dict[int | str, dict[str, Any]] = {
        status: described({400: "a parameter is not valid", 404: "not found"}[status]) for status in errors
    }
    responses["4XX"] = described("another client error")
    if fmt == "json":
        return {"response_model": model, "responses": responses}
    responses[200] = {"description": "the XML document", "content": {media_type: {"schema": {"type": "string"}}}}
    return {"response_class": Response, "responses": responses}


# --- routes -----------------------------------------------------------------------------------------------------------

_DOC_PARAMS = {
    "jurisdiction_id": "optional; the jurisdiction of the agencies to include (all when omitted)",
    "lang": "en or zh (a region may follow: zh-CN): language of names and notes; else Accept-Language decides, "
            "English by default",
}
#: what ``lang`` accepts, for the OpenAPI document only: the route checks it and answers an Open311 error
_LANG_PATTERN = {"pattern": "^([Ee][Nn]|[Zz][Hh])([-_][A-Za-z0-9]{1,8})*$"}
_DATE_PATTERN = {"pattern": W3C_PATTERN}


class _Open311Route(APIRoute):
    """A route whose parameter errors are Open311 error lists (400) in the route's format, not FastAPI's 422."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        fmt: Format = "xml" if self.path.endswith(".xml") else "json"

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = [f"{'.'.join(str(part) for part in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
                            for e in exc.errors()]
                return error(fmt, 400, "; ".join(problems))

        return route_handler


def _handle(fmt: Format, work: Callable[[], Response]) -> Response:
    try:
        return work()
    except _BadRequest as exc:
        return error(fmt, exc.status_code, exc.description)


def _headers(lang: Lang) -> dict[str, str]:
    return {"Content-Language": "zh-CN" if lang == "zh" else "en", "Vary": "Accept-Language"}


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"], route_class=_Open311Route)
    max_page = max(1, settings.max_page_size)
    default_page = min(SPEC_PAGE_SIZE, max_page)
    for fmt in FORMATS:
        _add_routes(router, fmt, max_page, default_page, settings)
    return router


def _add_routes(router: APIRouter, fmt: Format, max_page: int, default_page: int, settings: ApiSettings) -> None:
    def discovery(request: Request, conn: Connection = Depends(get_conn)) -> Response:
        changed = conn.execute(
            select(func.max(entries.c.block_time)).where(entries.c.kind.in_(
                [EntryKind.AGENCY_REGISTERED, EntryKind.COMMITMENT_PUBLISHED, EntryKind.COMMITMENT_RETIRED]))
        ).scalar()
        changeset = format_time(changed or 0) or ""
        url = settings.extra.get("open311_url") or str(request.base_url).rstrip("/") + PREFIX
        body = {
            "changeset": changeset,
            "contact": settings.extra.get(
                "open311_contact",
                "Questions about a case go to the agency responsible for it; about this API, to its operator."),
            "key_service": "No key is needed: every endpoint here is public and read-only.",
            "endpoints": [{
                "specification": SPECIFICATION_URL, "url": url, "changeset": changeset, "type": "production",
                "formats": [MEDIA_TYPES["xml"], MEDIA_TYPES["json"]],
            }],
        }
        return render(fmt, "discovery", body)

    def services(
        request: Request,
        conn: Connection = Depends(get_conn),
        jurisdiction_id: str | None = Query(None, description=_DOC_PARAMS["jurisdiction_id"]),
        lang: str | None = Query(None, description=_DOC_PARAMS["lang"], json_schema_extra=_LANG_PATTERN),
    ) -> Response:
        def work() -> Response:
            language = _language(request)
            catalogue = _Catalogue.load(conn)
            members = catalogue.agencies_in(_jurisdiction(request, catalogue))
            current = [catalogue.current(key) for key in sorted(catalogue.versions) if key[0] in members]
            body = [_service(catalogue, v, language) for v in current if v is not None and not v.retired]
            return render(fmt, "services", body, headers=_headers(language))

        return _handle(fmt, work)

    def service_definition(
        request: Request,
        service_code: str = Path(description="<agency id>.<commitment id>, as the service list gives it",
                                 examples=["DEMO-ROADS.STREETLIGHT-48H"]),
        conn: Connection = Depends(get_conn),
        jurisdiction_id: str | None = Query(None, description=_DOC_PARAMS["jurisdiction_id"]),
        lang: str | None = Query(None, description=_DOC_PARAMS["lang"], json_schema_extra=_LANG_PATTERN),
    ) -> Response:
        def work() -> Response:
            language = _language(request)
            catalogue = _Catalogue.load(conn)
            members = catalogue.agencies_in(_jurisdiction(request, catalogue))
            key = parse_service_code(service_code)
            version = catalogue.current(key) if key is not None and key[0] in members else None
            if version is None:
                raise _BadRequest(404, f"no service {service_code!r}: service codes are <agency id>.<commitment id>, "
                                       "as services.json lists them")
            return render(fmt, "service_definition", _service_definition(version, language),
                          headers=_headers(language))

        return _handle(fmt, work)

    def list_requests(
        request: Request,
        conn: Connection = Depends(get_conn),
        service_request_id: str | None = Query(
            None, description="comma list of service_request_id (<agency id>:0x<case id>); overrides every other "
                              "filter"),
        service_code: str | None = Query(None, description="comma list of service codes"),
        start_date: str | None = Query(
            None, description="earliest requested_datetime (W3C date-time, inclusive; a date alone: from its start)",
            json_schema_extra=_DATE_PATTERN),
        end_date: str | None = Query(
            None, description="latest requested_datetime (inclusive; a date alone: to its end); at most 90 days "
                              "after start_date", json_schema_extra=_DATE_PATTERN),
        status: str | None = Query(None, description="open, closed, or both (comma list)"),
        jurisdiction_id: str | None = Query(None, description=_DOC_PARAMS["jurisdiction_id"]),
        lang: str | None = Query(None, description=_DOC_PARAMS["lang"], json_schema_extra=_LANG_PATTERN),
        page: int = Query(1, ge=1, le=10**9, description="page number, from 1 (extension)"),
        page_size: int = Query(default_page, ge=1, le=max_page,
                               description=f"requests per page (extension); at most {max_page}"),
    ) -> Response:
        def work() -> Response:
            language = _language(request)
            catalogue = _Catalogue.load(conn)
            jurisdiction = _jurisdiction(request, catalogue)
            now = int(time.time())
            query = _request_select()
            ids = _list_param(request, "service_request_id")
            if ids:
                parsed = []
                for text in dict.fromkeys(ids):
                    key = parse_service_request_id(text)
                    if key is None:
                        raise _BadRequest(400, f"{text!r} is not a service_request_id (<agency id>:0x<case id>)")
                    parsed.append(key)
                if len(parsed) > max_page:
                    raise _BadRequest(400, f"at most {max_page} service_request_id at once")
                known = [(a, case) for a, case in parsed if a in catalogue.agencies]
                if not known:
                    return render(fmt, "service_requests", [], headers=_headers(language))
                rows = {(r.agency_id, bytes(r.case_id)): r
                        for r in conn.execute(query.where(_by_agency(known, cases.c.case_id)))}
                body = [_request(catalogue, rows[key], language, now) for key in parsed if key in rows]
                return render(fmt, "service_requests", body, headers=_headers(language))

            start, end = _window(request, now)
            statuses: set[str] = set()
            for word in _list_param(request, "status"):
                if word.lower() not in ("open", "closed"):
                    raise _BadRequest(400, f"status must be open or closed (or both, comma separated), not {word!r}")
                statuses |= CASE_STATUSES[word.lower()]
            members = catalogue.agencies_in(jurisdiction)
            query = query.where(cases.c.opened_at >= start, cases.c.opened_at <= end)
            codes = _list_param(request, "service_code")
            if codes:
                keys = [key for key in map(parse_service_code, codes) if key in catalogue.versions]
                keys = [key for key in keys if key[0] in members]
                if not keys:
                    return render(fmt, "service_requests", [], headers=_headers(language))
                query = query.where(_by_agency(keys, cases.c.commitment_id))
            elif jurisdiction is not None:
                query = query.where(cases.c.agency_id.in_(sorted(members)))
            if statuses:
                query = query.where(cases.c.status.in_(sorted(statuses)))
            query = query.order_by(cases.c.opened_at.desc(), cases.c.agency_id, cases.c.case_id)
            query = query.limit(page_size).offset((page - 1) * page_size)
            body = [_request(catalogue, row, language, now) for row in conn.execute(query)]
            return render(fmt, "service_requests", body, headers=_headers(language))

        return _handle(fmt, work)

    def one_request(
        request: Request,
        service_request_id: str = Path(description="<agency id>:0x<case id, 64 hex digits>",
                                       examples=[f"DEMO-ROADS:0x{'5e' * 32}"]),
        conn: Connection = Depends(get_conn),
        jurisdiction_id: str | None = Query(None, description=_DOC_PARAMS["jurisdiction_id"]),
        lang: str | None = Query(None, description=_DOC_PARAMS["lang"], json_schema_extra=_LANG_PATTERN),
    ) -> Response:
        def work() -> Response:
            language = _language(request)
            catalogue = _Catalogue.load(conn)
            members = catalogue.agencies_in(_jurisdiction(request, catalogue))
            key = parse_service_request_id(service_request_id)
            row = None
            if key is not None and key[0] in members:
                row = conn.execute(
                    _request_select().where(cases.c.agency_id == key[0], cases.c.case_id == key[1])
                ).first()
            if row is None:
                raise _BadRequest(404, f"no service request {service_request_id!r}: ids are <agency id>:0x<case id>")
            return render(fmt, "service_requests", [_request(catalogue, row, language, int(time.time()))],
                          headers=_headers(language))

        return _handle(fmt, work)

    def create_request(request: Request) -> Response:
        return error(fmt, 403, "Service requests are not opened here: the agency serving a case opens it and records "
                               "it on the ledger, and gives the citizen a receipt to follow it. To report an issue, "
                               "contact the agency (for example the city's 12345 hotline). This API is read-only.")

    suffix = f".{fmt}"
    label = fmt.upper()
    router.add_api_route(
        f"/discovery{suffix}", discovery, methods=["GET"], operation_id=f"open311_discovery_{fmt}",
        summary=f"Service discovery ({label})", **_documented(fmt, Discovery, ()),
    )
    router.add_api_route(
        f"/services{suffix}", services, methods=["GET"], operation_id=f"open311_services_{fmt}",
        summary=f"Service list: commitments in force ({label})", **_documented(fmt, list[Service], (400, 404)),
    )
    router.add_api_route(
        f"/services/{{service_code}}{suffix}", service_definition, methods=["GET"],
        operation_id=f"open311_service_definition_{fmt}", summary=f"Service definition ({label})",
        **_documented(fmt, ServiceDefinition, (400, 404)),
    )
    router.add_api_route(
        f"/requests{suffix}", list_requests, methods=["GET"], operation_id=f"open311_requests_{fmt}",
        summary=f"Service requests: cases, filtered ({label})", **_documented(fmt, list[ServiceRequest], (400, 404)),
    )
    router.add_api_route(
        f"/requests/{{service_request_id}}{suffix}", one_request, methods=["GET"],
        operation_id=f"open311_request_{fmt}", summary=f"One service request: a case ({label})",
        **_documented(fmt, list[ServiceRequest], (400, 404)),
    )
    router.add_api_route(f"/requests{suffix}", create_request, methods=["POST"], include_in_schema=False)


def register(app: FastAPI, settings: ApiSettings) -> None:
    router = build_router(settings)
    app.include_router(router)
    # every route of the router is an APIRoute (add_api_route), which has a path_regex
    get_paths = [route.path_regex for route in router.routes
                 if isinstance(route, APIRoute) and "GET" in getattr(route, "methods", ())]

    async def not_found(request: Request, rest: str) -> Response:
        fmt: Format = "xml" if request.url.path.endswith(".xml") else "json"
        if any(regex.match(request.url.path) for regex in get_paths):
            return error(fmt, 405, f"{request.method} is not allowed here: this API is read-only (GET)",
                         headers={"Allow": "GET"})
        return error(fmt, 404, f"no Open311 resource at {request.url.path}; the endpoints are under {PREFIX}/, "
                               "e.g. services.json, requests.xml, discovery.json")

    app.add_api_route(
        "/open311/{rest:path}", not_found, include_in_schema=False,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    )
