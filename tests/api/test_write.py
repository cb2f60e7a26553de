"""The agency write API on a real anvil: records signed exactly as a wallet signs them (eth_account's
``sign_typed_data(full_message=…)``, i.e. eth_signTypedData_v4) are relayed and recorded with the agency key as actor;
every refusal is a clear 4xx JSON error with its code, and leaves nothing behind — on chain or in the relay's outbox.

The module writes to the shared demo chain, so it snapshots the chain first and reverts it at the end: the other API
tests see the demo city as it was, whatever the order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ledger.chain.keys import KeyStore
from ledger.encoding import keccak
from ledger.records import (
    CaseAction,
    CaseEvent,
    Commitment,
    Correction,
    DeadlineUnit,
    EntryKind,
    HolidayCalendar,
    Record,
    short_code,
    text_hash,
)
from ledger.relay.budgets import RelayBudgets
from ledger.relay.verify import SECP256K1_N, relay_types
from ledger.relay.writer import RelayWriter
from ledger.writer.outbox import OutboxState
from tests.support.city import IndexedCity

URL = "/api/v1/agency/records"
ROADS, HOTLINE, WATER, SANITATION, LICENSING = (
    "DEMO-ROADS", "DEMO-HOTLINE", "DEMO-WATER", "DEMO-SANITATION", "DEMO-LICENSING"
)


@dataclass
class Writes:
    client: TestClient
    city: IndexedCity

    @property
    def ledger(self):
        return self.city.ledger

    def now(self) -> int:
        """The chain's time (the demo chain runs behind the wall clock): what a record may claim at most."""
        return int(self.city.chain.w3.eth.get_block("latest")["timestamp"])

    def key(self, agency: str) -> LocalAccount:
        return self.city.signers[agency]

    def next_nonce(self, address: str) -> int:
        answer = self.client.get(f"/api/v1/agency/nonce/{address}")
        assert answer.status_code == 200, answer.text
        return int(answer.json()["next_nonce"])

    def typed(self, key: LocalAccount, record: Record | list[CaseEvent], *, nonce: int | None = None,
              deadline: int | None = None, **domain: Any) -> dict[str, Any]:
        nonce = self.next_nonce(key.address) if nonce is None else nonce
        typed = self.ledger.typed_data(
            record, nonce, deadline or int(time.time()) + 3600, self.ledger.agency_of(key.address)
        )
        typed["domain"].update(domain)
        return typed

    def body(self, key: LocalAccount, record: Record | list[CaseEvent], **options: Any) -> dict[str, Any]:
        typed = self.typed(key, record, **options)
        signature = Account.sign_typed_data(key.key, full_message=typed).signature  # as a wallet would
        return {"typed_data": typed, "signature": "0x" + bytes(signature).hex()}

    def opened(self, name: str, agency: str = ROADS, commitment: str = "STREETLIGHT-48H", **changes: Any) -> CaseEvent:
        fields: dict[str, Any] = dict(
            case_id=keccak(f"write-api:{agency}:{name}".encode()), action=CaseAction.OPENED, occurred_at=self.now(),
            commitment_id=short_code(commitment), district=short_code("EAST"), channel=3,
        )
        fields.update(changes)
        return CaseEvent(**fields)

    def update(self, name: str, action: CaseAction, agency: str = ROADS) -> CaseEvent:
        return CaseEvent(case_id=keccak(f"write-api:{agency}:{name}".encode()), action=action,
                         occurred_at=self.now())

    def outbox_rows(self) -> int:
        service = self.client.app.state.agency_writes  # type: ignore[attr-defined]
        return sum(service.store.outbox.counts().values())


@pytest.fixture(scope="module")
def writes(indexed_city: IndexedCity, api_settings: ApiSettings, tmp_path_factory) -> Iterator[Writes]:
    snapshot = indexed_city.chain.snapshot()
    data_dir = tmp_path_factory.mktemp("write-api")
    relayer = KeyStore(data_dir / "keys").get_or_create("relayer")
    indexed_city.chain.fund(relayer.address)
    try:
        with TestClient(create_app(replace(api_settings, data_dir=data_dir))) as client:
            yield Writes(client, indexed_city)
    finally:
        indexed_city.chain.revert(snapshot)


def recorded(
    writes: Writes,
    answer: Any,
    signer: LocalAccount,
    kind: EntryKind,
    records: list[Record],
    client: TestClient | None = None,
) -> dict[str, Any]:
    """The POST answered 202 "recorded", and the chain has exactly these records, written by the agency key."""
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "recorded", body
    assert body["signer"] == signer.address
    seqs = body.get("seqs") or [body["seq"]]
    assert len(seqs) == len(records) == body["entries"]
    block = writes.city.chain.w3.eth.get_transaction_receipt(body["tx_hash"])["blockNumber"]
    entries = {e.seq: e for e in writes.ledger.entries(from_block=block, to_block=block)}
    for seq, record in zip(seqs, records, strict=True):
        entry = entries[seq]
        assert entry.seq == seq and entry.kind is kind
        assert bytes(entry.transaction_hash).hex() == body["tx_hash"].removeprefix("0x")
        assert entry.actor == signer.address  # the agency's key, not the relayer's
        assert entry.record_hash == record.struct_hash()
    followed = (client or writes.client).get(f"{URL}/{body['id']}")
    assert followed.status_code == 200 and followed.json() == body
    return body


def refused(writes: Writes, body: Any, status: int, code: str, **post: Any) -> dict[str, Any]:
    """The POST is refused with this status and code, and nothing is written: no entry, no stored submission."""
    count, rows = writes.ledger.entry_count(), writes.outbox_rows()
    if isinstance(body, (bytes, str)):
        answer = writes.client.post(URL, content=body, headers={"content-type": "application/json"}, **post)
    else:
        answer = writes.client.post(URL, json=body, **post)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["code"] == code and error["message"], error
    assert writes.ledger.entry_count() == count
    assert writes.outbox_rows() == rows
    return answer.json()


# ---------------------------------------------------------------------- reading what to sign


def test_typed_data_endpoint_gives_what_a_wallet_needs(writes: Writes):
    answer = writes.client.get("/api/v1/agency/typed-data/RecordCaseEvents")
    assert answer.status_code == 200
    body = answer.json()
    assert body["types"] == relay_types("RecordCaseEvents")
    assert body["domain"] == writes.ledger.domain()
    assert body["message_fields"] == ["agencyId", "caseEvents", "nonce", "deadline"] and body["max_batch"] == 500
    assert writes.client.get("/api/v1/agency/typed-data/AgencyRegistration").json()["error"]["code"] == "not_found"


def test_nonce_endpoint(writes: Writes):
    key = writes.key(WATER)
    body = writes.client.get(f"/api/v1/agency/nonce/{key.address.lower()}").json()
    onchain = writes.ledger.nonce(key.address)
    assert body == {"address": key.address, "onchain_nonce": onchain, "pending": 0, "next_nonce": onchain}
    bad = writes.client.get("/api/v1/agency/nonce/0x1234")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_address"


# ---------------------------------------------------------------------- accepted


def test_a_case_event_is_recorded_with_the_agency_key_as_actor(writes: Writes):
    key = writes.key(ROADS)
    event = writes.opened("single")
    body = recorded(writes, writes.client.post(URL, json=writes.body(key, event)), key, EntryKind.CASE_EVENT, [event])
    assert body["agency_id"] == ROADS and body["primary_type"] == "RecordCaseEvent"
    assert body["record_hash"] == "0x" + event.struct_hash().hex()
    assert body["tx_hash"].startswith("0x")


def test_a_batch_of_case_events_is_recorded_in_order_under_one_signature(writes: Writes):
    key = writes.key(HOTLINE)
    events = [
        writes.opened("b1", HOTLINE, "COMPLAINT-2WD"),
        writes.opened("b2", HOTLINE, "INQUIRY-1WD", channel=2),
        writes.update("b1", CaseAction.ACCEPTED, HOTLINE),
    ]
    body = recorded(writes, writes.client.post(URL, json=writes.body(key, events)), key, EntryKind.CASE_EVENT, events)
    assert body["seqs"] == list(range(body["seq"], body["seq"] + 3))


def test_a_commitment_is_recorded(writes: Writes):
    key = writes.key(WATER)
    commitment = Commitment(
        commitment_id=short_code("WRITE-API-24H"), service_code=short_code("WRITE-API"), name_zh="测试服务",
        name_en="Test service", deadline=24, deadline_unit=DeadlineUnit.CALENDAR_HOURS, target_bps=9000,
        valid_from=writes.now(), terms_hash=text_hash("terms"), occurred_at=writes.now(),
    )
    answer = writes.client.post(URL, json=writes.body(key, commitment))
    recorded(writes, answer, key, EntryKind.COMMITMENT_PUBLISHED, [commitment])
    assert writes.ledger.commitment_state(short_code(WATER), short_code("WRITE-API-24H")) == (1, False)


def test_a_correction_is_recorded(writes: Writes):
    key = writes.key(SANITATION)
    target = next(e.seq for e in writes.ledger.entries() if e.actor == key.address)
    correction = Correction(target_seq=target, reason_hash=text_hash("recorded twice"), occurred_at=writes.now())
    recorded(writes, writes.client.post(URL, json=writes.body(key, correction)), key, EntryKind.CORRECTION,
             [correction])


def test_a_holiday_calendar_is_recorded(writes: Writes):
    key = writes.key(LICENSING)
    from datetime import date

    calendar = HolidayCalendar.from_dates(2027, [date(2027, 1, 1), date(2027, 2, 8)], [date(2027, 2, 6)],
                                          writes.now())
    recorded(writes, writes.client.post(URL, json=writes.body(key, calendar)), key,
             EntryKind.HOLIDAY_CALENDAR_PUBLISHED, [calendar])


def test_typed_data_as_a_json_string_and_a_matching_signer_are_accepted(writes: Writes):
    key = writes.key(ROADS)
    event = writes.opened("as-text")
    body = writes.body(key, event)
    body = {"typed_data": json.dumps(body["typed_data"]), "signature": body["signature"], "signer": key.address}
    recorded(writes, writes.client.post(URL, json=body), key, EntryKind.CASE_EVENT, [event])


def test_a_record_the_contract_refuses_is_accepted_then_fails_with_the_decoded_error(writes: Writes):
    key = writes.key(ROADS)
    event = writes.opened("no-commitment", commitment="NO-SUCH-COMMITMENT")
    count = writes.ledger.entry_count()
    body_sent = writes.body(key, event)
    answer = writes.client.post(URL, json=body_sent)
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "failed" and body["error"]["name"] == "UnknownCommitment"
    assert writes.client.get(f"{URL}/{body['id']}").json()["error"]["name"] == "UnknownCommitment"
    assert writes.ledger.entry_count() == count
    # its nonce was not used: the next record signs with the same one
    assert writes.next_nonce(key.address) == body["nonce"]
    # the same signed message again is that failed submission, not a second try
    again = writes.client.post(URL, json=body_sent)
    assert again.status_code == 409 and again.json()["status"] == "failed" and again.json()["id"] == body["id"]


def test_a_rectification_of_a_case_nobody_rated_fails_with_the_contract_s_error(writes: Writes):
    """Rectified (差评整改) is a case action the write API takes; the contract takes it only for a rated receipt case,
    and the submission fails with its error decoded."""
    key = writes.key(ROADS)
    opened = writes.opened("rectify")
    recorded(writes, writes.client.post(URL, json=writes.body(key, opened)), key, EntryKind.CASE_EVENT, [opened])
    answer = writes.client.post(URL, json=writes.body(key, writes.update("rectify", CaseAction.RECTIFIED)))
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "failed" and body["error"]["name"] == "CaseNotRated", body


# ---------------------------------------------------------------------- refused


def test_a_replayed_signature_is_a_duplicate_answering_with_the_first_submission(writes: Writes):
    key = writes.key(ROADS)
    body = writes.body(key, writes.opened("replayed"))
    first = writes.client.post(URL, json=body).json()
    assert first["status"] == "recorded"
    again = refused(writes, body, 409, "duplicate")
    assert again["id"] == first["id"] and again["status"] == "recorded" and again["seq"] == first["seq"]


def test_a_malformed_signature_is_refused(writes: Writes):
    body = writes.body(writes.key(ROADS), writes.opened("malformed"))
    refused(writes, {**body, "signature": "0x1234"}, 400, "bad_signature")
    refused(writes, {**body, "signature": "0x" + "00" * 65}, 400, "bad_signature")
    refused(writes, {**body, "signature": "not hex"}, 400, "bad_signature")


def test_the_high_s_twin_of_a_valid_signature_is_refused(writes: Writes):
    body = writes.body(writes.key(ROADS), writes.opened("high-s"))
    raw = bytes.fromhex(body["signature"][2:])
    s, v = int.from_bytes(raw[32:64], "big"), raw[64]
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    signable = encode_typed_data(full_message=body["typed_data"])
    assert Account.recover_message(signable, signature=twin) == writes.key(ROADS).address  # a valid twin…
    answer = refused(writes, {**body, "signature": "0x" + twin.hex()}, 400, "bad_signature")  # …refused all the same
    assert "high s" in answer["error"]["message"]


def test_a_signature_by_another_key_is_refused(writes: Writes):
    event = writes.opened("other-key")
    nonce = writes.next_nonce(writes.key(ROADS).address)
    stranger = Account.create()
    body = writes.body(stranger, event, nonce=nonce)
    # by an unknown key
    answer = refused(writes, body, 403, "unauthorized_signer")
    assert stranger.address in answer["error"]["message"]
    # claiming to be the agency's key
    refused(writes, {**body, "signer": writes.key(ROADS).address}, 400, "signer_mismatch")
    # by another agency's authorised key, claiming to be this one's
    other = writes.body(writes.key(WATER), event, nonce=nonce)
    refused(writes, {**other, "signer": writes.key(ROADS).address}, 400, "signer_mismatch")


def test_a_revoked_key_is_refused(writes: Writes):
    city = writes.city
    key = city.chain.new_account()  # a key of this test's own, never a demo key other tests use
    city.ledger.authorize_signer(city.governance, short_code(ROADS), key.address)
    first = writes.client.post(URL, json=writes.body(key, writes.opened("before-revoke")))
    assert first.json()["status"] == "recorded"
    city.ledger.revoke_signer(city.governance, key.address)
    answer = refused(writes, writes.body(key, writes.opened("after-revoke")), 403, "unauthorized_signer")
    assert "revoked" in answer["error"]["message"]


def test_a_record_signed_before_the_key_moved_to_another_agency_is_refused(writes: Writes):
    """The signature names the agency: after governance moves the key, what it signed for the first agency is refused
    (the contract would refuse it too), never attributed to the second."""
    city = writes.city
    key = city.chain.new_account()
    city.ledger.authorize_signer(city.governance, short_code(ROADS), key.address)
    for_roads = writes.body(key, writes.opened("signed-for-roads"))
    city.ledger.revoke_signer(city.governance, key.address)
    city.ledger.authorize_signer(city.governance, short_code(WATER), key.address)
    answer = refused(writes, for_roads, 403, "agency_mismatch")
    assert ROADS in answer["error"]["message"] and WATER in answer["error"]["message"]
    city.ledger.revoke_signer(city.governance, key.address)


def test_an_agency_id_that_is_no_bytes32_is_refused(writes: Writes):
    body = writes.body(writes.key(ROADS), writes.opened("bad-agency-field"))
    body["typed_data"]["message"]["agencyId"] = ROADS
    answer = refused(writes, body, 400, "invalid_record")
    assert answer["error"]["field"] == "agencyId"


def test_wrong_chain_and_wrong_contract_are_refused(writes: Writes):
    key = writes.key(ROADS)
    event = writes.opened("wrong-domain")
    chain_id = writes.city.chain.chain_id
    answer = refused(writes, writes.body(key, event, chainId=chain_id + 1), 400, "wrong_chain")
    assert answer["error"]["expected_chain_id"] == chain_id
    refused(writes, writes.body(key, event, verifyingContract="0x" + "11" * 20), 400, "wrong_contract")
    refused(writes, writes.body(key, event, name="SomethingElse"), 400, "wrong_domain")


def test_an_expired_deadline_is_refused(writes: Writes):
    body = writes.body(writes.key(ROADS), writes.opened("expired"), deadline=int(time.time()) - 10)
    refused(writes, body, 400, "expired")


def test_a_stale_or_future_nonce_is_refused(writes: Writes):
    key = writes.key(ROADS)
    if writes.next_nonce(key.address) == 0:  # run alone, or before the tests that write: one write takes nonce 0
        assert writes.client.post(URL, json=writes.body(key, writes.opened("first"))).status_code == 202
    nonce = writes.next_nonce(key.address)
    assert nonce > 0
    answer = refused(writes, writes.body(key, writes.opened("stale"), nonce=nonce - 1), 409, "stale_nonce")
    assert answer["error"]["expected_nonce"] == nonce
    refused(writes, writes.body(key, writes.opened("future"), nonce=nonce + 3), 409, "stale_nonce")


def test_a_tampered_message_is_refused(writes: Writes):
    key = writes.key(ROADS)
    body = writes.body(key, writes.opened("tampered"))
    body["typed_data"]["message"]["caseEvent"]["detailsHash"] = "0x" + "ab" * 32
    # the signature now recovers to some other address: no authorised key signed this
    refused(writes, body, 403, "unauthorized_signer")
    refused(writes, {**body, "signer": key.address}, 400, "signer_mismatch")


def test_types_must_be_exactly_the_canonical_ones(writes: Writes):
    key = writes.key(ROADS)
    base = writes.body(key, writes.opened("types"))

    def with_types(change) -> dict[str, Any]:
        body = json.loads(json.dumps(base))
        change(body["typed_data"]["types"])
        return body

    refused(writes, with_types(lambda t: t["CaseEvent"].append({"name": "extra", "type": "uint256"})), 400,
            "wrong_types")
    refused(writes, with_types(lambda t: t["CaseEvent"].pop()), 400, "wrong_types")
    refused(writes, with_types(lambda t: t["CaseEvent"].reverse()), 400, "wrong_types")
    refused(writes, with_types(lambda t: t.update(Extra=[{"name": "x", "type": "uint8"}])), 400, "wrong_types")
    refused(writes, with_types(lambda t: t["EIP712Domain"].pop()), 400, "wrong_types")
    # typed data without EIP712Domain (as ethers builds it) is the same typed data
    without = with_types(lambda t: t.pop("EIP712Domain"))
    answer = writes.client.post(URL, json=without)
    assert answer.status_code == 202 and answer.json()["status"] == "recorded"


def test_an_invalid_record_is_refused_naming_the_field(writes: Writes):
    key = writes.key(ROADS)
    body = writes.body(key, writes.opened("invalid"))
    event = body["typed_data"]["message"]["caseEvent"]
    cases = [
        ({"district": "0x" + "00" * 32}, "caseEvent"),  # Opened without its district
        ({"caseId": "0x1234"}, "caseEvent.caseId"),
        ({"action": 12}, "caseEvent.action"),  # 1 to 11 are actions (10 DisputeRejected, 11 Rectified)
        ({"occurredAt": int(time.time()) + 86400}, "caseEvent.occurredAt"),
        ({"colour": "red"}, "caseEvent.colour"),
    ]
    for change, field in cases:
        changed = json.loads(json.dumps(body))
        changed["typed_data"]["message"]["caseEvent"] = {**event, **change}
        answer = refused(writes, changed, 400, "invalid_record")
        assert answer["error"]["field"] == field, answer
    missing = json.loads(json.dumps(body))
    del missing["typed_data"]["message"]["caseEvent"]["channel"]
    assert refused(writes, missing, 400, "invalid_record")["error"]["field"] == "caseEvent.channel"
    no_nonce = json.loads(json.dumps(body))
    del no_nonce["typed_data"]["message"]["nonce"]
    refused(writes, no_nonce, 400, "invalid_record")


def test_a_wrong_primary_type_is_refused(writes: Writes):
    body = writes.body(writes.key(ROADS), writes.opened("primary"))
    for primary in ("AgencyRegistration", "Mail", "RecordCaseEvents"):
        changed = json.loads(json.dumps(body))
        changed["typed_data"]["primaryType"] = primary
        code = "wrong_types" if primary == "RecordCaseEvents" else "unsupported_primary_type"
        refused(writes, changed, 400, code)


def test_malformed_bodies_are_refused(writes: Writes):
    refused(writes, b'{"typed_data": {', 400, "invalid_json")
    refused(writes, b"", 422, "invalid_body")
    refused(writes, [], 422, "invalid_body")
    body = writes.body(writes.key(ROADS), writes.opened("shape"))
    refused(writes, {"typed_data": body["typed_data"]}, 422, "invalid_body")  # no signature
    refused(writes, {**body, "extra": 1}, 422, "invalid_body")
    refused(writes, {**body, "typed_data": 5}, 422, "invalid_body")
    refused(writes, {**body, "typed_data": "{not json"}, 422, "invalid_body")
    answer = refused(writes, b"x" * (1024 * 1024 + 1), 413, "body_too_large")
    assert answer


def test_an_unknown_submission_is_not_found(writes: Writes):
    for ident in ("0x" + "00" * 32, "42", "0x" + "zz" * 32):
        answer = writes.client.get(f"{URL}/{ident}")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_writes_are_rate_limited_per_client(api_settings: ApiSettings, tmp_path):
    settings = replace(api_settings, data_dir=tmp_path, write_rate_per_minute=2)
    with TestClient(create_app(settings)) as client:
        codes = [client.post(URL, content=b"{", headers={"content-type": "application/json"}) for _ in range(3)]
        assert [c.status_code for c in codes] == [400, 400, 429]
        limited = codes[-1]
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 30
        assert client.get(f"{URL}/{'0x' + '00' * 32}").status_code == 404  # reads are not write-limited


def test_a_relayer_that_dies_before_sending_sends_once_when_the_service_restarts(
    writes: Writes, api_settings: ApiSettings, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    """The submission is stored and its transaction signed, then the relayer dies before broadcasting it. The next
    start of the service (no request needed) sends those same bytes: recorded once."""
    relayer = KeyStore(tmp_path / "keys").get_or_create("relayer")
    writes.city.chain.fund(relayer.address)
    settings = replace(api_settings, data_dir=tmp_path, extra={"write_wait_seconds": "0.5"})
    key = writes.key(WATER)
    event = writes.opened("crash", WATER, "WATER-OUTAGE-24H", channel=2)
    count = writes.ledger.entry_count()

    class Died(Exception):
        pass

    def die(*args: Any, **kwargs: Any) -> None:
        raise Died("relayer died before broadcasting")

    monkeypatch.setattr(RelayWriter, "_broadcast", die)
    with TestClient(create_app(settings)) as client:
        answer = client.post(URL, json=writes.body(key, event))
        assert answer.status_code == 202 and answer.json()["status"] in ("pending", "sent")
        ident = answer.json()["id"]
    monkeypatch.undo()
    assert writes.ledger.entry_count() == count

    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while (status := client.get(f"{URL}/{ident}").json())["status"] != "recorded":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        recorded(writes, _Answer(status), key, EntryKind.CASE_EVENT, [event], client)
        outbox = client.app.state.agency_writes.store.outbox  # type: ignore[attr-defined]
        assert len(outbox.transactions()) == 1  # signed once, sent once
    assert writes.ledger.entry_count() == count + 1


@dataclass
class _Answer:
    """A GET answer standing in for the POST's, for ``recorded``."""

    body: dict[str, Any]
    status_code: int = 202

    def json(self) -> dict[str, Any]:
        return self.body


# ---------------------------------------------------------------------- fair relaying


def test_agency_flooding_the_relayer_is_refused_with_429_naming_the_budget(
    writes: Writes, api_settings: ApiSettings, tmp_path
):
    """An agency key posting more than its budget allows is refused up front — 429, the budget named, when it
    resets, Retry-After — and nothing is stored or sent; another agency's key is not held back by it."""
    relayer = KeyStore(tmp_path / "keys").get_or_create("relayer")
    writes.city.chain.fund(relayer.address)
    settings = replace(api_settings, data_dir=tmp_path, extra={"write_wait_seconds": "0"},
                       relay_budgets=RelayBudgets(transactions_per_hour=2))
    city = writes.city
    key = city.chain.new_account()  # a key of this test's own: no other test's submission shares its nonces
    city.ledger.authorize_signer(city.governance, short_code(ROADS), key.address)
    with TestClient(create_app(settings)) as client:
        nonce, first_block = writes.ledger.nonce(key.address), writes.ledger.chain.w3.eth.block_number
        for i in range(2):
            answer = client.post(URL, json=writes.body(key, writes.opened(f"flood-{i}"), nonce=nonce + i))
            assert answer.status_code == 202, answer.text
        store = client.app.state.agency_writes.store  # type: ignore[attr-defined]
        rows = sum(store.outbox.counts().values())
        started = time.time()
        flooding = writes.opened("flood-2")
        flood = client.post(URL, json=writes.body(key, flooding, nonce=nonce + 2))
        assert flood.status_code == 429, flood.text
        error = flood.json()["error"]
        assert error["code"] == "budget_exceeded" and error["budget"] == "signer_transactions_per_hour"
        assert error["limit"] == 2 and error["used"] == 2
        assert started + 3500 < error["resets_at"] <= started + 3601
        assert 3500 < int(flood.headers["Retry-After"]) <= 3600
        assert "signer_transactions_per_hour" in error["message"]
        # nothing stored, and once the two accepted ones are mined, nothing of the refused one on chain
        assert sum(store.outbox.counts().values()) == rows
        deadline = time.time() + 30
        while store.outbox.counts()[OutboxState.RECORDED] < 2:
            assert time.time() < deadline, store.outbox.counts()
            time.sleep(0.05)
        written = writes.ledger.entries(from_block=first_block)
        assert [e.record.case_id for e in written if e.actor == key.address] == [
            writes.opened(f"flood-{i}").case_id for i in range(2)
        ]
        assert flooding.case_id not in {getattr(e.record, "case_id", None) for e in written}
        # another agency's key has budgets of its own
        other = city.chain.new_account()
        city.ledger.authorize_signer(city.governance, short_code(WATER), other.address)
        answer = client.post(URL, json=writes.body(other, writes.opened("neighbour", WATER, "WATER-OUTAGE-24H"),
                                                   nonce=0))
        assert answer.status_code == 202, answer.text
        spec = client.get("/openapi.json").json()
        assert "budget_exceeded" in spec["paths"][URL]["post"]["responses"]["429"]["description"]


def test_relay_budgets_are_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("CIVIC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CIVIC_RELAY_TX_PER_HOUR", "10")
    monkeypatch.setenv("CIVIC_RELAY_GAS_PER_DAY", "1_000_000")
    budgets = ApiSettings.from_env().relay_budgets
    assert budgets == RelayBudgets(transactions_per_hour=10, gas_per_day=1_000_000)
    assert ApiSettings(store_url="sqlite://").relay_budgets == RelayBudgets()  # the documented defaults
    monkeypatch.setenv("CIVIC_RELAY_GAS_PER_HOUR", "lots")
    with pytest.raises(ValueError, match="CIVIC_RELAY_GAS_PER_HOUR"):
        ApiSettings.from_env()


def test_a_node_failure_is_a_503_and_a_programming_error_is_not(writes: Writes, monkeypatch: pytest.MonkeyPatch):
    """A read from the node that fails because of the node (unreachable, timed out) is 503 node_unavailable; an error
    of the code itself surfaces as what it is (a 500), never dressed up as the node being unavailable."""
    import requests

    from ledger.chain.contract import Ledger

    signer = writes.key(ROADS).address

    def unreachable(self: Ledger, address: str) -> int:
        raise requests.ConnectionError("connection refused")

    monkeypatch.setattr(Ledger, "nonce", unreachable)
    answer = writes.client.get(f"/api/v1/agency/nonce/{signer}")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "node_unavailable"

    def bug(self: Ledger, address: str) -> int:
        raise KeyError("a programming error")

    monkeypatch.setattr(Ledger, "nonce", bug)
    with pytest.raises(KeyError, match="a programming error"):  # the test client re-raises what the server raised
        writes.client.get(f"/api/v1/agency/nonce/{signer}")
