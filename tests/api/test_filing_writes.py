"""Citizens filing requests and claiming printed receipts through the API, on a real anvil: a filing signed by a key
made on the device is an entry of the ledger at once, relayed by the citizens' lane with its content kept off chain in
the private store; every refusal is a clear 4xx that leaves nothing behind (no entry, nothing stored); and the bounds a
flood meets — per client, per agency — answer 429 with Retry-After."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import receipts
from ledger.chain.keys import KeyStore
from ledger.encoding import code_text
from ledger.filings import work_done
from ledger.records import EntryKind, FilingStatus, filed_case_id, short_code
from ledger.relay.store import CITIZEN_LANE, LANES, CitizenFiles
from tests.support.citizens import CitizenWorld, citizen_world, receipt_case_id, refused
from tests.support.filing_bodies import CLAIMS, FILINGS, WORK_BITS, claim_body, filing_body, png


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("filing-writes")) as world:
        world.chain.fund(KeyStore(world.data_dir / "keys").get_or_create(LANES[CITIZEN_LANE][1]).address)
        yield world


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    settings = cw.settings(filing_work_bits=WORK_BITS, filing_rate_per_minute=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def body_of(cw: CitizenWorld, **changes: Any) -> tuple[dict[str, Any], str]:
    return filing_body(cw.ledger, cw.world.agency_id, cw.world.commitment_id, **changes)


def filed(client: TestClient, cw: CitizenWorld, body: dict[str, Any]) -> dict[str, Any]:
    """Accepted and recorded once, the filer's key the entry's actor; the submission as answered."""
    answer = client.post(FILINGS, json=body)
    assert answer.status_code == 202, answer.text
    out = answer.json()
    assert out["status"] == "recorded", out
    receipt = body["filing"]["receipt"]
    block = cw.chain.w3.eth.get_transaction_receipt(out["tx_hash"])["blockNumber"]
    [entry] = [e for e in cw.ledger.entries(from_block=block, to_block=block) if e.seq == out["seq"]]
    assert entry.kind is EntryKind.FILING_RECORDED and entry.actor == receipt
    assert out["case_id"] == "0x" + filed_case_id(out["seq"]).hex()
    assert out["service_request_id"] == f"{cw.agency}:{out['case_id']}"
    assert answer.headers["location"] == f"{FILINGS}/submissions/{out['id']}"
    followed = client.get(answer.headers["location"])
    assert followed.status_code == 200 and followed.json() == out
    return out


def test_a_filing_is_on_the_ledger_at_once_and_its_content_only_in_the_private_store(
    client: TestClient, cw: CitizenWorld, caplog: pytest.LogCaptureFixture
):
    secret = "路灯坏了 — the light at No. 12, call me on 138 0000 0000"
    body, code = body_of(cw, description=secret, address="12 Harbour Road", lat="31.2304", long="121.4737",
                         contact={"phone": "138 0000 0000"}, attributes={"how_long": ["3 nights"]}, photos=[png(1)])
    with caplog.at_level(logging.DEBUG):
        out = filed(client, cw, body)
    assert secret not in caplog.text and "138 0000 0000" not in caplog.text
    state = cw.ledger.filing_state(out["seq"])
    assert state.status is FilingStatus.FILED and state.receipt == receipts.address(code)
    # the relayer is the citizens' lane's, paid by the service: the citizen's key holds nothing
    tx = cw.chain.w3.eth.get_transaction(out["tx_hash"])
    assert tx["from"] == KeyStore(cw.data_dir / "keys").get_or_create(LANES[CITIZEN_LANE][1]).address
    assert cw.chain.w3.eth.get_balance(receipts.address(code)) == 0
    # nothing of the content on chain: the transaction carries its hash only
    assert secret.encode() not in bytes(tx["input"]) and b"Harbour" not in bytes(tx["input"])
    stored = CitizenFiles(cw.data_dir / "relay").filing(receipts.address(code), bytes.fromhex(
        body["filing"]["content_hash"][2:]))
    assert stored is not None and stored.content.description == secret
    assert stored.content.contact == {"phone": "138 0000 0000"} and stored.photos == (("image/png", png(1)),)
    assert stored.agency_id == cw.world.agency_id and secret not in repr(stored)


def test_the_same_filing_twice_is_one_filing(client: TestClient, cw: CitizenWorld):
    body, _ = body_of(cw)
    out = filed(client, cw, body)
    again = client.post(FILINGS, json=body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate"
    assert again.json()["id"] == out["id"]


def test_a_key_files_once(client: TestClient, cw: CitizenWorld):
    code = receipts.new_code()
    filed(client, cw, body_of(cw, code=code)[0])
    second, _ = body_of(cw, code=code, description="another request with the same key")
    refused(client, cw, FILINGS, second, 409, "receipt_in_use")


def test_the_proof_of_work_is_asked(client: TestClient, cw: CitizenWorld):
    body, _ = body_of(cw)
    refused(client, cw, FILINGS, {k: v for k, v in body.items() if k != "work"}, 400, "work_missing")
    receipt = body["filing"]["receipt"]
    short = next(n for n in range(10_000) if not work_done(receipt, n, WORK_BITS))
    answer = refused(client, cw, FILINGS, {**body, "work": short}, 400, "work_missing")
    assert answer["error"]["work_bits"] == WORK_BITS
    # work done for one key is worth nothing for another (it is bound to the receipt address)
    other, _ = body_of(cw)
    if not work_done(other["filing"]["receipt"], body["work"], WORK_BITS):
        refused(client, cw, FILINGS, {**other, "work": body["work"]}, 400, "work_missing")
    filed(client, cw, body)


def test_content_that_is_not_what_was_signed_is_refused(client: TestClient, cw: CitizenWorld):
    body, _ = body_of(cw)
    changed = {**body, "content": {**body["content"], "description": body["content"]["description"] + "!"}}
    refused(client, cw, FILINGS, changed, 422, "content_mismatch")
    resalted = {**body, "salt": "0x" + "11" * 32}
    refused(client, cw, FILINGS, resalted, 422, "content_mismatch")
    with_photo, _ = body_of(cw, photos=[png(2)])
    other_photo = {**with_photo, "photos": [{"media_type": "image/png", "data": body_of(cw, photos=[png(3)])[0][
        "photos"][0]["data"]}]}
    refused(client, cw, FILINGS, other_photo, 422, "content_mismatch")
    no_photo = {**with_photo, "photos": []}
    refused(client, cw, FILINGS, no_photo, 422, "content_mismatch")
    not_png = {**with_photo, "photos": [{"media_type": "image/png", "data": "aGVsbG8="}]}
    refused(client, cw, FILINGS, not_png, 422, "content_mismatch")
    not_base64 = {**with_photo, "photos": [{"media_type": "image/png", "data": "***"}]}
    refused(client, cw, FILINGS, not_base64, 422, "invalid_body")


def test_a_filing_signed_by_another_key_is_refused(client: TestClient, cw: CitizenWorld):
    body, _ = body_of(cw, sign_with=receipts.private_key(receipts.new_code()))
    refused(client, cw, FILINGS, body, 403, "forged_signature")
    garbled = {**body, "signature": "0x1234"}
    refused(client, cw, FILINGS, garbled, 400, "bad_signature")


def test_the_module_s_refusals_are_answered_before_anything_is_stored(client: TestClient, cw: CitizenWorld):
    unknown_agency, _ = filing_body(cw.ledger, short_code("NO-SUCH-AGENCY"), cw.world.commitment_id)
    refused(client, cw, FILINGS, unknown_agency, 404, "unknown_agency")
    unknown_commitment, _ = filing_body(cw.ledger, cw.world.agency_id, short_code("NO-SUCH-SERVICE"))
    refused(client, cw, FILINGS, unknown_commitment, 404, "unknown_commitment")
    # the key of a receipt the agency issued is used already
    printed = cw.open("printed-for-filing")
    assert printed is not None
    used, _ = body_of(cw, code=printed)
    refused(client, cw, FILINGS, used, 409, "receipt_in_use")


@pytest.mark.parametrize(
    "change",
    [
        {"content": {"description": ""}},
        {"content": {"description": "x", "lat": "31.2"}},
        {"content": {"description": "x", "lat": "91", "long": "0"}},
        {"content": {"description": "x", "contact": {"home_address": "somewhere"}}},
        {"content": {"description": "x", "secret": 1}},
        {"filing": {"agency_id": "has space"}},
        {"unknown": 1},
    ],
)
def test_malformed_bodies_are_refused(client: TestClient, cw: CitizenWorld, change: dict[str, Any]):
    body, _ = body_of(cw)
    for key, value in change.items():
        body[key] = {**body[key], **value} if isinstance(body.get(key), dict) else value
    if "content" in change:
        body["content"] = change["content"]
    refused(client, cw, FILINGS, body, 422, "invalid_body")


def test_a_lone_surrogate_is_refused_as_invalid(client: TestClient, cw: CitizenWorld):
    body, _ = body_of(cw)
    document = json.dumps({**body, "content": {"description": "PLACEHOLDER"}}).replace("PLACEHOLDER", "\\ud800")
    answer = refused(client, cw, FILINGS, document, 422, "invalid_body")
    assert answer["error"]["message"].startswith("content.description")


def test_per_client_rate_and_per_agency_budget(cw: CitizenWorld, tmp_path: Path):
    relay_keys = KeyStore(tmp_path / "keys")
    cw.chain.fund(relay_keys.get_or_create(LANES[CITIZEN_LANE][1]).address)
    settings = cw.settings(data_dir=tmp_path, filing_work_bits=WORK_BITS, filing_rate_per_minute=0,
                           filings_per_agency_per_day=2)
    with TestClient(create_app(settings)) as limited:
        for _ in range(2):
            filed(limited, cw, body_of(cw)[0])
        answer = limited.post(FILINGS, json=body_of(cw)[0])
        assert answer.status_code == 429, answer.text
        assert answer.json()["error"]["code"] == "filing_budget_exhausted"
        assert 0 < int(answer.headers["retry-after"]) <= 86_401
    with TestClient(create_app(cw.settings(data_dir=tmp_path / "b", filing_work_bits=WORK_BITS,
                                           filing_rate_per_minute=1))) as slow:
        first = slow.post(FILINGS, json=body_of(cw, description="x")[0])
        assert first.status_code != 429
        second = slow.post(FILINGS, json=body_of(cw)[0])
        assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limited"
        assert int(second.headers["retry-after"]) >= 1


# ---------------------------------------------------------------------- claiming a printed receipt


def test_a_printed_receipt_is_claimed_once_with_both_keys(client: TestClient, cw: CitizenWorld):
    printed = cw.open("claimed-at-home")
    assert printed is not None
    case = receipt_case_id("claimed-at-home")
    assert not cw.ledger.citizen_held(cw.world.agency_id, case)
    body, own = claim_body(cw.ledger, cw.world.agency_id, case, printed)
    answer = client.post(CLAIMS, json=body)
    assert answer.status_code == 202, answer.text
    out = answer.json()
    assert out["status"] == "recorded" and out["kind"] == "receipt_claim"
    assert out["receipt"] == receipts.address(printed) and out["case_id"] == "0x" + case.hex()
    assert cw.ledger.citizen_held(cw.world.agency_id, case)
    assert cw.ledger.receipt_case(cw.world.agency_id, case).receipt == receipts.address(own)
    assert client.get(answer.headers["location"]).json() == out
    # the printed code cannot move it again: its key no longer holds the case
    again, _ = claim_body(cw.ledger, cw.world.agency_id, case, printed)
    refused(client, cw, CLAIMS, again, 403, "forged_signature")
    by_owner, _ = claim_body(cw.ledger, cw.world.agency_id, case, own)
    refused(client, cw, CLAIMS, by_owner, 409, "already_claimed")


def test_forged_and_impossible_claims_are_refused(client: TestClient, cw: CitizenWorld):
    printed = cw.open("claim-forged")
    assert printed is not None
    case = receipt_case_id("claim-forged")
    forged, _ = claim_body(cw.ledger, cw.world.agency_id, case, printed,
                           sign_with=receipts.private_key(receipts.new_code()))
    refused(client, cw, CLAIMS, forged, 403, "forged_signature")
    wrong_new, _ = claim_body(cw.ledger, cw.world.agency_id, case, printed)
    wrong_new["new_key_signature"] = claim_body(cw.ledger, cw.world.agency_id, case, printed)[0]["new_key_signature"]
    refused(client, cw, CLAIMS, wrong_new, 403, "forged_signature")
    nowhere, _ = claim_body(cw.ledger, cw.world.agency_id, receipt_case_id("no such case"), printed)
    refused(client, cw, CLAIMS, nowhere, 404, "unknown_receipt")
    # a claim to a key used already (another case's printed key) is refused by the module
    other = cw.open("claim-target-used")
    assert other is not None
    to_used, _ = claim_body(cw.ledger, cw.world.agency_id, case, printed, own=other)
    refused(client, cw, CLAIMS, to_used, 409, "receipt_in_use")


def test_unknown_submissions_are_not_found(client: TestClient):
    for path in (f"{FILINGS}/submissions/0x" + "ab" * 32, f"{CLAIMS}/0x" + "ab" * 32, f"{CLAIMS}/nope"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_the_openapi_document_describes_filing(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths[FILINGS] and "post" in paths[CLAIMS]
    assert code_text(short_code("X")) == "X"


def test_the_filing_policy_names_the_domain_and_the_work(client: TestClient, cw: CitizenWorld):
    policy = client.get("/api/v1/filing-policy").json()
    assert policy["domain"] == cw.ledger.filings_domain()
    assert policy["work"] == {"bits": WORK_BITS, "domain": "civic-ledger/filing-work/v1"}
    assert policy["content"]["format"] == "civic-filing/1" and policy["channels"]["web"] == 3
