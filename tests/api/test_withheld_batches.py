"""Withheld batches in the read API, on a real anvil and index: an agency that never publishes a batch file, or anchors
a root no file can match, holds up nobody — the other agency's later cases are served — and the withheld batches show
on ``/chain``, the batch list and detail, the agency's record and its scorecard, never as a server error. Once the
missing file is published and the index re-synced, the entries are served at their seqs and the figures equal a
ledger whose file was there from the start; the impossible batch stays withheld. A batched fulfilment of a receipt
case is shown, not applied, and says why."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import receipts
from ledger.cases import BATCHED_RECEIPT_CASE_EVENT
from tests.support.batches import batch_case_id
from tests.support.everything import store_url
from tests.support.withheld import WithheldWorld, withheld_world

V1 = "/api/v1"


@pytest.fixture(scope="module")
def ww(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WithheldWorld]:
    with withheld_world(tmp_path_factory.mktemp("withheld")) as world:
        yield world


@pytest.fixture(scope="module")
def client(ww: WithheldWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('withheld-index') / 'index.sqlite3'}"
    ww.index(url)
    with TestClient(create_app(ww.settings(url))) as test_client:
        yield test_client


def figures(client: TestClient, ww: WithheldWorld) -> dict[str, Any]:
    """Metrics and agency scorecards over everything, at a fixed instant."""
    window = {"from": "0", "to": str(ww.world.now() + 86_400), "as_of": str(ww.world.now() + 3600)}
    return {
        "metrics": client.get(f"{V1}/metrics", params=window).json(),
        "scorecards": client.get(f"{V1}/scorecards", params=window).json(),
    }


def test_a_withholding_agency_does_not_stop_the_other_agency_s_later_cases(
    client: TestClient, ww: WithheldWorld
) -> None:
    chain = client.get(f"{V1}/chain").json()
    assert chain["entry_count"] == ww.world.ledger.entry_count() and chain["halted_reason"] is None
    later = ww.world.opened("water-after").case_id
    case = client.get(f"{V1}/cases/{ww.water}/0x{later.hex()}")
    assert case.status_code == 200 and case.json()["status"] == "open"
    log = client.get(f"{V1}/entries", params={"limit": 1000}).json()["items"]
    assert log[-1]["seq"] == ww.world.ledger.entry_count() - 1 and log[-1]["agency_id"] == ww.water


def test_chain_facts_count_the_withheld_batches_and_link_their_list(client: TestClient, ww: WithheldWorld) -> None:
    chain = client.get(f"{V1}/chain").json()
    assert chain["batches_withheld"] == 2
    assert chain["entries_withheld"] == ww.missing.count + ww.impossible_count
    listed = client.get(chain["withheld_batches_url"]).json()["items"]
    assert [b["seq"] for b in listed] == [ww.missing_seq, ww.impossible_seq]
    kinds = {b["seq"]: (b["withheld"], b["withheld_reason"]) for b in listed}
    assert kinds[ww.missing_seq][0] == "missing" and "file missing" in kinds[ww.missing_seq][1]
    assert kinds[ww.impossible_seq][0] == "impossible" and "root differs" in kinds[ww.impossible_seq][1]
    indexed = client.get(f"{V1}/batches", params={"withheld": "false"}).json()["items"]
    assert [b["seq"] for b in indexed] == [ww.batched_fulfilment] and indexed[0]["withheld"] is None


def test_a_withheld_batch_is_shown_with_why_and_its_entries_are_not_served(
    client: TestClient, ww: WithheldWorld
) -> None:
    for seq in (ww.missing_seq, ww.impossible_seq):
        answer = client.get(f"{V1}/batches/{seq}")
        assert answer.status_code == 200, answer.text
        batch = answer.json()
        assert batch["withheld"] in ("missing", "impossible") and batch["withheld_reason"]
        assert batch["agency_id"] == ww.roads and batch["proof"]["batch"] is None
        assert answer.headers["cache-control"] == "public, max-age=5"  # it may still change: never immutable
        inside = client.get(f"{V1}/entries/{seq + 1}")
        assert inside.status_code == 404
        message = inside.json()["error"]["message"]
        assert f"batch #{seq}" in message and "withheld" in message
        assert client.get(f"{V1}/batches/{seq + 1}").json()["error"]["message"].startswith(
            f"no batch starts at seq {seq + 1}: entry {seq + 1} is in batch #{seq}"
        )
    # the impossible batch's file (it hashes to the anchored hash) is served: it is the evidence
    assert client.get(f"{V1}/batches/{ww.impossible_seq}/file").status_code == 200
    refused = client.get(f"{V1}/batches/{ww.missing_seq}/file")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "batch_file_unavailable"


def test_the_agency_record_and_its_scorecard_count_its_withheld_batches(
    client: TestClient, ww: WithheldWorld
) -> None:
    roads = client.get(f"{V1}/agencies/{ww.roads}").json()
    assert roads["batches_withheld"] == 2 and roads["entries_withheld"] == ww.missing.count + ww.impossible_count
    water = client.get(f"{V1}/agencies/{ww.water}").json()
    assert (water["batches_withheld"], water["entries_withheld"]) == (0, 0)
    listed = {a["agency_id"]: a for a in client.get(f"{V1}/agencies").json()["items"]}
    assert listed[ww.roads]["batches_withheld"] == 2
    cards = {c["agency_id"]: c for c in figures(client, ww)["scorecards"]["items"]}
    assert (cards[ww.roads]["batches_withheld"], cards[ww.roads]["entries_withheld"]) == (
        2, ww.missing.count + ww.impossible_count)
    assert cards[ww.water]["batches_withheld"] == 0
    by_commitment = client.get(f"{V1}/scorecards", params={"by": "commitment"}).json()["items"]
    assert all(c["batches_withheld"] is None for c in by_commitment)


def test_a_batched_fulfilment_of_a_receipt_case_is_shown_but_not_applied(
    client: TestClient, ww: WithheldWorld
) -> None:
    view = client.get(f"{V1}/cases/{ww.roads}/0x{ww.receipted.hex()}").json()
    assert view["status"] == "open" and view["closed_at"] is None
    assert [e["action"] for e in view["events"]] == ["opened", "fulfilled"]
    opened, fulfilled = view["events"]
    assert opened["not_applied_reason"] is None
    assert fulfilled["seq"] == ww.batched_fulfilment and fulfilled["proof"]["batch"]["merkle_proof"] is not None
    assert fulfilled["not_applied_reason"] == BATCHED_RECEIPT_CASE_EVENT
    entry = client.get(f"{V1}/entries/{ww.batched_fulfilment}").json()
    assert entry["not_applied_reason"] == BATCHED_RECEIPT_CASE_EVENT
    assert client.get(f"{V1}/entries/{ww.batched_fulfilment - 1}").json()["not_applied_reason"] is None
    held = client.get(f"{V1}/receipts/{receipts.address(ww.receipt_code)}")
    assert held.status_code == 200, held.text
    assert held.json()["status"] == "open"
    assert held.json()["events"][-1]["not_applied_reason"] == BATCHED_RECEIPT_CASE_EVENT
    # the receipt's holder sees the case as the contract tracks it: still open, so not yet to be rated or disputed
    # (the batched "fulfilment" moved nothing), from the index itself, which agrees with the chain
    feedback = held.json()["feedback"]
    assert feedback["source"] == "index", feedback
    assert feedback["can_rate"] is False and feedback["rate_refusal"] == "not_closed", feedback
    assert feedback["can_dispute"] is False, feedback
    exported = [line for line in client.get(f"{V1}/export/entries.jsonl").text.splitlines()
                if f'"seq":{ww.batched_fulfilment},' in line.replace(" ", "")]
    assert len(exported) == 1 and "not applied" in exported[0]


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_file_published_later_slots_its_entries_in_and_the_figures_follow(
    ww: WithheldWorld, tmp_path: Path, db: str
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(ww.batch_dir, data_dir / "batches")
    with store_url(db, tmp_path) as url:
        ww.index(url, data_dir / "batches")
        with TestClient(create_app(ww.settings(url, data_dir=data_dir))) as client:
            before = figures(client, ww)
            chain_etag = client.get(f"{V1}/chain").headers["etag"]
            shutil.copy(ww.private / f"{ww.missing.file_hash.hex()}.csv", data_dir / "batches")
            ww.index(url, data_dir / "batches")
            after = figures(client, ww)
            chain = client.get(f"{V1}/chain", headers={"If-None-Match": chain_etag})
            assert chain.status_code == 200
            assert (chain.json()["batches_withheld"], chain.json()["entries_withheld"]) == (1, ww.impossible_count)
            released = client.get(f"{V1}/batches/{ww.missing_seq}").json()
            assert released["withheld"] is None and released["withheld_reason"] is None
            entry = client.get(f"{V1}/entries/{ww.missing_seq + 1}")
            assert entry.status_code == 200 and entry.json()["proof"]["batch"]["merkle_proof"]
            case = client.get(f"{V1}/cases/{ww.roads}/0x{batch_case_id('withheld0').hex()}").json()
            assert case["status"] == "fulfilled"
            assert client.get(f"{V1}/batches/{ww.impossible_seq}").json()["withheld"] == "impossible"
            assert client.get(f"{V1}/agencies/{ww.roads}").json()["batches_withheld"] == 1
        assert after["metrics"]["metrics"]["cases_opened"] == before["metrics"]["metrics"]["cases_opened"] + 3
        assert after != before
    # a ledger whose file was there from the start gives the same figures
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    with store_url(db, fresh_dir) as url:
        ww.index(url, data_dir / "batches")
        with TestClient(create_app(ww.settings(url, data_dir=data_dir))) as fresh:
            assert figures(fresh, ww) == after
