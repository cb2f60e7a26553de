"""Open311 GeoReport v2 endpoints over the indexed demo city: every endpoint in JSON and XML, every filter, errors,
the commitment/case mapping checked against the store, no personal data, and a bounded schemathesis run."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import select

from api.app import create_app
from api.open311_format import (
    REQUEST_FIELDS,
    SERVICE_FIELDS,
    InvalidDateTime,
    parse_time,
    to_xml,
)
from api.routes.open311 import MAX_PAGED_RESULTS
from api.settings import ApiSettings
from ledger.cases import CLOSED
from ledger.dev import demo
from ledger.open311 import (
    format_time,
    parse_service_code,
    parse_service_request_id,
    service_code_of,
    service_request_id_of,
)
from ledger.store.db import open_store
from ledger.store.schema import agencies, cases, commitments

from .conftest import IndexedCity

BASE = "/open311/v2"
DAY = 86_400
EMPTY_FIELDS = ("description", "address_id", "zipcode", "lat", "long", "media_url")


# --- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(api_settings: ApiSettings) -> Iterator[TestClient]:
    """One app for the module (the shared `client` fixture builds one per test)."""
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def store_cases(indexed_city: IndexedCity) -> dict[tuple[str, bytes], Any]:
    """Every row of the store's cases table, by (agency, case id): what the API must agree with."""
    store = open_store(indexed_city.store_url)
    try:
        with store.connect() as conn:
            return {(r.agency_id, bytes(r.case_id)): r for r in conn.execute(select(cases))}
    finally:
        store.close()


@pytest.fixture(scope="module")
def store_catalogue(indexed_city: IndexedCity) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """Agencies by id, and the latest version of every commitment by (agency, commitment)."""
    store = open_store(indexed_city.store_url)
    try:
        with store.connect() as conn:
            agency_rows = {r.agency_id: r for r in conn.execute(select(agencies))}
            latest: dict[tuple[str, str], Any] = {}
            for r in conn.execute(select(commitments).order_by(commitments.c.version)):
                latest[(r.agency_id, r.commitment_id)] = r
            return agency_rows, latest
    finally:
        store.close()


@pytest.fixture(scope="module")
def all_requests(api: TestClient) -> list[dict[str, Any]]:
    response = api.get(f"{BASE}/requests.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _xml(response: httpx.Response, root: str) -> ElementTree.Element:
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    element = ElementTree.fromstring(response.content)
    assert element.tag == root
    return element


def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    return response.json()


def _assert_error(response: httpx.Response, status: int, fmt: str = "json") -> str:
    """The response is an Open311 error list with `status` as both HTTP status and code; returns its description."""
    assert response.status_code == status, response.text
    if fmt == "json":
        body = _json(response, status)
        assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"code", "description"}
        assert body[0]["code"] == status
        return str(body[0]["description"])
    root = _xml(response, "errors")
    [error] = list(root)
    assert error.tag == "error" and [child.tag for child in error] == ["code", "description"]
    assert error.findtext("code") == str(status)
    return error.findtext("description") or ""


def _unix(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _in_window(rows: Any, start: int, end: int) -> list[Any]:
    return [r for r in rows if start <= r.opened_at <= end]


# --- discovery --------------------------------------------------------------------------------------------------------


def test_discovery_json_and_xml(api: TestClient) -> None:
    body = _json(api.get(f"{BASE}/discovery.json"))
    assert set(body) == {"changeset", "contact", "key_service", "endpoints"}
    [endpoint] = body["endpoints"]
    assert set(endpoint) == {"specification", "url", "changeset", "type", "formats"}
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2") and endpoint["type"] == "production"
    assert set(endpoint["formats"]) == {"application/json", "application/xml"}
    assert datetime.fromisoformat(body["changeset"]).utcoffset() is not None

    root = _xml(api.get(f"{BASE}/discovery.xml"), "discovery")
    assert [child.tag for child in root] == ["changeset", "contact", "key_service", "endpoints"]
    [xml_endpoint] = root.findall("endpoints/*")
    assert xml_endpoint.tag == "endpoint"
    assert [child.tag for child in xml_endpoint] == ["specification", "url", "changeset", "type", "formats"]
    assert [f.tag for f in xml_endpoint.findall("formats/*")] == ["format", "format"]
    assert root.findtext("changeset") == body["changeset"]


# --- services ---------------------------------------------------------------------------------------------------------


def test_service_list_is_every_commitment_in_force(api: TestClient, store_catalogue: Any) -> None:
    agency_rows, latest = store_catalogue
    body = _json(api.get(f"{BASE}/services.json"))
    in_force = {key: row for key, row in latest.items() if row.retired_seq is None}
    assert len(body) == len(in_force) == sum(len(a.services) for a in demo.AGENCIES)
    for service in body:
        assert tuple(service) == SERVICE_FIELDS
        key = parse_service_code(service["service_code"])
        assert key in in_force
        row = in_force[key]
        assert service["service_name"] == row.name_en
        assert service["group"] == agency_rows[key[0]].name_en
        # a definition to read before filing: it asks for the district
        assert service["metadata"] is True and service["type"] == "realtime"
        assert row.service_code in service["keywords"].split(", ")
        assert row.name_en in service["description"]
    assert "DEMO-ROADS.STREETLIGHT-48H" in {s["service_code"] for s in body}


def test_service_list_xml_has_the_same_services(api: TestClient) -> None:
    body = _json(api.get(f"{BASE}/services.json"))
    root = _xml(api.get(f"{BASE}/services.xml"), "services")
    assert [child.tag for child in root] == ["service"] * len(body)
    for element, service in zip(root, body, strict=True):
        assert tuple(child.tag for child in element) == SERVICE_FIELDS
        assert element.findtext("service_code") == service["service_code"]
        assert element.findtext("service_name") == service["service_name"]
        assert element.findtext("metadata") == "true"


def test_languages_by_parameter_and_header(api: TestClient, store_catalogue: Any) -> None:
    agency_rows, latest = store_catalogue
    by_param = _json(api.get(f"{BASE}/services.json", params={"lang": "zh"}))
    by_header = _json(api.get(f"{BASE}/services.json", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}))
    english = _json(api.get(f"{BASE}/services.json", headers={"Accept-Language": "fr, en;q=0.5, zh;q=0.3"}))
    assert by_param == by_header
    for zh, en in zip(by_param, english, strict=True):
        key = parse_service_code(zh["service_code"])
        assert zh["service_name"] == latest[key].name_zh and en["service_name"] == latest[key].name_en
        assert zh["group"] == agency_rows[key[0]].name_zh
    response = api.get(f"{BASE}/services.xml", params={"lang": "zh-CN"})
    assert response.headers["content-language"] == "zh-CN"
    assert _xml(response, "services")[0].findtext("service_name") == by_param[0]["service_name"]
    assert "lang" in _assert_error(api.get(f"{BASE}/services.json", params={"lang": "fr"}), 400)


def test_service_definition_json_and_xml(api: TestClient) -> None:
    for service in _json(api.get(f"{BASE}/services.json")):
        code = service["service_code"]
        body = _json(api.get(f"{BASE}/services/{code}.json"))
        assert set(body) == {"service_code", "attributes"} and body["service_code"] == code
        assert [a["order"] for a in body["attributes"]] == list(range(1, len(body["attributes"]) + 1))
        for attribute in body["attributes"]:
            assert set(attribute) == {"variable", "code", "datatype", "required", "datatype_description", "order",
                                      "description"}
        # one thing for a filer to give, the district recorded on chain (last); the rest only informs
        *informative, district = body["attributes"]
        assert (district["code"], district["variable"], district["required"], district["datatype"]) == (
            "district", True, True, "string")
        assert "district" in district["description"] and district["datatype_description"]
        assert all(a["variable"] is False and a["required"] is False for a in informative)
        assert {a["code"] for a in informative} >= {"DEADLINE", "ON_TIME_TARGET", "TERMS"}
        zh = _json(api.get(f"{BASE}/services/{code}.json", params={"lang": "zh"}))
        assert zh["attributes"][-1]["code"] == "district" and "区域" in zh["attributes"][-1]["description"]

    code = "DEMO-ROADS.STREETLIGHT-48H"
    root = _xml(api.get(f"{BASE}/services/{code}.xml"), "service_definition")
    assert [child.tag for child in root] == ["service_code", "attributes"]
    assert root.findtext("service_code") == code
    for attribute in root.findall("attributes/*"):
        assert attribute.tag == "attribute"
        assert [c.tag for c in attribute] == ["variable", "code", "datatype", "required", "datatype_description",
                                              "order", "description"]
        assert attribute.findtext("variable") == ("true" if attribute.findtext("code") == "district" else "false")
    deadline = root.find("attributes/attribute[code='DEADLINE']")
    assert deadline is not None and "48 calendar hours" in (deadline.findtext("description") or "")


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("code", ["DEMO-ROADS.NO-SUCH", "NO-SUCH.STREETLIGHT-48H", "DEMO-ROADS", "a.b.c", "%zz.x"])
def test_service_definition_not_found(api: TestClient, fmt: str, code: str) -> None:
    _assert_error(api.get(f"{BASE}/services/{code}.{fmt}"), 404, fmt)


# --- requests: the mapping --------------------------------------------------------------------------------------------


def test_requests_are_the_store_cases(
    all_requests: list[dict[str, Any]], store_cases: Any, store_catalogue: Any
) -> None:
    agency_rows, latest = store_catalogue
    now = int(time.time())
    expected = _in_window(store_cases.values(), now - 90 * DAY, now)
    assert 0 < len(all_requests) == len(expected) == len(store_cases) <= 1000
    opened = [_unix(r["requested_datetime"]) for r in all_requests]
    assert opened == sorted(opened, reverse=True)
    seen = set()
    for request in all_requests:
        assert tuple(request) == REQUEST_FIELDS
        key = parse_service_request_id(request["service_request_id"])
        assert key is not None and key not in seen
        seen.add(key)
        row = store_cases[key]
        assert request["service_request_id"] == f"{row.agency_id}:0x{bytes(row.case_id).hex()}"
        assert request["status"] == ("closed" if row.status in CLOSED else "open")
        assert parse_service_code(request["service_code"]) == (row.agency_id, row.commitment_id)
        assert request["service_name"] == latest[(row.agency_id, row.commitment_id)].name_en
        assert request["agency_responsible"] == agency_rows[row.agency_id].name_en
        assert _unix(request["requested_datetime"]) == row.opened_at
        assert request["requested_datetime"].endswith("+08:00")
        if row.due_at is None:
            assert request["expected_datetime"] is None
        else:
            assert _unix(request["expected_datetime"]) == row.due_at
        assert _unix(request["updated_datetime"]) >= max(row.opened_at, row.closed_at or 0)
        assert request["address"] == row.district
        assert request["service_notice"]


def test_status_notes_say_how_the_case_stands(all_requests: list[dict[str, Any]], store_cases: Any) -> None:
    notes = Counter()
    for request in all_requests:
        row = store_cases[parse_service_request_id(request["service_request_id"])]
        text = request["status_notes"]
        first = text.split(", ")[0]
        expected = {
            "open": "open", "on_hold": "on hold (the deadline is paused)", "rejected": "rejected",
            "withdrawn": "withdrawn",
            "fulfilled": {True: "fulfilled on time", False: "fulfilled late", None: "fulfilled"}[row.on_time],
        }[row.status]
        assert first == expected
        assert ("escalated" in text) == row.escalated
        notes[first] += 1
    # the demo city has every kind
    assert {"open", "fulfilled on time", "fulfilled late", "rejected"} <= set(notes)


def test_no_personal_data_and_no_coordinates(api: TestClient, all_requests: list[dict[str, Any]]) -> None:
    for request in all_requests:
        for name in EMPTY_FIELDS:
            assert request[name] is None, name
        assert request["address"] in demo.DISTRICTS
    root = _xml(api.get(f"{BASE}/requests.xml"), "service_requests")
    assert len(root) == len(all_requests)
    for element in root:
        for name in EMPTY_FIELDS:
            child = element.find(name)
            assert child is not None and child.text is None and len(child) == 0, name
        assert element.findtext("address") in demo.DISTRICTS


def test_requests_xml_matches_json(api: TestClient, all_requests: list[dict[str, Any]]) -> None:
    root = _xml(api.get(f"{BASE}/requests.xml"), "service_requests")
    assert [child.tag for child in root] == ["request"] * len(all_requests)
    for element, request in zip(root, all_requests, strict=True):
        assert tuple(child.tag for child in element) == REQUEST_FIELDS
        for name, value in request.items():
            assert element.findtext(name) == ("" if value is None else value)


def test_single_request_finds_the_same_case(api: TestClient, all_requests: list[dict[str, Any]],
                                            store_cases: Any) -> None:
    # one request of each status and note, so every rendering path is looked up once
    samples = {r["status_notes"]: r for r in all_requests}.values()
    for request in samples:
        agency_id, case_id = parse_service_request_id(request["service_request_id"])
        assert (agency_id, case_id) in store_cases
        assert _json(api.get(f"{BASE}/requests/{request['service_request_id']}.json")) == [request]
        root = _xml(api.get(f"{BASE}/requests/{request['service_request_id']}.xml"), "service_requests")
        [element] = root
        assert element.tag == "request" and element.findtext("service_request_id") == request["service_request_id"]
        # the id's hex is case-insensitive and its 0x optional: still the same case
        loose = f"{agency_id}:{case_id.hex().upper()}"
        assert _json(api.get(f"{BASE}/requests/{loose}.json")) == [request]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_single_request_not_found(api: TestClient, fmt: str) -> None:
    unknown_case = f"DEMO-ROADS:0x{'ab' * 32}"
    unknown_agency = f"NOBODY:0x{'ab' * 32}"
    for text in (unknown_case, unknown_agency, "DEMO-ROADS:0x1234", "no-colon", "DEMO-ROADS:" + "zz" * 32):
        _assert_error(api.get(f"{BASE}/requests/{text}.{fmt}"), 404, fmt)


def test_request_ids_and_service_codes_round_trip() -> None:
    case_id = bytes(range(32))
    assert service_request_id_of("DEMO-ROADS", case_id) == "DEMO-ROADS:0x" + case_id.hex()
    assert parse_service_request_id("DEMO-ROADS:0X" + case_id.hex().upper()) == ("DEMO-ROADS", case_id)
    assert service_code_of("DEMO-ROADS", "STREETLIGHT-48H") == "DEMO-ROADS.STREETLIGHT-48H"
    assert service_code_of("A.B", "C,D:E/F%") == "A%2EB.C%2CD%3AE%2FF%25"
    for bad in ("A.B.C", "A", ".B", "A.", "A%2.B", "A%41.B", "A,B.C"):
        assert parse_service_code(bad) is None, bad


_CODE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=32)


@given(agency=_CODE, commitment=_CODE, case_id=st.binary(min_size=32, max_size=32))
@settings(max_examples=200, deadline=None)
def test_mapping_is_reversible_for_any_code(agency: str, commitment: str, case_id: bytes) -> None:
    code = service_code_of(agency, commitment)
    assert parse_service_code(code) == (agency, commitment)
    assert "," not in code and "/" not in code and code.count(".") == 1
    request_id = service_request_id_of(agency, case_id)
    assert parse_service_request_id(request_id) == (agency, case_id)
    assert "," not in request_id and "/" not in request_id


# --- requests: filters ------------------------------------------------------------------------------------------------


def _ids(response: httpx.Response) -> list[str]:
    return [r["service_request_id"] for r in _json(response)]


def test_filter_by_service_code(api: TestClient, store_cases: Any) -> None:
    by_commitment = Counter((r.agency_id, r.commitment_id) for r in store_cases.values())
    (first, n_first), (second, n_second) = by_commitment.most_common(2)
    one = service_code_of(*first)
    body = _json(api.get(f"{BASE}/requests.json", params={"service_code": one}))
    assert len(body) == n_first and {r["service_code"] for r in body} == {one}
    two = f"{one},{service_code_of(*second)}"
    assert len(_ids(api.get(f"{BASE}/requests.json", params={"service_code": two}))) == n_first + n_second
    repeated = api.get(f"{BASE}/requests.json", params=[("service_code", one), ("service_code", two.split(",")[1])])
    assert len(_ids(repeated)) == n_first + n_second
    assert _ids(api.get(f"{BASE}/requests.json", params={"service_code": "NO.SUCH"})) == []
    root = _xml(api.get(f"{BASE}/requests.xml", params={"service_code": one}), "service_requests")
    assert len(root) == n_first


def test_filter_by_status(api: TestClient, store_cases: Any) -> None:
    closed = sum(r.status in CLOSED for r in store_cases.values())
    opened = len(store_cases) - closed
    assert closed and opened
    assert len(_ids(api.get(f"{BASE}/requests.json", params={"status": "closed"}))) == closed
    assert len(_ids(api.get(f"{BASE}/requests.json", params={"status": "open"}))) == opened
    assert len(_ids(api.get(f"{BASE}/requests.json", params={"status": "open,closed"}))) == len(store_cases)
    body = _json(api.get(f"{BASE}/requests.json", params={"status": "OPEN"}))
    assert {r["status"] for r in body} == {"open"}
    root = _xml(api.get(f"{BASE}/requests.xml", params={"status": "closed"}), "service_requests")
    assert len(root) == closed and {e.findtext("status") for e in root} == {"closed"}
    for fmt in ("json", "xml"):
        assert "status" in _assert_error(api.get(f"{BASE}/requests.{fmt}", params={"status": "pending"}), 400, fmt)


def test_filter_by_dates(api: TestClient, store_cases: Any, indexed_city: IndexedCity) -> None:
    rows = list(store_cases.values())
    middle = sorted(r.opened_at for r in rows)[len(rows) // 2]
    start, end = middle - 3 * DAY, middle + 2 * DAY
    params = {"start_date": format_time(start), "end_date": format_time(end)}
    expected = _in_window(rows, start, end)
    assert 0 < len(expected) < len(rows)
    assert len(_ids(api.get(f"{BASE}/requests.json", params=params))) == len(expected)
    # the same instants written in UTC
    west = timezone(timedelta(hours=-5))
    other = {"start_date": datetime.fromtimestamp(start, west).isoformat(),
             "end_date": datetime.fromtimestamp(end, west).isoformat()}
    assert len(_ids(api.get(f"{BASE}/requests.json", params=other))) == len(expected)
    z = {"start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
         "end_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))}
    assert len(_ids(api.get(f"{BASE}/requests.json", params=z))) == len(expected)
    # the boundary is inclusive at both ends
    exact = rows[0].opened_at
    both = {"start_date": format_time(exact), "end_date": format_time(exact)}
    assert len(_ids(api.get(f"{BASE}/requests.json", params=both))) == sum(r.opened_at == exact for r in rows)
    # a date alone is a whole local day
    day = (format_time(middle) or "")[:10]
    day_start = parse_time(day)
    in_day = _in_window(rows, day_start, day_start + DAY - 1)
    body = _json(api.get(f"{BASE}/requests.json", params={"start_date": day, "end_date": day}))
    assert len(body) == len(in_day) > 0
    assert all(r["requested_datetime"].startswith(day) for r in body)
    # one date alone: 90 days from it (or to it)
    assert len(_ids(api.get(f"{BASE}/requests.json", params={"start_date": format_time(middle)}))) == len(
        _in_window(rows, middle, middle + 90 * DAY))
    assert len(_ids(api.get(f"{BASE}/requests.json", params={"end_date": format_time(middle)}))) == len(
        _in_window(rows, middle - 90 * DAY, middle))
    # nothing before the city existed
    assert _ids(api.get(f"{BASE}/requests.json", params={"end_date": format_time(indexed_city.city.start - DAY)})) == []
    xml = _xml(api.get(f"{BASE}/requests.xml", params=params), "service_requests")
    assert len(xml) == len(expected)


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "yesterday"},
        {"start_date": "2026-11-20T10:00:00"},  # a time without a zone
        {"end_date": "2026-13-01"},
        {"end_date": "2026-02-30T00:00:00Z"},
        {"start_date": "2026-11-20T25:00:00+08:00"},
        {"start_date": "20261120"},
        {"start_date": "2026-01-01", "end_date": "2026-06-01"},  # more than 90 days
        {"start_date": "2026-06-01", "end_date": "2026-05-01"},  # end before start
    ],
)
def test_bad_dates_are_400(api: TestClient, fmt: str, params: dict[str, str]) -> None:
    _assert_error(api.get(f"{BASE}/requests.{fmt}", params=params), 400, fmt)


def test_filter_by_ids_overrides_the_others(api: TestClient, all_requests: list[dict[str, Any]]) -> None:
    chosen = [all_requests[5], all_requests[0], all_requests[-1]]
    ids = [r["service_request_id"] for r in chosen]
    unknown = f"DEMO-ROADS:0x{'cd' * 32}"
    params = {"service_request_id": ",".join([ids[0], unknown, ids[1], ids[2], ids[0]]),
              # ignored: the ids override every other filter
              "status": "closed" if chosen[0]["status"] == "open" else "open", "start_date": "2001-01-01"}
    assert _json(api.get(f"{BASE}/requests.json", params=params)) == chosen
    root = _xml(api.get(f"{BASE}/requests.xml", params=params), "service_requests")
    assert [e.findtext("service_request_id") for e in root] == ids
    assert _json(api.get(f"{BASE}/requests.json", params={"service_request_id": unknown})) == []
    for fmt in ("json", "xml"):
        _assert_error(api.get(f"{BASE}/requests.{fmt}", params={"service_request_id": f"{ids[0]},nonsense"}), 400,
                      fmt)


def test_many_ids_at_once(api: TestClient, all_requests: list[dict[str, Any]]) -> None:
    ids = [r["service_request_id"] for r in all_requests]
    body = _json(api.get(f"{BASE}/requests.json", params=[("service_request_id", i) for i in ids]))
    assert body == all_requests


def test_paging(api: TestClient, all_requests: list[dict[str, Any]]) -> None:
    size = 37
    pages = []
    for number in range(1, len(all_requests) // size + 3):
        pages.extend(_json(api.get(f"{BASE}/requests.json", params={"page": number, "page_size": size})))
    assert pages == all_requests
    for fmt in ("json", "xml"):
        for params in ({"page_size": 0}, {"page_size": 1001}, {"page_size": "ten"}, {"page": 0}, {"page": -1}):
            _assert_error(api.get(f"{BASE}/requests.{fmt}", params=params), 400, fmt)


def test_jurisdiction(api: TestClient, all_requests: list[dict[str, Any]]) -> None:
    params = {"jurisdiction_id": demo.JURISDICTION}
    assert _json(api.get(f"{BASE}/requests.json", params=params)) == all_requests
    assert len(_json(api.get(f"{BASE}/services.json", params=params))) == sum(len(a.services) for a in demo.AGENCIES)
    for path in ("services", "requests", "services/DEMO-ROADS.STREETLIGHT-48H",
                 f"requests/{all_requests[0]['service_request_id']}"):
        for fmt in ("json", "xml"):
            _assert_error(api.get(f"{BASE}/{path}.{fmt}", params={"jurisdiction_id": "ELSEWHERE"}), 404, fmt)


def test_unknown_parameters_such_as_api_key_are_ignored(api: TestClient, all_requests: list[dict[str, Any]]) -> None:
    assert _json(api.get(f"{BASE}/requests.json", params={"api_key": "x", "extensions": "true"})) == all_requests


# --- methods ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_creating_requests_needs_an_api_key_and_other_methods_are_405(api: TestClient, fmt: str) -> None:
    # filing itself is tests/api/test_open311_post.py's; this deployment gave no app a key
    response = api.post(f"{BASE}/requests.{fmt}", data={"service_code": "DEMO-ROADS.STREETLIGHT-48H"})
    assert "API key" in _assert_error(response, 403, fmt)
    response = api.put(f"{BASE}/services.{fmt}")
    _assert_error(response, 405, fmt)
    assert response.headers["allow"] == "GET"
    response = api.delete(f"{BASE}/requests.{fmt}")
    _assert_error(response, 405, fmt)
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("path", ["/open311/v2/services.csv", "/open311/v2/", "/open311/v3/services.json",
                                  "/open311/v2/requests/a/b.xml"])
def test_unknown_paths_are_open311_errors(api: TestClient, path: str) -> None:
    _assert_error(api.get(path), 404, "xml" if path.endswith(".xml") else "json")


# --- formats ----------------------------------------------------------------------------------------------------------


def test_times_parse_and_format() -> None:
    assert format_time(0) == "1970-01-01T08:00:00+08:00"
    assert format_time(2**64 - 1) is None
    assert parse_time("1970-01-01T08:00:00+08:00") == 0 == parse_time("1970-01-01T00:00:00Z")
    assert parse_time("1970-01-01T00:00Z") == 0
    assert parse_time("1970-01-01T00:00:00.5Z") == 1 and parse_time("1970-01-01T00:00:00.5Z", end=True) == 0
    assert parse_time("1970-01-02") == DAY - 8 * 3600
    assert parse_time("1970-01-02", end=True) == 2 * DAY - 8 * 3600 - 1
    assert parse_time("1970-02", end=True) == parse_time("1970-03-01") - 1
    assert parse_time("1970", end=True) == parse_time("1971-01-01") - 1
    for bad in ("", "1970-01-01T00:00:00", "1970-01-01 00:00:00Z", "1970-1-1", "9999", "1970-01-01T00:00:00+24:00"):
        with pytest.raises(InvalidDateTime):
            parse_time(bad, end=True)


def test_xml_survives_any_name() -> None:
    # names on chain are free text: characters XML 1.0 cannot hold must not break the document
    body = to_xml("services", [{"service_name": "a\x00b\x01c\ufffe <&>\"'", "metadata": True, "group": None}])
    root = ElementTree.fromstring(body)
    service = root.find("service")
    assert service is not None
    assert service.findtext("service_name") == "a\ufffdb\ufffdc\ufffd <&>\"'"
    assert service.findtext("metadata") == "true" and service.findtext("group") == ""


# --- schemathesis -----------------------------------------------------------------------------------------------------


def test_open311_json_conforms_to_its_schema(api: TestClient) -> None:
    """Schemathesis over the JSON operations (bounded: 25 generated cases each). Its lazy pytest loader
    (``schemathesis.pytest.from_fixture``) reads a node attribute pytest 9 no longer has, so the operations' Hypothesis
    strategies are driven here directly."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app).include(path_regex=r"^/open311/.*\.json$")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7  # discovery, services, a definition, requests, a request, POST requests, tokens

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            # A request list's filters have rules no schema states (real calendar dates, a span of at most 90 days,
            # ids of the right shape): a schema-valid value may rightly get a 400 there.
            excluded = [positive_data_acceptance] if case.operation.path == f"{BASE}/requests.json" else []
            response = case.call_and_validate(excluded_checks=excluded)
            if response.status_code >= 400:
                assert response.json()[0]["code"] == response.status_code

        check()


# --- deep pages -------------------------------------------------------------------------------------------------------


def test_a_page_past_the_paging_depth_is_a_400_that_says_to_narrow_the_dates(
    api: TestClient, all_requests: list[dict[str, Any]]
) -> None:
    """OFFSET makes the database step over every row before a page: paging stops at the first 10,000 results
    (page × page_size), and a deeper page is refused before the requests are queried, in the route's own error
    format."""
    assert MAX_PAGED_RESULTS == 10_000
    for fmt in ("json", "xml"):
        for page, size in ((11, 1000), (401, 25), (10_001, 1), (10**9, 1000)):
            description = _assert_error(
                api.get(f"{BASE}/requests.{fmt}", params={"page": page, "page_size": size}), 400, fmt)
            assert "start_date" in description and "end_date" in description and "10000" in description
    # as deep as it reaches: empty pages past the city's requests, not errors
    assert _json(api.get(f"{BASE}/requests.json", params={"page": 10, "page_size": 1000})) == []
    assert _json(api.get(f"{BASE}/requests.json", params={"page": 400, "page_size": 25})) == []
    deepest = api.get(f"{BASE}/requests.xml", params={"page": 10_000, "page_size": 1})
    assert list(_xml(deepest, "service_requests")) == []
    # page 1 is always served; ids override every other parameter, the page included
    assert _json(api.get(f"{BASE}/requests.json", params={"page_size": 1000})) == all_requests
    first = all_requests[0]["service_request_id"]
    assert _json(api.get(f"{BASE}/requests.json", params={"service_request_id": first, "page": 10**9})) == [
        all_requests[0]]


# --- language negotiation under attack --------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [" " * 200_000, "en" + " " * 200_000 + "!", "a-" * 100_000, "," * 200_000],
                         ids=["spaces", "tag-spaces-junk", "a-", "commas"])
def test_a_200_kb_accept_language_is_answered_at_once(api: TestClient, header: str) -> None:
    """Accept-Language is read in linear time and only its first 512 characters (``api.http.negotiate_language``):
    a header that made a backtracking pattern hold the interpreter for seconds ("en", spaces, then anything that is
    not a weight: about a minute at this size) is answered like any other."""
    started = time.monotonic()
    response = api.get(f"{BASE}/services.json", headers={"Accept-Language": header})
    assert time.monotonic() - started < 1
    assert response.status_code == 200 and response.headers["content-language"] == "en"


def test_the_header_still_negotiates_by_weight(api: TestClient) -> None:
    for header, language in (("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("en-US,zh;q=0.5", "en"),
                             ("en;q=0.5, zh", "zh-CN"), ("zh;q=0, en;q=0.1", "en"), ("en;q=0, zh;q=0.2", "zh-CN"),
                             ("zh;q=0", "en")):
        response = api.get(f"{BASE}/services.json", headers={"Accept-Language": header})
        assert response.status_code == 200 and response.headers["content-language"] == language, header


def test_a_long_lang_is_refused_without_repeating_it(api: TestClient) -> None:
    description = _assert_error(api.get(f"{BASE}/services.json", params={"lang": "x" * 5000}), 400)
    assert description == f"lang must be en or zh, not {'x' * 20!r}"
