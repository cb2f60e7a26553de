"""The ledger's Open311 GeoReport v2 mapping (codes, ids, times, statuses, words), shared by the API and the auditor.

Mapping (GeoReport v2, http://wiki.open311.org/GeoReport_v2)
    * A **service** is a commitment: ``service_code`` is ``<agency id>.<commitment id>``
      (``DEMO-ROADS.STREETLIGHT-48H``). Codes are printable ASCII, so in each part ``%``, ``.``, ``,``, ``:`` and
      ``/`` are written ``%25``, ``%2E``, ``%2C``, ``%3A`` and ``%2F``: the one bare ``.`` separates the parts, a list
      of codes can be split at commas, and a code fits in one path segment.
    * A **service request** is a case: ``service_request_id`` is ``<agency id>:0x<case id, 64 lowercase hex digits>``
      (agency id escaped as above); ``status`` is ``closed`` for a closed case (``ledger.cases.CLOSED``: fulfilled,
      rejected, withdrawn) and ``open`` otherwise (open, on hold); ``status_notes`` says which, in words.
    * A request filed here (``POST requests``) is a citizen's filing (``ledger.records.Filing``): its
      ``service_request_id`` is that of the case its acceptance opens (``ledger.records.filed_case_id`` of the
      filing's seq), so the id a client gets once stays the request's id. Until the agency answers, the id stands for
      the filing (``open``, awaiting the answer); a rejected filing is ``closed`` with the reason
      (:func:`filing_status_notes`); an accepted one is its case. A service's definition asks for one thing,
      :data:`DISTRICT_ATTRIBUTE`, the district code recorded on chain with the filing.
    * Times are W3C date-times in the jurisdiction's local time with its offset (``2026-11-20T14:03:00+08:00``, see
      :data:`ledger.workdays.LOCAL_UTC_OFFSET_SECONDS`).

Everything here is pure (no database, no HTTP): ``api/routes/open311.py`` maps the index to these documents and
``ledger/audit/expected_open311.py`` maps the chain to them, both through these functions, so the two cannot word a
thing differently. Words come in the API's two languages, ``en`` and ``zh``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

from ledger.cases import CLOSED, FULFILLED, ON_HOLD, OPEN, REJECTED, WITHDRAWN
from ledger.filings import ANSWER_WINDOW_WORKING_DAYS
from ledger.records import DeadlineUnit, FilingDecision
from ledger.workdays import LOCAL_UTC_OFFSET_SECONDS

SPECIFICATION_URL = "http://wiki.open311.org/GeoReport_v2"
LOCAL_ZONE = timezone(timedelta(seconds=LOCAL_UTC_OFFSET_SECONDS))

Lang = Literal["en", "zh"]

# --- codes and ids ----------------------------------------------------------------------------------------------------

_ESCAPES = {"%": "%25", ".": "%2E", ",": "%2C", ":": "%3A", "/": "%2F"}
_ESCAPE_SEQUENCE = re.compile("%(25|2E|2C|3A|2F)", re.IGNORECASE)
_CASE_HEX = re.compile("(?:0x)?([0-9a-f]{64})", re.IGNORECASE)


def _escape(code: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in code)


def _unescape(text: str) -> str | None:
    """Inverse of :func:`_escape`; None when `text` is not an escaped code (a bare separator or a stray ``%``)."""
    if not text or any(ch in _ESCAPES for ch in _ESCAPE_SEQUENCE.sub("", text)):
        return None
    return _ESCAPE_SEQUENCE.sub(lambda m: chr(int(m.group(1), 16)), text)


def service_code_of(agency_id: str, commitment_id: str) -> str:
    """The Open311 ``service_code`` of a commitment: ``<agency id>.<commitment id>``, each part escaped."""
    return f"{_escape(agency_id)}.{_escape(commitment_id)}"


def parse_service_code(service_code: str) -> tuple[str, str] | None:
    """(agency id, commitment id) of a ``service_code``, or None when it is not one."""
    parts = service_code.split(".")
    if len(parts) != 2:
        return None
    agency_id, commitment_id = _unescape(parts[0]), _unescape(parts[1])
    if agency_id is None or commitment_id is None:
        return None
    return agency_id, commitment_id


def service_request_id_of(agency_id: str, case_id: bytes) -> str:
    """The Open311 ``service_request_id`` of a case: ``<agency id>:0x<case id in hex>``."""
    return f"{_escape(agency_id)}:0x{bytes(case_id).hex()}"


def parse_service_request_id(service_request_id: str) -> tuple[str, bytes] | None:
    """(agency id, case id) of a ``service_request_id`` (hex digits in either case, ``0x`` optional), or None."""
    agency_part, separator, case_part = service_request_id.strip().rpartition(":")
    match = _CASE_HEX.fullmatch(case_part)
    agency_id = _unescape(agency_part) if separator else None
    if agency_id is None or match is None:
        return None
    return agency_id, bytes.fromhex(match.group(1))


# --- times and text ---------------------------------------------------------------------------------------------------


def format_time(unix_time: int | None) -> str | None:
    """Unix seconds as a W3C date-time in the jurisdiction's local time, e.g. ``2026-11-20T14:03:00+08:00``. None
    for None, and for a time no four-digit year can hold (an agency may claim any 64-bit time)."""
    if unix_time is None:
        return None
    try:
        return datetime.fromtimestamp(unix_time, LOCAL_ZONE).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


# Characters XML 1.0 forbids (§2.2 Char): C0 controls other than tab, newline and carriage return, surrogates, and
# U+FFFE/U+FFFF. Names on chain are free text, so one could hold any of them; the XML form carries U+FFFD for each.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """`value` as an XML element's text carries it: each character XML 1.0 forbids replaced by U+FFFD."""
    return _NOT_XML_CHAR.sub("\ufffd", value)


# --- statuses ---------------------------------------------------------------------------------------------------------

#: the case statuses each Open311 ``status`` stands for
CASE_STATUSES: dict[str, frozenset[str]] = {"open": frozenset({OPEN, ON_HOLD}), "closed": CLOSED}

_STATUS_WORDS: dict[Lang, dict[str, str]] = {
    "en": {OPEN: "open", ON_HOLD: "on hold (the deadline is paused)", REJECTED: "rejected", WITHDRAWN: "withdrawn",
           FULFILLED: "fulfilled"},
    "zh": {OPEN: "办理中", ON_HOLD: "挂起中（时限暂停）", REJECTED: "不予办理", WITHDRAWN: "已撤回",
           FULFILLED: "已办结"},
}


def request_status(status: str) -> str:
    """Open311's two statuses: ``closed`` for a closed case, ``open`` for an open or held one."""
    return "closed" if status in CLOSED else "open"


def status_notes(status: str, *, on_time: bool | None, overdue: bool, escalated: bool, lang: Lang = "en") -> str:
    """``status_notes``: the case's status in words (a fulfilment on time or late), "overdue" when it is open and
    `overdue` (as of the request), "escalated" when it was."""
    zh = lang == "zh"
    notes = [_STATUS_WORDS[lang].get(status, status)]
    if status == FULFILLED and on_time is not None:
        notes = [("已按时办结" if on_time else "已办结（超期）") if zh else
                 ("fulfilled on time" if on_time else "fulfilled late")]
    if overdue and status not in CLOSED:
        notes.append("已超期" if zh else "overdue")
    if escalated:
        notes.append("已督办" if zh else "escalated")
    return ("，" if zh else ", ").join(notes)


# --- commitments in words ---------------------------------------------------------------------------------------------


def percent(bps: int) -> str:
    """Basis points as a percentage without trailing zeros: 9250 -> ``92.5%``."""
    return f"{(Decimal(bps) / 100).normalize():f}%"


def ordinal(n: int) -> str:
    """An English ordinal: 1st, 2nd, 3rd, 4th, 11th, 22nd."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def deadline_text(deadline: int, deadline_unit: int, lang: Lang = "en") -> str:
    """The deadline a commitment version sets (a service's ``DEADLINE``, a request's ``service_notice``)."""
    if deadline_unit == DeadlineUnit.CALENDAR_HOURS:
        if lang == "zh":
            return f"受理后{deadline}小时内办结（挂起等待时间不计入）"
        return f"Due within {deadline} calendar hours of opening (time on hold is not counted)"
    if lang == "zh":
        return f"受理次日起{deadline}个工作日内办结（挂起等待时间不计入）"
    return (f"Due by the end of the {ordinal(deadline)} working day after the day of opening (time on hold "
            "is not counted)")


def service_description(name: str, deadline: int, deadline_unit: int, target_bps: int, retired: bool,
                        lang: Lang = "en") -> str:
    """A service's ``description``: its name, deadline and on-time target (and that it is retired)."""
    if lang == "zh":
        text = f"{name}。{deadline_text(deadline, deadline_unit, lang)}；目标按时办结率{percent(target_bps)}。"
        return text + ("该承诺已停止。" if retired else "")
    text = (f"{name}. {deadline_text(deadline, deadline_unit, lang)}; target: {percent(target_bps)} of cases "
            f"fulfilled on time.")
    return text + (" This commitment is retired." if retired else "")


#: GeoReport v2 §GET Service List ``metadata``: every service has a definition a client reads before it files (it asks
#: for :data:`DISTRICT_ATTRIBUTE`)
SERVICE_METADATA = True
#: the one attribute a filer gives (``attribute[district]=…``): the district code the filing records on chain — the
#: finest location the ledger holds, what a request's ``address`` shows
DISTRICT_ATTRIBUTE = "district"


def _attribute(order: int, code: str, description: str) -> dict[str, Any]:
    # variable=false: "the attribute is only used to present information to the user within the description field"
    return {"variable": False, "code": code, "datatype": "string", "required": False, "datatype_description": None,
            "order": order, "description": description}


def district_attribute(order: int, lang: Lang = "en") -> dict[str, Any]:
    """The definition's :data:`DISTRICT_ATTRIBUTE`: a string the filer must give (variable, required)."""
    if lang == "zh":
        description = ("问题所在区域的代码，即本机关事项在“address”中显示的代码（例如 EAST）。该代码随诉求记录于账本，"
                       "是账本所载最细的位置；具体地点（经纬度、地址）只提供给承办机关。")
        datatype_description = "1至32个可打印ASCII字符，不含空格"
    else:
        description = ("The district where the issue is, as a code: the codes this agency's requests show as their "
                       "address (e.g. EAST). It is recorded on the ledger with the request, the finest location the "
                       "ledger holds; the exact place (lat/long, address_string) goes to the agency only.")
        datatype_description = "1 to 32 printable ASCII characters, no spaces"
    return {"variable": True, "code": DISTRICT_ATTRIBUTE, "datatype": "string", "required": True,
            "datatype_description": datatype_description, "order": order, "description": description}


def definition_attributes(deadline: int, deadline_unit: int, target_bps: int, version: int, valid_from: int,
                          terms_hash: bytes, retired: bool, lang: Lang = "en") -> list[dict[str, Any]]:
    """A service definition's ``attributes``: as information only, the deadline, on-time target and terms, and
    whether the commitment is retired; then the one a filer gives (:func:`district_attribute`). (Clients show the
    variable ones as the form and the others as text, each by ``order``.)"""
    zh = lang == "zh"
    since = format_time(valid_from) or str(valid_from)
    attributes = [
        _attribute(1, "DEADLINE", deadline_text(deadline, deadline_unit, lang)),
        _attribute(2, "ON_TIME_TARGET", (f"目标按时办结率：{percent(target_bps)}" if zh else
                                         f"Target: {percent(target_bps)} of cases fulfilled on time")),
        _attribute(3, "TERMS", (
            f"第{version}版，自{since}起生效；完整条款的keccak-256哈希为0x{terms_hash.hex()}（记录于账本）"
            if zh else
            f"Version {version}, in force from {since}; the full terms hash (keccak-256) to "
            f"0x{terms_hash.hex()}, as recorded on the ledger")),
    ]
    if retired:
        attributes.append(_attribute(4, "RETIRED", "该承诺已停止，不再受理新的事项" if zh else
                                     "This commitment is retired: no new cases are opened under it"))
    attributes.append(district_attribute(len(attributes) + 1, lang))
    return attributes


# --- requests filed here, until the agency answers -------------------------------------------------------------------


def filing_notice(deadline: str | None, lang: Lang = "en") -> str:
    """The ``service_notice`` of a request filed here: the agency accepts or rejects it within
    ``ledger.filings.ANSWER_WINDOW_WORKING_DAYS`` working days; once accepted, `deadline` (:func:`deadline_text` of
    the commitment's version in force) runs from the filing."""
    n = ANSWER_WINDOW_WORKING_DAYS
    if lang == "zh":
        text = f"承办机关于提交次日起{n}个工作日内决定受理或不予受理"
        return text + (f"；受理后自提交时起计时：{deadline}" if deadline else "。")
    text = (f"The agency accepts or rejects this request by the end of the {ordinal(n)} working day after the day it "
            "was filed")
    return text + (f"; once accepted, its clock runs from the filing: {deadline}" if deadline else ".")


_REJECTIONS: dict[Lang, dict[int, str]] = {
    "en": {FilingDecision.DUPLICATE: "rejected as a duplicate", FilingDecision.OUT_OF_SCOPE:
           "rejected: not within the agency's responsibilities", FilingDecision.SPAM: "rejected as spam"},
    "zh": {FilingDecision.DUPLICATE: "不予受理：重复诉求", FilingDecision.OUT_OF_SCOPE: "不予受理：不属于本机关职责",
           FilingDecision.SPAM: "不予受理：无效信息"},
}


def filing_status_notes(decision: int | None, *, due: int, overdue: bool, late: bool,
                        duplicate_of: str | None = None, lang: Lang = "en") -> str:
    """``status_notes`` of a filed request the agency has not accepted: awaiting its answer, due at `due` (and
    "overdue" when `overdue`), or rejected (`decision`, ``ledger.records.FilingDecision``) with the reason — a
    duplicate names the request it duplicates (`duplicate_of`, a ``service_request_id``) — and "late" when the
    answer came after its due time."""
    zh = lang == "zh"
    if decision is None:
        due_text = format_time(due) or str(due)
        notes = [f"已提交，等待机关答复，答复期限{due_text}" if zh else
                 f"filed, awaiting the agency's answer, due {due_text}"]
        if overdue:
            notes.append("已超期" if zh else "overdue")
    else:
        words = _REJECTIONS[lang].get(decision, "已答复" if zh else "answered")
        if decision == FilingDecision.DUPLICATE and duplicate_of:
            words += f"（与{duplicate_of}重复）" if zh else f" of {duplicate_of}"
        notes = [words]
        if late:
            notes.append("超期答复" if zh else "answered late")
    return ("，" if zh else ", ").join(notes)
