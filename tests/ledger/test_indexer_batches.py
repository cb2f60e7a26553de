"""The indexer and Merkle-anchored batches: batched events become rows exactly like events written one by one, the
running hash is checked with the batch folded once, a missing or mismatching batch file halts indexing at that batch
(with an alert naming it and what is wrong) until the right file appears, and reorganisations and rebuilds give the
same rows, batches included."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import batches
from ledger.batches import BatchStore, build_batch
from ledger.chain import Chain
from ledger.indexer import BATCH_HALT_PREFIX, BatchUnavailable, Indexer
from ledger.metrics import MetricsFilter, compute_metrics
from ledger.node import AnvilNode
from ledger.records import CaseAction, CaseEvent, Correction, EntryKind, entry_hash, keccak, text_hash
from ledger.store.db import Store, open_store
from tests.conftest import World, build_world, case_id

DAY = 86_400
T0 = 1_790_000_000  # claimed times: fixed, so that two ledgers given the same events fold the same cases


@pytest.fixture(scope="module")
def node_chain(own_anvil: AnvilNode) -> Chain:
    return Chain.connect(own_anvil.url)


@pytest.fixture
def world(node_chain: Chain) -> World:
    return build_world(node_chain)


@pytest.fixture
def stores(sqlite_url: Callable[[], str]) -> Iterator[Callable[..., Store]]:
    opened: list[Store] = []

    def make(url: str | None = None) -> Store:
        store = open_store(url or sqlite_url())
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def index(world: World, store: Store, batch_dir: Path | None, **kwargs: Any) -> Indexer:
    kwargs.setdefault("confirmations", 3)
    return Indexer(world.chain, world.ledger.address, store, batch_dir=batch_dir, **kwargs)


def head(world: World) -> int:
    return int(world.chain.w3.eth.block_number)


def mine(world: World, blocks: int) -> None:
    world.chain.w3.provider.make_request("anvil_mine", [hex(blocks)])


def life(world: World, tag: str, n: int) -> list[CaseEvent]:
    """n cases: opened; then accepted, put on hold and resumed, or fulfilled, rejected... (every path once)."""
    out: list[CaseEvent] = []
    for i in range(n):
        name = f"{tag}{i}"
        out.append(world.opened(name, occurred_at=T0 + i, channel=1 + i % 6))
    for i in range(n):
        name, at = f"{tag}{i}", T0 + 3600 + i
        step = i % 4
        if step == 0:
            out.append(world.update(name, CaseAction.ACCEPTED, occurred_at=at))
            out.append(world.update(name, CaseAction.FULFILLED, occurred_at=at + 60, details_hash=text_hash(name)))
        elif step == 1:
            out.append(world.update(name, CaseAction.ON_HOLD, occurred_at=at))
            out.append(world.update(name, CaseAction.RESUMED, occurred_at=at + 7200))
        elif step == 2:
            out.append(world.update(name, CaseAction.REJECTED, occurred_at=at))
        else:
            out.append(world.update(name, CaseAction.ESCALATED, occurred_at=at))
    return out


def anchor(world: World, events: list[CaseEvent], directory: Path) -> tuple[batches.Batch, batches.Anchored]:
    batch = build_batch(events)
    return batch, batches.anchor(world.ledger, world.signer, batch, BatchStore(directory))


def table(dump: dict[str, list[tuple[Any, ...]]], name: str, store: Store) -> list[dict[str, Any]]:
    from ledger.store.schema import metadata

    columns = metadata.tables[name].columns.keys()
    return [dict(zip(columns, row, strict=True)) for row in dump[name]]


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
        "log_index": anchor_entry.log_index,
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
    world.ledger.write(world.signer, world.update("a0", CaseAction.WITHDRAWN))  # after the batch: a closed case
    _, second = anchor(world, life(world, "b", 3), tmp_path)
    indexer.sync()
    dump = store.dump()
    rows = table(dump, "entries", store)
    assert len(rows) == world.ledger.entry_count()
    assert [r["seq"] for r in table(dump, "batches", store)] == [first.seq, second.seq]
    cases = {bytes(r["case_id"]): r for r in table(dump, "cases", store)}
    assert cases[case_id("a0")]["status"] == "fulfilled"
    assert cases[case_id("a0")]["invalid_transitions"] == 1  # the withdrawal after the fulfilment
    assert cases[case_id("a1")]["status"] == "open" and cases[case_id("a1")]["hold_seconds"] == 7200
    # A correction voids a batched event like any other: the case is folded again without it.
    fulfilled = next(r["seq"] for r in rows if r["batch_seq"] == first.seq and r["batch_index"] == 6)
    assert fulfilled == first.seq + 6
    world.ledger.write(world.signer, Correction(target_seq=fulfilled, reason_hash=text_hash("x"), occurred_at=T0))
    indexer.sync()
    dump = store.dump()
    cases = {bytes(r["case_id"]): r for r in table(dump, "cases", store)}
    assert cases[case_id("a0")]["status"] == "withdrawn"
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


# -------------------------------------------------------------------------------- missing or mismatching files


def test_a_missing_file_halts_at_its_batch_with_an_alert_and_indexing_resumes_when_it_appears(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    published, elsewhere = tmp_path / "published", tmp_path / "elsewhere"
    alerts: list[str] = []
    store = stores()
    indexer = index(world, store, published, alert=alerts.append)
    world.ledger.write(world.signer, world.opened("first"))
    batch, anchored = anchor(world, life(world, "m", 4), elsewhere)  # published where the indexer does not look
    world.ledger.write(world.signer, world.opened("after"))
    with pytest.raises(BatchUnavailable) as info:
        indexer.sync()
    assert info.value.seq == anchored.seq and info.value.kind == "missing"
    message = str(info.value)
    assert f"batch seq {anchored.seq}" in message and "file missing" in message
    assert f"0x{anchored.tx_hash.hex()}" in message and batch.file_hash.hex() in message
    assert alerts == [message]
    # everything before the batch's block is indexed; nothing of the batch or after it
    assert indexer.last_block() == anchored.block_number - 1
    dump = store.dump()
    assert max(r[0] for r in dump["entries"]) == anchored.seq - 1 and dump["batches"] == []
    assert indexer.halted_reason() == message and message.startswith(BATCH_HALT_PREFIX)
    # tried again: the same halt, no second alert
    with pytest.raises(BatchUnavailable):
        indexer.sync()
    assert len(alerts) == 1
    # the file appears: indexing goes on, the halt lifts
    BatchStore(published).put(batch)
    report = indexer.sync()
    assert report.batched_entries == batch.count
    assert indexer.halted_reason() is None
    assert report.entry_count == world.ledger.entry_count()
    fresh = stores()
    index(world, fresh, published).sync(to_block=indexer.last_block())
    assert fresh.dump() == store.dump()


def test_without_a_batch_directory_a_batch_halts_indexing(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    _, anchored = anchor(world, life(world, "n", 2), tmp_path)
    indexer = index(world, stores(), None)
    with pytest.raises(BatchUnavailable, match="no batch directory is configured"):
        indexer.sync()
    assert indexer.last_block() == anchored.block_number - 1


def _anchor_raw(world: World, root: bytes, count: int, content: bytes, directory: Path) -> int:
    """Anchor (root, count, keccak(content)) and publish `content` under its hash, whatever it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    file_hash = keccak(content)
    (directory / f"{file_hash.hex()}.csv").write_bytes(content)
    seq = world.ledger.entry_count()
    world.ledger.anchor_batch(world.signer, root, count, file_hash)
    return seq


@pytest.mark.parametrize("fault", ["lacks an entry", "another root", "malformed line", "altered file"])
def test_a_file_that_does_not_match_its_anchor_halts_indexing_saying_what_is_wrong(
    world: World, stores: Callable[..., Store], tmp_path: Path, fault: str
) -> None:
    good = build_batch(life(world, "f", 4))  # 10 events
    short = build_batch(list(good.events[:-1]))
    if fault == "lacks an entry":  # the agency anchored the full batch's root and count over a file lacking one
        seq = _anchor_raw(world, good.root, good.count, short.content, tmp_path)
        kind, words = "count", "the file holds 9 events, the anchor says 10: 1 missing"
    elif fault == "another root":
        seq = _anchor_raw(world, short.root, good.count, good.content, tmp_path)  # the root of other events
        kind, words = "root", f"the file's 10 events build Merkle root 0x{good.root.hex()}, the anchor says"
    elif fault == "malformed line":
        content = good.content.replace(b"\n3,", b"\n03,", 1)
        seq = _anchor_raw(world, good.root, good.count, content, tmp_path)
        kind, words = "malformed", "line 5: index must be 3"
    else:
        seq = batches.anchor(world.ledger, world.signer, good, BatchStore(tmp_path)).seq
        path = BatchStore(tmp_path).path(good.file_hash)
        path.write_bytes(good.content.replace(b",6,", b",7,", 1))  # a fulfilment made a rejection
        kind, words = "hash", "its 10 events build another Merkle root"
    alerts: list[str] = []
    indexer = index(world, stores(), tmp_path, alert=alerts.append)
    with pytest.raises(BatchUnavailable) as info:
        indexer.sync()
    assert info.value.seq == seq and info.value.kind == kind
    assert words in str(info.value), str(info.value)
    assert alerts == [str(info.value)]
    if fault == "malformed line":
        assert info.value.line == 5


def test_run_keeps_waiting_at_a_missing_batch_and_goes_on_when_it_is_published(
    world: World, stores: Callable[..., Store], tmp_path: Path
) -> None:
    published = tmp_path / "published"
    batch, _ = anchor(world, life(world, "w", 3), tmp_path / "private")
    world.ledger.write(world.signer, world.opened("later"))
    store = stores()
    indexer = index(world, store, published, confirmations=0)
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run, kwargs={"poll_interval": 0.05, "stop_event": stop})
    thread.start()
    try:
        for _ in range(100):
            if indexer.halted_reason():
                break
            stop.wait(0.05)
        assert "file missing" in (indexer.halted_reason() or "")
        BatchStore(published).put(batch)
        for _ in range(200):
            if indexer.halted_reason() is None and indexer.last_block() == head(world):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert indexer.halted_reason() is None
    with store.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM entries").scalar()
    assert count == world.ledger.entry_count()


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
    anchor(world, [world.update("k1", CaseAction.FULFILLED, occurred_at=T0 + 9999)], tmp_path)
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
        assert len(first["entries"]) == world.ledger.entry_count() and len(first["batches"]) == 3
        dumps[name] = again
    assert dumps["sqlite"] == dumps["postgresql"]
