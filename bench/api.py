"""Public read API throughput and latency on loopback over a million cases in PostgreSQL (a benchmark, not a test).

Run: python bench/api.py [--cases N] [--duration S] [--warmup S] [--connections C] [--workers W]
[--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--generator auto|wrk|python]

What it does: creates a PostgreSQL database of its own on that server and loads N cases (about 3 case events each, with
their entries and the commitments) with ``bench/metrics.py``'s generator and COPY loader, then adds what the API reads
besides (agencies, the ``sync_state`` row, the Alembic stamp) and ANALYZEs. Then, twice — ``uvicorn api.app:create_app
--factory`` with uvicorn's default worker setup (one process) and with ``--workers`` = the number of cores — it drives
HTTP load on loopback at:

* case lookup: ``GET /api/v1/cases/{agency}/{case}``, each request a case drawn at random from 10,000 real case ids
  sampled from the table (no cache serves these: every request reads the database);
* scorecard: ``GET /api/v1/scorecards?by=agency&from=…&to=…``, the city's scorecard by agency over the 90 days that end
  where the data end (2026-01-01, in the past: so ``as_of`` is ``to`` and the answer stays the same until the index
  moves), as the page asks for it with that range; every request the same one, served from the cache after it was
  computed once per worker;
* scorecard, uncached: the same scorecard with a different ``as_of`` on each request (drawn from 10,000), so that each
  request is computed afresh — what a request the cache has not seen costs; fewer connections (one per worker): each
  takes seconds;
* the page's front view, ``GET /api/v1/scorecards?by=agency`` (all time, ``as_of`` = now): three requests one after
  the other. ``as_of`` defaults to the current whole minute (times are taken to the minute) and the open and overdue
  counts move with it, so each minute is another answer: the first request of a minute costs this, the next ones of
  the minute are the cache's;
* the ceiling: a bare FastAPI app (one ``async def`` route returning a constant, no middleware, no database), served
  the same ways.

Load comes from ``wrk`` (Debian: ``apt-get install wrk``) with a Lua script picking a random path per request, one
wrk thread and ``--connections`` keep-alive connections (closed loop: each connection sends its next request when the
last is answered); if wrk is missing, from a Python load generator in separate processes (same protocol, slower, so
it takes a larger share of the 2 cores). Each run: a warm-up (not counted), then ``--duration`` seconds measured.
Servers run with ``--no-access-log --log-level warning``, ``CIVIC_READ_RATE_PER_MINUTE=0`` (no rate limit: every
request here comes from one address) and no figures budget or time share (``CIVIC_EXPENSIVE_RATE_PER_MINUTE=0``,
``CIVIC_COMPUTATION_SHARE=1``; ``bench/abuse.py`` measures the defences). No node is needed: ``CIVIC_RPC_URL``
points at an unused loopback port (none of these endpoints asks the node).

Prints a table, then one JSON line: the ``--workers`` (default: cores) figures under ``case_lookup_rps``,
``case_lookup_p50_ms``, ``case_lookup_p99_ms``, ``scorecard_*``, ``scorecard_uncached_*``, ``scorecard_as_of_now_*``
(p99 there: the slowest of three), ``ceiling_*``, and the same for uvicorn's default setup with the suffix
``_default``. The database is dropped at the end, also on failure.

Target (issue "Public audit API"): case lookup and scorecard ≥ 1,500 req/s with p99 < 50 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx
from alembic import command
from siblings import sibling
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.schema import CreateTable

from ledger.records import EntryKind
from ledger.store.db import alembic_config
from ledger.store.schema import metadata

TARGET_RPS = 1_500
TARGET_P99_MS = 50.0
#: the ledger contract the index claims to follow (anvil's first deployment address; no chain is asked)
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHAIN_ID = 31337
#: blocks at the tip of the index not yet final (the indexer's confirmation depth)
CONFIRMATIONS = 12
SAMPLED_CASES = 10_000
AGENCY_NAMES = {
    "SH-ROADS": ("上海市道路管理局", "Shanghai Roads Office"),
    "SH-WATER": ("上海市供水管理处", "Shanghai Water Supply"),
    "SH-SANITATION": ("上海市环境卫生管理局", "Shanghai Sanitation"),
    "SH-HOUSING": ("上海市房屋管理局", "Shanghai Housing"),
    "SH-MARKET": ("上海市市场监督管理局", "Shanghai Market Regulation"),
    "SH-TRANSPORT": ("上海市交通委员会", "Shanghai Transport"),
    "SH-GREENING": ("上海市绿化和市容管理局", "Shanghai Greening"),
    "SH-ECOENV": ("上海市生态环境局", "Shanghai Ecology and Environment"),
    "SH-CIVIL": ("上海市民政局", "Shanghai Civil Affairs"),
    "SH-HEALTH": ("上海市卫生健康委员会", "Shanghai Health"),
    "SH-EDUCATION": ("上海市教育委员会", "Shanghai Education"),
    "SH-PLANNING": ("上海市规划和自然资源局", "Shanghai Planning"),
}


bm = sibling("metrics")


# --- the database -----------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    cases: int
    events: int
    load_seconds: float
    index_seconds: float
    case_paths: list[str]


def build_database(bench_url: URL, n_cases: int) -> Dataset:
    """Tables without indexes, the COPY load, what the API needs besides, then the indexes and ANALYZE."""
    engine = create_engine(bench_url)
    try:
        with engine.begin() as conn:
            for table in metadata.sorted_tables:
                conn.execute(CreateTable(table))  # indexes after the load: faster than maintaining them row by row
        conninfo = bench_url.set(drivername="postgresql").render_as_string(hide_password=False)
        loaded = bm.load(conninfo, n_cases)
        began = time.perf_counter()
        with engine.begin() as conn:
            _add_agencies_and_state(conn)
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn)
            # the schema is exactly the migrations' (a test compares them): stamp it, so open_store migrates nothing
            config = alembic_config()
            config.attributes["connection"] = conn
            command.stamp(config, "head")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            # write the load's dirty pages out now, not as a background checkpoint during the measurements
            conn.execute(text("CHECKPOINT"))
        index_seconds = time.perf_counter() - began
        with engine.begin() as conn:
            conn.execute(text("SELECT setseed(0.5)"))
            rows = conn.execute(
                text("SELECT agency_id, case_id FROM cases ORDER BY random() LIMIT :n"), {"n": SAMPLED_CASES}
            ).all()
        paths = [f"/api/v1/cases/{agency}/0x{bytes(case_id).hex()}" for agency, case_id in rows]
        return Dataset(loaded.cases, loaded.events, loaded.seconds, index_seconds, paths)
    finally:
        engine.dispose()


def _add_agencies_and_state(conn: Any) -> None:
    """The agencies (their registration entries appended after the loaded ones) and the indexer's sync_state row."""
    seq, last_time = conn.execute(text("SELECT max(seq), max(block_time) FROM entries")).one()
    block = (last_time - bm.START) // 2  # bench/metrics.py's blocks: one every 2 s from START
    for agency, (name_zh, name_en) in AGENCY_NAMES.items():
        seq += 1
        conn.execute(
            text(
                "INSERT INTO entries (seq, kind, agency_id, actor, record_hash, entry_hash, running_hash, block_number,"
                " block_hash, block_time, tx_hash, log_index, occurred_at, voided_by) VALUES (:seq, :kind, :agency,"
                " :actor, :h32, :h32, :h24, :block, :h32, :time, :h32, :log, NULL, NULL)"
            ),
            {"seq": seq, "kind": int(EntryKind.AGENCY_REGISTERED), "agency": agency, "actor": CONTRACT,
             "h32": bytes([seq % 256]) * 32, "h24": bytes([seq % 256]) * 24, "block": block, "time": last_time,
             "log": seq % 100},
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO agencies (agency_id, jurisdiction, name_zh, name_en, seq) VALUES (:agency, 'CN-SH', :zh,"
                 " :en, :seq)"),
            {"agency": agency, "zh": name_zh, "en": name_en, "seq": seq},
        )
    conn.execute(
        text(
            "INSERT INTO sync_state (contract_address, chain_id, deploy_block, last_block, entry_count, running_hash,"
            " halted_reason, finalized_block) VALUES (:address, :chain, 0, :block, :count, :head, NULL, :final)"
        ),
        {"address": CONTRACT, "chain": CHAIN_ID, "block": block, "count": seq + 1, "head": b"\xcd" * 24,
         "final": block - CONFIRMATIONS},
    )  # fmt: skip


@contextmanager
def bench_database(admin_url: URL) -> Iterator[URL]:
    """A database of its own on the server, dropped afterwards whatever happens."""
    name = f"civic_bench_api_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- servers ----------------------------------------------------------------------------------------------------------

CEILING_MODULE = '''"""The ceiling: a bare FastAPI app with one route returning a constant (bench/api.py)."""
from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/constant")
    async def constant() -> dict[str, str]:
        return {"status": "ok"}

    return app
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serve(app: str, workers: int | None, env: dict[str, str], work_dir: Path, probe: str) -> Iterator[Server]:
    """``uvicorn <app> --factory`` on a free loopback port (``workers`` None: uvicorn's default setup), stopped
    after."""
    port = free_port()
    log = work_dir / f"uvicorn-{app.split(':')[0]}-{workers or 'default'}.log"
    command_line = [
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", *(["--workers", str(workers)] if workers else []),
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command_line, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(process, port, log)
    try:
        _wait_ready(server, probe, workers or 1)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: Server, probe: str, workers: int) -> None:
    deadline = time.monotonic() + 120
    ok = 0
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.process.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            # a fresh connection each time, so the kernel spreads them over the workers
            ok = ok + 1 if httpx.get(server.base + probe, timeout=10).status_code == 200 else 0
        except httpx.HTTPError:
            ok = 0
        if ok >= 4 * workers:
            return
        time.sleep(0.05 if ok else 0.25)
    raise RuntimeError(f"uvicorn did not answer {probe} in time:\n{server.log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: uvicorn and the workers it started
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


_STARTED = time.monotonic()


def progress(what: str) -> None:
    print(f"[{time.monotonic() - _STARTED:5.0f} s] {what}", file=sys.stderr, flush=True)


#: the page's front view: every agency's scorecard over all time, as of now (``as_of`` defaults to the request's
#: second, so each second is a new answer: the cache cannot keep it)
AS_OF_NOW = "/api/v1/scorecards?by=agency"


def in_a_row(url: str, count: int) -> Measured:
    """``count`` requests one after the other (for answers that take seconds)."""
    took = []
    for _ in range(count):
        began = time.perf_counter()
        httpx.get(url, timeout=300).raise_for_status()
        took.append(time.perf_counter() - began)
    ordered = sorted(took)
    return Measured(count / sum(took), 1000 * statistics.median(ordered), 1000 * ordered[-1], count, 0)


def warm_every_worker(url: str, times: int = 16) -> None:
    """Ask until ``times`` answers in a row, each on a new connection (which the kernel hands to any worker), come back
    fast: then every worker has the answer (a worker never asked would be missed with odds 2**-16 for two)."""
    fast, deadline = 0, time.monotonic() + 600
    while fast < times:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} is still slow after 10 minutes of warming up")
        began = time.perf_counter()
        httpx.get(url, timeout=300).raise_for_status()
        fast = fast + 1 if time.perf_counter() - began < 0.2 else 0


# --- load generation --------------------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
local paths = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"mean_ms": %.3f, "errors": %d, "non_2xx_3xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class Measured:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def run_wrk(base: str, paths_file: Path, connections: int, seconds: float, script: Path, threads: int) -> Measured:
    command_line = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "-s",
        str(script), base, "--", str(paths_file),
    ]  # fmt: skip
    done = subprocess.run(command_line, capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result = json.loads(line.removeprefix("WRK_RESULT "))
    return Measured(
        rps=result["requests"] / result["seconds"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        requests=result["requests"],
        errors=result["errors"] + result["non_2xx_3xx"],
    )


async def _py_connection(
    host: str, port: int, paths: list[str], until: float, rng: random.Random, latencies: list[float]
) -> int:
    """One keep-alive HTTP/1.1 connection sending requests back to back until ``until``; the errors it saw."""
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while time.perf_counter() < until:
            path = paths[rng.randrange(len(paths))]
            began = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if not 200 <= status < 400:
                errors += 1
    finally:
        writer.close()
    return errors


def _py_worker(host: str, port: int, paths: list[str], connections: int, start_at: float, seconds: float,
               seed: int) -> tuple[list[float], int]:  # fmt: skip
    async def main() -> tuple[list[float], int]:
        while time.time() < start_at:
            await asyncio.sleep(0.01)
        latencies: list[float] = []
        until = time.perf_counter() + seconds
        rng = random.Random(seed)
        tasks = [_py_connection(host, port, paths, until, rng, latencies) for _ in range(connections)]
        errors = sum(await asyncio.gather(*tasks))
        return latencies, errors

    return asyncio.run(main())


def run_python(base: str, paths: list[str], connections: int, seconds: float, processes: int) -> Measured:
    """The fallback load generator: ``processes`` processes sharing ``connections`` keep-alive connections."""
    host, port = base.removeprefix("http://").split(":")
    share = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    start_at = time.time() + 1.0
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        results = pool.starmap(
            _py_worker, [(host, int(port), paths, n, start_at, seconds, i) for i, n in enumerate(share) if n]
        )
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    if not latencies:
        raise RuntimeError("the Python load generator got no answer")
    return Measured(
        rps=len(latencies) / seconds,
        p50_ms=1000 * _nearest_rank(latencies, 0.50),
        p99_ms=1000 * _nearest_rank(latencies, 0.99),
        requests=len(latencies),
        errors=errors,
    )


def _nearest_rank(ordered: list[float], p: float) -> float:
    return ordered[max(0, -(-int(p * 1000) * len(ordered) // 1000) - 1)]


@dataclass
class LoadGenerator:
    kind: str  # "wrk" or "python"
    work_dir: Path
    threads: int
    processes: int

    def measure(self, base: str, paths: list[str], connections: int, warmup: float, seconds: float) -> Measured:
        if self.kind == "wrk":
            script = self.work_dir / "random_path.lua"
            if not script.exists():
                script.write_text(WRK_SCRIPT)
            paths_file = self.work_dir / f"paths-{abs(hash(tuple(paths))) % 10**12}.txt"
            paths_file.write_text("\n".join(paths) + "\n")
            if warmup > 0:
                run_wrk(base, paths_file, connections, warmup, script, self.threads)
            return run_wrk(base, paths_file, connections, seconds, script, self.threads)
        if warmup > 0:
            run_python(base, paths, connections, warmup, self.processes)
        return run_python(base, paths, connections, seconds, self.processes)

    def describe(self, connections: int) -> str:
        if self.kind == "wrk":
            return f"wrk, {self.threads} thread(s), {connections} connections"
        return f"Python load generator, {self.processes} process(es), {connections} connections"


def pick_generator(choice: str, work_dir: Path, threads: int) -> LoadGenerator:
    has_wrk = shutil.which("wrk") is not None
    if choice == "wrk" and not has_wrk:
        sys.exit("wrk is not installed: on Debian or Ubuntu `sudo apt-get install -y wrk` (or run with "
                 "--generator python for the slower Python load generator)")  # fmt: skip
    if choice == "auto" and not has_wrk:
        print("note: wrk is not installed (Debian/Ubuntu: `sudo apt-get install -y wrk`); using the Python load "
              "generator, which takes more of the CPU than wrk would", file=sys.stderr)  # fmt: skip
    kind = "wrk" if has_wrk and choice != "python" else "python"
    return LoadGenerator(kind, work_dir, threads, max(1, (os.cpu_count() or 2) // 2))


# --- the runs ---------------------------------------------------------------------------------------------------------


def api_env(store_url: str, work_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVIC_") and k != "WEB_CONCURRENCY"}
    env.update(
        CIVIC_STORE_URL=store_url,
        CIVIC_CONTRACT=CONTRACT,
        CIVIC_CHAIN_ID=str(CHAIN_ID),
        CIVIC_RPC_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there: none of these routes asks the node
        CIVIC_DATA_DIR=str(work_dir / "data"),
        CIVIC_READ_RATE_PER_MINUTE="0",
        # nor a figures budget or time share: what a computation costs is measured, not the defences (bench/abuse.py)
        CIVIC_EXPENSIVE_RATE_PER_MINUTE="0",
        CIVIC_MAX_COMPUTATIONS="1",
        CIVIC_COMPUTATION_SHARE="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def scorecard_paths() -> tuple[str, list[str]]:
    """The city's 90-day scorecard by agency, and 10,000 variants of it that no cache has seen (distinct as_of)."""
    start, end = bm.NOW - 90 * bm.DAY, bm.NOW
    cached = f"/api/v1/scorecards?by=agency&from={start}&to={end}"
    rng = random.Random(7)
    as_of = rng.sample(range(start, end), SAMPLED_CASES)
    return cached, [f"{cached}&as_of={t}" for t in as_of]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each measured run")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="the many-workers setup")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    # a SIGTERM unwinds like Ctrl-C: the servers are stopped and the database dropped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work_dir = Path(tempfile.mkdtemp(prefix="civic-bench-api-"))
    generator = pick_generator(args.generator, work_dir, args.threads)
    (work_dir / "ceiling").mkdir()
    (work_dir / "ceiling" / "civic_bench_ceiling.py").write_text(CEILING_MODULE)
    load_before = os.getloadavg()
    try:
        with bench_database(make_url(args.url)) as bench_url:
            progress(f"loading {args.cases:,} cases into {bench_url.database}")
            data = build_database(bench_url, args.cases)
            store_url = bench_url.render_as_string(hide_password=False)
            env = api_env(store_url, work_dir)
            ceiling_env = {**env, "PYTHONPATH": str(work_dir / "ceiling")}
            cached, uncached = scorecard_paths()
            load_start = os.getloadavg()
            results: dict[str, dict[str, Measured]] = {}
            for setup, workers in (("default", None), ("many", args.workers)):
                n = workers or 1
                figures: dict[str, Measured] = {}
                progress(f"{setup}: uvicorn with {f'--workers {workers}' if workers else 'its default setup'}")
                with serve("api.app:create_app", workers, env, work_dir, data.case_paths[0]) as api:
                    progress(f"{setup}: case lookup")
                    figures["case_lookup"] = generator.measure(
                        api.base, data.case_paths, args.connections, args.warmup, args.duration
                    )
                    # computed once per worker first (each takes seconds), then measured like the others
                    progress(f"{setup}: scorecard")
                    warm_every_worker(api.base + cached)
                    figures["scorecard"] = generator.measure(
                        api.base, [cached], args.connections, args.warmup, args.duration
                    )
                    progress(f"{setup}: scorecard, uncached")
                    figures["scorecard_uncached"] = generator.measure(api.base, uncached, n, 0, 2 * args.duration)
                    progress(f"{setup}: scorecard as of now")
                    figures["scorecard_as_of_now"] = in_a_row(api.base + AS_OF_NOW, 3)
                progress(f"{setup}: the ceiling")
                with serve("civic_bench_ceiling:create_app", workers, ceiling_env, work_dir, "/constant") as ceiling:
                    figures["ceiling"] = generator.measure(
                        ceiling.base, ["/constant"], args.connections, args.warmup, args.duration
                    )
                results[setup] = figures
            load_end = os.getloadavg()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    report(args, generator, data, results, load_before, load_start, load_end)


LABELS = {
    "case_lookup": "case lookup (10,000 random real ids)",
    "scorecard": "scorecard by agency, city, 90 days",
    "scorecard_uncached": "same, uncached (distinct as_of each)",
    "scorecard_as_of_now": "page's default: all time, as of now (3)",
    "ceiling": "ceiling: bare FastAPI, constant",
}


def report(
    args: argparse.Namespace,
    generator: LoadGenerator,
    data: Dataset,
    results: dict[str, dict[str, Measured]],
    load_before: tuple[float, float, float],
    load_start: tuple[float, float, float],
    load_end: tuple[float, float, float],
) -> None:
    print(
        f"API on loopback over {data.cases:,} cases and {data.events:,} case events in PostgreSQL (load "
        f"{data.load_seconds:.0f} s, indexes + VACUUM ANALYZE + CHECKPOINT {data.index_seconds:.0f} s); "
        f"{generator.describe(args.connections)} (uncached scorecard: one per worker), {args.warmup:g} s warm-up then "
        f"{args.duration:g} s per run ({2 * args.duration:g} s uncached); {platform.machine()}, {os.cpu_count()} "
        f"cores, load average {load_before[0]:.1f} before the load, {load_start[0]:.1f} to {load_end[0]:.1f} "
        "during the runs"
    )
    setups = {"default": "uvicorn default (1 process)", "many": f"--workers {args.workers}"}
    print(f"{'request':40} {'setup':28} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for key, label in LABELS.items():
        for setup, title in setups.items():
            m = results[setup][key]
            print(f"{label:40} {title:28} {m.rps:9,.0f} {m.p50_ms:9.1f} {m.p99_ms:9.1f} {m.errors:7}")
    out: dict[str, Any] = {}
    for setup, suffix in (("many", ""), ("default", "_default")):
        for key in LABELS:
            m = results[setup][key]
            out[f"{key}_rps{suffix}"] = round(m.rps, 1)
            out[f"{key}_p50_ms{suffix}"] = round(m.p50_ms, 2)
            out[f"{key}_p99_ms{suffix}"] = round(m.p99_ms, 2)
            if m.errors:
                out[f"{key}_errors{suffix}"] = m.errors
    many = results["many"]
    met = all(many[k].rps >= TARGET_RPS and many[k].p99_ms < TARGET_P99_MS for k in ("case_lookup", "scorecard"))
    out.update(
        workers=args.workers,
        connections=args.connections,
        generator=generator.kind,
        cases=data.cases,
        cores=os.cpu_count(),
        load_average=[round(load_start[0], 2), round(load_end[0], 2)],
        target_met=met,
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
