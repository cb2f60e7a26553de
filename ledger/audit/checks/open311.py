"""Open311 equals the chain: what the GeoReport v2 endpoints (``/open311/v2``, JSON and XML) show a person — the
service list, every service definition, discovery's changeset, single requests and request lists with their
filters — is what the chain says (``ledger.audit.expected_open311``), in both formats.

Which requests and which filters are looked at is drawn from the audit's secret seed (``ctx.rng``): single requests
like the case views (``--case-sample``, every case when there are no more), and :data:`QUERIES` request lists with a
drawn ``start_date``/``end_date`` window, ``service_code`` (none, one or two), ``status`` (none, open, closed, both)
and page size, every page followed. A list must hold exactly the chain's cases that match its filters, each once,
newest first. Cases changed after the API's position or the audited block are left out (``_position``).

The XML documents are parsed with the standard library's expat parser, which resolves no external entity and refuses
entity expansion bombs; an answer that is neither the document asked for nor an error is a finding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

from ledger.audit import expected_open311 as want
from ledger.audit.apiread import ApiRedirected, ResponseTooLarge
from ledger.audit.checks import Check
from ledger.audit.checks._api import horizon
from ledger.audit.checks._position import Position, position
from ledger.audit.context import AuditContext
from ledger.audit.expected import differences
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import CaseRecord, LedgerModel, entry_pointer
from ledger.metrics import CaseRow, is_overdue_at
from ledger.open311 import (
    CASE_STATUSES,
    SPECIFICATION_URL,
    format_time,
    parse_service_code,
    request_status,
    service_code_of,
    service_request_id_of,
)

NAME = "open311"
ROOT = "/open311/v2"
FORMATS = ("json", "xml")
#: request lists (filter combinations) drawn per audit, each asked in both formats
QUERIES = 8
#: pages followed at most per list (a list that never ends is a finding), beyond what the chain's cases need
MAX_PAGES = 500
#: pages a drawn list should take at most: a drawn page size too small for the cases in its window is raised to fit
#: (the audit's cost, not its reach: every case of the window is still compared); the API's page is 1,000 at most
PAGE_BUDGET = 50
OPEN311_MAX_PAGE = 1000
HOUR = 3600
DAY = 86_400
SPAN = 90 * DAY  # GeoReport v2's longest window (the API refuses a longer one)


class _Unreadable(Exception):
    """An answer that is not the Open311 document asked for."""


def xml_document(body: bytes) -> Any:
    """An Open311 XML document as the JSON one it stands for: list elements (:data:`XML_LISTS`) as lists, elements
    with children as mappings, others as their text (None when empty)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise _Unreadable(f"not well-formed XML ({exc})") from exc
    return _xml_value(root)


def _xml_value(element: ElementTree.Element) -> Any:
    if element.tag in want.XML_LISTS:
        return [_xml_value(child) for child in element]
    if len(element):
        return {child.tag: _xml_value(child) for child in element}
    return element.text or None


def _show(diffs: list[tuple[str, Any, Any]], limit: int = 4) -> str:
    shown = "; ".join(f"{field}: API {str(actual)[:120]!r}, chain {want_!r}" for field, want_, actual in diffs[:limit])
    return shown + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


class _Reader:
    """GETs of Open311 documents (outside ``/api/v1``), parsed by format; counts what it asked."""

    def __init__(self, ctx: AuditContext, result: CheckResult) -> None:
        self.api, self.result = ctx.api, result

    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(HTTP status, the parsed document) of ``GET path``; raises :class:`_Unreadable`."""
        fmt = "xml" if path.endswith(".xml") else "json"
        # Outside /api/v1 (prefix ""), read as the careful client reads everything: an ordinary browser's identity,
        # bounded, and no redirect followed (a 3xx is a status like any other not 200: a finding).
        try:
            status, body = self.api.fetch(path, params, prefix="")
        except ApiRedirected as exc:
            return exc.status, None
        except ResponseTooLarge as exc:
            raise _Unreadable(str(exc)) from exc
        if status >= 300:
            return status, None
        if fmt == "json":
            try:
                return status, json.loads(body)
            except ValueError as exc:
                raise _Unreadable("the answer is not JSON") from exc
        return status, xml_document(body)


def run(ctx: AuditContext, result: CheckResult) -> None:
    h = horizon(ctx)
    pos = position(ctx, h)
    result.notes.append(pos.note)
    reader = _Reader(ctx, result)
    requests_before = ctx.api.requests
    _discovery(ctx, reader, h.model, pos, result)
    _services(ctx, reader, h.model, pos, result)
    settled = sorted((r for r in ctx.model.cases.values() if r.state is not None and pos.settled(r)),
                     key=lambda r: (r.agency_id, r.case_id))
    left_out = sum(1 for r in ctx.model.cases.values() if r.state is not None) - len(settled)
    if left_out:
        result.notes.append(f"{left_out} case(s) changed after the position compared at: not compared")
    _single_requests(ctx, reader, pos, settled, result)
    _request_lists(ctx, reader, pos, result)
    result.counts["api_requests"] = ctx.api.requests - requests_before


def _report(result: CheckResult, pos: Position, finding: Finding) -> None:
    (result.warn if pos.doubtful else result.add)(finding)


def _fetch(reader: _Reader, result: CheckResult, path: str, params: dict[str, Any] | None = None,
           about: CaseRecord | None = None) -> tuple[int, Any] | None:
    """The status and document, or None (a finding) when the answer cannot be read."""
    try:
        return reader.get(path, params)
    except _Unreadable as exc:
        pointer = entry_pointer(about.events[-1]) if about is not None and about.events else {}
        result.add(Finding(NAME, f"the answer is not an Open311 document: {exc}", **pointer,
                           subject=f"GET {_path_of(path, params)}"))
        return None


def _opened_later(pos: Position, sid: Any) -> bool:
    """Whether a service request id the chain has no case for names a case opened after the audited block."""
    agency, _, case_hex = str(sid).partition(":")
    try:
        case_id = bytes.fromhex(case_hex.removeprefix("0x"))
    except ValueError:
        return False
    return len(case_id) == 32 and pos.later_case(agency, case_id)


def _path_of(path: str, params: dict[str, Any] | None) -> str:
    query = "&".join(f"{k}={v}" for k, v in (params or {}).items() if v is not None)
    return path + (f"?{query}" if query else "")


def _compare(result: CheckResult, pos: Position, what: str, fmt: str, expected: Any, got: Any, subject: str,
             about: CaseRecord | None = None) -> bool:
    diffs = differences(want.as_xml(expected) if fmt == "xml" else expected, got)
    if diffs:
        field, expected_value, actual = diffs[0]
        pointer = entry_pointer(about.events[-1]) if about is not None and about.events else {}
        _report(result, pos, Finding(NAME, f"{what} ({fmt.upper()}) differs from the chain: {_show(diffs)}",
                                     **pointer, subject=subject, field=field, expected=expected_value,
                                     actual=actual))
    return not diffs


def _discovery(ctx: AuditContext, reader: _Reader, model: LedgerModel, pos: Position, result: CheckResult) -> None:
    changeset = want.changeset(model, pos.count)
    expected = {"changeset": changeset,
                "endpoints": [{"specification": SPECIFICATION_URL, "changeset": changeset,
                               "formats": want.FORMATS}]}
    for fmt in FORMATS:
        path = f"{ROOT}/discovery.{fmt}"
        got = _fetch(reader, result, path)
        if got is None:
            continue
        status, doc = got
        if status != 200:
            result.add(Finding(NAME, f"discovery answers HTTP {status}", subject=f"GET {path}"))
            continue
        _compare(result, pos, "service discovery", fmt, expected, doc, f"GET {path}")


def _services(ctx: AuditContext, reader: _Reader, model: LedgerModel, pos: Position, result: CheckResult) -> None:
    commitments = sorted((c for c in model.commitments.values() if c.versions),
                         key=lambda c: (c.agency_id, c.commitment_id))
    listed = {service_code_of(c.agency_id, c.commitment_id): (c, want.service(model, c)) for c in commitments}
    for fmt in FORMATS:
        path = f"{ROOT}/services.{fmt}"
        got = _fetch(reader, result, path)
        if got is None:
            continue
        status, doc = got
        if status != 200 or not isinstance(doc, list):
            result.add(Finding(NAME, f"the service list answers HTTP {status} without a list", subject=f"GET {path}"))
            continue
        served: dict[Any, Any] = {}
        for item in doc:
            code = item.get("service_code") if isinstance(item, dict) else None
            if code in served:
                result.add(Finding(NAME, f"the service list has {code!r} twice", subject=f"GET {path}"))
            served[code] = item
        for code, (c, expected) in listed.items():
            item = served.pop(code, None)
            subject = f"GET {path} ({code})"
            if c.agency_id in pos.later_agencies:
                continue  # its agency published or retired something after the audited block: the API may be newer
            if expected is None:
                if item is not None:
                    _report(result, pos, Finding(NAME, f"the service list offers {code}, which is retired on chain",
                                                 **entry_pointer(c.retirement or c.versions[-1][1]), subject=subject))
                continue
            if item is None:
                _report(result, pos, Finding(NAME, f"the service list lacks {code}, a commitment in force on chain",
                                             **entry_pointer(c.versions[-1][1]), subject=subject))
                continue
            _compare(result, pos, f"service {code}", fmt, expected, item, subject)
        for code in served:
            parsed = parse_service_code(str(code))
            if parsed is not None and parsed[0] in pos.later_agencies:
                continue  # published after the audited block
            _report(result, pos, Finding(NAME, f"the service list offers {code!r}, which the chain does not have",
                                         subject=f"GET {path}", actual=code))
    for c in commitments:
        if c.agency_id in pos.later_agencies:
            continue
        code = service_code_of(c.agency_id, c.commitment_id)
        expected = want.service_definition(c)
        for fmt in FORMATS:
            path = f"{ROOT}/services/{quote(code, safe='')}.{fmt}"
            got = _fetch(reader, result, path)
            if got is None:
                continue
            status, doc = got
            if status != 200:
                result.add(Finding(NAME, f"the definition of service {code} answers HTTP {status}",
                                   **entry_pointer(c.versions[-1][1]), subject=f"GET {path}"))
                continue
            _compare(result, pos, f"service definition {code}", fmt, expected, doc, f"GET {path}")
    result.counts["services_compared"] = len(commitments)


def _case_row(record: CaseRecord) -> CaseRow:
    assert record.state is not None
    return CaseRow(agency_id=record.agency_id, case_id=record.case_id, **record.state.row())


def _compare_request(result: CheckResult, pos: Position, model: LedgerModel, record: CaseRecord, fmt: str,
                     item: Any, subject: str, window: tuple[int, int]) -> None:
    """One request as served against the case: every field, and ``status_notes`` as of the moment it was asked
    (either reading, when the case fell overdue while it was asked)."""
    expected = want.request(record, model)
    assert expected is not None
    if not _compare(result, pos, f"service request {expected['service_request_id']}", fmt, expected, item, subject,
                    record):
        return
    row = _case_row(record)
    readings = {want.case_status_notes(record, is_overdue_at(row, t)) for t in (window[0], window[1] + 1)}
    notes = item.get("status_notes") if isinstance(item, dict) else None
    if notes not in readings:
        shown = " or ".join(repr(r) for r in sorted(readings))
        _report(result, pos, Finding(
            NAME, f"service request {expected['service_request_id']} ({fmt.upper()}) says {str(notes)[:120]!r}; the "
            f"chain says {shown}", **entry_pointer(record.events[-1]), subject=subject, field="status_notes",
            expected=sorted(readings)[0], actual=notes,
        ))


def _single_requests(ctx: AuditContext, reader: _Reader, pos: Position, settled: list[CaseRecord],
                     result: CheckResult) -> None:
    n = min(ctx.config.case_sample, len(settled))
    sample = ctx.rng("open311 requests").sample(settled, n)
    result.notes.append(f"single requests: {n} of {len(settled)} cases, each in JSON and XML"
                        + (" (drawn from the audit's seed)" if n < len(settled) else " (all of them)"))
    for record in sample:
        sid = service_request_id_of(record.agency_id, record.case_id)
        for fmt in FORMATS:
            path = f"{ROOT}/requests/{quote(sid, safe=':')}.{fmt}"
            before = int(time.time())
            got = _fetch(reader, result, path, about=record)
            after = int(time.time())
            if got is None:
                continue
            status, doc = got
            if status != 200 or not isinstance(doc, list) or len(doc) != 1:
                what = f"HTTP {status}" if status != 200 else f"{len(doc) if isinstance(doc, list) else 'no'} items"
                _report(result, pos, Finding(NAME, f"service request {sid} ({fmt.upper()}): {what}, but the chain "
                                             "has the case", **entry_pointer(record.events[0]), subject=f"GET {path}"))
                continue
            _compare_request(result, pos, ctx.model, record, fmt, doc[0], f"GET {path}", (before, after))
    result.counts["requests_compared"] = n


def _w3c(t: int, utc: bool) -> str:
    if utc:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return format_time(t) or str(t)


def draw_queries(ctx: AuditContext, model: LedgerModel, n: int = QUERIES) -> list[tuple[dict[str, Any], int, int]]:
    """`n` request-list queries drawn from the audit's seed, each with the window it asks for (first and last second,
    inclusive): a window around the cases' opening times (an hour to 90 days, its ends in local time or UTC), no, one
    or two service codes, a status filter, and a page size (or the API's own)."""
    rng = ctx.rng("open311 queries")
    opened = [r.state.opened_at for r in model.cases.values() if r.state is not None]
    codes = sorted(service_code_of(*key) for key, c in model.commitments.items() if c.versions)
    if not opened:
        return []
    low, high = min(opened), max(opened)
    out = []
    for _ in range(n):
        span = rng.choice([HOUR, DAY, 7 * DAY, 30 * DAY, SPAN, rng.randint(HOUR, SPAN)])
        start = rng.randint(low - span // 2, max(low, high - span // 2))
        utc = rng.random() < 0.5
        params: dict[str, Any] = {"start_date": _w3c(start, utc), "end_date": _w3c(start + span, utc)}
        picked = rng.sample(codes, min(len(codes), rng.choice([0, 0, 1, 2])))
        if picked:
            params["service_code"] = ",".join(picked)
        status = rng.choice([None, "open", "closed", "open,closed"])
        if status is not None:
            params["status"] = status
        if rng.random() < 0.5:
            params["page_size"] = rng.randint(1, 60)
        out.append((params, start, start + span))
    return out


def _matches(record: CaseRecord, start: int, end: int, codes: set[tuple[str, str]] | None,
             statuses: set[str] | None) -> bool:
    state = record.state
    assert state is not None
    if not start <= state.opened_at <= end:
        return False
    if codes is not None and (record.agency_id, state.commitment_id) not in codes:
        return False
    return statuses is None or state.status in statuses


def sized(params: dict[str, Any], count: int) -> dict[str, Any]:
    """`params` with a drawn page size raised, when needed, so that the `count` cases of its window (and a quarter
    more, for cases indexed since) take at most :data:`PAGE_BUDGET` pages."""
    size = params.get("page_size")
    need = -(-count * 5 // (4 * PAGE_BUDGET))
    if size is None or size >= need:
        return params
    return {**params, "page_size": min(OPEN311_MAX_PAGE, need)}


def _pages(reader: _Reader, result: CheckResult, path: str, params: dict[str, Any],
           count: int = 0) -> Iterator[Any] | None:
    """Every item of a request list of about `count` cases, page by page; None (a finding) when a page fails, or
    when the list goes on for :data:`MAX_PAGES` pages more than those cases need."""
    items: list[Any] = []
    size = params.get("page_size")
    most = MAX_PAGES + -(-count // (size or OPEN311_MAX_PAGE))
    for page in range(1, most + 1):
        query = {**params, "page": page}
        got = _fetch(reader, result, path, query)
        if got is None:
            return None
        status, doc = got
        if status != 200 or not isinstance(doc, list):
            result.add(Finding(NAME, f"the request list answers HTTP {status} without a list",
                               subject=f"GET {_path_of(path, query)}"))
            return None
        items.extend(doc)
        if not doc or (size is not None and len(doc) < size):
            return iter(items)
    result.add(Finding(NAME, f"the request list does not end after {most} pages",
                       subject=f"GET {_path_of(path, params)}"))
    return None


def _request_lists(ctx: AuditContext, reader: _Reader, pos: Position, result: CheckResult) -> None:
    model = ctx.model
    by_id = {service_request_id_of(r.agency_id, r.case_id): r for r in model.cases.values() if r.state is not None}
    queries = draw_queries(ctx, model)
    compared = items_compared = 0
    for params, start, end in queries:
        codes = None
        if "service_code" in params:
            codes = {(c.agency_id, c.commitment_id) for c in model.commitments.values()
                     if service_code_of(c.agency_id, c.commitment_id) in params["service_code"].split(",")}
        statuses: set[str] | None = None
        if "status" in params:
            statuses = set()
            for word in params["status"].split(","):
                statuses |= CASE_STATUSES[word]
        expected = {sid for sid, r in by_id.items() if _matches(r, start, end, codes, statuses)}
        params = sized(params, len(expected))
        for fmt in FORMATS:
            path = f"{ROOT}/requests.{fmt}"
            subject = f"GET {_path_of(path, params)}"
            before = int(time.time())
            items = _pages(reader, result, path, params, len(expected))
            after = int(time.time())
            if items is None:
                continue
            seen: set[str] = set()
            last_opened: int | None = None
            for item in items:
                sid = item.get("service_request_id") if isinstance(item, dict) else None
                record = by_id.get(sid) if isinstance(sid, str) else None
                if sid in seen:
                    result.add(Finding(NAME, f"the request list ({fmt.upper()}) has {sid} twice", subject=subject))
                    continue
                seen.add(str(sid))
                if record is None and _opened_later(pos, sid):
                    continue  # a case opened after the audited block, which the API has indexed already
                if record is None:
                    _report(result, pos, Finding(NAME, f"the request list ({fmt.upper()}) has {str(sid)[:80]!r}, "
                                                 "which is no case on chain", subject=subject, actual=sid))
                    continue
                if not pos.settled(record):
                    continue
                assert record.state is not None
                if last_opened is not None and record.state.opened_at > last_opened:
                    result.add(Finding(NAME, f"the request list ({fmt.upper()}) is not newest first at {sid}",
                                       subject=subject, field="requested_datetime"))
                last_opened = record.state.opened_at
                if sid not in expected:
                    _report(result, pos, Finding(
                        NAME, f"the request list ({fmt.upper()}) has {sid}, which does not match its filters on "
                        f"chain (status {record.state.status}, opened {format_time(record.state.opened_at)})",
                        **entry_pointer(record.events[-1]), subject=subject, field="status",
                        expected=request_status(record.state.status), actual=item.get("status"),
                    ))
                    continue
                _compare_request(result, pos, model, record, fmt, item, subject, (before, after))
                items_compared += 1
            for sid in sorted(expected - seen):
                record = by_id[sid]
                if pos.settled(record):
                    assert record.state is not None
                    _report(result, pos, Finding(
                        NAME, f"the request list ({fmt.upper()}) lacks {sid} (status {record.state.status}, opened "
                        f"{format_time(record.state.opened_at)}), which matches its filters on chain",
                        **entry_pointer(record.events[-1]), subject=subject,
                    ))
            compared += 1
    result.notes.append(f"request lists: {len(queries)} filter combinations drawn from the audit's seed, each in "
                        "JSON and XML, every page followed")
    result.counts["request_lists_compared"] = compared
    result.counts["request_list_items_compared"] = items_compared


CHECK = Check(
    NAME,
    "Open311 (GeoReport v2) equals on-chain data",
    "Discovery's changeset, the service list (every commitment in force, none retired), every service definition "
    "(deadline, target, terms), a sample of single service requests (all when few) and request lists with drawn "
    "filters (dates, service codes, status, pages) say, in JSON and in XML alike, what the chain says: each "
    "request's status (open or closed), service, agency, deadline, requested, updated and expected times, district "
    "and status notes; a list holds exactly the cases matching its filters, once each, newest first. The sample and "
    "the filters are drawn from the audit's secret seed.",
    run,
    needs_api=True,
)
