"""The writer under faults, against anvil: RPC timeouts, 5xx and 429 answers, answers lost after the node acted, a
crash at every step of a batch, a nonce taken by someone else, a node that loses blocks, a killed node and a killed
writer. Every test ends the same way: each submitted entry is on chain exactly once, and no nonce was signed twice."""

from __future__ import annotations

import email.utils
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger.chain.contract import Chain, Ledger
from ledger.chain.rpc import retry_after_seconds
from ledger.dev.node import AnvilNode
from ledger.errors import ContractReverted, NodeUnavailable, WriterError
from ledger.records import CaseAction, CaseEvent, Record, short_code
from ledger.writer.outbox import Outbox, OutboxState, TxState, record_json
from ledger.writer.sender import Writer
from tests.support.faults import FaultProxy, RecordingSigner, start_writer_process, wait_for_line
from tests.support.world import World, build_world, case_id

FAST = {"retry_backoff": 0.01, "max_backoff": 0.05, "rpc_timeout": 0.5, "rebroadcast_after": 0.5}


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


@pytest.fixture(scope="module")
def node():
    anvil = AnvilNode().start()
    yield anvil
    anvil.stop()


@pytest.fixture(scope="module")
def _world(node: AnvilNode) -> World:
    return build_world(Chain.connect(node.url))


@pytest.fixture
def world(_world: World):
    snapshot = _world.chain.snapshot()
    yield _world
    _world.chain.revert(snapshot)


@pytest.fixture
def proxy(node: AnvilNode):
    with FaultProxy(node.url) as p:
        yield p


def writer_via(url: str, world: World, outbox: Outbox, **settings) -> Writer:
    """A writer whose node is at `url` (the proxy), signing with a RecordingSigner of the world's agency key."""
    options = {**FAST, "batch_size": 5, **settings}
    return Writer(Ledger(Chain.connect(url), world.ledger.address), RecordingSigner.of(world.signer), outbox, **options)


def events(world: World, prefix: str, count: int) -> list[CaseEvent]:
    return [world.opened(f"{prefix}{i}") for i in range(count)]


def assert_exactly_once(world: World, before: int, records: list[Record], outbox: Outbox, failed: int = 0) -> None:
    """Every record on chain once, after `before`, in submission order; every outbox row recorded with its seq
    (but `failed` rows refused by the contract)."""
    logged = world.ledger.entries()[before:]
    assert Counter(e.record.struct_hash() for e in logged) == Counter(r.struct_hash() for r in records)
    assert [e.record.struct_hash() for e in logged] == [r.struct_hash() for r in records]
    assert outbox.count(OutboxState.FAILED) == failed
    rows = [row for row in outbox.items() if row.state is not OutboxState.FAILED]
    assert all(row.state is OutboxState.RECORDED for row in rows), Counter(row.state for row in rows)
    mine = {row.record_hash for row in rows}
    assert sorted(row.seq or 0 for row in rows) == [e.seq for e in logged if "0x" + e.record_hash.hex() in mine]
    nonces = [tx.nonce for tx in outbox.transactions() if tx.state in (TxState.MINED, TxState.REVERTED)]
    assert len(nonces) == len(set(nonces))


# ---------------------------------------------------------------------- transient RPC failures


def test_reads_are_retried_through_5xx(world: World, proxy: FaultProxy, outbox: Outbox):
    before = world.ledger.entry_count()
    writer = writer_via(proxy.url, world, outbox)
    proxy.fail(500, times=2, method="eth_createAccessList")
    proxy.fail(502, method="eth_getTransactionReceipt")
    proxy.fail(503, times=2, method="eth_getBlockByNumber")
    records = events(world, "c", 7)
    writer.submit_many(records)
    writer.flush()
    assert writer.stats.retries == 5
    assert sorted(proxy.methods("status 500") + proxy.methods("status 502") + proxy.methods("status 503")) == sorted(
        ["eth_createAccessList"] * 2 + ["eth_getTransactionReceipt"] + ["eth_getBlockByNumber"] * 2
    )
    assert_exactly_once(world, before, records, outbox)
    writer.signer.assert_each_nonce_signed_once()  # type: ignore[attr-defined]
    writer.close()


def test_429_retry_after_is_honoured(world: World, proxy: FaultProxy, outbox: Outbox):
    writer = writer_via(proxy.url, world, outbox)
    proxy.fail(429, method="eth_createAccessList", retry_after="1")
    writer.write(world.opened("rate limited"))
    estimates = [c for c in proxy.calls if c.method == "eth_createAccessList"]
    assert [c.outcome for c in estimates[:2]] == ["status 429", "ok"]
    assert estimates[1].at - estimates[0].at >= 0.95  # not the 10 ms backoff: the server's second
    writer.close()


def test_retry_after_may_be_an_http_date():
    in_two_seconds = email.utils.formatdate(time.time() + 2, usegmt=True)
    assert 0.5 < retry_after_seconds(in_two_seconds) <= 2.01
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(None) == 0.0
    assert retry_after_seconds("soon") == 0.0 and retry_after_seconds("1.5") == 1.5


def test_a_read_that_times_out_is_retried(world: World, proxy: FaultProxy, outbox: Outbox):
    writer = writer_via(proxy.url, world, outbox)
    proxy.hang(method="eth_getTransactionCount", seconds=1.5)  # rpc_timeout is 0.5 s
    proxy.hang(method="eth_getTransactionReceipt", seconds=1.5)
    item = writer.write(world.opened("slow node"))
    assert item.state is OutboxState.RECORDED
    assert proxy.methods("hang") == ["eth_getTransactionCount", "eth_getTransactionReceipt"]
    assert writer.stats.retries == 2
    writer.close()


@pytest.mark.parametrize("lost_after", [0.0, 1.0], ids=["connection dropped", "timed out"])
def test_a_broadcast_whose_answer_is_lost_is_not_a_second_transaction(
    world: World, proxy: FaultProxy, outbox: Outbox, lost_after: float
):
    """The classic double-submit trap: the node took the transaction, the answer never came back. The writer sends
    the same signed bytes again ("nonce too low": it was mined) and never signs the entries into a new one."""
    before = world.ledger.entry_count()
    writer = writer_via(proxy.url, world, outbox)
    proxy.lose_answer(times=2, seconds=lost_after)
    records = events(world, "c", 12)  # three transactions: 5, 5, 2
    writer.submit_many(records)
    writer.flush()
    assert proxy.methods("lost") == ["eth_sendRawTransaction"] * 2
    signer: RecordingSigner = writer.signer  # type: ignore[assignment]
    assert len(signer.signed) == 3
    signer.assert_each_nonce_signed_once()
    assert writer.stats.broadcasts == 5
    assert_exactly_once(world, before, records, outbox)
    writer.close()


def test_a_broadcast_refused_by_a_5xx_is_sent_again(world: World, proxy: FaultProxy, outbox: Outbox):
    before = world.ledger.entry_count()
    writer = writer_via(proxy.url, world, outbox)
    proxy.fail(500, times=2, method="eth_sendRawTransaction")
    records = events(world, "c", 3)
    writer.submit_many(records)
    writer.flush()
    assert writer.stats.broadcasts == writer.stats.signed + 2 == 3
    assert_exactly_once(world, before, records, outbox)
    writer.close()


def test_a_node_that_stays_down_loses_nothing(world: World, proxy: FaultProxy, outbox: Outbox):
    """The answer to a broadcast is lost and then the node stops answering: the flush gives up with
    NodeUnavailable; the transaction stays `sent`, the rest `pending`. When the node is back, recovery finds the
    transaction mined and the rest goes out — nothing signed twice."""
    before = world.ledger.entry_count()
    writer = writer_via(proxy.url, world, outbox, max_retries=2)
    proxy.fail(503, times=10_000, after=proxy.lose_answer())
    records = events(world, "c", 8)
    writer.submit_many(records)
    with pytest.raises(NodeUnavailable, match="did not answer after 3 attempts"):
        writer.flush()
    assert outbox.counts()[OutboxState.SENT] == 5 and outbox.counts()[OutboxState.PENDING] == 3
    proxy.clear()
    writer.flush()
    assert_exactly_once(world, before, records, outbox)
    writer.signer.assert_each_nonce_signed_once()  # type: ignore[attr-defined]
    writer.close()


def test_a_permanent_http_error_is_not_retried(world: World, proxy: FaultProxy, outbox: Outbox):
    writer = writer_via(proxy.url, world, outbox)
    proxy.fail(403, times=100)
    writer.submit(world.opened("forbidden"))
    with pytest.raises(NodeUnavailable, match="refused the request"):
        writer.flush()
    assert writer.stats.retries == 0 and len(proxy.methods("status 403")) == 1
    writer.close()


def test_a_node_without_eth_create_access_list_gets_gas_estimates(world: World, proxy: FaultProxy, outbox: Outbox):
    before = world.ledger.entry_count()
    writer = writer_via(proxy.url, world, outbox)
    unknown = {"error": {"code": -32601, "message": "the method eth_createAccessList does not exist/is not available"}}
    proxy.reply("eth_createAccessList", unknown, times=100)
    records = events(world, "c", 6)
    records.insert(2, world.opened("bad", commitment_id=b"\x09" * 32))
    writer.submit_many(records)
    settled = writer.flush()
    assert proxy.methods("replied") == ["eth_createAccessList"]  # asked once, then never again
    assert "eth_estimateGas" in proxy.methods("ok")
    assert [i.state for i in settled].count(OutboxState.FAILED) == 1
    assert "UnknownCommitment" in (settled[2].error or "")
    assert_exactly_once(world, before, records[:2] + records[3:], outbox, failed=1)
    writer.close()


def test_a_revert_reported_the_geth_way_is_decoded(world: World, proxy: FaultProxy, outbox: Outbox):
    """geth answers eth_createAccessList for a reverting call with a result carrying an `error` text and no revert
    data; the writer asks eth_call for the data and decodes it."""
    writer = writer_via(proxy.url, world, outbox)
    geth_style = {"result": {"accessList": [], "gasUsed": "0x5208", "error": "execution reverted"}}
    proxy.reply("eth_createAccessList", geth_style)
    before = proxy.methods("ok").count("eth_call")  # the writer's check of the ledger and its module, at start
    with pytest.raises(ContractReverted) as info:
        writer.write(world.opened("bad", commitment_id=b"\x09" * 32))
    assert info.value.error_name == "UnknownCommitment"
    assert proxy.methods("ok").count("eth_call") == before + 1
    writer.close()


# ---------------------------------------------------------------------- crashes


@pytest.mark.parametrize("point", ["before broadcast", "after broadcast", "before recording"])
def test_a_crash_in_the_middle_of_a_batch_resumes_without_duplicates_or_gaps(
    world: World, outbox: Outbox, node: AnvilNode, point: str, monkeypatch
):
    before = world.ledger.entry_count()
    records = events(world, "c", 17)  # four transactions
    first = writer_via(node.url, world, outbox, max_in_flight=2)
    first.submit_many(records)
    calls = Counter[str]()

    def crash_on_second(name: str, original):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            if calls[name] == 2:
                raise Crash(point)
            return original(*args, **kwargs)

        return wrapper

    if point == "before broadcast":
        monkeypatch.setattr(first, "_broadcast", crash_on_second("broadcast", first._broadcast))
    elif point == "after broadcast":
        monkeypatch.setattr(first, "_settle", crash_on_second("settle", first._settle))
    else:
        monkeypatch.setattr(outbox, "record_mined", crash_on_second("record", outbox.record_mined))
    with pytest.raises(Crash):
        first.flush()
    monkeypatch.undo()
    first.close()  # the process is gone; its lock with it
    signed_before = {nonce for nonce, _ in first.signer.signed}  # type: ignore[attr-defined]
    assert outbox.counts()[OutboxState.SENT] >= 5

    second = writer_via(node.url, world, outbox)
    second.flush()
    assert_exactly_once(world, before, records, outbox)
    signed_after = {nonce for nonce, _ in second.signer.signed}  # type: ignore[attr-defined]
    assert not signed_before & signed_after  # what the crashed writer signed was re-broadcast, never re-signed
    second.close()


def test_a_nonce_taken_by_another_transaction_fails_those_entries_clearly(
    world: World, outbox: Outbox, node: AnvilNode, monkeypatch
):
    before = world.ledger.entry_count()
    first = writer_via(node.url, world, outbox)
    records = events(world, "c", 5)
    first.submit_many(records)
    monkeypatch.setattr(first, "_broadcast", lambda flight: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        first.flush()  # signed and stored, never broadcast
    first.close()
    intruder = world.opened("sent by something else with the same key")
    world.ledger.write(world.signer, intruder)  # takes the stored transaction's nonce

    second = writer_via(node.url, world, outbox)
    settled = second.flush()
    assert [i.state for i in settled] == [OutboxState.FAILED] * 5
    assert "was used by another transaction" in (settled[0].error or "")
    assert "Outbox.requeue" in (settled[0].error or "")
    assert isinstance(second.failure(settled[0]), WriterError)
    assert outbox.transactions()[0].state is TxState.DROPPED
    assert outbox.requeue([i.id for i in settled]) == 5
    second.flush()
    assert_exactly_once(world, before, [intruder, *records], outbox)
    second.close()


def test_blocks_the_node_lost_are_written_again(world: World, outbox: Outbox, node: AnvilNode):
    """A reorg, or a dev chain restarted from an older state file: transactions the outbox has as mined are gone.
    Recovery sees the account's nonce below them and broadcasts their same bytes again."""
    before = world.ledger.entry_count()
    writer = writer_via(node.url, world, outbox)
    kept = events(world, "kept", 3)
    writer.submit_many(kept)
    writer.flush()
    snapshot = world.chain.snapshot()
    lost = events(world, "lost", 7)
    writer.submit_many(lost)
    writer.flush()
    world.chain.revert(snapshot)  # the chain forgets the last two transactions
    assert world.ledger.entry_count() == before + 3
    recovered = writer.recover()
    assert {i.state for i in recovered} == {OutboxState.RECORDED} and len(recovered) == 7
    assert_exactly_once(world, before, kept + lost, outbox)
    writer.signer.assert_each_nonce_signed_once()  # type: ignore[attr-defined]
    writer.close()


# ---------------------------------------------------------------------- killed node, killed writer


@pytest.mark.slow
def test_the_outbox_survives_a_killed_node(tmp_path: Path, outbox: Outbox):
    """SIGKILL the node right after a flush (anvil saves its state every 2 s, so it may lose those blocks), submit
    more while it is down, start it again from its state file: everything is on chain once."""
    state = tmp_path / "anvil-state.json"
    anvil = AnvilNode(state_path=state).start()
    world = build_world(Chain.connect(anvil.url))
    anvil.stop()  # SIGTERM: the deployment is saved
    # The writer keeps one URL (this proxy) while the node behind it is killed and started again from its state
    # file. (Not on the same port: ledger.dev.node's busy-port probe refuses a port still in TIME_WAIT.)
    anvil = AnvilNode(state_path=state).start()
    try:
        _write_through_a_killed_node(anvil, state, world, outbox)
    finally:
        anvil.stop()  # whichever node is running now: a failed assertion must not leak a process


def _write_through_a_killed_node(anvil: AnvilNode, state: Path, world: World, outbox: Outbox) -> None:
    with FaultProxy(anvil.url) as proxy:
        ledger = Ledger(Chain.connect(proxy.url), world.ledger.address)
        before = ledger.entry_count()
        now = int(ledger.w3.eth.get_block("latest")["timestamp"])
        # (World.opened would ask the first node, long gone, for the time.)
        first = [opened_at(world, f"a{i}", now) for i in range(8)]
        second = [opened_at(world, f"b{i}", now) for i in range(8)]
        writer = writer_via(proxy.url, world, outbox, max_retries=2)
        writer.submit_many(first)
        writer.flush()
        anvil.kill()
        writer.submit_many(second)  # the node is down: submitting still works, durably
        with pytest.raises(NodeUnavailable):
            writer.flush()
        assert outbox.counts()[OutboxState.PENDING] == 8
        anvil.start()  # the same node object, so the caller's finally stops it
        proxy.upstream = anvil.url
        writer.flush()
        logged = ledger.entries()[before:]
        assert [e.record.struct_hash() for e in logged] == [r.struct_hash() for r in first + second]
        assert all(row.state is OutboxState.RECORDED for row in outbox.items())
        writer.signer.assert_each_nonce_signed_once()  # type: ignore[attr-defined]
        writer.close()


def opened_at(world: World, name: str, occurred_at: int) -> CaseEvent:
    return CaseEvent(
        case_id=case_id(name), action=CaseAction.OPENED, occurred_at=occurred_at, commitment_id=world.commitment_id,
        district=short_code("PUDONG"), channel=2,
    )


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_broadcast", "after_broadcast", "any time"])
def test_a_killed_writer_process_resumes_exactly_once(
    world: World, node: AnvilNode, tmp_path: Path, point: str
):
    """A writer in another process, SIGKILLed mid-flush; a new writer on the same outbox recovers. Submitting the
    same records again afterwards (a client retrying after the crash) adds nothing."""
    before = world.ledger.entry_count()
    records = events(world, "k", 23)  # five transactions of up to 5
    path = tmp_path / "outbox.db"
    process = start_writer_process(
        url=node.url, ledger=world.ledger.address, outbox=path, signer=world.signer,
        records=[(type(r).__name__, record_json(r)) for r in records], point=point, at=3, batch_size=5, in_flight=2,
    )
    if point == "any time":
        wait_for_line(process, "SUBMITTED")
        time.sleep(0.05)
    else:
        wait_for_line(process, "READY")
    process.kill()
    process.wait(30)
    with Outbox(path) as outbox:
        stored_before = {tx.nonce for tx in outbox.transactions()}
        writer = writer_via(node.url, world, outbox)
        writer.flush()
        assert_exactly_once(world, before, records, outbox)
        signed_now = {nonce for nonce, _ in writer.signer.signed}  # type: ignore[attr-defined]
        assert not stored_before & signed_now
        # The client did not hear back before the crash, so it submits everything again.
        again = writer.submit_many(records)
        assert {i.state for i in again} == {OutboxState.RECORDED}
        assert writer.flush() == []
        assert world.ledger.entry_count() == before + len(records)
        writer.close()
