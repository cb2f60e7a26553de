"""One indexer writes a store at a time (``ledger.index.leader``), on SQLite and PostgreSQL: a second indexer waits or
stands by and writes nothing; a killed leader's lease ends and another carries the index on exactly; a leader paused
past its lease and overtaken cannot commit (fencing). And the confirmation depth by chain id (``ledger.config``)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.chain.contract import Chain
from ledger.cli import app
from ledger.config import (
    DEFAULT_LEASE_SECONDS,
)
from ledger.dev.node import AnvilNode
from ledger.index.leader import LeaderLease, LeaseLost, NotLeader
from ledger.index.sync import Indexer
from ledger.store.db import Store
from tests.support.indexing import head, index
from tests.support.world import World, build_world

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """The leases' clock, moved by hand (unix seconds)."""

    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def world(node_chain: Chain) -> World:
    """A freshly deployed ledger on this module's anvil, with a dozen cases opened one block each."""
    built = build_world(node_chain)
    for i in range(12):
        built.ledger.write(built.signer, built.opened(f"case-{i}"))
    return built


@pytest.fixture(autouse=True)
def _no_civic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CIVIC_")]:
        monkeypatch.delenv(name)


def leased(world: World, store: Store, label: str, clock: Callable[[], float] = time.time, lease_seconds: int = 30,
           **kwargs: Any) -> Indexer:
    """An indexer of `world` whose lease says `label` and runs on `clock`."""
    return index(world, store, lease=LeaderLease(store, lease_seconds=lease_seconds, label=label, clock=clock),
                 **kwargs)


def index_rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the index derives from the chain (the lease is not one of them)."""
    return {table: rows for table, rows in store.dump().items() if table != "index_leader"}


def fresh_rows(world: World, stores: Callable[..., Store], to_block: int) -> dict[str, list[tuple[Any, ...]]]:
    fresh = stores()
    index(world, fresh).sync(to_block=to_block)
    return index_rows(fresh)


# ----------------------------------------------------------------------------------------------- one writer


def test_while_one_indexer_leads_a_second_one_writes_nothing(
    world: World, store_url: str, stores: Callable[..., Store], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    first = leased(world, stores(store_url), "indexer-a", clock, max_block_range=2)
    second = leased(world, stores(store_url), "indexer-b", clock)
    top = head(world)
    with first.leading(wait=0):
        first.sync(to_block=top - 8)
        before = stores(store_url).dump()
        assert before["index_leader"][0][1:3] == (first.lease.holder, "indexer-a")
        # a single sync: refused at once, naming the leader
        refused = r"another indexer leads the store .*indexer indexer-a .*wrote nothing"
        with pytest.raises(NotLeader, match=refused) as e:
            second.sync(wait=0)
        assert e.value.holder is not None and e.value.holder.holder == first.lease.holder
        # waiting a while is no different while the leader keeps its lease
        with pytest.raises(NotLeader, match="indexer-a"):
            second.sync(wait=0.3)
        with pytest.raises(NotLeader, match="indexer-a"):
            second.clear_halt(wait=0)
        # a follower stands by, polling, and never writes
        stop = threading.Event()
        standby = threading.Thread(target=second.run, kwargs={"poll_interval": 0.05, "stop_event": stop})
        with caplog.at_level(logging.INFO, logger="ledger.index"):
            standby.start()
            time.sleep(0.5)
            stop.set()
            standby.join(10)
        assert not standby.is_alive()
        assert "standing by: another indexer leads the store" in caplog.text
        assert stores(store_url).dump() == before
        first.sync()
    # the leader gave the lease up: the second takes it at once and finds nothing left to do
    assert stores(store_url).dump()["index_leader"] == []
    report = second.sync(wait=0)
    assert report.entries == 0 and report.to_block == first.last_block() == head(world)
    assert index_rows(stores(store_url)) == fresh_rows(world, stores, report.to_block)


def test_a_one_off_sync_waits_for_another_one_off_sync(world: World, store_url: str,
                                                       stores: Callable[..., Store]) -> None:
    """Two single syncs at once (an operator's beside the service's): the second waits for the first's lease."""
    clock = Clock()
    first = leased(world, stores(store_url), "indexer-a", clock)
    second = leased(world, stores(store_url), "indexer-b", clock)
    first.lease.take(0)  # as when the first's sync has just begun
    got: list[Any] = []
    waiting = threading.Thread(target=lambda: got.append(second.sync()))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive() and stores(store_url).dump()["entries"] == []
    first.lease.release()
    waiting.join(30)
    assert not waiting.is_alive() and got[0].to_block == head(world)
    assert index_rows(stores(store_url)) == fresh_rows(world, stores, got[0].to_block)


def test_the_lease_is_renewed_with_every_write_and_ends_unrenewed(store_url: str, stores: Callable[..., Store],
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(1000)
    store = stores(store_url)
    a = LeaderLease(store, lease_seconds=30, label="indexer-a", clock=clock)
    b = LeaderLease(store, lease_seconds=30, label="indexer-b", clock=clock)
    assert a.try_take() is None and a.held
    clock.advance(10)
    with store.begin() as conn:
        a.fence(conn)  # what each write transaction does first
    holder = a.current()
    assert holder is not None
    assert (holder.label, holder.acquired_at, holder.heartbeat_at, holder.expires_at) == ("indexer-a", 1000, 1010, 1040)
    clock.advance(29)
    taken_by = b.try_take()
    assert taken_by is not None and taken_by.holder == a.holder and not b.held
    clock.advance(1)  # 30 s after a's last heartbeat: its lease has ended
    with caplog.at_level(logging.INFO, logger="ledger.index.leader"):
        assert b.try_take() is None
    assert "indexer indexer-b took over the store" in caplog.text and "indexer indexer-a" in caplog.text
    holder = b.current()
    assert holder is not None and (holder.holder, holder.acquired_at, holder.expires_at) == (b.holder, 1040, 1070)
    # a's next write is refused, and a gives up nothing that is not its own
    with pytest.raises(LeaseLost, match="lost the leader lease .*held by indexer indexer-b"), store.begin() as conn:
        a.fence(conn)
    a.release()
    assert b.current() == holder
    b.release()
    assert b.current() is None and not b.held


def test_an_indexer_that_never_took_the_lease_cannot_write(store_url: str, stores: Callable[..., Store]) -> None:
    store = stores(store_url)
    with pytest.raises(NotLeader, match="does not hold the leader lease .*nobody holds it"), store.begin() as conn:
        LeaderLease(store, label="indexer-a").fence(conn)
    with pytest.raises(ValueError, match="lease_seconds"):
        LeaderLease(store, lease_seconds=0)


# ----------------------------------------------------------------------------------------------- failures


#: an indexer in a process of its own: it leads and syncs part way (to the block its arguments name); what follows it
#: (indented, :func:`_while_leading`) runs while it still leads
_LEADING = textwrap.dedent("""
    import sys, time
    import ledger.index.sync as sync
    from ledger.chain.contract import Chain
    from ledger.index.leader import LeaderLease
    from ledger.index.sync import Indexer
    from ledger.store.db import open_store

    rpc_url, address, store_url, to_block = sys.argv[1:5]
    store = open_store(store_url)
    indexer = Indexer(Chain.connect(rpc_url), address, store, confirmations=3,
                      lease=LeaderLease(store, lease_seconds=2, label="doomed"))
    with indexer.leading(wait=0):
        indexer.sync(to_block=int(to_block))
""")


def _while_leading(then: str) -> str:
    return _LEADING + textwrap.indent(textwrap.dedent(then), "    ")


#: ... then says so, and stays until it is killed
_LEADER = _while_leading("""
    print("leading", flush=True)
    time.sleep(600)
""")


def test_a_killed_leader_is_replaced_and_the_index_goes_on_exactly(
    world: World, own_anvil: AnvilNode, store_url: str, stores: Callable[..., Store]
) -> None:
    top = head(world)
    stores(store_url)  # migrated before the other process opens it
    doomed = subprocess.Popen(
        [sys.executable, "-c", _LEADER, own_anvil.url, world.ledger.address, store_url, str(top - 6)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "leading"
        with pytest.raises(NotLeader, match="indexer doomed"):
            index(world, stores(store_url)).sync(wait=0)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(30)
    store = stores(store_url)
    partial = store.dump()
    assert partial["index_leader"][0][2] == "doomed" and partial["sync_state"][0][3] == top - 6
    successor = leased(world, store, "successor", max_block_range=2)
    started = time.monotonic()
    report = successor.sync(wait=30)  # waits for the dead leader's lease (2 s) to end, then carries on
    assert time.monotonic() - started < 15
    assert report.from_block == top - 5 and report.to_block == top
    rows = index_rows(store)
    assert [row[0] for row in rows["entries"]] == list(range(world.ledger.entry_count()))  # no gap, no double
    assert rows == fresh_rows(world, stores, top)
    assert store.dump()["index_leader"] == []


def test_a_paused_leader_overtaken_cannot_commit(world: World, store_url: str, stores: Callable[..., Store]) -> None:
    """The old leader stops (paused) between taking its lease and writing; its lease ends; another indexer takes
    over (and has not written yet). When the old one wakes, its write must be refused: the store state it read is
    unchanged, so only the fencing stops it."""
    clock = Clock()
    old = leased(world, stores(store_url), "old-leader", clock)
    new = leased(world, stores(store_url), "new-leader", clock)
    top = head(world)
    with ExitStack() as held:
        held.enter_context(old.leading(wait=0))
        old.sync(to_block=top - 6)
        before = index_rows(stores(store_url))
        reads = old.reader.logs

        def paused_then_overtaken(*args: Any) -> Any:
            clock.advance(DEFAULT_LEASE_SECONDS + 1)
            held.enter_context(new.leading(wait=0))  # the old lease has ended: the new leader takes it
            old.reader.logs = reads  # type: ignore[method-assign]
            return reads(*args)

        old.reader.logs = paused_then_overtaken  # type: ignore[method-assign]
        with pytest.raises(LeaseLost, match=r"indexer old-leader lost the leader lease .*held by indexer new-leader.*"
                                            r"Its write was refused and rolled back"):
            old.sync()
        assert index_rows(stores(store_url)) == before
        assert not old.lease.held and new.lease.held
        with pytest.raises(NotLeader, match="new-leader"):
            old.sync(wait=0)
        report = new.sync()
    assert report.from_block == top - 5 and report.to_block == top
    assert index_rows(stores(store_url)) == fresh_rows(world, stores, top)
    assert stores(store_url).dump()["index_leader"] == []


def test_a_follower_that_loses_its_lease_stands_by(world: World, store_url: str, stores: Callable[..., Store],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """`run` keeps the lease between polls; overtaken, it stands by instead of stopping, and writes nothing."""
    clock = Clock()
    follower = leased(world, stores(store_url), "follower", clock)
    other = leased(world, stores(store_url), "other", clock)
    stop = threading.Event()
    polls = 0
    real_sync = follower.sync

    def sync(*args: Any, **kwargs: Any) -> Any:
        nonlocal polls
        polls += 1
        if polls == 2:  # between two polls the follower is paused past its lease and another takes over
            clock.advance(DEFAULT_LEASE_SECONDS + 1)
            other.lease.take(0)
        if polls == 4:
            stop.set()
        return real_sync(*args, **kwargs)

    follower.sync = sync  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="ledger.index"):
        follower.run(poll_interval=0.01, stop_event=stop)
    assert "standing by: another indexer leads the store" in caplog.text and "indexer other" in caplog.text
    holder = other.lease.current()
    assert holder is not None and holder.holder == other.lease.holder  # the follower gave up nothing of the other's
    assert index_rows(stores(store_url)) == fresh_rows(world, stores, follower.last_block())


def test_a_single_cli_sync_exits_saying_which_indexer_leads(world: World, own_anvil: AnvilNode, store_url: str,
                                                           stores: Callable[..., Store], tmp_path: Path) -> None:
    leader = leased(world, stores(store_url), "the-service")
    argv = ["--rpc-url", own_anvil.url, "--contract", world.ledger.address, "--data-dir", str(tmp_path), "sync",
            "--store", store_url]
    with leader.leading(wait=0):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, result.output
        assert "another indexer leads the store" in " ".join(result.output.split())
        assert "the-service" in result.output
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"up to block {head(world)}" in said and "2 confirmations" in said


# ----------------------------------------------------------------------------------------------- confirmations


def test_the_indexer_takes_its_chain_s_depth_unless_given(world: World, stores: Callable[..., Store]) -> None:
    assert world.chain.chain_id == 31337
    assert Indexer(world.chain, world.ledger.address, stores()).confirmations == 2
    indexer = Indexer(world.chain, world.ledger.address, stores(), confirmations=5)
    report = indexer.sync()
    assert indexer.confirmations == 5 and report.finalized_block == report.head - 5


# ----------------------------------------------------------------------------------------------- attacks (issue 16)


def test_a_standby_whose_clock_runs_ahead_takes_over_early_yet_the_index_stays_whole(
    world: World, store_url: str, stores: Callable[..., Store], caplog: pytest.LogCaptureFixture
) -> None:
    """Two indexers on hosts whose clocks differ by 100 s (more than the 30 s lease). The one whose clock runs ahead
    sees a live leader's lease as ended and takes it over; the live leader's next write is then refused (fencing)
    and rolled back, and only the new leader writes. The one whose clock runs behind never takes a live lease, and
    takes an ended one only once its own clock says so. Either way no entry is written twice or lost."""
    leader_clock = Clock()
    ahead, behind = Clock(leader_clock.now + 100), Clock(leader_clock.now - 100)
    leader = leased(world, stores(store_url), "on-time", leader_clock, max_block_range=2)
    fast = leased(world, stores(store_url), "fast-clock", ahead)
    slow = leased(world, stores(store_url), "slow-clock", behind)
    top = head(world)
    with leader.leading(wait=0):
        leader.sync(to_block=top - 8)
        with pytest.raises(NotLeader, match="indexer on-time"):
            slow.sync(wait=0)  # its clock says the leader's lease has 130 s to run
        before = index_rows(stores(store_url))
        with caplog.at_level(logging.INFO, logger="ledger.index.leader"):
            assert fast.lease.try_take() is None  # its clock says the lease ended 70 s ago
        assert "indexer fast-clock took over the store" in caplog.text
        # the live leader's next write transaction (say, one it began before the takeover) is refused...
        with pytest.raises(LeaseLost, match="indexer on-time lost the leader lease .*fast-clock"), \
                stores(store_url).begin() as conn:
            leader.lease.fence(conn)
        # ...and its next sync writes nothing either
        with pytest.raises(NotLeader, match="fast-clock"):
            leader.sync(to_block=top - 4, wait=0)
        assert index_rows(stores(store_url)) == before
        report = fast.sync()
    assert report.to_block == top
    # the leader is gone: the slow clock's standby waits until its own clock passes the lease's end
    fast.lease.take(0)
    behind.advance(31)
    with pytest.raises(NotLeader, match="fast-clock"):
        slow.sync(wait=0)
    behind.advance(200)
    assert slow.sync(wait=0).entries == 0
    rows = index_rows(stores(store_url))
    assert [row[0] for row in rows["entries"]] == list(range(world.ledger.entry_count()))
    assert rows == fresh_rows(world, stores, top)


#: a leader in a process of its own killed in the middle of a write transaction: it syncs part way (committed), then
#: starts the next range's transaction, writes its rows, says so and stays there until it is killed
_KILLED_MID_WRITE = _while_leading("""
    settle = sync.settle_attestations

    def stuck(conn, count):
        settle(conn, count)
        print("mid-transaction", flush=True)
        time.sleep(600)

    sync.settle_attestations = stuck
    indexer.sync()
""")


def test_a_leader_killed_in_the_middle_of_a_write_leaves_nothing_of_it_and_is_replaced(
    world: World, own_anvil: AnvilNode, store_url: str, stores: Callable[..., Store]
) -> None:
    top = head(world)
    stores(store_url)  # migrated before the other process opens it
    doomed = subprocess.Popen(
        [sys.executable, "-c", _KILLED_MID_WRITE, own_anvil.url, world.ledger.address, store_url, str(top - 6)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "mid-transaction"
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(30)
    store = stores(store_url)
    partial = store.dump()
    assert partial["sync_state"][0][3] == top - 6  # the killed transaction's rows are not there
    assert index_rows(store) == fresh_rows(world, stores, top - 6)
    successor = leased(world, store, "successor")
    started = time.monotonic()
    report = successor.sync(wait=30)  # the dead leader's lease (2 s, not renewed by the lost write) ends
    assert time.monotonic() - started < 15
    assert report.from_block == top - 5 and report.to_block == top
    rows = index_rows(store)
    assert [row[0] for row in rows["entries"]] == list(range(world.ledger.entry_count()))
    assert rows == fresh_rows(world, stores, top)
