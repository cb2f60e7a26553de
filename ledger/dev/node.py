"""Run a local anvil node (Foundry's JSON-RPC chain) as a child process, with state kept on disk if asked."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ledger.chain.rpc import JsonRpc, RetryPolicy
from ledger.errors import LedgerError, NodeUnavailable

ROOT = Path(__file__).resolve().parents[2]

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


class AnvilNode:
    """A loopback anvil. With `state_path`, the chain is loaded from and saved to that file (survives restarts)."""

    def __init__(
        self,
        port: int | None = None,
        state_path: Path | None = None,
        chain_id: int = 31337,
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.state_path = state_path
        self.chain_id = chain_id
        self.extra_args = extra_args or []
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> AnvilNode:
        # Refuse a busy port up front: otherwise whatever already answers there would look like our node.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR: a port whose last connections linger in TIME_WAIT is free to listen on again; a live
            # listener still makes the bind fail.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise NodeUnavailable(f"port {self.port} on 127.0.0.1 is already in use") from exc
        args = [anvil_binary(), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(self.chain_id)]
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            # --state loads the file at start and writes it at exit; the interval also saves it while running,
            # so a crash loses at most a few seconds.
            args += ["--state", str(self.state_path), "--state-interval", "2"]
        args += self.extra_args
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        node = JsonRpc(self.url, timeout=1, policy=RetryPolicy(max_retries=0))
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise NodeUnavailable(
                        f"anvil exited with code {self._process.returncode} at start ({' '.join(args)})"
                    )
                try:
                    node.call("eth_chainId", [])
                    return self
                except LedgerError:  # not answering yet (NodeUnavailable), or not as a node should (RpcError)
                    pass
                time.sleep(0.05)
        finally:
            node.close()
        self.stop()
        raise NodeUnavailable(f"anvil did not answer on {self.url} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGTERM lets anvil write its --state file before it exits.
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
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        assert self._process is not None
        return self._process.wait()

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
