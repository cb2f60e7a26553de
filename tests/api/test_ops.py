"""The operator's endpoints (``api.routes.ops``): ``/healthz``; ``/readyz`` turning unready when the node stops, the
index falls behind, the database or a batch file goes, and ready again after — on an anvil of the module's own,
stopped and restarted; ``/metrics`` parsed with Prometheus' own parser, with real values; and a client that cannot
make the probes expensive however it asks."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from api import prometheus, readiness
from api.accesslog import JsonLines, WithRequestId
from api.app import create_app
from api.settings import ApiSettings
from ledger.batches import BatchStore, build_batch
from ledger.batches import anchor as anchor_batch
from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode
from ledger.store.db import open_store
from ledger.writer.outbox import Outbox
from tests.support.attestations import checkpoint
from tests.support.batched import life
from tests.support.indexing import index, mine
from tests.support.pool import wait_for
from tests.support.world import World, build_world

#: the index may be this many blocks behind the head in these tests (a few blocks mined make it unready)
MAX_LAG = 5


@dataclass
class OpsWorld:
    """A ledger on an anvil of its own (its state in a file, so the node can stop and start again), with a
    Merkle-anchored batch and an auditor's attestation, indexed into SQLite."""

    node: AnvilNode
    world: World
    settings: ApiSettings
    batch_file: Path
    attested_at: int

    def sync(self) -> None:
        store = open_store(self.settings.store_url)
        try:
            index(self.world, store, confirmations=0, batch_dir=self.settings.batch_directory).sync()
        finally:
            store.close()

    def head(self) -> int:
        return int(self.world.chain.w3.eth.block_number)


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsWorld]:
    tmp = tmp_path_factory.mktemp("ops")
    node = AnvilNode(state_path=tmp / "anvil-state.json").start()
    try:
        world = build_world(Chain.connect(node.url))
        anchored = anchor_batch(world.ledger, world.signer, build_batch(life(world, "ops", 4)),
                                BatchStore(tmp / "batches"))
        auditor = Account.create()
        world.ledger.authorize_auditor(world.governance, auditor.address)
        attestation = checkpoint(world)
        receipt = world.ledger.record_attestation(world.relayer, attestation, auditor.address,
                                                  world.ledger.sign_attestation(auditor.key, attestation))
        attested_at = int(world.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        batch = next((tmp / "batches").iterdir())
        settings = ApiSettings(
            store_url=f"sqlite:///{tmp / 'index.sqlite'}", rpc_url=node.url, contract_address=world.ledger.address,
            chain_id=world.chain.chain_id, data_dir=tmp, ready_max_lag_blocks=MAX_LAG,
        )
        built = OpsWorld(node, world, settings, batch, attested_at)
        built.sync()
        assert anchored.seq >= 0
        yield built
    finally:
        node.stop()


@pytest.fixture
def client(ops: OpsWorld) -> Iterator[TestClient]:
    ops.sync()
    with TestClient(create_app(ops.settings)) as test_client:
        yield test_client


def checks(answer: httpx.Response) -> dict[str, tuple[bool, str]]:
    body = answer.json()
    assert body["status"] == ("ready" if answer.status_code == 200 else "unready")
    return {check["name"]: (check["ok"], check["detail"]) for check in body["checks"]}


def ready(client: TestClient) -> httpx.Response | None:
    answer = client.get("/readyz")
    return answer if answer.status_code == 200 else None


def unready(client: TestClient) -> httpx.Response | None:
    answer = client.get("/readyz")
    return answer if answer.status_code == 503 else None


def families(client: TestClient) -> dict[str, Any]:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(answer.text)}


def value(found: dict[str, Any], name: str, **labels: str) -> float:
    [sample] = [s for f in found.values() for s in f.samples if s.name == name and labels.items() <= s.labels.items()]
    return float(sample.value)


# --- healthz and readyz -----------------------------------------------------------------------------------------------


def test_readyz_is_ready_with_each_check_saying_what_it_found(client: TestClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    found = checks(answer)
    assert found == {
        "database": (True, "the index database answers"),
        "index": (True, f"0 blocks behind the node's head (at most {MAX_LAG})"),
        "batch_files": (True, "the newest 1 indexed batches' files are there"),
    }
    assert client.head("/readyz").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}
    # the operator's endpoints are not the public API's: not in its document
    assert not {"/healthz", "/readyz", "/metrics"} & set(client.get("/openapi.json").json()["paths"])


def test_readyz_turns_unready_when_the_node_stops_and_ready_again_when_it_is_back(
    ops: OpsWorld, client: TestClient
) -> None:
    assert ready(client)
    ops.node.stop()
    try:
        answer = wait_for(lambda: unready(client), "readyz to notice the node stopped", timeout=20)
        ok, detail = checks(answer)["index"]
        assert not ok and detail == "the node does not answer (node unreachable)"
        assert checks(answer)["database"][0] and client.get("/healthz").status_code == 200
    finally:
        ops.node.start()  # the same port and state file: the same chain
    answer = wait_for(lambda: ready(client), "readyz to notice the node is back", timeout=20)
    assert all(ok for ok, _ in checks(answer).values())


def test_readyz_turns_unready_when_the_index_falls_behind_and_ready_again_after_a_sync(
    ops: OpsWorld, client: TestClient
) -> None:
    assert ready(client)
    mine(ops.world, MAX_LAG + 3)
    answer = wait_for(lambda: unready(client), "readyz to notice the index is behind", timeout=20)
    assert checks(answer)["index"] == (False, f"{MAX_LAG + 3} blocks behind the node's head (at most {MAX_LAG})")
    ops.sync()
    wait_for(lambda: ready(client), "readyz to notice the index caught up", timeout=20)


def test_readyz_turns_unready_when_the_database_is_gone_and_healthz_does_not(ops: OpsWorld, client: TestClient) -> None:
    """The index's schema taken away under the running API (its state table renamed), then given back."""
    assert ready(client)
    index_file = ops.settings.store_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(index_file, isolation_level=None)) as db:
        db.execute("ALTER TABLE sync_state RENAME TO sync_state_away")
        try:
            answer = wait_for(lambda: unready(client), "readyz to notice the database is gone", timeout=20)
            assert checks(answer) == {
                "database": (False, "the index database did not answer (OperationalError)"),
                "index": (False, "not checked: the index database did not answer"),
                "batch_files": (False, "not checked: the index database did not answer"),
            }
            assert client.get("/healthz").status_code == 200  # the process serves: no database read
        finally:
            db.execute("ALTER TABLE sync_state_away RENAME TO sync_state")
    wait_for(lambda: ready(client), "readyz to notice the database is back", timeout=20)


def test_readyz_turns_unready_when_a_batch_file_or_the_batch_directory_is_missing(
    ops: OpsWorld, client: TestClient
) -> None:
    assert ready(client)
    away = ops.batch_file.with_name("away")
    ops.batch_file.rename(away)
    try:
        answer = wait_for(lambda: unready(client), "readyz to notice the batch file is missing", timeout=20)
        assert checks(answer)["batch_files"] == (False, "1 of the newest 1 indexed batches' files are not in the "
                                                        "batch directory")
    finally:
        away.rename(ops.batch_file)
    wait_for(lambda: ready(client), "readyz to notice the file is back", timeout=20)
    directory = ops.settings.batch_directory
    directory.rename(directory.with_name("batches-away"))
    try:
        answer = wait_for(lambda: unready(client), "readyz to notice the directory is missing", timeout=20)
        assert checks(answer)["batch_files"] == (False, "the batch directory does not exist")
    finally:
        directory.with_name("batches-away").rename(directory)
    wait_for(lambda: ready(client), "readyz to notice the directory is back", timeout=20)


def test_without_a_node_readyz_does_not_judge_the_head_and_metrics_leave_the_nodes_figures_out(
    ops: OpsWorld,
) -> None:
    with TestClient(create_app(dataclasses.replace(ops.settings, rpc_url=None))) as client:
        answer = client.get("/readyz")
        found = families(client)
    assert answer.status_code == 200
    ok, detail = checks(answer)["index"]
    assert ok and detail.endswith("no node is configured, so the distance from the head is not checked")
    assert value(found, "civic_index_entries") == ops.world.ledger.entry_count()
    for left_out in ("civic_index_lag_blocks", "civic_index_lag_seconds", "civic_node_head_block",
                     "civic_relayer_balance_wei"):
        assert left_out not in found
    assert value(found, "civic_metrics_source_up", source="index") == 1
    assert not [s for s in found["civic_metrics_source_up"].samples if s.labels["source"] == "node"]


# --- metrics ----------------------------------------------------------------------------------------------------------


def test_metrics_carry_the_index_node_outboxes_and_requests_by_route_template(ops: OpsWorld, tmp_path: Path) -> None:
    settings = dataclasses.replace(ops.settings, data_dir=tmp_path, batch_dir=ops.settings.batch_directory)
    # a writer outbox of the command line with one entry waiting (DATA_DIR/outbox/<agency key>.sqlite)
    with Outbox(tmp_path / "outbox" / f"{ops.world.signer.address}.sqlite") as outbox:
        outbox.add(ops.world.opened("waiting"), "waiting-1")
    ops.sync()
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.agency_writes.warm_up()  # the relay, with its two keys
        relayer = app.state.agency_writes.relayer_address
        ops.world.chain.fund(relayer, 3 * 10**18)
        seq = ops.world.ledger.entry_count() - 1
        assert client.get(f"/api/v1/entries/{seq}", params={"email": "alice@example.org"}).status_code == 200
        assert client.get("/api/v1/entries/999999").status_code == 404
        assert client.get("/healthz").status_code == 200
        time.sleep(prometheus.FRESH_FOR)  # past the answer the fixture's sync may have left
        found = families(client)
    head = ops.head()
    state_entries = ops.world.ledger.entry_count()
    assert value(found, "civic_index_entries") == state_entries
    assert value(found, "civic_node_head_block") == head
    assert value(found, "civic_index_lag_blocks") == head - value(found, "civic_index_last_block") >= 0
    assert value(found, "civic_index_lag_seconds") >= 0
    assert value(found, "civic_index_halted") == 0
    assert value(found, "civic_batches_withheld", reason="missing") == 0
    assert value(found, "civic_batches_withheld", reason="impossible") == 0
    age = value(found, "civic_audit_attestation_age_seconds")
    assert abs(age - (time.time() - ops.attested_at)) < 60
    assert value(found, "civic_relayer_balance_wei", key="relayer", address=relayer) == 3 * 10**18
    assert value(found, "civic_outbox_depth", key=ops.world.signer.address) == 1
    assert value(found, "civic_outbox_oldest_age_seconds", key=ops.world.signer.address) > 0
    assert value(found, "civic_outbox_depth", key="relayer") == 0
    for source in ("index", "node", "outboxes"):
        assert value(found, "civic_metrics_source_up", source=source) == 1
    # requests by route template, never the path asked for
    route = "/api/v1/entries/{seq}"
    assert value(found, "civic_http_requests_total", method="GET", route=route, status="200") == 1
    assert value(found, "civic_http_requests_total", method="GET", route=route, status="404") == 1
    assert value(found, "civic_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert value(found, "civic_http_requests_total", route="/healthz") == 1
    labels = {v for f in found.values() for s in f.samples for v in s.labels.values()}
    assert not [v for v in labels if str(seq) == v or "999999" in v or "alice" in v or "testclient" in v]


def test_a_relayers_burn_rate_is_how_fast_its_balance_falls_and_a_top_up_starts_it_again() -> None:
    rate = prometheus.BurnRate(window=3600, min_span=60)
    assert rate.read(0, 10_000) is None
    assert rate.read(30, 9_000) is None  # not yet a minute of readings
    assert rate.read(100, 8_000) == 20.0  # 2,000 wei in 100 s
    assert rate.read(200, 50_000) is None  # topped up: measured afresh
    assert rate.read(300, 49_000) == 10.0
    assert rate.read(4000, 12_000) == pytest.approx(37_000 / 3700)  # from the newest reading a window ago


# --- abuse ------------------------------------------------------------------------------------------------------------

#: tables a probe never reads: the ones the figures are made of (a probe computes no figure, scans no case)
FIGURE_TABLES = ("cases", "case_events", "figure_cells", "figure_values", "figure_points", "filings", "ratings",
                 "disputes", "receipts")


def count_computations(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times readiness and the metrics are worked out from now on (the counts go up as they are)."""
    computed = {"readiness": 0, "metrics": 0}
    check, render = readiness.check, prometheus.ServiceMetrics.render

    def counted_check(*args: Any) -> readiness.Readiness:
        computed["readiness"] += 1
        return check(*args)

    def counted_render(self: prometheus.ServiceMetrics) -> bytes:
        computed["metrics"] += 1
        return render(self)

    monkeypatch.setattr(readiness, "check", counted_check)
    monkeypatch.setattr(prometheus.ServiceMetrics, "render", counted_render)
    return computed


def test_a_client_flooding_the_probes_is_not_refused_and_costs_one_computation_a_moment(
    ops: OpsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exempt from the reads' budget (here one a minute), readyz and metrics are worked out at most once per
    moment however often they are asked, sequentially or all at once, with statements that read no figure table."""
    computed = count_computations(monkeypatch)
    statements: list[str] = []
    app = create_app(dataclasses.replace(ops.settings, read_rate_per_minute=1))
    with TestClient(app) as client:
        assert client.get("/api/v1/chain").status_code == 200
        assert client.get("/api/v1/chain").status_code == 429  # the budget is spent...
        event.listen(app.state.store.engine, "before_cursor_execute",
                     lambda _c, _u, sql, *_: statements.append(" ".join(sql.lower().split())))
        started = time.monotonic()
        answers = [client.get(path).status_code for _ in range(150) for path in ("/readyz", "/metrics", "/healthz")]
        elapsed = time.monotonic() - started
        assert answers == [200] * 450  # ...yet the probes are answered

        async def at_once() -> list[int]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ops") as flood:
                await asyncio.sleep(max(readiness.FRESH_FOR, prometheus.FRESH_FOR))  # what was worked out is stale
                # 30 in flight at once (a client may have 32: ``api.ratelimit``)
                asked = [flood.get(path) for _ in range(15) for path in ("/readyz", "/metrics")]
                return [answer.status_code for answer in await asyncio.gather(*asked)]

        before = dict(computed)
        assert asyncio.run(at_once()) == [200] * 30
    # 15 at once of each: one computation each
    assert computed["readiness"] - before["readiness"] == 1 and computed["metrics"] - before["metrics"] == 1
    # sequentially: once per moment at most
    assert before["readiness"] <= elapsed / readiness.FRESH_FOR + 1
    assert before["metrics"] <= elapsed / prometheus.FRESH_FOR + 1
    probe_statements = [sql for sql in statements if "sync_state" in sql or "batches" in sql or "auditors" in sql]
    assert probe_statements
    assert not [sql for sql in statements for table in FIGURE_TABLES if f" {table} " in f" {sql} "]


def test_a_dead_database_is_reported_by_the_probes_not_raised(tmp_path: Path) -> None:
    """An index whose file is replaced by garbage: the probes answer (503, source down), the process stays healthy."""
    index_file = tmp_path / "index.sqlite"
    settings = ApiSettings(store_url=f"sqlite:///{index_file}", data_dir=tmp_path)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        app.state.store.engine.dispose()  # no connection to the old file
        shutil.copyfile(__file__, index_file)  # not a database
        wait_for(lambda: unready(client), "readyz to notice", timeout=10)
        time.sleep(prometheus.FRESH_FOR)
        found = families(client)
        assert client.get("/healthz").status_code == 200
    assert value(found, "civic_metrics_source_up", source="index") == 0
    assert "civic_index_entries" not in found


# --- attacks (issue 16's attack pass) -----------------------------------------------------------------------------


class GarbageNode:
    """A JSON-RPC "node" on loopback answering every call with what `answers` says for its method (a result, or
    ``body`` for the whole HTTP answer as raw bytes): a node software's bug, a proxy's error page, a lying node."""

    def __init__(self, answers: dict[str, Any], body: bytes | None = None) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                calls = request if isinstance(request, list) else [request]
                answer = node.body if node.body is not None else json.dumps([
                    {"jsonrpc": "2.0", "id": call["id"], "result": node.answers.get(call["method"])} for call in calls
                ] if isinstance(request, list) else {"jsonrpc": "2.0", "id": request["id"],
                                                     "result": node.answers.get(request["method"])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.answers, self.body = answers, body
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> GarbageNode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_a_node_answering_garbage_makes_readyz_unready_and_leaves_the_nodes_figures_out(ops: OpsWorld) -> None:
    """A node whose head is negative (which made a frozen index look 0 blocks behind, so ready) or past any block
    number (whose lag, past a float's range, made every ``/metrics`` scrape fail with a 500), or that answers null,
    the wrong types or an HTML page: ``/readyz`` is 503 naming the node, and ``/metrics`` renders with the node's
    source down and no lag, the index's figures still there."""
    chain_id = hex(ops.world.chain.chain_id)
    huge = "0x" + "f" * 300
    garbage: list[tuple[dict[str, Any], bytes | None]] = [
        ({"eth_chainId": chain_id, "eth_blockNumber": "-0x5",
          "eth_getBlockByNumber": {"number": "-0x5", "timestamp": "0x1"}}, None),
        ({"eth_chainId": chain_id, "eth_blockNumber": huge,
          "eth_getBlockByNumber": {"number": huge, "timestamp": huge}}, None),
        ({"eth_chainId": chain_id, "eth_blockNumber": None, "eth_getBlockByNumber": None}, None),
        ({"eth_chainId": 31337, "eth_blockNumber": ["0x1"], "eth_getBlockByNumber": {"number": 7}}, None),
        ({}, b"<html><body>502 Bad Gateway</body></html>"),
    ]
    for answers, body in garbage:
        with GarbageNode(answers, body) as node, TestClient(
            create_app(dataclasses.replace(ops.settings, rpc_url=node.url))
        ) as client:
            answer = client.get("/readyz")
            assert answer.status_code == 503, (answers, answer.text)
            ok, detail = checks(answer)["index"]
            assert not ok and "node" in detail, detail
            found = families(client)
        assert value(found, "civic_metrics_source_up", source="node") == 0, answers
        assert value(found, "civic_metrics_source_up", source="index") == 1
        assert value(found, "civic_index_entries") == ops.world.ledger.entry_count()
        for left_out in ("civic_index_lag_blocks", "civic_index_lag_seconds", "civic_node_head_block"):
            assert left_out not in found, (answers, left_out)


def test_a_halted_index_is_unready_even_at_the_head_and_metrics_say_halted(ops: OpsWorld, client: TestClient) -> None:
    """An operator cannot have the API report ready while indexing is halted (a reorganisation deeper than the
    confirmation depth): not even when the index is at the node's head. ``civic_index_halted`` says 1."""
    assert ready(client)
    index_file = ops.settings.store_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(index_file, isolation_level=None)) as db:
        db.execute("UPDATE sync_state SET halted_reason = 'chain reorganisation at block 3'")
        try:
            answer = wait_for(lambda: unready(client), "readyz to notice the halt", timeout=20)
            assert checks(answer)["index"] == (False, "indexing is halted: chain reorganisation at block 3")
            time.sleep(prometheus.FRESH_FOR)
            assert value(families(client), "civic_index_halted") == 1
        finally:
            db.execute("UPDATE sync_state SET halted_reason = NULL")
    wait_for(lambda: ready(client), "readyz to notice the halt cleared", timeout=20)


def test_index_lag_is_the_nodes_head_minus_the_index_never_the_indexs_own_idea(ops: OpsWorld,
                                                                               client: TestClient) -> None:
    """A frozen index (no sync while the chain moves) shows in ``civic_index_lag_blocks`` exactly: the head is the
    node's, asked at each scrape, not anything the index stores; and ``/readyz`` turns unready past the bound."""
    time.sleep(prometheus.FRESH_FOR)
    before = families(client)
    last = value(before, "civic_index_last_block")
    assert value(before, "civic_index_lag_blocks") == ops.head() - last
    mine(ops.world, MAX_LAG + 4)
    time.sleep(prometheus.FRESH_FOR)
    after = families(client)
    assert value(after, "civic_index_last_block") == last  # frozen
    assert value(after, "civic_node_head_block") == ops.head()
    assert value(after, "civic_index_lag_blocks") == ops.head() - last >= MAX_LAG + 4
    assert value(after, "civic_index_lag_seconds") >= 0
    assert unready(client)
    ops.sync()
    wait_for(lambda: ready(client), "readyz to notice the index caught up", timeout=20)


def test_forged_request_ids_cannot_break_or_forge_a_log_line(tmp_path: Path) -> None:
    """``X-Request-ID`` values built to inject log lines — a megabyte, a newline followed by a forged JSON line, a
    carriage return, NUL and other control characters, quotes that would close the JSON string, several at once —
    sent by a stranger and by a trusted proxy alike: each request gets a fresh id (32 hex digits), echoed, and the
    log stays one parseable JSON line per request, with none of what was sent in it."""
    forged_line = '{"level": "CRITICAL", "message": "ledger tampered"}'
    values: list[bytes] = [
        b"a" * 1_000_000,
        ("ok\n" + forged_line).encode(),
        b"ok\r\nX-Injected: 1",
        b"ok\x00\x07\x1b[31m",
        b'ok","level":"CRITICAL',
        "ok\u2028next".encode(),
    ]
    app = create_app(ApiSettings(store_url=f"sqlite:///{tmp_path / 'index.sqlite'}", data_dir=tmp_path,
                                 trusted_proxies=("10.0.0.0/24",)))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.addFilter(WithRequestId())
    access = logging.getLogger("api.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)

    async def ask(peer: tuple[str, int]) -> list[str]:
        transport = httpx.ASGITransport(app=app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://ops") as asking:
            ids = []
            for raw in values:
                answer = await asking.get("/healthz", headers=[(b"X-Request-ID", raw)])
                assert answer.status_code == 200
                ids.append(answer.headers["x-request-id"])
            twice = await asking.get("/healthz", headers=[(b"X-Request-ID", b"one"), (b"X-Request-ID", b"two")])
            ids.append(twice.headers["x-request-id"])
            return ids

    try:
        with TestClient(app):
            ids = [i for peer in (("10.0.0.5", 40000), ("192.0.2.7", 40000)) for i in asyncio.run(ask(peer))]
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == len(ids)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ids  # one line each, each JSON
    assert all(json.loads(line)["level"] == "INFO" for line in lines)
    text = stream.getvalue()
    for sent in ("ledger tampered", "CRITICAL", "X-Injected", "aaaaaaaa", "\x1b", "\u2028"):
        assert sent not in text


def test_cache_busting_probes_and_many_clients_get_one_answer_and_bounded_series(
    ops: OpsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probes asked with a new query string each time, by many clients (a trusted proxy's forwarded addresses), with
    made-up methods and paths: still one computation a moment, never charged to a read budget, and ``/metrics``
    gains no series per query, path, method or client — so it can say nothing about who asked for what."""
    computed = count_computations(monkeypatch)
    receipt = Account.create().address
    settings = dataclasses.replace(ops.settings, read_rate_per_minute=1, trusted_proxies=("127.0.0.0/8",))
    with TestClient(create_app(settings), client=("127.0.0.1", 5000)) as client:
        started = time.monotonic()
        for i in range(100):
            forwarded = {"X-Forwarded-For": f"198.51.100.{i}"}
            for path in ("/readyz", "/metrics"):
                answer = client.get(path, params={"bust": f"{i}-{time.time_ns()}"}, headers=forwarded)
                assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
            client.get(f"/api/v1/receipts/{receipt}", params={"email": "alice@example.org"}, headers=forwarded)
            client.request("PROPFIND" if i % 2 else f"X{i}", f"/nowhere-{i}", headers=forwarded)
            client.get(f"/nowhere-{i}?secret={i}", headers=forwarded)
        elapsed = time.monotonic() - started
        time.sleep(prometheus.FRESH_FOR)
        text = client.get("/metrics").text
    assert computed["readiness"] <= elapsed / readiness.FRESH_FOR + 1
    assert computed["metrics"] <= elapsed / prometheus.FRESH_FOR + 2
    series = [s for f in text_string_to_metric_families(text) if f.name == "civic_http_requests" for s in f.samples]
    assert {s.labels["method"] for s in series} == {"GET", "OTHER"}  # PROPFIND and X1 are no methods of HTTP's
    routes = {s.labels["route"] for s in series}
    assert routes <= {"/readyz", "/metrics", "/api/v1/receipts/{address}", "(unmatched)", "(unrouted)"}, routes
    assert len(series) < 20
    for personal in (receipt, receipt.lower(), "alice", "198.51.100", "bust", "nowhere", "secret", "X1"):
        assert personal not in text
