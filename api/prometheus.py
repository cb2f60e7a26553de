"""The service's Prometheus metrics (``GET /metrics``, ``api.routes.ops``), in one registry per app.

What is measured, and where it comes from (nothing is computed here that a module below already defines):

- requests: ``civic_http_requests_total`` by method, route TEMPLATE and status, and
  ``civic_http_request_duration_seconds`` by method and route template — observed by the access log
  (``api.accesslog``), which names a request by its route's template only, never its path: the labels are bounded by
  the app's routes whatever clients send;
- the index (``api.read.ops``): its last block, the entries indexed, whether indexing is halted, the batches withheld
  (missing or impossible files) and the time of the newest attestation counted in the audit summary
  (``api.attestations``), as an age;
- the node, when one is configured (one batched JSON-RPC call, no retry): its head, and from it the index's lag in
  blocks and in seconds (the head's block time minus the last indexed block's), and the relayers' balances, in wei,
  with how fast each falls (``civic_relayer_burn_wei_per_second``, measured from this process's own readings over
  the last hour: a top-up starts the measure again). With no node configured these are left out, not guessed;
- the outboxes (``ledger.writer.outbox.Outbox``) in the data directory: the relay's lanes (``ledger.relay.store``,
  labelled by their relayer key's name) and the command line's writer outboxes (labelled by the agency key's
  address): how many entries wait to be recorded (pending or sent) and how long the oldest has waited;
- ``civic_metrics_source_up``: whether each source answered this time (a source that did not is left out).

Every read is a lookup or a bounded index range (``api.read.ops``); the whole answer is worked out at most once every
:data:`FRESH_FOR` seconds (``api.ops.Reused``), however often it is asked. With several uvicorn workers each keeps
its own registry: a scrape sees one worker's request counts.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api import attestations
from api.ops import MAX_BLOCK_QUANTITY, node_quantity
from api.read._common import read_snapshot
from api.read.ops import IndexProbe, index_probe, newest_attestation_time
from api.settings import ApiSettings
from ledger.batches.read import WITHHELD_IMPOSSIBLE, WITHHELD_MISSING
from ledger.chain.rpc import JsonRpc, RetryPolicy
from ledger.errors import LedgerError, OutboxError
from ledger.relay.store import AGENCY_LANE, CITIZEN_LANE, LANES
from ledger.writer.outbox import Outbox, OutboxState

log = logging.getLogger(__name__)

#: how long one answer of ``/metrics`` is reused, in seconds (Prometheus scrapes every 15 s or so)
FRESH_FOR = 2.0
#: the request latencies' buckets, in seconds: a lookup takes milliseconds, an export up to minutes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
#: how long the node is given to answer (connect, read), in seconds
NODE_TIMEOUT = (1.0, 2.0)
#: the window over which a relayer's burn rate is measured, and the shortest span that gives one, in seconds
BURN_WINDOW = 3600.0
BURN_MIN_SPAN = 60.0
#: the most writer outboxes (one per agency key kept on this machine) looked at
MAX_WRITER_OUTBOXES = 100
#: the outboxes' states of an entry not yet recorded on chain
WAITING = (OutboxState.PENDING, OutboxState.SENT)


class BurnRate:
    """How fast a balance falls, in units per second, from readings taken over the last ``window`` seconds; a reading
    above the one before (a top-up) starts the measure again."""

    def __init__(self, window: float = BURN_WINDOW, min_span: float = BURN_MIN_SPAN) -> None:
        self.window = window
        self.min_span = min_span
        self._readings: deque[tuple[float, int]] = deque()

    def read(self, when: float, balance: int) -> float | None:
        """Take a reading; the rate it gives (None until readings span ``min_span`` seconds)."""
        if self._readings and balance > self._readings[-1][1]:
            self._readings.clear()
        self._readings.append((when, balance))
        # the newest reading at or before the window's start stays: the measure spans the whole window
        while len(self._readings) > 1 and when - self._readings[1][0] >= self.window:
            self._readings.popleft()
        first_when, first_balance = self._readings[0]
        span = when - first_when
        return (first_balance - balance) / span if span >= self.min_span else None


@dataclass(frozen=True)
class _Node:
    head: int
    head_time: int
    #: relayer key name -> (address, balance in wei)
    balances: dict[str, tuple[str, int]]


class ServiceCollector(Collector):
    """The gauges read afresh at each collection: the index, the node, the outboxes (the module's docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        settings: ApiSettings = app.state.settings
        self.settings = settings
        self._rpc = (JsonRpc(settings.rpc_url, timeout=NODE_TIMEOUT, policy=RetryPolicy(max_retries=0))
                     if settings.rpc_url else None)
        self._burn: dict[str, BurnRate] = {}
        self._outboxes: dict[Path, Outbox] = {}

    def close(self) -> None:
        for outbox in self._outboxes.values():
            outbox.close()
        self._outboxes.clear()
        if self._rpc is not None:
            self._rpc.close()

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("civic_metrics_source_up", "Whether the source answered this collection (1) or not "
                               "(0: its metrics are left out)", labels=["source"])
        index = self._index()
        up.add_metric(["index"], 0 if index is None else 1)
        node = self._node() if self._rpc is not None else None
        if self._rpc is not None:
            up.add_metric(["node"], 0 if node is None else 1)
        waiting = self._waiting()
        up.add_metric(["outboxes"], 0 if waiting is None else 1)
        yield up
        if index is not None:
            probe, attested_at = index
            yield from self._index_metrics(probe, attested_at, node)
        if node is not None:
            yield from self._node_metrics(node)
        if waiting is not None:
            yield from self._outbox_metrics(waiting)

    # -- the index

    def _index(self) -> tuple[IndexProbe, int | None] | None:
        s = self.settings
        try:
            with read_snapshot(self.app.state.store) as conn:
                probe = index_probe(conn, s.contract_address, s.chain_id)
                attested_at = newest_attestation_time(conn, probe.state, attestations.audit_reports(self.app))
        except sqlalchemy.exc.SQLAlchemyError as exc:
            log.warning("metrics: the index database did not answer (%s)", type(exc).__name__)
            return None
        return probe, attested_at

    @staticmethod
    def _index_metrics(probe: IndexProbe, attested_at: int | None, node: _Node | None) -> Iterator[Metric]:
        state = probe.state
        yield GaugeMetricFamily("civic_index_last_block", "Highest block whose events are all indexed (-1: none)",
                                value=state.last_block)
        yield GaugeMetricFamily("civic_index_entries", "Ledger entries indexed (those of withheld batches included)",
                                value=state.entry_count)
        yield GaugeMetricFamily("civic_index_halted", "1 while indexing is halted (a reorganisation deeper than the "
                                "confirmation depth; an operator must clear it)", value=int(bool(state.halted_reason)))
        withheld = GaugeMetricFamily("civic_batches_withheld", "Merkle-anchored batches whose entries are not indexed, "
                                     "by why: their file is missing, or cannot match the anchor", labels=["reason"])
        missing, impossible = state.withheld
        withheld.add_metric([WITHHELD_MISSING], missing)
        withheld.add_metric([WITHHELD_IMPOSSIBLE], impossible)
        yield withheld
        if attested_at is not None:
            age = max(0.0, time.time() - attested_at)
            yield GaugeMetricFamily("civic_audit_attestation_age_seconds", "Seconds since the block of the newest "
                                    "attestation counted in the audit summary", value=age)
        if node is not None:
            yield GaugeMetricFamily("civic_index_lag_blocks", "Blocks between the node's head and the index's last",
                                    value=max(0, node.head - state.last_block))
            if probe.last_block_time is not None:
                yield GaugeMetricFamily("civic_index_lag_seconds", "The node's head block time minus the index's last "
                                        "block time", value=max(0, node.head_time - probe.last_block_time))

    # -- the node

    def _relayers(self) -> dict[str, str]:
        """Relayer key name -> address, of the lanes the write API has started (it knows their keys then)."""
        service = getattr(self.app.state, "agency_writes", None)
        if service is None:
            return {}
        addresses = {AGENCY_LANE: service.relayer_address, CITIZEN_LANE: service.citizen_relayer_address}
        return {LANES[lane][1]: address for lane, address in addresses.items() if address}

    def _node(self) -> _Node | None:
        assert self._rpc is not None
        relayers = self._relayers()
        calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", False])]
        calls += [("eth_getBalance", [address, "latest"]) for address in relayers.values()]
        try:
            head, *balances = self._rpc.batch(calls)
            node = _Node(node_quantity(head["number"], MAX_BLOCK_QUANTITY),
                         node_quantity(head["timestamp"], MAX_BLOCK_QUANTITY),
                         {name: (address, node_quantity(balance))
                          for (name, address), balance in zip(relayers.items(), balances, strict=True)})
        except (LedgerError, ValueError, TypeError, KeyError) as exc:
            # the type only: a message may carry the node's URL (and an API key in it)
            log.warning("metrics: the node did not answer as a node should (%s)", type(exc).__name__)
            return None
        return node

    def _node_metrics(self, node: _Node) -> Iterator[Metric]:
        yield GaugeMetricFamily("civic_node_head_block", "The node's latest block", value=node.head)
        if not node.balances:
            return
        balance = GaugeMetricFamily("civic_relayer_balance_wei", "A relayer key's balance, in wei",
                                    labels=["key", "address"])
        burn = GaugeMetricFamily("civic_relayer_burn_wei_per_second", "How fast a relayer key's balance has fallen "
                                 f"over this process's readings of the last {BURN_WINDOW:.0f} s (since the last "
                                 "top-up)", labels=["key", "address"])
        now = time.monotonic()
        for name, (address, wei) in sorted(node.balances.items()):
            balance.add_metric([name, address], wei)
            rate = self._burn.setdefault(f"{name}/{address}", BurnRate()).read(now, wei)
            if rate is not None:
                burn.add_metric([name, address], rate)
        yield balance
        yield burn

    # -- the outboxes

    def _outbox_paths(self) -> dict[str, Path]:
        """Key label -> outbox file, of the outboxes there are (none is created here)."""
        data_dir = Path(self.settings.data_dir)
        found = {key_name: data_dir / "relay" / file for file, key_name in LANES.values()}
        writers = data_dir / "outbox"
        if writers.is_dir():
            for index, path in enumerate(sorted(writers.glob("*.sqlite"))):
                if index >= MAX_WRITER_OUTBOXES:
                    break
                found[path.stem] = path
        return {key: path for key, path in found.items() if path.is_file()}

    def _waiting(self) -> dict[str, tuple[int, float | None]] | None:
        """Key label -> (entries waiting, the oldest's creation time)."""
        waiting = {}
        try:
            for key, path in self._outbox_paths().items():
                outbox = self._outboxes.get(path)
                if outbox is None:
                    outbox = self._outboxes[path] = Outbox(path)
                count = sum(outbox.count(state) for state in WAITING)
                firsts = [items[0].created_at for state in WAITING if (items := outbox.items(state, limit=1))]
                waiting[key] = (count, min(firsts, default=None))
        except (OutboxError, sqlite3.Error, OSError) as exc:
            log.warning("metrics: an outbox could not be read (%s)", type(exc).__name__)
            return None
        return waiting

    @staticmethod
    def _outbox_metrics(waiting: dict[str, tuple[int, float | None]]) -> Iterator[Metric]:
        depth = GaugeMetricFamily("civic_outbox_depth", "Entries of a key's outbox not yet recorded on chain (pending "
                                  "or sent)", labels=["key"])
        oldest = GaugeMetricFamily("civic_outbox_oldest_age_seconds", "How long the oldest entry of a key's outbox "
                                   "not yet recorded has waited (0: none waits)", labels=["key"])
        now = time.time()
        for key, (count, first) in sorted(waiting.items()):
            depth.add_metric([key], count)
            oldest.add_metric([key], 0.0 if first is None else max(0.0, now - first))
        yield depth
        yield oldest


class ServiceMetrics:
    """The app's registry: the requests (:meth:`observe_request`, the access log's), the process, and the
    :class:`ServiceCollector`'s gauges; :meth:`render` is the text Prometheus reads."""

    def __init__(self, app: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("civic_http_requests", "HTTP requests answered, by method, route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("civic_http_request_duration_seconds", "Time to answer an HTTP request, by method "
                                 "and route template", ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        ProcessCollector(registry=self.registry)
        self.service = ServiceCollector(app)
        self.registry.register(self.service)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request answered (``api.accesslog``: the method one of HTTP's or OTHER, the route a template)."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The registry in Prometheus' text format (reads the index, the node and the outboxes: run in a thread)."""
        return generate_latest(self.registry)

    def close(self) -> None:
        self.service.close()
