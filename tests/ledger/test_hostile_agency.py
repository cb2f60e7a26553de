"""A hostile agency with a valid key against the service: the indexer's batch quarantine and the relayer's
fairness. Each test is named after what the agency attempts.

The indexer tests run on an anvil of this module's own (``own_anvil``); the citizens' lane test on the pool anvil of
the relay's fairness tests (``tests/support/pool.py``, automatic mining off while it runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger import receipts
from ledger.batches import BatchStore
from ledger.batches.read import WITHHELD_MISSING
from ledger.encoding import keccak
from ledger.index.withheld import WithheldBatches
from ledger.records import CaseAction, Correction, Rating, Receipt, text_hash
from ledger.relay.store import CITIZEN_LANE, RelayStore
from ledger.relay.verify import RelayRefused, check_citizen_signature
from ledger.relay.writer import RelayWriter
from ledger.store.db import Store
from tests.support.batched import T0, anchor, index, life, table
from tests.support.feedback import code_of, receipt_case_id
from tests.support.pool import Pool, rating_of, settled, wait_for
from tests.support.relay import signed, submit
from tests.support.world import World


@pytest.fixture
def world(two_agency_world: World) -> World:
    return two_agency_world


# ------------------------------------------------------------------------------ batches withheld on purpose


def anchor_without_files(world: World, n: int) -> list[int]:
    """The hostile agency anchors `n` one-entry batches whose files it never publishes (a random root and file
    hash each: no file can ever be shown not to match, so each stays ``missing`` for ever); returns their seqs."""
    seqs = []
    for i in range(n):
        seqs.append(world.ledger.entry_count())
        world.ledger.anchor_batch(world.signer, keccak(b"root:%d" % i), 1, keccak(b"file:%d" % i))
    return seqs


def test_agency_anchoring_many_batches_without_files_does_not_make_every_sync_recheck_them_all(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    published = tmp_path / "published"
    published.mkdir()
    seqs = anchor_without_files(world, 120)
    store = stores()
    indexer = index(world, store, published, confirmations=0)
    report = indexer.sync()
    assert report.withheld_batches == len(seqs) and indexer.halted_reason() is None
    looked: list[bytes] = []
    original = WithheldBatches._file_identity

    def counting(self: WithheldBatches, file_hash: bytes) -> Any:
        looked.append(file_hash)
        return original(self, file_hash)

    WithheldBatches._file_identity = counting  # type: ignore[method-assign]
    try:
        for _ in range(3):  # three polls with nothing new on chain
            indexer.sync()
    finally:
        WithheldBatches._file_identity = original  # type: ignore[method-assign]
    assert looked == [], f"{len(looked)} file checks in 3 idle syncs for {len(seqs)} withheld batches"
    # a file published now is found at the next sync, without looking at the others
    content = tmp_path / "elsewhere.csv"
    content.write_text("not the anchored file")
    content.rename(published / (keccak(b"file:7").hex() + ".csv"))
    WithheldBatches._file_identity = counting  # type: ignore[method-assign]
    try:
        indexer.sync()
    finally:
        WithheldBatches._file_identity = original  # type: ignore[method-assign]
    assert set(looked) == {keccak(b"file:7")}  # only the one published


def test_corrections_aimed_into_a_withheld_batch_by_another_agency_or_voided_since_slot_in_as_from_the_start(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    """While the batch is withheld: the other agency aims a correction at one of its entries (never the other
    agency's to void), the batch's agency voids a batched fulfilment, then voids that correction. Publishing the file
    gives exactly the store a sync with the file there from the start gives: the foreign correction refused, the
    fulfilment voided (voiding is final), the correction of the correction applied."""
    published = tmp_path / "published"
    store = stores()
    indexer = index(world, store, published)
    batch, anchored = anchor(world, life(world, "q", 4), tmp_path / "private")
    opened, fulfilled = anchored.seq + 1, anchored.seq + 5  # q1's Opened; q0's fulfilment (see life)
    foreign = world.ledger.entry_count()
    world.ledger.write(world.other_signer, Correction(target_seq=opened, reason_hash=text_hash("f"), occurred_at=T0))
    first = world.ledger.entry_count()
    world.ledger.write(world.signer, Correction(target_seq=fulfilled, reason_hash=text_hash("a"), occurred_at=T0))
    second = world.ledger.entry_count()
    world.ledger.write(world.signer, Correction(target_seq=first, reason_hash=text_hash("b"), occurred_at=T0))
    indexer.sync()
    assert table(store.dump(), "batches", store)[0]["withheld"] == WITHHELD_MISSING
    BatchStore(published).put(batch)
    assert indexer.sync().released_batches == 1
    dump = store.dump()
    applied = {r["seq"]: r["applied"] for r in table(dump, "corrections", store)}
    assert applied == {foreign: False, first: True, second: True}
    voided = {r["seq"]: r["voided_by"] for r in table(dump, "entries", store)}
    assert voided[opened] is None and voided[fulfilled] == first and voided[first] == second
    fresh = stores()
    index(world, fresh, published).sync(to_block=indexer.last_block())
    assert fresh.dump() == dump


# ------------------------------------------------------------------------------ front-running


def test_signer_cancelling_its_nonce_and_writing_the_same_record_itself_does_not_end_the_submission_recorded(
    world: World, tmp_path: Path
) -> None:
    """The same record, by the same key, is on chain after the submission was accepted, and the signer's nonce is
    used — but by cancelSignatures, and the record was written directly, not with the submitted signature: the
    submission was not relayed by anyone, so it fails with the decoded error and is never taken for recorded."""
    store = RelayStore(tmp_path / "relay", world.ledger, synchronous="NORMAL")
    try:
        event = world.opened("written-directly")
        item = signed(world, world.signer, event)
        status = submit(world, store, item)
        world.ledger.cancel_signatures(world.signer, item.nonce + 1)
        world.ledger.write(world.signer, event)  # the very record, its own transaction, no signature in it
        with RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01) as writer:
            writer.flush()
        final = store.status(status.key)
        assert final is not None and final.state == "failed" and final.error_name == "InvalidSignature"
        assert final.seqs == ()  # no entry is claimed as this submission's
    finally:
        store.close()


# ------------------------------------------------------------------------------ the citizens' lane


def other_agency_rating(anvil_pool: Pool, name: str) -> tuple[Rating, bytes]:
    """A real citizen of the other agency (SH-WATER): a fulfilled case with a receipt, and its signed rating."""
    w = anvil_pool.world
    case, code = receipt_case_id(name), code_of(name)
    w.ledger.write(w.other_signer, w.opened(name, case_id=case))
    w.ledger.write(w.other_signer, Receipt(case_id=case, receipt=receipts.address(code), occurred_at=w.now()))
    w.ledger.write(w.other_signer, w.update(name, CaseAction.FULFILLED, case_id=case,
                                            details_hash=text_hash(f"{name}:done")))
    rating = Rating(agency_id=w.other_agency_id, case_id=case, score=3, comment_hash=text_hash(name))
    return rating, w.ledger.sign_citizen(receipts.private_key(code), rating)


def test_agency_rating_its_own_receipt_cases_cannot_crowd_out_another_agencys_citizen(
    pool: Pool, tmp_path: Path
) -> None:
    """An agency that issues receipts to keys it holds and closes those cases can sign ratings of its own cases. At
    most ``citizen_queue_per_agency`` of them wait at a time (the rest are refused ``citizen_queue_full``, with when
    to retry): another agency's citizen waits behind that many at most, not behind the whole flood."""
    w = pool.world
    w.ledger.write(w.other_signer, w.commitment())
    flood = [rating_of(pool, f"self-rated-{i}", 5) for i in range(12)]  # the hostile agency's own receipt keys
    real, real_signature = other_agency_rating(pool, "real-citizen")
    store = RelayStore(tmp_path / "relay", w.ledger, synchronous="NORMAL", citizen_queue_per_agency=4)
    citizens = RelayWriter(w.ledger, pool.citizen_relayer, store, lane=CITIZEN_LANE, retry_backoff=0.01,
                           poll_interval=0.05)
    w3 = pool.chain.w3
    try:
        w3.provider.make_request("evm_setBlockGasLimit", [hex(250_000)])  # about two ratings a block
        w3.provider.make_request("evm_setAutomine", [False])
        domain = w.ledger.domain()
        accepted, refused = [], []
        for rating, signature in flood:
            try:
                accepted.append(store.submit_citizen(check_citizen_signature(rating, signature, domain))[0])
            except RelayRefused as exc:
                refused.append(exc)
        assert len(accepted) == 4 and len(refused) == 8
        assert {exc.code for exc in refused} == {"citizen_queue_full"}
        assert refused[0].details["retry_after"] > 0 and "4" in refused[0].message
        status, _ = store.submit_citizen(check_citizen_signature(real, real_signature, domain))  # another agency's
        citizens.start()

        def rated() -> bool:
            return bool(w.ledger.receipt_case(w.other_agency_id, real.case_id).rated)

        first_nonce = w3.eth.get_transaction_count(pool.citizen_relayer.address)
        blocks = 0
        while not rated() and blocks < 20:
            wait_for(lambda: int(w3.provider.make_request("txpool_status", [])["result"]["pending"], 16) > 0,
                     "the citizens' writer to send its next ratings")
            pool.mine()
            blocks += 1
        assert rated()
        final = wait_for(lambda: settled(store, status.key), "the real rating's status")
        assert final.state == "recorded"
        # how many of the lane's transactions went before it: the four the agency may have waiting, no more (a count
        # of transactions, not of blocks, so it holds however the writer's sends and the test's mining interleave)
        ahead = int(w3.eth.get_transaction(final.tx_hash)["nonce"]) - first_nonce
        assert ahead <= 4, f"the real citizen's rating went after {ahead} of the agency's own"
        # once the agency's queue drained, its next rating is taken again
        for item in accepted:
            wait_for(lambda item=item: settled(store, item.key), "the flood's accepted ratings")
        again, signature = flood[4]
        assert store.submit_citizen(check_citizen_signature(again, signature, domain))[1]
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        citizens.close()
        store.close()
