"""A ledger of its own for the batch tests (API and page): an anvil, one agency with a commitment
(``tests.support.world.build_world``), two Merkle-anchored batches of case events with single entries around them — one
case opened on its own and moved along in a batch —, the files in the service's default batch directory
(``<data dir>/batches``), indexed into SQLite with the indexer's batch expansion."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.settings import ApiSettings
from ledger import batches, receipts
from ledger.batches import Anchored, Batch, BatchStore, build_batch
from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode
from ledger.encoding import code_text
from ledger.index.sync import Indexer
from ledger.records import CaseAction, CaseEvent, Receipt, text_hash
from ledger.store.db import open_store
from tests.support.citizens import receipt_case_id
from tests.support.world import World, build_world, case_id


@dataclass
class BatchWorld:
    node: AnvilNode
    world: World
    data_dir: Path
    store_url: str
    #: the batches anchored, in order, with where they landed
    anchored: list[tuple[Batch, Anchored]]
    #: the case whose opening is written on its own and whose next event is batched
    mixed: str
    #: the receipt code of the case "receipted" (opened with a receipt on its own, accepted and fulfilled in a batch)
    receipt_code: str

    @property
    def chain(self) -> Chain:
        return self.world.chain

    @property
    def agency(self) -> str:
        return code_text(self.world.agency_id)

    def settings(self, **changes: Any) -> ApiSettings:
        fields: dict[str, Any] = dict(
            store_url=self.store_url, rpc_url=self.node.url, contract_address=self.world.ledger.address,
            chain_id=self.chain.chain_id, data_dir=self.data_dir,
        )
        fields.update(changes)
        return ApiSettings(**fields)


def batch_case_id(name: str) -> bytes:
    """The id of a case without a receipt (``RECEIPT_CASE_FLAG`` clear), so that its batched events apply to it
    (``ledger.cases.batched_event_applies``)."""
    raw = case_id(name)
    return bytes([raw[0] & 0x7F]) + raw[1:]


def case_events(world: World, prefix: str, cases: int) -> list[CaseEvent]:
    """Each case opened, accepted and fulfilled (in that order, so the fold is clean)."""
    out: list[CaseEvent] = []
    for i in range(cases):
        out.append(world.opened(f"{prefix}{i}", case_id=batch_case_id(f"{prefix}{i}")))
    for i in range(cases):
        key = batch_case_id(f"{prefix}{i}")
        out.append(world.update(f"{prefix}{i}", CaseAction.ACCEPTED, case_id=key))
        out.append(world.update(f"{prefix}{i}", CaseAction.FULFILLED, case_id=key,
                                details_hash=text_hash(f"{prefix}{i} done")))
    return out


def index(chain: Chain, address: str, url: str, batch_dir: Path) -> None:
    store = open_store(url)
    try:
        Indexer(chain, address, store, confirmations=0, batch_dir=batch_dir).sync()
    finally:
        store.close()


@contextmanager
def batch_world(tmp: Path) -> Iterator[BatchWorld]:
    node = AnvilNode().start()
    try:
        chain = Chain.connect(node.url)
        world = build_world(chain)
        data_dir = tmp / "data"
        store = BatchStore(data_dir / "batches")  # the service's default batch directory
        ledger, signer = world.ledger, world.signer
        # a case opened on its own, then moved along in a batch; single entries between the batches
        ledger.write(signer, world.opened("mixed", case_id=batch_case_id("mixed")))
        # a case opened with a receipt, its later events batched
        code = receipts.new_code()
        receipted = receipt_case_id("receipted")
        ledger.write(signer, world.opened("receipted", case_id=receipted))
        ledger.write(signer, Receipt(case_id=receipted, receipt=receipts.address(code), occurred_at=world.now()))
        first = build_batch(case_events(world, "a", 12) + [
            world.update("mixed", CaseAction.ACCEPTED, case_id=batch_case_id("mixed")),
            world.update("receipted", CaseAction.ACCEPTED, case_id=receipted),
            world.update("receipted", CaseAction.FULFILLED, case_id=receipted),
        ])
        a = batches.anchor(ledger, signer, first, store)
        ledger.write(signer, world.opened("single"))
        second = build_batch(case_events(world, "b", 3))
        b = batches.anchor(ledger, signer, second, store)
        ledger.write(signer, world.update("single", CaseAction.ACCEPTED))
        url = f"sqlite:///{tmp / 'index.sqlite'}"
        index(chain, ledger.address, url, store.directory)
        yield BatchWorld(node, world, data_dir, url, [(first, a), (second, b)], "mixed", code)
    finally:
        node.stop()
