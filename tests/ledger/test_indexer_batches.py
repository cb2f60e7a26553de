"""The indexer and Merkle-anchored batches: batched events become rows exactly like events written one by one, the
running hash is checked with the batch folded once, and reorganisations and rebuilds give the same rows, batches
included. A batch whose file is missing or cannot match its anchor is withheld (``test_indexer_quarantine.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger import receipts
from ledger.audit.batchfiles import DirectorySource, anchors_of, load
from ledger.audit.checks import run_check
from ledger.audit.context import AuditContext
from ledger.batches import BatchStore, build_batch
from ledger.chain.contract import Chain
from ledger.encoding import entry_hash
from ledger.metrics import MetricsFilter, compute_metrics
from ledger.records import RECEIPT_CASE_FLAG, CaseAction, Correction, EntryKind, Receipt, text_hash
from ledger.store.db import Store, open_store
from tests.support.agreement import assert_agree, audit_model, chain_log
from tests.support.batched import DAY, T0, anchor, index, life, plain_case_id, table
from tests.support.indexing import head, mine
from tests.support.world import World, build_world, case_id


@pytest.fixture
def world(node_chain: Chain) -> World:
    return build_world(node_chain)


# ------------------------------------------------------------------------------------------ like single entries


def test_batched_events_give_the_rows_single_events_give(
    node_chain: Chain, stores: Callable[..., Store], tmp_path: Path
) -> None:
    """The same case events written one by one on one ledger and anchored as a batch on another: the same entries
    (but for the proof columns and the entry hash's signer), case events and cases."""
    single, batched = build_world(node_chain), build_world(node_chain)
    events_single, events_batched = life(single, "c", 12), life(batched, "c", 12)
    assert events_single == events_batched
    single.ledger.write_batch(single.signer, events_single)
    batch, anchored = anchor(batched, events_batched, tmp_path)
    assert anchored.seq + len(events_batched) == batched.ledger.entry_count() == single.ledger.entry_count()
    stores_ = {"single": stores(), "batched": stores()}
    reports = {
        "single": index(single, stores_["single"], None).sync(),
        "batched": index(batched, stores_["batched"], tmp_path).sync(),
    }
    assert reports["single"].entries == reports["batched"].entries == single.ledger.entry_count()
    assert reports["batched"].batched_entries == len(events_batched)
    dumps = {name: store.dump() for name, store in stores_.items()}
    for name in ("cases", "case_events"):
        rows = {k: table(d, name, stores_[k]) for k, d in dumps.items()}
        for k in rows:
            for row in rows[k]:
                row.pop("block_time", None)
        assert rows["single"] == rows["batched"], name
    one = {r["seq"]: r for r in table(dumps["single"], "entries", stores_["single"])}
    other = {r["seq"]: r for r in table(dumps["batched"], "entries", stores_["batched"])}
    assert sorted(one) == sorted(other)
    signer = batched.signer.address
    state = batched.ledger
    for seq, row in other.items():
        if seq < anchored.seq:
            continue
        index_in_batch = seq - anchored.seq
        assert row["kind"] == EntryKind.CASE_EVENT == one[seq]["kind"]
        assert row["agency_id"] == one[seq]["agency_id"] and row["actor"] == signer
        assert bytes(row["record_hash"]) == bytes(one[seq]["record_hash"]) == batch.record_hashes[index_in_batch]
        assert bytes(row["entry_hash"]) == entry_hash(seq, EntryKind.CASE_EVENT, batched.agency_id, signer,
                                                       batch.record_hashes[index_in_batch])
        assert row["occurred_at"] == one[seq]["occurred_at"]
        assert (row["batch_seq"], row["batch_index"]) == (anchored.seq, index_in_batch)
        assert one[seq]["batch_seq"] is None and one[seq]["batch_index"] is None
        assert bytes(row["tx_hash"]) == anchored.tx_hash and row["block_number"] == anchored.block_number
        assert bytes(row["running_hash"]) == state.running_hash()  # the head after the batch
    (batch_row,) = table(dumps["batched"], "batches", stores_["batched"])
    anchor_entry = state.entries()[-1]
    assert batch_row == {
        "seq": anchored.seq, "agency_id": "SH-ROADS", "signer": signer, "root": batch.root,
        "count": batch.count, "file_hash": batch.file_hash, "entry_hash": anchor_entry.entry_hash,
        "block_number": anchored.block_number, "block_time": batch_row["block_time"], "tx_hash": anchored.tx_hash,
        "log_index": anchor_entry.log_index, "block_hash": other[anchored.seq]["block_hash"],
        "running_hash": state.running_hash(), "withheld": None, "withheld_reason": None,
    }
    state_row = table(dumps["batched"], "sync_state", stores_["batched"])[0]
    assert state_row["entry_count"] == state.entry_count()
    assert bytes(state_row["running_hash"]) == state.running_hash()
    assert dumps["single"]["batches"] == []
    # and the metrics count them alike (the recording latencies aside: the two ledgers' blocks have other times)
    flt = MetricsFilter(start=T0 - DAY, end=T0 + 30 * DAY, as_of=T0 + 3 * DAY)
    figures = {k: compute_metrics(store.engine, flt).to_dict() for k, store in stores_.items()}
    for values in figures.values():
        for name in [n for n in values if "latency" in n or "late_recordings" in n]:
            values.pop(name)
    assert figures["single"] == figures["batched"] and figures["single"]["cases_opened"] == 12


def test_batches_among_single_entries_and_a_correction_of_a_batched_event(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    store = stores()
    indexer = index(world, store, tmp_path)
    world.ledger.write(world.signer, world.opened("before"))
    _, first = anchor(world, life(world, "a", 5), tmp_path)
    # after the batch: a closed case
    world.ledger.write(world.signer, world.update("a0", CaseAction.WITHDRAWN, case_id=plain_case_id("a0")))
    _, second = anchor(world, life(world, "b", 3), tmp_path)
    indexer.sync()
    dump = store.dump()
    rows = table(dump, "entries", store)
    assert len(rows) == world.ledger.entry_count()
    assert [r["seq"] for r in table(dump, "batches", store)] == [first.seq, second.seq]
    cases = {bytes(r["case_id"]): r for r in table(dump, "cases", store)}
    assert cases[plain_case_id("a0")]["status"] == "fulfilled"
    assert cases[plain_case_id("a0")]["invalid_transitions"] == 1  # the withdrawal after the fulfilment
    assert cases[plain_case_id("a1")]["status"] == "open" and cases[plain_case_id("a1")]["hold_seconds"] == 7200
    # A correction voids a batched event like any other: the case is folded again without it.
    fulfilled = next(r["seq"] for r in rows if r["batch_seq"] == first.seq and r["batch_index"] == 6)
    assert fulfilled == first.seq + 6
    world.ledger.write(world.signer, Correction(target_seq=fulfilled, reason_hash=text_hash("x"), occurred_at=T0))
    indexer.sync()
    dump = store.dump()
    cases = {bytes(r["case_id"]): r for r in table(dump, "cases", store)}
    assert cases[plain_case_id("a0")]["status"] == "withdrawn"
    voided = {r["seq"]: r["voided_by"] for r in table(dump, "entries", store)}
    assert voided[fulfilled] == world.ledger.entry_count() - 1
    fresh = stores()
    index(world, fresh, tmp_path).sync()
    assert fresh.dump() == store.dump()


def test_ranges_are_sized_by_entries_not_logs(world: World, stores: Callable[..., Store], tmp_path: Path) -> None:
    for i in range(4):
        anchor(world, life(world, f"r{i}-", 30), tmp_path)  # 4 logs, 240 entries
    store = stores()
    report = index(world, store, tmp_path, target_logs=50).sync()
    assert report.entries == world.ledger.entry_count() and report.batched_entries == 4 * 76
    fresh = stores()
    index(world, fresh, tmp_path, max_block_range=1).sync()
    assert fresh.dump() == store.dump()


# ------------------------------------------------------------------------------------ reorgs and rebuilds


def test_a_reorg_rolls_back_batches_and_a_rebuild_gives_identical_rows(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    store = stores()
    indexer = index(world, store, tmp_path, confirmations=20)
    _, kept = anchor(world, life(world, "k", 3), tmp_path)
    mine(world, 20)
    indexer.sync()
    settled = store.dump()
    snapshot = world.chain.snapshot()
    first_orphan = head(world) + 1
    anchor(world, life(world, "o", 3), tmp_path)  # orphaned to be: a batch, and a correction of a batched event
    world.ledger.write(world.signer, Correction(target_seq=kept.seq + 3, reason_hash=text_hash("x"), occurred_at=T0))
    anchor(world, [world.update("k1", CaseAction.FULFILLED, occurred_at=T0 + 9999, case_id=plain_case_id("k1"))],
           tmp_path)
    indexer.sync()
    orphaned = store.dump()
    assert len(orphaned["batches"]) == 3 and orphaned != settled
    orphaned_head = head(world)
    world.chain.revert(snapshot)
    anchor(world, life(world, "winner", 2), tmp_path)
    world.ledger.write(world.signer, world.opened("single winner"))
    mine(world, 15)
    assert head(world) > orphaned_head
    report = indexer.sync()
    assert report.reorgs == 1 and report.rolled_back_blocks == orphaned_head - first_orphan + 1
    rebuilt = store.dump()
    assert len(rebuilt["batches"]) == 2
    assert rebuilt["corrections"] == settled["corrections"] == []
    fresh = stores()
    index(world, fresh, tmp_path, confirmations=20).sync(to_block=report.to_block)
    assert rebuilt == fresh.dump()


def test_drop_and_resync_gives_identical_rows_on_sqlite_and_postgresql(
    world: World, sqlite_url: Callable[[], str], pg_database: Callable[[], str], tmp_path: Path
) -> None:
    urls = {"sqlite": sqlite_url(), "postgresql": pg_database()}
    for step in range(3):
        world.ledger.write(world.signer, world.opened(f"single{step}"))
        anchor(world, life(world, f"s{step}-", 4), tmp_path)
        if step == 1:  # a batch withheld (its file published elsewhere), and one whose file cannot match its anchor
            anchor(world, life(world, "withheld", 2), tmp_path / "elsewhere")
            impossible = build_batch(life(world, "impossible", 2))
            BatchStore(tmp_path).put(impossible)
            world.ledger.anchor_batch(world.signer, b"\1" * 32, impossible.count, impossible.file_hash)
        for url in urls.values():
            with open_store(url) as store:
                index(world, store, tmp_path, max_block_range=2).sync()
    dumps = {}
    top = head(world)
    for name, url in urls.items():
        with open_store(url) as store:
            index(world, store, tmp_path).sync(to_block=top)
            first = store.dump()
            store.drop()
        with open_store(url) as store:
            index(world, store, tmp_path, max_block_range=2000).sync(to_block=top)
            again = store.dump()
        assert again == first, name
        assert len(first["batches"]) == 5
        withheld = {row[-2]: row[0] for row in first["batches"] if row[-2] is not None}
        assert sorted(withheld) == ["impossible", "missing"]
        assert len(first["entries"]) == world.ledger.entry_count() - 12  # two withheld batches of 6
        dumps[name] = again
    assert dumps["sqlite"] == dumps["postgresql"]


# ------------------------------------------------------------ a hostile agency against a case's opening (ffdaa88)


def test_attack_corrections_aimed_at_a_batched_opened_and_at_batch_anchors_void_no_opening(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    """A batch whose first event is an Opened: corrections aimed at its anchor's seq (that Opened) and at another
    batched Opened are refused. A second batch whose first event is a fulfilment: a correction aimed at its anchor's
    seq voids that one event, not the batch (its Opened stands). Index = fresh index = the auditor's rebuild, figures
    included."""
    def void(target: int) -> int:
        world.ledger.write(world.signer, Correction(target_seq=target, reason_hash=text_hash("v"), occurred_at=T0))
        return world.ledger.entry_count() - 1

    def event(name: str, action: CaseAction, at: int) -> Any:
        if action == CaseAction.OPENED:
            return world.opened(name, case_id=plain_case_id(name), occurred_at=at)
        return world.update(name, action, occurred_at=at, case_id=plain_case_id(name))

    store = stores()
    _, first = anchor(world, [event("b-late", CaseAction.OPENED, T0), event("b-other", CaseAction.OPENED, T0 + 1),
                              event("b-other", CaseAction.ACCEPTED, T0 + 2)], tmp_path)
    refused = [void(first.seq), void(first.seq + 1)]
    _, second = anchor(world, [event("b-other", CaseAction.FULFILLED, T0 + 3), event("b-third", CaseAction.OPENED,
                                                                                   T0 + 4)], tmp_path)
    applied = void(second.seq)
    void(second.seq + 1)  # the second batch's Opened: refused
    index(world, store, tmp_path, confirmations=0).sync()
    cases = {bytes(r["case_id"]): r for r in table(store.dump(), "cases", store)}
    assert set(cases) == {plain_case_id(n) for n in ("b-late", "b-other", "b-third")}
    late = cases[plain_case_id("b-late")]
    assert (late["opened_seq"], late["status"]) == (first.seq, "open")
    assert cases[plain_case_id("b-other")]["status"] == "open"  # its batched fulfilment voided
    corrections = {r["seq"]: bool(r["applied"]) for r in table(store.dump(), "corrections", store)}
    assert [corrections[s] for s in refused] == [False, False] and corrections[applied] is True
    voided = {r["seq"]: r["voided_by"] for r in table(store.dump(), "entries", store) if r["voided_by"] is not None}
    assert voided == {second.seq: applied}
    fresh = stores()
    index(world, fresh, tmp_path, confirmations=0).sync(to_block=head(world))
    assert fresh.dump() == store.dump()
    flt = MetricsFilter(agency_id="SH-ROADS", start=T0 - DAY, end=T0 + 10 * DAY)
    assert_agree(store, audit_model(world, tmp_path), flt)
    m = compute_metrics(store.engine, flt)
    assert (m.cases_opened, m.overdue_cases, m.deadline_cases) == (3, 3, 3)


def test_attack_a_receipt_case_opened_only_inside_a_batch_counts_nowhere_but_the_auditor_names_it(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    """The agency gives a citizen a receipt for a case whose only Opened it hides in a batch (a batched event of a
    receipt case is never applied): the case has no state and is in no figure, and a correction aimed at that Opened
    is refused all the same. Index and auditor agree, and the auditor's ``batches_complete`` names the hidden
    opening against the agency."""
    hidden = bytes([case_id("hidden")[0] | RECEIPT_CASE_FLAG]) + case_id("hidden")[1:]
    world.ledger.write(world.signer, Receipt(case_id=hidden, receipt=receipts.address(receipts.new_code()),
                                             occurred_at=world.now()))
    _, anchored = anchor(world, [world.opened("hidden", case_id=hidden, occurred_at=T0)], tmp_path)
    world.ledger.write(world.signer, Correction(target_seq=anchored.seq, reason_hash=text_hash("v"), occurred_at=T0))
    store = stores()
    index(world, store, tmp_path, confirmations=0).sync()
    assert [bytes(r["case_id"]) for r in table(store.dump(), "cases", store)] == []
    assert [bool(r["applied"]) for r in table(store.dump(), "corrections", store)] == [False]
    assert_agree(store, audit_model(world, tmp_path), MetricsFilter(agency_id="SH-ROADS", start=T0 - DAY,
                                                                    end=T0 + 10 * DAY))
    entries, contents = chain_log(world, tmp_path)
    ctx = AuditContext.for_entries(entries, batches=contents)
    ctx.batch_files, ctx.batch_source = load(anchors_of(entries), DirectorySource(tmp_path)), "test"
    (found,) = run_check("batches_complete", ctx).findings
    assert found.seq == anchored.seq and "receipt case event hidden in a batch: opened" in found.message


def test_attack_a_batched_opened_claiming_a_future_time_is_a_timeliness_finding(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    """The contract refuses a claimed time after the block's, but never sees inside a batch: a batched Opened may
    claim a time thirty days ahead, and its case's deadline runs from then (not overdue at ten days). Index and
    auditor agree, and the auditor's ``timeliness`` finds the claim against the anchor's block time."""
    now = world.now()
    _, anchored = anchor(world, [world.opened("ahead", case_id=plain_case_id("ahead"), occurred_at=now + 30 * DAY)],
                         tmp_path)
    store = stores()
    index(world, store, tmp_path, confirmations=0).sync()
    (row,) = table(store.dump(), "cases", store)
    assert row["opened_at"] == now + 30 * DAY
    flt = MetricsFilter(agency_id="SH-ROADS", start=now - DAY, end=now + 10 * DAY)
    assert compute_metrics(store.engine, flt).overdue_cases == 0
    assert_agree(store, audit_model(world, tmp_path), flt)
    entries, contents = chain_log(world, tmp_path)
    found = run_check("timeliness", AuditContext.for_entries(entries, batches=contents)).findings
    assert [(f.seq, f.field) for f in found] == [(anchored.seq, "occurred_at")]
