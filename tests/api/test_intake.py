"""The agency's intake API on a real anvil: a token signed by an authorised key of the agency reads its own filings
with what the filers wrote and their photos; another agency's key sees none of them (not even that they exist); a
token that is missing, malformed, expired, too long-lived, or signed by a key not (or no longer) authorised is refused
with a clear 401 or 403; nothing of it is cached by anyone on the way."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.chain.access import MAX_LIFETIME, make_token
from ledger.chain.keys import KeyStore
from ledger.encoding import code_text
from ledger.relay.store import CITIZEN_LANE, LANES
from tests.support.citizens import CitizenWorld, citizen_world
from tests.support.filing_bodies import FILINGS, WORK_BITS, filing_body, png

INTAKE = "/api/v1/intake/filings"


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("intake")) as world:
        world.chain.fund(KeyStore(world.data_dir / "keys").get_or_create(LANES[CITIZEN_LANE][1]).address)
        yield world


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    with TestClient(create_app(cw.settings(filing_work_bits=WORK_BITS, filing_rate_per_minute=0))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def filed(client: TestClient, cw: CitizenWorld) -> dict[str, Any]:
    body, _ = filing_body(cw.ledger, cw.world.agency_id, cw.world.commitment_id, description="路灯坏了 at No. 12",
                          contact={"email": "li@example.org"}, photos=[png(4)])
    answer = client.post(FILINGS, json=body)
    assert answer.status_code == 202 and answer.json()["status"] == "recorded", answer.text
    cw.sync()
    return answer.json()


def token(cw: CitizenWorld, key: Any = None, agency: str | None = None, **options: Any) -> dict[str, str]:
    made = make_token(key or cw.world.signer, cw.chain.chain_id, cw.ledger.address, agency or cw.agency, **options)
    return {"Authorization": f"Bearer {made}"}


def refused(client: TestClient, url: str, headers: dict[str, str], status: int, code: str) -> None:
    answer = client.get(url, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code and answer.json()["error"]["message"]
    assert answer.headers["cache-control"] == "no-store"
    assert "li@example.org" not in answer.text


def test_the_agency_reads_its_filings_with_what_the_filers_wrote(client: TestClient, cw: CitizenWorld,
                                                                 filed: dict[str, Any]):
    answer = client.get(INTAKE, headers=token(cw))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    [item] = [i for i in answer.json()["items"] if i["filing"]["seq"] == filed["seq"]]
    assert item["content"]["description"] == "路灯坏了 at No. 12"
    assert item["content"]["contact"] == {"email": "li@example.org"}
    assert item["filing"]["agency_id"] == cw.agency and item["filing"]["answer"] is None
    [photo] = item["photos"]
    fetched = client.get(photo["url"], headers=token(cw))
    assert fetched.status_code == 200 and fetched.content == png(4)
    assert fetched.headers["content-type"] == "image/png" and fetched.headers["cache-control"] == "no-store"
    one = client.get(f"{INTAKE}/{filed['seq']}", headers=token(cw))
    assert one.status_code == 200 and one.json() == item
    # the public API shows the same filing without any of it
    public = client.get(f"/api/v1/filings/{filed['seq']}")
    assert public.status_code == 200 and "li@example.org" not in public.text and "路灯" not in public.text
    assert client.get(INTAKE, headers=token(cw), params={"state": "answered"}).json()["items"] == []


def test_another_agency_sees_none_of_them(client: TestClient, cw: CitizenWorld, filed: dict[str, Any]):
    other = token(cw, cw.world.other_signer, code_text(cw.world.other_agency_id))
    assert client.get(INTAKE, headers=other, params={"state": "all"}).json()["items"] == []
    refused(client, f"{INTAKE}/{filed['seq']}", other, 404, "not_found")
    refused(client, f"{INTAKE}/{filed['seq']}/photos/1", other, 404, "not_found")
    # nor may its key claim to be this agency
    refused(client, INTAKE, token(cw, cw.world.other_signer, cw.agency), 403, "unauthorized_signer")


def test_tokens_that_grant_nothing(client: TestClient, cw: CitizenWorld, filed: dict[str, Any]):
    refused(client, INTAKE, {}, 401, "unauthenticated")
    refused(client, INTAKE, {"Authorization": "Basic abc"}, 401, "unauthenticated")
    refused(client, INTAKE, {"Authorization": "Bearer not-a-token"}, 401, "unauthenticated")
    refused(client, INTAKE, token(cw, Account.create()), 403, "unauthorized_signer")
    refused(client, INTAKE, token(cw, lifetime=60, now=cw.world.now() - 3600), 401, "token_expired")
    # a token edited after signing (a longer life) no longer recovers to the key that signed it
    raw = token(cw)["Authorization"].removeprefix("Bearer ")
    claims = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    claims["expires_at"] += 3600
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    refused(client, INTAKE, {"Authorization": f"Bearer {edited}"}, 403, "unauthorized_signer")
    with pytest.raises(ValueError):
        make_token(cw.world.signer, cw.chain.chain_id, cw.ledger.address, cw.agency, lifetime=MAX_LIFETIME + 1)
    # a token for another deployment (another ledger address) recovers to another key
    elsewhere = make_token(cw.world.signer, cw.chain.chain_id, "0x" + "11" * 20, cw.agency)
    refused(client, INTAKE, {"Authorization": f"Bearer {elsewhere}"}, 403, "unauthorized_signer")


def test_a_revoked_key_s_tokens_are_refused(cw: CitizenWorld, filed: dict[str, Any]):
    key = Account.create()
    cw.chain.fund(key.address)
    cw.ledger.authorize_signer(cw.world.governance, cw.world.agency_id, key.address)
    issued = token(cw, key)
    cw.ledger.revoke_signer(cw.world.governance, key.address)
    with TestClient(create_app(cw.settings())) as fresh:  # nothing remembered: the chain says it is revoked
        refused(fresh, INTAKE, issued, 403, "unauthorized_signer")
