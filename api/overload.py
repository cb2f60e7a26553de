"""Expensive work under load: bounded, coalesced, and shed first.

:class:`ExpensiveWork` runs the API's expensive computations (figures the cache has not seen) in one process: at most
``capacity`` at once, at most ``waiting`` more waiting for a turn, none waiting longer than ``patience`` seconds,
and no more than ``share`` of the process's time over the last :data:`WINDOW` seconds (computation-seconds per
second; one client's at most half of it), so that whatever is asked, the rest of the time is left to everything else.
A share equal to the capacity is no time cap.
A request asking for what is already being computed joins that computation instead of starting another. Beyond
the bounds the request is answered 503 ``overloaded`` with ``Retry-After`` at once, while cheap reads and answers
the cache already holds go on being served: the server sheds the expensive work first, and says so, rather than
letting every request time out.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from api.errors import ApiError, overloaded

T = TypeVar("T")

#: the longest a request waits for a turn before it is shed, in seconds
PATIENCE = 10.0
#: what a shed request is told to wait, in seconds
RETRY_AFTER = 5
#: the window over which the share of time spent computing is measured, in seconds
WINDOW = 10.0


def shed(what: str) -> ApiError:
    """The 503 of a computation shed: ``api.errors.overloaded``, saying what is being computed."""
    return overloaded(
        f"the server is busy computing other {what}; retry in {RETRY_AFTER} s (answers already computed are still "
        "served)",
        RETRY_AFTER,
    )


class ExpensiveWork:
    """At most ``capacity`` computations at once, ``waiting`` more queued (each at most ``patience`` s); the same
    key computed once at a time. Bound to the event loop it was first used on, and renewed on another."""

    def __init__(
        self,
        what: str,
        capacity: int,
        waiting: int,
        patience: float = PATIENCE,
        share: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or waiting < 0 or not 0 < share <= capacity:
            raise ValueError("capacity must be at least 1, waiting at least 0, and share in (0, capacity]")
        #: what is computed, in the 503's words ("figures")
        self.what = what
        self.capacity = capacity
        self.waiting = waiting
        self.patience = patience
        self.share = share
        self._clock = clock
        #: (client, start, end) of the computations that ended in the last WINDOW seconds, and (client, start) of
        #: those running
        self._done: deque[tuple[str, float, float]] = deque()
        self._started: dict[int, tuple[str, float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(capacity)
        self._queued = 0
        self._running: dict[Hashable, asyncio.Future[Any]] = {}
        #: computations run, joined, and shed (for tests and the operator)
        self.computed = 0
        self.joined = 0
        self.shed = 0

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._slots, self._queued, self._running = loop, asyncio.Semaphore(self.capacity), 0, {}

    def busy(self, client: str | None = None) -> float:
        """The share of the last :data:`WINDOW` seconds spent computing (computation-seconds per second, so up to
        ``capacity``), the computations running counted up to now: for everyone, or for one client."""
        now = self._clock()
        since = now - WINDOW
        while self._done and self._done[0][2] <= since:
            self._done.popleft()
        spent = sum(end - max(start, since) for who, start, end in self._done if client in (None, who))
        spent += sum(now - max(start, since) for who, start in self._started.values() if client in (None, who))
        return spent / WINDOW

    async def run(
        self, key: Hashable, compute: Callable[[], Awaitable[T]], *, admit: Callable[[], None], client: str = ""
    ) -> T:
        """The result of ``compute()`` for ``key``: of a computation of it already running (joined), else computed
        here in a turn. ``admit`` is called before a new computation waits for its turn (it may raise: a client's
        budget spent). A ``client`` whose own computations took half the share already is refused (429, budget
        ``expensive``), so that one client cannot take the share from everyone; a request that would wait beyond
        the bounds raises 503 ``overloaded``."""
        self._bind()
        running = self._running.get(key)
        while running is not None:
            self.joined += 1
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this request was cancelled, not the computation it joined
            running = self._running.get(key)  # the computation was given up: start or join another
        admit()
        capped = self.share < self.capacity  # a share of the whole capacity is no time cap at all
        if capped and self.busy(client) > self.share / 2:
            self.shed += 1
            raise ApiError(
                "rate_limited",
                f"this client's {self.what} took more than {self.share / 2:.0%} of this server's time over the last "
                f"{WINDOW:g} s; retry in {RETRY_AFTER} s",
                headers={"Retry-After": str(RETRY_AFTER)}, extra={"budget": "expensive"},
            )
        if (self._slots.locked() and self._queued >= self.waiting) or (capped and self.busy() >= self.share):
            self.shed += 1
            raise shed(self.what)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            self._queued += 1
            try:
                async with asyncio.timeout(self.patience):
                    await self._slots.acquire()
            except TimeoutError:
                self.shed += 1
                raise shed(self.what) from None
            finally:
                self._queued -= 1
            began = self._clock()
            self._started[id(future)] = (client, began)
            try:
                result = await compute()
                self.computed += 1
            finally:
                del self._started[id(future)]
                self._done.append((client, began, self._clock()))
                self._slots.release()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failure nobody joined is not reported as never retrieved
            raise
        except BaseException:
            future.cancel()  # given up (cancelled): those who joined compute it themselves
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[key]
