"""The public read API (/api/v1): every route's answers and refusals, proofs checked against the chain, metrics equal
to ledger.metrics on the same store, pagination, caching, rate limiting and CORS.

Most tests read the demo city (``indexed_city``); those about commitment versions, retirements, revoked keys,
corrections and data not yet final read a second ledger with every entry kind (``tests/support/everything.py``), indexed
into SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.ratelimit import TokenBuckets
from api.read.cases import CASE_STATE_FIELDS, RESPONSE_FIELDS
from api.schemas.cases import CaseView
from api.settings import ApiSettings
from ledger.dev import demo
from ledger.encoding import fold, keccak
from ledger.metrics import MetricsFilter, agency_scorecards, commitment_scorecards, compute_metrics
from ledger.records import CaseAction, CaseEvent, short_code
from ledger.store.schema import case_events, cases, commitments, entries
from tests.support import everything as ev
from tests.support.city import IndexedCity, count
from tests.support.everything import Everything

V1 = "/api/v1"
DAY = 86_400


# --- helpers ----------------------------------------------------------------------------------------------------------


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def a_case(store: Any, status: str) -> tuple[str, bytes]:
    with store.connect() as conn:
        row = conn.execute(
            select(cases.c.agency_id, cases.c.case_id).where(cases.c.status == status).order_by(cases.c.opened_seq)
        ).first()
    assert row is not None
    return row.agency_id, bytes(row.case_id)


def agency_code(everything: Everything) -> str:
    return everything.chain.world.agency_id.rstrip(b"\0").decode()


# --- chain facts ------------------------------------------------------------------------------------------------------


def test_chain_facts_match_the_contract(client: TestClient, indexed_city: IndexedCity) -> None:
    response = client.get(f"{V1}/chain")
    assert response.status_code == 200
    facts = response.json()
    ledger = indexed_city.ledger
    assert facts["chain_id"] == indexed_city.chain.chain_id
    assert facts["contract_address"] == ledger.address
    assert facts["entry_count"] == ledger.entry_count(facts["last_indexed_block"])
    assert facts["running_hash"] == "0x" + ledger.running_hash(facts["last_indexed_block"]).hex()
    assert facts["finalized_block"] <= facts["last_indexed_block"]
    assert facts["halted_reason"] is None
    node = facts["node"]
    assert node["configured"] and node["reachable"] and node["error"] is None
    assert node["chain_id"] == indexed_city.chain.chain_id
    assert node["head_block"] >= facts["last_indexed_block"]
    assert node["behind_blocks"] == node["head_block"] - facts["last_indexed_block"]
    assert response.headers["cache-control"] == "public, max-age=5"
    assert response.headers["etag"]


def test_chain_facts_when_the_node_is_down_or_absent(api_settings: ApiSettings) -> None:
    down = dataclasses.replace(api_settings, rpc_url="http://127.0.0.1:9/rpc?key=SECRET")
    with TestClient(create_app(down)) as client:
        started = time.monotonic()
        response = client.get(f"{V1}/chain")
        assert time.monotonic() - started < 5
    assert response.status_code == 200
    facts = response.json()
    assert facts["entry_count"] > 0  # the index still answers
    assert facts["node"]["configured"] and facts["node"]["reachable"] is False
    assert facts["node"]["head_block"] is None and "unreachable" in facts["node"]["error"]
    assert "SECRET" not in response.text and "127.0.0.1:9" not in response.text
    with TestClient(create_app(dataclasses.replace(api_settings, rpc_url=None))) as client:
        node = client.get(f"{V1}/chain").json()["node"]
    assert node == {
        "configured": False, "reachable": None, "chain_id": None, "head_block": None, "behind_blocks": None,
        "error": None,
    }


def test_chain_facts_of_an_empty_index(tmp_path: Path) -> None:
    settings = ApiSettings(store_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}", rpc_url=None)
    with TestClient(create_app(settings)) as client:
        facts = client.get(f"{V1}/chain").json()
        assert client.get(f"{V1}/entries").json() == {"items": [], "next": None}
        assert client.get(f"{V1}/agencies").json() == {"items": [], "next": None}
    assert facts["entry_count"] == 0 and facts["last_indexed_block"] == -1 and facts["finalized_block"] == -1
    assert facts["running_hash"] == "0x" + "00" * 24


# --- agencies ---------------------------------------------------------------------------------------------------------


def test_agencies_list_every_agency_with_its_key_and_registration_proof(
    client: TestClient, indexed_city: IndexedCity
) -> None:
    body = client.get(f"{V1}/agencies").json()
    assert body["next"] is None
    agencies = {a["agency_id"]: a for a in body["items"]}
    assert list(agencies) == sorted(spec.agency_id for spec in demo.AGENCIES)
    for spec in demo.AGENCIES:
        agency = agencies[spec.agency_id]
        assert (agency["name_zh"], agency["name_en"]) == (spec.name_zh, spec.name_en)
        assert agency["jurisdiction"] == demo.JURISDICTION
        assert agency["signers"] == [indexed_city.signers[spec.agency_id].address]
        assert agency["final"] is True
        entry = client.get(f"{V1}/entries/{agency['registration']['seq']}").json()
        assert entry["kind"] == "agency_registered" and entry["agency_id"] == spec.agency_id
        assert entry["proof"] == agency["registration"]


def test_agencies_paginate(client: TestClient) -> None:
    seen: list[str] = []
    url: str | None = f"{V1}/agencies?limit=2"
    while url is not None:
        response = client.get(url)
        page = response.json()
        seen += [a["agency_id"] for a in page["items"]]
        if page["next"] is None:
            assert "link" not in response.headers
            url = None
        else:
            assert len(page["items"]) == 2
            link = response.headers["link"]
            assert link == f'<{V1}/agencies?after={page["next"]}&limit=2>; rel="next"'
            url = link[1 : link.index(">")]
    assert seen == sorted(spec.agency_id for spec in demo.AGENCIES)


def test_an_agency_with_its_key_history(client: TestClient, indexed_city: IndexedCity) -> None:
    agency = client.get(f"{V1}/agencies/DEMO-WATER").json()
    signer = indexed_city.signers["DEMO-WATER"].address
    assert agency["signers"] == [signer]
    [change] = agency["key_history"]
    assert change["signer"] == signer and change["action"] == "authorized" and change["final"]
    ev.assert_proof_on_chain(indexed_city.chain, indexed_city.ledger.address, change["proof"], "DEMO-WATER")
    ev.assert_proof_on_chain(indexed_city.chain, indexed_city.ledger.address, agency["registration"], "DEMO-WATER")


def test_an_unknown_or_malformed_agency(client: TestClient) -> None:
    assert error_of(client.get(f"{V1}/agencies/DEMO-PARKS"), 404) == {
        "code": "not_found", "message": "no agency 'DEMO-PARKS'"
    }
    error = error_of(client.get(f"{V1}/agencies/DEMO PARKS"), 422)
    assert error["code"] == "invalid_request" and error["detail"][0]["loc"] == ["path", "agency_id"]
    assert error_of(client.get(f"{V1}/agencies/{'X' * 67}"), 422)["detail"][0]["loc"] == ["path", "agency_id"]


def test_revoked_keys_are_in_the_history_and_not_in_the_signers(everything: Everything) -> None:
    agency_id = agency_code(everything)
    agency = everything.client.get(f"{V1}/agencies/{agency_id}").json()
    history = agency["key_history"]
    assert [c["action"] for c in history] == ["authorized", "authorized", "revoked"]
    revoked = history[2]
    assert revoked["proof"]["seq"] == everything.chain.scenario.seqs["revoked"]
    assert history[1]["signer"] == revoked["signer"]
    assert agency["signers"] == [everything.chain.world.signer.address]
    contract = everything.settings.contract_address
    for change in history:
        ev.assert_proof_on_chain(everything.chain.chain, contract, change["proof"], agency_id)


def test_an_agency_id_that_is_not_ascii_is_shown_as_hex(everything: Everything) -> None:
    odd = "0x" + keccak(b"odd agency").hex()
    agency = everything.client.get(f"{V1}/agencies/{odd}").json()
    assert agency["agency_id"] == odd and agency["name_en"] == "Odd 🏛"
    assert agency["name_zh"] == "零\ufffd字节"  # the NUL is replaced in the index; the chain has the exact bytes
    ids = [a["agency_id"] for a in everything.client.get(f"{V1}/agencies").json()["items"]]
    assert ids == sorted(ids) and odd in ids


# --- commitments ------------------------------------------------------------------------------------------------------


def test_commitments_list_the_current_version_of_each(client: TestClient, city_store: Any) -> None:
    body = client.get(f"{V1}/commitments").json()
    specs = {(a.agency_id, s.code): s for a in demo.AGENCIES for s in a.services}
    assert [(c["agency_id"], c["commitment_id"]) for c in body["items"]] == sorted(specs)
    for item in body["items"]:
        spec = specs[(item["agency_id"], item["commitment_id"])]
        assert item["name_en"] == spec.name_en and item["deadline"] == spec.deadline
        assert item["deadline_unit"] == ("calendar_hours" if spec.unit == 1 else "working_days")
        assert item["target_bps"] == spec.target_bps
        assert item["target_rate"] == f"{spec.target_bps / 10000:.4f}"
        assert item["version"] == 1 and item["version_count"] == 1
        assert item["retired"] is False and item["retirement"] is None and item["voided_by"] is None
    assert len(body["items"]) == count(city_store, commitments)
    roads = client.get(f"{V1}/commitments", params={"agency_id": "DEMO-ROADS"}).json()["items"]
    assert [c["commitment_id"] for c in roads] == ["POTHOLE-72H", "STREETLIGHT-48H"]


def test_commitments_paginate_with_an_opaque_cursor(client: TestClient) -> None:
    everything = [(c["agency_id"], c["commitment_id"]) for c in client.get(f"{V1}/commitments").json()["items"]]
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page = client.get(f"{V1}/commitments", params={"limit": 4, **({"after": after} if after else {})}).json()
        seen += [(c["agency_id"], c["commitment_id"]) for c in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == everything
    for forged in ("bm90IGEgY3Vyc29y", "AAAgQQ", "@@"):  # not a cursor; one holding NUL bytes; not base64url
        error = error_of(client.get(f"{V1}/commitments", params={"after": forged}), 422)
        assert "cursor" in error["message"] or error["detail"][0]["loc"] == ["query", "after"]
    assert error_of(client.get(f"{V1}/commitments", params={"agency_id": "DEMO-PARKS"}), 404)


def test_a_commitment_with_every_version(client: TestClient, indexed_city: IndexedCity) -> None:
    body = client.get(f"{V1}/commitments/DEMO-ROADS/STREETLIGHT-48H").json()
    assert body["current_version"] == 1 and body["retired"] is False
    [version] = body["versions"]
    assert version["name_zh"] == "路灯故障48小时内修复" and version["final"]
    ev.assert_proof_on_chain(indexed_city.chain, indexed_city.ledger.address, version["proof"], "DEMO-ROADS")
    one = client.get(f"{V1}/commitments/DEMO-ROADS/STREETLIGHT-48H/versions/1")
    assert one.status_code == 200
    assert one.json() == {k: v for k, v in version.items() if k != "voided_by"}
    assert one.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert error_of(client.get(f"{V1}/commitments/DEMO-ROADS/STREETLIGHT-49H"), 404)["code"] == "not_found"
    assert error_of(client.get(f"{V1}/commitments/DEMO-ROADS/STREETLIGHT-48H/versions/2"), 404)
    assert error_of(client.get(f"{V1}/commitments/DEMO-ROADS/STREETLIGHT-48H/versions/0"), 422)


def test_amended_and_retired_commitments(everything: Everything) -> None:
    agency_id = agency_code(everything)
    body = everything.client.get(f"{V1}/commitments/{agency_id}/STREETLIGHT-48H").json()
    assert [v["version"] for v in body["versions"]] == [1, 2]
    assert body["current_version"] == 2
    assert [v["deadline"] for v in body["versions"]] == [48, 24]
    assert body["versions"][1]["proof"]["seq"] == everything.chain.scenario.seqs["v2"]
    page = everything.client.get(f"{V1}/commitments", params={"agency_id": agency_id}).json()
    listed = {c["commitment_id"]: c for c in page["items"]}
    assert listed["STREETLIGHT-48H"]["version"] == 2 and listed["STREETLIGHT-48H"]["version_count"] == 2
    old = everything.client.get(f"{V1}/commitments/{agency_id}/OLD-SERVICE").json()
    assert old["retired"] is True
    assert old["retirement"]["proof"]["seq"] == everything.chain.scenario.seqs["retired"]
    assert old["retirement"]["reason_hash"] == "0x" + keccak(b"merged").hex()
    contract = everything.settings.contract_address
    ev.assert_proof_on_chain(everything.chain.chain, contract, old["retirement"]["proof"], agency_id)
    assert listed["OLD-SERVICE"]["retired"] is True and listed["OLD-SERVICE"]["retirement"] == old["retirement"]


# --- metrics and scorecards -------------------------------------------------------------------------------------------


def city_range(indexed_city: IndexedCity) -> tuple[int, int]:
    """A week in the middle of the demo city's three, at midnights UTC."""
    start = (indexed_city.city.start // DAY + 7) * DAY
    return start, start + 7 * DAY


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"agency_id": "DEMO-HOUSING"},
        {"agency_id": "DEMO-ROADS", "commitment_id": "STREETLIGHT-48H"},
        {"district": "EAST"},
        {"channel": "2"},
        {"agency_id": "DEMO-LICENSING", "channel": "counter", "district": "WEST"},
    ],
)
def test_metrics_equal_compute_metrics_on_the_same_store(
    client: TestClient, indexed_city: IndexedCity, city_store: Any, params: dict[str, str]
) -> None:
    start, end = city_range(indexed_city)
    as_of = end + 3 * DAY
    response = client.get(f"{V1}/metrics", params={**params, "from": start, "to": end, "as_of": as_of})
    assert response.status_code == 200, response.text
    body = response.json()
    channel = {"2": 2, "counter": 1}.get(params.get("channel", ""))
    flt = MetricsFilter(
        agency_id=params.get("agency_id"),
        commitment_id=params.get("commitment_id"),
        district=params.get("district"),
        channel=channel,
        start=start,
        end=end,
        as_of=as_of,
    )
    assert body["metrics"] == compute_metrics(city_store.engine, flt).to_dict()
    assert body["filter"] == {
        "agency_id": flt.agency_id, "commitment_id": flt.commitment_id, "from": start, "to": end,
        "district": flt.district, "channel": channel, "as_of": as_of,
    }
    if not params:
        assert body["metrics"]["cases_opened"] > 0 and body["metrics"]["on_time_rate"] is not None


def test_metrics_take_dates_times_with_zones_and_unix_seconds(client: TestClient, indexed_city: IndexedCity) -> None:
    start, end = city_range(indexed_city)
    day = datetime.fromtimestamp(start, UTC).date().isoformat()
    shanghai = datetime.fromtimestamp(start, UTC).astimezone(timezone(timedelta(hours=8)))
    forms = [day, f"{day}T00:00:00Z", shanghai.isoformat(), f"{day}T00:00:00.750+00:00", str(start)]
    answers = [client.get(f"{V1}/metrics", params={"from": form, "to": end, "as_of": end}).json() for form in forms]
    assert all(a["filter"]["from"] == start for a in answers), [a.get("filter") for a in answers]
    assert all(a == answers[0] for a in answers)


def test_metrics_default_as_of(client: TestClient, indexed_city: IndexedCity) -> None:
    start, end = city_range(indexed_city)
    assert client.get(f"{V1}/metrics", params={"from": start, "to": end}).json()["filter"]["as_of"] == end
    before = int(time.time())
    future = client.get(f"{V1}/metrics", params={"from": start, "to": before + 30 * DAY}).json()
    # never in the future (nothing is known there), and to the whole minute, as every time parameter is taken
    assert before - before % 60 <= future["filter"]["as_of"] <= int(time.time())
    assert future["filter"]["as_of"] % 60 == 0
    assert before - before % 60 <= client.get(f"{V1}/metrics").json()["filter"]["as_of"] <= int(time.time())


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"from": "yesterday"}, 422, "from: 'yesterday' is not a time"),
        ({"to": "2026-11-01T08:00"}, 422, "has no zone"),
        ({"as_of": "2026-13-01"}, 422, "as_of"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, 422, "from (1794268800) must be before to (1793491200)"),
        ({"from": "1969-12-31"}, 422, "from must be unix seconds"),
        ({"from": "9" * 19}, 422, "from must be unix seconds"),
        ({"commitment_id": "STREETLIGHT-48H"}, 422, "commitment_id needs agency_id"),
        ({"channel": "fax"}, 422, "channel: 'fax' is not a channel"),
        ({"channel": "256"}, 422, "channel"),
        ({"channel": "Hotline"}, 422, "channel"),
        ({"from": "1793491200\n"}, 422, "is not a time"),
        ({"from": " 1793491200"}, 422, "is not a time"),
        ({"district": "EAST SIDE"}, 422, "district"),
        ({"agency_id": "DEMO-PARKS"}, 404, "no agency 'DEMO-PARKS'"),
        ({"agency_id": "DEMO-ROADS", "commitment_id": "POTHOLE-1H"}, 404, "no commitment 'POTHOLE-1H'"),
    ],
)
def test_metrics_refuse_what_means_nothing(
    client: TestClient, params: dict[str, str], status: int, words: str
) -> None:
    error = error_of(client.get(f"{V1}/metrics", params=params), status)
    assert words in error["message"]
    assert error["code"] == ("not_found" if status == 404 else "invalid_request")


def test_scorecards_per_agency_and_per_commitment(
    client: TestClient, indexed_city: IndexedCity, city_store: Any
) -> None:
    start, end = city_range(indexed_city)
    params = {"from": start, "to": end, "as_of": end}
    flt = MetricsFilter(start=start, end=end, as_of=end)
    by_agency = client.get(f"{V1}/scorecards", params=params).json()
    assert by_agency["by"] == "agency"
    expected = agency_scorecards(city_store.engine, flt)
    assert [c["agency_id"] for c in by_agency["items"]] == list(expected)
    names = {a.agency_id: a.name_en for a in demo.AGENCIES}
    for card in by_agency["items"]:
        assert card["metrics"] == expected[card["agency_id"]].to_dict()
        assert card["agency_name_en"] == names[card["agency_id"]] and card["commitment_id"] is None
    by_commitment = client.get(f"{V1}/scorecards", params={**params, "by": "commitment", "channel": "hotline"}).json()
    expected_c = commitment_scorecards(city_store.engine, dataclasses.replace(flt, channel=2))
    assert [(c["agency_id"], c["commitment_id"]) for c in by_commitment["items"]] == list(expected_c)
    services = {(a.agency_id, s.code): s for a in demo.AGENCIES for s in a.services}
    for card in by_commitment["items"]:
        key = (card["agency_id"], card["commitment_id"])
        assert card["metrics"] == expected_c[key].to_dict()
        assert card["commitment_name_en"] == services[key].name_en
        assert card["target_rate"] == card["metrics"]["target_rate"] == f"{services[key].target_bps / 10000:.4f}"
        assert card["retired"] is False
    assert by_commitment["filter"]["channel"] == 2
    roads = client.get(f"{V1}/scorecards", params={**params, "by": "commitment", "agency_id": "DEMO-ROADS"}).json()
    assert {c["commitment_id"] for c in roads["items"]} == {"STREETLIGHT-48H", "POTHOLE-72H"}
    assert error_of(client.get(f"{V1}/scorecards", params={"by": "district"}), 422)["detail"][0]["loc"] == [
        "query", "by"
    ]


def test_trend_buckets_are_metrics_of_their_ranges(
    client: TestClient, indexed_city: IndexedCity, city_store: Any
) -> None:
    start, end = city_range(indexed_city)
    url = f"{V1}/commitments/DEMO-SANITATION/BIN-12H/trend"
    body = client.get(url, params={"from": start, "to": end - DAY // 2}).json()
    assert body["bucket"] == "day" and body["from"] == start and body["to"] == end - DAY // 2
    assert body["target_rate"] == "0.9500"
    buckets = body["buckets"]
    assert [b["start"] for b in buckets] == [start + i * DAY for i in range(7)]
    assert buckets[-1]["end"] == end - DAY // 2  # the last one is cut at `to`
    for bucket in buckets:
        flt = MetricsFilter(agency_id="DEMO-SANITATION", commitment_id="BIN-12H", start=bucket["start"],
                            end=bucket["end"], as_of=bucket["end"])
        assert bucket["metrics"] == compute_metrics(city_store.engine, flt).to_dict()
        assert bucket["on_time_rate"] == bucket["metrics"]["on_time_rate"]
    whole = client.get(f"{V1}/metrics", params={"agency_id": "DEMO-SANITATION", "commitment_id": "BIN-12H",
                                                "from": start, "to": end - DAY // 2}).json()["metrics"]
    for additive in ("fulfilled", "on_time", "on_time_eligible", "cases_opened", "cases_closed"):
        assert sum(b["metrics"][additive] for b in buckets) == whole[additive]
    assert whole["fulfilled"] > 0


def test_trend_defaults_to_calendar_days_and_iso_weeks(client: TestClient) -> None:
    url = f"{V1}/commitments/DEMO-ROADS/POTHOLE-72H/trend"
    asked = 1793500000  # 2026-11-01 02:26:40 UTC
    to = asked - asked % 60  # times are taken to the whole minute: 02:26
    days = client.get(url, params={"to": asked}).json()["buckets"]
    assert len(days) == 30 and all(b["start"] % DAY == 0 for b in days)
    assert days[-1]["start"] == to // DAY * DAY and days[-1]["end"] == to
    weeks = client.get(url, params={"to": asked, "bucket": "week"}).json()["buckets"]
    assert len(weeks) == 26
    assert all(datetime.fromtimestamp(b["start"], UTC).isoweekday() == 1 for b in weeks)
    assert all(b["start"] % DAY == 0 for b in weeks) and weeks[-1]["end"] == to
    now = client.get(url).json()
    assert abs(now["to"] - time.time()) < 60 and len(now["buckets"]) == 30


def test_trend_refusals(client: TestClient) -> None:
    url = f"{V1}/commitments/DEMO-ROADS/POTHOLE-72H/trend"
    assert "at most 400" in error_of(client.get(url, params={"from": "2020-01-01", "to": "2026-01-01"}), 422)["message"]
    assert error_of(client.get(url, params={"from": "2026-01-01", "to": "2026-01-01"}), 422)
    assert error_of(client.get(url, params={"bucket": "month"}), 422)
    assert error_of(client.get(f"{V1}/commitments/DEMO-ROADS/POTHOLE-1H/trend"), 404)
    assert error_of(client.get(f"{V1}/commitments/DEMO-PARKS/POTHOLE-72H/trend"), 404)
    assert client.get(url, params={"from": "2020-01-01", "to": "2026-01-01", "bucket": "week"}).status_code == 200


# --- cases ------------------------------------------------------------------------------------------------------------


def test_a_case_with_all_its_events_and_their_proofs(
    client: TestClient, indexed_city: IndexedCity, city_store: Any
) -> None:
    agency_id, case_id = a_case(city_store, "fulfilled")
    response = client.get(f"{V1}/cases/{agency_id}/0x{case_id.hex().upper()}")  # upper-case hex is the same id
    assert response.status_code == 200, response.text
    case = response.json()
    with city_store.connect() as conn:
        key = (cases.c.agency_id == agency_id, cases.c.case_id == case_id)
        row = conn.execute(select(cases).where(*key)).mappings().one()
        events = conn.execute(
            select(case_events)
            .where(case_events.c.agency_id == agency_id, case_events.c.case_id == case_id)
            .order_by(case_events.c.seq)
        ).mappings().all()
    assert case["case_id"] == "0x" + case_id.hex()
    for name in ("status", "commitment_id", "commitment_version", "district", "channel", "opened_at", "closed_at",
                 "due_at", "hold_seconds", "on_hold_since", "fulfil_seconds", "on_time", "escalated",
                 "invalid_transitions", *RESPONSE_FIELDS):
        assert case[name] == row[name], name
    # its response is its first acceptance (or the fulfilment itself), due by the end of the next working day
    first = next(e for e in case["events"] if e["action"] in ("accepted", "on_hold", "fulfilled", "rejected"))
    assert case["responded_at"] == first["occurred_at"] and case["response_due"] > case["opened_at"]
    assert case["overdue"] is False and case["commitment_name_en"]
    assert [e["seq"] for e in case["events"]] == [e["seq"] for e in events]
    assert case["events"][0]["action"] == "opened" and case["events"][-1]["action"] == "fulfilled"
    assert case["events"][0]["commitment_id"] == row["commitment_id"]
    assert case["events"][1]["commitment_id"] is None
    for event, stored in zip(case["events"], events, strict=True):
        assert event["occurred_at"] == stored["occurred_at"] and event["recorded_at"] == stored["block_time"]
        assert event["recording_latency_seconds"] == stored["block_time"] - stored["occurred_at"]
        assert event["final"] and event["voided_by"] is None
        ev.assert_proof_on_chain(indexed_city.chain, indexed_city.ledger.address, event["proof"], agency_id)


def test_an_open_case_says_whether_it_is_overdue(client: TestClient, city_store: Any) -> None:
    agency_id, case_id = a_case(city_store, "open")
    case = client.get(f"{V1}/cases/{agency_id}/0x{case_id.hex()}").json()
    assert case["status"] == "open" and case["closed_at"] is None
    assert case["overdue"] == (case["due_at"] is not None and case["due_at"] < time.time())


def test_every_field_of_a_case_view_but_its_key_and_events_is_of_its_state() -> None:
    """CASE_STATE_FIELDS names what a case without state shows as null (the receipt view too): every field of the
    view but the case's key, its events and its commitment's names (null then as well)."""
    assert set(CaseView.model_fields) == {"agency_id", "case_id", "events", "commitment_name_zh", "commitment_name_en",
                                          *CASE_STATE_FIELDS}
    assert set(RESPONSE_FIELDS) <= set(CASE_STATE_FIELDS)
    for name in RESPONSE_FIELDS:
        description = CaseView.model_fields[name].description
        assert description and ("working day" in description or "claimed time" in description), name


def test_unknown_and_malformed_cases(client: TestClient, city_store: Any) -> None:
    agency_id, case_id = a_case(city_store, "fulfilled")
    missing = error_of(client.get(f"{V1}/cases/{agency_id}/0x{'ab' * 32}"), 404)
    assert missing["message"] == f"no case 0x{'ab' * 32} of agency {agency_id!r}"
    other_agency = "DEMO-WATER" if agency_id != "DEMO-WATER" else "DEMO-ROADS"
    assert error_of(client.get(f"{V1}/cases/{other_agency}/0x{case_id.hex()}"), 404)  # ids are per agency
    for bad in ("0x12", case_id.hex(), f"0x{'g' * 64}", f"0x{case_id.hex()}00"):
        error = error_of(client.get(f"{V1}/cases/{agency_id}/{bad}"), 422)
        assert error["detail"][0]["loc"] == ["path", "case_id"]


def test_voided_events_stay_visible_and_a_correction_of_an_opening_takes_no_effect(everything: Everything) -> None:
    agency_id, seqs = agency_code(everything), everything.chain.scenario.seqs
    undone = everything.client.get(f"{V1}/cases/{agency_id}/0x{everything.chain.scenario.cases['undone'].hex()}").json()
    assert [e["action"] for e in undone["events"]] == ["opened", "fulfilled"]
    assert undone["events"][1]["voided_by"] == seqs["c applied"]
    assert undone["status"] == "open"  # folded without the voided fulfilment
    mistake_id = everything.chain.scenario.cases["mistake"].hex()
    mistake = everything.client.get(f"{V1}/cases/{agency_id}/0x{mistake_id}").json()
    # the agency's correction aimed at its Opened took no effect: the case stands, open (and overdue) since then
    [opened] = mistake["events"]
    assert opened["voided_by"] is None
    assert (mistake["status"], mistake["opened_at"], mistake["overdue"]) == ("open", opened["occurred_at"], True)


# --- the entry log ----------------------------------------------------------------------------------------------------


def walk(client: TestClient, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url: str | None = f"{V1}/entries?limit={limit}"
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        page = response.json()
        items += page["items"]
        if page["next"] is None:
            assert "link" not in response.headers
            url = None
        else:
            assert page["next"] == page["items"][-1]["seq"] and len(page["items"]) == limit
            link = response.headers["link"]
            assert link.endswith('>; rel="next"')
            url = link[1 : link.index(">")]
            assert url == f"{V1}/entries?after={page['next']}&limit={limit}"
    return items


def test_pagination_walks_the_whole_log_without_gap_or_duplicate(
    client: TestClient, indexed_city: IndexedCity, city_store: Any
) -> None:
    items = walk(client, 97)
    total = count(city_store, entries)
    assert [e["seq"] for e in items] == list(range(total))
    # the auditor's check: the running hash over the entry hashes is the contract's (a Merkle-anchored batch's entry
    # hash folded once for all its records, which show the head after it)
    head = b"\0" * 24
    for entry in items:
        assert ev.recomputed_entry_hash(entry) == entry["entry_hash"] == entry["proof"]["entry_hash"]
        batch = entry["proof"]["batch"]
        if batch is None:
            head = fold(head, bytes.fromhex(entry["entry_hash"][2:]))
        elif entry["seq"] == batch["seq"]:
            anchored = client.get(f"{V1}/batches/{batch['seq']}").json()
            head = fold(head, bytes.fromhex(anchored["entry_hash"][2:]))
        assert entry["running_hash"] == "0x" + head.hex()
    facts = client.get(f"{V1}/chain").json()
    assert facts["entry_count"] == total and facts["running_hash"] == "0x" + head.hex()
    assert head == indexed_city.ledger.running_hash(facts["last_indexed_block"])
    kinds = {e["kind"] for e in items}
    assert {"agency_registered", "signer_authorized", "commitment_published", "case_event"} <= kinds


def test_entries_carry_proofs_that_check_against_the_chain(client: TestClient, indexed_city: IndexedCity) -> None:
    total = client.get(f"{V1}/chain").json()["entry_count"]
    for seq in (0, 1, 12, total // 2, total - 1):
        entry = client.get(f"{V1}/entries/{seq}").json()
        assert entry["seq"] == entry["proof"]["seq"] == seq
        ev.assert_proof_on_chain(indexed_city.chain, indexed_city.ledger.address, entry["proof"], entry["agency_id"])
        assert ev.recomputed_entry_hash(entry) == entry["entry_hash"]
        page = client.get(f"{V1}/entries", params={"after": seq - 1, "limit": 1} if seq else {"limit": 1}).json()
        assert page["items"] == [entry]


def test_entry_log_refusals(client: TestClient) -> None:
    error = error_of(client.get(f"{V1}/entries", params={"limit": 1001}), 422)
    assert "1000" in error["message"] and error["detail"][0]["loc"] == ["query", "limit"]
    assert error_of(client.get(f"{V1}/entries", params={"limit": 0}), 422)
    assert error_of(client.get(f"{V1}/entries", params={"after": -1}), 422)
    assert error_of(client.get(f"{V1}/entries", params={"after": "x"}), 422)
    assert error_of(client.get(f"{V1}/entries/{2**63}"), 422)
    total = client.get(f"{V1}/chain").json()["entry_count"]
    assert client.get(f"{V1}/entries", params={"after": total + 5}).json() == {"items": [], "next": None}
    missing = error_of(client.get(f"{V1}/entries/{total}"), 404)
    assert missing["message"].startswith(f"no entry {total}")


def test_a_smaller_maximum_page_size_is_enforced(api_settings: ApiSettings) -> None:
    with TestClient(create_app(dataclasses.replace(api_settings, max_page_size=50, default_page_size=20))) as client:
        assert len(client.get(f"{V1}/entries").json()["items"]) == 20
        assert len(client.get(f"{V1}/entries?limit=50").json()["items"]) == 50
        assert "less than or equal to 50" in error_of(client.get(f"{V1}/entries?limit=51"), 422)["message"]
        assert error_of(client.get(f"{V1}/agencies?limit=51"), 422)


def test_only_final_data_is_marked_final(everything: Everything) -> None:
    facts = everything.client.get(f"{V1}/chain").json()
    assert facts["finalized_block"] == facts["last_indexed_block"] - ev.CONFIRMATIONS
    items = walk(everything.client, 1000)
    assert len(items) == facts["entry_count"]
    assert [e["final"] for e in items] == [e["proof"]["block_number"] <= facts["finalized_block"] for e in items]
    assert any(e["final"] for e in items) and not items[-1]["final"]
    last = everything.client.get(f"{V1}/entries/{items[-1]['seq']}")
    assert last.headers["cache-control"] == "public, max-age=5"  # may still be reorganised away
    first = everything.client.get(f"{V1}/entries/0")
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"


# --- caching ----------------------------------------------------------------------------------------------------------


def test_final_entries_are_immutable_and_revalidate_with_304(client: TestClient) -> None:
    response = client.get(f"{V1}/entries/5")
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(f"{V1}/entries/5", headers={"If-None-Match": header})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and again.headers["cache-control"] == response.headers["cache-control"]
    assert client.get(f"{V1}/entries/5", headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get(f"{V1}/entries/6").headers["etag"] != etag


def test_full_pages_of_final_entries_are_immutable_and_the_tail_is_not(client: TestClient) -> None:
    full = client.get(f"{V1}/entries?limit=10")
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get(f"{V1}/entries?limit=10", headers={"If-None-Match": full.headers["etag"]}).status_code == 304
    total = client.get(f"{V1}/chain").json()["entry_count"]
    tail = client.get(f"{V1}/entries", params={"after": total - 3, "limit": 10})
    assert len(tail.json()["items"]) == 2 and tail.headers["cache-control"] == "public, max-age=5"


def test_lists_and_views_revalidate_with_304(client: TestClient, indexed_city: IndexedCity) -> None:
    start, end = city_range(indexed_city)
    urls = [
        f"{V1}/agencies",
        f"{V1}/agencies/DEMO-ROADS",
        f"{V1}/commitments",
        f"{V1}/commitments/DEMO-ROADS/STREETLIGHT-48H",
        f"{V1}/metrics?from={start}&to={end}",
        f"{V1}/scorecards?from={start}&to={end}&by=commitment",
        f"{V1}/commitments/DEMO-ROADS/STREETLIGHT-48H/trend?from={start}&to={end}",
        f"{V1}/export/cases.csv",
    ]
    etags = set()
    for url in urls:
        first = client.get(url)
        assert first.status_code == 200, url
        assert first.headers["cache-control"] == "public, max-age=5", url
        etag = first.headers["etag"]
        etags.add(etag)
        again = client.get(url, headers={"If-None-Match": etag})
        assert (again.status_code, again.content) == (304, b""), url
    assert len(etags) == len(urls)
    # another selection is another representation
    other = client.get(f"{V1}/metrics?from={start}&to={end}&district=EAST")
    assert other.headers["etag"] not in etags


def test_list_etags_change_when_the_index_moves(everything: Everything) -> None:
    url = f"{V1}/commitments?agency_id={agency_code(everything)}"
    before = everything.client.get(url).headers["etag"]
    assert everything.client.get(url, headers={"If-None-Match": before}).status_code == 304
    w = everything.chain.world
    w.ledger.write(w.signer, CaseEvent(case_id=keccak(b"etag case " + everything.store_url.encode()),
                                       action=CaseAction.OPENED, occurred_at=w.now(), commitment_id=w.commitment_id,
                                       district=short_code("EAST"), channel=1))
    everything.sync()
    after = everything.client.get(url, headers={"If-None-Match": before})
    assert after.status_code == 200 and after.headers["etag"] != before


def test_head_answers_headers_only(client: TestClient) -> None:
    get = client.get(f"{V1}/agencies")
    head = client.head(f"{V1}/agencies")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert client.head(f"{V1}/agencies/DEMO-PARKS").status_code == 404


# --- rate limiting, CORS, errors --------------------------------------------------------------------------------------


def test_reads_beyond_the_rate_are_refused_with_429(api_settings: ApiSettings) -> None:
    with TestClient(create_app(dataclasses.replace(api_settings, read_rate_per_minute=3))) as client:
        assert [client.get(f"{V1}/agencies").status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get(f"{V1}/entries/0", headers={"Origin": "https://news.example"})
        error = error_of(refused, 429)
        assert error["code"] == "rate_limited" and "3 reads a minute" in error["message"]
        assert error["budget"] == "reads" and error["limit"] == 3
        assert 1 <= int(refused.headers["retry-after"]) <= 20
        assert refused.headers["access-control-allow-origin"] == "*"  # a browser can read why
        assert client.head(f"{V1}/agencies").status_code == 429
        assert client.post(f"{V1}/agencies").status_code == 405  # writes are not this limiter's


def test_token_buckets_refill_per_client_and_stay_bounded() -> None:
    now = [1000.0]
    buckets = TokenBuckets(60, max_clients=3, clock=lambda: now[0])  # one token a second, 60 at most
    assert all(buckets.take("a") == 0 for _ in range(60))
    assert buckets.take("a") == pytest.approx(1.0)
    assert buckets.take("b") == 0  # another client has its own bucket
    now[0] += 2.5
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") > 0
    for client in "cdefg":
        buckets.take(client)
    assert len(buckets) <= 3
    now[0] += 120  # idle for two minutes: every bucket is full again and dropped
    buckets.take("z")
    assert len(buckets) == 1


def test_cors_allows_reads_from_anywhere(client: TestClient) -> None:
    origin = {"Origin": "https://journalist.example"}
    response = client.get(f"{V1}/entries?limit=1", headers=origin)
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "link", "retry-after"} <= exposed
    preflight = client.options(
        f"{V1}/entries",
        headers={**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "If-None-Match"},
    )
    assert preflight.status_code == 200
    assert set(preflight.headers["access-control-allow-methods"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert "if-none-match" in preflight.headers["access-control-allow-headers"].lower()
    refused = client.options(f"{V1}/entries", headers={**origin, "Access-Control-Request-Method": "DELETE"})
    assert refused.status_code == 400


def test_cors_with_a_list_of_origins(api_settings: ApiSettings) -> None:
    settings = dataclasses.replace(api_settings, cors_origins=("https://city.example",))
    with TestClient(create_app(settings)) as client:
        allowed = client.get(f"{V1}/chain", headers={"Origin": "https://city.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://city.example"
        other = client.get(f"{V1}/chain", headers={"Origin": "https://elsewhere.example"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_every_error_has_the_one_shape(client: TestClient) -> None:
    assert error_of(client.get(f"{V1}/no-such-thing"), 404)["code"] == "not_found"
    assert error_of(client.delete(f"{V1}/entries/0"), 405)["code"] == "method_not_allowed"
    validation = error_of(client.get(f"{V1}/entries", params={"limit": "many"}), 422)
    assert validation["code"] == "invalid_request"
    assert validation["detail"] == [
        {"loc": ["query", "limit"], "msg": "Input should be a valid integer, unable to parse string as an integer",
         "type": "int_parsing"}
    ]


# --- both databases give the same answers -----------------------------------------------------------------------------


def test_sqlite_and_postgresql_answer_alike(world_chain: ev.EverythingChain, tmp_path: Path) -> None:
    answers = {}
    urls = [
        f"{V1}/agencies",
        f"{V1}/commitments?limit=2",
        f"{V1}/entries?limit=1000",
        f"{V1}/scorecards?by=commitment&to=1793491200",
        f"{V1}/metrics?as_of=1793491200",
        f"{V1}/export/cases.jsonl",
        f"{V1}/export/entries.csv",
    ]
    for kind in ("sqlite", "postgresql"):
        (tmp_path / kind).mkdir()
        with ev.store_url(kind, tmp_path / kind) as url:
            ev.sync(world_chain.chain, world_chain.world.ledger.address, url)
            with TestClient(create_app(ev.settings_for(world_chain, url, tmp_path, rpc_url=None))) as client:
                answers[kind] = [client.get(u).text for u in urls]
    for url, on_sqlite, on_postgresql in zip(urls, answers["sqlite"], answers["postgresql"], strict=True):
        assert on_sqlite == on_postgresql, url
