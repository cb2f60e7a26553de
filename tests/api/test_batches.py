"""Merkle-anchored batches in the read API, on a real anvil and index: the batch list and detail, the file served byte
for byte (streamed, immutable, ETag = file hash), and every batched record's proof — in the entry log, one entry, its
case, the receipts view and the export — checked off chain (``ledger.batches.verify_proof``) and on chain
(``Ledger.verify_batch_entry``). A batch file missing from the service gives a clear 404 for the file and proof-less
records saying why, never a server error. Rebuilt trees are kept, so a second lookup rebuilds nothing, and an export
rebuilds each batch at most once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ledger import batches, receipts
from ledger.batches import BatchStore, build_batch, verify_proof
from ledger.cases import BATCHED_RECEIPT_CASE_EVENT
from ledger.encoding import code_text, entry_hash, keccak, running_hash
from ledger.records import CaseAction, CaseEvent, EntryKind, short_code
from tests.support.batches import BatchWorld, batch_case_id, batch_world, index
from tests.support.everything import assert_proof_on_chain, store_url

V1 = "/api/v1"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def bw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchWorld]:
    with batch_world(tmp_path_factory.mktemp("batches")) as world:
        yield world


@pytest.fixture(scope="module")
def client(bw: BatchWorld) -> Iterator[TestClient]:
    with TestClient(create_app(bw.settings())) as test_client:
        yield test_client


def hexb(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def check_batched(bw: BatchWorld, proof: dict[str, Any], record_hash: str) -> None:
    """A batched record's proof: the Merkle proof holds off chain and on chain, and the rest points at the anchor."""
    found = proof["batch"]
    assert found is not None and found["merkle_proof"] is not None and found["proof_unavailable"] is None
    [(batch, anchored)] = [(b, a) for b, a in bw.anchored if a.seq == found["seq"]]
    index = proof["seq"] - anchored.seq
    assert found["index"] == index and found["count"] == batch.count
    assert found["root"] == "0x" + batch.root.hex() and found["file_hash"] == "0x" + batch.file_hash.hex()
    assert found["file_url"] == f"{V1}/batches/{anchored.seq}/file"
    record, siblings = hexb(record_hash), [hexb(p) for p in found["merkle_proof"]]
    assert record == batch.record_hashes[index]
    assert verify_proof(batch.root, index, record, siblings)
    assert bw.world.ledger.verify_batch_entry(anchored.seq, index, record, siblings)
    # the transaction, block and log are the batch's anchoring
    assert proof["tx_hash"] == "0x" + anchored.tx_hash.hex() and proof["block_number"] == anchored.block_number
    assert_proof_on_chain(bw.chain, bw.world.ledger.address, proof, bw.agency)
    # the entry hash shown is the record's as a single entry (not folded)
    shown = entry_hash(proof["seq"], EntryKind.CASE_EVENT, bw.world.agency_id, bw.world.signer.address, record)
    assert proof["entry_hash"] == "0x" + shown.hex()


# --- the batches ------------------------------------------------------------------------------------------------------


def test_batches_are_listed_with_their_anchoring(client: TestClient, bw: BatchWorld) -> None:
    answer = client.get(f"{V1}/batches")
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["next"] is None and [b["seq"] for b in page["items"]] == [a.seq for _, a in bw.anchored]
    logged = {e.seq: e for e in bw.world.ledger.entries() if e.kind is EntryKind.BATCH_ANCHORED}
    for item, (batch, anchored) in zip(page["items"], bw.anchored, strict=True):
        assert item["count"] == batch.count and item["last_seq"] == anchored.seq + batch.count - 1
        assert item["root"] == "0x" + batch.root.hex() and item["file_hash"] == "0x" + batch.file_hash.hex()
        assert item["agency_id"] == bw.agency and item["signer"] == bw.world.signer.address
        assert item["record_hash"] == "0x" + batches.batch_hash(batch.root, batch.count, batch.file_hash).hex()
        expected = batches.batch_entry_hash(anchored.seq, bw.world.agency_id, bw.world.signer.address, batch.root,
                                            batch.count, batch.file_hash)
        assert item["entry_hash"] == "0x" + expected.hex() == "0x" + logged[anchored.seq].entry_hash.hex()
        assert item["proof"]["tx_hash"] == "0x" + anchored.tx_hash.hex()
        assert item["proof"]["block_number"] == anchored.block_number and item["proof"]["batch"] is None
        assert_proof_on_chain(bw.chain, bw.world.ledger.address, item["proof"], bw.agency)
        assert item["file_available"] and item["final"]
        assert item["file_url"] == f"{V1}/batches/{anchored.seq}/file"
        assert hexb(item["root"]) == bw.world.ledger.contract.functions.batchRoot(anchored.seq).call()
    # the running hash folds each batch once, over its entry hash, after the entry before it
    log = {e["seq"]: e for e in client.get(f"{V1}/entries", params={"limit": 1000}).json()["items"]}
    for item in page["items"]:
        before = bytes.fromhex(log[item["seq"] - 1]["running_hash"][2:])
        assert item["running_hash"] == "0x" + running_hash([hexb(item["entry_hash"])], before).hex()
        assert all(log[s]["running_hash"] == item["running_hash"] for s in range(item["seq"], item["last_seq"] + 1))
    assert answer.headers["cache-control"] == "public, max-age=5"
    assert client.get(f"{V1}/batches", headers={"If-None-Match": answer.headers["etag"]}).status_code == 304

    first = client.get(f"{V1}/batches", params={"limit": 1})
    assert first.json()["next"] == bw.anchored[0][1].seq
    assert first.headers["link"] == f'<{V1}/batches?after={bw.anchored[0][1].seq}&limit=1>; rel="next"'
    rest = client.get(f"{V1}/batches", params={"limit": 1, "after": first.json()["next"]}).json()
    assert [b["seq"] for b in rest["items"]] == [bw.anchored[1][1].seq] and rest["next"] is None
    assert client.get(f"{V1}/batches", params={"agency_id": bw.agency}).json() == page
    other = client.get(f"{V1}/batches", params={"agency_id": code_text(bw.world.other_agency_id)}).json()
    assert other == {"items": [], "next": None}
    missing = client.get(f"{V1}/batches", params={"agency_id": "NO-SUCH"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_one_batch_and_its_caching(client: TestClient, bw: BatchWorld) -> None:
    listed = client.get(f"{V1}/batches").json()["items"]
    for item in listed:
        answer = client.get(f"{V1}/batches/{item['seq']}")
        assert answer.status_code == 200 and answer.json() == item
        assert answer.headers["cache-control"] == IMMUTABLE  # final, and its file is here
        again = client.get(f"{V1}/batches/{item['seq']}", headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304
    inside = bw.anchored[0][1].seq + 3
    refused = client.get(f"{V1}/batches/{inside}")
    assert refused.status_code == 404
    assert f"batch #{bw.anchored[0][1].seq}" in refused.json()["error"]["message"]
    assert client.get(f"{V1}/batches/0").json()["error"]["message"] == "no batch anchored at seq 0"
    assert client.get(f"{V1}/batches/-1").status_code == 422


def test_the_file_is_served_byte_for_byte(client: TestClient, bw: BatchWorld) -> None:
    for batch, anchored in bw.anchored:
        answer = client.get(f"{V1}/batches/{anchored.seq}/file")
        assert answer.status_code == 200
        assert answer.content == batch.content and keccak(answer.content) == batch.file_hash
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["etag"] == f'"0x{batch.file_hash.hex()}"'
        assert answer.headers["cache-control"] == IMMUTABLE
        assert answer.headers["content-length"] == str(len(batch.content))
        assert "attachment" in answer.headers["content-disposition"]
        assert batch.file_hash.hex() in answer.headers["content-disposition"]
        cached = client.get(f"{V1}/batches/{anchored.seq}/file", headers={"If-None-Match": answer.headers["etag"]})
        assert cached.status_code == 304 and cached.headers["etag"] == answer.headers["etag"] and not cached.content
        head = client.head(f"{V1}/batches/{anchored.seq}/file")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(batch.content))
        # a range (a resumed download) is served too
        part = client.get(f"{V1}/batches/{anchored.seq}/file", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == batch.content[:10]
    refused = client.get(f"{V1}/batches/{bw.anchored[0][1].seq + 1}/file")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


# --- batched records carry their proofs ----------------------------------------------------------------------------


def test_batched_entries_in_the_log_carry_merkle_proofs(client: TestClient, bw: BatchWorld) -> None:
    count = bw.world.ledger.entry_count()
    items = client.get(f"{V1}/entries", params={"limit": 1000}).json()["items"]
    assert len(items) == count  # every batched record is an entry of its own
    batched_seqs = {a.seq + i for b, a in bw.anchored for i in range(b.count)}
    for item in items:
        if item["seq"] in batched_seqs:
            assert item["kind"] == "case_event" and item["actor"] == bw.world.signer.address
            check_batched(bw, item["proof"], item["record_hash"])
            one = client.get(f"{V1}/entries/{item['seq']}")
            assert one.json() == item and one.headers["cache-control"] == IMMUTABLE
            alone = client.get(f"{V1}/entries/{item['seq']}/proof")
            assert alone.status_code == 200 and alone.json() == item["proof"]
        else:
            assert item["proof"]["batch"] is None
    # the last entry's running hash is the contract's
    chain = client.get(f"{V1}/chain").json()
    assert chain["entry_count"] == count and items[-1]["running_hash"] == chain["running_hash"]


def test_a_case_with_batched_events(client: TestClient, bw: BatchWorld) -> None:
    from api.batches import batch_proofs
    from api.read._common import read_snapshot, single_read
    from api.read.cases import CASE_SQL, case_of, case_view
    from api.read.state import index_state

    for name in ("a0", "b2", bw.mixed):
        key = batch_case_id(name)
        answer = client.get(f"{V1}/cases/{bw.agency}/0x{key.hex()}")
        assert answer.status_code == 200, answer.text
        view = answer.json()
        if name == bw.mixed:
            assert [e["action"] for e in view["events"]] == ["opened", "accepted"]
            assert view["events"][0]["proof"]["batch"] is None  # written on its own
            batched = view["events"][1:]
        else:
            assert [e["action"] for e in view["events"]] == ["opened", "accepted", "fulfilled"]
            assert view["status"] == "fulfilled"
            batched = view["events"]
        entries = {e["seq"]: e for e in client.get(f"{V1}/entries", params={"limit": 1000}).json()["items"]}
        for event in batched:
            check_batched(bw, event["proof"], entries[event["seq"]]["record_hash"])
            assert event["proof"] == entries[event["seq"]]["proof"]
        # the fast path (one statement, JSON from the rows) answers byte for byte what the response model gives
        app = client.app
        rows = single_read(app.state.store.engine, CASE_SQL,  # type: ignore[attr-defined]
                           {"agency_id": bw.agency, "case_id": key})
        fast = case_of(rows, bw.world.ledger.address, bw.agency, key, 2**40, batch_proofs(app))
        with read_snapshot(app.state.store) as conn:  # type: ignore[attr-defined]
            state = index_state(conn, bw.world.ledger.address, bw.chain.chain_id)
            slow = case_view(conn, state, bw.agency, key, 2**40, batch_proofs(app))
        assert fast is not None and fast.body == slow.model_dump_json(by_alias=True).encode()


def test_a_receipt_s_case_shows_its_batched_events_with_proofs_but_does_not_apply_them(
    client: TestClient, bw: BatchWorld
) -> None:
    answer = client.get(f"{V1}/receipts/{receipts.address(bw.receipt_code)}")
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert [e["action"] for e in view["events"]] == ["opened", "accepted", "fulfilled"]
    assert view["events"][0]["proof"]["batch"] is None and view["events"][0]["not_applied_reason"] is None
    # the contract tracks a receipt case and never sees inside a batch: its batched events are not applied
    assert view["status"] == "open" and view["feedback"]["can_rate"] is False
    entries = {e["seq"]: e for e in client.get(f"{V1}/entries", params={"limit": 1000}).json()["items"]}
    for event in view["events"][1:]:
        check_batched(bw, event["proof"], entries[event["seq"]]["record_hash"])
        assert event["not_applied_reason"] == entries[event["seq"]]["not_applied_reason"] == BATCHED_RECEIPT_CASE_EVENT


def test_a_second_lookup_rebuilds_nothing(client: TestClient, bw: BatchWorld) -> None:
    trees = client.app.state.batch_trees  # type: ignore[attr-defined]
    trees.clear()
    url = f"{V1}/cases/{bw.agency}/0x{batch_case_id('a1').hex()}"
    builds = trees.builds
    first = client.get(url)
    assert trees.builds == builds + 1
    for _ in range(3):
        assert client.get(url).json() == first.json()
    assert trees.builds == builds + 1 and trees.hits >= 3
    # the log's page and the export use the kept tree too
    client.get(f"{V1}/entries", params={"limit": 1000})
    assert trees.builds == builds + 2  # the second batch was not kept yet; the first was


def test_the_export_carries_the_proofs_and_rebuilds_each_batch_once(client: TestClient, bw: BatchWorld) -> None:
    trees = client.app.state.batch_trees  # type: ignore[attr-defined]
    trees.clear()
    builds = trees.builds
    lines = client.get(f"{V1}/export/entries.jsonl").text.splitlines()
    assert trees.builds == builds + len(bw.anchored)
    rows = [json.loads(line) for line in lines]
    batched = [r for r in rows if r["batch_seq"] is not None]
    assert len(batched) == sum(b.count for b, _ in bw.anchored)
    for row in batched:
        batch = next(b for b, a in bw.anchored if a.seq == row["batch_seq"])
        assert row["batch_index"] == row["seq"] - row["batch_seq"]
        assert row["batch_root"] == "0x" + batch.root.hex() and row["merkle_proof_unavailable"] is None
        assert verify_proof(batch.root, row["batch_index"], hexb(row["record_hash"]),
                            [hexb(p) for p in row["merkle_proof"]])
    assert all(r["merkle_proof"] is None for r in rows if r["batch_seq"] is None)
    csv_lines = client.get(f"{V1}/export/entries.csv").text.splitlines()
    header = csv_lines[0].split(",")
    assert header[-6:] == ["batch_seq", "batch_index", "batch_root", "batch_file_hash", "merkle_proof",
                           "merkle_proof_unavailable"]
    by_seq = {int(line.split(",")[0]): line.split(",") for line in csv_lines[1:]}
    sample = batched[0]
    assert by_seq[sample["seq"]][header.index("merkle_proof")] == " ".join(sample["merkle_proof"])


# --- a batch file this service does not have ------------------------------------------------------------------------


@pytest.fixture
def without_second(bw: BatchWorld, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """The API over the same index with a batch directory holding only the first batch's file."""
    directory = tmp_path / "partial"
    directory.mkdir()
    first = bw.anchored[0][0]
    shutil.copy(BatchStore(bw.data_dir / "batches").path(first.file_hash), directory)
    with TestClient(create_app(bw.settings(batch_dir=directory))) as test_client:
        yield test_client, directory


def test_a_missing_file_is_a_clear_404_and_records_say_why_they_have_no_proof(
    without_second: tuple[TestClient, Path], bw: BatchWorld
) -> None:
    client, directory = without_second
    batch, anchored = bw.anchored[1]
    refused = client.get(f"{V1}/batches/{anchored.seq}/file")
    assert refused.status_code == 404
    error = refused.json()["error"]
    assert error["code"] == "batch_file_unavailable"
    assert f"batch #{anchored.seq}" in error["message"] and "not available" in error["message"]
    detail = client.get(f"{V1}/batches/{anchored.seq}")
    assert detail.status_code == 200 and detail.json()["file_available"] is False
    assert detail.headers["cache-control"] == "public, max-age=5"  # not immutable while the file is missing

    entry = client.get(f"{V1}/entries/{anchored.seq + 1}")
    assert entry.status_code == 200 and entry.headers["cache-control"] == "public, max-age=5"
    found = entry.json()["proof"]["batch"]
    assert found["merkle_proof"] is None and found["root"] == "0x" + batch.root.hex()
    assert "not available" in found["proof_unavailable"] and f"#{anchored.seq}" in found["proof_unavailable"]
    view = client.get(f"{V1}/cases/{bw.agency}/0x{batch_case_id('b0').hex()}")
    assert view.status_code == 200
    assert all(e["proof"]["batch"]["proof_unavailable"] for e in view.json()["events"])
    # the other batch's records still have theirs
    fine = client.get(f"{V1}/entries/{bw.anchored[0][1].seq}").json()["proof"]["batch"]
    assert fine["merkle_proof"] is not None
    export = client.get(f"{V1}/export/entries.jsonl")
    assert export.status_code == 200
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert {r["merkle_proof_unavailable"] is not None for r in rows if r["batch_seq"] == anchored.seq} == {True}

    # published now: the same requests give the proofs, under another ETag
    old_etag = view.headers["etag"]
    shutil.copy(BatchStore(bw.data_dir / "batches").path(batch.file_hash), directory)
    again = client.get(f"{V1}/cases/{bw.agency}/0x{batch_case_id('b0').hex()}",
                       headers={"If-None-Match": old_etag})
    assert again.status_code == 200 and again.headers["etag"] != old_etag
    for event in again.json()["events"]:
        assert event["proof"]["batch"]["merkle_proof"] is not None
    assert client.get(f"{V1}/batches/{anchored.seq}/file").content == batch.content


def test_an_altered_file_is_not_served(bw: BatchWorld, tmp_path: Path) -> None:
    batch, anchored = bw.anchored[0]
    directory = tmp_path / "altered"
    directory.mkdir()
    BatchStore(directory).path(batch.file_hash).write_bytes(batch.content.replace(b"\n0,", b"\n0,", 1) + b"\n")
    with TestClient(create_app(bw.settings(batch_dir=directory))) as client:
        refused = client.get(f"{V1}/batches/{anchored.seq}/file")
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "batch_file_unavailable"
        assert "altered" in refused.json()["error"]["message"]
        proof = client.get(f"{V1}/entries/{anchored.seq}").json()["proof"]["batch"]
        assert proof["merkle_proof"] is None and "altered" in proof["proof_unavailable"]


# --- settings, PostgreSQL, the document ----------------------------------------------------------------------------


def test_the_batch_directory_defaults_to_the_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert ApiSettings(store_url="sqlite://", data_dir=tmp_path).batch_directory == tmp_path / "batches"
    assert ApiSettings(store_url="sqlite://", batch_dir=tmp_path / "x").batch_directory == tmp_path / "x"
    monkeypatch.setenv("CIVIC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CIVIC_BATCH_DIR", raising=False)
    assert ApiSettings.from_env().batch_directory == tmp_path / "batches"
    monkeypatch.setenv("CIVIC_BATCH_DIR", str(tmp_path / "published"))
    assert ApiSettings.from_env().batch_directory == tmp_path / "published"


def test_postgresql_answers_as_sqlite(bw: BatchWorld, client: TestClient, tmp_path: Path) -> None:
    with store_url("postgresql", tmp_path) as url:
        index(bw.chain, bw.world.ledger.address, url, bw.data_dir / "batches")
        with TestClient(create_app(bw.settings(store_url=url))) as pg:
            for path in (f"{V1}/batches", f"{V1}/batches/{bw.anchored[0][1].seq}", f"{V1}/entries?limit=1000",
                         f"{V1}/cases/{bw.agency}/0x{batch_case_id('a3').hex()}",
                         f"{V1}/cases/{bw.agency}/0x{batch_case_id(bw.mixed).hex()}"):
                assert pg.get(path).json() == client.get(path).json(), path
            assert pg.get(f"{V1}/export/entries.csv").text == client.get(f"{V1}/export/entries.csv").text


def test_the_openapi_document_describes_batches(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, op_id in [(f"{V1}/batches", "listBatches"), (f"{V1}/batches/{{seq}}", "getBatch"),
                        (f"{V1}/batches/{{seq}}/file", "getBatchFile"), (f"{V1}/entries/{{seq}}/proof",
                                                                         "getEntryProof")]:
        operation = spec["paths"][path]["get"]
        assert operation["operationId"] == op_id and operation["summary"] and operation["description"]
        assert "404" in operation["responses"]
    assert "text/csv" in spec["paths"][f"{V1}/batches/{{seq}}/file"]["get"]["responses"]["200"]["content"]
    schemas = spec["components"]["schemas"]
    for name in ("BatchProof", "BatchInfo"):
        assert schemas[name].get("examples"), name
    from api.schemas.batches import BatchInfo
    from api.schemas.proofs import BatchProof

    BatchProof.model_validate(schemas["BatchProof"]["examples"][0])
    BatchInfo.model_validate(schemas["BatchInfo"]["examples"][0])
    assert schemas["Proof"]["properties"]["batch"]


def test_the_page_checks_a_proof_as_python_does() -> None:
    """api/static/merkle.js (the page's check) against ledger.batches, in Node."""
    import subprocess

    built = build_batch([
        CaseEvent(case_id=keccak(f"js{i}".encode()), action=CaseAction.OPENED, occurred_at=1_790_000_000 + i,
                  commitment_id=short_code("C"), district=short_code("EAST"), channel=1)
        for i in range(23)
    ])
    cases = [{"index": i, "record": "0x" + built.record_hashes[i].hex(),
              "proof": ["0x" + p.hex() for p in built.proof(i)]} for i in range(built.count)]
    module = Path(__file__).resolve().parents[2] / "api" / "static" / "merkle.js"
    script = (
        f"import {{ verifyProof, rootOf }} from {json.dumps(module.as_uri())};\n"
        f"const cases = {json.dumps(cases)}; const root = {json.dumps('0x' + built.root.hex())};\n"
        "console.log(JSON.stringify(cases.map((c) => [rootOf(c.index, c.record, c.proof), "
        "verifyProof(root, c.index, c.record, c.proof), verifyProof(root, c.index + 1, c.record, c.proof)])));"
    )
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    answers = json.loads(out.stdout)
    assert answers == [["0x" + built.root.hex(), True, False]] * built.count
