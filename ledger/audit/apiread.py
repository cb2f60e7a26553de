"""Read the public API (``/api/v1``) as any client would: HTTP GETs, pages followed by their cursor, bulk exports
streamed as JSON Lines, ``429`` answered by waiting as ``Retry-After`` says — and carefully, since the API is the
operator's and the auditor must not be steered by it:

- redirects are never followed: a ``3xx`` is an error naming where it pointed (:class:`ApiRedirected`), since an
  operator could send the auditor to another, honest-looking server than the one citizens get;
- every answer is read as a stream and bounded, counted after decompression (a compressed bomb is bounded too):
  an answer held whole (JSON, a page) by :data:`MAX_RESPONSE_BYTES`, a bulk export or published file by
  :data:`MAX_EXPORT_BYTES` (an export is parsed a line at a time, each line bounded like an answer):
  :class:`ResponseTooLarge` past them, never a memory blow-up;
- every request has a timeout for each read and a deadline for the whole answer (a server dripping a byte at a time
  cannot hold the audit for ever);
- the client says it is an ordinary browser (:data:`USER_AGENT`), never "civic-audit", so the operator cannot pick
  the auditor's requests out by their identity and answer them differently from citizens'.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ledger.audit.errors import CannotAudit
from ledger.audit.model import cut
from ledger.chain.rpc import retry_after_seconds
from ledger.errors import LedgerError

PREFIX = "/api/v1"

#: the auditor's identity on the wire: a common browser's (Firefox ESR on Linux), like a citizen's
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#: the largest answer read whole (JSON: a page, a view), in bytes after decompression: the largest the honest API
#: gives is a page of 1,000 entries, about 0.8 MB (docs/audit-guide.md "A careful client")
MAX_RESPONSE_BYTES = 64 << 20
#: the largest bulk export (JSON Lines, streamed) or published file (a batch file, read whole to hash it): exports
#: take about 800 bytes an entry (80 MB for the 100,000-entry benchmark ledger); a full batch file of 2^20 entries
#: about 300 MB
MAX_EXPORT_BYTES = 4 << 30
#: the longest one request may take, from sending it to its last byte (a bulk export included)
REQUEST_SECONDS = 600.0


class ApiError(LedgerError):
    """The API answered a request with an error status (or an answer the auditor will not read)."""

    def __init__(self, path: str, status: int, message: str) -> None:
        self.path, self.status, self.message = path, status, message
        super().__init__(f"GET {path}: HTTP {status}: {message}")


class ApiRedirected(ApiError):
    """The API answered with a redirect; the auditor does not follow it. `location` is where it pointed."""

    def __init__(self, path: str, status: int, location: str | None) -> None:
        self.location = location
        where = cut(location, 300) if location else "nowhere (no Location header)"
        super().__init__(path, status, f"redirects to {where}: the auditor does not follow redirects (the API "
                         "audited must answer itself, not send the auditor to another server than citizens get)")


class ResponseTooLarge(ApiError):
    """The API's answer (or one line of an export) is larger than the auditor reads."""

    def __init__(self, path: str, status: int, limit: int, *, declared: int | None = None,
                 what: str = "the answer") -> None:
        self.limit = limit
        size = f"declares {declared:,} bytes" if declared is not None else f"goes on past {limit:,} bytes"
        super().__init__(path, status, f"{what} {size}; the auditor reads at most {limit:,} bytes of it")


class PublicApi:
    """A client of the public read API at `base_url` (or through a given ``httpx.Client``, e.g. FastAPI's
    ``TestClient``). `timeout`: seconds to wait for each read; `request_seconds`: for a whole answer;
    `max_response_bytes`: the largest answer read whole (and the longest line of an export); `max_export_bytes`: the
    largest export or published file."""

    def __init__(
        self, base_url: str | None = None, *, client: httpx.Client | None = None, timeout: float = 60.0,
        page_size: int = 1000, max_waits: int = 30, max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_export_bytes: int = MAX_EXPORT_BYTES, request_seconds: float = REQUEST_SECONDS,
    ) -> None:
        if client is None:
            if not base_url:
                raise ValueError("give the API's base URL or a client")
            client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, follow_redirects=False)
        if max_response_bytes < 1 or max_export_bytes < 1:
            raise ValueError(f"the size limits must be positive, not {max_response_bytes} and {max_export_bytes}")
        self.client = client
        self.where = str(client.base_url).rstrip("/") or "the API"
        self.timeout = timeout
        self.page_size = page_size
        self.max_waits = max_waits
        self.max_response_bytes = max_response_bytes
        self.max_export_bytes = max_export_bytes
        self.request_seconds = request_seconds
        self.requests = 0
        #: the largest answer read so far (bytes after decompression), and its path
        self.largest: tuple[int, str] = (0, "")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of ``GET {PREFIX}{path}``; :class:`ApiError` for an error status."""
        status, body = self.fetch(path, params)
        if status >= 400:
            raise ApiError(self.path_of(path, params), status, _message(body))
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ApiError(self.path_of(path, params), status, "the answer is not JSON") from exc

    def get_or_none(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """Like :meth:`get`, but None for 404 (a resource the API does not have)."""
        try:
            return self.get(path, params)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def file(self, path: str, limit: int | None = None) -> bytes | None:
        """The exact bytes of ``GET {PREFIX}{path}`` (a published file, at most `limit` bytes: by default
        ``max_export_bytes``), None for 404; :class:`ApiError` else."""
        status, body = self.fetch(path, limit=limit or self.max_export_bytes)
        if status == 404:
            return None
        if status >= 400:
            raise ApiError(self.path_of(path), status, _message(body))
        return body

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following ``next`` as ``after`` until it is null."""
        query = {**(params or {}), "limit": self.page_size}
        seen: set[Any] = set()
        while True:
            try:
                page = self.get(path, query)
            except ApiError as exc:
                if exc.status != 422 or "limit" not in query:
                    raise
                query.pop("limit")  # a service configured with smaller pages: take its default size
                continue
            yield from page.get("items", [])
            cursor = page.get("next")
            if cursor is None:
                return
            if cursor in seen:
                raise ApiError(self.path_of(path, query), 200, f"the page cursor {cut(repr(cursor))} repeats")
            seen.add(cursor)
            query = {**query, "after": cursor}

    def lines(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of a JSON Lines export, streamed: the export bounded by ``max_export_bytes``, each line by
        ``max_response_bytes``."""
        shown = self.path_of(path, params)
        for attempt in range(self.max_waits + 1):
            with self._stream(path, params, self.max_export_bytes) as (response, chunks):
                wait = _come_back_after(response)
                if wait is None or attempt == self.max_waits:
                    if response.status_code >= 400:
                        raise ApiError(shown, response.status_code, _message(b"".join(chunks)))
                    yield from self._rows(chunks, shown, response.status_code)
                    return
            time.sleep(wait)

    def _rows(self, chunks: Iterator[bytes], shown: str, status: int) -> Iterator[dict[str, Any]]:
        """The JSON Lines rows of an export's chunks, each line bounded by ``max_response_bytes``."""
        pending = bytearray()  # the line being read, so far
        number = 0
        for chunk in chunks:
            *ends, rest = chunk.split(b"\n")
            for piece in ends:
                pending += piece
                number += 1
                if pending.strip():
                    yield _row(bytes(pending), shown, number)
                pending = bytearray()
            pending += rest
            if len(pending) > self.max_response_bytes:
                raise ResponseTooLarge(shown, status, self.max_response_bytes, what="a line")
        if pending.strip():
            yield _row(bytes(pending), shown, number + 1)

    def path_of(self, path: str, params: dict[str, Any] | None = None, prefix: str = PREFIX) -> str:
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items() if v is not None)
        return prefix + path + (f"?{query}" if query else "")

    def fetch(self, path: str, params: dict[str, Any] | None = None, *, limit: int | None = None,
              prefix: str = PREFIX) -> tuple[int, bytes]:
        """The status and whole body of ``GET {prefix}{path}`` (at most `limit` bytes: by default
        ``max_response_bytes``), after waiting out ``429`` answers and ``503`` answers that say when to come back
        (``Retry-After``: a budget spent, work shed under load), as any client is asked to; for documents that are
        not JSON, or outside ``/api/v1`` (``prefix=""``: Open311). A redirect raises :class:`ApiRedirected`, a
        larger answer :class:`ResponseTooLarge`."""
        for attempt in range(self.max_waits + 1):
            with self._stream(path, params, limit or self.max_response_bytes, prefix) as (response, chunks):
                wait = _come_back_after(response)
                if wait is None or attempt == self.max_waits:
                    return response.status_code, b"".join(chunks)
            time.sleep(wait)
        raise AssertionError("unreachable")

    @contextmanager
    def _stream(self, path: str, params: dict[str, Any] | None, limit: int,
                prefix: str = PREFIX) -> Iterator[tuple[httpx.Response, Iterator[bytes]]]:
        """One GET, its answer streamed: the response (a redirect raises :class:`ApiRedirected`) and its body's
        chunks, each counted against `limit` (bytes) and the request's deadline as it arrives."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        shown = self.path_of(path, params, prefix)
        deadline = time.monotonic() + self.request_seconds
        try:
            with self.client.stream("GET", prefix + path, params=clean, follow_redirects=False,
                                    headers={"User-Agent": USER_AGENT}, timeout=self.timeout) as response:
                self.requests += 1
                if response.is_redirect or 300 <= response.status_code < 400:
                    raise ApiRedirected(shown, response.status_code, response.headers.get("Location"))
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit and not response.headers.get("Content-Encoding"):
                    raise ResponseTooLarge(shown, response.status_code, limit, declared=int(declared))
                yield response, self._bounded(response, shown, limit, deadline)
        except httpx.TimeoutException as exc:
            raise CannotAudit(f"the public API at {self.where} did not answer GET {shown} within {self.timeout:g} s "
                              f"({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise CannotAudit(f"the public API at {self.where} does not answer: {exc}") from exc

    def _bounded(self, response: httpx.Response, shown: str, limit: int, deadline: float) -> Iterator[bytes]:
        total = 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > limit:
                raise ResponseTooLarge(shown, response.status_code, limit)
            if time.monotonic() > deadline:
                raise CannotAudit(f"the public API at {self.where} did not finish answering GET {shown} within "
                                  f"{self.request_seconds:g} s ({total:,} bytes read)")
            yield chunk
        if total > self.largest[0]:
            self.largest = (total, shown)

    def close(self) -> None:
        self.client.close()


def _row(line: bytes, shown: str, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ApiError(shown, 200, f"line {number} of the export is not JSON: {cut(repr(line[:300]))}") from exc
    if not isinstance(row, dict):
        raise ApiError(shown, 200, f"line {number} of the export is not a JSON object: {cut(repr(row))}")
    return row


def _come_back_after(response: httpx.Response) -> float | None:
    """The seconds to wait before asking again, when the answer says to come back later: a ``429`` (a budget spent),
    or a ``503`` naming when (``Retry-After``: work shed under load, all exports busy); None for any other answer."""
    retry_after = response.headers.get("Retry-After")
    if response.status_code != 429 and (response.status_code != 503 or retry_after is None):
        return None
    # at least a second between two asks, at most 30 s (an HTTP date is read too: ``ledger.chain.rpc``'s one parser)
    return min(30.0, max(1.0, retry_after_seconds(retry_after)))


def _message(body: bytes) -> str:
    """What an error answer says, for a person: its ``error.message``, else its text; cut either way."""
    try:
        data = json.loads(body)
    except ValueError:
        return cut(body.decode("utf-8", "replace"))
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return cut(str(error["message"]))
    return cut(str(data))
