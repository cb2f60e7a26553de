"""The public API keeps serving citizens while someone abuses it (a benchmark, not a test; issue 14).

Run: python bench/abuse.py [--cases N] [--duration S] [--warmup S] [--settle S] [--connections C] [--workers W]
[--abusers SCALE] [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--generator auto|wrk|python]

What it does, with ``bench/api.py``'s pieces (imported, not copied): creates a PostgreSQL database of its own and loads
N cases into it (``build_database``: ``bench/metrics.py``'s generator and COPY loader), starts ``uvicorn
api.app:create_app --factory --workers W`` on 127.0.0.1 (``serve``), and measures a polite load: case lookups, ``GET
/api/v1/cases/{agency}/{case}`` over 10,000 real case ids, from ``--connections`` keep-alive connections (wrk, or the
Python load generator: ``LoadGenerator``). Phases: a warm-up (not counted); the polite load alone for ``--duration``
seconds; then the abusers start, ``--settle`` seconds pass, and the polite load is measured again for ``--duration``
seconds while they run; then they stop. A table and one JSON line follow. The database is dropped at the end and
every process started here is stopped, also on failure (a SIGTERM unwinds like Ctrl-C).

The abusers run in a process of their own (asyncio, raw sockets), so their CPU is not the polite generator's; they are
about holding the server's resources and making it do expensive work, not about request rate (the table shows the CPU
they used: a small share of the 2 cores). Each abusive request opens its own connection from a source address bound
on loopback: 16 addresses (127.0.0.2 onwards; ``--abusers`` scales their number with the rest) so that limits per
address do not stop everything at once, and one abuser from the single address 127.0.0.254 doing a share of every
kind. At ``--abusers 1``:

* slow export readers: 20 connections (4 from the single address) each ``GET /api/v1/export/entries.csv`` with a
  4 KB receive buffer, read 8 KB, then 1 KB a second; reconnect a second after the server ends one;
* cache-busting figures: ``GET /api/v1/metrics?as_of=T`` and ``GET /api/v1/scorecards?by=agency&as_of=T``,
  alternately, each ``T`` a distinct second of the data's year (no cache has it), 4 lanes at 1 request/s each
  (up to 4 in flight per lane) and the single address at 4/s (up to 8 in flight);
* oversized chunked posts (``Transfer-Encoding: chunked``, up to 16 MiB each, to ``/api/v1/filings``,
  ``/api/v1/agency/records``, ``/api/v1/ratings`` and Open311's ``POST /open311/v2/requests.json`` in turn): fast
  ones (64 KiB chunks back to back; 2 lanes at 0.5/s, the single address 1/s) and slow ones (1 KiB every 0.1 s,
  6 connections, 2 from the single address, each held until the server answers);
* deep Open311 pages: ``GET /open311/v2/requests.json`` over the data's last 89 days (the default window, the 90
  days before today, holds no bench data) with ``page_size=1000`` and ``page=1000000`` or a random page of the real
  ones in turn; 2 lanes at 1/s (up to 4 in flight each), the single address at 2/s.

Every lane is open loop at its rate with a cap on requests in flight (or closed loop, for the held connections), every
wait has a timeout (60 s for an answer), the abusers stop when told or at a deadline of their own, and they send at
most 100,000 requests. ``abusive_requests`` counts every request an abuser started, whatever came of it; the table
tallies the outcomes by kind: the HTTP status, ``reset`` (the server closed the connection before an answer),
``timeout``, ``open at stop`` (still unanswered when the abusers stopped); with the MB moved (sent for the posts,
received for the rest) and the 99th percentile of the seconds to an answer's head.

Limits: the server runs with its DEFAULT settings (rate limits, export caps, budgets, statement timeout) but one:
the polite load comes from 127.0.0.1 alone at well over a thousand requests a second, which the default read rate
(``read_rate_per_minute``, per address and worker) would cut to a few percent of it, so ``CIVIC_READ_RATE_PER_MINUTE``
is raised to 1,000,000. No abuser comes from 127.0.0.1, and each sends far fewer requests than the default read rate
allows, so that change frees none of them: what bounds them are the server's other defences. As in ``bench/api.py``,
``CIVIC_RPC_URL`` points at an unused port (writes that get past the checks fail as the node being unavailable).

``api_peak_rss_mb``: the peak of the summed resident memory of uvicorn's processes (the master, the workers and any
process of theirs: its session), sampled from /proc every 100 ms over the whole run (PostgreSQL's own is not counted).

JSON keys: ``polite_rps_alone``, ``polite_p99_ms_alone``, ``polite_rps_under_abuse``, ``polite_p99_ms_under_abuse``,
``abusive_requests``, ``api_peak_rss_mb``; besides: the polite p50 and errors (non-2xx answers and failures) of both
runs, the memory peak before the abusers came, the abusers' outcomes and CPU seconds, the setup, and ``target_met``.

Target (issue 14): under abuse, polite p99 < 100 ms and throughput ≥ 50 % of alone, no polite request refused or
failed; memory bounded (shown: the peak before and during the abuse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import queue
import random
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from siblings import sibling

ba = sibling("api")
bm = ba.bm

from sqlalchemy.engine import make_url

from ledger.workdays import LOCAL_UTC_OFFSET_SECONDS

TARGET_P99_MS = 100.0
TARGET_SHARE = 0.5
#: the read rate the server gets here (per address and worker; default 6000): only the polite load comes near it
POLITE_READ_RATE_PER_MINUTE = 1_000_000
HOST = "127.0.0.1"  # the server's address and the polite load's source
SINGLE_ADDRESS = "127.0.0.254"
MAX_ABUSIVE_REQUESTS = 100_000
CONNECT_TIMEOUT = 10.0
ANSWER_TIMEOUT = 60.0
#: how long a slow reader or a slow post waits for the server to take or give a byte before giving up
STALL_TIMEOUT = 60.0
#: how long after the last of the polite load the abusers must have stopped by themselves
ABUSER_GRACE = 60.0
EXPORT_PATH = "/api/v1/export/entries.csv"
EXPORT_FAST_BYTES = 8 * 1024
EXPORT_RECEIVE_BUFFER = 4 * 1024
POST_BYTES = 16 * 2**20
#: (path, content type) of the posts, taken in turn
POST_TARGETS = (
    ("/api/v1/filings", "application/json"),
    ("/api/v1/agency/records", "application/json"),
    ("/api/v1/ratings", "application/json"),
    ("/open311/v2/requests.json", "application/x-www-form-urlencoded"),
)
DEEP_PAGE = 1_000_000
DEEP_PAGE_SIZE = 1000
WINDOW_DAYS = 89  # Open311's window is at most 90 days; a date alone is its whole local day


# --- the abusers ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lanes:
    """One kind of abuse from one kind of source: ``count`` lanes (paced at ``rate`` requests a second each with up to
    ``in_flight`` unanswered, or, with ``rate`` 0, each one connection held and opened again a second after it
    ends)."""

    kind: str
    source: str  # "many" (spread over the addresses) or "single"
    count: int
    rate: float = 0.0
    in_flight: int = 1


KINDS = {
    "slow_export": "slow export reader (1 KB/s)",
    "busting": "cache-busting figures",
    "post_fast": "oversized chunked post, fast",
    "post_slow": "oversized chunked post, slow",
    "deep_page": "deep Open311 page",
}


def plan(scale: float) -> tuple[list[Lanes], int]:
    """The lanes at ``--abusers scale`` (counts scale, rates per lane do not), and how many addresses they share."""

    def n(count: int) -> int:
        return max(1, round(count * scale))

    lanes = [
        Lanes("slow_export", "many", n(16)),
        Lanes("busting", "many", n(4), rate=1.0, in_flight=4),
        Lanes("post_fast", "many", n(2), rate=0.5, in_flight=2),
        Lanes("post_slow", "many", n(4)),
        Lanes("deep_page", "many", n(2), rate=1.0, in_flight=4),
        Lanes("slow_export", "single", n(4)),
        Lanes("busting", "single", n(1), rate=4.0, in_flight=8),
        Lanes("post_fast", "single", n(1), rate=1.0, in_flight=2),
        Lanes("post_slow", "single", n(2)),
        Lanes("deep_page", "single", n(1), rate=2.0, in_flight=4),
    ]
    return lanes, min(200, n(16))


def open311_window(n_cases: int) -> tuple[str, str, int]:
    """Start and end dates (local) of the data's last days, within Open311's 90, and how many full pages they hold."""
    local = timedelta(seconds=LOCAL_UTC_OFFSET_SECONDS)
    end = (datetime.fromtimestamp(bm.NOW - 1, UTC) + local).date()
    start = end - timedelta(days=WINDOW_DAYS - 1)
    in_window = n_cases * WINDOW_DAYS // 365
    return start.isoformat(), end.isoformat(), max(1, in_window // DEEP_PAGE_SIZE)


class _Attempt:
    """One abusive request: counted when started, its outcome tallied once."""

    def __init__(self, abuse: _Abuse, key: str) -> None:
        self.abuse, self.key, self.done = abuse, key, False
        self.began = time.perf_counter()
        abuse.requests[key] += 1

    def answered(self, outcome: str) -> None:
        if not self.done:
            self.done = True
            self.abuse.outcomes[self.key][outcome] += 1
            if outcome[:1].isdigit():
                self.abuse.took[self.key].append(time.perf_counter() - self.began)


Job = Callable[[str, _Attempt], Awaitable[None]]


class _Abuse:
    def __init__(self, port: int, addresses: int, n_cases: int, seed: int) -> None:
        self.port = port
        self.many = [f"127.0.0.{2 + i}" for i in range(addresses)]
        self.rng = random.Random(seed)
        self.requests: Counter[str] = Counter()
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.moved: Counter[str] = Counter()  # bytes: sent for posts, received for the rest
        self.took: defaultdict[str, list[float]] = defaultdict(list)  # seconds to an answer's head
        self._as_of_used: set[int] = set()
        self.stopping = False
        #: lanes that had not ended 10 s after they were cancelled (the report does not wait for them)
        self.lingering = 0
        self._turns: Counter[str] = Counter()
        self._start_date, self._end_date, self._real_pages = open311_window(n_cases)
        self.jobs: dict[str, Job] = {
            "slow_export": self.slow_export,
            "busting": self.busting,
            "post_fast": self.post_fast,
            "post_slow": self.post_slow,
            "deep_page": self.deep_page,
        }

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def _turn(self, what: str) -> int:
        self._turns[what] += 1
        return self._turns[what]

    # -- lanes --

    async def run(self, lanes: list[Lanes], stop: Any, ready: Any, until: float) -> None:
        tasks: list[asyncio.Task[None]] = []
        spread = 0
        for lane in lanes:
            for _ in range(lane.count):
                if lane.source == "single":
                    source = SINGLE_ADDRESS
                else:
                    source, spread = self.many[spread % len(self.many)], spread + 1
                key = f"{lane.kind}/{lane.source}"
                if lane.rate > 0:
                    tasks.append(asyncio.create_task(self._paced(key, source, lane.rate, lane.in_flight)))
                else:
                    tasks.append(asyncio.create_task(self._held(key, source)))
        ready.set()
        try:
            while time.time() < until and not stop.is_set() and self.total < MAX_ABUSIVE_REQUESTS:
                await asyncio.sleep(0.1)
        finally:
            self.stopping = True
            for task in tasks:
                task.cancel()
            if tasks:
                self.lingering = len((await asyncio.wait(tasks, timeout=10))[1])

    async def _paced(self, key: str, source: str, rate: float, in_flight: int) -> None:
        """Open loop: a request every 1/rate seconds while fewer than ``in_flight`` are unanswered."""
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[None]] = set()
        next_at = loop.time() + self.rng.random() / rate  # lanes out of step
        try:
            while not self.stopping:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at += 1 / rate
                if len(running) < in_flight:
                    task = asyncio.create_task(self._one(key, source))
                    running.add(task)
                    task.add_done_callback(running.discard)
        finally:
            for task in list(running):
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _held(self, key: str, source: str) -> None:
        """Closed loop: one connection held as long as the server lets it, another a second after it ends."""
        while not self.stopping:
            await self._one(key, source)
            await asyncio.sleep(1.0)

    async def _one(self, key: str, source: str) -> None:
        attempt = _Attempt(self, key)
        try:
            await self.jobs[key.split("/")[0]](source, attempt)
            attempt.answered("no answer")  # the server closed the connection cleanly without a head
        except asyncio.CancelledError:
            attempt.answered("open at stop")
            raise
        except TimeoutError:
            attempt.answered("timeout")
        except ConnectionRefusedError:
            attempt.answered("refused")
        except (ConnectionResetError, BrokenPipeError, EOFError):
            attempt.answered("reset")
        except (OSError, ValueError) as exc:
            attempt.answered(f"error: {type(exc).__name__}")

    # -- the kinds of abuse --

    async def slow_export(self, source: str, attempt: _Attempt) -> None:
        loop = asyncio.get_running_loop()
        sock = await _connect(source, self.port, receive_buffer=EXPORT_RECEIVE_BUFFER)
        got = 0
        try:
            await loop.sock_sendall(sock, _get(EXPORT_PATH, self.port))
            status, rest = await _within(_head(sock), ANSWER_TIMEOUT)
            attempt.answered(str(status))
            got = len(rest)
            if status != 200:
                got += await _drain(sock)
                return
            while got < EXPORT_FAST_BYTES:
                data = await _within(loop.sock_recv(sock, EXPORT_FAST_BYTES - got), STALL_TIMEOUT)
                if not data:
                    return
                got += len(data)
            while not self.stopping:
                await asyncio.sleep(1.0)
                data = await _within(loop.sock_recv(sock, 1024), STALL_TIMEOUT)
                if not data:
                    return
                got += len(data)
        finally:
            self.moved[attempt.key] += got
            sock.close()

    async def busting(self, source: str, attempt: _Attempt) -> None:
        while True:
            as_of = self.rng.randrange(bm.START, bm.NOW)
            if as_of not in self._as_of_used:
                break
        self._as_of_used.add(as_of)
        if self._turn("busting") % 2:
            path = f"/api/v1/metrics?as_of={as_of}"
        else:
            path = f"/api/v1/scorecards?by=agency&as_of={as_of}"
        await self._get_all(source, path, attempt)

    async def deep_page(self, source: str, attempt: _Attempt) -> None:
        page = DEEP_PAGE if self._turn("deep") % 2 else self.rng.randint(1, self._real_pages)
        path = (f"/open311/v2/requests.json?start_date={self._start_date}&end_date={self._end_date}"
                f"&page_size={DEEP_PAGE_SIZE}&page={page}")  # fmt: skip
        await self._get_all(source, path, attempt)

    async def post_fast(self, source: str, attempt: _Attempt) -> None:
        await self._post(source, attempt, chunk=64 * 1024, pause=0.0)

    async def post_slow(self, source: str, attempt: _Attempt) -> None:
        await self._post(source, attempt, chunk=1024, pause=0.1)

    async def _get_all(self, source: str, path: str, attempt: _Attempt) -> None:
        """A GET on a connection of its own, its answer read to the end (bounded) and thrown away."""
        sock = await _connect(source, self.port)
        try:
            await asyncio.get_running_loop().sock_sendall(sock, _get(path, self.port))
            status, rest = await _within(_head(sock), ANSWER_TIMEOUT)
            attempt.answered(str(status))
            self.moved[attempt.key] += len(rest) + await _within(_drain(sock), ANSWER_TIMEOUT)
        finally:
            sock.close()

    async def _post(self, source: str, attempt: _Attempt, chunk: int, pause: float) -> None:
        """A chunked POST of up to :data:`POST_BYTES`, sent ``chunk`` bytes at a time (``pause`` between), until the
        server answers or cuts it."""
        loop = asyncio.get_running_loop()
        path, content_type = POST_TARGETS[self._turn("post") % len(POST_TARGETS)]
        frame = f"{chunk:x}\r\n".encode() + b"A" * chunk + b"\r\n"
        sock = await _connect(source, self.port)
        sent = 0
        answer: asyncio.Task[tuple[int, bytes]] | None = None
        try:
            head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nContent-Type: {content_type}\r\n"
                    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")  # fmt: skip
            await loop.sock_sendall(sock, head.encode())
            answer = asyncio.create_task(_head(sock))
            while sent < POST_BYTES and not answer.done() and not self.stopping:
                sending = asyncio.create_task(loop.sock_sendall(sock, frame))
                await asyncio.wait({sending, answer}, timeout=STALL_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
                if not sending.done():  # the server answered, or takes nothing more
                    sending.cancel()
                    await asyncio.gather(sending, return_exceptions=True)
                    break
                if sending.exception() is not None:  # the server cut the upload: its answer may be there
                    break
                sent += chunk
                if pause:
                    await asyncio.sleep(pause)
            if sent >= POST_BYTES and not answer.done():
                try:
                    await loop.sock_sendall(sock, b"0\r\n\r\n")
                except OSError:  # cut at the last moment: its answer may be there
                    pass
            status, _ = await _within(asyncio.shield(answer), ANSWER_TIMEOUT)
            attempt.answered(str(status))
        finally:
            if answer is not None:
                answer.cancel()  # nothing if it is done; either way its outcome is collected
                await asyncio.gather(answer, return_exceptions=True)
            self.moved[attempt.key] += sent
            sock.close()

    def summary(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "outcomes": {key: dict(counts) for key, counts in self.outcomes.items()},
            "moved": dict(self.moved),
            "took_p99": {key: ba._nearest_rank(sorted(took), 0.99) for key, took in self.took.items() if took},
        }


T = TypeVar("T")


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """``awaitable`` with a time limit (``asyncio.timeout``: on Python 3.11 ``wait_for`` may lose a cancellation that
    comes as the awaited thing ends, and the abusers must stop when told)."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def _connect(source: str, port: int, receive_buffer: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((source, 0))
        await _within(asyncio.get_running_loop().sock_connect(sock, (HOST, port)), CONNECT_TIMEOUT)
    except BaseException:
        sock.close()
        raise
    return sock


def _get(path: str, port: int) -> bytes:
    head = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    return head.encode()


async def _head(sock: socket.socket) -> tuple[int, bytes]:
    """Read an answer's head: its status and the bytes after it."""
    loop = asyncio.get_running_loop()
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = await loop.sock_recv(sock, 65536)
        if not data:
            raise EOFError("closed before an answer")
        buffer += data
        if len(buffer) > 65536:
            raise ValueError("an answer's head over 64 KiB")
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return int(head[9:12]), rest


async def _drain(sock: socket.socket, limit: int = 256 * 2**20) -> int:
    """Read until the server closes (``Connection: close``) or ``limit`` bytes; how many were read."""
    loop = asyncio.get_running_loop()
    got = 0
    while got < limit:
        data = await loop.sock_recv(sock, 256 * 1024)
        if not data:
            break
        got += len(data)
    return got


def abuser_process(port: int, scale: float, n_cases: int, until: float, stop: Any, ready: Any, results: Any) -> None:
    """The abusers' process: runs the lanes until ``stop`` is set or ``until`` (wall clock), then reports."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops this process
    lanes, addresses = plan(scale)
    abuse = _Abuse(port, addresses, n_cases, seed=14)
    began = time.perf_counter()

    async def main() -> None:
        await abuse.run(lanes, stop, ready, until)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # reported from here: should a lane linger, asyncio.run would wait for it, and the parent kills this process
        results.put({**abuse.summary(), "seconds": time.perf_counter() - began, "addresses": addresses,
                     "cpu_seconds": usage.ru_utime + usage.ru_stime, "lingering": abuse.lingering})  # fmt: skip

    asyncio.run(main())


class Abusers:
    """The abusers' process, started on entry (once its lanes run) and stopped on exit, killed if it does not stop."""

    def __init__(self, port: int, scale: float, n_cases: int, until: float) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: the parent has threads (the memory sampler)
        self._stop, self._ready, self._results = context.Event(), context.Event(), context.Queue()
        self.process = context.Process(
            target=abuser_process,
            args=(port, scale, n_cases, until, self._stop, self._ready, self._results),
            daemon=True,
        )
        self.summary: dict[str, Any] | None = None

    def __enter__(self) -> Abusers:
        self.process.start()
        try:
            if not self._ready.wait(120):
                raise RuntimeError("the abusers did not start in 2 minutes")
        except BaseException:
            self._kill()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        try:
            if kind is None:
                try:
                    self.summary = self._results.get(timeout=60)
                except queue.Empty:
                    raise RuntimeError("the abusers did not report within a minute of being told to stop") from None
        finally:
            self.process.join(10)
            self._kill()

    def _kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)


# --- the server's memory ----------------------------------------------------------------------------------------------


class RssSampler:
    """The peak, per phase, of the summed RSS of the processes of a session (uvicorn's: ``serve`` starts it in a
    session of its own), from /proc every ``every`` seconds; the processes are looked up again every second."""

    def __init__(self, session: int, every: float = 0.1) -> None:
        self.session, self.every = session, every
        self.phase = "before abuse"
        self.peaks: dict[str, float] = {}
        self.seen: set[int] = set()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max(self.peaks.values(), default=0.0)

    def _members(self) -> list[int]:
        members = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stat = Path(entry.path, "stat").read_text()
                except OSError:  # gone in between
                    continue
                # after the command's closing parenthesis: state, ppid, pgrp, session
                if int(stat.rpartition(")")[2].split()[3]) == self.session:
                    members.append(int(entry.name))
        self.seen.update(members)
        return members

    def _run(self) -> None:
        members: list[int] = []
        looked = 0.0
        while not self._stop.wait(self.every):
            if time.monotonic() - looked >= 1.0:
                members, looked = self._members(), time.monotonic()
            total = 0
            for pid in members:
                try:
                    total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self._page
                except (OSError, IndexError):
                    continue
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), total / 2**20)


# --- the run ----------------------------------------------------------------------------------------------------------


@dataclass
class Polite:
    measured: Any  # bench/api.py's Measured
    cpu_seconds: float  # the load generator's (wrk's, or the Python generator's processes')


def measure_polite(generator: Any, base: str, paths: list[str], connections: int, warmup: float,
                   seconds: float) -> Polite:  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    measured = generator.measure(base, paths, connections, warmup, seconds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Polite(measured, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def check_addresses(addresses: int) -> None:
    """Each abuser address can be bound on this machine's loopback."""
    for address in [f"127.0.0.{2 + i}" for i in range(addresses)] + [SINGLE_ADDRESS]:
        with socket.socket() as sock:
            try:
                sock.bind((address, 0))
            except OSError as exc:
                raise SystemExit(f"cannot bind {address} on loopback ({exc}): the abusers need 127.0.0.0/8") from exc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of polite load measured, each run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of polite load before the first run")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between the abusers' start and the run")
    parser.add_argument("--connections", type=int, default=16, help="the polite load's keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn --workers")
    parser.add_argument("--abusers", type=float, default=1.0, help="scale of the abusive load (lanes, addresses)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    if args.abusers <= 0:
        parser.error("--abusers must be above 0")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    check_addresses(plan(args.abusers)[1])

    work_dir = Path(tempfile.mkdtemp(prefix="civic-bench-abuse-"))
    generator = ba.pick_generator(args.generator, work_dir, args.threads)
    try:
        with ba.bench_database(make_url(args.url)) as bench_url:
            ba.progress(f"loading {args.cases:,} cases into {bench_url.database}")
            data = ba.build_database(bench_url, args.cases)
            env = ba.api_env(bench_url.render_as_string(hide_password=False), work_dir)
            env["CIVIC_READ_RATE_PER_MINUTE"] = str(POLITE_READ_RATE_PER_MINUTE)
            for name in ("CIVIC_EXPENSIVE_RATE_PER_MINUTE", "CIVIC_MAX_COMPUTATIONS", "CIVIC_COMPUTATION_SHARE"):
                env.pop(name, None)  # bench/api.py lifts these to measure costs; here the defaults defend
            ba.progress(f"uvicorn --workers {args.workers}")
            with (
                ba.serve("api.app:create_app", args.workers, env, work_dir, data.case_paths[0]) as api,
                RssSampler(api.process.pid) as rss,
            ):
                load_start = os.getloadavg()
                ba.progress(f"polite load alone ({args.warmup:g} s warm-up, {args.duration:g} s)")
                alone = measure_polite(generator, api.base, data.case_paths, args.connections, args.warmup,
                                       args.duration)  # fmt: skip
                ba.progress("abusers starting")
                until = time.time() + 120 + args.settle + args.duration + ABUSER_GRACE
                with Abusers(api.port, args.abusers, args.cases, until) as abusers:
                    rss.phase = "abuse"
                    time.sleep(args.settle)
                    ba.progress(f"polite load under abuse ({args.duration:g} s)")
                    under = measure_polite(generator, api.base, data.case_paths, args.connections, 0,
                                           args.duration)  # fmt: skip
                    ba.progress("abusers stopping")
                rss.phase = "after"
                load_end = os.getloadavg()
                alive = api.process.poll() is None
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    assert abusers.summary is not None
    report(args, generator, data, alone, under, abusers.summary, rss, alive, (load_start[0], load_end[0]))


def report(args: argparse.Namespace, generator: Any, data: Any, alone: Polite, under: Polite,
           abuse: dict[str, Any], rss: RssSampler, alive: bool, load: tuple[float, float]) -> None:  # fmt: skip
    print(
        f"Polite case lookups on loopback over {data.cases:,} cases in PostgreSQL, uvicorn --workers {args.workers} "
        f"(default limits but the read rate, {POLITE_READ_RATE_PER_MINUTE:,}/min); "
        f"{generator.describe(args.connections)}; {args.duration:g} s alone, then"
        f" {args.duration:g} s under abuse ({args.settle:g} s after it began); "
        f"abusers at scale {args.abusers:g} from {abuse['addresses']} addresses and {SINGLE_ADDRESS}; "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.1f} to {load[1]:.1f} during the runs"
    )
    print(f"{'polite load':28} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7} {'generator CPU s':>16}")
    for label, run in (("alone", alone), ("under abuse", under)):
        m = run.measured
        print(f"{label:28} {m.rps:9,.0f} {m.p50_ms:9.1f} {m.p99_ms:9.1f} {m.errors:7} {run.cpu_seconds:16.1f}")
    print()
    print(f"{'abuse':32} {'from':8} {'requests':>9} {'MB moved':>9} {'p99 s':>7}  answers")
    totals: Counter[str] = Counter()
    for lanes in plan(args.abusers)[0]:
        key = f"{lanes.kind}/{lanes.source}"
        outcomes = Counter(abuse["outcomes"].get(key, {}))
        totals.update(outcomes)
        p99 = abuse["took_p99"].get(key)
        p99_text = "-" if p99 is None else f"{p99:.2f}"
        shown = ", ".join(f"{o}: {c}" for o, c in sorted(outcomes.items()))
        print(f"{KINDS[lanes.kind]:32} {lanes.source:8} {abuse['requests'].get(key, 0):9} "
              f"{abuse['moved'].get(key, 0) / 2**20:9.1f} {p99_text:>7}  {shown}")  # fmt: skip
    requests = sum(abuse["requests"].values())
    print(f"{'all':41} {requests:9} {'':9} {'':7}  " + ", ".join(f"{o}: {c}" for o, c in sorted(totals.items())))
    print(
        f"abusers' CPU: {abuse['cpu_seconds']:.1f} s over {abuse['seconds']:.0f} s"
        + (f"; {abuse['lingering']} lanes had not ended 10 s after the stop" if abuse["lingering"] else "")
    )
    peaks = ", ".join(f"{phase} {mb:,.0f} MB" for phase, mb in rss.peaks.items())
    print(f"uvicorn's memory (RSS, summed): peak {rss.peak:,.0f} MB ({peaks}); {len(rss.seen)} processes seen "
          f"(without a restart {args.workers + 2}: the master, multiprocessing's resource tracker, the workers); "
          f"{'still running' if alive else 'EXITED'} at the end")  # fmt: skip

    a, u = alone.measured, under.measured
    met = u.p99_ms < TARGET_P99_MS and u.rps >= TARGET_SHARE * a.rps and u.errors == 0 and alive
    out = {
        "polite_rps_alone": round(a.rps, 1),
        "polite_p99_ms_alone": round(a.p99_ms, 2),
        "polite_rps_under_abuse": round(u.rps, 1),
        "polite_p99_ms_under_abuse": round(u.p99_ms, 2),
        "abusive_requests": requests,
        "api_peak_rss_mb": round(rss.peak, 1),
        "polite_p50_ms_alone": round(a.p50_ms, 2),
        "polite_p50_ms_under_abuse": round(u.p50_ms, 2),
        "polite_errors_alone": a.errors,
        "polite_errors_under_abuse": u.errors,
        "api_peak_rss_mb_before_abuse": round(rss.peaks.get("before abuse", 0.0), 1),
        "abusive_outcomes": dict(sorted(totals.items())),
        "abusers_cpu_seconds": round(abuse["cpu_seconds"], 1),
        "abusers_scale": args.abusers,
        "workers": args.workers,
        "connections": args.connections,
        "generator": generator.kind,
        "cases": data.cases,
        "cores": os.cpu_count(),
        "load_average": [round(load[0], 2), round(load[1], 2)],
        "target_met": met,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
