"""The receipt-view check: what a citizen sees by their receipt key (``GET /api/v1/receipts/{address}``) passes with
zero findings on the honest API; an operator showing a citizen their case otherwise than the chain has it — open when
fulfilled, not rated when rated, another case — or a case for a key the chain never issued, is caught."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from eth_utils import to_checksum_address
from fastapi import FastAPI, Request, Response

from ledger import receipts
from tests.support.honest import HonestLedger, failed, findings, receipt_code
from tests.support.lying import lying

pytestmark = pytest.mark.slow


def address_of(name: str) -> str:
    return to_checksum_address(receipts.address(receipt_code(name)))


def path_of(name: str) -> str:
    return f"/api/v1/receipts/{address_of(name)}"


def honest_view(h: HonestLedger, name: str) -> dict[str, Any]:
    with h.api() as client:
        response = client.get(path_of(name))
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def caught(h: HonestLedger, name: str, change: Callable[[Any, Request], Any]) -> list[Any]:
    """The receipt-view findings when the view of `name`'s receipt is changed by `change`; the other API checks
    are unaffected."""
    report = h.audit(wrap=lying(path_of(name), change))
    assert failed(report) == {"receipt_views"}
    found = findings(report, "receipt_views")
    assert all(f.seq == h.seqs[f"{name} receipt"] for f in found)  # pointing at the receipt's entry
    return found


def test_honest_receipt_views_have_no_findings(honest: HonestLedger) -> None:
    report = honest.audit(wrap=lambda app: None)
    result = report.check("receipt_views")
    assert result.status.value == "pass" and not result.findings and not result.warnings
    assert result.counts["receipt_views_compared"] > 4 and result.counts["never_issued_asked"] == 3


def test_operator_showing_a_fulfilled_case_as_open_is_caught(honest: HonestLedger) -> None:
    def still_open(body: Any, request: Request) -> Any:
        body["status"] = "open"
        body["feedback"].update(status="open", closed_at=None, can_rate=False, rate_refusal="not_closed",
                                can_dispute=False, dispute_refusal="not_closed", dispute_deadline=None)
        return body

    found = caught(honest, "fb-rejected", still_open)
    assert len(found) == 1 and found[0].field == "status"
    assert found[0].expected == "fulfilled" and found[0].actual == "open"
    assert "feedback.status" in found[0].message


def test_operator_showing_a_rated_case_as_not_rated_is_caught(honest: HonestLedger) -> None:
    def not_rated(body: Any, request: Request) -> Any:
        body["rating"] = body["rated_at"] = None
        body["feedback"].update(rated=False, rating=None, can_rate=True, rate_refusal=None)
        return body

    found = caught(honest, "fb-rated", not_rated)
    assert len(found) == 1 and found[0].field == "rating" and found[0].expected == 4 and found[0].actual is None
    assert "feedback.rated: API 'False', chain True" in found[0].message


def test_operator_showing_another_case_for_a_receipt_key_is_caught(honest: HonestLedger) -> None:
    other = honest_view(honest, "fb-open")
    mine = honest_view(honest, "fb-rated")
    found = caught(honest, "fb-rated", lambda body, request: {**other, "receipt": mine["receipt"]})
    assert len(found) == 1 and found[0].field == "case_id"
    assert found[0].expected == mine["case_id"] and found[0].actual == other["case_id"]


def test_operator_showing_a_case_for_a_key_never_issued_is_caught(honest: HonestLedger) -> None:
    some_view = honest_view(honest, "fb-open")

    def wrap(app: FastAPI) -> None:
        @app.middleware("http")
        async def lie(request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            if request.url.path.startswith("/api/v1/receipts/") and response.status_code == 404:
                return Response(json.dumps(some_view), media_type="application/json")
            return response

    report = honest.audit(wrap=wrap)
    found = findings(report, "receipt_views")
    assert len(found) == 3 and all("never issued" in f.message and f.actual == "200" for f in found)
    assert failed(report) == {"receipt_views"}
