"""Rate limiting: named budgets of requests per client per minute, each an in-process token bucket per client.

A client is an IPv4 address or an IPv6 /64, behind trusted proxies the address they forwarded (``api.clients``).
Each kind of work has a budget of its own, so spending one does not starve another: cheap reads (every GET and
HEAD, charged by :class:`RateLimitMiddleware`), expensive reads (figures computed afresh, exports: charged by their
routes when they do that work), agency writes, citizens' writes, filings, audit reports. A refusal is a 429
``rate_limited`` whose message and ``budget`` field name the budget spent, with ``Retry-After``.

Each client has a bucket holding up to ``rate_per_minute`` tokens (a minute's allowance, so a client may
spend it in a burst) that refills continuously at ``rate_per_minute / 60`` tokens a second. A request takes one
token; with none left it is answered 429 with ``Retry-After`` (seconds until a token is back).

The state is per process: with several workers each keeps its own buckets, so the effective limit is the setting
times the number of workers. Buckets of clients idle for a minute are dropped (they are full again, so they carry no
state), and at most ``max_clients`` are kept, least recently seen dropped first, so memory stays bounded.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.clients import Clients, client_of
from api.errors import ApiError


class TokenBuckets:
    """Token buckets keyed by client; :meth:`take` answers how long to wait (0 when the request may go ahead)."""

    def __init__(
        self,
        rate_per_minute: int,
        *,
        max_clients: int = 65_536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute < 1:
            raise ValueError("rate_per_minute must be at least 1")
        self.capacity = float(rate_per_minute)
        self.per_second = rate_per_minute / 60.0
        self.max_clients = max_clients
        #: an idle bucket is full again after this long
        self._refill_seconds = 60.0
        self._clock = clock
        #: client -> (tokens, when last refilled), least recently seen first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Take a token for ``client``: 0.0 if it had one, else the seconds until it will."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.per_second)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.per_second
            self._buckets[client] = (tokens, now)
            # the least recently seen first: drop those idle long enough to be full again (they carry no state)
            while self._buckets:
                _, (_, seen) = next(iter(self._buckets.items()))
                if now - seen < self._refill_seconds and len(self._buckets) <= self.max_clients:
                    break
                self._buckets.popitem(last=False)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)


class Budget:
    """A named budget: ``rate_per_minute`` requests of one kind per client (:class:`TokenBuckets`); 0 is no limit."""

    def __init__(self, name: str, rate_per_minute: int, what: str = "requests", *, max_clients: int = 65_536) -> None:
        self.name = name
        self.rate_per_minute = rate_per_minute
        #: what is counted, in the refusal's words ("uncached figures or exports")
        self.what = what
        self.buckets = TokenBuckets(rate_per_minute, max_clients=max_clients) if rate_per_minute > 0 else None

    def wait(self, client: str) -> float:
        """Take one for ``client``: 0.0 if it may go ahead, else the seconds until it may."""
        return 0.0 if self.buckets is None else self.buckets.take(client)

    def refusal(self, wait: float) -> ApiError:
        """The 429 of a client that has spent this budget, ``wait`` seconds before it may go on."""
        retry_after = max(1, math.ceil(wait))
        return ApiError(
            "rate_limited",
            f"this client has spent its {self.name} budget ({self.rate_per_minute} {self.what} a minute); "
            f"retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            extra={"budget": self.name, "limit": self.rate_per_minute},
        )

    def charge(self, client: str) -> None:
        """Take one for ``client``, or raise the 429 (:meth:`refusal`)."""
        wait = self.wait(client)
        if wait > 0:
            raise self.refusal(wait)

    def charge_request(self, request: Request) -> None:
        """:meth:`charge` the client of ``request`` (``api.clients.client_of``)."""
        self.charge(client_of(request))


#: requests one client may have in flight at once, per process (a browser opens at most six connections to a host)
MAX_IN_FLIGHT = 32
#: what a client with too many requests in flight is told to wait, in seconds
IN_FLIGHT_RETRY_AFTER = 1


class RateLimitMiddleware:
    """Charges every request of the given methods (GET and HEAD) to the cheap reads' ``budget``, and lets a client have
    at most ``in_flight`` requests of any method in flight at once (so that one client on many connections cannot take
    every thread and database connection even within its budget); past either, the answer is a 429 before any route
    runs. A budget of 0 charges nothing; the requests in flight are bounded still."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        budget: Budget,
        clients: Clients,
        methods: Collection[str] = ("GET", "HEAD"),
        in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.app = app
        self.budget = budget
        self.clients = clients
        self.methods = frozenset(m.upper() for m in methods)
        self.in_flight = in_flight
        #: client -> requests in flight (one event loop: no lock needed); a client with none has no entry
        self.flying: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = self.clients.key_of(scope)
        if self.flying.get(client, 0) >= self.in_flight:
            refused = ApiError(
                "rate_limited",
                f"this client has {self.in_flight} requests in flight already; wait for their answers "
                f"(retry in {IN_FLIGHT_RETRY_AFTER} s)",
                headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER)},
                extra={"budget": "in_flight", "limit": self.in_flight},
            )
            await refused.response()(scope, receive, send)
            return
        if self.budget.buckets is not None and scope["method"] in self.methods:
            wait = self.budget.wait(client)
            if wait > 0:
                await self.budget.refusal(wait).response()(scope, receive, send)
                return
        self.flying[client] = self.flying.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.flying[client] - 1
            if left:
                self.flying[client] = left
            else:
                del self.flying[client]
