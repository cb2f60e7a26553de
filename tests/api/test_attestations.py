"""The audit API on a ledger with auditors (``tests/support/audits.py``): the auditors and attestations lists with
their proofs and the index's verdict on each checkpoint, the summary in ``/api/v1/chain`` ("audited up to block N by
K auditors"), entries of no agency shown with a null agency, and audit reports served by their hash — published with
``PUT`` only when an attestation names them, and every refusal. The lists and the summary also on PostgreSQL, over the
ledger with every entry kind (``tests/support/everything.py``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.attestations import MAX_REPORT_BYTES
from ledger.encoding import ZERO32, entry_hash, keccak
from ledger.records import EntryKind
from tests.support import everything as ev
from tests.support.audits import AuditWorld, audit_world
from tests.support.everything import Everything

V1 = "/api/v1"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    with audit_world(tmp_path_factory.mktemp("audit-api")) as built:
        yield built


@pytest.fixture
def client(aw: AuditWorld) -> Iterator[TestClient]:
    with TestClient(create_app(aw.settings())) as test_client:
        yield test_client


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]  # type: ignore[no-any-return]


def hex0x(value: bytes) -> str:
    return "0x" + value.hex()


def report_path(content: bytes) -> str:
    return f"{V1}/audit-reports/{hex0x(keccak(content))}"


# --- lists ------------------------------------------------------------------------------------------------------------


def test_auditors_are_listed_with_their_registrations_and_latest_attestation(
    client: TestClient, aw: AuditWorld
) -> None:
    body = client.get(f"{V1}/auditors").json()
    assert body["next"] is None
    items = body["items"]
    names = {key.address: name for name, key in aw.auditors.items()}
    assert [names[item["auditor"]] for item in items] == ["honest", "strict", "liar", "gone", "idle"]
    by_name = {names[item["auditor"]]: item for item in items}
    assert [by_name[n]["registered"] for n in names.values()] == [True, True, True, False, True]
    gone = by_name["gone"]
    assert gone["revocation"]["seq"] > gone["latest_attestation"]["seq"] > gone["registration"]["seq"]
    assert by_name["idle"]["latest_attestation"] is None and by_name["idle"]["attestations"] == 0
    assert by_name["honest"]["attestations"] == 1
    assert by_name["honest"]["latest_attestation"]["seq"] == aw.attested["honest"]
    for item in items:
        ev.assert_proof_on_chain(aw.chain, aw.world.ledger.address, item["registration"])
    # keyset pages
    first = client.get(f"{V1}/auditors", params={"limit": 2})
    assert [i["auditor"] for i in first.json()["items"]] == [i["auditor"] for i in items[:2]]
    after = first.json()["next"]
    assert after == items[1]["registration"]["seq"]
    assert first.headers["link"] == f'<{V1}/auditors?after={after}&limit=2>; rel="next"'
    rest = client.get(f"{V1}/auditors", params={"after": after, "limit": 10}).json()
    assert rest["items"] == items[2:] and rest["next"] is None


def test_attestations_say_whether_each_checkpoint_is_the_ledgers(client: TestClient, aw: AuditWorld) -> None:
    items = client.get(f"{V1}/attestations").json()["items"]
    assert [i["seq"] for i in items] == sorted(aw.attested.values())
    by_seq = {i["seq"]: i for i in items}
    honest, strict, liar = (by_seq[aw.attested[n]] for n in ("honest", "strict", "liar"))
    assert (honest["matches_ledger"], honest["verdict"], honest["findings"]) == (True, "passed", 0)
    assert (strict["matches_ledger"], strict["verdict"], strict["findings"]) == (True, "failed", 2)
    assert liar["matches_ledger"] is False
    assert honest["block_number"] == strict["block_number"] < liar["block_number"]
    assert honest["running_hash"] == hex0x(aw.world.ledger.running_hash(honest["block_number"]))
    assert honest["entry_count"] == aw.world.ledger.entry_count(honest["block_number"])
    assert honest["report_hash"] == hex0x(keccak(aw.reports["honest"]))
    assert honest["report_url"] == report_path(aw.reports["honest"])
    for item in items:
        assert item["auditor"] == next(k.address for k in aw.auditors.values() if k.address == item["auditor"])
        ev.assert_proof_on_chain(aw.chain, aw.world.ledger.address, item["proof"])
    # one auditor's, with its key in any case
    key = aw.auditors["liar"].address
    only = client.get(f"{V1}/attestations", params={"auditor": key.lower()}).json()["items"]
    assert only == [liar]
    page = client.get(f"{V1}/attestations", params={"limit": 1, "auditor": aw.auditors["honest"].address})
    assert page.json()["next"] is None
    page = client.get(f"{V1}/attestations", params={"limit": 3})
    assert page.json()["next"] == items[2]["seq"] and "after=" in page.headers["link"]
    assert client.get(f"{V1}/attestations/{liar['seq']}").json() == liar
    assert error_of(client.get(f"{V1}/attestations/0"), 404)["code"] == "not_found"
    assert error_of(client.get(f"{V1}/attestations", params={"auditor": "0x1234"}), 422)["code"] == "invalid_request"


def test_chain_says_how_far_the_ledger_is_independently_audited(client: TestClient, aw: AuditWorld) -> None:
    audit = client.get(f"{V1}/chain").json()["audit"]
    honest = client.get(f"{V1}/attestations/{aw.attested['honest']}").json()
    # honest and strict attested the same block and match; liar does not match; gone is revoked; idle has none
    assert audit["registered_auditors"] == 4
    assert (audit["audited_to_block"], audit["auditors"]) == (honest["block_number"], 2)
    assert (audit["verdict"], audit["findings"], audit["not_matching"]) == ("failed", 2, 1)
    latest = {item["auditor"]: item["attestation"] for item in audit["latest"]}
    assert list(latest) == [aw.auditors[n].address for n in ("honest", "strict", "liar", "idle")]
    assert latest[aw.auditors["idle"].address] is None
    assert latest[aw.auditors["honest"].address] == honest
    assert audit["attestations_url"] == f"{V1}/attestations"


def test_entries_of_no_agency_have_a_null_agency(client: TestClient, aw: AuditWorld) -> None:
    entries = client.get(f"{V1}/entries", params={"limit": 1000}).json()["items"]
    auditors = [e for e in entries if e["kind_code"] >= EntryKind.AUDITOR_AUTHORIZED]
    assert {e["kind"] for e in auditors} == {"auditor_authorized", "auditor_revoked", "audit_attested"}
    assert all(e["agency_id"] is None and e["occurred_at"] is None for e in auditors)
    for e in auditors:  # the entry hash binds the zero agency
        recomputed = entry_hash(e["seq"], EntryKind(e["kind_code"]), ZERO32, e["actor"],
                                bytes.fromhex(e["record_hash"][2:]))
        assert hex0x(recomputed) == e["entry_hash"] == ev.recomputed_entry_hash(e)
    attested = client.get(f"{V1}/entries/{aw.attested['honest']}").json()
    assert attested["actor"] == aw.auditors["honest"].address and attested["agency_id"] is None
    lines = client.get(f"{V1}/export/entries.jsonl").text.splitlines()
    exported = {row["seq"]: row for row in map(json.loads, lines)}
    assert exported[aw.attested["honest"]]["agency_id"] is None
    csv_line = next(line for line in client.get(f"{V1}/export/entries.csv").text.splitlines()
                    if line.startswith(f"{aw.attested['honest']},"))
    assert csv_line.split(",")[3] == ""  # agency_id: empty = null


# --- reports ----------------------------------------------------------------------------------------------------------


def test_a_report_is_published_once_by_its_hash_and_served_byte_for_byte(client: TestClient, aw: AuditWorld) -> None:
    content = aw.reports["honest"]
    path = report_path(content)
    assert error_of(client.get(path), 404)["code"] == "report_unavailable"
    put = client.put(path, content=content, headers={"Content-Type": "application/json"})
    assert put.status_code == 201, put.text
    assert put.json() == {"report_hash": hex0x(keccak(content)), "report_url": path, "bytes": len(content)}
    stored = aw.data_dir / "audit-reports" / f"{keccak(content).hex()}.json"
    assert stored.read_bytes() == content
    again = client.put(path, content=content)
    assert again.status_code == 200
    got = client.get(path)
    assert got.status_code == 200 and got.content == content
    assert got.headers["content-type"] == "application/json"
    assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get(path, headers={"If-None-Match": got.headers["etag"]}).status_code == 304
    assert client.head(path).status_code == 200
    upper = f"{V1}/audit-reports/0x{keccak(content).hex().upper()}"
    assert client.get(upper).content == content
    # shown as available wherever the attestation is
    assert client.get(f"{V1}/attestations/{aw.attested['honest']}").json()["report_available"] is True
    audit = client.get(f"{V1}/chain").json()["audit"]
    assert {i["auditor"]: i["attestation"] for i in audit["latest"] if i["attestation"]}[
        aw.auditors["honest"].address]["report_available"] is True
    # a copy altered on disk is never served as the named report
    other = aw.reports["gone"]
    assert client.put(report_path(other), content=other).status_code == 201
    altered = aw.data_dir / "audit-reports" / f"{keccak(other).hex()}.json"
    altered.write_bytes(other.replace(b"gone", b"fine"))
    assert error_of(client.get(report_path(other)), 404)["code"] == "report_unavailable"


def test_a_chunked_report_without_content_length_is_read_and_checked_as_it_comes(
    client: TestClient, aw: AuditWorld
) -> None:
    content = aw.reports["strict"]
    chunks = [content[i : i + 7] for i in range(0, len(content), 7)]
    put = client.put(report_path(content), content=iter(chunks))
    assert put.status_code in (200, 201), put.text
    assert client.get(report_path(content)).content == content


def test_every_refusal_of_a_report(client: TestClient, aw: AuditWorld) -> None:
    named = report_path(aw.reports["gone"])  # a hash an attestation names
    # no attestation names it: refused before the body is read
    stray = b'{"report": "nobody attested this"}'
    error = error_of(client.put(report_path(stray), content=stray), 404)
    assert error["code"] == "report_not_attested" and "no attestation" in error["message"]
    # the body is another report than the hash says
    assert error_of(client.put(named, content=aw.reports["honest"]), 422)["code"] == "hash_mismatch"
    # too big, by its Content-Length
    big = b" " * (MAX_REPORT_BYTES + 1)
    assert error_of(client.put(named, content=big), 413)["code"] == "body_too_large"
    # too big, chunked (no Content-Length): refused while it is read
    chunk = b" " * 2**20
    chunked = client.put(named, content=iter([chunk] * 9))
    assert error_of(chunked, 413)["code"] == "body_too_large"
    # exactly the limit is not too big: it is refused for what it is (its hash)
    assert error_of(client.put(named, content=b" " * MAX_REPORT_BYTES), 422)["code"] == "hash_mismatch"
    # not JSON (the liar's attestation names bytes that are not)
    not_json = aw.reports["liar"]
    error = error_of(client.put(report_path(not_json), content=not_json), 400)
    assert error["code"] == "invalid_json"
    # not a hash
    assert error_of(client.put(f"{V1}/audit-reports/0x1234", content=b"{}"), 422)["code"] == "invalid_request"
    assert error_of(client.get(f"{V1}/audit-reports/report.json"), 422)["code"] == "invalid_request"
    assert not (aw.data_dir / "audit-reports" / f"{keccak(not_json).hex()}.json").exists()
    # another method: refused, naming the ones a report takes
    refused = client.delete(named)
    assert error_of(refused, 405)["code"] == "method_not_allowed" and refused.headers["allow"] == "GET, HEAD, PUT"


def test_publishing_a_report_counts_as_a_write(aw: AuditWorld) -> None:
    settings = dataclasses.replace(aw.settings(), write_rate_per_minute=2)
    content = aw.reports["strict"]
    with TestClient(create_app(settings)) as client:
        for _ in range(2):
            assert client.put(report_path(content), content=content).status_code in (200, 201)
        refused = client.put(report_path(content), content=content)
        assert error_of(refused, 429)["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get(report_path(content)).status_code == 200  # reads are not writes


# --- on both databases ------------------------------------------------------------------------------------------------


def test_the_audit_lists_on_sqlite_and_postgresql(everything: Everything, tmp_path: Path) -> None:
    client, seqs = everything.client, everything.chain.scenario.seqs
    [attested] = client.get(f"{V1}/attestations").json()["items"]
    assert attested["seq"] == seqs["attested"] and attested["matches_ledger"] is True
    registrations = client.get(f"{V1}/auditors").json()["items"]
    assert [(r["registration"]["seq"], r["registered"]) for r in registrations] == [
        (seqs["auditor"], True), (seqs["auditor gone"], False)]
    assert registrations[1]["revocation"]["seq"] == seqs["auditor revoked"]
    audit = client.get(f"{V1}/chain").json()["audit"]
    assert (audit["registered_auditors"], audit["audited_to_block"], audit["auditors"], audit["verdict"]) == (
        1, attested["block_number"], 1, "passed")
    entry = client.get(f"{V1}/entries/{seqs['auditor revoked']}").json()
    assert entry["kind"] == "auditor_revoked" and entry["agency_id"] is None
