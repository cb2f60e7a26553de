"""A JSON-RPC fault proxy for tests: forwards to a real node (anvil) and injects faults on chosen methods.

It is a stdlib ``ThreadingHTTPServer`` in a daemon thread. Rules are consulted in the order added; each matches a
JSON-RPC method (and optionally its params) a number of times. For a batch request, HTTP-level faults (status
codes, timeouts) apply to the whole request when any call in it matches; answer-level faults (JSON-RPC errors,
rewritten results) apply to the matching calls only.

    with FaultProxy(anvil.url) as proxy:
        proxy.add("eth_getLogs", status(503), times=2)
        proxy.add("eth_getLogs", rpc_error(-32005, "query returned more than 10000 results"),
                  times=None, when=lambda params: span(params) > 4)
        chain = Chain.connect(proxy.url)
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


@dataclass
class Fault:
    """What to do instead of (or after) forwarding a call."""

    #: answer with this HTTP status (and headers) instead of forwarding
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: the body sent with `status`
    body: bytes = b'{"error": "injected"}'
    #: wait this long before answering (longer than the client's timeout: the client sees a timeout)
    delay: float = 0.0
    #: answer the call with this JSON-RPC error object instead of forwarding it
    error: dict[str, Any] | None = None
    #: forward, then replace the call's result by transform(result)
    transform: Callable[[Any], Any] | None = None

    @property
    def whole_request(self) -> bool:
        return self.status is not None or self.delay > 0


def status(code: int, **headers: str) -> Fault:
    return Fault(status=code, headers={k.replace("_", "-"): v for k, v in headers.items()})


def timeout(seconds: float) -> Fault:
    return Fault(delay=seconds)


def rpc_error(code: int, message: str) -> Fault:
    return Fault(error={"code": code, "message": message})


def rewrite(transform: Callable[[Any], Any]) -> Fault:
    return Fault(transform=transform)


def span(params: list[Any]) -> int:
    """Number of blocks an eth_getLogs call asks for."""
    query = params[0]
    return int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1


@dataclass
class _Rule:
    method: str
    fault: Fault
    times: int | None  # None: forever
    when: Callable[[list[Any]], bool] | None
    hits: int = 0

    def matches(self, call: dict[str, Any]) -> bool:
        if call.get("method") != self.method or (self.times is not None and self.hits >= self.times):
            return False
        return self.when is None or bool(self.when(call.get("params") or []))


class FaultProxy:
    """Forwards JSON-RPC over HTTP to `upstream`, injecting the faults added with :meth:`add`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[_Rule] = []
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    code, headers, payload = proxy._handle(json.loads(body))
                except Exception as exc:  # noqa: BLE001  a broken test rule must not hang the client
                    code, headers, payload = 500, {}, json.dumps({"proxy error": repr(exc)}).encode()
                try:
                    self.send_response(code)
                    for key, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout fault)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # a bound AF_INET socket's name; typeshed also allows the bytes one may bind
        return f"http://{host}:{port}"

    def add(
        self, method: str, fault: Fault, *, times: int | None = 1, when: Callable[[list[Any]], bool] | None = None
    ) -> None:
        """Inject `fault` on the next `times` calls of `method` (for which `when(params)` holds); None: forever."""
        with self._lock:
            self.rules.append(_Rule(method, fault, times, when))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the work

    def _match(self, call: dict[str, Any], whole: bool) -> Fault | None:
        with self._lock:
            for rule in self.rules:
                if rule.fault.whole_request == whole and rule.matches(call):
                    rule.hits += 1
                    self.faults[rule.method] += 1
                    return rule.fault
        return None

    def _handle(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        calls = request if isinstance(request, list) else [request]
        with self._lock:
            self.calls.update(str(c.get("method")) for c in calls)
        for call in calls:
            fault = self._match(call, whole=True)
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status is not None:
                    return fault.status, fault.headers, fault.body
                break
        answers: list[Any] = []
        forward: list[dict[str, Any]] = []
        plan: list[tuple[dict[str, Any], Fault | None]] = []
        for call in calls:
            fault = self._match(call, whole=False)
            plan.append((call, fault))
            if fault is None or fault.error is None:
                forward.append(call)
        upstream: dict[Any, Any] = {}
        if forward:
            answer = self._session.post(self.upstream, json=forward, timeout=60).json()
            upstream = {a.get("id"): a for a in answer}
        for call, fault in plan:
            if fault is not None and fault.error is not None:
                answers.append({"jsonrpc": "2.0", "id": call.get("id"), "error": fault.error})
                continue
            answer = dict(upstream[call.get("id")])
            if fault is not None and fault.transform is not None and "result" in answer:
                answer["result"] = fault.transform(answer["result"])
            answers.append(answer)
        out = answers if isinstance(request, list) else answers[0]
        return 200, {}, json.dumps(out).encode()
