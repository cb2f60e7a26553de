"""A ledger of its own for the citizen API and page tests: an anvil, one agency with a commitment
(``tests.support.world.build_world``), an index in SQLite, a data directory with a funded relayer key, and helpers to
open cases with receipts, move them along, and sign what the citizen's page signs; and the citizen API's answers
checked (found, refused leaving nothing behind, recorded once)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from ledger import receipts
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
from ledger.dev.node import AnvilNode
from ledger.encoding import ZERO32, code_text, keccak
from ledger.index.sync import Indexer
from ledger.records import CaseAction, Dispute, EntryKind, Rating, Receipt, text_hash
from ledger.relay.store import LANES
from ledger.relay.verify import salted_text_hash
from ledger.store.db import open_store
from ledger.store.schema import sync_state
from tests.support.world import World, build_world

RATINGS, DISPUTES = "/api/v1/ratings", "/api/v1/disputes"


def receipt_case_id(name: str) -> bytes:
    """A case id that can have a receipt (its top bit set)."""
    raw = bytearray(keccak(b"citizen-api:" + name.encode()))
    raw[0] |= 0x80
    return bytes(raw)


def plain_case_id(name: str) -> bytes:
    raw = bytearray(keccak(b"citizen-api:" + name.encode()))
    raw[0] &= 0x7F
    return bytes(raw)


@dataclass
class CitizenWorld:
    node: AnvilNode
    world: World
    store_url: str
    data_dir: Path
    relayer: LocalAccount
    #: case name -> receipt code
    codes: dict[str, str] = field(default_factory=dict)

    @property
    def chain(self) -> Chain:
        return self.world.chain

    @property
    def ledger(self) -> Ledger:
        return self.world.ledger

    @property
    def agency(self) -> str:
        return code_text(self.world.agency_id)

    def settings(self, **changes: Any) -> ApiSettings:
        fields: dict[str, Any] = dict(
            store_url=self.store_url, rpc_url=self.node.url, contract_address=self.ledger.address,
            chain_id=self.chain.chain_id, data_dir=self.data_dir,
        )
        fields.update(changes)
        return ApiSettings(**fields)

    def sync(self) -> None:
        store = open_store(self.store_url)
        try:
            Indexer(self.chain, self.ledger.address, store, confirmations=0).sync()
        finally:
            store.close()

    # -- the agency

    def open(self, name: str, *, receipt: bool = True) -> str | None:
        """Open a case (with a receipt, as the counter gives one) and return the receipt's code."""
        w = self.world
        case = receipt_case_id(name) if receipt else plain_case_id(name)
        w.ledger.write(w.signer, w.opened(name, case_id=case))
        if not receipt:
            return None
        code = receipts.new_code()
        w.ledger.write(w.signer, Receipt(case_id=case, receipt=receipts.address(code), occurred_at=w.now()))
        self.codes[name] = code
        return code

    def act(self, name: str, action: CaseAction, *, receipt: bool = True) -> None:
        w = self.world
        case = receipt_case_id(name) if receipt else plain_case_id(name)
        w.ledger.write(w.signer, w.update(name, action, case_id=case, details_hash=text_hash(f"{name}:{action}")))

    def case_hex(self, name: str, *, receipt: bool = True) -> str:
        return "0x" + (receipt_case_id(name) if receipt else plain_case_id(name)).hex()

    def address(self, name: str) -> str:
        return receipts.address(self.codes[name])

    # -- the citizen's page

    def rating_body(
        self, name: str, score: int, comment: str | None = None, *, publish: bool = False, key: bytes | None = None,
        case: bytes | None = None,
    ) -> dict[str, Any]:
        salt = secrets.token_bytes(32)
        comment_hash = ZERO32 if comment is None else salted_text_hash(salt, comment)
        rating = Rating(agency_id=self.world.agency_id, case_id=case or receipt_case_id(name), score=score,
                        comment_hash=comment_hash)
        signature = self.ledger.sign_citizen(key or receipts.private_key(self.codes[name]), rating)
        body: dict[str, Any] = {
            "agency_id": self.agency, "case_id": "0x" + rating.case_id.hex(), "score": score,
            "comment_hash": "0x" + comment_hash.hex(), "signature": "0x" + signature.hex(),
        }
        if comment is not None:
            body["comment"] = {"text": comment, "salt": "0x" + salt.hex(), "publish": publish}
        return body

    def dispute_body(
        self, name: str, closure: int, reason: str | None = None, *, publish: bool = False, key: bytes | None = None
    ) -> dict[str, Any]:
        salt = secrets.token_bytes(32)
        reason_hash = ZERO32 if reason is None else salted_text_hash(salt, reason)
        dispute = Dispute(agency_id=self.world.agency_id, case_id=receipt_case_id(name), closure=closure,
                          reason_hash=reason_hash)
        signature = self.ledger.sign_citizen(key or receipts.private_key(self.codes[name]), dispute)
        body: dict[str, Any] = {
            "agency_id": self.agency, "case_id": "0x" + dispute.case_id.hex(), "closure": closure,
            "reason_hash": "0x" + reason_hash.hex(), "signature": "0x" + signature.hex(),
        }
        if reason is not None:
            body["reason"] = {"text": reason, "salt": "0x" + salt.hex(), "publish": publish}
        return body


@contextmanager
def citizen_world(tmp: Path) -> Iterator[CitizenWorld]:
    node = AnvilNode().start()
    try:
        chain = Chain.connect(node.url)
        world = build_world(chain)
        data_dir = tmp / "data"
        relayer = KeyStore(data_dir / "keys").get_or_create("relayer")
        chain.fund(relayer.address)
        yield CitizenWorld(node, world, f"sqlite:///{tmp / 'index.sqlite'}", data_dir, relayer)
    finally:
        node.stop()


def index_last_block(cw: CitizenWorld) -> int:
    store = open_store(cw.store_url)
    try:
        with store.engine.connect() as conn:
            return int(conn.execute(sync_state.select()).mappings().one()["last_block"])
    finally:
        store.close()


# ---------------------------------------------------------------------- the citizen API's answers


def relay_rows(client: TestClient) -> int:
    """Rows in both lanes' outboxes."""
    store = client.app.state.agency_writes.store  # type: ignore[attr-defined]
    return sum(sum(store.lane_outbox(lane).counts().values()) for lane in LANES)


def lookup(client: TestClient, cw: CitizenWorld, name: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/receipts/{cw.address(name)}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def refused(client: TestClient, cw: CitizenWorld, url: str, body: Any, status: int, code: str) -> dict[str, Any]:
    """Refused with this status and code, and nothing written: no entry on chain, nothing stored for relaying."""
    entries, rows = cw.ledger.entry_count(), relay_rows(client)
    if isinstance(body, (bytes, str)):
        answer = client.post(url, content=body, headers={"content-type": "application/json"})
    else:
        answer = client.post(url, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["message"], error
    assert cw.ledger.entry_count() == entries
    assert relay_rows(client) == rows
    return answer.json()


def recorded(client: TestClient, cw: CitizenWorld, answer: Any, name: str, kind: EntryKind) -> dict[str, Any]:
    """Accepted and recorded once, on chain, with the receipt key as the entry's actor."""
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "recorded", body
    assert body["receipt"] == cw.address(name)
    block = cw.chain.w3.eth.get_transaction_receipt(body["tx_hash"])["blockNumber"]
    [entry] = [e for e in cw.ledger.entries(from_block=block, to_block=block) if e.seq == body["seq"]]
    assert entry.kind is kind and entry.actor == cw.address(name)  # the receipt key: not the relayer, not the agency
    assert "0x" + entry.record_hash.hex() == body["record_hash"]
    path = RATINGS if kind is EntryKind.CASE_RATED else DISPUTES
    assert answer.headers["location"] == f"{path}/{body['id']}"
    followed = client.get(f"{path}/{body['id']}")
    assert followed.status_code == 200 and followed.json() == body
    return body
