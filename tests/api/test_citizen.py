"""The citizen API on a real anvil: a case found by its receipt key, ratings and disputes signed with that key exactly
as the page signs them (eth-account here; ``test_receipt_js`` shows the page's bytes are the same), relayed once and
recorded with the receipt key as actor; every refusal a clear 4xx naming the problem that leaves nothing behind — no
entry, no stored submission; comments and reasons kept off chain and out of the index, shown only when agreed."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import receipts
from ledger.cases import DISPUTE_RESPONSE_WINDOW, DISPUTE_WINDOW, RECTIFICATION_WORKING_DAYS
from ledger.chain.keys import KeyStore
from ledger.filings import answer_due
from ledger.records import CaseAction, EntryKind, Rating
from ledger.relay.store import CITIZEN_LANE, LANES
from ledger.relay.verify import SECP256K1_N
from ledger.workdays import working_days_due_always
from tests.support.citizens import (
    DISPUTES,
    RATINGS,
    CitizenWorld,
    citizen_world,
    lookup,
    receipt_case_id,
    recorded,
    refused,
)


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("citizen")) as world:
        # ratings and disputes are sent by the relay's citizens' lane, from a key of its own
        world.chain.fund(KeyStore(world.data_dir / "keys").get_or_create(LANES[CITIZEN_LANE][1]).address)
        world.sync()
        yield world


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    with TestClient(create_app(cw.settings())) as test_client:
        yield test_client


# ---------------------------------------------------------------------- looking a case up by its receipt


def test_a_case_is_found_by_its_receipt_key_with_every_event_and_proof(client: TestClient, cw: CitizenWorld):
    code = cw.open("lookup")
    cw.act("lookup", CaseAction.ACCEPTED)
    cw.sync()
    address = receipts.address(code)
    view = lookup(client, cw, "lookup")
    case = client.get(f"/api/v1/cases/{cw.agency}/{cw.case_hex('lookup')}").json()
    assert {k: v for k, v in view.items() if k not in ("receipt", "feedback")} == case  # the case lookup's shape
    assert [e["action"] for e in view["events"]] == ["opened", "accepted"]
    assert view["receipt"]["address"] == address and view["receipt"]["proof"]["seq"] == case["events"][0]["seq"] + 1
    feedback = view["feedback"]
    assert feedback["status"] == "open" and feedback["closures"] == 0 and feedback["closed_at"] is None
    assert not feedback["can_rate"] and feedback["rate_refusal"] == "not_closed"
    assert not feedback["can_dispute"] and feedback["dispute_refusal"] == "not_closed"
    assert feedback["dispute_window_seconds"] == DISPUTE_WINDOW
    assert feedback["response_window_seconds"] == DISPUTE_RESPONSE_WINDOW
    # any case of hex digits finds it; the answer revalidates by its ETag
    again = client.get(f"/api/v1/receipts/{address.lower()}")
    assert again.json() == view and again.headers["cache-control"] == "no-cache"
    revalidated = client.get(f"/api/v1/receipts/{address}", headers={"If-None-Match": again.headers["etag"]})
    assert revalidated.status_code == 304


def test_an_unknown_or_malformed_receipt_key(client: TestClient):
    missing = client.get(f"/api/v1/receipts/{Account.create().address}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    malformed = client.get("/api/v1/receipts/0x1234")
    assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "invalid_request"


def test_the_dispute_windows_are_the_contract_s(cw: CitizenWorld):
    assert cw.ledger.dispute_windows() == (DISPUTE_WINDOW, DISPUTE_RESPONSE_WINDOW)


# ---------------------------------------------------------------------- rating


def test_a_rating_before_the_case_closed_is_refused(client: TestClient, cw: CitizenWorld):
    cw.open("early")
    cw.sync()
    answer = refused(client, cw, RATINGS, cw.rating_body("early", 5), 409, "not_closed")
    assert answer["error"]["message"].startswith("the case is not closed yet")


def test_a_closed_case_is_rated_once_with_its_comment_published(
    client: TestClient, cw: CitizenWorld, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    cw.open("rated")
    cw.act("rated", CaseAction.FULFILLED)
    cw.sync()
    feedback = lookup(client, cw, "rated")["feedback"]
    assert feedback["can_rate"] and feedback["rate_refusal"] is None and feedback["status"] == "fulfilled"
    assert feedback["can_dispute"] and feedback["dispute_closure"] == 1
    assert feedback["dispute_deadline"] == feedback["closed_at"] + DISPUTE_WINDOW

    comment = "路灯第二天就修好了。Fixed the next morning."
    body = cw.rating_body("rated", 4, comment, publish=True)
    first = recorded(client, cw, client.post(RATINGS, json=body), "rated", EntryKind.CASE_RATED)
    assert first["kind"] == "rating" and first["agency_id"] == cw.agency and first["case_id"] == cw.case_hex("rated")

    # before the index has it, the view already knows: the chain says rated, and the submission is listed
    pending = lookup(client, cw, "rated")["feedback"]
    assert not pending["can_rate"] and pending["rate_refusal"] == "already_rated"
    assert pending["source"] == "chain" and pending["source_reason"] == "index_behind"
    assert [s["id"] for s in pending["submissions"]] == [first["id"]]
    cw.sync()
    feedback = lookup(client, cw, "rated")["feedback"]
    assert feedback["rated"] and feedback["rate_refusal"] == "already_rated" and feedback["submissions"] == []
    rating = feedback["rating"]
    assert rating["score"] == 4 and rating["comment"] == comment
    assert rating["comment_hash"] == body["comment_hash"] and rating["proof"]["seq"] == first["seq"]

    # the same signed rating again: its submission, not a second one
    again = refused(client, cw, RATINGS, body, 409, "duplicate")
    assert again["id"] == first["id"] and again["status"] == "recorded"
    # another rating of the same case: refused, however it is signed
    refused(client, cw, RATINGS, cw.rating_body("rated", 1), 409, "already_rated")
    # the comment is nowhere in the logs, nor in the index
    assert comment not in caplog.text
    assert comment.encode() not in Path(cw.store_url.removeprefix("sqlite:///")).read_bytes()


def test_an_unpublished_comment_is_kept_but_not_shown(client: TestClient, cw: CitizenWorld):
    cw.open("private")
    cw.act("private", CaseAction.REJECTED)
    cw.sync()
    body = cw.rating_body("private", 2, "ok")
    recorded(client, cw, client.post(RATINGS, json=body), "private", EntryKind.CASE_RATED)
    cw.sync()
    rating = lookup(client, cw, "private")["feedback"]["rating"]
    assert rating["score"] == 2 and rating["comment"] is None and rating["comment_hash"] == body["comment_hash"]
    # kept by the service (the relay store), with its salt: the hash alone does not give "ok" away
    relays = sqlite3.connect(cw.data_dir / "relay" / "relays.sqlite")
    try:
        [(text, publish)] = relays.execute(
            "SELECT text, publish FROM citizen_records WHERE text_hash = ?", (body["comment_hash"],)
        ).fetchall()
    finally:
        relays.close()
    assert (text, publish) == ("ok", 0)


def test_forged_ratings_are_refused(client: TestClient, cw: CitizenWorld):
    cw.open("forged")
    cw.act("forged", CaseAction.FULFILLED)
    cw.sync()
    # the agency's own authorised key cannot rate its case
    agency_key = cw.world.signer.key
    answer = refused(client, cw, RATINGS, cw.rating_body("forged", 5, key=agency_key), 403, "forged_signature")
    assert "receipt key" in answer["error"]["message"]
    # nor can any other key, nor a receipt key of another case
    refused(client, cw, RATINGS, cw.rating_body("forged", 5, key=Account.create().key), 403, "forged_signature")
    other = cw.rating_body("forged", 5, key=receipts.private_key(cw.codes["rated"]))
    refused(client, cw, RATINGS, other, 403, "forged_signature")
    # a genuine signature over another score
    genuine = cw.rating_body("forged", 2)
    refused(client, cw, RATINGS, {**genuine, "score": 5}, 403, "forged_signature")
    # malformed signatures, and the high-s twin of a genuine one
    for bad in ("0x1234", "0x" + "00" * 65, "not hex"):
        refused(client, cw, RATINGS, {**genuine, "signature": bad}, 400, "bad_signature")
    raw = bytes.fromhex(genuine["signature"][2:])
    s, v = int.from_bytes(raw[32:64], "big"), raw[64]
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    answer = refused(client, cw, RATINGS, {**genuine, "signature": "0x" + twin.hex()}, 400, "bad_signature")
    assert "high s" in answer["error"]["message"]
    # the genuine one still goes through
    recorded(client, cw, client.post(RATINGS, json=genuine), "forged", EntryKind.CASE_RATED)


def test_a_case_without_a_receipt_cannot_be_rated(client: TestClient, cw: CitizenWorld):
    cw.open("no-receipt", receipt=False)
    cw.act("no-receipt", CaseAction.FULFILLED, receipt=False)
    cw.sync()
    code = receipts.new_code()
    cw.codes["no-receipt"] = code
    body = cw.rating_body("no-receipt", 3, case=bytes.fromhex(cw.case_hex("no-receipt", receipt=False)[2:]))
    refused(client, cw, RATINGS, body, 404, "unknown_receipt")
    unknown = cw.rating_body("no-receipt", 3, case=receipt_case_id("never-opened"))
    refused(client, cw, RATINGS, unknown, 404, "unknown_receipt")


def test_malformed_bodies_and_mismatched_comments_are_refused(client: TestClient, cw: CitizenWorld):
    cw.open("malformed")
    cw.act("malformed", CaseAction.WITHDRAWN)
    cw.sync()
    body = cw.rating_body("malformed", 3, "a comment", publish=True)
    refused(client, cw, RATINGS, b'{"score": ', 400, "invalid_json")
    refused(client, cw, RATINGS, b"[]", 422, "invalid_body")
    for change, field in [({"score": 6}, "score"), ({"score": 0}, "score"), ({"case_id": "0x12"}, "case_id"),
                          ({"agency_id": "has space"}, "agency_id"), ({"extra": 1}, "extra")]:
        answer = refused(client, cw, RATINGS, {**body, **change}, 422, "invalid_body")
        assert answer["error"]["field"] == field, answer
    no_signature = {k: v for k, v in body.items() if k != "signature"}
    refused(client, cw, RATINGS, no_signature, 422, "invalid_body")
    tampered = {**body, "comment": {**body["comment"], "text": "another comment"}}
    answer = refused(client, cw, RATINGS, tampered, 422, "text_mismatch")
    assert "another comment" not in answer["error"]["message"]
    refused(client, cw, RATINGS, b"x" * (65 * 1024), 413, "body_too_large")
    # the longest comment fits, however it is escaped
    longest = cw.rating_body("malformed", 3, "🚦" * 2000)
    assert len(json.dumps(longest)) > 24_000
    assert client.post(RATINGS, json=longest).status_code == 202


def test_a_rating_relayed_but_not_yet_indexed_cannot_be_doubled(client: TestClient, cw: CitizenWorld):
    cw.open("lagging")
    cw.act("lagging", CaseAction.FULFILLED)
    cw.sync()
    recorded(client, cw, client.post(RATINGS, json=cw.rating_body("lagging", 5)), "lagging", EntryKind.CASE_RATED)
    # the index has not seen it: the relay store and the chain refuse the second
    refused(client, cw, RATINGS, cw.rating_body("lagging", 1), 409, "already_rated")


def test_the_chain_has_the_last_word_when_the_index_lags(client: TestClient, cw: CitizenWorld):
    cw.open("closed-unseen")
    cw.sync()
    cw.act("closed-unseen", CaseAction.FULFILLED)  # not indexed yet: the index still has the case open
    view = lookup(client, cw, "closed-unseen")
    assert view["status"] == "open" and [e["action"] for e in view["events"]] == ["opened"]  # the index's case
    feedback = view["feedback"]  # the chain's state: closed, so it can be rated
    assert feedback["source"] == "chain" and feedback["source_reason"] == "index_behind"
    assert feedback["status"] == "fulfilled" and feedback["can_rate"] and feedback["rate_refusal"] is None
    recorded(client, cw, client.post(RATINGS, json=cw.rating_body("closed-unseen", 3)), "closed-unseen",
             EntryKind.CASE_RATED)


def test_a_failed_rating_is_sent_again_when_the_chain_takes_it(client: TestClient, cw: CitizenWorld):
    """A rating that failed on chain cannot be signed anew (no nonce: the same record, the same signature), so the
    same signed record posted again is retried, once the chain would take it — not refused as a duplicate."""
    from ledger.chain.contract import Ledger
    from ledger.relay.verify import check_citizen_signature

    cw.open("retried")
    cw.sync()
    body = cw.rating_body("retried", 5)
    record = Rating(agency_id=cw.world.agency_id, case_id=receipt_case_id("retried"), score=5)
    ledger: Ledger = cw.ledger
    signed = check_citizen_signature(record, body["signature"], ledger.domain())
    service = client.app.state.agency_writes  # type: ignore[attr-defined]
    status, created = service.store.submit_citizen(signed)  # straight into the relay, past the API's checks
    deadline = time.monotonic() + 30
    while (status := service.store.status(status.key)).state != "failed":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert created and status.error_name == "InvalidReceiptCaseStatus"
    refused(client, cw, RATINGS, body, 409, "not_closed")  # still early: refused, not retried
    cw.act("retried", CaseAction.FULFILLED)
    cw.sync()
    answer = recorded(client, cw, client.post(RATINGS, json=body), "retried", EntryKind.CASE_RATED)
    assert answer["id"] == status.key  # the same submission, sent again
    refused(client, cw, RATINGS, body, 409, "duplicate")


def test_a_bad_rating_shows_when_its_rectification_is_due_and_when_it_came(client: TestClient, cw: CitizenWorld):
    """The citizen who rated a case 2 sees, in the receipt view as in the case view, when the agency responded and
    when it must rectify (15 working days after the rating: this chain publishes no calendar, so Monday to Friday),
    then when it did (its Rectified event)."""
    cw.open("rectified")
    cw.act("rectified", CaseAction.ACCEPTED)
    cw.act("rectified", CaseAction.FULFILLED)
    cw.sync()
    assert lookup(client, cw, "rectified")["rectification_due"] is None  # not rated (badly) yet
    recorded(client, cw, client.post(RATINGS, json=cw.rating_body("rectified", 2)), "rectified", EntryKind.CASE_RATED)
    cw.sync()
    rated = lookup(client, cw, "rectified")
    assert rated["rating"] == 2 and rated["rectified_at"] is None
    assert rated["rectification_due"] == working_days_due_always(rated["rated_at"], RECTIFICATION_WORKING_DAYS, {})

    cw.act("rectified", CaseAction.RECTIFIED)
    cw.sync()
    view = lookup(client, cw, "rectified")
    case = client.get(f"/api/v1/cases/{cw.agency}/{cw.case_hex('rectified')}").json()
    assert {k: v for k, v in view.items() if k not in ("receipt", "feedback")} == case
    events = {e["action"]: e for e in case["events"]}
    assert list(events) == ["opened", "accepted", "fulfilled", "rectified"] and case["invalid_transitions"] == 0
    assert case["responded_at"] == events["accepted"]["occurred_at"] <= case["response_due"]
    assert case["response_due"] == answer_due(case["opened_at"], {})
    assert case["rectified_at"] == events["rectified"]["occurred_at"] <= case["rectification_due"]
    assert case["rectification_due"] == rated["rectification_due"] and case["rated_at"] == rated["rated_at"]


# ---------------------------------------------------------------------- disputes


def test_a_fulfilment_is_disputed_answered_reopened_and_disputed_again(client: TestClient, cw: CitizenWorld):
    cw.open("disputed")
    cw.act("disputed", CaseAction.FULFILLED)
    cw.sync()
    reason = "The streetlight is still dark. 路灯还是不亮。"
    body = cw.dispute_body("disputed", 1, reason, publish=True)
    first = recorded(client, cw, client.post(DISPUTES, json=body), "disputed", EntryKind.CASE_DISPUTED)
    assert first["kind"] == "dispute"
    cw.sync()
    feedback = lookup(client, cw, "disputed")["feedback"]
    [dispute] = feedback["disputes"]
    assert dispute["closure"] == 1 and dispute["reason"] == reason and dispute["answer"] is None
    assert dispute["answer_due"] == dispute["disputed_at"] + DISPUTE_RESPONSE_WINDOW and not dispute["answer_overdue"]
    assert feedback["dispute_refusal"] == "already_disputed"
    refused(client, cw, DISPUTES, cw.dispute_body("disputed", 1, "again"), 409, "already_disputed")
    # a rating is still welcome while the dispute is open
    assert feedback["can_rate"]

    # the agency answers by reopening the case, then fulfils it again
    cw.act("disputed", CaseAction.REOPENED)
    cw.sync()
    view = lookup(client, cw, "disputed")
    assert view["feedback"]["status"] == "open" and view["feedback"]["dispute_refusal"] == "not_closed"
    answer = view["feedback"]["disputes"][0]["answer"]
    assert answer["action"] == "reopened" and answer["seq"] == view["events"][-1]["seq"]
    assert view["events"][-1]["action"] == "reopened"
    cw.act("disputed", CaseAction.FULFILLED)
    cw.sync()
    feedback = lookup(client, cw, "disputed")["feedback"]
    assert feedback["closures"] == 2 and feedback["dispute_closure"] == 2 and feedback["can_dispute"]
    # a signature for the first closure is stale now
    stale = refused(client, cw, DISPUTES, cw.dispute_body("disputed", 1), 409, "stale_closure")
    assert stale["error"]["expected_closure"] == 2
    second = cw.dispute_body("disputed", 2)
    recorded(client, cw, client.post(DISPUTES, json=second), "disputed", EntryKind.CASE_DISPUTED)

    # the agency stands by the fulfilment this time
    cw.act("disputed", CaseAction.DISPUTE_REJECTED)
    cw.sync()
    feedback = lookup(client, cw, "disputed")["feedback"]
    assert [d["answer"]["action"] for d in feedback["disputes"]] == ["reopened", "dispute_rejected"]
    assert feedback["disputes"][1]["reason"] is None  # none given
    # the fulfilment stands; the contract takes one dispute per closure, so none is offered, and the chain agrees
    assert feedback["status"] == "fulfilled" and feedback["closures"] == 2
    assert not feedback["can_dispute"] and feedback["dispute_refusal"] == "closure_disputed"
    assert feedback["dispute_closure"] == 2 and feedback["dispute_deadline"] is not None
    state = cw.ledger.receipt_case(cw.world.agency_id, receipt_case_id("disputed"))
    assert state.disputed_closure == state.closures == 2 and not state.disputed
    answer = refused(client, cw, DISPUTES, cw.dispute_body("disputed", 2, "once more"), 409, "closure_disputed")
    assert "once" in answer["error"]["message"]
    # the replay of the recorded dispute itself is recognised first
    refused(client, cw, DISPUTES, second, 409, "duplicate")


def test_the_chain_refuses_a_second_dispute_of_a_closure_the_index_has_not_seen_answered(
    client: TestClient, cw: CitizenWorld
):
    """The index lags the rejection of the dispute: it says a dispute awaits an answer; the chain, which has the
    answer, refuses a second dispute of the closure with the reason it has."""
    cw.open("answered-unseen")
    cw.act("answered-unseen", CaseAction.FULFILLED)
    cw.sync()
    recorded(client, cw, client.post(DISPUTES, json=cw.dispute_body("answered-unseen", 1)), "answered-unseen",
             EntryKind.CASE_DISPUTED)
    cw.sync()
    cw.act("answered-unseen", CaseAction.DISPUTE_REJECTED)  # not indexed yet
    seen = lookup(client, cw, "answered-unseen")["feedback"]
    assert seen["dispute_refusal"] == "closure_disputed" and seen["source"] == "chain"  # the chain has the answer
    refused(client, cw, DISPUTES, cw.dispute_body("answered-unseen", 1, "again"), 409, "closure_disputed")
    cw.sync()
    feedback = lookup(client, cw, "answered-unseen")["feedback"]
    assert not feedback["can_dispute"] and feedback["dispute_refusal"] == "closure_disputed"
    assert feedback["source"] == "index"  # caught up: the index's state is the chain's


def test_only_a_fulfilled_case_can_be_disputed(client: TestClient, cw: CitizenWorld):
    cw.open("rejected")
    early = cw.dispute_body("rejected", 1)
    cw.sync()
    refused(client, cw, DISPUTES, early, 409, "not_closed")
    cw.act("rejected", CaseAction.REJECTED)
    cw.sync()
    refused(client, cw, DISPUTES, early, 409, "not_fulfilled")


def test_scorecards_show_the_ratings_and_disputes(client: TestClient, cw: CitizenWorld):
    cw.sync()
    # as of the next whole minute: the default, this minute's start, may be before the cases made just now
    next_minute = (int(time.time()) // 60 + 1) * 60
    [card] = client.get("/api/v1/scorecards", params={"by": "agency", "as_of": next_minute}).json()["items"]
    metrics = card["metrics"]
    ratings = client.get(f"/api/v1/receipts/{cw.address('rated')}").json()["feedback"]["rating"]
    assert metrics["ratings"] == sum(metrics["rating_distribution"]) >= 1 and ratings["score"] == 4
    assert metrics["rating_distribution"][3] >= 1  # the 4 given above
    average = sum(n * score for n, score in zip(metrics["rating_distribution"], range(1, 6))) / metrics["ratings"]
    assert metrics["rating_average"] == f"{average:.4f}"
    assert metrics["disputes"] >= 2 and metrics["reopened"] >= 1 and metrics["disputes_unanswered"] == 0
    assert metrics["rating_response_rate"] is not None
    one = client.get("/api/v1/metrics", params={"agency_id": cw.agency}).json()["metrics"]
    assert {k: one[k] for k in ("ratings", "rating_average", "rating_distribution", "disputes", "reopened")} == {
        k: metrics[k] for k in ("ratings", "rating_average", "rating_distribution", "disputes", "reopened")}


def test_a_dispute_after_the_window_is_refused_by_the_chain(client: TestClient, cw: CitizenWorld):
    """The index cannot know the time of the next block; the chain can. Runs last: it moves the chain's clock."""
    cw.open("late")
    cw.act("late", CaseAction.FULFILLED)
    cw.sync()
    body = cw.dispute_body("late", 1)
    w3 = cw.chain.w3
    w3.provider.make_request("evm_increaseTime", [DISPUTE_WINDOW + 3600])
    w3.provider.make_request("evm_mine", [])
    answer = refused(client, cw, DISPUTES, body, 409, "dispute_window_closed")
    assert "passed" in answer["error"]["message"]


# ---------------------------------------------------------------------- status, limits


def test_unknown_submissions_are_not_found(client: TestClient, cw: CitizenWorld):
    for path in (RATINGS, DISPUTES):
        for ident in ("0x" + "00" * 32, "42"):
            answer = client.get(f"{path}/{ident}")
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_a_rating_is_not_found_as_a_dispute(client: TestClient, cw: CitizenWorld):
    cw.open("kinds")
    cw.act("kinds", CaseAction.FULFILLED)
    cw.sync()
    body = recorded(client, cw, client.post(RATINGS, json=cw.rating_body("kinds", 3)), "kinds", EntryKind.CASE_RATED)
    assert client.get(f"{DISPUTES}/{body['id']}").status_code == 404


def test_citizen_writes_are_rate_limited(cw: CitizenWorld, tmp_path: Path):
    with TestClient(create_app(cw.settings(data_dir=tmp_path, write_rate_per_minute=2))) as client:
        codes = [client.post(RATINGS, content=b"{", headers={"content-type": "application/json"}) for _ in range(3)]
        assert [c.status_code for c in codes] == [400, 400, 429]
        assert codes[-1].json()["error"]["code"] == "rate_limited"
        assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60
        # reads are not write-limited
        assert client.get(f"{RATINGS}/{'0x' + '00' * 32}").status_code in (404, 503)


def test_the_openapi_document_describes_the_citizen_api(client: TestClient):
    spec = client.get("/openapi.json").json()
    for path, method in [("/api/v1/receipts/{address}", "get"), ("/api/v1/ratings", "post"),
                         ("/api/v1/disputes", "post"), ("/api/v1/ratings/{submission_id}", "get"),
                         ("/api/v1/disputes/{submission_id}", "get")]:
        operation = spec["paths"][path][method]
        assert operation["summary"] and operation.get("description"), path
    rating_in = spec["components"]["schemas"]["RatingIn"]
    assert rating_in["examples"] and set(rating_in["required"]) == {"agency_id", "case_id", "score", "signature"}
    assert {"403", "404", "409", "422", "429"} <= set(spec["paths"]["/api/v1/ratings"]["post"]["responses"])


def test_ratings_go_by_the_citizens_lane_and_cost_no_agency_budget(client: TestClient, cw: CitizenWorld):
    cw.open("own-lane")
    cw.act("own-lane", CaseAction.FULFILLED)
    cw.sync()
    body = recorded(client, cw, client.post(RATINGS, json=cw.rating_body("own-lane", 5)), "own-lane",
                    EntryKind.CASE_RATED)
    service = client.app.state.agency_writes  # type: ignore[attr-defined]
    store = service.store
    assert store.citizen_outbox.get_by_key(f"{body['id']}/0") is not None  # the citizens' outbox, not the agencies'
    assert store.outbox.get_by_key(f"{body['id']}/0") is None
    sender = cw.chain.w3.eth.get_transaction(body["tx_hash"])["from"]
    assert sender == service.citizen_relayer_address != service.relayer_address
    assert all(use.used == 0 for use in store.budget_usage(body["receipt"]))
    assert all(use.used == 0 for use in store.budget_usage(cw.world.signer.address))
