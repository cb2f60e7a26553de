"""The local anvil's state file: written only when the chain changed (never while it idles), at most every so often,
whole at every stop, and never left half-written by a crash mid-save."""

from __future__ import annotations

import gzip
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger.chain.contract import Chain
from ledger.chain.rpc import JsonRpc, RpcError
from ledger.dev import node as node_module
from ledger.dev.node import AnvilNode, StateSaver
from ledger.errors import LedgerError, NodeUnavailable
from tests.support.faults import FaultProxy

#: a saver that never looks by itself: only stop() and save_state() write (the tests that need a quiet owner)
NEVER = 3600.0


@pytest.fixture
def nodes() -> Iterator[Callable[..., AnvilNode]]:
    """Start anvils with a state file; whatever a test leaves running is killed at teardown (no last save)."""
    started: list[AnvilNode] = []

    def start(state: Path, **kwargs: float) -> AnvilNode:
        node = AnvilNode(state_path=state, **kwargs).start()
        started.append(node)
        return node

    yield start
    for node in started:
        node.kill()


def _pay(node: AnvilNode) -> str:
    """One transaction: a fresh address funded; its balance shows whether a reloaded chain has it."""
    chain = Chain.connect(node.url)
    address = chain.w3.eth.account.create().address
    chain.fund(address, 12345)
    return str(address)


def _balance(node: AnvilNode, address: str) -> int:
    return int(Chain.connect(node.url).w3.eth.get_balance(address))


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_an_idle_chain_is_never_written(tmp_path: Path, nodes):
    state = tmp_path / "anvil-state.json"
    first = nodes(state, poll_interval=NEVER)
    paid = _pay(first)
    first.stop()
    written = state.stat()

    idle = nodes(state, poll_interval=0.1, save_interval=0.2)
    time.sleep(1.5)  # some fifteen looks at the head
    assert idle.saver is not None and idle.saver.saves == 0
    assert (state.stat().st_mtime_ns, state.stat().st_ino) == (written.st_mtime_ns, written.st_ino)
    assert _balance(idle, paid) == 12345  # loaded at start all the same


def test_a_new_chain_left_idle_writes_nothing_until_it_stops(tmp_path: Path, nodes):
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=0.1, save_interval=0.2)
    time.sleep(1.0)
    assert not state.exists()
    node.stop()  # a stop saves even an unchanged chain: whatever the node holds is kept
    assert state.is_file()


def test_a_transaction_is_saved_within_the_interval_and_survives_a_crash(tmp_path: Path, nodes):
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=0.1, save_interval=0.5)
    paid = _pay(node)
    assert node.saver is not None
    assert _wait_for(lambda: node.saver is not None and node.saver.saves >= 1, 0.1 + 0.5 + 5)
    node.kill()  # SIGKILL: no last save, so what is reloaded is what the saver wrote while the node ran
    again = nodes(state, poll_interval=NEVER)
    assert _balance(again, paid) == 12345


def test_a_busy_chain_is_saved_at_most_once_per_interval(tmp_path: Path, nodes):
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=0.05, save_interval=1.0)
    rpc = Chain.connect(node.url).w3.provider
    began = time.monotonic()
    while time.monotonic() - began < 2.5:
        rpc.make_request("evm_mine", [])
        time.sleep(0.02)
    assert node.saver is not None
    assert 1 <= node.saver.saves <= 3  # 2.5 s of new blocks at least every 50 ms: one save a second at most


def test_a_reverted_chain_grown_back_to_the_same_height_is_saved(tmp_path: Path, nodes):
    """The head is compared by hash, not by number alone: another block at the saved height is a change."""
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=NEVER, save_interval=0)
    assert node.saver is not None
    chain = Chain.connect(node.url)
    snapshot = chain.snapshot()
    chain.w3.provider.make_request("evm_mine", [])
    assert node.saver.save_if_changed()
    chain.revert(snapshot)
    paid = _pay(node)  # the same height as the saved chain, another block
    assert node.saver.save_if_changed()
    assert not node.saver.save_if_changed()  # and then nothing moved
    node.kill()
    assert _balance(nodes(state, poll_interval=NEVER), paid) == 12345


def test_stop_saves_the_last_transaction(tmp_path: Path, nodes):
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=NEVER)
    paid = _pay(node)
    node.stop()
    assert not node.running
    assert _balance(nodes(state, poll_interval=NEVER), paid) == 12345


def test_anvil_itself_never_writes_the_state_file(tmp_path: Path, nodes):
    """Only the saver writes (no --state/--dump-state/--state-interval): an exit write could race it."""
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=NEVER)
    _pay(node)
    assert node.saver is not None
    node.saver.stop(save=False)
    node.saver = None  # stop without the last save: whatever anvil writes at exit is all there is
    node.stop()
    assert not state.exists()


#: a saver in a process of its own that SIGKILLs itself between writing the temporary file and the rename
_KILLED_MID_SAVE = """
import os, signal, sys
from pathlib import Path
from ledger.dev import node
node.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
node.StateSaver(sys.argv[1], Path(sys.argv[2]), poll_interval=3600).start().save()
"""


def test_a_crash_mid_save_leaves_the_previous_state(tmp_path: Path, nodes):
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=NEVER)
    kept = _pay(node)
    node.save_state()
    previous = state.read_bytes()
    lost = _pay(node)
    saving = subprocess.run([sys.executable, "-c", _KILLED_MID_SAVE, node.url, str(state)], timeout=60)
    assert saving.returncode == -9
    assert node.saver is not None and node.saver.temporary.stat().st_size > 0  # the save had got that far
    assert state.read_bytes() == previous
    node.kill()

    again = nodes(state, poll_interval=NEVER)
    assert (_balance(again, kept), _balance(again, lost)) == (12345, 0)
    assert again.saver is not None and not again.saver.temporary.exists()  # the half-done save is cleared away


def test_a_damaged_or_refused_dump_is_not_saved_and_the_file_kept(tmp_path: Path, nodes):
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=NEVER)
    node.save_state()
    previous = state.read_bytes()
    _pay(node)
    whole = JsonRpc(node.url).call("anvil_dumpState", [])
    answers = [
        ({"result": whole[: len(whole) // 4 * 2]}, "damaged state"),  # cut short, at a whole byte
        ({"result": "0x" + gzip.compress(b"{}")[:-4].hex()}, "damaged state"),  # no checksum and length at the end
        ({"result": "0xzz"}, "not hex-encoded"),
        ({"error": {"code": -32601, "message": "Method not found"}}, "Method not found"),  # another node software
    ]
    with FaultProxy(node.url) as proxy:
        saver = StateSaver(proxy.url, state, poll_interval=NEVER).start()
        try:
            for answer, problem in answers:
                proxy.reply("anvil_dumpState", answer)
                with pytest.raises(LedgerError, match=problem):
                    saver.save()
                assert state.read_bytes() == previous
                assert not saver.temporary.exists()
            saver.save()  # the node answering well again: saved
            assert state.read_bytes() != previous
        finally:
            saver.stop(save=False)


def test_a_full_disk_keeps_the_previous_file_and_the_error(tmp_path: Path, nodes, monkeypatch):
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=NEVER)
    node.save_state()
    previous = state.read_bytes()
    _pay(node)

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node_module.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        node.stop()  # the last save fails, and says so ...
    assert not node.running  # ... once the node is stopped all the same
    monkeypatch.undo()
    assert state.read_bytes() == previous
    assert not (tmp_path / ".anvil-state.json.saving").exists()


def test_a_node_that_died_is_reported_once_and_not_saved(tmp_path: Path, nodes, caplog):
    state = tmp_path / "anvil-state.json"
    node = nodes(state, poll_interval=0.05)
    assert node.pid is not None
    os.kill(node.pid, 9)
    with caplog.at_level(logging.WARNING, logger="ledger.dev.node"):
        time.sleep(1.0)  # some twenty failing looks
    said = [r for r in caplog.records if "could not be saved" in r.getMessage()]
    assert len(said) == 1
    node.stop()  # nothing to save from a dead node: the file keeps the last save (here: none)
    assert not state.exists()


def _blockhash(rpc: JsonRpc, number: int) -> str:
    """``BLOCKHASH(number)`` as the EVM sees it in the latest block: a call of creation code that returns it
    (PUSH2 number, BLOCKHASH, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN)."""
    return str(rpc.call("eth_call", [{"data": f"0x61{number:04x}4060005260206000f3"}, "latest"]))


def _block_hash(rpc: JsonRpc, number: int) -> str:
    return str(rpc.call("eth_getBlockByNumber", [hex(number), False])["hash"])


def test_a_reloaded_chain_is_grown_until_the_block_before_its_latest_is_one_of_its_own(tmp_path: Path, nodes):
    """anvil loaded from the state file has no state before the loaded block and a made-up BLOCKHASH of it and of
    those before: the block an attested audit reads and names (the one before the latest) must be mined since the
    load. grow_past_load mines the blocks needed, and only those."""
    state = tmp_path / "anvil-state.json"
    fresh = nodes(state, poll_interval=NEVER)
    paid = _pay(fresh)
    _pay(fresh)
    fresh.grow_past_load()  # a new chain: nothing to do
    loaded = int(JsonRpc(fresh.url).call("eth_blockNumber", []), 16)
    assert fresh.loaded_block is None and loaded == 2
    fresh.stop()

    node = nodes(state, poll_interval=NEVER)
    rpc = JsonRpc(node.url)
    assert node.loaded_block == loaded
    # what the resumed run's demo audit ran into, then what its attestation would have: anvil's two faults
    with pytest.raises(RpcError, match="BlockOutOfRange"):
        rpc.call("eth_getBalance", [paid, hex(loaded - 1)])
    rpc.call("evm_mine", [])
    assert _blockhash(rpc, loaded) != _block_hash(rpc, loaded)

    node.grow_past_load()  # one block was mined since the load: one more
    latest = int(rpc.call("eth_blockNumber", []), 16)
    assert latest == loaded + 2
    assert int(rpc.call("eth_getBalance", [paid, hex(latest - 1)]), 16) == 12345
    assert _blockhash(rpc, latest - 1) == _block_hash(rpc, latest - 1)
    node.grow_past_load()  # grown far enough: nothing more
    assert int(rpc.call("eth_blockNumber", []), 16) == latest


def test_a_node_without_a_state_file_cannot_save(nodes):
    with AnvilNode() as plain:
        assert plain.saver is None
        with pytest.raises(NodeUnavailable, match="keeps no state file"):
            plain.save_state()


def test_the_saver_refuses_a_node_that_does_not_answer(tmp_path: Path):
    with pytest.raises(NodeUnavailable):
        StateSaver("http://127.0.0.1:1", tmp_path / "anvil-state.json").start()
