"""A ledger whose roads agency withholds batches, for the API and page tests of withheld batches: an anvil, the two
agencies of ``tests.support.world.build_world`` (each with a commitment), and from SH-ROADS a batch whose file is never
published where the service looks (withheld: missing), a batch whose anchor no file can match (impossible), and a
published batch holding a fulfilment of a receipt case (on the ledger, not applied); then SH-WATER's later cases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.settings import ApiSettings
from ledger import batches, receipts
from ledger.batches import Batch, BatchStore, build_batch
from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode
from ledger.encoding import code_text, keccak
from ledger.index.sync import Indexer
from ledger.records import CaseAction, Receipt
from ledger.store.db import open_store
from tests.support.batches import batch_case_id, case_events
from tests.support.citizens import receipt_case_id
from tests.support.world import World, build_world


@dataclass
class WithheldWorld:
    node: AnvilNode
    world: World
    #: the service's batch directory (``<data dir>/batches``): every file but the withheld batch's
    data_dir: Path
    #: where the withheld batch's file is kept back
    private: Path
    #: the batch whose file is not published, its seq; the impossible batch's seq and count
    missing: Batch
    missing_seq: int
    impossible_seq: int
    impossible_count: int
    #: the receipt case with a batched fulfilment, the seq of that fulfilment and the receipt's code
    receipted: bytes
    batched_fulfilment: int
    receipt_code: str

    @property
    def chain(self) -> Chain:
        return self.world.chain

    @property
    def batch_dir(self) -> Path:
        return self.data_dir / "batches"

    @property
    def roads(self) -> str:
        return code_text(self.world.agency_id)

    @property
    def water(self) -> str:
        return code_text(self.world.other_agency_id)

    def settings(self, store_url: str, **changes: Any) -> ApiSettings:
        fields: dict[str, Any] = dict(
            store_url=store_url, rpc_url=self.node.url, contract_address=self.world.ledger.address,
            chain_id=self.chain.chain_id, data_dir=self.data_dir,
        )
        # the auditor asks for many figures at once, and these tests are of what it finds: no figures budget or time
        # share (tests/audit/test_careful_client.py shows the auditor waits them out)
        fields.update(expensive_rate_per_minute=0, computation_share=1.0)
        fields.update(changes)
        return ApiSettings(**fields)

    def index(self, store_url: str, batch_dir: Path | None = None) -> None:
        """Sync the store at ``store_url`` from a batch directory (the service's by default)."""
        store = open_store(store_url)
        try:
            Indexer(self.chain, self.world.ledger.address, store, confirmations=0,
                    batch_dir=batch_dir or self.batch_dir).sync()
        finally:
            store.close()


@contextmanager
def withheld_world(tmp: Path) -> Iterator[WithheldWorld]:
    node = AnvilNode().start()
    try:
        world = build_world(Chain.connect(node.url))
        ledger, signer = world.ledger, world.signer
        ledger.write(world.other_signer, world.commitment())
        data_dir, private = tmp / "data", tmp / "private"
        published = BatchStore(data_dir / "batches")
        ledger.write(signer, world.opened("roads-single", case_id=batch_case_id("roads-single")))
        # withheld: the file is published only where the service does not look
        missing = build_batch(case_events(world, "withheld", 3))
        missing_seq = batches.anchor(ledger, signer, missing, BatchStore(private)).seq
        # impossible: the file with the anchored hash is published, but the anchored root is not its root
        other = build_batch(case_events(world, "other", 2))
        published.put(other)
        impossible_seq = ledger.entry_count()
        ledger.anchor_batch(signer, keccak(b"a random root"), other.count, other.file_hash)
        # a receipt case opened on its own, fulfilled in a published batch: on the ledger, not applied
        code = receipts.new_code()
        receipted = receipt_case_id("withheld-world")
        ledger.write(signer, world.opened("receipted", case_id=receipted))
        ledger.write(signer, Receipt(case_id=receipted, receipt=receipts.address(code), occurred_at=world.now()))
        fulfilled = build_batch([world.update("receipted", CaseAction.FULFILLED, case_id=receipted)])
        batched_fulfilment = batches.anchor(ledger, signer, fulfilled, published).seq
        # the other agency goes on recording after all of it
        ledger.write(world.other_signer, world.opened("water-after"))
        yield WithheldWorld(node, world, data_dir, private, missing, missing_seq, impossible_seq, other.count,
                            receipted, batched_fulfilment, code)
    finally:
        node.stop()
