"""Fault injection for the writer's tests: a JSON-RPC proxy that misbehaves on demand, a signer that records every
transaction it signs, and a writer run in a child process that can be SIGKILLed at a chosen point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import requests
from eth_account import Account
from eth_account.account_local_actions import AccountLocalActions
from eth_account.signers.local import LocalAccount

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Fault:
    """One misbehaviour, applied to the next `times` requests whose method matches (None: any method)."""

    action: str  # "status": answer `status` without forwarding; "hang": wait `seconds`, then close, not forwarding;
    # "lose": forward to the node, then close without answering (the node acted, the client never hears);
    # "reply": answer `reply` (a JSON-RPC result or error object) as a different node would, not forwarding
    method: str | None = None
    times: int = 1
    status: int = 500
    retry_after: str | None = None
    seconds: float = 2.0
    #: only once this other fault has been used up (to script "the answer is lost, then the node goes down")
    after: Fault | None = None
    reply: dict[str, Any] | None = None


@dataclass
class Call:
    at: float
    method: str
    outcome: str  # "ok", "status 500", "hang", "lost"


@dataclass
class FaultProxy:
    """An HTTP proxy in front of a JSON-RPC node (stdlib ThreadingHTTPServer in a thread)."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy._handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fault-proxy", daemon=True
        )
        self._session = requests.Session()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # a bound AF_INET socket's name; typeshed also allows the bytes one may bind
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuring faults

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        method: str | None = None,
        retry_after: str | None = None,
        after: Fault | None = None,
    ) -> Fault:
        return self.add(Fault("status", method, times, status=status, retry_after=retry_after, after=after))

    def hang(self, *, times: int = 1, method: str | None = None, seconds: float = 2.0) -> Fault:
        return self.add(Fault("hang", method, times, seconds=seconds))

    def lose_answer(
        self, *, times: int = 1, method: str | None = "eth_sendRawTransaction", seconds: float = 0.0
    ) -> Fault:
        """Forward, let the node act, then give the client no answer (after `seconds`: a timeout if long enough)."""
        return self.add(Fault("lose", method, times, seconds=seconds))

    def reply(self, method: str, reply: dict[str, Any], *, times: int = 1) -> Fault:
        """Answer `method` with `reply` (``{"result": ...}`` or ``{"error": ...}``), as another node software would."""
        return self.add(Fault("reply", method, times, reply=reply))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def methods(self, outcome: str | None = None) -> list[str]:
        with self._lock:
            return [c.method for c in self.calls if outcome is None or c.outcome == outcome]

    # -- serving

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (fault.after is not None and fault.after.times > 0) or fault.times <= 0:
                    continue
                if fault.method is None or fault.method == method:
                    fault.times -= 1
                    return fault
        return None

    def _record(self, method: str, outcome: str) -> None:
        with self._lock:
            self.calls.append(Call(time.monotonic(), method, outcome))

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        request: Any = None
        try:
            request = json.loads(body)
            method = request[0]["method"] if isinstance(request, list) else request["method"]
        except (ValueError, KeyError, IndexError, TypeError):
            method = "?"
        fault = self._take_fault(method)
        if fault is not None and fault.action == "status":
            self._record(method, f"status {fault.status}")
            payload = b'{"error": "injected fault"}'
            handler.send_response(fault.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            if fault.retry_after is not None:
                handler.send_header("Retry-After", fault.retry_after)
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if fault is not None and fault.action == "reply":
            self._record(method, "replied")
            request_id = request.get("id") if isinstance(request, dict) else None
            payload = json.dumps({"jsonrpc": "2.0", "id": request_id, **(fault.reply or {})}).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if fault is not None and fault.action == "hang":
            self._record(method, "hang")
            time.sleep(fault.seconds)
            handler.close_connection = True
            return
        try:
            answer = self._session.post(
                self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=60
            )
        except requests.RequestException:
            # The node is down: answer as a reverse proxy does.
            self._record(method, "status 502")
            handler.send_response(502)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if fault is not None and fault.action == "lose":
            self._record(method, "lost")
            time.sleep(fault.seconds)
            handler.close_connection = True  # closed without a status line: the client sees a dropped connection
            return
        self._record(method, "ok")
        handler.send_response(answer.status_code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer.content)))
        handler.end_headers()
        handler.wfile.write(answer.content)


class RecordingSigner(LocalAccount):
    """A LocalAccount that remembers the nonce and calldata of every transaction it signs."""

    signed: list[tuple[int, bytes]]

    @classmethod
    def of(cls, account: LocalAccount) -> RecordingSigner:
        # the class itself, as eth-account passes it (its methods are combomethods): no instance is needed
        signer = cls(account._key_obj, cast(AccountLocalActions, Account))
        signer.signed = []
        return signer

    def sign_transaction(self, transaction_dict: Any, blobs: Any = None) -> Any:
        data = transaction_dict.get("data", b"")
        payload = bytes(data) if isinstance(data, bytes) else bytes.fromhex(data[2:])
        self.signed.append((int(transaction_dict["nonce"]), payload))
        return super().sign_transaction(transaction_dict, blobs)

    def assert_each_nonce_signed_once(self) -> None:
        nonces = [nonce for nonce, _ in self.signed]
        assert len(nonces) == len(set(nonces)), f"a nonce was signed twice: {sorted(nonces)}"
        payloads = [data for _, data in self.signed]
        assert len(payloads) == len(set(payloads)), "the same entries were signed into two transactions"

    def __repr__(self) -> str:
        return f"RecordingSigner(address={self.address})"


# ---------------------------------------------------------------------- a writer in a child process

WRITER_SCRIPT = r"""
import json, sys, time
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import load_key
from ledger.writer.outbox import Outbox, record_from_json
from ledger.writer.sender import Writer

cfg = json.loads(sys.argv[1])
calls = {"n": 0}
original = Writer._broadcast

def broadcast(self, flight):
    # Park the process at the chosen point of the chosen transaction; the parent SIGKILLs it there.
    calls["n"] += 1
    if cfg["point"] == "before_broadcast" and calls["n"] == cfg["at"]:
        print("READY", flush=True)
        time.sleep(600)
    original(self, flight)
    if cfg["point"] == "after_broadcast" and calls["n"] == cfg["at"]:
        print("READY", flush=True)
        time.sleep(600)

Writer._broadcast = broadcast
ledger = Ledger(Chain.connect(cfg["url"]), cfg["ledger"])
writer = Writer(ledger, load_key(env_var="CIVIC_TEST_AGENCY_KEY"), Outbox(cfg["outbox"]),
                batch_size=cfg["batch_size"], max_in_flight=cfg["in_flight"])
writer.submit_many([record_from_json(t, r) for t, r in cfg["records"]])
print("SUBMITTED", flush=True)
writer.flush()
print("DONE", flush=True)
"""


def start_writer_process(
    *,
    url: str,
    ledger: str,
    outbox: Path,
    signer: LocalAccount,
    records: list[tuple[str, str]],
    point: str = "none",
    at: int = 1,
    batch_size: int = 10,
    in_flight: int = 4,
) -> subprocess.Popen[str]:
    """Run a writer in a child process: it submits `records` ((type name, JSON) pairs), then flushes. With `point`
    "before_broadcast" or "after_broadcast" it prints READY and waits at that point of its `at`-th broadcast."""
    cfg = {"url": url, "ledger": ledger, "outbox": str(outbox), "records": records, "point": point, "at": at,
           "batch_size": batch_size, "in_flight": in_flight}
    env = dict(os.environ, CIVIC_TEST_AGENCY_KEY=signer.key.hex(), PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, json.dumps(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )


def wait_for_line(process: subprocess.Popen[str], expected: str, timeout: float = 60.0) -> None:
    """Read the child's stdout until a line equals `expected`; fail (with its stderr) if it dies or times out."""
    assert process.stdout is not None
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, ""):
            if line.strip() == expected:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if found.is_set():
        return
    process.kill()
    _, err = process.communicate(timeout=10)
    raise AssertionError(f"writer process did not print {expected!r}; stderr:\n{(err or '')[-4000:]}")
