"""Computed figures, kept (``api.routes.figures``): :class:`FiguresCache` holds the serialised metrics and scorecards by
what was asked and what the index holds (``api.read.state.IndexContent``). No SQL of its own."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class FiguresCache:
    """Serialised answers of the figures endpoints (metrics, scorecards), by (what was asked, :attr:`IndexContent.key`).

    Exact: the figures are a function of the normalised request (the filter with its ``as_of`` resolved) and of the
    index's rows, which the content key identifies; the key moves whenever the index does, and answers for any other
    content are dropped as soon as a request sees the new one. One computation per key at a time: concurrent requests
    for a key being computed wait for it rather than computing it again. At most ``max_entries`` answers are kept,
    the least recently used dropped first. Per process (each uvicorn worker has its own).
    """

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[Hashable, Hashable], bytes] = OrderedDict()
        self._computing: dict[tuple[Hashable, Hashable], threading.Event] = {}
        self._content: Hashable = None
        #: answers served from the cache, and computed
        self.hits = 0
        self.misses = 0

    def _see(self, content: Hashable) -> None:
        """Drop the answers for any other content (the index has moved on). Under the lock."""
        if content != self._content:
            self._content = content
            for key in [k for k in self._answers if k[1] != content]:
                del self._answers[key]

    def get(self, request: Hashable, content: Hashable) -> bytes | None:
        with self._lock:
            self._see(content)
            key = (request, content)
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
                self.hits += 1
            return answer

    def get_or_compute(self, request: Hashable, content: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The answer for ``request`` on ``content``: kept, or being computed by another request (waited for), or
        computed now by ``compute`` (which must compute it on exactly that content). An error is not kept."""
        key = (request, content)
        while True:
            with self._lock:
                self._see(content)
                answer = self._answers.get(key)
                if answer is not None:
                    self._answers.move_to_end(key)
                    self.hits += 1
                    return answer
                pending = self._computing.get(key)
                if pending is None:
                    pending = self._computing[key] = threading.Event()
                    break
            pending.wait()  # then look again: kept, or (the computation failed) compute it here
        try:
            answer = compute()
            with self._lock:
                self.misses += 1
                if content == self._content:
                    self._answers[key] = answer
                    while len(self._answers) > self.max_entries:
                        self._answers.popitem(last=False)
            return answer
        finally:
            with self._lock:
                del self._computing[key]
            pending.set()

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)
