"""``civic-audit monitor`` on the honest ledger: clean rounds, new entries read from new blocks only, a restart that
resumes from the state on disk, a state bound to its ledger, a damaged state set aside, an API lie introduced
between rounds raising the alert (exit 1, CRITICAL log line, webhook, report), and a reorganised chain followed."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from ledger.audit import CannotAudit, cli
from ledger.audit.chainread import ChainReader
from ledger.audit.monitor import FULL_ONLY, Monitor, MonitorOptions, Pacer
from ledger.audit.rebuild import rebuild
from ledger.audit.rpc import Rpc
from ledger.audit.state import LOG, MANIFEST, StateDir
from ledger.dev.node import free_port
from ledger.records import CaseAction
from tests.support.honest import HOUR, HonestLedger, case_id, chain_state, later, opened
from tests.support.index_faults import FaultProxy, rewrite

ROOT = Path(__file__).resolve().parents[2]


def monitor(h: HonestLedger, state: Path, rpc_url: str | None = None, **options: Any) -> Monitor:
    """A monitor of the honest ledger (batch files from its directory, no compiling), without pauses."""
    config = h.config(**({"rpc_url": rpc_url} if rpc_url else {}))
    options.setdefault("interval", 0)
    options.setdefault("spread", 0)
    return Monitor(config, MonitorOptions(state=state, **options))


def whole_model(h: HonestLedger) -> Any:
    """The model the one-shot audit rebuilds from the whole chain now."""
    from ledger.audit.batchfiles import DirectorySource, anchors_of, load

    rpc = Rpc(h.url)
    try:
        entries = ChainReader(rpc, h.ledger.address).read().entries
    finally:
        rpc.close()
    outcomes = load(anchors_of(entries), DirectorySource(h.batch_dir))
    return rebuild(entries, {s: o.content for s, o in outcomes.items() if o.content is not None})


def same_model(a: Any, b: Any) -> None:
    assert a.count == b.count and a.head == b.head and a.running == b.running
    assert a.cases == b.cases and a.voided == b.voided and a.answers == b.answers and a.feedback == b.feedback
    assert list(a.cases) == list(b.cases)


class LogRanges:
    """A JSON-RPC proxy in front of the node that records the block ranges of every eth_getLogs call."""

    def __init__(self, upstream: str) -> None:
        self.proxy = FaultProxy(upstream)
        self.ranges: list[tuple[int, int]] = []

        def seen(params: list[Any]) -> bool:
            self.ranges.append((int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)))
            return True

        self.proxy.add("eth_getLogs", rewrite(lambda result: result), times=None, when=seen)

    def __enter__(self) -> LogRanges:
        self.proxy.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proxy.stop()

    @property
    def url(self) -> str:
        return self.proxy.url

    def take(self) -> list[tuple[int, int]]:
        out, self.ranges = self.ranges, []
        return out


def test_honest_rounds_are_clean_and_draw_fresh_seeds(honest: HonestLedger, tmp_path: Path) -> None:
    m = monitor(honest, tmp_path / "state", full_every=2)
    first, second = m.round(), m.round()
    count = honest.ledger.entry_count()
    for r in (first, second):
        assert r.report is not None and r.report.exit_code == 0 and r.findings == 0, r.report.failed
        assert r.report.target["seed"] == r.seed
        assert r.report.target["entry_count"] == count
    assert first.seed != second.seed
    assert first.full and not second.full
    assert first.new_entries > 1000 and second.new_entries == 0
    assert "continue the log verified up to seq -1" in " ".join(first.report.check("log_complete").notes)
    assert "no new entry" in " ".join(second.report.check("log_complete").notes)
    # the full set in the first round, the checks of new data and the samples in the second
    assert {c.name for c in second.report.checks if "full rounds only" in " ".join(c.notes)} == set(FULL_ONLY)
    assert all(second.report.check(name).status.value == "skipped" for name in FULL_ONLY)
    same_model(m.builder.model(), whole_model(honest))
    latest = json.loads((tmp_path / "state" / "reports" / "latest.json").read_text())
    assert latest["target"]["seed"] == second.seed and latest["target"]["monitor"]["round"] == 2


@contextmanager
def served(h: HonestLedger, index: Path) -> Iterator[str]:
    """The real API over `index`, served over HTTP."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(h.settings(index)), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_new_entries_are_read_from_new_blocks_only(honest: HonestLedger, tmp_path: Path) -> None:
    with chain_state(honest), LogRanges(honest.url) as node:
        m = monitor(honest, tmp_path / "state", rpc_url=node.url)
        first = m.round()
        assert first.findings == 0 and node.take()
        head = first.blocks[1]
        t = honest.now() + 60
        a = honest.write(opened("monitor-a", t), at=t)
        b = honest.write(later("monitor-a", CaseAction.ACCEPTED, t + 60), at=t + 120)
        c = honest.write(later("corrected", CaseAction.REOPENED, t + 150), at=t + 180)
        batch, d = honest.anchor([opened("monitor-batched", t + 190), later("monitor-batched", CaseAction.ACCEPTED,
                                                                            t + 200)], at=t + 240)
        second = m.round()
        ranges = node.take()
        assert second.findings == 0, second.report.failed
        assert second.new_entries == 3 + batch.count and second.blocks == (head + 1, head + 4)
        assert ranges and all(head < start <= end <= head + 4 for start, end in ranges)
        model = m.builder.model()
        assert {a, b, c, d, d + 1} <= set(model.by_seq) and model.count == d + 2
        assert model.cases[("DEMO-ROADS", case_id("monitor-a"))].state.status == "open"
        assert model.cases[("DEMO-ROADS", case_id("corrected"))].state.reopened == 1
        assert model.cases[("DEMO-ROADS", case_id("monitor-batched"))].state.opened_seq == d
        same_model(model, whole_model(honest))
        # the new batch's file is kept with the state, and checked again when it is loaded
        assert (tmp_path / "state" / "batches" / f"{batch.file_hash.hex()}.csv").exists()
        again = monitor(honest, tmp_path / "state", rpc_url=node.url)
        again.open()
        same_model(again.builder.model(), model)
        # nothing new: no log is read at all
        third = m.round()
        assert third.new_entries == 0 and node.take() == []


def test_a_restart_resumes_from_the_state_on_disk(honest: HonestLedger, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    args = ["monitor", "--rpc-url", honest.url, "--contract", honest.ledger.address, "--batches",
            str(honest.batch_dir), "--no-compile", "--state", str(state), "--interval", "0", "--spread", "0"]
    with chain_state(honest), LogRanges(honest.url) as node:
        args[2] = node.url
        assert cli.main([*args, "--rounds", "2"]) == 0
        manifest = json.loads((state / MANIFEST).read_text())
        assert manifest["entry_count"] == honest.ledger.entry_count() and manifest["rounds"] == 2
        head = manifest["block"]["number"]
        node.take()
        t = honest.now() + 60
        seq = honest.write(opened("after-restart", t), at=t)
        m = monitor(honest, state, rpc_url=node.url)
        with caplog.at_level(logging.INFO, logger="civic-audit"):
            m.open()
        assert f"resuming from the state in {state}: block {head}" in caplog.text
        r = m.round()
        assert r.findings == 0 and r.new_entries == 1 and r.blocks == (head + 1, head + 1)
        assert all(start > head for start, _ in node.take())
        assert m.builder.model().by_seq[seq].record["case_id"] == case_id("after-restart")
        same_model(m.builder.model(), whole_model(honest))
        assert json.loads((state / MANIFEST).read_text())["rounds"] == 3


def test_a_state_of_another_ledger_is_refused(honest: HonestLedger, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert monitor(honest, state).round().findings == 0
    manifest = json.loads((state / MANIFEST).read_text())
    for change, says in (({"contract": "0x" + "11" * 20}, "0x1111"), ({"chain_id": 10}, "on chain 10")):
        (state / MANIFEST).write_text(json.dumps({**manifest, **change}))
        with pytest.raises(CannotAudit, match="give each ledger a --state directory of its own") as refused:
            monitor(honest, state).open()
        assert says in str(refused.value)
        code = cli.main(["monitor", "--rpc-url", honest.url, "--contract", honest.ledger.address, "--no-compile",
                         "--state", str(state), "--rounds", "1", "--quiet"])
        assert code == 2 and "give each ledger a --state directory of its own" in capsys.readouterr().err
    (state / MANIFEST).write_text(json.dumps({**manifest, "format": "something else/9"}))
    with pytest.raises(CannotAudit, match="is not a state this auditor reads"):
        monitor(honest, state).open()


@pytest.mark.parametrize("damage", ["log cut mid-line", "garbage manifest", "garbage line", "entry altered",
                                    "batch file altered"])
def test_a_damaged_state_is_set_aside_and_read_afresh(honest: HonestLedger, tmp_path: Path, damage: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    assert monitor(honest, state).round().findings == 0
    log_file, manifest = state / LOG, state / MANIFEST
    data = log_file.read_bytes()
    if damage == "log cut mid-line":
        log_file.write_bytes(data[: len(data) // 2])
    elif damage == "garbage manifest":
        manifest.write_bytes(manifest.read_bytes()[:40])
    elif damage == "garbage line":
        lines = data.splitlines(keepends=True)
        lines[7] = b"x" * (len(lines[7]) - 1) + b"\n"
        log_file.write_bytes(b"".join(lines))
    elif damage == "entry altered":  # a seq's entry hash changed: the fold no longer gives the contract's hash
        lines = data.splitlines(keepends=True)
        item = json.loads(lines[5])
        item[6] = "00" * 32
        lines[5] = (json.dumps(item, separators=(",", ":")) + "\n").encode()
        log_file.write_bytes(b"".join(lines))
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()),
                                        "data_bytes": len(b"".join(lines))}))
    else:
        batch = next((state / "batches").iterdir())
        batch.write_bytes(batch.read_bytes() + b"\n")
    m = monitor(honest, state)
    with caplog.at_level(logging.WARNING, logger="civic-audit"):
        r = m.round()
    assert "is damaged" in caplog.text and "reading the chain afresh" in caplog.text
    assert r.findings == 0 and r.new_entries > 1000
    assert list(state.glob("damaged-*/" + MANIFEST)) or damage == "garbage manifest"
    stored = StateDir(state).load(m.chain_id or 0, honest.ledger.address)
    assert stored is not None and stored.entry_count == honest.ledger.entry_count()


def test_a_round_killed_before_its_manifest_leaves_the_previous_state(honest: HonestLedger, tmp_path: Path) -> None:
    """Lines appended by a round whose manifest was never written (and a temporary file left behind) are not part
    of the state: the next run resumes from the manifest and cuts them off."""
    state = tmp_path / "state"
    with chain_state(honest):
        assert monitor(honest, state).round().findings == 0
        before = json.loads((state / MANIFEST).read_text())
        with (state / LOG).open("ab") as f:
            f.write(b'["e",999999,5,"00"')  # half a line
        (state / f".{MANIFEST}.123.tmp").write_text("{half a manif")
        t = honest.now() + 60
        honest.write(opened("after-a-kill", t), at=t)
        m = monitor(honest, state)
        m.open()
        assert m.stored is not None and m.stored.block_number == before["block"]["number"]
        assert m.round().new_entries == 1
        assert StateDir(state).load(m.chain_id or 0, honest.ledger.address).entry_count == before["entry_count"] + 1
        assert b"999999" not in (state / LOG).read_bytes()


class Webhook:
    """A tiny local HTTP server that keeps what is POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_api_lie_between_rounds_raises_the_alert(honest: HonestLedger, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Round 1 (full) and round 2 are clean; then one case's on-time flag is flipped in the index the API serves:
    a later round (not a full one: the metrics are among the checks of every round) finds it — round 3 usually, a
    round after it when round 3's random selections all missed the case or were answered from the API's cache — and
    the monitor stops with exit code 1 after a CRITICAL log line, the webhook and the round's report."""
    index = honest.index_copy(tmp_path)
    db = sqlite3.connect(index)
    agency, lied = db.execute("SELECT agency_id, case_id FROM cases WHERE on_time = 1 ORDER BY opened_seq").fetchone()
    db.close()
    hook = Webhook()
    state = tmp_path / "state"
    try:
        with served(honest, index) as url:
            m = Monitor(honest.config(api_url=url, batches=None, case_sample=20),
                        MonitorOptions(state=state, interval=0, spread=0, rounds=5, webhook=hook.url))
            rounds = m.round

            def round_then_lie() -> Any:
                outcome = rounds()
                if outcome.number == 2:
                    db = sqlite3.connect(index)
                    db.execute("UPDATE cases SET on_time = 0 WHERE agency_id = ? AND case_id = ?", (agency, lied))
                    db.commit()
                    db.close()
                return outcome

            m.round = round_then_lie  # type: ignore[method-assign]
            with caplog.at_level(logging.INFO, logger="civic-audit"):
                assert m.run() == 1
    finally:
        hook.close()
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    line = critical[0].getMessage()
    assert "round 1 clean (full)" in caplog.text and "round 2 clean" in caplog.text
    [body] = hook.bodies
    found_in = body["round"]
    assert body["event"] == "civic-audit.finding" and found_in in (3, 4, 5) and body["findings"] >= 1
    assert all(f"round {n} clean" in caplog.text for n in range(3, found_in))
    # the case's on-time flag shows in the metrics (whole-period figures) and in its Open311 request's notes
    assert body["check"] in {"metrics_reproduced", "open311"}
    finding = body["finding"]
    assert str(finding.get("field")).endswith("on_time") or f"0x{lied.hex()}" in finding["message"]
    assert line.startswith(f"FINDING in round {found_in} at block ")
    assert f"check {body['check']}: {finding['message'][:40]}" in line
    report = json.loads(Path(body["report"]).read_text())
    assert Path(body["report"]) == state / "reports" / f"finding-round-{found_in}.json" and str(state) in line
    assert report["exit_code"] == 1 and report["target"]["seed"] == body["seed"]
    assert report["target"]["monitor"]["full"] is False
    assert {c["name"] for c in report["checks"] if c["status"] == "fail"} <= {"metrics_reproduced", "open311"}
    # the round with the finding was not kept: a restart looks at the same blocks again
    assert json.loads((state / MANIFEST).read_text())["rounds"] == found_in - 1


def test_a_failing_webhook_is_logged_never_fatal(honest: HonestLedger, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with chain_state(honest):
        t = honest.now() + 60
        honest.write(opened("backdated-for-the-monitor", t - 20 * 24 * HOUR), at=t)  # a timeliness finding
        m = monitor(honest, tmp_path / "state", webhook=f"http://127.0.0.1:{free_port()}/nobody", rounds=1)
        with caplog.at_level(logging.INFO, logger="civic-audit"):
            assert m.run() == 1
    assert "check timeliness" in caplog.text and "the webhook at http://127.0.0.1" in caplog.text


def test_a_reorganised_chain_is_followed(honest: HonestLedger, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with chain_state(honest):
        m = monitor(honest, state)
        first = m.round()
        fork = honest.chain.snapshot()
        t = honest.now() + 60
        gone = honest.write(opened("on-a-lost-branch", t), at=t)
        second = m.round()
        assert second.new_entries == 1
        assert m.builder.model().by_seq[gone].record["case_id"] == case_id("on-a-lost-branch")
        lost_block = second.blocks[1]
        honest.chain.revert(fork)
        # another branch: two blocks, other entries (the first at the same seq as the lost one)
        kept = honest.write(opened("on-the-kept-branch", t + 5), at=t + 5)
        honest.write(later("on-the-kept-branch", CaseAction.ACCEPTED, t + 30), at=t + 30)
        assert kept == gone and honest.chain.w3.eth.block_number >= lost_block
        third = m.round()
        assert third.reorg == first.blocks[1] and third.findings == 0, third.report.failed
        assert third.new_entries == 2
        model = m.builder.model()
        assert model.by_seq[kept].record["case_id"] == case_id("on-the-kept-branch")
        assert ("DEMO-ROADS", case_id("on-a-lost-branch")) not in model.cases
        same_model(model, whole_model(honest))
        # and what is on disk is the kept branch: a restart reads nothing again
        again = monitor(honest, state)
        again.open()
        same_model(again.builder.model(), model)
        assert again.round().new_entries == 0


def test_requests_are_spread_over_the_round_and_a_stop_cuts_the_pauses_short() -> None:
    stop = threading.Event()
    pacer = Pacer(0.5, 20, stop)
    began = time.monotonic()
    for _ in range(20):
        pacer(None)  # type: ignore[arg-type]
    assert 0.1 < time.monotonic() - began < 0.8
    for spread, stopped in ((0.0, False), (30.0, True)):
        if stopped:
            stop.set()
        pacer, began = Pacer(spread, 5, stop), time.monotonic()
        for _ in range(5):
            pacer(None)  # type: ignore[arg-type]
        assert time.monotonic() - began < 0.1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_monitor_with_exit_0(honest: HonestLedger, tmp_path: Path, signum: int) -> None:
    state = tmp_path / "state"
    child = subprocess.Popen(
        [sys.executable, "-m", "ledger.audit.cli", "monitor", "--rpc-url", honest.url, "--contract",
         honest.ledger.address, "--batches", str(honest.batch_dir), "--no-compile", "--state", str(state),
         "--interval", "0.2"], cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )
    try:
        latest = state / "reports" / "latest.json"
        deadline = time.monotonic() + 60
        while not (latest.exists() and json.loads(latest.read_text())["target"]["monitor"]["round"] >= 2):
            assert child.poll() is None and time.monotonic() < deadline, "the monitor did not get to round 2"
            time.sleep(0.1)
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert f"{signal.Signals(signum).name}: stopping after this round" in err and "no finding" in err
