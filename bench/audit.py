"""Auditor speed on a local anvil (a benchmark, not a test): the whole independent audit of about 100,000 entries.

Run: python bench/audit.py [--entries N] [--batch 500] [--api] — fills a fresh anvil with case events in large
``recordCaseEvents`` batches (not measured; the same traffic as bench/indexer.py), then runs ``civic-audit`` on it
as an auditor would, in a process of its own, and measures its wall time and peak memory (the process's own peak
RSS, from ``wait4``). Three runs: the whole audit with an empty build cache (cold: the contracts compiled afresh by
solc-js, concurrently with the chain checks, and the verified build cached: ``ledger.audit.build``), the whole audit
again (warm: the build read from that cache — what an auditor running again pays), and the same with
``--no-compile``, which shows what the chain work itself costs. The cache is a fresh directory of the benchmark's
own (``XDG_CACHE_HOME``), never the user's. With ``--api`` the
chain is also indexed (bench/indexer.py's indexer, not measured) and served by the real API over HTTP, and a third
run cross-checks it. Prints a table, then one JSON line.

Target: the whole audit of 100,000 entries in under 10 s (the warm run: ``seconds`` in the JSON line; the cold one
is ``seconds_cold``); no per-entry cost near a millisecond (logs are decoded from raw JSON-RPC by ledger.chain.logs, not
web3).

Then the monitor (``civic-audit monitor``, in this process: ``ledger.audit.monitor.Monitor``, no compiling, no API):
a first round takes in the whole ledger (``monitor_catch_up_seconds``), then ``--monitor-rounds`` rounds each absorb
``--monitor-step`` entries appended just before them (the same traffic, not timed). ``monitor_entries_per_s`` is the
steady rate at which new entries are absorbed — their logs and headers read, their continuity verified, the state
kept on disk, the model extended — over those rounds; ``monitor_round_entries_per_s`` also counts the round's checks
(the chain's, over the whole model). Target: at least 1,000 entries/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from siblings import sibling

from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode, free_port

TARGET_SECONDS = 10.0
MONITOR_TARGET = 1_000


def run_audit_process(arguments: list[str], report: Path, cache: Path | None = None) -> dict[str, Any]:
    """Run civic-audit in a child process (its build cache in `cache`); its wall time, peak RSS (its own, from
    wait4) and report."""
    log = report.with_suffix(".log")
    with log.open("wb") as output:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "ledger.audit.cli", *arguments, "--quiet", "--json", str(report)],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, "XDG_CACHE_HOME": str(cache)} if cache is not None else None,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise RuntimeError(f"civic-audit exited {code}:\n{log.read_text()}")
    data = json.loads(report.read_text())
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "exit_code": code, "report": data}


def _serve_api(store_url: str, rpc_url: str, address: str, chain_id: int, data_dir: Path) -> tuple[str, Any]:
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings

    port = free_port()
    settings = ApiSettings(store_url=store_url, rpc_url=rpc_url, contract_address=address, chain_id=chain_id,
                           data_dir=data_dir, read_rate_per_minute=1_000_000)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def measure_monitor(rpc_url: str, address: str, state: Path, append: Any, rounds: int, step: int) -> dict[str, Any]:
    """The monitor following the ledger: a first round over all of it, then `rounds` rounds each after `append(step)`
    added entries; the figures of each."""
    from ledger.audit.context import AuditConfig
    from ledger.audit.monitor import Monitor, MonitorOptions

    config = AuditConfig(rpc_url=rpc_url, contract=address, compile=False)
    monitor = Monitor(config, MonitorOptions(state=state, interval=0, spread=0))
    first = monitor.round()
    steady = []
    for _ in range(rounds):
        append(step)
        steady.append(monitor.round())
    started = time.perf_counter()
    resumed = Monitor(config, MonitorOptions(state=state, interval=0, spread=0))
    resumed.open()
    resume_seconds = time.perf_counter() - started
    outcomes = [first, *steady]
    if any(r.findings for r in outcomes) or resumed.builder.model().count != steady[-1].report.target["entry_count"]:
        raise RuntimeError("the monitor did not follow the benchmark's honest ledger cleanly")
    new = sum(r.new_entries for r in steady)
    return {
        "first": first, "steady": steady, "new": new,
        "rate": new / sum(r.absorb_seconds for r in steady),
        "round_rate": new / sum(r.seconds["round"] for r in steady),
        "resume_seconds": resume_seconds, "resumed_entries": resumed.builder.model().count,
        "state_mb": sum(f.stat().st_size for f in state.rglob("*") if f.is_file()) / 2**20,
    }


class Appender:
    """More traffic for the monitor rounds, sent as bench/indexer.py sends it (large ``recordCaseEvents`` batches):
    each call first advances the cases the call before opened (accepted, then fulfilled), so that rounds touch cases
    already kept, then opens new cases (ids of their own, never the fill's) until `n` events are written."""

    def __init__(self, bench_indexer: Any, chain: Chain, ledger: Any, signer: Any, commitment_id: bytes,
                 batch: int) -> None:
        self.bench, self.chain, self.ledger, self.signer = bench_indexer, chain, ledger, signer
        self.commitment_id, self.batch = commitment_id, batch
        self.pending: list[bytes] = []
        self.cases = 0

    def __call__(self, n: int) -> None:
        from ledger.encoding import keccak
        from ledger.records import CaseAction, CaseEvent, short_code, text_hash

        now = int(self.chain.w3.eth.get_block("latest")["timestamp"])
        events: list[CaseEvent] = []
        for case_id in self.pending:
            for action in (CaseAction.ACCEPTED, CaseAction.FULFILLED):
                events.append(CaseEvent(case_id=case_id, action=action, occurred_at=now, details_hash=text_hash("d")))
        events, self.pending = events[:n], []
        while len(events) < n:
            case_id = keccak(b"bench-monitor-case-%d" % self.cases)
            self.cases += 1
            events.append(CaseEvent(case_id=case_id, action=CaseAction.OPENED, occurred_at=now,
                                    commitment_id=self.commitment_id, district=short_code(f"D{self.cases % 16:02d}"),
                                    channel=1 + self.cases % 6, details_hash=text_hash("d")))
            self.pending.append(case_id)
        sender = self.bench._Sender(self.chain, self.ledger, self.signer)
        for start in range(0, len(events), self.batch):
            sender.send(events[start : start + self.batch])
        sender.finish()


def _stages(r: Any) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in r.seconds.items() if k != "round")


def _rounds(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"the steady rate needs at least one round after the first, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="case events to write (default 100,000)")
    parser.add_argument("--batch", type=int, default=500, help="case events per transaction (default 500)")
    parser.add_argument("--api", action="store_true", help="also index the chain and cross-check the API")
    parser.add_argument("--monitor-rounds", type=_rounds, default=5,
                        help="monitor rounds after the first (at least 1; default 5)")
    parser.add_argument("--monitor-step", type=int, default=10_000,
                        help="case events appended before each of them (default 10,000)")
    args = parser.parse_args()
    bench_indexer = sibling("indexer")
    fill = bench_indexer.fill

    with AnvilNode(extra_args=["--gas-limit", "100000000"]) as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        ledger, signer, commitment_id = bench_indexer.setup(chain)
        started = time.perf_counter()
        written = fill(chain, ledger, signer, commitment_id, args.entries, args.batch)
        fill_seconds = time.perf_counter() - started
        entries = ledger.entry_count()
        base = ["--rpc-url", node.url, "--contract", ledger.address]
        cache = Path(tmp) / "cache"  # empty: the first whole audit compiles, the second reads the cached build
        cold = run_audit_process(base, Path(tmp) / "cold.json", cache)
        whole = run_audit_process(base, Path(tmp) / "whole.json", cache)
        chain_only = run_audit_process([*base, "--no-compile"], Path(tmp) / "chain.json")
        with_api = None
        if args.api:
            from ledger.index.sync import Indexer
            from ledger.store.db import open_store

            store_url = f"sqlite:///{Path(tmp) / 'index.sqlite3'}"
            store = open_store(store_url)
            Indexer(chain, ledger.address, store, confirmations=0).sync()
            store.close()
            url, server = _serve_api(store_url, node.url, ledger.address, chain.chain_id, Path(tmp))
            try:
                with_api = run_audit_process([*base, "--no-compile", "--api", url], Path(tmp) / "api.json")
            finally:
                server.should_exit = True
        load_before = os.getloadavg()
        monitor = measure_monitor(
            node.url, ledger.address, Path(tmp) / "monitor-state",
            Appender(bench_indexer, chain, ledger, signer, commitment_id, args.batch), args.monitor_rounds,
            args.monitor_step,
        )

    def checks(run: dict[str, Any]) -> dict[str, float]:
        return {c["name"]: c["seconds"] for c in run["report"]["checks"]}

    def from_cache(run: dict[str, Any]) -> bool:
        return bool((run["report"]["stats"].get("contract_build") or {}).get("from_cache"))

    report = whole["report"]
    findings = report["summary"]["findings"] + cold["report"]["summary"]["findings"]
    rate = entries / chain_only["seconds"]
    rows = [
        ("entries on chain", f"{entries:,} ({written:,} case events written in {fill_seconds:.1f} s, not timed)"),
        ("whole audit, cold (fresh compile, concurrent)",
         f"{cold['seconds']:.2f} s, peak RSS {cold['peak_rss_mb']:.0f} MB; build from the cache: "
         f"{'yes' if from_cache(cold) else 'no'}"),
        ("  of which waiting for the compiler", f"{checks(cold)['contract_code']:.2f} s"),
        ("whole audit, warm (verified build cache)",
         f"{whole['seconds']:.2f} s, peak RSS {whole['peak_rss_mb']:.0f} MB; build from the cache: "
         f"{'yes' if from_cache(whole) else 'no'}"),
        ("  of which waiting for the build", f"{checks(whole)['contract_code']:.2f} s"),
        ("audit without compiling", f"{chain_only['seconds']:.2f} s, peak RSS {chain_only['peak_rss_mb']:.0f} MB"),
        ("  reading logs and headers", f"{chain_only['report']['stats']['log_seconds']:.2f} s"),
        ("  checks", ", ".join(f"{k} {v:.2f} s" for k, v in checks(chain_only).items() if v >= 0.01)),
        ("entries verified per second (without compiling)", f"{rate:,.0f}"),
        ("per entry", f"{1e6 * chain_only['seconds'] / entries:.1f} µs"),
        ("findings", f"{findings} (exit codes {cold['exit_code']}, {whole['exit_code']})"),
        ("target", f"whole audit < {TARGET_SECONDS:g} s: {'met' if whole['seconds'] < TARGET_SECONDS else 'NOT met'}"),
        ("monitor: first round (the whole ledger)",
         f"{monitor['first'].new_entries:,} entries in {monitor['first'].seconds['round']:.2f} s "
         f"({_stages(monitor['first'])})"),
        (f"monitor: {len(monitor['steady'])} rounds of {args.monitor_step:,} new entries",
         f"{monitor['new']:,} entries absorbed at {monitor['rate']:,.0f} entries/s (read, verified, kept, model "
         f"extended); {monitor['round_rate']:,.0f} entries/s with the round's checks"),
        ("  a round", _stages(monitor["steady"][-1]) + f", at {monitor['steady'][-1].report.target['entry_count']:,} "
                      "entries"),
        ("monitor: restart (state loaded, checked and folded)",
         f"{monitor['resume_seconds']:.2f} s for {monitor['resumed_entries']:,} entries; state on disk "
         f"{monitor['state_mb']:.0f} MB"),
        ("monitor target",
         f"≥ {MONITOR_TARGET:,} entries/s: {'met' if monitor['rate'] >= MONITOR_TARGET else 'NOT met'}"),
        ("machine", f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, Python "
                    f"{platform.python_version()}, load average {load_before[0]:.2f} before the monitor rounds"),
    ]
    if with_api is not None:
        rows.insert(10, ("audit with the API cross-check (no compile)",
                        f"{with_api['seconds']:.2f} s, peak RSS {with_api['peak_rss_mb']:.0f} MB; "
                        f"{with_api['report']['summary']['findings']} findings"))
    width = max(len(k) for k, _ in rows)
    print(f"{'civic-audit':<{width}}  value")
    print(f"{'-' * width}  -----")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    line = {
        "entries": entries,
        "seconds": round(whole["seconds"], 3),
        "peak_rss_mb": round(whole["peak_rss_mb"], 1),
        "entries_per_s": round(entries / whole["seconds"], 1),
        "build_from_cache": from_cache(whole),
        "build_wait_seconds": round(checks(whole)["contract_code"], 3),
        "seconds_cold": round(cold["seconds"], 3),
        "peak_rss_mb_cold": round(cold["peak_rss_mb"], 1),
        "build_from_cache_cold": from_cache(cold),
        "compile_wait_seconds": round(checks(cold)["contract_code"], 3),
        "seconds_without_compile": round(chain_only["seconds"], 3),
        "entries_per_s_without_compile": round(rate, 1),
        "peak_rss_mb_without_compile": round(chain_only["peak_rss_mb"], 1),
        "findings": findings,
        "exit_code": max(cold["exit_code"], whole["exit_code"]),
        "target_seconds": TARGET_SECONDS,
        "monitor_entries_per_s": round(monitor["rate"], 1),
        "monitor_round_entries_per_s": round(monitor["round_rate"], 1),
        "monitor_catch_up_seconds": round(monitor["first"].seconds["round"], 3),
        "monitor_resume_seconds": round(monitor["resume_seconds"], 3),
        "monitor_target_entries_per_s": MONITOR_TARGET,
    }
    if with_api is not None:
        line["seconds_with_api"] = round(with_api["seconds"], 3)
        line["peak_rss_mb_with_api"] = round(with_api["peak_rss_mb"], 1)
        line["findings_with_api"] = with_api["report"]["summary"]["findings"]
    print(json.dumps(line))


if __name__ == "__main__":
    main()
