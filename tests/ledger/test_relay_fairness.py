"""Fair relaying (issue 10): per-signer budgets a flood cannot get past (and a restart does not forget), a lane of
their own for citizens' ratings and disputes that no agency backlog delays, and a relayed record someone copied and
put on chain first ends ``recorded`` with the copier's transaction — never ``failed``, never written twice.

The budget tests run on both chains (``world``). The lane and front-running tests need a transaction pool the test
controls, so they run on an anvil of this module's own with automatic mining switched off: transactions wait in
the pool until the test mines a block (``evm_mine``), which is what lets a copy overtake the relayer's transaction
and an agency backlog stand in front of a rating.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.relay.budgets import BudgetExceeded, RelayBudgets, estimated_gas
from ledger.relay.store import CITIZEN_LANE, RelayStore
from ledger.relay.verify import check_citizen_signature
from ledger.relay.writer import RelayWriter
from ledger.writer.outbox import OutboxState
from tests.support.pool import Pool, rating_of, settled, wait_for
from tests.support.relay import signed, submit
from tests.support.world import World


def usage(store: RelayStore, signer: str) -> dict[str, int]:
    return {use.budget: use.used for use in store.budget_usage(signer)}


# ---------------------------------------------------------------------- budgets


def test_agency_flooding_the_relayer_is_refused_naming_the_budget(world: World, relay_dir: Path):
    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL", budgets=RelayBudgets(transactions_per_hour=3))
    try:
        nonce = world.ledger.nonce(world.signer.address)
        accepted = [submit(world, store, signed(world, world.signer, world.opened(f"flood-{i}"), nonce=nonce + i))
                    for i in range(3)]
        flood = signed(world, world.signer, world.opened("flood-3"), nonce=nonce + 3)
        before = time.time()
        with pytest.raises(BudgetExceeded) as refused:
            store.check_budget(flood)  # what the API asks before anything else
        with pytest.raises(BudgetExceeded) as again:
            submit(world, store, flood)  # and the store itself, under its lock
        error = again.value
        assert error.code == "budget_exceeded" and error.budget == "signer_transactions_per_hour"
        assert (error.limit, error.used) == (3, 3) and refused.value.budget == error.budget
        # free again an hour after the first of the three was charged
        assert accepted[0].created_at + 3600 <= error.resets_at <= accepted[0].created_at + 3601
        assert 3598 <= error.retry_after <= 3600 + (time.time() - before) + 1
        assert "signer_transactions_per_hour" in str(error) and "3 of its 3" in str(error)
        assert store.status(flood.key) is None  # nothing stored, nothing queued
        assert store.outbox.count(OutboxState.PENDING) == 3
        # a day's budget is named when it is the one that runs out
        day = RelayStore(relay_dir / "day", world.ledger, synchronous="NORMAL",
                         budgets=RelayBudgets(transactions_per_hour=0, transactions_per_day=1))
        try:
            submit(world, day, signed(world, world.signer, world.opened("day-0"), nonce=nonce))
            with pytest.raises(BudgetExceeded) as daily:
                day.check_budget(signed(world, world.signer, world.opened("day-1"), nonce=nonce + 1))
            assert daily.value.budget == "signer_transactions_per_day" and daily.value.retry_after > 86000
        finally:
            day.close()
    finally:
        store.close()


def test_a_gas_budget_is_charged_the_estimate_then_what_the_receipt_shows(world: World, relay_dir: Path):
    batch_estimate = estimated_gas("RecordCaseEvents", 40)
    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL",
                       budgets=RelayBudgets(gas_per_hour=2 * batch_estimate - 1))
    try:
        nonce = world.ledger.nonce(world.signer.address)
        first = submit(world, store, signed(world, world.signer, [world.opened(f"g1-{i}") for i in range(40)]))
        assert usage(store, world.signer.address)["signer_gas_per_hour"] == batch_estimate
        second = signed(world, world.signer, [world.opened(f"g2-{i}") for i in range(40)], nonce=nonce + 1)
        with pytest.raises(BudgetExceeded) as refused:
            submit(world, store, second)
        assert refused.value.budget == "signer_gas_per_hour" and refused.value.requested == batch_estimate
        with RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01) as writer:
            writer.flush()
        done = store.status(first.key)
        assert done is not None and done.state == "recorded"
        paid = int(world.chain.w3.eth.get_transaction_receipt(done.tx_hash)["gasUsed"])
        assert 0 < paid < batch_estimate  # the estimate is conservative
        assert usage(store, world.signer.address)["signer_gas_per_hour"] == paid
        assert submit(world, store, second).state == "pending"  # what the receipt freed is usable at once
    finally:
        store.close()


def test_a_submission_refused_before_it_was_sent_costs_its_signer_no_gas(world: World, relay_dir: Path):
    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL")
    try:
        bad = submit(world, store, signed(world, world.signer, world.opened("unknown", commitment_id=b"\x01" * 32)))
        with RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01) as writer:
            writer.flush()
        assert store.status(bad.key).state == "failed"  # type: ignore[union-attr]
        spent = usage(store, world.signer.address)
        assert spent["signer_gas_per_hour"] == 0 and spent["signer_transactions_per_hour"] == 1
    finally:
        store.close()


def test_relay_budgets_survive_a_restart(world: World, relay_dir: Path):
    budgets = RelayBudgets(transactions_per_hour=1)
    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL", budgets=budgets)
    try:
        submit(world, store, signed(world, world.signer, world.opened("before-restart")))
    finally:
        store.close()
    reopened = RelayStore(relay_dir, world.ledger, synchronous="NORMAL", budgets=budgets)
    try:
        nonce = reopened.next_nonce(world.signer.address, world.ledger.nonce(world.signer.address))[0]
        with pytest.raises(BudgetExceeded) as refused:
            submit(world, reopened, signed(world, world.signer, world.opened("after-restart"), nonce=nonce))
        assert refused.value.budget == "signer_transactions_per_hour" and refused.value.used == 1
    finally:
        reopened.close()


def test_other_signers_are_unaffected_by_one_signers_exhausted_budget(world: World, relay_dir: Path):
    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL",
                       budgets=RelayBudgets(transactions_per_hour=1, gas_per_hour=150_000))
    try:
        submit(world, store, signed(world, world.signer, world.opened("greedy-0")))
        with pytest.raises(BudgetExceeded):
            submit(world, store, signed(world, world.signer, world.opened("greedy-1"),
                                        nonce=world.ledger.nonce(world.signer.address) + 1))
        other = submit(world, store, signed(world, world.other_signer, world.opened("neighbour")))
        assert other.state == "pending" and other.signer == world.other_signer.address
        assert usage(store, world.other_signer.address)["signer_transactions_per_hour"] == 1
    finally:
        store.close()


# ---------------------------------------------------------------------- a pool the test controls


@pytest.fixture
def lanes(pool: Pool, tmp_path: Path) -> Iterator[tuple[RelayStore, RelayWriter, RelayWriter]]:
    """A relay store with both lanes' writers running in the background, as the API runs them."""
    w = pool.world
    store = RelayStore(tmp_path / "relay", w.ledger, synchronous="NORMAL")
    agencies = RelayWriter(w.ledger, w.relayer, store, retry_backoff=0.01, poll_interval=0.05)
    citizens = RelayWriter(w.ledger, pool.citizen_relayer, store, lane=CITIZEN_LANE, retry_backoff=0.01,
                           poll_interval=0.05)
    try:
        yield store, agencies, citizens
    finally:
        for writer in (agencies, citizens):
            writer.close()
        store.close()


def test_citizen_rating_is_not_delayed_by_agency_bulk(pool: Pool, lanes: tuple[RelayStore, RelayWriter, RelayWriter]):
    """Twelve agency batches queued, then a rating: with one batch fitting a block, the agencies' lane needs twelve
    blocks; the rating is mined in the first block after it was sent, while most of the backlog still waits."""
    store, agencies, citizens = lanes
    w = pool.world
    rating, signature = rating_of(pool, "rated-despite-bulk", 4)
    w3 = pool.chain.w3
    w3.provider.make_request("evm_setBlockGasLimit", [hex(1_200_000)])  # one batch of 100 events per block
    w3.provider.make_request("evm_setAutomine", [False])
    start = w.ledger.nonce(w.signer.address)
    backlog = [submit(w, store, signed(w, w.signer, [w.opened(f"bulk-{b}-{i}") for i in range(100)], nonce=start + b))
               for b in range(12)]
    agencies.start()
    citizens.start()
    wait_for(lambda: pool.in_pool((store.status(backlog[0].key) or backlog[0]).tx_hash), "the first batch to be sent")
    status, created = store.submit_citizen(check_citizen_signature(rating, signature, w.ledger.domain()))
    assert created
    wait_for(lambda: pool.in_pool((store.status(status.key) or status).tx_hash), "the rating to be sent")
    assert usage(store, status.signer)["signer_transactions_per_day"] == 0  # a citizen's record costs no budget

    blocks = 0
    while not w.ledger.receipt_case(w.agency_id, rating.case_id).rated:
        pool.mine()
        blocks += 1
        assert blocks <= 2, "the rating waited behind the agencies' backlog"
    drained = w.ledger.nonce(w.signer.address) - start
    assert drained <= 2 < len(backlog)  # most of the agencies' batches are still waiting
    recorded = wait_for(lambda: settled(store, status.key), "the rating's status")
    assert recorded.state == "recorded" and recorded.tx_hash is not None
    # the backlog drains afterwards, every batch once
    for _ in range(40):
        if all(settled(store, b.key) for b in backlog):
            break
        pool.mine()
        time.sleep(0.05)  # let the writer see the block and broadcast the next batches
    assert [settled(store, b.key).state for b in backlog] == ["recorded"] * len(backlog)  # type: ignore[union-attr]
    assert w.ledger.nonce(w.signer.address) == start + len(backlog)


@pytest.mark.parametrize("kind", ["case event", "rating"])
def test_front_run_relayed_record_ends_recorded_with_the_front_runners_tx(
    pool: Pool, lanes: tuple[RelayStore, RelayWriter, RelayWriter], kind: str
):
    """The relayer's transaction is in the pool; someone copies its signed record and sends it directly with a
    higher tip, so the copy is mined first and ours reverts. The submission ends recorded with the copy's
    transaction and seq, and the record is on chain once."""
    store, agencies, citizens = lanes
    w = pool.world
    front_runner = pool.chain.new_account()
    if kind == "case event":
        event = w.opened("copied")
        item = signed(w, w.signer, event)
        status = submit(w, store, item)
        copy = w.ledger.contract.functions.recordCaseEventBySig(event.abi_values(), item.signer, item.deadline,
                                                                 item.signature)
        writer = agencies
    else:
        rating, signature = rating_of(pool, "copied-rating", 2)
        status, _ = store.submit_citizen(check_citizen_signature(rating, signature, w.ledger.domain()))
        copy = w.ledger.encode_citizen_call(rating, signature)
        writer = citizens
    before = w.ledger.entry_count()
    pool.chain.w3.provider.make_request("evm_setAutomine", [False])
    writer.start()
    ours = wait_for(lambda: (s := store.status(status.key)) and pool.in_pool(s.tx_hash) and s.tx_hash,
                    "the relayer's transaction to be in the pool")
    copied = pool.send_copy(front_runner, copy, tip=50 * 10**9)
    pool.mine()
    receipt = pool.chain.w3.eth.get_transaction_receipt(ours)
    assert receipt["status"] == 0  # ours reverted: the copy took the nonce (or the rating) first

    final = wait_for(lambda: settled(store, status.key), "the submission to settle")
    assert final.state == "recorded", final
    assert final.tx_hash == copied and final.error_name is None
    [entry] = [e for e in w.ledger.entries(from_block=receipt["blockNumber"]) if e.seq >= before]
    assert final.seqs == (entry.seq,) and "0x" + bytes(entry.transaction_hash).hex() == copied
    assert w.ledger.entry_count() == before + 1  # recorded once: nothing duplicated, nothing signed again
    assert store.status(status.key) == final  # and it stays so


def test_front_run_before_the_relayer_sent_it_ends_recorded_too(world: World, relay_dir: Path):
    """The copy is mined before the relayer even signed its transaction: the gas check reverts (the nonce is
    used), the relayer finds the copy, and sends nothing."""
    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL")
    try:
        events = [world.opened("early-copy-1"), world.opened("early-copy-2")]
        item = signed(world, world.signer, events)
        status = submit(world, store, item)
        copier = world.chain.new_account()
        mined = world.ledger.relay(copier, events, item.signer, item.deadline, item.signature)
        with RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01) as writer:
            writer.flush()
            assert writer.stats.signed == 0
        final = store.status(status.key)
        assert final is not None and final.state == "recorded"
        assert final.tx_hash == "0x" + bytes(mined["transactionHash"]).hex()
        assert len(final.seqs) == 2 and final.seqs[1] == final.seqs[0] + 1
        assert usage(store, world.signer.address)["signer_gas_per_hour"] == 0  # the copier paid, not the relayer
    finally:
        store.close()


def test_a_used_nonce_without_a_copy_on_chain_still_fails(world: World, relay_dir: Path):
    """The signer cancelled its outstanding signatures (the nonce moved on, nothing was copied): the submission
    fails with the decoded error; it is not taken for recorded."""
    store = RelayStore(relay_dir, world.ledger, synchronous="NORMAL")
    try:
        item = signed(world, world.signer, world.opened("cancelled"))
        status = submit(world, store, item)
        world.ledger.cancel_signatures(world.signer, item.nonce + 1)
        with RelayWriter(world.ledger, world.relayer, store, retry_backoff=0.01) as writer:
            writer.flush()
        final = store.status(status.key)
        assert final is not None and final.state == "failed" and final.error_name == "InvalidSignature"
    finally:
        store.close()
