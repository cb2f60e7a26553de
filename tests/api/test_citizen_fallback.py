"""Citizens never depend on the index being whole: with the indexer stopped (halted by a withheld batch file, or a
node it follows lagging — here it is simply not run after some point), a receipt issued after that point is found on
the chain, its case's state is the contract's own (``receiptCase``), and ratings and disputes are taken exactly when
the chain takes them and refused with its reasons. On a real anvil, with the index in SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import receipts
from ledger.cases import DISPUTE_WINDOW
from ledger.chain.keys import KeyStore
from ledger.chain.receipt_case import ChainReceipts
from ledger.errors import NodeUnavailable
from ledger.records import CaseAction, EntryKind
from ledger.store.db import open_store
from ledger.store.schema import sync_state
from tests.support import filings
from tests.support.citizens import (
    DISPUTES,
    RATINGS,
    CitizenWorld,
    citizen_world,
    index_last_block,
    lookup,
    receipt_case_id,
    recorded,
    refused,
)

#: small ranges, so that a few blocks behind the index already take several eth_getLogs
SEARCH = {"receipt_search_step": "3", "receipt_search_ranges": "1000"}


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("citizen-fallback")) as world:
        world.sync()
        yield world


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    with TestClient(create_app(cw.settings(extra=SEARCH))) as test_client:
        test_client.app.state.agency_writes.warm_up()  # type: ignore[attr-defined]
        keys = KeyStore(cw.data_dir / "keys")
        for path in (cw.data_dir / "keys").glob("*.json"):  # every relay key the app made (one per lane)
            cw.chain.fund(keys.get_or_create(path.stem).address)
        yield test_client


def unseen(cw: CitizenWorld, name: str, *actions: CaseAction) -> None:
    """A case opened with a receipt and moved along after the index stopped: the index has none of it."""
    before = index_last_block(cw)
    cw.open(name)
    for action in actions:
        cw.act(name, action)
    assert cw.chain.w3.eth.block_number > before and index_last_block(cw) == before


def chain_state(cw: CitizenWorld, name: str) -> Any:
    return cw.ledger.receipt_case(cw.world.agency_id, receipt_case_id(name))


# ---------------------------------------------------------------------- looking up


def test_citizen_looks_up_a_receipt_the_index_has_not_seen(client: TestClient, cw: CitizenWorld) -> None:
    unseen(cw, "unseen-lookup", CaseAction.ACCEPTED, CaseAction.FULFILLED)
    view = lookup(client, cw, "unseen-lookup")
    feedback, state = view["feedback"], chain_state(cw, "unseen-lookup")
    assert feedback["source"] == "chain" and feedback["source_reason"] == "index_lacks_receipt"
    # what the chain knows, as it knows it
    assert feedback["status"] == "fulfilled" and feedback["closures"] == state.closures == 1
    assert feedback["closed_at"] == state.closed_at and not feedback["rated"]
    assert feedback["can_rate"] and feedback["can_dispute"] and feedback["dispute_closure"] == 1
    assert feedback["dispute_deadline"] == state.closed_at + DISPUTE_WINDOW
    # and nothing the index lacks is made up: no events, no case state, no rating, no disputes
    assert view["agency_id"] == cw.agency and view["case_id"] == cw.case_hex("unseen-lookup")
    assert view["events"] == [] and view["status"] is None
    assert feedback["rating"] is None and feedback["disputes"] == []
    # the receipt, with a proof that checks against the node
    receipt = view["receipt"]
    assert receipt["address"] == cw.address("unseen-lookup") and not receipt["final"]
    proof = receipt["proof"]
    tx = cw.chain.w3.eth.get_transaction_receipt(proof["tx_hash"])
    block = cw.chain.w3.eth.get_block(proof["block_number"])
    assert tx["blockNumber"] == proof["block_number"] and "0x" + bytes(block["hash"]).hex() == proof["block_hash"]
    assert block["timestamp"] == proof["block_time"]
    [entry] = [e for e in cw.ledger.entries(proof["block_number"], proof["block_number"]) if e.seq == proof["seq"]]
    assert entry.kind is EntryKind.RECEIPT_ISSUED and entry.log_index == proof["log_index"]
    assert "0x" + entry.entry_hash.hex() == proof["entry_hash"]

    # once the index catches up, it answers again, with the same state
    cw.sync()
    caught_up = lookup(client, cw, "unseen-lookup")
    assert caught_up["feedback"]["source"] == "index" and caught_up["feedback"]["source_reason"] is None
    assert {k: caught_up["feedback"][k] for k in ("status", "closures", "closed_at", "dispute_deadline")} == {
        k: feedback[k] for k in ("status", "closures", "closed_at", "dispute_deadline")}
    assert caught_up["receipt"]["proof"] == {**proof, "batch": None}
    assert [e["action"] for e in caught_up["events"]] == ["opened", "accepted", "fulfilled"]


def test_citizen_looks_up_a_case_whose_latest_change_the_index_has_not_seen(
    client: TestClient, cw: CitizenWorld
) -> None:
    cw.open("behind")
    cw.sync()
    cw.act("behind", CaseAction.REJECTED)  # the index still has the case open
    view = lookup(client, cw, "behind")
    assert view["status"] == "open" and [e["action"] for e in view["events"]] == ["opened"]
    feedback = view["feedback"]
    assert feedback["source"] == "chain" and feedback["source_reason"] == "index_behind"
    assert feedback["status"] == "closed_unfulfilled" and feedback["can_rate"]
    assert not feedback["can_dispute"] and feedback["dispute_refusal"] == "not_fulfilled"
    assert view["receipt"]["proof"]["seq"] == view["events"][0]["seq"] + 1  # the index's receipt, as before


def test_a_filer_and_a_claimant_look_up_keys_the_index_has_not_seen(client: TestClient, cw: CitizenWorld) -> None:
    """A filer's key is bound to its case by the acceptance of the filing, a claimant's by the claim: both are found
    on the chain, with the proof of the entry that bound them; a filing not answered yet has no case to show."""
    before = index_last_block(cw)
    filer, pending, own = (receipts.new_code() for _ in range(3))
    accepted = filings.accept(cw.world, filings.file(cw.world, filer))
    filings.file(cw.world, pending)
    printed = cw.open("printed-unseen")
    assert printed is not None
    case_id = receipt_case_id("printed-unseen")
    filings.claim(cw.world, case_id, receipts.address(own), receipts.private_key(printed),
                  receipt_key=receipts.private_key(own))
    assert index_last_block(cw) == before
    for code, case, kind in ((filer, accepted, EntryKind.FILING_ANSWERED), (own, case_id, EntryKind.RECEIPT_CLAIMED)):
        answer = client.get(f"/api/v1/receipts/{receipts.address(code)}")
        assert answer.status_code == 200, answer.text
        view = answer.json()
        assert view["feedback"]["source_reason"] == "index_lacks_receipt" and view["case_id"] == "0x" + case.hex()
        assert view["feedback"]["status"] == "open" and view["feedback"]["can_rate"] is False
        proof = view["receipt"]["proof"]
        [entry] = [e for e in cw.ledger.entries(proof["block_number"], proof["block_number"])
                   if e.seq == proof["seq"]]
        assert entry.kind is kind and "0x" + entry.entry_hash.hex() == proof["entry_hash"]
    assert client.get(f"/api/v1/receipts/{receipts.address(pending)}").status_code == 404
    # the printed key, moved away from, no longer finds the case on the chain
    assert client.get(f"/api/v1/receipts/{cw.address('printed-unseen')}").status_code == 404


def test_an_unknown_receipt_key_is_not_found_after_the_chain_is_searched(client: TestClient, cw: CitizenWorld) -> None:
    unseen(cw, "unseen-other")  # blocks the index has not read, with another receipt in them
    missing = client.get(f"/api/v1/receipts/{Account.create().address}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # a rating of a case that has no receipt on chain: the same clear refusal as ever
    body = cw.rating_body("unseen-other", 3, case=receipt_case_id("never opened"))
    refused(client, cw, RATINGS, body, 404, "unknown_receipt")


def test_citizen_looks_up_from_the_index_alone_when_the_node_is_down(cw: CitizenWorld, tmp_path: Path) -> None:
    cw.open("indexed-only")
    cw.sync()
    unseen(cw, "unseen-node-down")
    settings = cw.settings(rpc_url="http://127.0.0.1:9", data_dir=tmp_path)  # nothing listens on the discard port
    with TestClient(create_app(settings)) as client:
        feedback = lookup(client, cw, "indexed-only")["feedback"]
        assert feedback["source"] == "index" and feedback["status"] == "open"
        # the chain cannot be searched: not found, not a 500
        assert client.get(f"/api/v1/receipts/{cw.address('unseen-node-down')}").status_code == 404


# ---------------------------------------------------------------------- rating and disputing


def test_citizen_rates_a_case_the_index_has_not_seen(client: TestClient, cw: CitizenWorld) -> None:
    unseen(cw, "unseen-rated", CaseAction.FULFILLED)
    body = cw.rating_body("unseen-rated", 5, "Quick and kind. 又快又好。", publish=True)
    answer = recorded(client, cw, client.post(RATINGS, json=body), "unseen-rated", EntryKind.CASE_RATED)
    assert chain_state(cw, "unseen-rated").rated
    # the view says so before the index does, from the chain
    feedback = lookup(client, cw, "unseen-rated")["feedback"]
    assert feedback["source"] == "chain" and feedback["rated"] and feedback["rate_refusal"] == "already_rated"
    assert [s["id"] for s in feedback["submissions"]] == [answer["id"]]
    # a second rating: refused with the chain's reason
    refused(client, cw, RATINGS, cw.rating_body("unseen-rated", 1), 409, "already_rated")
    cw.sync()
    rating = lookup(client, cw, "unseen-rated")["feedback"]["rating"]
    assert rating["score"] == 5 and rating["proof"]["seq"] == answer["seq"]


def test_citizen_rates_a_case_while_the_index_is_halted(client: TestClient, cw: CitizenWorld) -> None:
    """An index halted on purpose (as by a batch whose file its agency never published) answers nothing new; the
    citizen's case, closed after the halt, is rated all the same."""
    store = open_store(cw.store_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(sync_state.update().values(halted_reason="batch file withheld (test)"))
        unseen(cw, "unseen-halted", CaseAction.FULFILLED)
        feedback = lookup(client, cw, "unseen-halted")["feedback"]
        assert feedback["source"] == "chain" and feedback["can_rate"]
        body = cw.rating_body("unseen-halted", 2)
        recorded(client, cw, client.post(RATINGS, json=body), "unseen-halted", EntryKind.CASE_RATED)
        assert lookup(client, cw, "unseen-halted")["feedback"]["rate_refusal"] == "already_rated"
    finally:
        with store.engine.begin() as conn:
            conn.execute(sync_state.update().values(halted_reason=None))
        store.close()


def test_citizen_disputes_a_fulfilment_the_index_has_not_seen_within_the_window(
    client: TestClient, cw: CitizenWorld
) -> None:
    unseen(cw, "unseen-disputed", CaseAction.FULFILLED)
    assert lookup(client, cw, "unseen-disputed")["feedback"]["can_dispute"]
    body = cw.dispute_body("unseen-disputed", 1, "Still broken. 还是坏的。")
    recorded(client, cw, client.post(DISPUTES, json=body), "unseen-disputed", EntryKind.CASE_DISPUTED)
    state = chain_state(cw, "unseen-disputed")
    assert state.disputed and state.disputed_closure == 1
    feedback = lookup(client, cw, "unseen-disputed")["feedback"]
    assert feedback["source"] == "chain" and feedback["dispute_refusal"] == "already_disputed"
    refused(client, cw, DISPUTES, cw.dispute_body("unseen-disputed", 1, "again"), 409, "already_disputed")


def test_a_rating_by_a_wrong_key_of_a_case_the_index_has_not_seen_is_refused(
    client: TestClient, cw: CitizenWorld
) -> None:
    unseen(cw, "unseen-forged", CaseAction.FULFILLED)
    unseen(cw, "unseen-neighbour", CaseAction.FULFILLED)
    agency_key = cw.world.signer.key
    answer = refused(client, cw, RATINGS, cw.rating_body("unseen-forged", 5, key=agency_key), 403, "forged_signature")
    assert "receipt key" in answer["error"]["message"]
    other = receipts.private_key(cw.codes["unseen-neighbour"])  # a genuine receipt key, of another case
    refused(client, cw, RATINGS, cw.rating_body("unseen-forged", 5, key=other), 403, "forged_signature")
    refused(client, cw, DISPUTES, cw.dispute_body("unseen-forged", 1, key=Account.create().key), 403,
            "forged_signature")
    assert not chain_state(cw, "unseen-forged").rated


def test_citizen_is_refused_what_the_chain_refuses_when_the_index_lacks_the_case(
    client: TestClient, cw: CitizenWorld
) -> None:
    unseen(cw, "unseen-open")
    refused(client, cw, RATINGS, cw.rating_body("unseen-open", 4), 409, "not_closed")
    refused(client, cw, DISPUTES, cw.dispute_body("unseen-open", 1), 409, "not_closed")
    unseen(cw, "unseen-withdrawn", CaseAction.WITHDRAWN)
    refused(client, cw, DISPUTES, cw.dispute_body("unseen-withdrawn", 1), 409, "not_fulfilled")
    unseen(cw, "unseen-reclosed", CaseAction.FULFILLED, CaseAction.REOPENED, CaseAction.FULFILLED)
    stale = refused(client, cw, DISPUTES, cw.dispute_body("unseen-reclosed", 1), 409, "stale_closure")
    assert stale["error"]["expected_closure"] == 2
    assert lookup(client, cw, "unseen-reclosed")["feedback"]["dispute_closure"] == 2


# ---------------------------------------------------------------------- the search itself


class CountingReads:
    """Records what the look-up asks the node: eth_getLogs block ranges and contract calls."""

    def __init__(self, cw: CitizenWorld, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.calls = 0
        eth = cw.chain.w3.eth
        real_logs, real_call = eth.get_logs, eth.call

        def get_logs(params: dict[str, Any]) -> Any:
            self.ranges.append((int(params["fromBlock"]), int(params["toBlock"])))
            return real_logs(params)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real_call(*args, **kwargs)

        monkeypatch.setattr(eth, "get_logs", get_logs)
        monkeypatch.setattr(eth, "call", call)


def test_a_look_up_costs_the_same_however_far_behind_the_index_is(
    cw: CitizenWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One call and one log read of one block for an issued key; the call alone for a key never issued — whatever
    the index's lag, the number of receipts, or how many strangers look up random keys."""
    cw.sync()
    unseen(cw, "search-a")
    for i in range(6):
        cw.open(f"search-filler-{i}", receipt=False)
    unseen(cw, "search-b")
    reads = CountingReads(cw, monkeypatch)
    search = ChainReceipts(cw.ledger)
    found = search.find(cw.address("search-b"))
    assert found is not None and found.case_id == receipt_case_id("search-b")
    assert found.agency_id == cw.world.agency_id and found.address == cw.address("search-b")
    ((low, high),) = reads.ranges
    assert low == high == found.entry.block_number
    assert found.block_time == cw.chain.w3.eth.get_block(low)["timestamp"]
    calls = reads.calls
    for _ in range(20):
        assert search.find(Account.create().address) is None
    assert len(reads.ranges) == 1 and reads.calls == calls + 20


def test_a_receipt_reorganised_away_is_not_found(cw: CitizenWorld) -> None:
    cw.sync()
    search = ChainReceipts(cw.ledger)
    snapshot = cw.chain.snapshot()
    unseen(cw, "reorged")
    assert search.find(cw.address("reorged")) is not None
    cw.chain.revert(snapshot)  # the blocks that held it are gone; others take their numbers
    for i in range(3):
        cw.open(f"reorg-filler-{i}", receipt=False)
    assert search.find(cw.address("reorged")) is None
    unseen(cw, "reorged")  # issued again, on the new chain
    found = search.find(cw.address("reorged"))
    assert found is not None and found.entry.block_number == cw.chain.w3.eth.block_number


def test_the_chain_search_says_when_the_node_is_unreachable(cw: CitizenWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    search = ChainReceipts(cw.ledger)

    def refuse(params: dict[str, Any]) -> Any:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(cw.chain.w3.eth, "get_logs", refuse)
    unseen(cw, "node-gone")
    with pytest.raises(NodeUnavailable, match="did not answer"):
        search.find(cw.address("node-gone"))
