"""Run Hardhat's node (``npx hardhat node``, Hardhat 2 on its EDR engine) as a child process: a second node
implementation beside anvil (:class:`ledger.dev.node.AnvilNode`, whose interface this follows), so that the ledger is
tried against more than one node.

It starts offline (it compiles nothing and fetches nothing: ``hardhat.config.js`` pins the compiler to solc-js and
telemetry is off when nobody is asked), in about a second. It keeps no state across restarts. Its chain id is
``hardhat.config.js``'s ``networks.hardhat.chainId``, which reads ``CIVIC_HARDHAT_CHAIN_ID``. Test helpers that go
beyond the standard methods use its ``hardhat_*`` names where anvil has ``anvil_*`` ones (``hardhat_mine``,
``hardhat_setCode``); ``evm_snapshot``, ``evm_revert``, ``evm_mine`` and ``evm_increaseTime`` are the same.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ledger.chain.rpc import JsonRpc, RetryPolicy
from ledger.dev.node import ROOT, free_port
from ledger.errors import LedgerError, NodeUnavailable


def hardhat_binary() -> str:
    """The pinned npm package's ``hardhat`` (it must run from the project, where ``hardhat.config.js`` is)."""
    candidate = ROOT / "node_modules" / ".bin" / "hardhat"
    if candidate.is_file() and shutil.which("node"):
        return str(candidate)
    raise NodeUnavailable("Hardhat not found: run `npm ci` in the project (it pins hardhat 2) with Node 20 on PATH")


class HardhatNode:
    """A loopback Hardhat node on `port` (default: a free one), its output appended to `log_path` if given."""

    def __init__(
        self,
        port: int | None = None,
        chain_id: int = 31337,
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self.extra_args = extra_args or []
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HardhatNode:
        # Refuse a busy port up front: otherwise whatever already answers there would look like our node.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise NodeUnavailable(f"port {self.port} on 127.0.0.1 is already in use") from exc
        args = [hardhat_binary(), "node", "--hostname", "127.0.0.1", "--port", str(self.port), *self.extra_args]
        env = {**os.environ, "CIVIC_HARDHAT_CHAIN_ID": str(self.chain_id),
               # never ask (nobody is there to answer) and so never send: Hardhat reports only with consent
               "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
        log = open(self.log_path, "ab") if self.log_path else None
        try:
            self._process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log or subprocess.DEVNULL,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log is not None:
                log.close()  # the child holds its own copy
        deadline = time.monotonic() + timeout
        node = JsonRpc(self.url, timeout=1, policy=RetryPolicy(max_retries=0))
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise NodeUnavailable(f"Hardhat's node exited with code {self._process.returncode} at start "
                                          f"({' '.join(args)}){self._log_hint()}")
                try:
                    chain_id = int(node.call("eth_chainId", []), 16)
                except LedgerError:  # not answering yet
                    time.sleep(0.05)
                    continue
                if chain_id != self.chain_id:
                    self.stop()
                    raise NodeUnavailable(f"Hardhat's node serves chain id {chain_id}, not {self.chain_id}: does "
                                          "hardhat.config.js's networks.hardhat.chainId read CIVIC_HARDHAT_CHAIN_ID?")
                return self
        finally:
            node.close()
        self.stop()
        raise NodeUnavailable(f"Hardhat's node did not answer on {self.url} within {timeout} s{self._log_hint()}")

    def _log_hint(self) -> str:
        return f"; see {self.log_path}" if self.log_path else ""

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

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

    def __enter__(self) -> HardhatNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
