"""The Open311 check: the honest API's GeoReport v2 documents pass with zero findings; an operator lying in them — in
JSON, in XML, or both — is caught. Both sides word the documents through ``ledger.open311``; the honest run shows the
auditor's documents equal the API's answers."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi import FastAPI, Request, Response

from ledger.audit import expected_open311 as want
from ledger.audit.checks.open311 import xml_document
from tests.support.honest import HonestLedger, failed, findings
from tests.support.lying import all_closed_json, all_closed_xml, lying_open311


def open311_findings(report: Any) -> list[Any]:
    return findings(report, "open311")


@pytest.mark.slow
def test_honest_open311_has_no_findings(honest: HonestLedger) -> None:
    report = honest.audit(wrap=lambda app: None)
    result = report.check("open311")
    assert result.status.value == "pass" and not result.findings and not result.warnings
    assert result.counts["services_compared"] > 0 and result.counts["requests_compared"] > 0
    assert result.counts["request_lists_compared"] == 16 and result.counts["request_list_items_compared"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("formats", ["json", "xml", "both"])
def test_operator_reporting_every_open_request_closed_is_caught(honest: HonestLedger, formats: str) -> None:
    wrap = lying_open311(
        "/open311/v2/requests",
        json_change=all_closed_json if formats in ("json", "both") else None,
        xml_change=all_closed_xml if formats in ("xml", "both") else None,
    )
    report = honest.audit(wrap=wrap)
    found = [f for f in open311_findings(report) if f.field == "status"]
    assert found and all(f.expected in ("open", None) and f.actual == "closed" for f in found)
    caught_in = {fmt for fmt in ("JSON", "XML") if any(f"({fmt})" in f.message for f in found)}
    assert caught_in == {"json": {"JSON"}, "xml": {"XML"}, "both": {"JSON", "XML"}}[formats]
    assert all(f.seq is not None and f.tx_hash for f in found)  # each points at the case's last entry
    assert failed(report) == {"open311"}


@pytest.mark.slow
def test_operator_serving_a_wrong_deadline_in_a_service_definition_is_caught(honest: HonestLedger) -> None:
    def longer(body: Any) -> Any:
        body["attributes"][0]["description"] = "Due within 72 calendar hours of opening (time on hold is not counted)"
        return body

    report = honest.audit(wrap=lying_open311("/open311/v2/services/DEMO-ROADS.STREETLIGHT-48H.json",
                                             json_change=longer))
    found = open311_findings(report)
    assert [f.field for f in found] == ["attributes[0].description"]
    assert "48 calendar hours" in found[0].expected and "72" in found[0].actual


@pytest.mark.slow
def test_operator_hiding_open_requests_from_status_filtered_lists_is_caught(honest: HonestLedger) -> None:
    def no_open(body: Any, request: Request) -> Any:
        return [] if "open" in request.query_params.get("status", "") else body

    def wrap(app: FastAPI) -> None:
        @app.middleware("http")
        async def lie(request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            if request.url.path != "/open311/v2/requests.json" or response.status_code != 200:
                return response
            body = b"".join([chunk async for chunk in response.body_iterator])
            return Response(json.dumps(no_open(json.loads(body), request)), media_type="application/json")

    # the drawn filters differ by seed: this one draws status filters with open cases in their windows
    report = honest.audit(wrap=wrap, seed=7)
    lacking = [f for f in open311_findings(report) if "lacks" in f.message]
    assert lacking and all("(JSON)" in f.message for f in lacking)


@pytest.mark.slow
def test_operator_serving_broken_xml_is_caught(honest: HonestLedger) -> None:
    def wrap(app: FastAPI) -> None:
        @app.middleware("http")
        async def lie(request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            if request.url.path == "/open311/v2/discovery.xml":
                return Response(b"<discovery><changeset>", media_type="application/xml")
            return response

    report = honest.audit(wrap=wrap)
    found = open311_findings(report)
    assert len(found) == 1 and "not well-formed XML" in found[0].message


def test_xml_documents_read_back_as_their_json() -> None:
    doc = [{"service_request_id": "A:0x01", "lat": None, "status": "open", "n": 3, "ok": False}]
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(_xml("service_requests", doc))
    assert xml_document(body) == want.as_xml(doc) == [
        {"service_request_id": "A:0x01", "lat": None, "status": "open", "n": "3", "ok": "false"}
    ]


def _xml(name: str, value: Any) -> ElementTree.Element:
    element = ElementTree.Element(name)
    if isinstance(value, list):
        element.extend(_xml("request", item) for item in value)
    elif isinstance(value, dict):
        element.extend(_xml(k, v) for k, v in value.items())
    elif value is not None:
        element.text = "true" if value is True else "false" if value is False else str(value)
    return element

