"""The writer on both chains (eth-tester and anvil): durable submission, batching in submission order, seqs from
receipts, idempotency, reverts decoded and isolated, the background thread."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from ledger.errors import ContractReverted, InvalidRecord, OutboxError
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    Correction,
    HolidayCalendar,
    Retirement,
    short_code,
    text_hash,
)
from ledger.writer.outbox import Outbox, OutboxState, TxState
from ledger.writer.planner import MAX_BATCH
from ledger.writer.sender import Writer
from tests.support.world import World


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_batch_calldata_matches_the_abi_encoder(world: World):
    events = [world.opened(f"c{i}", details_hash=text_hash(str(i))) for i in range(3)]
    events += [world.update("c0", CaseAction.FULFILLED), world.update("c1", CaseAction.WITHDRAWN)]
    expected = world.ledger.contract.encode_abi("recordCaseEvents", [[e.abi_values() for e in events]])
    assert world.ledger.encode_batch(events) == bytes.fromhex(expected[2:])
    empty = world.ledger.contract.encode_abi("recordCaseEvents", [[]])
    assert world.ledger.encode_batch([]) == bytes.fromhex(empty[2:])


def test_submit_is_on_disk_before_it_returns(world: World, writer: Writer, tmp_path: Path):
    before = world.ledger.entry_count()
    item = writer.submit(world.opened("durable"))
    with Outbox(tmp_path / "outbox.db") as other:  # another connection, as a restarted process would open
        seen = other.get(item.id)
        assert seen is not None and seen.state is OutboxState.PENDING and seen.record == world.opened("durable")
    assert world.ledger.entry_count() == before  # nothing sent yet


def test_every_kind_is_recorded_in_submission_order_with_its_seq(world: World, writer: Writer):
    before = world.ledger.entry_count()
    new_commitment = short_code("POTHOLE-72H")
    now = world.now()
    records = [
        world.commitment(new_commitment),
        world.opened("p1", commitment_id=new_commitment),  # depends on the commitment just before it
        world.opened("p2", commitment_id=new_commitment),
        world.update("p1", CaseAction.ACCEPTED),
        Correction(target_seq=before - 1, reason_hash=text_hash("wrong terms"), occurred_at=now),
        world.update("p2", CaseAction.ON_HOLD),
        HolidayCalendar.from_dates(2026, [date(2026, 10, 1)], [date(2026, 10, 10)], now),
        Retirement(commitment_id=new_commitment, reason_hash=text_hash("merged"), occurred_at=now),
    ]
    items = [writer.submit(record) for record in records]
    flushed = writer.flush()
    assert [i.id for i in flushed] == [i.id for i in items]
    assert all(i.state is OutboxState.RECORDED for i in flushed)
    assert [i.seq for i in flushed] == list(range(before, before + len(records)))
    logged = world.ledger.entries()[before:]
    assert [e.record.struct_hash() for e in logged] == [r.struct_hash() for r in records]
    assert [e.seq for e in logged] == [i.seq for i in flushed]
    assert {e.actor for e in logged} == {world.signer.address}
    # Consecutive case events share a transaction; everything else has one of its own.
    tx_sizes = [len(list(g)) for g in _runs(i.tx_hash for i in flushed)]
    assert tx_sizes == [1, 3, 1, 1, 1, 1]


def _runs(values):
    from itertools import groupby

    return [list(group) for _, group in groupby(values)]


def test_case_events_go_in_batches_of_batch_size(world: World, writer: Writer):
    items = writer.submit_many([world.opened(f"c{i}") for i in range(12)])
    flushed = writer.flush()
    assert sorted(Counter(i.tx_hash for i in flushed).values(), reverse=True) == [5, 5, 2]
    assert writer.stats.signed == 3 and writer.stats.recorded == 12
    assert {i.id for i in flushed} == {i.id for i in items}
    nonces = sorted({i.tx_nonce for i in flushed})
    assert nonces == list(range(nonces[0], nonces[0] + 3))


def test_an_entry_submitted_twice_is_recorded_once(world: World, writer: Writer, outbox: Outbox):
    before = world.ledger.entry_count()
    record = world.opened("twice")
    first = writer.submit(record)
    assert writer.submit(record).id == first.id
    writer.flush()
    again = writer.submit(record)
    assert again.id == first.id and again.state is OutboxState.RECORDED
    assert writer.flush() == []
    assert world.ledger.entry_count() == before + 1
    # And after a restart of the writer, with the same outbox.
    writer.close()
    with Writer(world.ledger, world.signer, outbox) as restarted:
        assert restarted.submit(record).state is OutboxState.RECORDED
        restarted.flush()
    assert world.ledger.entry_count() == before + 1


def test_a_bad_entry_fails_alone_with_the_decoded_custom_error(world: World, writer: Writer):
    before = world.ledger.entry_count()
    events = [world.opened(f"c{i}") for i in range(9)]
    events[3] = world.opened("unknown", commitment_id=short_code("NO-SUCH-PROMISE"))
    events[7] = world.update("c1", CaseAction.FULFILLED, occurred_at=world.now() + 86_400)  # tomorrow
    writer.submit_many(events)  # batch_size 5: the two bad ones sit in different batches
    flushed = writer.flush()
    states = [i.state for i in flushed]
    assert states.count(OutboxState.RECORDED) == 7
    bad = {i.id: i for i in flushed if i.state is OutboxState.FAILED}
    assert len(bad) == 2
    unknown, future = sorted(bad.values(), key=lambda i: i.id)
    assert "UnknownCommitment" in (unknown.error or "") and "InvalidOccurredAt" in (future.error or "")
    error = writer.failure(unknown)
    assert isinstance(error, ContractReverted) and error.error_name == "UnknownCommitment"
    assert error.error_args["commitmentId"] == short_code("NO-SUCH-PROMISE")
    assert world.ledger.entry_count() == before + 7
    recorded_ids = [e.record.case_id for e in world.ledger.entries()[before:]]
    assert recorded_ids == [e.case_id for n, e in enumerate(events) if n not in (3, 7)]


def test_write_raises_the_decoded_custom_error(world: World, writer: Writer):
    with pytest.raises(ContractReverted) as info:
        writer.write(world.opened("unknown", commitment_id=short_code("NOPE")))
    assert info.value.error_name == "UnknownCommitment"
    assert "UnknownCommitment(agencyId=0x" in str(info.value)
    fine = world.opened("fine")
    item = writer.write(fine)
    assert item.state is OutboxState.RECORDED
    assert world.ledger.entries()[item.seq].record == fine  # type: ignore[index]


def test_governance_records_are_not_written_by_an_agency_key(world: World, writer: Writer):
    registration = AgencyRegistration(
        agency_id=short_code("X"), jurisdiction=short_code("CN-SH"), name_zh="某", name_en="X"
    )
    with pytest.raises(InvalidRecord, match="governance writes it through Ledger"):
        writer.submit(registration)
    with pytest.raises(InvalidRecord):
        writer.submit("not a record")  # type: ignore[arg-type]


def test_one_writer_per_outbox(world: World, writer: Writer, outbox: Outbox):
    with pytest.raises(OutboxError, match="in use by another writer"):
        Writer(world.ledger, world.signer, outbox)
    writer.close()
    Writer(world.ledger, world.signer, outbox).close()


def test_bad_settings_are_refused(world: World, outbox: Outbox):
    for kwargs in ({"batch_size": 0}, {"batch_size": MAX_BATCH + 1}, {"max_in_flight": 0}, {"gas_margin": 0.5}):
        with pytest.raises(ValueError):
            Writer(world.ledger, world.signer, outbox, **kwargs)  # type: ignore[arg-type]


def test_the_background_thread_flushes_by_size_and_by_time(world: World, outbox: Outbox):
    with Writer(world.ledger, world.signer, outbox, batch_size=5, flush_interval=60) as writer:
        writer.start()
        by_size = writer.submit_many([world.opened(f"s{i}") for i in range(5)])
        wait_until(lambda: outbox_states(writer, *by_size) == [OutboxState.RECORDED] * 5)
        writer.stop(flush=False)

    with Writer(world.ledger, world.signer, outbox, batch_size=500, flush_interval=0.2) as writer:
        writer.start()
        started = time.monotonic()
        by_time = writer.submit(world.opened("t"))
        wait_until(lambda: outbox.get(by_time.id).state is OutboxState.RECORDED)  # type: ignore[union-attr]
        assert time.monotonic() - started >= 0.15  # it waited for the batch to fill, then flushed anyway
        last = writer.submit(world.opened("at stop"))
        writer.stop(flush=True)
        assert outbox.get(last.id).state is OutboxState.RECORDED  # type: ignore[union-attr]
        assert writer.last_error is None


def test_a_transaction_reverting_on_chain_is_planned_again_then_fails_with_the_decoded_error(
    world: World, writer: Writer, outbox: Outbox, monkeypatch
):
    """The key is revoked between the estimate and inclusion: the mined transaction reverts; its entries go back to
    pending (its nonce is spent, so a new transaction is safe), and the next estimate fails them with the reason."""
    estimate = writer._try_estimate
    revoked = []

    def estimate_then_revoke(records, calldata, to):
        result = estimate(records, calldata, to)
        if not revoked:
            world.ledger.revoke_signer(world.governance, world.signer.address)
            revoked.append(True)
        return result

    monkeypatch.setattr(writer, "_try_estimate", estimate_then_revoke)
    writer.submit_many([world.opened("r1"), world.opened("r2")])
    first = writer.flush()
    assert [i.state for i in first] == [OutboxState.PENDING] * 2
    assert all("reverted on chain" in (i.error or "") and "UnauthorizedSigner" in (i.error or "") for i in first)
    reverted = outbox.transactions(state=TxState.REVERTED)
    assert len(reverted) == 1 and reverted[0].entries == 2
    second = writer.flush()
    assert [i.state for i in second] == [OutboxState.FAILED] * 2
    assert all("UnauthorizedSigner" in (i.error or "") for i in second)
    assert writer.failure(second[0]).error_name == "UnauthorizedSigner"  # type: ignore[attr-defined]


def test_an_entry_stamped_after_the_latest_block_waits_for_a_newer_one(world: World, writer: Writer, monkeypatch):
    """The gas estimate runs on the latest block, which trails the clock; an entry stamped in between is early, not
    wrong. On a chain that makes blocks by itself it waits for the next block; one stamped far ahead fails."""
    monkeypatch.setattr(writer, "_automine", lambda: False)  # as on a chain with its own block rhythm
    latest = world.now()
    early = writer.submit(world.opened("early", occurred_at=latest + 1))
    after = writer.submit(world.opened("after it", occurred_at=latest))  # held too: submission order is kept
    settled = writer.flush()
    assert settled == [] and writer.stats.signed == 0
    assert outbox_states(writer, early, after) == [OutboxState.PENDING] * 2
    time.sleep(1.1)  # the chain's clock (not the wall clock: anvil's lags it after snapshot reverts) moves on
    world.chain.w3.provider.make_request("evm_mine", [])  # the chain's next block
    assert {i.id for i in writer.flush()} == {early.id, after.id}
    assert outbox_states(writer, early, after) == [OutboxState.RECORDED] * 2
    future = writer.submit(world.opened("future", occurred_at=int(time.time()) + 3600))
    (failed,) = writer.flush()
    assert failed.id == future.id and failed.state is OutboxState.FAILED and "InvalidOccurredAt" in (failed.error or "")


def test_on_a_dev_chain_that_mines_on_demand_an_early_entry_goes_out_at_once(world: World, writer: Writer):
    if world.chain.embedded:
        pytest.skip("eth-tester's block times do not follow a clock the test can wait for")
    latest = world.now()
    time.sleep(1.1)  # the chain's clock moves on; its latest block does not
    item = writer.write(world.opened("early", occurred_at=latest + 1))
    assert item.state is OutboxState.RECORDED


def outbox_states(writer: Writer, *items):
    return [writer.outbox.get(i.id).state for i in items]


def test_recover_on_a_clean_outbox_only_sets_the_nonce(world: World, writer: Writer):
    assert writer.recover() == []
    assert writer._nonce == world.chain.w3.eth.get_transaction_count(world.signer.address, "pending")
