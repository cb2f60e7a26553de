"""The one JSON-RPC client and retry policy (ledger.chain.rpc), against a real HTTP server on loopback that answers
as a misbehaving node would (tests.support.hostile). The indexer's, writer's and auditor's fault tests cover them
through their callers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from ledger.audit.errors import CannotAudit
from ledger.audit.rpc import Rpc
from ledger.chain.rpc import JsonRpc, RangeTooLarge, RetryPolicy, RpcError, retry_after_seconds, safe_url
from ledger.errors import NodeUnavailable
from tests.support.hostile import Hostile, Route, answer


class Node:
    """A hostile node (``tests.support.hostile``): answers each POST with the next scripted answer, then with a
    result (for a batch, each call's method name)."""

    PATH = "/v3/key"  # a path that, like an API key in it, must never be shown

    def __init__(self) -> None:
        self.script: list[Route] = []
        self.posts = 0
        self.server = Hostile({self.PATH: self._route})
        self.url = self.server.url.replace("http://", "http://user:secret@") + self.PATH

    def _route(self, h: BaseHTTPRequestHandler) -> None:
        payload = json.loads(h.rfile.read(int(h.headers.get("Content-Length", 0))))
        self.posts += 1
        if self.script:
            self.script.pop(0)(h)
        elif isinstance(payload, list):
            answer(200, json.dumps([{"jsonrpc": "2.0", "id": p["id"], "result": p["method"]} for p in payload])
                   .encode())(h)
        else:
            answer(200, json.dumps({"jsonrpc": "2.0", "id": payload["id"], "result": "0x1"}).encode())(h)

    def then(self, status: int, body: Any = b"", **headers: str) -> Node:
        self.script.append(answer(status, body if isinstance(body, bytes) else json.dumps(body).encode(), **headers))
        return self


@pytest.fixture
def node() -> Iterator[Node]:
    n = Node()
    yield n
    n.server.close()


def error(code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}


def client(node: Node, sleeps: list[float], retries: int = 3, **kwargs: Any) -> JsonRpc:
    return JsonRpc(node.url, sleep=sleeps.append, policy=RetryPolicy(max_retries=retries, backoff=0.1), **kwargs)


def test_transient_failures_are_retried_by_the_policy_and_retry_after_is_honoured(node: Node) -> None:
    node.then(503).then(429, Retry_After="7").then(200, b"not json").then(200, error(-32005, "rate limit reached"))
    sleeps: list[float] = []
    rpc = client(node, sleeps, retries=4)
    assert rpc.call("eth_blockNumber", []) == "0x1"
    assert len(sleeps) == 4 == rpc.retries and rpc.requests == 5 == node.posts
    assert sleeps[1] == 7.0 and all(0 <= s <= 0.8 for s in sleeps[:1] + sleeps[2:])


def test_a_node_that_stays_down_is_the_callers_unavailable_error_without_its_credentials(node: Node) -> None:
    for _ in range(4):
        node.then(502)
    with pytest.raises(NodeUnavailable, match="eth_blockNumber failed 4 times, last with HTTP 502") as refused:
        client(node, []).call("eth_blockNumber", [])
    assert "secret" not in str(refused.value) and "/v3/key" not in str(refused.value)
    for _ in range(4):
        node.then(502)
    with pytest.raises(CannotAudit, match="cannot reach the JSON-RPC node"):
        Rpc(node.url, retries=3).call("eth_blockNumber", [])


def test_what_a_retry_cannot_fix_is_not_retried(node: Node) -> None:
    sleeps: list[float] = []
    rpc = client(node, sleeps)
    node.then(404, b"no such path")
    with pytest.raises(NodeUnavailable, match="answered HTTP 404"):
        rpc.call("eth_blockNumber", [])
    node.then(302, Location="http://elsewhere.example/rpc")
    with pytest.raises(NodeUnavailable, match="redirects to http://elsewhere.example: redirects are not followed"):
        rpc.call("eth_blockNumber", [])
    node.then(400, error(-32602, "invalid params"))  # a JSON-RPC error with a 4xx status is an answer
    with pytest.raises(RpcError, match="invalid params") as refused:
        rpc.call("eth_call", [])
    assert not refused.value.too_large
    assert sleeps == [] and rpc.retries == 0


def test_a_log_query_refused_as_too_large_is_said_so_whatever_the_wording(node: Node) -> None:
    rpc = client(node, [])
    for refusal in (error(-32005, "query returned more than 10000 results"),
                    error(-32000, "block range is too large"), error(-32602, "exceed maximum block range: 5000")):
        node.then(200, refusal)
        with pytest.raises(RangeTooLarge) as refused:
            rpc.call("eth_getLogs", [{}])
        assert refused.value.too_large
    node.then(413)
    with pytest.raises(RangeTooLarge):
        rpc.call("eth_getLogs", [{}])


def test_batches_keep_their_order_in_chunks(node: Node) -> None:
    rpc = client(node, [], chunk=2)
    calls = [(f"m{i}", []) for i in range(5)]
    assert rpc.batch(calls) == [f"m{i}" for i in range(5)]
    assert node.posts == 3
    assert rpc.batch(calls, chunk=5) == [f"m{i}" for i in range(5)] and node.posts == 4
    assert rpc.batch([]) == []


def test_the_policy() -> None:
    policy = RetryPolicy(max_retries=2, backoff=1.0, max_backoff=3.0, max_retry_after=10.0)
    assert all(0 <= policy.delay(n) <= min(3.0, 2 ** (n - 1)) for n in range(1, 8) for _ in range(20))
    assert policy.delay(1, 30.0) == 10.0 and policy.delay(5, 2.5) == 2.5
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        raise TimeoutError("slow")

    with pytest.raises(NodeUnavailable, match="3 attempts"):
        policy.run("read", flaky, lambda exc: 0.0 if isinstance(exc, TimeoutError) else None,
                   lambda exc, n: NodeUnavailable(f"{n} attempts"), sleep=lambda s: None)
    assert len(calls) == 3
    with pytest.raises(KeyError):  # not transient: raised as it is, at once
        policy.run("read", lambda: {}["x"], lambda exc: None, lambda exc, n: NodeUnavailable("x"))
    assert retry_after_seconds("120") == 120.0 and retry_after_seconds("") == 0.0
    assert safe_url("https://user:pw@node.example:8545/v3/KEY?x=1") == "https://node.example:8545"
