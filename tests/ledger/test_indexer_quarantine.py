"""Withheld batches: a batch whose file is missing, mismatching or impossible never stops the indexing of anything
else. Its seqs are counted, its ``batches`` row says why it is withheld, one alert is raised; a file published later
slots its entries in at their seqs (corrections and case folds as if it had been there from the start); an impossible
batch stays withheld for ever. A batched event of a receipt case is an entry that is never applied to its case."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger import receipts
from ledger.audit.batchfiles import DirectorySource, anchors_of, load
from ledger.audit.checks import run_check
from ledger.audit.context import AuditContext
from ledger.batches import Batch, BatchStore, build_batch
from ledger.batches.read import WITHHELD_IMPOSSIBLE, WITHHELD_MISSING
from ledger.cases import BATCHED_RECEIPT_CASE_EVENT, batched_event_applies
from ledger.encoding import keccak
from ledger.metrics import MetricsFilter, compute_metrics
from ledger.records import CaseAction, Correction, Receipt, text_hash
from ledger.store.db import Store
from tests.support.agreement import assert_agree, audit_model, chain_log
from tests.support.batched import DAY, T0, anchor, index, life, plain_case_id, table
from tests.support.indexing import head, mine
from tests.support.world import World


@pytest.fixture
def world(two_agency_world: World) -> World:
    return two_agency_world


def other_agency_writes(world: World, name: str) -> None:
    """The other agency opens a case: what one agency's batch must never hold up."""
    world.ledger.write(world.other_signer, world.opened(name))


def batch_rows(store: Store) -> dict[int, dict[str, Any]]:
    return {row["seq"]: row for row in table(store.dump(), "batches", store)}


def entry_seqs(store: Store) -> set[int]:
    return {row[0] for row in store.dump()["entries"]}


def figures(store: Store) -> dict[str, Any]:
    return compute_metrics(store.engine, MetricsFilter(start=T0 - DAY, end=T0 + 30 * DAY, as_of=T0 + 3 * DAY)).to_dict()


def receipt_case(name: str) -> bytes:
    """A case id with RECEIPT_CASE_FLAG: a case that can have a receipt."""
    raw = bytearray(keccak(b"quarantine-receipt:" + name.encode()))
    raw[0] |= 0x80
    return bytes(raw)


# ------------------------------------------------------------------------------------------------ missing files


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_an_agency_withholding_its_batch_file_does_not_stop_other_agencies(
    world: World, stores: Callable[..., Store], sqlite_url: Callable[[], str], pg_database: Callable[[], str],
    tmp_path: Path, db: str,
) -> None:
    published, private = tmp_path / "published", tmp_path / "private"
    url = sqlite_url if db == "sqlite" else pg_database
    alerts: list[str] = []
    store = stores(url())
    indexer = index(world, store, published, alert=alerts.append)
    world.ledger.write(world.signer, world.opened("first"))
    batch, anchored = anchor(world, life(world, "m", 4), private)  # never published where the indexer looks
    other_agency_writes(world, "water-1")
    world.ledger.write(world.signer, world.opened("after"))
    report = indexer.sync()
    # everything after the batch is indexed; the batch's seqs are counted, none of them is an entry
    assert report.entry_count == world.ledger.entry_count() and indexer.last_block() == head(world)
    assert report.withheld_batches == 1 and report.withheld_entries == batch.count and report.batched_entries == 0
    assert report.entries == world.ledger.entry_count() - batch.count
    seqs = entry_seqs(store)
    assert not seqs & set(range(anchored.seq, anchored.seq + batch.count))
    assert max(seqs) == world.ledger.entry_count() - 1
    cases = {(r["agency_id"], bytes(r["case_id"])) for r in table(store.dump(), "cases", store)}
    assert ("SH-WATER", world.opened("water-1").case_id) in cases
    row = batch_rows(store)[anchored.seq]
    assert row["withheld"] == WITHHELD_MISSING and row["agency_id"] == "SH-ROADS"
    reason = row["withheld_reason"]
    assert f"batch seq {anchored.seq}" in reason and "file missing" in reason
    assert f"0x{anchored.tx_hash.hex()}" in reason and batch.file_hash.hex() in reason
    assert str(tmp_path) not in reason  # public: the file's name, not where the server keeps it
    assert alerts == [reason] and indexer.halted_reason() is None
    # later syncs and blocks: indexing goes on, no second alert
    other_agency_writes(world, "water-2")
    mine(world, 2)
    indexer.sync()
    indexer.sync()
    assert len(alerts) == 1 and indexer.last_block() == head(world)
    withheld_figures = figures(store)

    # the file is published: its entries slot in at their seqs, and the store is what it would have been
    BatchStore(published).put(batch)
    report = indexer.sync()
    assert report.released_batches == 1 and len(alerts) == 1
    assert batch_rows(store)[anchored.seq]["withheld"] is None
    assert set(range(anchored.seq, anchored.seq + batch.count)) <= entry_seqs(store)
    fresh = stores(url())
    index(world, fresh, published).sync(to_block=indexer.last_block())
    assert fresh.dump() == store.dump()
    assert figures(store) == figures(fresh) != withheld_figures
    assert figures(store)["cases_opened"] - withheld_figures["cases_opened"] == 4


def test_corrections_and_later_events_of_a_withheld_batch_apply_once_it_is_published(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    """Events after the batch, of its cases, arrive before the batch's own; a correction of a batched event was
    refused while the event was not there: once the file is published, both count as if it had always been."""
    published = tmp_path / "published"
    store = stores()
    indexer = index(world, store, published)
    batch, anchored = anchor(world, life(world, "c", 4), tmp_path / "private")
    fulfilled = anchored.seq + 5  # c0's fulfilment (see life)
    world.ledger.write(world.signer, Correction(target_seq=fulfilled, reason_hash=text_hash("x"), occurred_at=T0))
    world.ledger.write(world.signer, world.update("c1", CaseAction.FULFILLED, occurred_at=T0 + 9000,
                                                  case_id=plain_case_id("c1")))
    world.ledger.write(world.signer, world.update("c2", CaseAction.REOPENED, occurred_at=T0 + 9000,
                                                  case_id=plain_case_id("c2")))
    indexer.sync()
    dump = store.dump()
    assert [r["applied"] for r in table(dump, "corrections", store)] == [False]  # its target is not indexed
    assert table(dump, "cases", store) == []  # no Opened indexed: no case has a state
    BatchStore(published).put(batch)
    assert indexer.sync().released_batches == 1
    dump = store.dump()
    assert [r["applied"] for r in table(dump, "corrections", store)] == [True]
    voided = {r["seq"]: r["voided_by"] for r in table(dump, "entries", store)}
    assert voided[fulfilled] == anchored.seq + batch.count
    cases = {bytes(r["case_id"]): r for r in table(dump, "cases", store)}
    assert cases[plain_case_id("c0")]["status"] == "open"  # its fulfilment voided
    assert cases[plain_case_id("c1")]["status"] == "fulfilled"  # on hold, resumed, then fulfilled after the batch
    assert cases[plain_case_id("c2")]["status"] == "open" and cases[plain_case_id("c2")]["reopened"] == 1
    fresh = stores()
    index(world, fresh, published).sync(to_block=indexer.last_block())
    assert fresh.dump() == dump


def test_a_file_replaced_under_its_name_is_withheld_until_the_right_one_is_published(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    batch, anchored = anchor(world, life(world, "h", 2), tmp_path)
    path = BatchStore(tmp_path).path(batch.file_hash)
    path.write_bytes(batch.content.replace(b",6,", b",7,", 1))  # not the anchored file: its hash differs
    alerts: list[str] = []
    store = stores()
    indexer = index(world, store, tmp_path, alert=alerts.append)
    indexer.sync()
    row = batch_rows(store)[anchored.seq]
    assert row["withheld"] == WITHHELD_MISSING and "file hash differs" in row["withheld_reason"]
    indexer.sync()
    assert alerts == [row["withheld_reason"]]
    path.write_bytes(batch.content)
    assert indexer.sync().released_batches == 1 and batch_rows(store)[anchored.seq]["withheld"] is None


def test_without_a_batch_directory_a_batch_is_withheld_and_indexing_goes_on(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    batch, anchored = anchor(world, life(world, "n", 2), tmp_path)
    other_agency_writes(world, "water")
    store = stores()
    report = index(world, store, None).sync()
    assert report.entry_count == world.ledger.entry_count() and report.withheld_entries == batch.count
    row = batch_rows(store)[anchored.seq]
    assert row["withheld"] == WITHHELD_MISSING and "no batch directory is configured" in row["withheld_reason"]


def test_run_indexes_past_a_missing_batch_and_slots_it_in_when_published(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    published = tmp_path / "published"
    batch, anchored = anchor(world, life(world, "w", 3), tmp_path / "private")
    other_agency_writes(world, "later")
    store = stores()
    indexed = threading.Event()
    released = threading.Event()

    def alert(reason: str) -> None:
        indexed.set()  # the batch's range is written: the batch is withheld

    indexer = index(world, store, published, confirmations=0, alert=alert)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if indexed.is_set() and batch_rows(store)[anchored.seq]["withheld"] is None:
                released.set()
                return
            stop.wait(0.05)

    thread = threading.Thread(target=indexer.run, kwargs={"poll_interval": 0.05, "stop_event": stop})
    watcher = threading.Thread(target=watch)
    thread.start()
    watcher.start()
    try:
        assert indexed.wait(20)
        assert indexer.last_block() >= anchored.block_number and indexer.halted_reason() is None
        BatchStore(published).put(batch)
        assert released.wait(20)
    finally:
        stop.set()
        thread.join(10)
        watcher.join(10)
    with store.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM entries").scalar()
    assert count == world.ledger.entry_count()


# --------------------------------------------------------------------------------------------- impossible files


def _impossible(world: World, fault: str, directory: Path) -> tuple[int, Batch, str]:
    """Anchor a batch no file can ever match (the file with the anchored hash is published); (seq, batch, words)."""
    good = build_batch(life(world, "f", 4))  # 10 events
    directory.mkdir(parents=True, exist_ok=True)
    if fault == "a random root":
        content, root, count = good.content, b"\x42" * 32, good.count
        words = "root differs"
    elif fault == "a file of other events":
        other = build_batch(life(world, "g", 4))
        content, root, count = other.content, good.root, good.count
        words = "root differs"
    elif fault == "a file lacking an entry":
        content, root, count = build_batch(list(good.events[:-1])).content, good.root, good.count
        words = "count differs"
    else:  # a malformed line
        content, root, count = good.content.replace(b"\n3,", b"\n03,", 1), good.root, good.count
        words = "malformed file"
    (directory / f"{keccak(content).hex()}.csv").write_bytes(content)
    seq = world.ledger.entry_count()
    world.ledger.anchor_batch(world.signer, root, count, keccak(content))
    return seq, good, words


@pytest.mark.parametrize("fault", ["a random root", "a file of other events", "a file lacking an entry",
                                   "a malformed line"])
def test_an_agency_anchoring_a_batch_no_file_can_match_is_withheld_for_ever(
    world: World, stores: Callable[..., Store], tmp_path: Path, fault: str
) -> None:
    seq, good, words = _impossible(world, fault, tmp_path)
    other_agency_writes(world, "water")
    alerts: list[str] = []
    store = stores()
    indexer = index(world, store, tmp_path, alert=alerts.append)
    report = indexer.sync()
    assert report.entry_count == world.ledger.entry_count() and report.withheld_batches == 1
    row = batch_rows(store)[seq]
    assert row["withheld"] == WITHHELD_IMPOSSIBLE and words in row["withheld_reason"]
    assert "withheld for ever" in row["withheld_reason"] and alerts == [row["withheld_reason"]]
    # the right events published under their own hash change nothing: the anchor names another file
    BatchStore(tmp_path).put(good)
    mine(world, 2)
    indexer.sync()
    restarted = index(world, store, tmp_path, alert=alerts.append)  # a restart: a new indexer on the same store
    restarted.sync()
    assert batch_rows(store)[seq]["withheld"] == WITHHELD_IMPOSSIBLE and len(alerts) == 1
    assert not entry_seqs(store) & set(range(seq, seq + 10))
    assert restarted.last_block() == head(world)


# ----------------------------------------------------------------------------------------------- receipt cases


def test_a_batched_fulfilment_of_a_receipt_case_is_on_the_ledger_but_not_applied(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    receipted = receipt_case("r")
    assert not batched_event_applies(receipted) and BATCHED_RECEIPT_CASE_EVENT
    world.ledger.write(world.signer, world.opened("r", case_id=receipted))
    accepted = world.ledger.entry_count()
    world.ledger.write(world.signer, world.update("r", CaseAction.ACCEPTED, case_id=receipted))
    world.ledger.write(world.signer, Receipt(case_id=receipted, receipt=receipts.address(receipts.new_code()),
                                             occurred_at=world.now()))
    plain = plain_case_id("p")
    events = [world.opened("p", case_id=plain),
              world.update("r", CaseAction.FULFILLED, case_id=receipted),
              world.update("p", CaseAction.FULFILLED, case_id=plain)]
    batch, anchored = anchor(world, events, tmp_path)
    store = stores()
    index(world, store, tmp_path).sync()
    dump = store.dump()
    entries = {r["seq"]: r for r in table(dump, "entries", store)}
    events_rows = {r["seq"]: r for r in table(dump, "case_events", store)}
    assert anchored.seq + 1 in entries and anchored.seq + 1 in events_rows  # on the ledger, shown with its case
    cases = {bytes(r["case_id"]): r for r in table(dump, "cases", store)}
    assert cases[receipted]["status"] == "open" and cases[receipted]["receipt"] is not None
    assert cases[receipted]["last_seq"] < anchored.seq  # the batched event is not among its events
    assert cases[plain]["status"] == "fulfilled"
    # re-folded (a correction voids its single Accepted), the receipt case still leaves its batched event out
    world.ledger.write(world.signer, Correction(target_seq=accepted, reason_hash=text_hash("x"), occurred_at=T0))
    index(world, store, tmp_path).sync()
    cases = {bytes(r["case_id"]): r for r in table(store.dump(), "cases", store)}
    assert cases[receipted]["status"] == "open" and cases[receipted]["last_seq"] == accepted - 1  # its Opened


# ------------------------------------------------------------------------------------------------------ reorgs


def test_a_reorg_rolls_back_withheld_batches_and_keeps_the_head_after_one(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    published = tmp_path / "published"
    store = stores()
    indexer = index(world, store, published, confirmations=20)
    world.ledger.write(world.signer, world.opened("kept"))
    anchor(world, life(world, "k", 2), tmp_path / "private")  # withheld, and the last entries kept
    mine(world, 20)
    indexer.sync()
    snapshot = world.chain.snapshot()
    orphaned_batch, _ = anchor(world, life(world, "o", 2), tmp_path / "private")  # withheld, then orphaned
    other_agency_writes(world, "orphaned")
    indexer.sync()
    assert sum(1 for r in batch_rows(store).values() if r["withheld"]) == 2
    orphaned_head = head(world)
    world.chain.revert(snapshot)
    other_agency_writes(world, "winner")
    mine(world, 15)
    assert head(world) > orphaned_head
    report = indexer.sync()
    assert report.reorgs == 1
    assert sum(1 for r in batch_rows(store).values() if r["withheld"]) == 1
    fresh = stores()
    index(world, fresh, published, confirmations=20).sync(to_block=report.to_block)
    assert fresh.dump() == store.dump()
    BatchStore(published).put(orphaned_batch)  # the orphaned batch's file changes nothing
    assert indexer.sync().released_batches == 0


# --------------------------------------------------------------------------------------------------- migration


def test_the_migration_keeps_indexed_batches_and_lifts_an_old_batch_halt(store_url: str) -> None:
    """Revision 0005 on a store indexed by the old code: the batch rows take their block hash and running hash from
    their entries, and a halt the old indexer left while it waited at a batch is lifted (it no longer waits)."""
    from sqlalchemy import text

    from ledger.store.db import open_store, upgrade

    store = open_store(store_url, migrate=False)
    try:
        upgrade(store, "0004")
        with store.begin() as conn:
            conn.execute(text(
                "INSERT INTO sync_state VALUES ('0x' || :a, 31337, 0, 9, 3, :head, 'waiting for batch seq 1 (…)', 5)"
            ), {"a": "ab" * 20, "head": b"\2" * 24})
            for seq in (0, 1, 2):
                conn.execute(text(
                    "INSERT INTO entries (seq, kind, agency_id, actor, record_hash, entry_hash, running_hash, "
                    "block_number, block_hash, block_time, tx_hash, log_index, batch_seq, batch_index) VALUES "
                    "(:seq, 5, 'A', '0x0', :h, :h, :head, 7, :block, 1, :h, 0, :batch, :index)"
                ), {"seq": seq, "h": b"\1" * 32, "head": bytes([seq]) * 24, "block": b"\7" * 32,
                    "batch": None if seq == 0 else 1, "index": None if seq == 0 else seq - 1})
            conn.execute(text(
                "INSERT INTO batches VALUES (1, 'A', '0x0', :h, 2, :h, :h, 7, 1, :h, 0)"
            ), {"h": b"\1" * 32})
        upgrade(store)
        (row,) = store.dump()["batches"]
        assert row[-4:] == (b"\7" * 32, b"\1" * 24, None, None)
        assert store.dump()["sync_state"][0][6] is None
    finally:
        store.close()


# ------------------------------------------------------------ a hostile agency against a case's opening (ffdaa88)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_attack_a_withheld_opened_voided_before_its_release_and_opened_again_meanwhile(
    world: World, stores: Callable[..., Store], sqlite_url: Callable[[], str], pg_database: Callable[[], str],
    tmp_path: Path, db: str,
) -> None:
    """The agency anchors a batch holding the Openeds of two cases and keeps its file back. Meanwhile it aims
    corrections at both Openeds (refused: not on the index), opens the first case again on its own (a fresh
    deadline), aims a correction at the second batched Opened's refused correction, and publishes the file. While it
    is withheld, index and auditor agree (the case counts from its later Opened; the withheld batch is a finding
    against the agency). Once released, the corrections stay refused, the batched Openeds stand (the later Opened an
    invalid transition): incremental index = fresh index = the auditor's rebuild, figures included."""
    def void(target: int) -> int:
        world.ledger.write(world.signer, Correction(target_seq=target, reason_hash=text_hash("v"), occurred_at=T0))
        return world.ledger.entry_count() - 1

    published, private = tmp_path / "published", tmp_path / "private"
    published.mkdir()
    url = sqlite_url if db == "sqlite" else pg_database
    store = stores(url())
    indexer = index(world, store, published, confirmations=0)
    batch, anchored = anchor(world, [world.opened(n, case_id=plain_case_id(n), occurred_at=T0)
                                     for n in ("w-late", "w-other")], private)
    opened_late, opened_other = anchored.seq, anchored.seq + 1
    refused = [void(opened_late), void(opened_other)]
    world.ledger.write(world.signer, world.opened("w-late", case_id=plain_case_id("w-late")))
    again = world.ledger.entry_count() - 1
    of_correction = void(refused[1])
    indexer.sync()
    flt = MetricsFilter(agency_id="SH-ROADS", start=T0 - DAY, end=T0 + 10 * DAY)
    withheld_model = audit_model(world, published)
    assert_agree(store, withheld_model, flt)
    late = {bytes(r["case_id"]): r for r in table(store.dump(), "cases", store)}[plain_case_id("w-late")]
    assert late["opened_seq"] == again  # while withheld: the later Opened is the opening, and…
    entries, contents = chain_log(world, published)
    ctx = AuditContext.for_entries(entries, batches=contents)
    ctx.batch_files, ctx.batch_source = load(anchors_of(entries), DirectorySource(published)), "test"
    found = run_check("batches_complete", ctx).findings
    assert [f.seq for f in found] == [anchored.seq]  # …the batch kept back is a finding against the agency
    BatchStore(published).put(batch)
    assert indexer.sync().released_batches == 1
    cases = {bytes(r["case_id"]): r for r in table(store.dump(), "cases", store)}
    late, other = cases[plain_case_id("w-late")], cases[plain_case_id("w-other")]
    assert (late["opened_seq"], late["opened_at"], late["invalid_transitions"]) == (opened_late, T0, 1)
    assert (other["opened_seq"], other["opened_at"]) == (opened_other, T0)
    applied = {r["seq"]: bool(r["applied"]) for r in table(store.dump(), "corrections", store)}
    assert applied == {refused[0]: False, refused[1]: False, of_correction: True}
    fresh = stores(url())
    index(world, fresh, published, confirmations=0).sync(to_block=indexer.last_block())
    assert fresh.dump() == store.dump()
    assert_agree(store, audit_model(world, published), flt)
    m = compute_metrics(store.engine, flt)
    assert (m.cases_opened, m.overdue_cases, m.deadline_cases) == (2, 2, 2)
