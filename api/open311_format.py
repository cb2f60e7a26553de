"""Open311 GeoReport v2 wire formats: JSON and XML bodies, error lists, and the W3C date-time profile.

Element and field names are the specification's (http://wiki.open311.org/GeoReport_v2), so existing Open311
clients read these documents unchanged. Everything here is pure: no database, no FastAPI routing.

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
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal
from xml.etree import ElementTree

from fastapi import Response

from ledger.open311 import LOCAL_ZONE, xml_text

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
