"""The writer and receipts: a receipt goes out right after its case's Opened event (batched with issueReceipts), never
after a later event of its case, never for a case whose Opened event the ledger refused, and exactly once."""

from __future__ import annotations

from ledger import receipts
from ledger.importer import with_receipt_flag
from ledger.records import CaseAction, Receipt, ReceiptCaseStatus, short_code
from ledger.writer.outbox import OutboxState
from ledger.writer.planner import encode_receipts
from ledger.writer.sender import Writer
from tests.support.world import World, case_id


def flagged(name: str) -> bytes:
    return with_receipt_flag(case_id(name))


def receipt_for(world: World, name: str, code: str | None = None) -> Receipt:
    return Receipt(case_id=flagged(name), receipt=receipts.address(code or receipts.new_code()),
                   occurred_at=world.now())


def test_receipts_calldata_matches_the_abi_encoder(world: World):
    batch = [receipt_for(world, f"r{i}") for i in range(3)]
    expected = world.ledger.contract.encode_abi("issueReceipts", [[r.abi_values() for r in batch]])
    assert encode_receipts(batch) == bytes.fromhex(expected[2:])


def test_receipts_follow_their_openings_and_precede_their_later_events(world: World, writer: Writer):
    before = world.ledger.entry_count()
    records = [
        world.opened("a", case_id=flagged("a")), receipt_for(world, "a"),
        world.opened("b", case_id=flagged("b")), receipt_for(world, "b"),
        world.update("a", CaseAction.FULFILLED, case_id=flagged("a")),  # must not overtake a's receipt
        world.opened("plain"),
    ]
    items = writer.submit_many(records)
    writer.flush()
    done = [writer.outbox.get(i.id) for i in items]
    assert all(d is not None and d.state is OutboxState.RECORDED for d in done), [d.error for d in done if d]
    seqs = {records[n].__class__.__name__ + str(n): d.seq for n, d in enumerate(done) if d is not None}
    assert seqs["CaseEvent0"] < seqs["Receipt1"] and seqs["CaseEvent2"] < seqs["Receipt3"] < seqs["CaseEvent4"]
    # the openings went in one batch, the receipts in one issueReceipts, the rest in a third transaction
    assert len({d.tx_hash for d in done if d is not None}) == 3
    assert world.ledger.entry_count() == before + len(records)
    state = world.ledger.receipt_case(world.agency_id, flagged("a"))
    assert state.status is ReceiptCaseStatus.FULFILLED and state.closures == 1
    assert world.ledger.receipt_case(world.agency_id, flagged("b")).status is ReceiptCaseStatus.OPEN


def test_many_receipts_are_batched_by_batch_size(world: World, writer: Writer):
    records = []
    for i in range(7):
        records += [world.opened(f"m{i}", case_id=flagged(f"m{i}")), receipt_for(world, f"m{i}")]
    items = writer.submit_many(records)
    writer.flush()
    done = writer.outbox.items(ids=[i.id for i in items])
    assert {d.state for d in done} == {OutboxState.RECORDED}
    receipt_txs = [d.tx_hash for d in done if d.record_type == "Receipt"]
    assert len(set(receipt_txs)) == 2  # 7 receipts, batches of 5
    for i in range(7):
        assert world.ledger.receipt_case(world.agency_id, flagged(f"m{i}")).status is ReceiptCaseStatus.OPEN


def test_a_receipt_whose_opening_was_refused_is_not_issued(world: World, writer: Writer):
    records = [
        world.opened("good", case_id=flagged("good")), receipt_for(world, "good"),
        world.opened("bad", case_id=flagged("bad"), commitment_id=short_code("NO-SUCH")), receipt_for(world, "bad"),
    ]
    items = writer.submit_many(records)
    writer.flush()
    done = [writer.outbox.get(i.id) for i in items]
    assert [d.state for d in done if d] == [OutboxState.RECORDED, OutboxState.RECORDED, OutboxState.FAILED,
                                            OutboxState.FAILED]
    assert done[2] is not None and "UnknownCommitment" in (done[2].error or "")
    assert done[3] is not None and "Opened event of its case" in (done[3].error or "")
    assert world.ledger.receipt_case(world.agency_id, flagged("bad")).status is ReceiptCaseStatus.NONE
    local = writer.outbox.receipt_case(flagged("bad"))
    assert local is not None and not local.opened and not local.has_receipt
    assert not writer.outbox.opened_with_receipt(flagged("bad"))
    assert writer.outbox.opened_with_receipt(flagged("good"))


def test_a_receipt_waits_for_its_opening_sent_in_an_earlier_flush(world: World, writer: Writer):
    opened = writer.write(world.opened("w", case_id=flagged("w")))
    item = writer.write(receipt_for(world, "w"))
    assert item.seq == opened.seq + 1
    local = writer.outbox.receipt_case(flagged("w"))
    assert local is not None and local.opened_id == opened.id and local.receipt_id == item.id and local.has_receipt


def test_a_receipt_for_a_case_opened_elsewhere_goes_out(world: World, writer: Writer):
    world.ledger.write(world.signer, world.opened("elsewhere", case_id=flagged("elsewhere")))
    item = writer.write(receipt_for(world, "elsewhere"))
    assert item.state is OutboxState.RECORDED


def test_the_same_receipt_is_recorded_once_and_a_second_one_is_refused(world: World, writer: Writer):
    code = receipts.new_code()
    writer.write(world.opened("once", case_id=flagged("once")))
    first = writer.write(receipt_for(world, "once", code))
    again = writer.submit(Receipt(case_id=flagged("once"), receipt=receipts.address(code),
                                  occurred_at=first.record.occurred_at))  # type: ignore[attr-defined]
    assert again.id == first.id and again.state is OutboxState.RECORDED
    second = writer.submit(receipt_for(world, "once"))
    writer.flush()
    refused = writer.outbox.get(second.id)
    assert refused is not None and refused.state is OutboxState.FAILED
    assert "CaseAlreadyHasReceipt" in (refused.error or "")
    local = writer.outbox.receipt_case(flagged("once"))
    assert local is not None and local.receipt_id == first.id  # the live receipt stays linked


def test_receipt_records_hold_no_code(world: World, writer: Writer):
    code = receipts.new_code()
    item = writer.submit(receipt_for(world, "secret", code))
    stored = writer.outbox.get(item.id)
    assert stored is not None
    for form in (code, receipts.normalize(code), receipts.private_key(code).hex()):
        assert form not in stored.record_json
    assert writer.outbox.path.read_bytes().find(receipts.normalize(code).encode()) == -1
