"""Open311 GeoReport v2 wire formats: JSON and XML bodies, error lists, and the W3C date-time profile.

Element and field names are the specification's (http://wiki.open311.org/GeoReport_v2), so existing Open311
clients read these documents unchanged. Everything here is pure: no database, no FastAPI routing.

``POST requests`` takes a form-encoded body (GeoReport v2 §POST Service Request): :func:`parse_request_form` reads it
(``urllib.parse``, UTF-8) into a :class:`RequestForm`, and :func:`filing_content` makes the filing's private content
(``ledger.filings.FilingContent``) of it; each refusal is a :class:`FormRefused` with the Open311 error's status.

XML documents carry the declaration with ``encoding="UTF-8"`` (GeoReport v2 §Encoding); a missing value is an empty
element (the specification's own examples do the same), a JSON ``null``. Times are written in the jurisdiction's
local time with its offset (``2026-11-20T14:03:00+08:00``) by :func:`ledger.open311.format_time`; queries' times are
read here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from fastapi import Response
from pydantic import ValidationError

from ledger.errors import InvalidRecord
from ledger.filings import CONTACT_FIELDS, MAX_DESCRIPTION, FilingContent
from ledger.open311 import DISTRICT_ATTRIBUTE, LOCAL_ZONE, xml_text
from ledger.records import short_code

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")

JSON_MEDIA_TYPE = "application/json"
XML_MEDIA_TYPE = "application/xml"
MEDIA_TYPES: dict[Format, str] = {"json": JSON_MEDIA_TYPE, "xml": XML_MEDIA_TYPE}

#: the fields of a service request, in the specification's order (GeoReport v2 §GET Service Requests)
REQUEST_FIELDS = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)
#: the fields of a service (GeoReport v2 §GET Service List)
SERVICE_FIELDS = ("service_code", "service_name", "description", "metadata", "type", "keywords", "group")

#: XML element name of each item of a list, by the list's element name (GeoReport v2 and Service Discovery)
_ITEM_ELEMENTS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _append(parent: ElementTree.Element, name: str, value: Any) -> None:
    element = ElementTree.SubElement(parent, name)
    _fill(element, name, value)


def _fill(element: ElementTree.Element, name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _append(element, key, item)
    elif isinstance(value, (list, tuple)):
        item_name = _ITEM_ELEMENTS[name]
        for item in value:
            _append(element, item_name, item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = xml_text(str(value))


def to_xml(root: str, value: Mapping[str, Any] | Sequence[Any]) -> bytes:
    """A document whose root element is `root`: a mapping gives one child per key, a list one child per item (named
    after the list, e.g. ``<services><service>…``)."""
    element = ElementTree.Element(root)
    _fill(element, root, value)
    return _XML_DECLARATION + ElementTree.tostring(element, encoding="unicode").encode("utf-8")


def to_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def render(
    fmt: Format, root: str, value: Mapping[str, Any] | Sequence[Any], *, status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """`value` as a response in `fmt`; `root` names the XML root element (JSON has none)."""
    body = to_json(value) if fmt == "json" else to_xml(root, value)
    return Response(
        content=body, status_code=status_code, media_type=f"{MEDIA_TYPES[fmt]}; charset=utf-8", headers=headers
    )


def error(fmt: Format, status_code: int, description: str, *, headers: Mapping[str, str] | None = None) -> Response:
    """An Open311 error list: ``[{"code": 404, "description": "…"}]`` or ``<errors><error><code>…``."""
    return render(fmt, "errors", [{"code": status_code, "description": description}], status_code=status_code,
                  headers=headers)


# --- W3C date-time (https://www.w3.org/TR/NOTE-datetime), GeoReport v2 §Date/time format ------------------------------

#: the W3C profile's shape as a JSON Schema pattern (ECMA syntax: no named groups), for the OpenAPI document
W3C_PATTERN = (
    r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2}))?)?)?$"
)
_W3C = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2}))?)?)?",
    re.ASCII,
)


class InvalidDateTime(ValueError):
    """A query's date-time is not in the W3C profile of ISO 8601."""


def parse_time(text: str, *, end: bool = False) -> int:
    """A W3C date-time as unix seconds. A value with a time must have a zone (``Z`` or ``±hh:mm``). A year, month or
    day without a time means that period of the jurisdiction's local calendar: its first second, or with
    ``end=True`` its last, so ``end_date=2026-11-20`` includes the whole day. Fractions of a second round inwards
    (the ledger counts whole seconds)."""
    match = _W3C.fullmatch(text.strip())
    if match is None:
        raise InvalidDateTime(
            f"{text!r} is not a W3C date-time: use e.g. 2026-11-20T14:03:00+08:00, 2026-11-20T06:03:00Z or 2026-11-20"
        )
    parts = match.groupdict()
    try:
        year, month, day = int(parts["year"]), int(parts["month"] or 1), int(parts["day"] or 1)
        if parts["hour"] is None:
            first = datetime.combine(date(year, month, day), datetime.min.time(), LOCAL_ZONE)
            if not end:
                return int(first.timestamp())
            if parts["day"] is not None:
                following = first + timedelta(days=1)
            elif parts["month"] is not None:
                following = first.replace(year=year + month // 12, month=month % 12 + 1)
            else:
                following = first.replace(year=year + 1)
            return int(following.timestamp()) - 1
        zone = parts["zone"]
        offset = timedelta(0) if zone == "Z" else timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        if offset >= timedelta(hours=24):
            raise ValueError("offset out of range")
        moment = datetime(
            year, month, day, int(parts["hour"]), int(parts["minute"]), int(parts["second"] or 0),
            tzinfo=timezone(-offset if zone.startswith("-") else offset),
        )
    except (ValueError, OverflowError) as exc:
        raise InvalidDateTime(f"{text!r} is not a valid date-time ({exc})") from exc
    seconds = moment.timestamp()
    fraction = float("0." + parts["fraction"]) if parts["fraction"] else 0.0
    return math.floor(seconds + fraction) if end else math.ceil(seconds + fraction)


# --- POST Service Request: the form (GeoReport v2 §POST Service Request) ----------------------------------------------

#: the body's media type (GeoReport v2 §POST Service Request: the arguments are form fields)
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
#: the largest body taken: every field the filing keeps at its longest, percent-encoded (a 4000-character description
#: of 3-byte characters is 36 KB; 20 attributes of 10 answers of 300 characters, 162 KB at most)
MAX_FORM_BYTES = 256 * 1024
#: the most fields a body may have (the attributes' answers and the standard's fields, with room to spare)
MAX_FORM_FIELDS = 400
#: the standard's fields this service reads; any other is ignored, as the read endpoints ignore unknown parameters
FORM_FIELDS = ("api_key", "jurisdiction_id", "service_code", "lat", "long", "address_string", "address_id",
               "description", "media_url", *CONTACT_FIELDS)
#: ``attribute[CODE]=value`` (a single value) and ``attribute[CODE][]=value`` (each of a list's values)
_ATTRIBUTE = re.compile(r"attribute\[([^\[\]]*)\](\[\])?")


class FormRefused(ValueError):
    """A ``POST requests`` body refused: the Open311 error's HTTP status and description."""

    def __init__(self, status_code: int, description: str) -> None:
        super().__init__(description)
        self.status_code, self.description = status_code, description


@dataclass(frozen=True)
class RequestForm:
    """A ``POST requests`` body: the standard's fields given (not empty, surrounding spaces removed) and the answers
    to the service's questions, code -> values in the order given."""

    fields: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    def __repr__(self) -> str:  # never the text (reprs end up in logs and tracebacks)
        return f"RequestForm(<{len(self.fields)} fields, {len(self.attributes)} attributes>)"

    __str__ = __repr__


def form_media_type_refusal(content_type: str | None) -> str | None:
    """Why a ``POST requests`` body of this ``Content-Type`` is not taken (answered 415), or None when it is."""
    media_type, _, parameters = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type == FORM_MEDIA_TYPE:
        charset = next((value.strip().strip('"').lower() for name, _, value in
                        (p.strip().partition("=") for p in parameters.split(";")) if name.strip().lower() == "charset"),
                       "utf-8")
        if charset in ("utf-8", "utf8"):
            return None
        return f"the body's charset is {charset[:40]!r}: GeoReport v2 requires UTF-8"
    if media_type == "multipart/form-data":
        return ("multipart/form-data is not taken here: send the fields form-encoded (Content-Type: "
                f"{FORM_MEDIA_TYPE}), as GeoReport v2 §POST Service Request does; a photo goes by its media_url")
    shown = media_type[:60] or "none"
    return f"the body is form-encoded (Content-Type: {FORM_MEDIA_TYPE}, UTF-8), as GeoReport v2 says; not {shown}"


def parse_request_form(body: bytes) -> RequestForm:
    """The fields of a form-encoded body (:data:`FORM_FIELDS`, and ``attribute[CODE]`` / ``attribute[CODE][]``);
    a field of the standard given twice, a body that is not UTF-8 or has too many fields is refused (400). An empty
    field counts as not given."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise FormRefused(400, "the body is not UTF-8 text (GeoReport v2: UTF-8 everywhere)") from None
    except ValueError:  # parse_qsl's "Max number of fields exceeded"
        raise FormRefused(400, f"the body has more than {MAX_FORM_FIELDS} fields") from None
    fields: dict[str, str] = {}
    given: set[str] = set()
    attributes: dict[str, list[str]] = {}
    for name, value in pairs:
        attribute = _ATTRIBUTE.fullmatch(name)
        if attribute is not None:
            if value.strip():
                attributes.setdefault(attribute.group(1), []).append(value.strip())
            continue
        if name not in FORM_FIELDS:
            continue
        if name in given:
            raise FormRefused(400, f"{name} is given twice: give it once")
        given.add(name)
        if value.strip():
            fields[name] = value.strip()
    return RequestForm(fields, attributes)


#: the content's fields by the names the form gives them
_FORM_NAMES = {"address": "address_string"}
#: the content's own messages (``FilingContent._checked``) name its fields; these give the form's names instead
_RENAMES = (
    (re.compile(r"^attributes\.([^:]*):"), r"attribute[\1]:"),
    (re.compile(r"^attributes:"), "attribute:"),
    (re.compile(r"^contact\.([^:]*):"), r"\1:"),
    (re.compile(r"^address:"), "address_string:"),
)


def _problem(error: Mapping[str, Any]) -> str:
    """One of the content's validation errors in the form's words (never the value given: it may be private)."""
    loc = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:
        for pattern, replacement in _RENAMES:
            message = pattern.sub(replacement, message)
        return message
    if loc[0] == "attributes" and len(loc) > 2 and loc[2] == "[key]":
        return f"attribute[{loc[1]}]: an attribute's code is 1 to 64 letters, digits, '_', '.', ':' or '-'"
    if loc[0] == "attributes" and len(loc) > 1:
        where = f"attribute[{loc[1]}]"
    elif loc[0] == "contact" and len(loc) > 1:
        where = loc[1]
    else:
        where = _FORM_NAMES.get(loc[0], loc[0])
    return f"{where}: {message}"


def filing_content(form: RequestForm) -> FilingContent:
    """The filing's private content of a form: ``description``, where (``lat``/``long``, ``address_string``, and an
    ``address_id`` kept with the address in words, ``address_id: …``), the attributes, ``media_url`` and the contact
    details. The standard requires a location (a point, an address or an address id); this service requires a
    description too (the agency answers what it can read)."""
    lat, long = form.get("lat"), form.get("long")
    if bool(lat) != bool(long):
        raise FormRefused(400, "lat and long: a point has both (decimal degrees, e.g. lat=31.2304&long=121.4737)")
    address = form.get("address_string") or ""
    address_id = form.get("address_id")
    if address_id:
        address = f"{address} (address_id: {address_id})" if address else f"address_id: {address_id}"
    if not lat and not address:
        raise FormRefused(400, "a location is required: lat and long, address_string or address_id (GeoReport v2 "
                               "§POST Service Request)")
    description = form.get("description")
    if not description:
        raise FormRefused(400, f"description is required here: say what is wrong, in up to {MAX_DESCRIPTION} "
                               "characters (the agency answers what it can read)")
    try:
        return FilingContent(
            description=description, address=address, lat=lat or "", long=long or "",
            attributes={code: list(values) for code, values in form.attributes.items()},
            media_url=form.get("media_url") or "",
            contact={name: form.fields[name] for name in CONTACT_FIELDS if name in form.fields},
        )
    except ValidationError as exc:
        raise FormRefused(400, "; ".join(_problem(e) for e in exc.errors())) from None


def district_code(form: RequestForm) -> bytes:
    """The district code the filing records on chain: ``attribute[district]``, exactly one, a code (1 to 32
    printable ASCII characters, no spaces), as the service definition asks."""
    values = form.attributes.get(DISTRICT_ATTRIBUTE, [])
    where = f"attribute[{DISTRICT_ATTRIBUTE}]"
    if not values:
        raise FormRefused(400, f"{where} is required: the district code where the issue is, recorded on the ledger "
                               "(see the service definition, services/{service_code}.json)")
    if len(values) > 1:
        raise FormRefused(400, f"{where}: one district, not {len(values)}")
    try:
        return short_code(values[0])
    except InvalidRecord:
        raise FormRefused(400, f"{where}: a district code is 1 to 32 printable ASCII characters without spaces "
                               "(e.g. EAST)") from None
