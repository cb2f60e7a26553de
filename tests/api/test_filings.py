"""The filings API: ``GET /api/v1/filings`` (every page, by agency, by state, by the filer's key) and
``GET /api/v1/filings/{seq}`` show each filing as the ledger has it — public codes and hashes, the block time that
starts its clock, when its answer is due — and the agency's answer. On a real anvil, with the index in SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import receipts
from ledger.filings import answer_due
from ledger.records import CaseAction, FilingDecision, filed_case_id
from tests.support import filings
from tests.support.citizens import CitizenWorld, citizen_world, receipt_case_id


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("filings-api")) as world:
        yield world


@pytest.fixture(scope="module")
def filed(cw: CitizenWorld) -> dict[str, Any]:
    """Three filings: one accepted, one rejected as spam, one awaiting; and another agency's."""
    w = cw.world
    codes = [receipts.new_code() for _ in range(3)]
    seqs = [filings.file(w, code) for code in codes]
    filings.accept(w, seqs[0])
    filings.answer(w, seqs[1], FilingDecision.SPAM)
    cw.sync()
    return {"codes": codes, "seqs": seqs}


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    with TestClient(create_app(cw.settings())) as test_client:
        yield test_client


def block_time(cw: CitizenWorld, seq: int) -> int:
    entry = next(e for e in cw.ledger.entries() if e.seq == seq)
    return int(cw.chain.w3.eth.get_block(entry.block_number)["timestamp"])


def test_a_filing_as_the_ledger_has_it(client: TestClient, cw: CitizenWorld, filed: dict[str, Any]) -> None:
    accepted, spam, awaiting = filed["seqs"]
    view = client.get(f"/api/v1/filings/{accepted}").json()
    filed_at = block_time(cw, accepted)
    assert view["agency_id"] == cw.agency and view["commitment_id"] == "STREETLIGHT-48H"
    assert view["channel"] == "app" and view["receipt"] == receipts.address(filed["codes"][0])
    assert view["relayer"] == cw.world.relayer.address and view["filed_at"] == filed_at
    assert view["answer_due"] == answer_due(filed_at, {})  # no calendar published: Monday to Friday
    assert view["content_hash"] == "0x" + filings.CONTENT.hex()
    answer = view["answer"]
    assert answer["decision"] == "accepted" and answer["case_id"] == "0x" + filed_case_id(accepted).hex()
    assert answer["late"] is False and answer["duplicate_of"] is None and not view["overdue"]
    entry = next(e for e in cw.ledger.entries() if e.seq == accepted)
    assert view["proof"]["tx_hash"] == "0x" + entry.transaction_hash.hex()
    assert view["proof"]["entry_hash"] == "0x" + entry.entry_hash.hex()
    rejected = client.get(f"/api/v1/filings/{spam}").json()["answer"]
    assert rejected["decision"] == "spam" and rejected["case_id"] is None and rejected["reason_hash"]
    assert client.get(f"/api/v1/filings/{awaiting}").json()["answer"] is None


def test_filings_are_listed_by_state_agency_and_key(client: TestClient, filed: dict[str, Any]) -> None:
    accepted, spam, awaiting = filed["seqs"]
    every = [item["seq"] for item in client.get("/api/v1/filings").json()["items"]]
    assert every == sorted(every) and {accepted, spam, awaiting} <= set(every)
    waiting = [item["seq"] for item in client.get("/api/v1/filings", params={"state": "awaiting"}).json()["items"]]
    assert awaiting in waiting and accepted not in waiting and spam not in waiting
    answered = [item["seq"] for item in client.get("/api/v1/filings", params={"state": "answered"}).json()["items"]]
    assert {accepted, spam} <= set(answered) and awaiting not in answered
    mine = client.get("/api/v1/filings", params={"receipt": receipts.address(filed["codes"][2]).lower()}).json()
    assert [item["seq"] for item in mine["items"]] == [awaiting]
    assert client.get("/api/v1/filings", params={"agency_id": "NO-SUCH"}).json()["items"] == []


def test_filings_come_a_page_at_a_time(client: TestClient, filed: dict[str, Any]) -> None:
    first = client.get("/api/v1/filings", params={"limit": 2})
    page = first.json()
    assert len(page["items"]) == 2 and page["next"] == page["items"][-1]["seq"]
    assert 'rel="next"' in first.headers["link"]
    rest = client.get("/api/v1/filings", params={"limit": 2, "after": page["next"]}).json()
    assert all(item["seq"] > page["next"] for item in rest["items"])


def test_no_such_filing_and_a_bad_key_are_clear_errors(client: TestClient, filed: dict[str, Any]) -> None:
    missing = client.get("/api/v1/filings/999999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    not_a_filing = client.get("/api/v1/filings/0")  # an entry, but no filing
    assert not_a_filing.status_code == 404
    bad = client.get("/api/v1/filings", params={"receipt": "0x1234"})
    assert bad.status_code == 422


def test_a_claimed_receipt_is_shown_to_both_keys_as_it_stands(client: TestClient, cw: CitizenWorld) -> None:
    """A printed receipt, fulfilled, then claimed to the holder's own key: the new key may rate the fulfilment made
    before the claim (the contract tracks the case from its first receipt), and the printed key is shown that the
    case was claimed away from it — nothing it signs counts any more."""
    printed = cw.open("claimed-after-fulfilment")
    assert printed is not None
    cw.act("claimed-after-fulfilment", CaseAction.FULFILLED)
    own = receipts.new_code()
    filings.claim(cw.world, receipt_case_id("claimed-after-fulfilment"), receipts.address(own),
                  receipts.private_key(printed), receipt_key=receipts.private_key(own))
    claim_seq = cw.ledger.entry_count() - 1
    cw.sync()
    mine = client.get(f"/api/v1/receipts/{receipts.address(own)}").json()["feedback"]
    assert mine["status"] == "fulfilled" and mine["closures"] == 1 and mine["can_rate"] and mine["can_dispute"]
    assert mine["claimed_by"] is None
    old = client.get(f"/api/v1/receipts/{receipts.address(printed)}").json()["feedback"]
    assert old["claimed_by"] == receipts.address(own) and old["claimed_seq"] == claim_seq
    assert (old["can_rate"], old["rate_refusal"], old["can_dispute"], old["dispute_refusal"]) == (
        False, "claimed", False, "claimed")
