"""What the operator's probes and scraper share: their paths, the read budget they are exempt from, and the answer
each reuses for a moment, worked out by one thread at a time.

``GET /healthz``, ``/readyz`` and ``/metrics`` (``api.routes.ops``) are asked by a load balancer, an orchestrator and
Prometheus, often from one address that also carries public traffic (a proxy not named in ``CIVIC_TRUSTED_PROXIES``).
Charged to the cheap reads' budget, a busy client would get the instance's probes refused (429) and the instance
taken out of service or restarted while it serves well. So they are not charged (:class:`ReadBudgetExceptProbes`);
the bound on a client's requests in flight still applies to them. Instead each is cheap whatever the rate: healthz
reads nothing, and readyz and metrics reuse one answer for a second or two (:class:`Reused`), worked out in one thread
with bounded reads while every other request for it waits on the event loop, not in a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.clients import Clients
from api.ratelimit import Budget, RateLimitMiddleware

T = TypeVar("T")

HEALTHZ = "/healthz"
READYZ = "/readyz"
METRICS = "/metrics"
#: the operator's paths, exempt from the cheap reads' budget
PROBE_PATHS = frozenset({HEALTHZ, READYZ, METRICS})
#: the largest block number or block time a node may answer to the probes (int64, as every client keeps them), and
#: the largest balance (uint256); past them, or below 0, the node answered garbage
MAX_BLOCK_QUANTITY = 2**63 - 1
MAX_QUANTITY = 2**256 - 1


def node_quantity(value: object, limit: int = MAX_QUANTITY) -> int:
    """A number a node answered (0x-hex, or an int already read) when it is within 0..`limit`; ValueError when it is
    not one (a node answering garbage: a negative head would make a frozen index look current, one past a float's
    range would stop ``/metrics`` from rendering at all)."""
    number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value), 16)
    if not 0 <= number <= limit:
        raise ValueError("the node answered a number out of range")
    return number


class Reused(Generic[T]):
    """``compute``'s answer, worked out in a worker thread by one request at a time and reused for ``fresh_for``
    seconds: requests arriving while it is worked out wait for that same answer, on the event loop."""

    def __init__(self, compute: Callable[[], T], fresh_for: float, *, clock: Callable[[], float] = time.monotonic):
        self.compute = compute
        self.fresh_for = fresh_for
        self._clock = clock
        self._answer: tuple[float, T] | None = None
        self._running: asyncio.Future[T] | None = None

    async def get(self) -> T:
        answer = self._answer
        if answer is not None and self._clock() - answer[0] < self.fresh_for:
            return answer[1]
        running = self._running
        if running is None or running.get_loop() is not asyncio.get_running_loop():
            running = self._running = asyncio.ensure_future(self._refresh())
        # shielded: a request that stops waiting (its client went away, its timeout) leaves the work to the others
        return await asyncio.shield(running)

    async def _refresh(self) -> T:
        try:
            value = await run_in_threadpool(self.compute)
            self._answer = (self._clock(), value)
            return value
        finally:
            self._running = None


class ReadBudgetExceptProbes:
    """``api.ratelimit.RateLimitMiddleware`` charging the cheap reads' ``budget``, except for the operator's
    :data:`PROBE_PATHS`, which are bounded only by a client's requests in flight (a budget of 0 charges nothing)."""

    def __init__(self, app: ASGIApp, *, budget: Budget, clients: Clients) -> None:
        self.limited = RateLimitMiddleware(app, budget=budget, clients=clients)
        self.probes = RateLimitMiddleware(app, budget=Budget("probes", 0), clients=clients)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        probe = scope["type"] == "http" and scope.get("path") in PROBE_PATHS
        await (self.probes if probe else self.limited)(scope, receive, send)
