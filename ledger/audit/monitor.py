"""``civic-audit monitor``: the auditor following the chain continuously, in rounds.

Each round
    reads the logs and headers of the blocks added since the last round only (``ChainReader`` from the block after the
    last one read), checks that the new entries continue the log verified so far — seq after seq from the stored
    count, folding from the stored running hash to the contract's own ``entryCount()`` and ``runningHash()`` at the
    new block — fetches and checks the new batch anchors' files, extends the model (``ledger.audit.rebuild.Builder``:
    each new entry costs itself and the cases it touches), runs the checks (:data:`EVERY_ROUND`; the whole set every
    ``full_every`` rounds, the first included), and, when the round is clean, adds what it read to the state on disk
    (``ledger.audit.state``) so that a restart resumes from it.
Samples
    are drawn again every round from a fresh secret seed, published in that round's report only; the API's requests
    are spread over ``spread`` seconds with random (exponential) pauses, with the careful client's ordinary browser
    identity (``ledger.audit.apiread``).
Reorganisations
    are followed: when the last block read is no longer the node's block at that height, the state is cut back to the
    latest round end that still is (of the last ``ledger.audit.state.WINDOW`` rounds) and the blocks after it are read
    again; deeper than that, everything is read again. A reorganisation while a round reads the chain makes the round
    start over, never a finding.
The first finding
    ends the monitor (exit code 1) after the alert: the round's JSON report in the state directory, one log line at
    CRITICAL naming the check and the finding, and an optional webhook (a JSON POST; a failing webhook is logged,
    never fatal). A round's state is kept only when the round is clean, so a restart looks again.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import httpx

from ledger.audit.apiread import PublicApi
from ledger.audit.batchfiles import BatchOutcome, anchors_of
from ledger.audit.chainread import ChainReader, ChainSnapshot
from ledger.audit.checks import CHECKS, check_named
from ledger.audit.context import AuditConfig, AuditContext
from ledger.audit.errors import CannotAudit
from ledger.audit.model import AuditReport, CheckResult, Finding
from ledger.audit.rebuild import Builder, LedgerModel
from ledger.audit.report import report_bytes, write_html
from ledger.audit.rpc import Rpc, safe_url
from ledger.audit.runner import (
    Batches,
    api_position,
    build_of,
    fetch_batches,
    gc_paused,
    make_report,
    open_api,
    run_checks,
)
from ledger.audit.state import BatchFile, Checkpoint, DamagedState, StateDir, Stored
from ledger.chain.logs import DecodedEntry
from ledger.encoding import ZERO_HEAD
from ledger.errors import LedgerError
from ledger.records import EntryKind

log = logging.getLogger("civic-audit.monitor")

DEFAULT_INTERVAL = 15.0
DEFAULT_FULL_EVERY = 10
#: the checks of full rounds only (the first round of a run, then every ``full_every`` rounds): api_records compares
#: every entry, batch, agency, commitment and case state the API serves — all its pages and exports, the whole ledger
#: again each time — with the case-view sample and the API's position and lag
FULL_ONLY = ("api_records",)
#: the checks that run every round: the chain's (over the new entries and every case they touch; the log's continuity
#: over the new entries only) and the API's drawn samples (metric and scorecard selections, Open311 queries and
#: requests, receipt and entry views, …) — each round draws them again
EVERY_ROUND = tuple(c.name for c in CHECKS if c.name not in FULL_ONLY)
#: what a round's requests are expected to number before one has been counted (for the pauses between them)
FIRST_GUESS_REQUESTS = 200


@dataclass
class MonitorOptions:
    #: where the state is kept (``ledger.audit.state``)
    state: Path
    #: seconds from the start of a round to the start of the next
    interval: float = DEFAULT_INTERVAL
    #: stop after this many rounds (None: until stopped)
    rounds: int | None = None
    #: POST a JSON alert here on the first finding
    webhook: str | None = None
    #: spread a round's API requests over this many seconds (None: the interval; 0: no pauses)
    spread: float | None = None
    #: run every check every this many rounds (the first round of a run is one)
    full_every: int = DEFAULT_FULL_EVERY
    #: give up (exit code 2) after this many rounds in a row that could not run
    max_failures: int = 3
    #: also write each round's report here (the latest round's)
    json: Path | None = None
    html: Path | None = None

    def __post_init__(self) -> None:
        if self.interval < 0 or (self.spread is not None and self.spread < 0):
            raise ValueError("the interval and the spread are seconds, not negative")
        if self.full_every < 1 or self.max_failures < 1 or (self.rounds is not None and self.rounds < 1):
            raise ValueError("full_every, max_failures and rounds are at least 1")


@dataclass
class Round:
    """One round: its report (None when it could not run) and what it read."""

    number: int
    full: bool
    seed: int
    report: AuditReport | None = None
    #: blocks whose logs were read (first, last; first > last: none)
    blocks: tuple[int, int] = (0, -1)
    #: entries the log gained (a batch counting its entries), and the entry logs read (a batch anchor once)
    new_entries: int = 0
    logs: int = 0
    log_requests: int = 0
    api_requests: int = 0
    #: the block the state was cut back to after a reorganisation (None: none)
    reorg: int | None = None
    #: seconds spent reading the chain, fetching batch files, extending the model, checking the continuity, keeping
    #: the state, and running the checks
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def absorb_seconds(self) -> float:
        """The cost of taking in the new entries: read, verified, kept, model updated."""
        return sum(self.seconds.get(k, 0.0) for k in ("read", "batches", "model", "verify", "persist"))

    @property
    def findings(self) -> int:
        return 0 if self.report is None else sum(c.finding_total() for c in self.report.checks)


class Pacer:
    """Pauses before each request so that a round's requests spread over `seconds`: exponential pauses whose mean is
    the time left over the requests expected to be left (a Poisson stream: no rhythm to recognise). Woken by `stop`."""

    def __init__(self, seconds: float, expected: int, stop: threading.Event) -> None:
        self.seconds, self.expected, self.stop = seconds, max(1, expected), stop
        self.started = time.monotonic()
        self.sent = 0
        self._random = random.SystemRandom()

    def __call__(self, request: httpx.Request) -> None:
        self.sent += 1
        if self.seconds <= 0 or self.stop.is_set():
            return
        left = self.started + self.seconds - time.monotonic()
        if left <= 0:
            return
        remaining = max(1, self.expected - self.sent + 1)
        self.stop.wait(min(left, self._random.expovariate(remaining / left)))


class _Where(TypedDict):
    """The fields of a :class:`~ledger.audit.state.Stored` a clean round moves to the block it read."""

    block_number: int
    block_hash: bytes
    block_time: int
    entry_count: int
    running_hash: bytes


class Monitor:
    """Follows the ledger `config` names: :meth:`open` (binds or loads the state), then :meth:`round` as often as
    wanted, or :meth:`run` for the command line's loop. `api_client`: an ``httpx.Client`` serving the API in place of
    ``config.api_url`` (tests); `compiled`: a build made beforehand."""

    def __init__(
        self,
        config: AuditConfig,
        options: MonitorOptions,
        *,
        api_client: httpx.Client | None = None,
        compiled: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if config.to_block is not None:
            raise ValueError("the monitor follows the chain's head: it takes no to_block")
        self.config = config
        self.options = options
        self.dir = StateDir(options.state)
        self.stop = stop or threading.Event()
        self._api_client = api_client
        self._compiled = compiled
        self.build: Callable[[], dict[str, Any]] | None = None
        self.chain_id: int | None = None
        self.address = ""
        self.stored: Stored | None = None
        #: every entry and role change read and kept, in the order read; batch outcomes by the anchor's seq
        self.entries: list[DecodedEntry] = []
        self.role_changes: list[Any] = []
        self.outcomes: dict[int, BatchOutcome] = {}
        self.builder = Builder()
        #: the builder holds entries of a round that was not kept: made again before the next round
        self._ahead = False
        #: the kept part of the log file must be rewritten (a reorganisation cut it short)
        self._rewrite = False
        self.rounds = 0
        self._expected_requests = FIRST_GUESS_REQUESTS
        #: the last round that ran the whole set of checks to the end (None: none yet in this run)
        self._last_full: int | None = None

    # -- opening

    def open(self) -> None:
        """Check the node (chain id), start the build, and load the state (refused when it is another ledger's; set
        aside, saying so, when damaged)."""
        rpc = Rpc(self.config.rpc_url, timeout=self.config.timeout)
        try:
            reader = ChainReader(rpc, self.config.contract, expected_chain_id=self.config.chain_id)
            self.chain_id = reader.preflight()
            self.address = reader.address
        finally:
            rpc.close()
        if self.build is None:
            self.build = build_of(self.config, self._compiled)
        try:
            stored = self.dir.load(self.chain_id, self.address)
            if stored is not None:
                self._take_stored(stored)
        except DamagedState as exc:
            aside = self.dir.set_aside()
            log.warning("the monitor's state in %s is damaged (%s): set aside in %s; reading the chain afresh",
                        self.dir.path, exc, aside)
            self._forget()
            return
        if self.stored is not None:
            s = self.stored
            log.info("resuming from the state in %s: block %d, %d entries, %d rounds so far", self.dir.path,
                     s.block_number, s.entry_count, s.rounds)
        else:
            log.info("no state in %s yet: the first round reads the whole log", self.dir.path)

    def _take_stored(self, stored: Stored) -> None:
        """Rebuild the model from a loaded state, checking that its entries fold to what the contract said."""
        self.entries = list(stored.entries)
        self.role_changes = list(stored.role_changes)
        anchors = {e.seq: e for e in stored.entries if e.seq in stored.batches}
        self.outcomes = {seq: BatchOutcome(anchors[seq], where, content)
                         for seq, (content, where) in stored.batches.items()}
        with gc_paused():
            self.builder = Builder().extend(self.entries, {seq: c for seq, (c, _) in stored.batches.items()})
        model = self.builder.model()
        if model.count != stored.entry_count or _head(model) != stored.running_hash:
            raise DamagedState(f"its entries fold to {model.count} entries and running hash 0x{_head(model).hex()}, "
                               f"not to the {stored.entry_count} and 0x{stored.running_hash.hex()} the contract had "
                               f"at block {stored.block_number}")
        stored.entries, stored.role_changes, stored.batches = [], [], {}  # kept here, in order, from now on
        self.stored = stored

    def _forget(self) -> None:
        self.stored, self.entries, self.role_changes, self.outcomes = None, [], [], {}
        self.builder, self._ahead, self._rewrite = Builder(), False, False

    # -- a round

    def round(self) -> Round:
        """One round (see the module's docstring). :class:`CannotAudit` when it cannot run."""
        if self.chain_id is None:
            self.open()
        if self._ahead:
            with gc_paused():
                self.builder = Builder().extend(self.entries, self._contents())
            self._ahead = False
        self.rounds += 1
        every = self.options.full_every
        full = self._last_full is None or self.rounds - self._last_full >= every
        seed = secrets.randbits(64)
        config = dataclasses.replace(self.config, seed=seed)
        result = Round(self.rounds, full, seed)
        started, clock = int(time.time()), time.perf_counter()
        rpc = Rpc(config.rpc_url, timeout=config.timeout)
        try:
            with self._api(config) as api:
                facts = api_position(api)
                with gc_paused():
                    chain, fresh, batch_files, batches = self._read(rpc, config, api, result)
                    outcomes = batches.outcomes or {}
                    self._ahead = True
                    begun = time.perf_counter()
                    before = self.stored.entry_count if self.stored is not None else 0
                    self.builder.extend(fresh, batches.contents)
                    model = self.builder.model()
                    result.new_entries = model.count - before
                    result.seconds["model"] = time.perf_counter() - begun
                ctx = AuditContext(
                    config=config, chain=chain, model=model, reader=ChainReader(rpc, self.address), api=api,
                    compiled=self.build,
                    batch_files={**self.outcomes, **outcomes} if batches.source is not None else None,
                    batch_source=batches.source, batches_from_api=batches.from_api,
                )
                if facts is not None:
                    ctx.cache["api_chain_facts"] = facts
                begun = time.perf_counter()
                continuity = self._continuity(ctx, fresh)
                result.seconds["verify"] = time.perf_counter() - begun
                begun = time.perf_counter()
                leave = {} if full else {
                    name: f"not run this round: the monitor runs it in full rounds only (every {every} rounds; the "
                          f"next is round {(self._last_full or 0) + every})"
                    for name in FULL_ONLY
                }
                results, errors = run_checks(ctx, done={"log_complete": continuity}, leave=leave)
                result.seconds["checks"] = time.perf_counter() - begun
                if api is not None:
                    result.api_requests = api.requests
                    self._expected_requests = max(1, api.requests)
                result.report = make_report(ctx, results, errors, started, time.perf_counter() - clock,
                                            target={"monitor": self._target(result)})
                if full and not errors:
                    self._last_full = result.number
                if not result.findings and not errors:
                    begun = time.perf_counter()
                    self._keep(chain, fresh, batch_files, outcomes)
                    result.seconds["persist"] = time.perf_counter() - begun
                    result.report.target["monitor"]["seconds"] = {k: round(v, 3) for k, v in result.seconds.items()}
        finally:
            rpc.close()
            result.seconds["round"] = time.perf_counter() - clock
        self._write_reports(result)
        return result

    @contextmanager
    def _api(self, config: AuditConfig) -> Iterator[PublicApi | None]:
        """The careful client of this round, its requests paced."""
        spread = self.options.interval if self.options.spread is None else self.options.spread
        pacer = Pacer(spread, self._expected_requests, self.stop)
        if self._api_client is not None:
            client = self._api_client
            before = dict(client.event_hooks)
            client.event_hooks = {**before, "request": [*before.get("request", []), pacer]}
            try:
                yield open_api(config, client)
            finally:
                client.event_hooks = before
            return
        if not config.api_url:
            yield None
            return
        client = httpx.Client(base_url=config.api_url.rstrip("/"), timeout=config.timeout, follow_redirects=False,
                              event_hooks={"request": [pacer]})
        api = open_api(config, client)
        try:
            yield api
        finally:
            client.close()

    def _read(
        self, rpc: Rpc, config: AuditConfig, api: PublicApi | None, result: Round
    ) -> tuple[ChainSnapshot, list[DecodedEntry], list[BatchFile], Batches]:
        """The new blocks' entries (after following a reorganisation), with the new anchors' batch files: the
        snapshot of the whole log as of the new block, the new entries, the files to keep, and the new anchors'
        batches as fetched and checked."""
        for _ in range(5):
            begun = time.perf_counter()
            fork = self._follow_reorganisation(rpc)
            if fork is not None:
                result.reorg = fork
            stored = self.stored
            first = stored.block_number + 1 if stored is not None else config.from_block
            reader = ChainReader(rpc, self.address, expected_chain_id=config.chain_id, from_block=first)
            snapshot = reader.read()
            # The chain reorganised while it was read (the logs name blocks that are no longer the chain's, or the
            # last block kept is gone): start over, never a finding.
            if (snapshot.problems and _block_hash(rpc, snapshot.block_number) != snapshot.block_hash) or (
                    stored is not None and _block_hash(rpc, stored.block_number) != stored.block_hash):
                log.warning("the chain reorganised while it was read: reading it again")
                continue
            result.seconds["read"] = time.perf_counter() - begun
            break
        else:
            raise CannotAudit("the chain kept reorganising while it was read (5 times in a row)")
        result.blocks = (snapshot.from_block, snapshot.block_number)
        result.log_requests = snapshot.log_requests
        fresh = snapshot.entries
        begun = time.perf_counter()
        kept: dict[int, tuple[str, bytes]] = {}
        batches = fetch_batches(anchors_of(fresh), config, api, keep=kept)
        outcomes = batches.outcomes or {}
        files = [BatchFile(o.anchor, o.where, kept[seq][1]) for seq, o in outcomes.items()
                 if o.content is not None and seq in kept]
        result.seconds["batches"] = time.perf_counter() - begun
        result.logs = len(fresh)
        whole = dataclasses.replace(
            snapshot, from_block=stored.from_block if stored is not None else snapshot.from_block,
            entries=[*self.entries, *fresh], role_changes=[*self.role_changes, *snapshot.role_changes], headers={},
        )
        return whole, fresh, files, batches

    def _follow_reorganisation(self, rpc: Rpc) -> int | None:
        """When the last block kept is no longer the node's at that height: cut the state back to the latest round end
        that still is, and return its block (-1: none is, everything is read again). None: no reorganisation."""
        stored = self.stored
        if stored is None or _block_hash(rpc, stored.block_number) == stored.block_hash:
            return None
        points = stored.checkpoints
        headers = rpc.batch([("eth_getBlockByNumber", [hex(c.number), False]) for c in points]) if points else []
        for point, header in zip(reversed(points), reversed(headers)):
            if header is not None and header.get("hash") == "0x" + point.block_hash.hex():
                self._cut(point, int(header["timestamp"], 16))
                log.warning("the chain was reorganised after block %d: the blocks after it are read again",
                            point.number)
                return point.number
        log.warning("the chain was reorganised deeper than the last %d rounds kept: reading the whole log again",
                    len(points))
        self._forget()
        self._rewrite = True
        return -1

    def _cut(self, point: Checkpoint, block_time: int) -> None:
        stored = self.stored
        assert stored is not None
        self.entries = [e for e in self.entries if e.block_number <= point.number]
        self.role_changes = [r for r in self.role_changes if r.block_number <= point.number]
        seqs = {e.seq for e in self.entries}
        self.outcomes = {seq: o for seq, o in self.outcomes.items() if seq in seqs}
        with gc_paused():
            self.builder = Builder().extend(self.entries, self._contents())
        model = self.builder.model()
        stored.block_number, stored.block_hash, stored.block_time = point.number, point.block_hash, block_time
        stored.entry_count, stored.running_hash = model.count, _head(model)
        stored.data_bytes = point.data_bytes
        stored.checkpoints = [c for c in stored.checkpoints if c.number <= point.number]
        self._ahead, self._rewrite = False, True

    def _contents(self) -> dict[int, Any]:
        return {seq: o.content for seq, o in self.outcomes.items() if o.content is not None}

    def _continuity(self, ctx: AuditContext, fresh: list[DecodedEntry]) -> CheckResult:
        """The log check, over the new entries: they continue the log verified so far, seq after seq from its count,
        and fold from its running hash to the contract's at the new block. When they do not, the whole log check
        (``ledger.audit.checks.log``) runs, and says where and how."""
        check = check_named("log_complete")
        result = check.new_result(ctx.config.max_findings)
        chain, model = ctx.chain, ctx.model
        stored = self.stored
        count, head = (stored.entry_count, stored.running_hash) if stored is not None else (0, ZERO_HEAD)
        why = None
        expected = count
        if chain.problems:
            why = f"the node served {len(chain.problems)} log(s) that are not the chain's"
        for e in fresh:
            if why is not None:
                break
            if e.seq != expected:
                why = f"seq {e.seq} (tx 0x{e.tx_hash.hex()}) where seq {expected} was due"
            expected = e.seq + (e.record["count"] if e.kind == EntryKind.BATCH_ANCHORED else 1)
        if why is None and expected != chain.contract_count:
            why = f"the log accounts for {expected} entries, the contract's entryCount() is {chain.contract_count}"
        if why is None and _head(model) != chain.contract_head:
            why = (f"the new entries fold from 0x{head.hex()} to 0x{_head(model).hex()}, not to the contract's "
                   f"runningHash() 0x{chain.contract_head.hex()}")
        if why is None:
            result.counts.update(entries=chain.contract_count, new_entries=expected - count,
                                 log_requests=chain.log_requests)
            result.notes.append(
                f"blocks {self._first_block(chain)}-{chain.block_number} read this round: entries seq {count}-"
                f"{expected - 1} continue the log verified up to seq {count - 1}, folding from its running hash "
                f"0x{head.hex()} to the contract's entryCount() = {chain.contract_count}, runningHash() = "
                f"0x{chain.contract_head.hex()} at block {chain.block_number} (0x{chain.block_hash.hex()})"
                if expected > count else
                f"no new entry up to block {chain.block_number}: the contract's entryCount() = {chain.contract_count}, "
                f"runningHash() = 0x{chain.contract_head.hex()} there, as verified before"
            )
            result.settle()
            return result
        check.run(ctx, result)
        if not result.finding_total():
            result.add(Finding(check.name, f"the entries read this round do not continue the log verified up to seq "
                                           f"{count - 1}: {why}", block_number=chain.block_number))
        result.settle()
        return result

    def _first_block(self, chain: ChainSnapshot) -> int:
        return self.stored.block_number + 1 if self.stored is not None else chain.from_block

    def _keep(self, chain: ChainSnapshot, fresh: list[DecodedEntry], files: list[BatchFile],
              outcomes: dict[int, BatchOutcome]) -> None:
        """The round was clean: what it read becomes the state, in memory and on disk."""
        new_roles = chain.role_changes[len(self.role_changes):]
        where = _Where(block_number=chain.block_number, block_hash=chain.block_hash, block_time=chain.block_time,
                       entry_count=chain.contract_count, running_hash=chain.contract_head)
        if self.stored is None:
            stored = Stored(self.chain_id or 0, self.address, chain.from_block, rounds=1, **where)
        else:  # a copy: the state in memory moves only once the one on disk has
            stored = dataclasses.replace(self.stored, checkpoints=list(self.stored.checkpoints),
                                         rounds=self.stored.rounds + 1, **where)
        self.dir.save(stored, fresh, new_roles, files, rewrite=self._rewrite)
        self.stored = stored
        self.entries.extend(fresh)
        self.role_changes.extend(new_roles)
        self.outcomes.update(outcomes)
        self._ahead = self._rewrite = False

    def _target(self, result: Round) -> dict[str, Any]:
        return {
            "state": str(self.dir.path),
            "round": result.number,
            "rounds_kept": (self.stored.rounds if self.stored is not None else 0) + 1,
            "full": result.full,
            "full_every": self.options.full_every,
            "blocks_read": list(result.blocks),
            "new_entries": result.new_entries,
            "log_requests": result.log_requests,
            "reorganised_to": result.reorg,
        }

    def _write_reports(self, result: Round) -> None:
        if result.report is None:
            return
        data = report_bytes(result.report)
        self.dir.write_report("latest.json", data)
        if self.options.json is not None:
            self.options.json.write_bytes(data)
        if self.options.html is not None:
            write_html(result.report, self.options.html)

    # -- the command line's loop

    def run(self) -> int:
        """Rounds every ``interval`` seconds until ``rounds`` are done (0), a finding (1, after the alert), a run that
        cannot go on (2), or SIGINT/SIGTERM (0)."""
        with self._signals():
            try:
                self.open()
            except CannotAudit as exc:
                log.error("the monitor cannot run: %s", exc)
                return 2
            failures = 0
            done = 0
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    outcome = self.round()
                except (CannotAudit, LedgerError, OSError) as exc:
                    failures += 1
                    log.error("round %d could not run (%d in a row): %s", self.rounds, failures, exc)
                else:
                    if outcome.findings:
                        self.alert(outcome)
                        return 1
                    assert outcome.report is not None
                    if outcome.report.errors:
                        failures += 1
                        log.error("round %d could not complete (%d in a row): %s", outcome.number, failures,
                                  "; ".join(outcome.report.errors))
                    else:
                        failures = 0
                        log.info(
                            "round %d clean%s: block %d, %d new entries (%d in all), %d API requests, seed %d, "
                            "%.2f s (absorbing %.2f s)", outcome.number, " (full)" if outcome.full else "",
                            outcome.blocks[1], outcome.new_entries, self.stored.entry_count if self.stored else 0,
                            outcome.api_requests, outcome.seed, outcome.seconds["round"], outcome.absorb_seconds,
                        )
                if failures >= self.options.max_failures:
                    log.error("giving up after %d rounds in a row that could not run", failures)
                    return 2
                done += 1
                if self.options.rounds is not None and done >= self.options.rounds:
                    return 2 if failures else 0
                self.stop.wait(max(0.0, self.options.interval - (time.monotonic() - began)))
            log.info("stopped after %d round(s), no finding", done)
            return 0

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM end the run after the round under way (its pauses cut short)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        def stop(signum: int, frame: Any) -> None:
            log.info("%s: stopping after this round", signal.Signals(signum).name)
            self.stop.set()

        before = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)

    def alert(self, outcome: Round) -> Path:
        """The first finding: the round's report kept in the state directory, one CRITICAL log line, the webhook."""
        report = outcome.report
        assert report is not None
        path = self.dir.write_report(f"finding-round-{outcome.number}.json", report_bytes(report))
        failed = report.failed
        first = next(f for c in failed for f in c.findings) if any(c.findings for c in failed) else None
        check = failed[0].name if failed else "?"
        total = sum(c.finding_total() for c in report.checks)
        what = f"{first.message} [{first.where}]" if first is not None else "(findings not listed)"
        log.critical("FINDING in round %d at block %d: check %s: %s; %d finding(s) in %s; report %s",
                     outcome.number, report.target["block_number"], check, what, total,
                     ", ".join(c.name for c in failed), path)
        if self.options.webhook:
            self._post(self.options.webhook, {
                "event": "civic-audit.finding",
                "tool": report.tool,
                "chain_id": report.target["chain_id"],
                "contract": report.target["contract"],
                "block_number": report.target["block_number"],
                "block_hash": report.target["block_hash"],
                "round": outcome.number,
                "seed": outcome.seed,
                "check": check,
                "finding": first.to_dict() if first is not None else None,
                "findings": total,
                "failed_checks": [c.name for c in failed],
                "report": str(path),
            })
        return path

    def _post(self, url: str, body: dict[str, Any]) -> None:
        try:
            response = httpx.post(url, json=body, timeout=10.0, follow_redirects=False)
            if response.status_code >= 300:
                log.error("the webhook at %s answered HTTP %d", safe_url(url), response.status_code)
        except httpx.HTTPError as exc:
            log.error("the webhook at %s failed: %s", safe_url(url), type(exc).__name__)


def _head(model: LedgerModel) -> bytes:
    """The running hash after the model's last entry (zero for an empty log), as the contract gives it."""
    return model.running.get(model.count - 1, b"") if model.count else ZERO_HEAD


def _block_hash(rpc: Rpc, number: int) -> bytes | None:
    block = rpc.call("eth_getBlockByNumber", [hex(number), False])
    return bytes.fromhex(block["hash"][2:]) if isinstance(block, dict) and block.get("hash") else None
