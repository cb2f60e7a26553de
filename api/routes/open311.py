"""Open311 GeoReport v2: commitments as services, cases as service requests, in JSON and XML; and requests filed by
Open311 apps (``POST requests``), which become citizens' filings on the ledger.

Existing Open311 clients and dashboards read these unchanged: paths, parameters, field and element names are the
specification's (http://wiki.open311.org/GeoReport_v2 and …/Service_Discovery). Reads come from the index; a filing
goes through the filing desk (``api.filing_desk``), as the page's filings do.

Endpoints (each in ``.json`` and ``.xml``), under ``/open311/v2``:

====================================  =====================================================================
``discovery``                         Service Discovery: this endpoint, its formats, and when services changed
``services``                          the service list: every commitment not retired
``services/{service_code}``           a service definition (retired commitments too, so every request's code
                                      resolves): the ``district`` to give when filing, then the deadline,
                                      on-time target and terms
``requests``                          service requests, filtered by the standard parameters (below)
``requests/{service_request_id}``     one service request (a list of one, as the specification has it)
``POST requests``                     file a request (an app with an API key from the city; below)
``tokens/{token}``                    the ``service_request_id`` of a request filed, once it is recorded
====================================  =====================================================================

Mapping (reversible; see :func:`ledger.open311.service_code_of` and :func:`ledger.open311.service_request_id_of`,
which define it, its escaping and its words)
    * A **service** is a commitment: ``service_code`` is ``<agency id>.<commitment id>``
      (``DEMO-ROADS.STREETLIGHT-48H``); its current (latest) version gives the name, deadline and target; ``group``
      is the agency's name; ``keywords`` hold the commitment's on-chain service code (a category, e.g.
      ``STREETLIGHT``), the agency id and the commitment id. Codes are printable ASCII, so in each part ``%``, ``.``,
      ``,``, ``:`` and ``/`` are written ``%25``, ``%2E``, ``%2C``, ``%3A`` and ``%2F``: the one bare ``.``
      separates the parts, a list of codes can be split at commas, and a code fits in one path segment. The demo's
      codes contain none of these. ``metadata`` is true: the definition asks for the district
      (:data:`ledger.open311.DISTRICT_ATTRIBUTE`).
    * A **service request** is a case: ``service_request_id`` is ``<agency id>:0x<case id, 64 lowercase hex digits>``
      (agency id escaped as above). ``status`` is ``open`` (open or on hold) or ``closed`` (fulfilled, rejected,
      withdrawn); ``status_notes`` says which, in words (on time or late, on hold, escalated, overdue);
      ``requested_datetime`` is when the case opened, ``updated_datetime`` the latest claimed time among its
      opening, closing and last recorded event, ``expected_datetime`` its due time (hold time excluded; empty when it
      cannot be computed); ``agency_responsible`` is the agency's name and ``service_notice`` the deadline the case
      runs under (the commitment version in force when it opened).
    * A request **filed here** has from the start the id of the case its acceptance opens
      (``ledger.records.filed_case_id`` of the filing's seq). Until the agency answers, ``requests/{id}`` shows the
      filing: ``open``, "filed, awaiting the agency's answer, due …" (``ledger.filings.answer_due``; "overdue" past
      it), requested when it was filed, no ``expected_datetime``, and the answer window as ``service_notice``. A
      rejected filing is ``closed`` with the reason (a duplicate, with the request it duplicates; out of scope;
      spam). An accepted one is its case. The index finds a filing by ``filings.filed_case_id`` (one index lookup).
      Only ``requests/{id}`` and the ``service_request_id`` filter show filings; the other filters list cases.
    * **No personal data**: ``address`` is the district code, the finest location the ledger holds; ``lat``,
      ``long``, ``address_id``, ``zipcode`` and ``media_url`` are always empty, and ``description`` too (a case's
      free text is on chain only as a hash, a filing's content only in the service's private store).

Times are W3C date-times in the jurisdiction's local time with its offset (``+08:00``, see
:data:`ledger.workdays.LOCAL_UTC_OFFSET_SECONDS`); queries may use any offset or ``Z``.

Parameters of ``requests``: ``service_request_id`` (comma list; overrides every other filter, as the specification
says), ``service_code`` and ``status`` (``open``/``closed``; each a comma list or repeated), ``start_date`` and
``end_date`` (on ``requested_datetime``, inclusive; a date alone means the whole local day). Without dates the last
90 days are searched; a start (end) date alone gives the 90 days after (before) it; a range over 90 days is refused
(400). Results are newest first, 1000 a page (GeoReport v2's limit; ``page_size`` may ask for fewer, or more up to
``ApiSettings.max_page_size``), paged with the common ``page`` and ``page_size`` extension as far as the first
:data:`MAX_PAGED_RESULTS` results (a deeper page is a 400: narrow the dates instead). Every endpoint but
discovery takes ``jurisdiction_id`` (optional: an unknown one is a 404) and ``lang`` = ``en`` or ``zh`` for names
and notes (else the ``Accept-Language`` header decides; English by default). Unknown parameters, ``api_key``
included, are ignored by the reads; a malformed known one is a 400.

``POST requests`` (GeoReport v2 §POST Service Request)
    A form-encoded body (``application/x-www-form-urlencoded``, UTF-8, at most
    :data:`api.open311_format.MAX_FORM_BYTES`; multipart is refused 415: a photo goes by ``media_url``) with
    ``api_key`` (required: one of ``ApiSettings.open311_api_keys``, compared in constant time; in the query string
    if not in the body; else 403), ``jurisdiction_id`` (as the reads treat it), ``service_code``, a location —
    ``lat`` and ``long``, ``address_string`` or ``address_id`` (kept with the address in words) —, ``description``
    (required here), ``attribute[CODE]=value`` and ``attribute[CODE][]=value`` — ``attribute[district]`` required:
    the district code recorded on chain —, ``email``, ``phone``, ``first_name``, ``last_name``, ``device_id``,
    ``account_id`` and ``media_url``. All of it but the district is the filing's private content
    (``ledger.filings.FilingContent``), which the chain holds only as a salted hash and the agency alone is shown.
    The service makes the filing's receipt key (``FilingDesk.file_with_new_key``; channel ``APP``): the app's API
    key, not a proof of work, answers for what it files. Each app may file ``filing_rate_per_minute`` ×
    :data:`APP_RATE_FACTOR` requests a minute (it files for many citizens; 429 with ``Retry-After`` beyond it; a
    rate of 0 means no limit), besides the agency's daily bound the desk applies.
    Answer (200): a list of one request, as the standard's, with ``service_request_id`` once the filing is recorded
    (the POST waits up to ``write_wait_seconds``, 5 s by default), else ``token`` (follow ``tokens/{token}``);
    ``service_notice`` (the agency accepts or rejects within ``ledger.filings.ANSWER_WINDOW_WORKING_DAYS`` working
    day, then the commitment's deadline runs from the filing); ``account_id`` (empty: no accounts here); and the
    extension ``receipt_code``: the code of the filing's key, shown this once and kept nowhere. The app must show
    it to the citizen: it is what rates or disputes the case later (``/api/v1/receipts``). Refusals are Open311
    error lists: 400 (a field missing or malformed), 403 (API key), 404 (service or jurisdiction), 409 (the
    commitment is retired), 413, 415, 429 (``Retry-After``: the app's rate, or the agency's bounds), 503 (the chain
    or the relay cannot be reached). Nothing of the content is logged: logs carry the submission id, the app's name
    and refusal codes.

``tokens/{token}`` (GeoReport v2 §GET request_id from a token)
    ``[{"service_request_id": …, "token": …}]`` once the filing is recorded, ``[{"token": …}]`` while it is on its
    way; 410 when it was not recorded (the ledger refused it when it was sent: the error says why; file again), 404
    for an unknown token.

Errors are Open311 error lists (``[{"code": 404, "description": "…"}]``, ``<errors><error>…``) with the same HTTP
status, also for unknown paths under ``/open311``; a method a path does not take is a 405 with ``Allow``.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, RootModel
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from api.bodies import BodyRefused, read_body
from api.deps import get_conn
from api.errors import ERRORS
from api.filing_desk import REVERT_CODES, DeskDuplicate, DeskRefused, FilingDesk
from api.http import negotiate_language
from api.open311_format import (
    FORM_FIELDS,
    FORM_MEDIA_TYPE,
    FORMATS,
    MAX_FORM_BYTES,
    MEDIA_TYPES,
    W3C_PATTERN,
    Format,
    FormRefused,
    InvalidDateTime,
    district_code,
    error,
    filing_content,
    form_media_type_refusal,
    parse_request_form,
    parse_time,
    render,
)
from api.ratelimit import Budget
from api.routes.write import DEFAULT_WAIT_SECONDS, _Unavailable, settled
from api.settings import ApiSettings
from ledger.encoding import ZERO32, code_text
from ledger.filings import late, overdue
from ledger.metrics import is_case_overdue_at
from ledger.open311 import (
    CASE_STATUSES,
    DISTRICT_ATTRIBUTE,
    SERVICE_METADATA,
    SPECIFICATION_URL,
    Lang,
    deadline_text,
    definition_attributes,
    filing_notice,
    filing_status_notes,
    format_time,
    parse_service_code,
    parse_service_request_id,
    request_status,
    service_code_of,
    service_description,
    service_request_id_of,
    status_notes,
)
from ledger.records import Channel, EntryKind, Filing, FilingDecision, filed_case_id, short_code
from ledger.relay.store import RelayStatus
from ledger.store.db import Store
from ledger.store.schema import agencies, case_events, cases, commitments, entries, filings

log = logging.getLogger("api.open311")

PREFIX = "/open311/v2"
#: an Open311 app files for many citizens behind one API key: its rate is that of this many clients of the page
#: (``ApiSettings.filing_rate_per_minute`` each)
APP_RATE_FACTOR = 30
#: a token is the filing's submission id (``ledger.relay.store``): 0x and 64 hex digits
_TOKEN = re.compile(r"0x[0-9a-f]{64}")
#: GeoReport v2 §GET Service Requests: "Default query limit is a span of 90 days or first 1000 requests returned"
MAX_SPAN_SECONDS = 90 * 86_400
SPEC_PAGE_SIZE = 1000
#: the deepest result paging reaches (page × page_size): a deeper page would make the database count past every row
#: before it (OFFSET); a selection with more results is narrowed by its dates instead
MAX_PAGED_RESULTS = 10_000

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
        # The definition asks for the district a filing records (ledger.open311.DISTRICT_ATTRIBUTE).
        "metadata": SERVICE_METADATA,
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


def _filing_request(catalogue: _Catalogue, row: Any, lang: Lang, now: int) -> dict[str, Any]:
    """A request filed here that the agency has not accepted (awaiting its answer, or rejected), under the id of the
    case its acceptance would open (module docstring)."""
    current = catalogue.current((row.agency_id, row.commitment_id))
    agency = catalogue.agencies.get(row.agency_id)
    answered = row.decision is not None
    duplicate_of = None
    if row.decision == FilingDecision.DUPLICATE and row.duplicate_of is not None and bytes(row.duplicate_of) != ZERO32:
        duplicate_of = service_request_id_of(row.agency_id, bytes(row.duplicate_of))
    notes = filing_status_notes(
        row.decision, due=row.answer_due, overdue=overdue(row.answer_due, now, answered=answered),
        late=answered and late(row.answer_due, row.answered_at), duplicate_of=duplicate_of, lang=lang,
    )
    deadline = deadline_text(current.deadline, current.deadline_unit, lang) if current else None
    return {
        "service_request_id": service_request_id_of(row.agency_id, bytes(row.filed_case_id)),
        "status": "closed" if answered else "open",
        "status_notes": notes,
        "service_name": current.name(lang) if current else None,
        "service_code": service_code_of(row.agency_id, row.commitment_id),
        "description": None,
        "agency_responsible": agency.name(lang) if agency else row.agency_id,
        "service_notice": filing_notice(deadline, lang),
        "requested_datetime": format_time(row.block_time),
        "updated_datetime": format_time(row.answered_at if answered else row.block_time),
        # no case yet, so no due time: the answer's is in status_notes
        "expected_datetime": None,
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


def _filing_select() -> Any:
    """Filings not accepted (an accepted one is its case), by the id of the case an acceptance would open."""
    f = filings.c
    return select(
        f.agency_id, f.filed_case_id, f.commitment_id, f.district, f.block_time, f.answer_due, f.decision,
        f.duplicate_of, f.answered_at,
    ).where(or_(f.decision.is_(None), f.decision != int(FilingDecision.ACCEPTED)))


def _filings_by_id(conn: Connection, keys: Sequence[tuple[str, bytes]]) -> dict[tuple[str, bytes], Any]:
    """The filings (:func:`_filing_select`) among (agency, case id) pairs no case answered: one indexed lookup."""
    if not keys:
        return {}
    rows = conn.execute(_filing_select().where(filings.c.filed_case_id.in_(sorted({case for _, case in keys}))))
    wanted = set(keys)
    found = {(r.agency_id, bytes(r.filed_case_id)): r for r in rows}
    return {key: row for key, row in found.items() if key in wanted}


def _by_agency(pairs: Iterable[tuple[str, Any]], column: Any) -> Any:
    """``(agency_id = a AND column IN (…)) OR …``: one term per agency, so a long list stays a shallow expression
    (SQLite limits expression depth; a tuple IN is not portable)."""
    grouped: dict[str, list[Any]] = {}
    for agency_id, value in pairs:
        grouped.setdefault(agency_id, []).append(value)
    return or_(*(and_(cases.c.agency_id == a, column.in_(values)) for a, values in grouped.items()))


# --- parameters -------------------------------------------------------------------------------------------------------


class _BadRequest(Exception):
    """A request refused: the Open311 error list's HTTP status and description (and headers: ``Retry-After``)."""

    def __init__(self, status_code: int, description: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.status_code, self.description, self.headers = status_code, description, headers


def _list_param(request: Request, name: str) -> list[str]:
    """A parameter given as a comma list, repeated, or both; empty items dropped."""
    return [item.strip() for value in request.query_params.getlist(name) for item in value.split(",") if item.strip()]


def _language(request: Request) -> Lang:
    """The answer's language by the API's one rule (``api.http.negotiate_language``); a bad ``lang`` is a 400."""
    try:
        return negotiate_language(request.query_params.get("lang"), request.headers.get("accept-language"))
    except ValueError as exc:
        raise _BadRequest(400, str(exc)) from None


def _jurisdiction(request: Request, catalogue: _Catalogue, given: str | None = None) -> str | None:
    """The ``jurisdiction_id`` asked (`given`, else the query's), None for all; an unknown one is a 404."""
    jurisdiction = given if given is not None else request.query_params.get("jurisdiction_id")
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


class CreatedServiceRequest(BaseModel):
    service_request_id: str | None = Field(
        None, description="<agency id>:0x<case id> once the filing is recorded (the case its acceptance opens); "
                          "else token")
    token: str | None = Field(None, description="the filing's submission while it is on its way: follow "
                                                "tokens/{token}")
    service_notice: str = Field(description="when the agency answers, and the deadline once it accepts")
    account_id: None = Field(None, description="always empty: no accounts are kept here")
    receipt_code: str = Field(description="extension: the code of the filing's receipt key, shown this once and "
                                          "kept nowhere; the app shows it to the citizen, who rates or disputes "
                                          "the case with it")


class ServiceRequestToken(BaseModel):
    service_request_id: str | None = Field(None, description="absent while the filing is on its way")
    token: str


_ERROR_DESCRIPTIONS = {
    400: "a parameter is not valid",
    403: "no API key, or not one of this city's",
    404: "not found",
    409: "the commitment is retired, or the ledger's state refuses the filing",
    410: "the filing was not recorded: the ledger refused it when it was sent",
    413: "the body is too large",
    415: "the body is not form-encoded UTF-8",
    429: "the app's rate or the agency's bounds (see Retry-After)",
    503: "the chain or the relay cannot be reached",
}

_FIELD_DOCS = {
    "api_key": "the app's key, given by the city (required; may come in the query string instead)",
    "jurisdiction_id": "optional; as the reads take it",
    "service_code": "<agency id>.<commitment id>, as services.json lists it (required)",
    "lat": "decimal degrees (WGS84), with long; or give address_string or address_id",
    "long": "decimal degrees (WGS84), with lat",
    "address_string": "where, in words",
    "address_id": "the city's id of the address (kept with the address in words)",
    "description": "what is wrong, up to 4000 characters (required here)",
    "media_url": "a link to a photo",
}

#: the POST's form body, for the OpenAPI document only: the route reads the body itself (api.open311_format)
_FORM_BODY = {"requestBody": {"required": True, "content": {FORM_MEDIA_TYPE: {"schema": {
    "type": "object",
    "required": ["api_key", "service_code", "description", f"attribute[{DISTRICT_ATTRIBUTE}]"],
    "properties": {
        **{name: {"type": "string", "description": _FIELD_DOCS.get(name, "contact detail, shown to the agency only")}
           for name in FORM_FIELDS},
        f"attribute[{DISTRICT_ATTRIBUTE}]": {
            "type": "string", "description": "the district code where the issue is, recorded on the ledger (see "
                                             "the service definition)"},
    },
    "additionalProperties": {"type": "string", "description": "attribute[CODE] or attribute[CODE][]: answers to "
                                                              "the service's questions"},
}}}}}


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
        status: described(_ERROR_DESCRIPTIONS[status]) for status in errors
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
        return error(fmt, exc.status_code, exc.description, headers=exc.headers)


def _headers(lang: Lang) -> dict[str, str]:
    return {"Content-Language": "zh-CN" if lang == "zh" else "en", "Vary": "Accept-Language"}


# --- filing: POST requests and tokens ---------------------------------------------------------------------------------


def _load_catalogue(store: Store) -> _Catalogue:
    with store.engine.connect() as conn:
        return _Catalogue.load(conn)


def _code_bytes(text: str) -> bytes:
    """The bytes32 of a code as the index writes it (``ledger.encoding.code_text``: its characters, or 0x and hex)."""
    if len(text) == 66 and text.startswith("0x"):
        return bytes.fromhex(text[2:])
    return short_code(text)


def _open311_status(code: str | None) -> int:
    """The HTTP status of a refusal coded as in ``api.errors.ERRORS``; what that API answers 422 (a well-formed body
    that fails its shape) is a 400 in Open311, which has no 422."""
    status = ERRORS.get(code or "", 503)
    return 400 if status == 422 else status


async def _body(request: Request) -> bytes:
    """The body, read as it arrives (``api.bodies.read_body``): refused (413) as soon as it is longer than
    :data:`api.open311_format.MAX_FORM_BYTES`, or (408) when it does not all arrive in time."""
    try:
        return await read_body(request, MAX_FORM_BYTES)
    except BodyRefused as refused:
        raise _BadRequest(refused.status_code, refused.message) from None


def _not_recorded(status: RelayStatus) -> str:
    """Why a filing the desk took was not recorded (its relay failed), in words."""
    name = status.error_name or "NotRelayed"
    reason = REVERT_CODES[name][1] if name in REVERT_CODES else (status.error or "the relay could not send it")
    return f"the request was not filed: the ledger refused it when it was sent ({name}: {reason}); file it again"


class _Intake:
    """``POST requests`` and ``tokens/{token}``: the apps' API keys, each app's rate, and how long a POST waits for
    the chain (``write_wait_seconds``). The checks of the filing itself are the filing desk's (``api.filing_desk``,
    ``app.state.filing_desk``, which ``api.routes.filing_writes`` makes); the rate is per app name, per process, as
    ``api.ratelimit``'s buckets are."""

    def __init__(self, settings: ApiSettings) -> None:
        self._keys = [(name, key.encode("utf-8")) for name, key in sorted(settings.open311_api_keys.items())]
        #: filings per minute per app (0: no limit, as ``filing_rate_per_minute`` 0 means)
        self.rate = max(0, settings.filing_rate_per_minute) * APP_RATE_FACTOR
        self.budget = Budget("open311_app", self.rate, "requests filed by one app")
        self.wait_seconds = float(settings.extra.get("write_wait_seconds", DEFAULT_WAIT_SECONDS))

    def app_of(self, api_key: str | None) -> str | None:
        """The name of the app whose key `api_key` is, or None. Every key is compared, each with
        ``hmac.compare_digest``, so how long the answer takes does not tell how much of a key was guessed."""
        if not api_key:
            return None
        given = api_key.encode("utf-8")
        found = None
        for name, key in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = name
        return found

    async def create(self, request: Request, fmt: Format) -> Response:
        """``POST requests``: the checks in the module docstring's order, the filing, and the standard's answer."""
        problem = form_media_type_refusal(request.headers.get("content-type"))
        if problem is not None:
            raise _BadRequest(415, problem)
        try:
            form = parse_request_form(await _body(request))
        except FormRefused as exc:
            raise _BadRequest(exc.status_code, exc.description) from None
        app_name = self.app_of(form.get("api_key") or request.query_params.get("api_key"))
        if app_name is None:
            log.info("open311 request refused: no valid api_key")
            raise _BadRequest(403, "an API key from the city is needed to file a request (api_key): the operator of "
                                   "this service gives one to each app")
        wait = self.budget.wait(app_name)
        if wait > 0:
            spent = self.budget.refusal(wait)
            log.info("open311 request refused for app %s: rate_limited", app_name)
            raise _BadRequest(429, spent.message, headers=spent.headers)
        language = _language(request)
        catalogue = await run_in_threadpool(_load_catalogue, request.app.state.store)
        version = self._service(request, form.get("service_code"), form.get("jurisdiction_id"), catalogue)
        try:
            content = filing_content(form)
            district = district_code(form)
        except FormRefused as exc:
            log.info("open311 request refused for app %s: invalid form", app_name)
            raise _BadRequest(exc.status_code, exc.description) from None
        desk: FilingDesk = request.app.state.filing_desk
        try:
            taken = await run_in_threadpool(
                desk.file_with_new_key, _code_bytes(version.agency_id), _code_bytes(version.commitment_id), district,
                Channel.APP, content, [],
            )
        except DeskRefused as exc:
            log.info("open311 request refused for app %s: %s", app_name, exc.code)
            retry_after = exc.extra.get("retry_after")
            raise _BadRequest(_open311_status(exc.code), exc.message,
                              headers=None if retry_after is None else {"Retry-After": str(retry_after)}) from None
        except DeskDuplicate as exc:  # a new key each time: only a replay of the same signed filing could be one
            log.info("open311 request refused for app %s: duplicate", app_name)
            raise _BadRequest(409, f"this request was filed before; its token is {exc.status.key}") from None
        except _Unavailable as exc:
            log.info("open311 request refused for app %s: %s", app_name, exc.code)
            raise _BadRequest(503, exc.message) from None
        current = await settled(desk.service, taken.status.key, self.wait_seconds) or taken.status
        if current.state == "failed":
            log.info("open311 request by app %s not recorded: %s", app_name, current.error_name)
            code = REVERT_CODES.get(current.error_name or "", (None, ""))[0]
            raise _BadRequest(_open311_status(code), _not_recorded(current))
        item: dict[str, Any] = {}
        if current.state == "recorded" and current.seqs:
            item["service_request_id"] = service_request_id_of(version.agency_id, filed_case_id(current.seqs[0]))
        else:
            item["token"] = current.key
        item["service_notice"] = filing_notice(deadline_text(version.deadline, version.deadline_unit, language),
                                               language)
        item["account_id"] = None
        item["receipt_code"] = taken.receipt_code
        log.info("open311 request filed by app %s: %s", app_name, current.state)  # never its token
        # the receipt code is shown once: no cache may keep it
        return render(fmt, "service_requests", [item], headers={**_headers(language), "Cache-Control": "no-store"})

    @staticmethod
    def _service(request: Request, service_code: str | None, jurisdiction_id: str | None,
                 catalogue: _Catalogue) -> _Version:
        """The commitment a request is filed under (its version in force), in the jurisdiction asked."""
        if not service_code:
            raise _BadRequest(400, "service_code is required: <agency id>.<commitment id>, as services.json lists it")
        members = catalogue.agencies_in(_jurisdiction(request, catalogue, jurisdiction_id))
        key = parse_service_code(service_code)
        version = catalogue.current(key) if key is not None and key[0] in members else None
        if version is None:
            raise _BadRequest(404, f"no service {service_code!r}: service codes are <agency id>.<commitment id>, "
                                   "as services.json lists them")
        if version.retired:
            raise _BadRequest(409, f"the service {service_code!r} is retired: file under one in force "
                                   "(services.json)")
        return version

    async def token(self, request: Request, token: str) -> tuple[str, str | None]:
        """``tokens/{token}``: (token, ``service_request_id`` once recorded, else None); 404 for an unknown token,
        410 for a filing that was not recorded."""
        text = token.strip().lower()
        if _TOKEN.fullmatch(text) is None:
            raise _BadRequest(404, f"no token {token!r}: a token is 0x and 64 hex digits, as POST requests gave it")
        desk: FilingDesk = request.app.state.filing_desk

        def read() -> tuple[RelayStatus, str] | None:
            store = desk.service.store
            envelope, status = store.envelope(text), store.status(text)
            if envelope is None or status is None or envelope.primary_type != Filing.TYPE_NAME:
                return None
            [record] = envelope.records()
            assert isinstance(record, Filing)
            return status, code_text(record.agency_id)

        try:
            found = await run_in_threadpool(read)
        except _Unavailable as exc:
            raise _BadRequest(503, exc.message) from None
        if found is None:
            raise _BadRequest(404, f"no token {token!r} here")
        status, agency = found
        jurisdiction = request.query_params.get("jurisdiction_id")
        if jurisdiction:
            catalogue = await run_in_threadpool(_load_catalogue, request.app.state.store)
            if agency not in catalogue.agencies_in(_jurisdiction(request, catalogue)):
                raise _BadRequest(404, f"no token {token!r} in jurisdiction {jurisdiction!r}")
        if status.state == "failed":
            raise _BadRequest(410, _not_recorded(status))
        if status.state == "recorded" and status.seqs:
            return text, service_request_id_of(agency, filed_case_id(status.seqs[0]))
        return text, None


def build_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"], route_class=_Open311Route)
    max_page = max(1, settings.max_page_size)
    default_page = min(SPEC_PAGE_SIZE, max_page)
    intake = _Intake(settings)
    for fmt in FORMATS:
        _add_routes(router, fmt, max_page, default_page, settings, intake)
    return router


def _add_routes(router: APIRouter, fmt: Format, max_page: int, default_page: int, settings: ApiSettings,
                intake: _Intake) -> None:
    def discovery(request: Request, conn: Connection = Depends(get_conn, scope="function")) -> Response:
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
            "key_service": settings.extra.get(
                "open311_key_service",
                "Reading needs no key. Filing a request (POST requests) needs an API key, which the operator of this "
                "service gives to each app."),
            "endpoints": [{
                "specification": SPECIFICATION_URL, "url": url, "changeset": changeset, "type": "production",
                "formats": [MEDIA_TYPES["xml"], MEDIA_TYPES["json"]],
            }],
        }
        return render(fmt, "discovery", body)

    def services(
        request: Request,
        conn: Connection = Depends(get_conn, scope="function"),
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
        conn: Connection = Depends(get_conn, scope="function"),
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
        conn: Connection = Depends(get_conn, scope="function"),
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
        page: int = Query(1, ge=1, le=10**9, description="page number, from 1 (extension); page × page_size at "
                                                            f"most {MAX_PAGED_RESULTS}: narrow the dates for more"),
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
                filed = _filings_by_id(conn, [key for key in known if key not in rows])
                body = [_request(catalogue, rows[key], language, now) if key in rows else
                        _filing_request(catalogue, filed[key], language, now)
                        for key in parsed if key in rows or key in filed]
                return render(fmt, "service_requests", body, headers=_headers(language))

            if page > 1 and page * page_size > MAX_PAGED_RESULTS:
                raise _BadRequest(400, f"page {page} of {page_size} goes deeper than the first {MAX_PAGED_RESULTS} "
                                       "results, which is as far as paging reaches; narrow the search with start_date "
                                       "and end_date (e.g. a shorter period) and page through that")
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
        conn: Connection = Depends(get_conn, scope="function"),
        jurisdiction_id: str | None = Query(None, description=_DOC_PARAMS["jurisdiction_id"]),
        lang: str | None = Query(None, description=_DOC_PARAMS["lang"], json_schema_extra=_LANG_PATTERN),
    ) -> Response:
        def work() -> Response:
            language = _language(request)
            catalogue = _Catalogue.load(conn)
            members = catalogue.agencies_in(_jurisdiction(request, catalogue))
            key = parse_service_request_id(service_request_id)
            now = int(time.time())
            if key is not None and key[0] in members:
                row = conn.execute(
                    _request_select().where(cases.c.agency_id == key[0], cases.c.case_id == key[1])
                ).first()
                if row is not None:
                    return render(fmt, "service_requests", [_request(catalogue, row, language, now)],
                                  headers=_headers(language))
                filed = _filings_by_id(conn, [key]).get(key)
                if filed is not None:  # filed here, not accepted (yet)
                    return render(fmt, "service_requests", [_filing_request(catalogue, filed, language, now)],
                                  headers=_headers(language))
            raise _BadRequest(404, f"no service request {service_request_id!r}: ids are <agency id>:0x<case id>")

        return _handle(fmt, work)

    async def create_request(request: Request) -> Response:
        """A citizen's filing, by an app with an API key from the city (GeoReport v2 §POST Service Request; the
        module's docstring says what it takes and answers)."""
        try:
            return await intake.create(request, fmt)
        except _BadRequest as exc:
            return error(fmt, exc.status_code, exc.description, headers=exc.headers)

    async def request_token(
        request: Request,
        token: str = Path(description="the token POST requests answered with (0x and 64 hex digits)",
                          examples=["0x" + "5e" * 32]),
        jurisdiction_id: str | None = Query(None, description=_DOC_PARAMS["jurisdiction_id"]),
    ) -> Response:
        """GeoReport v2 §GET request_id from a token: the ``service_request_id`` once the filing is recorded."""
        try:
            text, service_request_id = await intake.token(request, token)
        except _BadRequest as exc:
            return error(fmt, exc.status_code, exc.description, headers=exc.headers)
        item = {"token": text} if service_request_id is None else {"service_request_id": service_request_id,
                                                                     "token": text}
        return render(fmt, "service_requests", [item], headers={"Cache-Control": "no-cache"})

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
    router.add_api_route(
        f"/requests{suffix}", create_request, methods=["POST"], operation_id=f"open311_create_request_{fmt}",
        summary=f"File a service request: a citizen's filing, by an app with an API key ({label})",
        openapi_extra=_FORM_BODY,
        **_documented(fmt, list[CreatedServiceRequest], (400, 403, 404, 409, 413, 415, 429, 503)),
    )
    router.add_api_route(
        f"/tokens/{{token}}{suffix}", request_token, methods=["GET"], operation_id=f"open311_token_{fmt}",
        summary=f"The service_request_id of a filed request, from its token ({label})",
        **_documented(fmt, list[ServiceRequestToken], (404, 410, 503)),
    )


def register(app: FastAPI, settings: ApiSettings) -> None:
    router = build_router(settings)
    app.include_router(router)
    # every route of the router is an APIRoute (add_api_route), which has a path_regex
    methods_of = [(route.path_regex, set(route.methods or ())) for route in router.routes
                  if isinstance(route, APIRoute)]

    async def not_found(request: Request, rest: str) -> Response:
        fmt: Format = "xml" if request.url.path.endswith(".xml") else "json"
        allowed = sorted({m for regex, methods in methods_of if regex.match(request.url.path) for m in methods})
        if allowed:
            return error(fmt, 405, f"{request.method} is not allowed here; allowed: {', '.join(allowed)}",
                         headers={"Allow": ", ".join(allowed)})
        return error(fmt, 404, f"no Open311 resource at {request.url.path}; the endpoints are under {PREFIX}/, "
                               "e.g. services.json, requests.xml, discovery.json")

    app.add_api_route(
        "/open311/{rest:path}", not_found, include_in_schema=False,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    )
