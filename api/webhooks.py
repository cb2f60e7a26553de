"""Signed webhooks into an agency's own case system: each new filing of the agency is POSTed to the URL it set
(``PUT /api/v1/intake/webhook``), in seq order, until its system answers 2xx.

Delivery
    The body is what ``GET /api/v1/intake/filings/{seq}`` answers (the filing as the ledger holds it, the content
    from the private store, the photos' links), under ``{"event": "filing.recorded", "delivery": …}``. Headers:
    ``X-Civic-Event: filing.recorded``; ``X-Civic-Delivery: <agency>:<seq>``, the same on every attempt, so the
    receiver can drop a delivery it has seen (a delivery is retried until acknowledged: at least once, never
    skipped); ``X-Civic-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." ‖ body)>``, which
    :func:`verify_signature` checks (the secret is shown once, when the webhook is set). A failure (no answer in
    :data:`TIMEOUT` seconds, a status other than 2xx, a redirect — redirects are not followed) waits 2, 4, 8 … seconds
    up to an hour before the same delivery is tried again; later filings wait behind it, in order. What comes from
    the index: a filing reaches the webhook once indexed, whoever relayed it; the cursor starts at the filings
    indexed when the webhook is set (earlier ones are in the intake list).
One deliverer
    Each API process runs a :class:`Deliverer` thread, but only the one holding ``<data_dir>/intake/deliver.lock``
    delivers; the others try to take it every poll, so deliveries go on when that process stops.
Not a way into the operator's network
    A webhook URL is ``https`` (``http`` only where ``webhook_allow_private`` is set, for a local case system), and its
    host must not resolve to a loopback, private, link-local or reserved address unless ``webhook_allow_private``; the
    host is resolved again before every delivery (a name re-pointed after it was set is refused then, and the delivery
    counts as failed).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("api.webhooks")

EVENT = "filing.recorded"
TIMEOUT = 10.0
MAX_BACKOFF = 3600.0
#: how old a signature's timestamp :func:`verify_signature` takes by default
TOLERANCE = 300

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    agency_id       TEXT PRIMARY KEY,          -- the agency code
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,             -- hex; the HMAC key
    cursor          INTEGER NOT NULL,          -- the last seq delivered (or skipped as older than the webhook)
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered       INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL
);
"""


class WebhookRefused(ValueError):
    """A URL that cannot be a webhook, in words."""


@dataclass(frozen=True)
class Webhook:
    agency_id: str
    url: str
    secret: str
    cursor: int
    failures: int
    next_attempt_at: float
    last_error: str | None
    delivered: int

    def public(self) -> dict[str, Any]:
        """What the agency is shown of it (never the secret after it was set)."""
        return {"url": self.url, "cursor": self.cursor, "delivered": self.delivered, "failures": self.failures,
                "next_attempt_at": int(self.next_attempt_at) if self.failures else None,
                "last_error": self.last_error}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Civic-Signature`` of `body` sent at `timestamp`."""
    mac = hmac.new(bytes.fromhex(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, now: int | None = None,
                     tolerance: int = TOLERANCE) -> bool:
    """Whether `header` (``X-Civic-Signature``) signs `body` with `secret`, made within `tolerance` seconds: what a
    receiver checks before it trusts a delivery."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


def check_url(url: str, *, allow_private: bool, resolve: Callable[[str], list[str]] | None = None) -> None:
    """Raise :class:`WebhookRefused` unless `url` may be a webhook (see the module's docstring)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookRefused("a webhook URL is https://host/path")
    if parts.scheme == "http" and not allow_private:
        raise WebhookRefused("a webhook URL is https (http only for a local case system, where the service allows it)")
    if parts.username or parts.password:
        raise WebhookRefused("a webhook URL carries no user or password: its deliveries are signed")
    if len(url) > 2000:
        raise WebhookRefused("a webhook URL has at most 2000 characters")
    if allow_private:
        return
    try:
        addresses = (resolve or _resolve)(parts.hostname)
    except OSError:
        raise WebhookRefused(f"the webhook's host {parts.hostname!r} does not resolve") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global:
            raise WebhookRefused(f"the webhook's host resolves to {ip}, which is not a public address")


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})


class WebhookBook:
    """The agencies' webhooks, in ``<data_dir>/intake/webhooks.sqlite``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.directory / "webhooks.sqlite"), isolation_level=None,
                                   check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def set(self, agency_id: str, url: str, cursor: int) -> Webhook:
        """Set (or replace) the agency's webhook with a new secret; deliveries start after seq `cursor`."""
        secret = secrets.token_hex(32)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO webhooks (agency_id, url, secret, cursor, created_at) VALUES (?, ?, ?, ?, ?)",
                (agency_id, url, secret, cursor, time.time()),
            )
        found = self.get(agency_id)
        assert found is not None
        return found

    def get(self, agency_id: str) -> Webhook | None:
        with self._lock:
            row = self._db.execute(
                "SELECT agency_id, url, secret, cursor, failures, next_attempt_at, last_error, delivered "
                "FROM webhooks WHERE agency_id = ?", (agency_id,),
            ).fetchone()
        return None if row is None else Webhook(*row)

    def delete(self, agency_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM webhooks WHERE agency_id = ?", (agency_id,)).rowcount > 0

    def due(self, now: float) -> list[Webhook]:
        with self._lock:
            agencies = [r[0] for r in self._db.execute(
                "SELECT agency_id FROM webhooks WHERE next_attempt_at <= ? ORDER BY agency_id", (now,))]
        return [w for w in (self.get(a) for a in agencies) if w is not None]

    def delivered_one(self, hook: Webhook, seq: int) -> None:
        with self._lock:  # only if the webhook was not replaced meanwhile (same secret)
            self._db.execute(
                "UPDATE webhooks SET cursor = ?, failures = 0, next_attempt_at = 0, last_error = NULL, "
                "delivered = delivered + 1 WHERE agency_id = ? AND secret = ?", (seq, hook.agency_id, hook.secret),
            )

    def failed(self, hook: Webhook, error: str, now: float) -> None:
        wait = min(MAX_BACKOFF, 2.0 ** (hook.failures + 1))
        with self._lock:
            self._db.execute(
                "UPDATE webhooks SET failures = failures + 1, next_attempt_at = ?, last_error = ? "
                "WHERE agency_id = ? AND secret = ?", (now + wait, error[:200], hook.agency_id, hook.secret),
            )


#: the next filing of an agency after a seq, as the intake API shows it: (seq, the body's item) or None
NextFiling = Callable[[str, int], tuple[int, dict[str, Any]] | None]


class Deliverer:
    """Delivers each agency's new filings to its webhook, in order (see the module's docstring)."""

    def __init__(self, book: WebhookBook, next_filing: NextFiling, *, allow_private: bool,
                 poll_interval: float = 2.0, client: httpx.Client | None = None) -> None:
        self.book = book
        self.next_filing = next_filing
        self.allow_private = allow_private
        self.poll_interval = poll_interval
        self._client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_file: IO[str] | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="intake-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT + 5)
            self._thread = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None
        self._client.close()

    def _leader(self) -> bool:
        """Whether this process holds the deliverer's lock (taking it if it is free)."""
        if self._lock_file is not None:
            return True
        handle = open(self.book.directory / "deliver.lock", "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._leader():
                    self.deliver_due()
            except Exception as exc:  # noqa: BLE001 - the index or the book may be closing; the next poll tries
                log.warning("webhook delivery round failed: %s", type(exc).__name__)  # again; never the content
            self._stop.wait(self.poll_interval)

    def deliver_due(self, now: float | None = None) -> int:
        """One round: each due webhook's next deliveries, until one fails or none is left; how many succeeded."""
        done = 0
        for hook in self.book.due(time.time() if now is None else now):
            cursor = hook.cursor
            while not self._stop.is_set():
                found = self.next_filing(hook.agency_id, cursor)
                if found is None:
                    break
                seq, item = found
                error = self._post(hook, seq, item)
                if error is not None:
                    log.info("webhook of %s: delivery of seq %d failed: %s", hook.agency_id, seq, error)
                    self.book.failed(hook, error, time.time())
                    break
                self.book.delivered_one(hook, seq)
                hook = Webhook(hook.agency_id, hook.url, hook.secret, seq, 0, 0.0, None, hook.delivered + 1)
                cursor, done = seq, done + 1
        return done

    def _post(self, hook: Webhook, seq: int, item: dict[str, Any]) -> str | None:
        """Deliver one filing; None when acknowledged (2xx), else what went wrong (never the content)."""
        try:
            check_url(hook.url, allow_private=self.allow_private)
        except WebhookRefused as exc:
            return str(exc)
        delivery = f"{hook.agency_id}:{seq}"
        body = json.dumps({"event": EVENT, "delivery": delivery, **item}, separators=(",", ":"),
                          ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "civic-ledger-webhooks/1",
                   "X-Civic-Event": EVENT, "X-Civic-Delivery": delivery,
                   "X-Civic-Signature": sign(hook.secret, int(time.time()), body)}
        try:
            answer = self._client.post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"no answer ({type(exc).__name__})"
        if not 200 <= answer.status_code < 300:
            return f"answered HTTP {answer.status_code}"
        return None


__all__ = ["Deliverer", "Webhook", "WebhookBook", "WebhookRefused", "check_url", "sign", "verify_signature"]
