"""The indexer under faults: log ranges too large for the node (split and retried), timeouts, 5xx and 429 answers
(retried with backoff), logs that do not add up (refused), blocks changing mid-read, and chain reorganisations —
shallower than the confirmation depth (rolled back, never shown as final) and deeper (indexing halts with an
alert until an operator clears it). Reorgs use anvil's ``evm_snapshot``/``evm_revert`` and ``anvil_reorg``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger import receipts
from ledger.chain.contract import Chain
from ledger.chain.rpc import JsonRpc, RangeTooLarge, RetryPolicy
from ledger.dev.node import AnvilNode
from ledger.errors import IndexIntegrityError, NodeUnavailable, ReorgTooDeep
from ledger.index.sync import Indexer
from ledger.records import CaseAction, Correction, HolidayCalendar, Receipt, Retirement, text_hash
from ledger.store.db import Store
from tests.support.feedback import code_of, rate, receipt_case_id, write_feedback
from tests.support.index_faults import Fault, FaultProxy, rewrite, rpc_error, span, status, timeout
from tests.support.indexing import head, mine
from tests.support.indexing import index as direct
from tests.support.scenario import cst, write_everything
from tests.support.world import World, build_world


@pytest.fixture
def world(node_chain: Chain) -> World:
    return build_world(node_chain)


@pytest.fixture
def proxy(own_anvil: AnvilNode) -> Iterator[FaultProxy]:
    with FaultProxy(own_anvil.url) as running:
        yield running


class Sleeps:
    """Records backoff delays instead of sleeping them (the tests stay fast; the delays are what is checked)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def through(proxy: FaultProxy, world: World, store: Store, sleeps: Sleeps | None = None, **kwargs: Any) -> Indexer:
    rpc = JsonRpc(proxy.url, timeout=kwargs.pop("request_timeout", 5.0),
                  policy=RetryPolicy(max_retries=kwargs.pop("max_retries", 8), backoff=0.05), sleep=sleeps or Sleeps())
    kwargs.setdefault("confirmations", 3)
    return Indexer(Chain.connect(proxy.url), world.ledger.address, store, rpc=rpc, **kwargs)


def fresh_dump(world: World, stores: Callable[[], Store], to_block: int, **kwargs: Any) -> dict[str, Any]:
    """What indexing the chain as it is now, from scratch, gives."""
    store = stores()
    direct(world, store, **kwargs).sync(to_block=to_block)
    return store.dump()


# ------------------------------------------------------------------------------------------ node faults


def test_a_range_too_large_for_the_node_is_split_and_retried(
    world: World, proxy: FaultProxy, stores: Callable[[], Store]
) -> None:
    write_everything(world)
    asked: list[int] = []

    def too_wide(params: list[Any]) -> bool:
        asked.append(span(params))
        return span(params) > 4

    proxy.add("eth_getLogs", rpc_error(-32005, "query returned more than 10000 results"), times=None, when=too_wide)
    store = stores()
    report = through(proxy, world, store, max_block_range=2000).sync()
    assert report.splits >= 1 and report.ranges >= head(world) // 4 - 2
    assert proxy.faults["eth_getLogs"] == report.splits
    assert max(asked) > 4 and sum(n <= 4 for n in asked) == report.ranges  # every range read was a small one
    assert store.dump() == fresh_dump(world, stores, report.to_block)


def test_even_one_block_too_large_is_an_error(world: World, proxy: FaultProxy, stores: Callable[[], Store]) -> None:
    proxy.add("eth_getLogs", rpc_error(-32602, "log response size exceeded"), times=None)
    with pytest.raises(RangeTooLarge, match="size exceeded"):
        through(proxy, world, stores()).sync()


def test_timeouts_5xx_and_429_are_retried_with_backoff(
    world: World, proxy: FaultProxy, stores: Callable[[], Store]
) -> None:
    write_everything(world)
    proxy.add("eth_blockNumber", status(503), times=2)
    proxy.add("eth_getLogs", status(429, Retry_After="7"), times=1)
    proxy.add("eth_getLogs", status(502), times=1)
    proxy.add("eth_getLogs", rpc_error(-32005, "daily request count exceeded, request rate limited"), times=1)
    proxy.add("eth_getBlockByNumber", timeout(0.6), times=1)
    sleeps = Sleeps()
    store = stores()
    indexer = through(proxy, world, store, sleeps, request_timeout=0.3)
    # after the indexer checked the contract (its web3 calls retry on their own): the sync's calls meet these
    proxy.add("eth_call", status(500), times=2)
    report = indexer.sync()
    assert report.entries == world.ledger.entry_count()
    assert 7.0 in sleeps.delays  # Retry-After honoured
    assert len(sleeps.delays) == 8 == indexer.rpc.retries + indexer._prefetch_rpc.retries
    backoffs = [d for d in sleeps.delays if d != 7.0]
    assert all(0 <= d <= 20 for d in backoffs)
    assert store.dump() == fresh_dump(world, stores, report.to_block)


def test_a_node_that_stays_down_is_reported_and_nothing_is_written(
    world: World, proxy: FaultProxy, stores: Callable[[], Store]
) -> None:
    store = stores()
    indexer = through(proxy, world, store, max_retries=3)
    proxy.add("eth_getLogs", status(503), times=None)
    with pytest.raises(NodeUnavailable, match="failed 4 times, last with HTTP 503"):
        indexer.sync()
    assert store.dump()["entries"] == [] and indexer.last_block() < world.ledger.entries()[0].block_number


@pytest.mark.parametrize("tamper", ["drop a log", "alter a log"])
def test_logs_that_do_not_add_up_are_refused(
    world: World, proxy: FaultProxy, stores: Callable[[], Store], tamper: str
) -> None:
    world.ledger.write_batch(world.signer, [world.opened(f"c{i}") for i in range(5)])

    def change(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(logs) < 3:
            return logs
        if tamper == "drop a log":
            return logs[:2] + logs[3:]
        changed = dict(logs[-1])
        changed["data"] = changed["data"][:-1] + ("0" if changed["data"][-1] != "0" else "1")
        return logs[:-1] + [changed]

    proxy.add("eth_getLogs", rewrite(change), times=None)
    store = stores()
    with pytest.raises(IndexIntegrityError, match="incomplete or altered"):
        through(proxy, world, store).sync()
    assert store.dump()["entries"] == []


def test_a_range_served_short_once_is_read_again_not_refused(
    world: World, proxy: FaultProxy, stores: Callable[[], Store]
) -> None:
    """A node whose log index lags its head serves the newest block's logs a moment after the block itself (seen on
    anvil and geth): the range adds up on a second read, so it is indexed, not refused as an integrity failure (a node
    that keeps serving it short is refused: test_logs_that_do_not_add_up_are_refused)."""
    world.ledger.write_batch(world.signer, [world.opened(f"late{i}") for i in range(5)])
    proxy.add("eth_getLogs", rewrite(lambda logs: logs[:-1] if len(logs) >= 3 else logs), times=1)
    store = stores()
    report = through(proxy, world, store).sync()
    assert report.entries == world.ledger.entry_count() and len(store.dump()["cases"]) == 5


def test_a_block_changing_mid_read_is_retried(world: World, proxy: FaultProxy, stores: Callable[[], Store]) -> None:
    """A header whose hash differs from the logs' (as when a reorg happens between two reads) makes the range be
    read again, not stored."""
    write_everything(world)
    fake = "0x" + "ee" * 32

    def other_hash(block: dict[str, Any]) -> dict[str, Any]:
        return {**block, "hash": fake}

    last = head(world)
    proxy.add("eth_getBlockByNumber", rewrite(other_hash), times=1, when=lambda params: int(params[0], 16) == last)
    store = stores()
    report = through(proxy, world, store).sync()
    assert proxy.faults["eth_getBlockByNumber"] == 1 and report.reorgs == 0
    assert store.dump() == fresh_dump(world, stores, report.to_block)


# ------------------------------------------------------------------------------------------------ reorgs


def _write_some(world: World, tag: str, n: int = 3) -> None:
    for i in range(n):
        world.ledger.write(world.signer, world.opened(f"{tag}{i}"))


def test_shallow_reorg_is_rolled_back_and_never_shown_final(world: World, stores: Callable[[], Store]) -> None:
    store = stores()
    indexer = direct(world, store, confirmations=20)
    write_everything(world)
    f = write_feedback(world)
    mine(world, 20)
    indexer.sync()
    settled = store.dump()
    snapshot = world.chain.snapshot()
    # Orphaned to be: a correction voiding a case's fulfilment, a calendar version, a commitment version, cases;
    # a rating, the answer to a dispute, a correction voiding another answer, a new case with its receipt.
    undone = [r for r in world.ledger.entries() if r.kind == 5 and r.record.action == CaseAction.FULFILLED][0]
    first_orphan = head(world) + 1
    world.ledger.write(world.signer, Correction(target_seq=undone.seq, reason_hash=text_hash("x"),
                                                occurred_at=cst(2025, 9, 2)))
    rate(world, "rejected", 3)
    world.ledger.write(world.signer, world.update("r", CaseAction.REOPENED, case_id=f.cases["reopened"]))
    world.ledger.write(world.signer, Correction(target_seq=f.seqs["rejected answer"], reason_hash=text_hash("y"),
                                                occurred_at=cst(2025, 9, 2)))
    new_case = receipt_case_id("orphaned receipt")
    world.ledger.write(world.signer, world.opened("o", case_id=new_case))
    world.ledger.write(world.signer, Receipt(case_id=new_case, receipt=receipts.address(code_of("orphaned receipt")),
                                             occurred_at=world.now()))
    world.ledger.write(world.signer, HolidayCalendar(year=2025, occurred_at=cst(2025, 9, 2)))
    world.ledger.write(world.signer, world.commitment(deadline=1))
    _write_some(world, "orphan")
    world.ledger.write(world.signer, Retirement(commitment_id=world.commitment_id, reason_hash=text_hash("r"),
                                                occurred_at=cst(2025, 9, 2)))
    report = indexer.sync()
    assert report.finalized_block < first_orphan  # indexed, but never reported final
    orphaned = store.dump()
    assert orphaned != settled
    assert len(orphaned["ratings"]) == len(settled["ratings"]) + 1
    answered = {row[0]: row[7] for row in orphaned["disputes"]}
    assert answered[f.seqs["reopened again"]] is not None  # answered by the orphaned reopening...
    assert answered[f.seqs["rejected dispute"]] is None  # ...and this one's answer voided
    assert all(row[-1] is not None for row in orphaned["commitments"] if row[1] == "STREETLIGHT-48H")  # retired
    orphaned_head = head(world)

    world.chain.revert(snapshot)  # the chain forgets those blocks...
    _write_some(world, "winner", 4)  # ...and grows another way, past the old head
    mine(world, 15)
    assert head(world) > orphaned_head
    report = indexer.sync()
    assert report.reorgs == 1 and report.rolled_back_blocks == orphaned_head - first_orphan + 1
    rebuilt = store.dump()
    assert rebuilt == fresh_dump(world, stores, report.to_block, confirmations=20)
    for table in ("receipts", "ratings", "disputes", "corrections"):
        assert rebuilt[table] == settled[table], table
    assert indexer.halted_reason() is None
    # and the winning branch's own feedback indexes as usual
    rate(world, "rejected", 4)
    mine(world, 20)
    report = indexer.sync()
    assert store.dump() == fresh_dump(world, stores, report.to_block, confirmations=20)


def test_anvil_reorg_replacing_recent_blocks(world: World, stores: Callable[[], Store]) -> None:
    store = stores()
    indexer = direct(world, store, confirmations=5)
    _write_some(world, "kept")
    mine(world, 5)
    indexer.sync()
    _write_some(world, "dropped", 3)
    indexer.sync()
    assert len(store.dump()["cases"]) == 6
    world.chain.w3.provider.make_request("anvil_reorg", [3, []])  # the last 3 blocks, replaced by empty ones
    report = indexer.sync()
    assert report.reorgs == 1 and report.rolled_back_blocks == 3
    dump = store.dump()
    assert len(dump["cases"]) == 3
    assert dump == fresh_dump(world, stores, report.to_block, confirmations=5)


def test_reorg_deeper_than_the_confirmations_halts_with_an_alert(world: World, stores: Callable[[], Store]) -> None:
    alerts: list[str] = []
    store = stores()
    indexer = direct(world, store, confirmations=1, alert=alerts.append)
    _write_some(world, "early", 3)
    indexer.sync()
    final = indexer.finalized_block()
    assert final == head(world) - 1
    before = store.dump()
    world.chain.w3.provider.make_request("anvil_reorg", [3, []])  # reaches blocks already reported final
    with pytest.raises(ReorgTooDeep, match=f"at or below block {final}"):
        indexer.sync()
    assert alerts and "reorganisation" in alerts[0]
    assert indexer.halted_reason() is not None
    after = store.dump()
    assert after["sync_state"][0][-2] is not None  # halted_reason
    assert {t: r for t, r in after.items() if t != "sync_state"} == {t: r for t, r in before.items()
                                                                     if t != "sync_state"}
    mine(world, 2)
    with pytest.raises(ReorgTooDeep, match="halted"):  # refuses to go on, even after new blocks
        indexer.sync()
    stop = threading.Event()
    with pytest.raises(ReorgTooDeep):
        indexer.run(poll_interval=0.01, stop_event=stop)
    indexer.clear_halt()  # the operator accepts the new chain
    report = indexer.sync()
    assert report.reorgs == 1 and indexer.halted_reason() is None
    assert store.dump() == fresh_dump(world, stores, report.to_block, confirmations=1)


def test_run_follows_the_head_until_stopped(world: World, stores: Callable[[], Store]) -> None:
    store = stores()
    indexer = direct(world, store, confirmations=0)
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run, kwargs={"poll_interval": 0.05, "stop_event": stop})
    thread.start()
    try:
        _write_some(world, "live", 2)
        deadline = time.monotonic() + 10
        # finality advances in its own transaction after the ranges' (the run thread may be between the two)
        while indexer.finalized_block() < head(world) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert indexer.last_block() == head(world) == indexer.finalized_block()
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len(store.dump()["cases"]) == 2


def test_logs_without_block_timestamps(
    world: World, proxy: FaultProxy, stores: Callable[[], Store]
) -> None:
    """Nodes that give no blockTimestamp in logs (older geth): block times come from the headers instead."""
    write_everything(world)

    def strip(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in log.items() if k != "blockTimestamp"} for log in logs]

    proxy.add("eth_getLogs", rewrite(strip), times=None)
    store = stores()
    report = through(proxy, world, store).sync()
    assert store.dump() == fresh_dump(world, stores, report.to_block)


def test_a_json_rpc_error_with_a_4xx_status_is_an_answer(proxy: FaultProxy) -> None:
    rpc = JsonRpc(proxy.url, sleep=Sleeps())
    proxy.add("eth_getLogs", Fault(status=400, body=b'{"jsonrpc":"2.0","id":1,"error":{"code":-32602,'
                                                   b'"message":"block range too large"}}'))
    with pytest.raises(RangeTooLarge):
        rpc.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x1"}])
    proxy.add("eth_blockNumber", status(404))
    with pytest.raises(NodeUnavailable, match="HTTP 404"):
        rpc.call("eth_blockNumber", [])
    assert rpc.retries == 0
