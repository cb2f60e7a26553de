"""The indexer's leader lease: one indexer process writes a store at a time, on SQLite and PostgreSQL alike.

The lease
    ``index_leader`` (``ledger.store.schema``) holds at most one row: the indexer allowed to write the store now
    (a random id, new for each :class:`LeaderLease`), where it runs (host name and process id: nothing personal),
    when it took the lease, its last heartbeat and when the lease ends. An indexer takes the lease in a transaction
    of its own, by a conditional UPDATE that matches only when it holds the lease already or the lease has ended (an
    INSERT when nobody holds it). While it leads it renews the lease at every poll and with every write; one that
    stops cleanly gives it up (the row is deleted), so a standby takes over at its next poll; a killed one's lease
    ends ``lease_seconds`` after its last heartbeat (``CIVIC_INDEX_LEASE_SECONDS``), and the next indexer to ask
    takes it and carries on from the store's sync state.

Fencing
    A leader paused for longer than its lease (a stopped virtual machine, a suspended process, a partition) may wake
    after another took over. So every write transaction of the indexer starts with :meth:`LeaderLease.fence`: an
    UPDATE renewing the lease *where the holder is this indexer*, in the same transaction as the write. When it
    matches no row the write is refused (:class:`LeaseLost`) and rolled back. The UPDATE also locks the row (the
    database on SQLite) until the transaction ends, so an indexer taking over waits for a write under way and then
    finds the lease just renewed: the two never both write.

Clocks
    Times are the processes' own clocks, in unix seconds. A lease of tens of seconds absorbs the differences between
    hosts kept by NTP; a host whose clock runs further ahead could take over a live leader's lease early, and then
    fencing refuses the old leader's next write: the index stays whole either way.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, case, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ledger.config import DEFAULT_LEASE_SECONDS
from ledger.errors import LedgerError
from ledger.store.db import Store
from ledger.store.schema import index_leader

log = logging.getLogger(__name__)

#: ``index_leader.id`` of the one lease of a store
LEASE_ID = 1
#: the longest a waiting indexer sleeps between two looks at the lease (seconds)
WAIT_POLL = 1.0


class NotLeader(LedgerError):
    """Another indexer holds the store's leader lease: this one wrote nothing (it may wait, or stand by). `holder`:
    the lease as it was found (None: nobody held it)."""

    def __init__(self, message: str, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseLost(NotLeader):
    """This indexer's lease was taken over while it was paused or cut off: its write was refused and rolled back."""


@dataclass(frozen=True)
class Holder:
    """The lease as the store holds it."""

    holder: str
    label: str
    acquired_at: int
    heartbeat_at: int
    expires_at: int

    def describe(self, now: int) -> str:
        ends = (f"its lease ends in {self.expires_at - now} s" if self.expires_at > now
                else f"its lease ended {now - self.expires_at} s ago")
        return (f"indexer {self.label} (leading since {_utc(self.acquired_at)}, last heartbeat "
                f"{max(0, now - self.heartbeat_at)} s ago; {ends})")


def default_label() -> str:
    """Where this process runs, to tell indexers apart in messages: host name and process id."""
    return f"{socket.gethostname()}/{os.getpid()}"[:128]


class LeaderLease:
    """One indexer's hold on a store's leader lease (:mod:`ledger.index.leader`)."""

    def __init__(
        self,
        store: Store,
        *,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        label: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease_seconds < 1:
            raise ValueError("lease_seconds must be >= 1")
        self.store = store
        self.lease_seconds = lease_seconds
        #: never reused: a restarted indexer is another holder
        self.holder = uuid.uuid4().hex
        self.label = (label or default_label())[:128]
        self._clock = clock
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this indexer took the lease and has not seen it lost or given it up since."""
        return self._held

    def now(self) -> int:
        return int(self._clock())

    def current(self, conn: Connection | None = None) -> Holder | None:
        """Who holds the lease (perhaps ended), or None when nobody does."""
        if conn is None:
            with self.store.connect() as own:
                return self.current(own)
        row = conn.execute(select(index_leader).where(index_leader.c.id == LEASE_ID)).mappings().first()
        if row is None:
            return None
        return Holder(str(row["holder"]), str(row["label"]), int(row["acquired_at"]), int(row["heartbeat_at"]),
                      int(row["expires_at"]))

    def try_take(self) -> Holder | None:
        """Take the lease, or renew it, in a transaction of its own. None when this indexer holds it now; else the
        indexer that does."""
        before = None if self._held else self.current()
        while True:
            now = self.now()
            lease = index_leader.c
            with self.store.begin() as conn:
                taken = conn.execute(
                    update(index_leader)
                    .where(lease.id == LEASE_ID, (lease.holder == self.holder) | (lease.expires_at <= now))
                    .values(holder=self.holder, label=self.label, heartbeat_at=now, expires_at=now + self.lease_seconds,
                            acquired_at=case((lease.holder == self.holder, lease.acquired_at), else_=now))
                ).rowcount
                other = None if taken else self.current(conn)
            if taken:
                break
            if other is not None:
                if self._held:
                    log.warning("indexer %s lost the leader lease of %s to %s", self.label, self.store.url,
                                other.describe(now))
                self._held = False
                return other
            try:
                with self.store.begin() as conn:
                    conn.execute(insert(index_leader).values(
                        id=LEASE_ID, holder=self.holder, label=self.label, acquired_at=now, heartbeat_at=now,
                        expires_at=now + self.lease_seconds,
                    ))
            except IntegrityError:
                continue  # another indexer took it meanwhile: look again
            break
        if not self._held:
            if before is not None and before.holder != self.holder:
                log.warning("indexer %s took over the store %s from %s", self.label, self.store.url,
                            before.describe(now))
            else:
                log.info("indexer %s leads the store %s", self.label, self.store.url)
        self._held = True
        return None

    def take(self, wait: float | None = None, *, stop: threading.Event | None = None) -> None:
        """Take (or renew) the lease, waiting up to `wait` seconds (None: as long as it takes) for the indexer that
        holds it to give it up or let it end. :class:`NotLeader` when it is still held then (or `stop` is set)."""
        started = time.monotonic()
        announced: str | None = None
        while True:
            other = self.try_take()
            if other is None:
                return
            now = self.now()
            left = None if wait is None else wait - (time.monotonic() - started)
            if (left is not None and left <= 0) or (stop is not None and stop.is_set()):
                raise NotLeader(
                    f"another indexer leads the store {self.store.url}: {other.describe(now)}. It keeps the index; "
                    f"this one ({self.label}) wrote nothing. A standby indexer takes over once that lease ends "
                    "unrenewed",
                    other,
                )
            if announced != other.holder:
                log.info("indexer %s waits for the leader lease of %s, held by %s", self.label, self.store.url,
                         other.describe(now))
                announced = other.holder
            delay = min(WAIT_POLL, self.lease_seconds / 4, max(0.05, other.expires_at - now))
            if left is not None:
                delay = min(delay, left)
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)

    def fence(self, conn: Connection) -> None:
        """In the caller's write transaction, before it writes: renew the lease if this indexer still holds it, else
        refuse the write (:class:`LeaseLost`, or :class:`NotLeader` for an indexer that never took it)."""
        now = self.now()
        renewed = conn.execute(
            update(index_leader)
            .where(index_leader.c.id == LEASE_ID, index_leader.c.holder == self.holder)
            .values(heartbeat_at=now, expires_at=now + self.lease_seconds)
        ).rowcount
        if renewed:
            return
        other = self.current(conn)
        held, self._held = self._held, False
        who = "nobody holds it now" if other is None else f"it is held by {other.describe(now)}"
        if held:
            raise LeaseLost(
                f"indexer {self.label} lost the leader lease of the store {self.store.url} (paused or cut off past its "
                f"{self.lease_seconds} s lease): {who}. Its write was refused and rolled back; the index stays as the "
                "leader left it",
                other,
            )
        raise NotLeader(f"indexer {self.label} does not hold the leader lease of the store {self.store.url} ({who}): "
                        "it may not write", other)

    def release(self) -> None:
        """Give the lease up, if this indexer holds it, so a standby takes over at once. A database that cannot be
        reached is left to end the lease by itself."""
        was_held, self._held = self._held, False
        try:
            with self.store.begin() as conn:
                gone = conn.execute(
                    delete(index_leader).where(index_leader.c.id == LEASE_ID, index_leader.c.holder == self.holder)
                ).rowcount
        except DBAPIError as exc:
            log.warning("indexer %s could not give up the leader lease of %s (%s); it ends within %d s",
                        self.label, self.store.url, type(exc.orig).__name__, self.lease_seconds)
            return
        if gone and was_held:
            log.info("indexer %s gave up the leader lease of %s", self.label, self.store.url)


def _utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
