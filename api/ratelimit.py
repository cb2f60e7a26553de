"""Rate limiting of reads: an in-process token bucket per client address, as ASGI middleware.

Each client address has a bucket holding up to ``rate_per_minute`` tokens (a minute's allowance, so a client may
spend it in a burst) that refills continuously at ``rate_per_minute / 60`` tokens a second. A request takes one
token; with none left it is answered 429 with ``Retry-After`` (seconds until a token is back). The client address
is the ASGI ``client`` (behind a proxy, run uvicorn with ``--proxy-headers`` so that it is the real one).

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

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response


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


class RateLimitMiddleware:
    """Limits requests of the given methods per client address; everything else passes untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate_per_minute: int,
        methods: Collection[str] = ("GET", "HEAD"),
        max_clients: int = 65_536,
    ) -> None:
        self.app = app
        self.rate_per_minute = rate_per_minute
        self.methods = frozenset(m.upper() for m in methods)
        self.buckets = TokenBuckets(rate_per_minute, max_clients=max_clients) if rate_per_minute > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http" or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait = self.buckets.take(address)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        response = error_response(
            429,
            "rate_limited",
            f"more than {self.rate_per_minute} requests a minute from this address; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)
