"""Open311 apps filing requests (GeoReport v2 §POST Service Request, §GET request_id from a token) on a real anvil: a
form-encoded request as the standard's example has it becomes a citizen's filing on the ledger, signed by a key the
service made, whose receipt code comes back once; its content is only in the private store and never in the logs;
a token resolves to the request's id once the filing is recorded (and says why when it was not); every refusal is an
Open311 error that leaves nothing behind; each app has its own rate; and ``requests/{id}`` shows the filing until the
agency accepts it — awaiting, rejected, or the case its acceptance opens."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import receipts
from ledger.chain.contract import LoggedEntry
from ledger.chain.keys import KeyStore
from ledger.encoding import code_text
from ledger.filings import ANSWER_WINDOW_WORKING_DAYS
from ledger.open311 import filing_status_notes, format_time, parse_service_request_id, service_request_id_of
from ledger.records import (
    Channel,
    EntryKind,
    Filing,
    FilingDecision,
    FilingStatus,
    Retirement,
    filed_case_id,
    short_code,
)
from ledger.relay.store import CITIZEN_LANE, LANES, CitizenFiles
from tests.support import filings
from tests.support.citizens import CitizenWorld, citizen_world, relay_rows

BASE = "/open311/v2"
KEY, OTHER_KEY = "k-" + "a1" * 16, "k-" + "b2" * 16
APPS = {"fixmycity": KEY, "streetwise": OTHER_KEY}
SERVICE = "SH-ROADS.STREETLIGHT-48H"
#: a second commitment, retired by the test of a filing the ledger refuses once sent
POTHOLE = "POTHOLE-5D"
REQUEST_FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url")


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("open311-post")) as world:
        fund_citizens_relayer(world, world.data_dir)
        w = world.world
        w.ledger.write(w.signer, w.commitment(short_code(POTHOLE), service_code=short_code("POTHOLE")))
        world.sync()  # the service list (the index) knows the agency and its commitments
        yield world


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    with TestClient(create_app(cw.settings(open311_api_keys=APPS, filing_rate_per_minute=0))) as test_client:
        yield test_client


def fund_citizens_relayer(cw: CitizenWorld, data_dir: Path) -> None:
    cw.chain.fund(KeyStore(data_dir / "keys").get_or_create(LANES[CITIZEN_LANE][1]).address)


def example(**changes: str | None) -> list[tuple[str, str]]:
    """The standard's example of POST Service Request (its fields and values), for this city's service and with the
    district this service asks for; ``None`` leaves a field out."""
    fields: dict[str, str | None] = {
        "api_key": KEY, "jurisdiction_id": "CN-SH", "service_code": SERVICE, "lat": "37.76524078",
        "long": "-122.4212043", "address_string": "1234 5th street", "email": "smit333@sfgov.edu",
        "device_id": "tt222111", "account_id": "123456", "first_name": "john", "last_name": "smith",
        "phone": "111111111", "description": "A large sinkhole is destroying the street",
        "media_url": "http://www.city.gov/media/12345", "attribute[WHISPAWN]": "50", "attribute[WHISDORM]": "COTE",
        "attribute[district]": "PUDONG",
    }
    fields.update(changes)
    return [(name, value) for name, value in fields.items() if value is not None]


def post(client: TestClient, form: list[tuple[str, str]], fmt: str = "json", **params: str) -> httpx.Response:
    """The form as the standard's example writes it: form-encoded, brackets as they are."""
    return client.post(f"{BASE}/requests.{fmt}", params=params, content=urlencode(form, safe="[]"),
                       headers={"content-type": "application/x-www-form-urlencoded"})


def one(response: httpx.Response, fmt: str = "json") -> dict[str, Any]:
    """The one request of a successful answer, as a dict (XML: element texts, None for an empty element)."""
    assert response.status_code == 200, response.text
    if fmt == "json":
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        [item] = response.json()
        return item
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    root = ElementTree.fromstring(response.content)
    assert root.tag == "service_requests"
    [element] = root
    assert element.tag == "request"
    return {child.tag: child.text for child in element}


def open311_error(response: httpx.Response, status: int, fmt: str = "json") -> str:
    """An Open311 error list of one, with `status` as its code and the HTTP status; its description."""
    assert response.status_code == status, response.text
    if fmt == "json":
        [item] = response.json()
        assert item["code"] == status and set(item) == {"code", "description"}
        return str(item["description"])
    root = ElementTree.fromstring(response.content)
    assert root.tag == "errors" and root.findtext("error/code") == str(status)
    return root.findtext("error/description") or ""


def filing_entry(cw: CitizenWorld, service_request_id: str) -> LoggedEntry:
    """The FilingRecorded entry whose case id (once accepted) the request's id names."""
    parsed = parse_service_request_id(service_request_id)
    assert parsed is not None and parsed[0] == cw.agency
    [entry] = [e for e in cw.ledger.entries() if e.kind is EntryKind.FILING_RECORDED and filed_case_id(e.seq) ==
               parsed[1]]
    return entry


def refused(client: TestClient, cw: CitizenWorld, form: list[tuple[str, str]], status: int, fmt: str = "json",
            **params: str) -> str:
    """Refused with an Open311 error, and nothing written: no entry, nothing stored for relaying."""
    entries, rows = cw.ledger.entry_count(), relay_rows(client)
    description = open311_error(post(client, form, fmt, **params), status, fmt)
    assert description
    assert cw.ledger.entry_count() == entries and relay_rows(client) == rows
    return description


def wait_for_token(client: TestClient, token: str, fmt: str = "json", *, seconds: float = 30.0) -> httpx.Response:
    """``tokens/{token}`` once it no longer answers "on its way"."""
    deadline = time.monotonic() + seconds
    while True:
        answer = client.get(f"{BASE}/tokens/{token}.{fmt}")
        if answer.status_code != 200 or "service_request_id" in one(answer, fmt) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


# ---------------------------------------------------------------------- filing


def test_a_request_posted_as_the_standard_shows_is_a_filing_on_the_ledger(
    client: TestClient, cw: CitizenWorld, caplog: pytest.LogCaptureFixture
) -> None:
    form = [*example(), ("attribute[ABC][]", "1"), ("attribute[ABC][]", "2")]
    with caplog.at_level(logging.DEBUG):
        answer = post(client, form)
    item = one(answer)
    assert list(item) == ["service_request_id", "service_notice", "account_id", "receipt_code"]
    assert item["account_id"] is None and answer.headers["cache-control"] == "no-store"
    assert f"{ANSWER_WINDOW_WORKING_DAYS}st working day" in item["service_notice"]
    assert "48 calendar hours" in item["service_notice"]
    # on chain: a filing of the service's agency and commitment, from the app's channel, in the district given,
    # signed by the key whose code came back once (not the relayer's, not the agency's)
    entry = filing_entry(cw, item["service_request_id"])
    code = item["receipt_code"]
    assert entry.actor == receipts.address(code) == cw.ledger.filing_state(entry.seq).receipt
    assert cw.ledger.filing_state(entry.seq).status is FilingStatus.FILED
    record = entry.record
    assert isinstance(record, Filing)
    assert (record.agency_id, record.commitment_id) == (cw.world.agency_id, cw.world.commitment_id)
    assert (record.district, record.channel) == (short_code("PUDONG"), Channel.APP)
    assert item["service_request_id"] == f"{cw.agency}:0x{filed_case_id(entry.seq).hex()}"
    # the content only in the private store: every field of the form but the key and the jurisdiction
    stored = CitizenFiles(cw.data_dir / "relay").filing(record.receipt, record.content_hash)
    assert stored is not None and stored.agency_id == cw.world.agency_id
    content = stored.content
    assert content.description == "A large sinkhole is destroying the street"
    assert (content.lat, content.long, content.address) == ("37.76524078", "-122.4212043", "1234 5th street")
    assert content.media_url == "http://www.city.gov/media/12345"
    assert content.attributes == {"WHISPAWN": ["50"], "WHISDORM": ["COTE"], "district": ["PUDONG"], "ABC": ["1", "2"]}
    assert content.contact == {"email": "smit333@sfgov.edu", "phone": "111111111", "first_name": "john",
                               "last_name": "smith", "device_id": "tt222111", "account_id": "123456"}
    tx = cw.chain.w3.eth.get_transaction(entry.transaction_hash)  # type: ignore[arg-type]
    assert b"sinkhole" not in bytes(tx["input"]) and b"smit333" not in bytes(tx["input"])
    # nothing of the content, and not the receipt code, in the logs
    for private in ("sinkhole", "smit333", "111111111", "1234 5th", "37.765", code):
        assert private not in caplog.text


def test_the_xml_form_and_an_address_id_alone(client: TestClient, cw: CitizenWorld) -> None:
    form = example(lat=None, long=None, address_string=None, address_id="SH-000123", email=None, phone=None,
                   description="路灯不亮 — the lamp at the gate is dark")
    item = one(post(client, form, "xml"), "xml")
    assert list(item) == ["service_request_id", "service_notice", "account_id", "receipt_code"]
    assert item["account_id"] is None and item["receipt_code"] and item["service_notice"]
    entry = filing_entry(cw, item["service_request_id"] or "")
    assert entry.actor == receipts.address(item["receipt_code"] or "")
    record = entry.record
    assert isinstance(record, Filing)
    stored = CitizenFiles(cw.data_dir / "relay").filing(record.receipt, record.content_hash)
    assert stored is not None
    assert stored.content.address == "address_id: SH-000123" and stored.content.lat == ""
    assert stored.content.description == "路灯不亮 — the lamp at the gate is dark"
    # both kinds of location: the address id is kept beside the address in words
    both = one(post(client, example(address_id="SH-000124")))
    stored = CitizenFiles(cw.data_dir / "relay").filing(*_hashed(cw, both["service_request_id"]))
    assert stored is not None and stored.content.address == "1234 5th street (address_id: SH-000124)"


def _hashed(cw: CitizenWorld, service_request_id: str) -> tuple[str, bytes]:
    record = filing_entry(cw, service_request_id).record
    assert isinstance(record, Filing)
    return record.receipt, record.content_hash


def test_the_api_key_may_come_in_the_query_string(client: TestClient, cw: CitizenWorld) -> None:
    item = one(post(client, example(api_key=None), api_key=OTHER_KEY))
    assert filing_entry(cw, item["service_request_id"]).actor == receipts.address(item["receipt_code"])


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("changes", "status", "says"),
    [
        ({"api_key": None}, 403, "API key from the city"),
        ({"api_key": KEY[:-1] + "x"}, 403, "API key from the city"),
        ({"api_key": KEY + KEY}, 403, "API key from the city"),
        ({"service_code": None}, 400, "service_code is required"),
        ({"service_code": "SH-ROADS.NO-SUCH"}, 404, "no service"),
        ({"service_code": "nonsense"}, 404, "no service"),
        ({"jurisdiction_id": "ELSEWHERE"}, 404, "no jurisdiction"),
        ({"lat": None, "long": None, "address_string": None}, 400, "a location is required"),
        ({"long": None}, 400, "lat and long"),
        ({"lat": "91"}, 400, "lat: decimal degrees"),
        ({"lat": "north"}, 400, "lat: decimal degrees"),
        ({"long": "181.5"}, 400, "long: decimal degrees"),
        ({"description": None}, 400, "description is required"),
        ({"description": "   "}, 400, "description is required"),
        ({"description": "x" * 4001}, 400, "description: "),
        ({"attribute[district]": None}, 400, "attribute[district] is required"),
        ({"attribute[district]": "PU DONG"}, 400, "attribute[district]: a district code"),
        ({"attribute[bad code]": "1"}, 400, "attribute[bad code]"),
        ({"email": "x" * 301}, 400, "email: "),
    ],
)
def test_refusals_are_open311_errors_and_leave_nothing_behind(
    client: TestClient, cw: CitizenWorld, fmt: str, changes: dict[str, str | None], status: int, says: str
) -> None:
    assert says in refused(client, cw, example(**changes), status, fmt)


def test_malformed_bodies_are_refused(client: TestClient, cw: CitizenWorld) -> None:
    twice = [*example(), ("description", "another")]
    assert "description is given twice" in refused(client, cw, twice, 400)
    entries, rows = cw.ledger.entry_count(), relay_rows(client)
    url = f"{BASE}/requests.json"
    form = dict(example())
    answers = {
        "multipart": client.post(url, data=form, files={"media": ("a.png", b"\x89PNG", "image/png")}),
        "json": client.post(url, json=form),
        "latin-1": client.post(url, content=b"description=caf\xe9",
                               headers={"content-type": "application/x-www-form-urlencoded; charset=ISO-8859-1"}),
    }
    assert "multipart/form-data is not taken" in open311_error(answers["multipart"], 415)
    assert "form-encoded" in open311_error(answers["json"], 415)
    assert "UTF-8" in open311_error(answers["latin-1"], 415)
    not_utf8 = client.post(url, content=urlencode(example()).encode() + b"&address_string=%E9t%E9",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert "not UTF-8" in open311_error(not_utf8, 400)
    huge = client.post(url, content=b"description=" + b"x" * (300 * 1024),
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert "exceeds" in open311_error(huge, 413)
    assert cw.ledger.entry_count() == entries and relay_rows(client) == rows


def test_a_retired_service_is_refused(cw: CitizenWorld, client: TestClient) -> None:
    """(The catalogue says so before the chain is asked; see also the filing the ledger refuses once sent.)"""
    w = cw.world
    w.ledger.write(w.signer, w.commitment(short_code("RETIRED-1H"), service_code=short_code("GONE")))
    w.ledger.write(w.signer, Retirement(commitment_id=short_code("RETIRED-1H"), reason_hash=b"\0" * 32,
                                        occurred_at=w.now()))
    cw.sync()
    assert "retired" in refused(client, cw, example(service_code="SH-ROADS.RETIRED-1H"), 409)


# ---------------------------------------------------------------------- limits


def test_each_app_has_its_own_rate_and_the_agency_its_daily_bound(cw: CitizenWorld, tmp_path: Path) -> None:
    fund_citizens_relayer(cw, tmp_path)
    settings = cw.settings(data_dir=tmp_path, open311_api_keys=APPS, filing_rate_per_minute=1,
                           filings_per_agency_per_day=1)
    with TestClient(create_app(settings)) as limited:
        # the agency's daily bound, from the desk: 429 with Retry-After, nothing stored
        one(post(limited, example()))
        rows = relay_rows(limited)
        bounded = post(limited, example())
        assert "agency" in open311_error(bounded, 429) and int(bounded.headers["retry-after"]) > 0
        assert relay_rows(limited) == rows
        # 30 requests a minute per app (filing_rate_per_minute × 30), refused ones too; the bucket refills a token
        # every 2 s, so a slow run may get one more through
        posted = 2
        while (answer := post(limited, example(description=None))).status_code == 400 and posted < 40:
            posted += 1
        assert 30 <= posted < 40
        assert "its open311_app budget (30 requests filed by one app a minute)" in open311_error(answer, 429)
        assert int(answer.headers["retry-after"]) >= 1
        limited_answer = post(limited, example())
        assert "its open311_app budget (30 requests filed by one app a minute)" in open311_error(limited_answer, 429)
        assert relay_rows(limited) == rows
        # another app's key has its own allowance
        assert "description is required" in open311_error(post(limited, example(api_key=OTHER_KEY,
                                                                                description=None)), 400)


# ---------------------------------------------------------------------- tokens


def test_a_token_gives_the_request_id_once_the_filing_is_recorded(cw: CitizenWorld, tmp_path: Path) -> None:
    """With ``write_wait_seconds`` 0 the POST answers at once, with a token; here the citizens' relayer is funded
    only after the first look, so the filing is certainly still on its way then."""
    settings = cw.settings(data_dir=tmp_path, open311_api_keys=APPS, filing_rate_per_minute=0,
                           extra={"write_wait_seconds": "0"})
    with TestClient(create_app(settings)) as quick:
        item = one(post(quick, example()))
        assert list(item) == ["token", "service_notice", "account_id", "receipt_code"]
        token = item["token"]
        assert one(quick.get(f"{BASE}/tokens/{token}.json")) == {"token": token}
        assert one(quick.get(f"{BASE}/tokens/{token}.xml"), "xml") == {"token": token}
        fund_citizens_relayer(cw, tmp_path)
        resolved = one(wait_for_token(quick, token))
        assert list(resolved) == ["service_request_id", "token"] and resolved["token"] == token
        assert filing_entry(cw, resolved["service_request_id"]).actor == receipts.address(item["receipt_code"])
        assert one(quick.get(f"{BASE}/tokens/{token.upper().replace('0X', '0x')}.xml"), "xml") == resolved
        assert one(quick.get(f"{BASE}/tokens/{token}.json", params={"jurisdiction_id": "CN-SH"})) == resolved
        open311_error(quick.get(f"{BASE}/tokens/{token}.json", params={"jurisdiction_id": "ELSEWHERE"}), 404)
        for unknown in ("0x" + "ab" * 32, "nonsense", "0x1234"):
            for fmt in ("json", "xml"):
                open311_error(quick.get(f"{BASE}/tokens/{unknown}.{fmt}"), 404, fmt)


def test_a_filing_the_ledger_refuses_once_sent_says_so_by_its_token(cw: CitizenWorld, tmp_path: Path) -> None:
    """The desk checks the filing on the latest block; if the commitment is retired before the relayer can send it,
    the module refuses it then: the token answers 410 with the module's reason, and no request exists."""
    settings = cw.settings(data_dir=tmp_path, open311_api_keys=APPS, filing_rate_per_minute=0,
                           extra={"write_wait_seconds": "0"})
    with TestClient(create_app(settings)) as quick:
        token = one(post(quick, example(service_code=f"SH-ROADS.{POTHOLE}")))["token"]
        w = cw.world
        w.ledger.write(w.signer, Retirement(commitment_id=short_code(POTHOLE), reason_hash=b"\0" * 32,
                                            occurred_at=w.now()))
        fund_citizens_relayer(cw, tmp_path)
        answer = wait_for_token(quick, token)
        assert "CommitmentIsRetired" in open311_error(answer, 410)
        assert "file it again" in open311_error(quick.get(f"{BASE}/tokens/{token}.xml"), 410, "xml")
    cw.sync()


# ---------------------------------------------------------------------- the request, before and after the answer


def test_a_filed_request_is_found_before_the_agency_answers_and_after(client: TestClient, cw: CitizenWorld) -> None:
    ids = {name: one(post(client, example(description=f"request to be {name}")))["service_request_id"]
           for name in ("awaiting", "spam", "duplicate", "out of scope", "accepted")}
    seqs = {name: filing_entry(cw, sid).seq for name, sid in ids.items()}
    cw.sync()
    awaiting = {}
    for name, sid in ids.items():
        [request] = client.get(f"{BASE}/requests/{sid}.json").json()
        assert tuple(request) == REQUEST_FIELDS and request["service_request_id"] == sid
        assert request["status"] == "open" and request["status_notes"].startswith(
            "filed, awaiting the agency's answer, due ")
        assert request["service_code"] == SERVICE and request["service_name"] == "Streetlight repair"
        assert request["agency_responsible"] == "Roads" and request["address"] == "PUDONG"
        filed_at = cw.chain.w3.eth.get_block(filing_entry(cw, sid).block_number)["timestamp"]
        assert request["requested_datetime"] == request["updated_datetime"] == format_time(filed_at)
        assert request["expected_datetime"] is None and "working day" in request["service_notice"]
        for private in ("description", "lat", "long", "address_id", "zipcode", "media_url"):
            assert request[private] is None
        awaiting[name] = request
    xml = ElementTree.fromstring(client.get(f"{BASE}/requests/{ids['awaiting']}.xml").content)
    assert [e.tag for e in xml[0]] == list(REQUEST_FIELDS)
    assert xml.findtext("request/status_notes") == awaiting["awaiting"]["status_notes"]
    zh = client.get(f"{BASE}/requests/{ids['awaiting']}.json", params={"lang": "zh"}).json()[0]
    assert zh["status_notes"].startswith("已提交，等待机关答复")

    filings.answer(cw.world, seqs["spam"], FilingDecision.SPAM)
    filings.answer(cw.world, seqs["duplicate"], FilingDecision.DUPLICATE)
    filings.answer(cw.world, seqs["out of scope"], FilingDecision.OUT_OF_SCOPE)
    case_id = filings.accept(cw.world, seqs["accepted"])
    cw.sync()
    now = {name: client.get(f"{BASE}/requests/{sid}.json").json()[0] for name, sid in ids.items()}
    assert now["awaiting"] == awaiting["awaiting"]
    duplicate_of = service_request_id_of(cw.agency, filings.DUPLICATE_OF)
    for name, notes in (("spam", "rejected as spam"), ("duplicate", f"rejected as a duplicate of {duplicate_of}"),
                        ("out of scope", "rejected: not within the agency's responsibilities")):
        assert now[name]["status"] == "closed" and now[name]["status_notes"] == notes
        assert now[name]["updated_datetime"] >= now[name]["requested_datetime"]
    # accepted: the case, under the same id, with its clock from the filing
    accepted = now["accepted"]
    assert accepted["service_request_id"] == ids["accepted"] == service_request_id_of(cw.agency, case_id)
    assert accepted["status"] == "open" and accepted["status_notes"] == "open"
    assert accepted["requested_datetime"] == awaiting["accepted"]["requested_datetime"]
    assert accepted["expected_datetime"] is not None and "48 calendar hours" in accepted["service_notice"]
    # the list by ids finds filings and cases alike, in the order asked; other filters list cases only
    asked = [ids["spam"], ids["accepted"], ids["awaiting"]]
    listed = client.get(f"{BASE}/requests.json", params={"service_request_id": ",".join(asked)}).json()
    assert [r["service_request_id"] for r in listed] == asked and listed[0] == now["spam"]
    in_window = {r["service_request_id"] for r in client.get(f"{BASE}/requests.json").json()}
    assert ids["accepted"] in in_window and ids["awaiting"] not in in_window
    # another agency's prefix does not find them
    other = f"{code_text(cw.world.other_agency_id)}:{ids['awaiting'].split(':')[1]}"
    open311_error(client.get(f"{BASE}/requests/{other}.json"), 404)


def test_the_service_definition_asks_for_the_district_and_the_list_says_so(client: TestClient) -> None:
    [service] = [s for s in client.get(f"{BASE}/services.json").json() if s["service_code"] == SERVICE]
    assert service["metadata"] is True
    definition = client.get(f"{BASE}/services/{SERVICE}.json").json()
    [district] = [a for a in definition["attributes"] if a["variable"]]
    assert (district["code"], district["variable"], district["required"]) == ("district", True, True)
    assert {a["code"] for a in definition["attributes"]} >= {"DEADLINE", "ON_TIME_TARGET", "TERMS"}
    discovery = client.get(f"{BASE}/discovery.json").json()
    assert "API key" in discovery["key_service"]


def test_filing_status_notes_in_words() -> None:
    due = 1_790_000_000
    assert filing_status_notes(None, due=due, overdue=True, late=False) == (
        f"filed, awaiting the agency's answer, due {format_time(due)}, overdue")
    assert filing_status_notes(None, due=due, overdue=False, late=False, lang="zh") == (
        f"已提交，等待机关答复，答复期限{format_time(due)}")
    assert filing_status_notes(FilingDecision.SPAM, due=due, overdue=False, late=True) == (
        "rejected as spam, answered late")
    assert filing_status_notes(FilingDecision.DUPLICATE, due=due, overdue=False, late=False,
                               duplicate_of="A:0x01", lang="zh") == "不予受理：重复诉求（与A:0x01重复）"
