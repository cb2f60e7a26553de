"""Run a local anvil node (Foundry's JSON-RPC chain) as a child process, with state kept on disk if asked.

The state file is written by this process, never by anvil (it is started with ``--load-state`` only, so nothing else
writes the file and no two writers race on it): a :class:`StateSaver` asks anvil for its state (``anvil_dumpState``)
when the chain's head has changed — polled with one cheap call every few seconds, and at most once every
``save_interval`` seconds so that a busy chain is not dumped continuously — and once more when the node is stopped.
An idle chain costs one small request every few seconds and no disk write at all. Each save replaces the file whole
or not at all (temporary file, fsync, rename, fsync of the directory), so a crash mid-save leaves the previous state.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Self

from ledger.chain.rpc import JsonRpc, RetryPolicy
from ledger.errors import LedgerError, NodeUnavailable
from ledger.files import replacing

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]

#: seconds between two looks at the chain's head (one small request: ``eth_getBlockByNumber``)
STATE_POLL_SECONDS = 2.0
#: the least seconds between two saves of a changing chain: a save serialises the whole state (about 144 MB for the
#: demo city), so a busy chain is saved this often, an idle one never; what a crash (not a stop) may lose
STATE_SAVE_SECONDS = 10.0

#: anvil's well-known development mnemonic ("test test … junk") account 0; funded on every fresh anvil chain.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def anvil_binary() -> str:
    """anvil from CIVIC_ANVIL, else the pinned npm package, else PATH."""
    configured = os.environ.get("CIVIC_ANVIL")
    candidates = [configured] if configured else []
    candidates += [str(ROOT / "node_modules" / ".bin" / "anvil"), shutil.which("anvil") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise NodeUnavailable(
        "anvil not found: run `npm ci` (it ships in @foundry-rs/anvil-linux-amd64) or set CIVIC_ANVIL"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StateSaver:
    """Keeps `path` holding the state of the anvil at `url`: saved when the chain's head changed since the last save
    (looked at every `poll_interval` seconds, saved at most every `save_interval`), and by :meth:`save` (which
    :meth:`stop` calls). The head is the latest block's number and hash, so a chain reverted to a snapshot and grown
    back to the same height counts as changed too."""

    def __init__(self, url: str, path: Path, *, poll_interval: float = STATE_POLL_SECONDS,
                 save_interval: float = STATE_SAVE_SECONDS) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self.save_interval = save_interval
        # No retries: the next poll is the retry. A dump of a large state takes seconds, hence the long read timeout.
        self._rpc = JsonRpc(url, timeout=(2.0, 300.0), policy=RetryPolicy(max_retries=0))
        self._lock = threading.Lock()  # one look-and-save at a time (the thread's, or a caller's)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_head: tuple[int, str] | None = None
        self._saved_at = float("-inf")
        self._failing = False
        #: saves done (for tests and the idle benchmark)
        self.saves = 0

    @property
    def temporary(self) -> Path:
        """Where a save is written before it replaces the file (one name: a save killed midway leaves at most this)."""
        return self.path.with_name(f".{self.path.name}.saving")

    def start(self) -> StateSaver:
        """Take the node's head as saved (it was just loaded from the file, or the chain is new) and start looking."""
        self.temporary.unlink(missing_ok=True)  # what a save killed midway left
        try:
            self._saved_head = self._head()
        except LedgerError:
            self._rpc.close()
            raise
        self._thread = threading.Thread(target=self._run, name="anvil-state-saver", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, save: bool = True) -> None:
        """Stop looking; with `save`, save the state once more (whether or not the head moved: a clean stop keeps
        everything the node holds). Without it (a crash), the file keeps the last save."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            if save:
                self.save()
        finally:
            self._rpc.close()

    def save(self) -> None:
        """Save the node's state now: :class:`~ledger.errors.NodeUnavailable` when the node does not answer,
        :class:`~ledger.errors.LedgerError` when its dump is damaged, ``OSError`` when the file cannot be written (the
        file then keeps the last save, whole)."""
        with self._lock:
            self._save(self._head())

    def save_if_changed(self) -> bool:
        """One look: save when the head moved since the last save and `save_interval` has passed since it."""
        with self._lock:
            head = self._head()
            if head == self._saved_head or time.monotonic() - self._saved_at < self.save_interval:
                return False
            self._save(head)
            return True

    def _run(self) -> None:
        while not self._stopped.wait(self.poll_interval):
            try:
                self.save_if_changed()
            except (LedgerError, OSError) as exc:
                # Said once per failing streak (a stopped node or a full disk would repeat it every poll); the file
                # keeps the last good save meanwhile, and the next look tries again.
                if not self._failing:
                    log.warning("the chain state could not be saved to %s: %s; trying again", self.path, exc)
                self._failing = True
            else:
                self._failing = False

    def _head(self) -> tuple[int, str]:
        block = self._rpc.call("eth_getBlockByNumber", ["latest", False])
        return int(block["number"], 16), str(block["hash"])

    def _save(self, head: tuple[int, str]) -> None:
        """Dump the state (anvil answers it gzip-compressed, hex-encoded) and write it as the JSON anvil loads,
        replacing the file whole. `head`, read before the dump, is what counts as saved: a block that lands during
        the dump makes the next look save again."""
        dumped = self._rpc.call("anvil_dumpState", [])
        try:
            compressed = bytes.fromhex(str(dumped).removeprefix("0x"))
        except ValueError:
            raise LedgerError("anvil_dumpState answered something that is not hex-encoded") from None
        self._write(compressed)
        self._saved_head, self._saved_at = head, time.monotonic()
        self.saves += 1

    def _write(self, compressed: bytes) -> None:
        with replacing(self.path, self.temporary) as out, gzip.GzipFile(fileobj=io.BytesIO(compressed)) as state:
            # Decompressed as it is written (never the whole state in memory); a truncated or damaged dump raises
            # here, before the file is replaced.
            try:
                shutil.copyfileobj(state, out, 1 << 20)
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                raise LedgerError(f"anvil_dumpState answered a damaged state ({exc})") from None


class LocalNode:
    """What a node run here as a child process shares, whichever implementation (:class:`AnvilNode`,
    ``ledger.dev.hardhat_node.HardhatNode``): a loopback port (refused when busy), the process started in a session
    of its own with its output appended to `log_path`, readiness by its JSON-RPC answer, stop (SIGTERM, then SIGKILL)
    and kill."""

    #: the node's name in messages
    name = "the node"

    def __init__(self, port: int | None, chain_id: int, extra_args: list[str] | None, log_path: Path | None) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self.extra_args = extra_args or []
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self, args: list[str], timeout: float, *, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> int:
        """Start `args` and wait until it answers ``eth_chainId`` (returned); on a timeout it is stopped."""
        # Refuse a busy port up front: otherwise whatever already answers there would look like our node.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR: a port whose last connections linger in TIME_WAIT is free to listen on again; a live
            # listener still makes the bind fail.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise NodeUnavailable(f"port {self.port} on 127.0.0.1 is already in use") from exc
        log = open(self.log_path, "ab") if self.log_path else None
        try:
            self._process = subprocess.Popen(args, cwd=cwd, env=env, stdout=log or subprocess.DEVNULL,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log is not None:
                log.close()  # the child holds its own copy
        hint = f"; see {self.log_path}" if self.log_path else ""
        deadline = time.monotonic() + timeout
        node = JsonRpc(self.url, timeout=1, policy=RetryPolicy(max_retries=0))
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise NodeUnavailable(f"{self.name} exited with code {self._process.returncode} at start "
                                          f"({' '.join(args)}){hint}")
                try:
                    return int(node.call("eth_chainId", []), 16)
                except LedgerError:  # not answering yet (NodeUnavailable), or not as a node should (RpcError)
                    time.sleep(0.05)
        finally:
            node.close()
        self._terminate(timeout=10.0)
        raise NodeUnavailable(f"{self.name} did not answer on {self.url} within {timeout} s{hint}")

    def _terminate(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node (SIGTERM; SIGKILL after `timeout`)."""
        self._terminate(timeout)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        """The node process's id while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        assert self._process is not None
        return self._process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> Self:
        raise NotImplementedError


class AnvilNode(LocalNode):
    """A loopback anvil. With `state_path`, the chain is loaded from that file at start and saved to it by a
    :class:`StateSaver` while it runs (when it changed) and at :meth:`stop` (survives restarts)."""

    name = "anvil"

    def __init__(
        self,
        port: int | None = None,
        state_path: Path | None = None,
        chain_id: int = 31337,
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
        save_interval: float = STATE_SAVE_SECONDS,
        poll_interval: float = STATE_POLL_SECONDS,
    ) -> None:
        super().__init__(port, chain_id, extra_args, log_path)
        self.state_path = state_path
        self.save_interval = save_interval
        self.poll_interval = poll_interval
        #: what keeps `state_path` up to date while the node runs (None without a state file, or when stopped)
        self.saver: StateSaver | None = None
        #: the block the chain was loaded at from `state_path` (None for a new chain): what anvil knows of it and of
        #: the blocks before it is less than of those mined since (:meth:`grow_past_load`)
        self.loaded_block: int | None = None

    def start(self, timeout: float = 20.0) -> Self:
        args = [anvil_binary(), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(self.chain_id)]
        loads = self.state_path is not None and self.state_path.exists()
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            # Load only: the StateSaver writes the file (not --state/--dump-state, which would also write it at
            # exit, racing the saver; nor --state-interval, which rewrites the whole state every interval however
            # idle the chain). --load-state refuses a missing file: a new chain starts empty.
            if loads:
                args += ["--load-state", str(self.state_path)]
        self._launch([*args, *self.extra_args], timeout)
        if self.state_path is not None:
            self._start_saver(self.state_path, loaded=loads)
        return self

    def _start_saver(self, state_path: Path, *, loaded: bool) -> None:
        """Note the block the chain was `loaded` at, if it was, and start the saver."""
        try:
            self.loaded_block = int(self._call("eth_blockNumber", []), 16) if loaded else None
            self.saver = StateSaver(self.url, state_path, poll_interval=self.poll_interval,
                                    save_interval=self.save_interval).start()
        except BaseException:
            self.kill()  # a node whose state would not be saved is not left running
            raise

    def _call(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call to the node, not retried (a retried ``anvil_mine`` could mine twice)."""
        rpc = JsonRpc(self.url, timeout=10, policy=RetryPolicy(max_retries=0))
        try:
            return rpc.call(method, params)
        finally:
            rpc.close()

    def grow_past_load(self) -> None:
        """Mine empty blocks, if need be, until the block before the latest is one mined since the chain was loaded
        from the state file (nothing to do for a new chain, or one grown far enough).

        What reads the chain at the block before the latest and names it — an attested audit
        (:func:`ledger.audit.attest.attestable_block`) — needs that block's state and its hash as the EVM sees it. anvil
        loaded from a state file holds no state of the blocks before the loaded one (foundry-rs/foundry#8518: a call
        or ``eth_getCode`` there answers ``BlockOutOfRangeError``), and its ``BLOCKHASH`` of the loaded block or an
        earlier one is ``keccak256`` of the number's decimal digits, not the block's hash (foundry-rs/foundry#15167,
        fixed after the pinned anvil), so the ledger would refuse an attestation naming one. Not done by
        :meth:`start`: a demo city's load resumed on the reloaded chain sets its own block times, and a block at the
        current time would move the rest of its history to now."""
        if self.loaded_block is None:
            return
        missing = self.loaded_block + 2 - int(self._call("eth_blockNumber", []), 16)
        if missing > 0:
            self._call("anvil_mine", [hex(missing)])

    def save_state(self) -> None:
        """Save the chain's state to `state_path` now, whether or not it changed."""
        if self.saver is None:
            raise NodeUnavailable("this anvil keeps no state file, or it is not running")
        self.saver.save()

    def stop(self, timeout: float = 10.0) -> None:
        """Save the state (with `state_path`), then stop the node (SIGTERM)."""
        saver, self.saver = self.saver, None
        try:
            if saver is not None:
                # The last save: everything the node holds now. If it fails (the node died, the disk is full), the
                # file keeps the previous save and the error is raised once the node is stopped.
                saver.stop(save=self.running)
        finally:
            self._terminate(timeout)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would: the state file keeps the last save."""
        saver, self.saver = self.saver, None
        if saver is not None:
            saver.stop(save=False)
        super().kill()
