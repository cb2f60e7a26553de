"""Atom feeds on a real anvil: a filed case followed by its receipt key's address from the filing on (filed, accepted,
its events, a rating), an agency's entries, a commitment's versions and its cases' events — valid Atom (RFC 4287:
ids, titles, updated times, links), newest first, in English or Chinese, nothing personal, unknown things a 404."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import receipts
from ledger.encoding import ZERO32, code_text
from ledger.records import CaseAction, Rating, filed_case_id
from tests.support import filings
from tests.support.citizens import CitizenWorld, citizen_world

A = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("feeds")) as world:
        yield world


@pytest.fixture(scope="module")
def followed(cw: CitizenWorld) -> dict[str, Any]:
    """A filing accepted, its case fulfilled and rated by the filer; a filing still awaiting an answer."""
    w = cw.world
    code, waiting = receipts.new_code(), receipts.new_code()
    seq = filings.file(w, code)
    filings.accept(w, seq)
    case = filed_case_id(seq)
    w.ledger.write(w.signer, w.update("filed", CaseAction.FULFILLED, case_id=case))
    rating = Rating(agency_id=w.agency_id, case_id=case, score=4, comment_hash=ZERO32)
    w.ledger.submit_citizen(w.relayer, rating, w.ledger.sign_citizen(receipts.private_key(code), rating))
    awaiting = filings.file(w, waiting)
    cw.sync()
    return {"code": code, "seq": seq, "case": case, "waiting": waiting, "awaiting": awaiting}


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    with TestClient(create_app(cw.settings())) as test_client:
        yield test_client


def feed(client: TestClient, path: str, **params: str) -> ET.Element:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(answer.content)
    assert root.tag == f"{A}feed"
    for required in ("id", "title", "updated"):
        assert root.find(f"{A}{required}") is not None and root.find(f"{A}{required}").text  # type: ignore[union-attr]
    assert root.find(f"{A}link[@rel='self']") is not None
    for entry in root.findall(f"{A}entry"):
        for required in ("id", "title", "updated", "summary"):
            assert entry.find(f"{A}{required}") is not None, required
    return root


def titles(root: ET.Element) -> list[str]:
    return [e.findtext(f"{A}title") or "" for e in root.findall(f"{A}entry")]


def test_a_filed_case_is_followed_by_its_receipt_from_the_filing_on(client: TestClient, cw: CitizenWorld,
                                                                    followed: dict[str, Any]):
    root = feed(client, f"/api/v1/feeds/receipts/{receipts.address(followed['code'])}.atom", lang="en")
    got = titles(root)
    assert got == ["Case rated 4/5", "Case fulfilled", "Filing accepted: case opened", "Request filed"]
    ids = [e.findtext(f"{A}id") for e in root.findall(f"{A}entry")]
    assert len(ids) == len(set(ids)) and all(i and i.startswith("urn:uuid:") for i in ids)
    updated = [e.findtext(f"{A}updated") or "" for e in root.findall(f"{A}entry")]
    assert updated == sorted(updated, reverse=True)
    zh = titles(feed(client, f"/api/v1/feeds/receipts/{receipts.address(followed['code'])}.atom", lang="zh"))
    assert zh == ["办件评价 4/5", "办结", "诉求已受理，办件开始", "群众提交诉求"]
    # a filing not answered yet already has its feed: the filing alone
    waiting = titles(feed(client, f"/api/v1/feeds/receipts/{receipts.address(followed['waiting'])}.atom"))
    assert waiting == ["Request filed"]


def test_an_agency_and_a_commitment(client: TestClient, cw: CitizenWorld, followed: dict[str, Any]):
    agency = feed(client, f"/api/v1/feeds/agencies/{cw.agency}.atom", lang="en")
    summaries = [e.findtext(f"{A}summary") or "" for e in agency.findall(f"{A}entry")]
    assert any(f"#{followed['awaiting']}" in s for s in summaries)
    assert "Commitment published" in titles(agency) or len(titles(agency)) == 50
    commitment = feed(client, f"/api/v1/feeds/commitments/{cw.agency}/{code_text(cw.world.commitment_id)}.atom")
    got = titles(commitment)
    assert "Commitment published" in got and "Case fulfilled" in got
    links = [e.find(f"{A}link").get("href") for e in commitment.findall(f"{A}entry")]  # type: ignore[union-attr]
    assert all(link and "#/proof/" in link for link in links)


def test_unknown_things_are_not_found(client: TestClient, cw: CitizenWorld, followed: dict[str, Any]):
    assert client.get("/api/v1/feeds/receipts/0x" + "12" * 20 + ".atom").status_code == 404
    assert client.get("/api/v1/feeds/agencies/NO-SUCH.atom").status_code == 404
    assert client.get(f"/api/v1/feeds/commitments/{cw.agency}/NOPE.atom").status_code == 404
    assert client.get(f"/api/v1/feeds/agencies/{cw.agency}.atom", params={"lang": "fr"}).status_code == 422
