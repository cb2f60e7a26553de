"""Read the public API (``/api/v1``) as any client would: HTTP GETs, pages followed by their cursor, bulk exports
streamed as JSON Lines, ``429`` answered by waiting as ``Retry-After`` says."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from ledger.audit.errors import CannotAudit
from ledger.errors import LedgerError

PREFIX = "/api/v1"


class ApiError(LedgerError):
    """The API answered a request with an error status."""

    def __init__(self, path: str, status: int, message: str) -> None:
        self.path, self.status, self.message = path, status, message
        super().__init__(f"GET {path}: HTTP {status}: {message}")


class PublicApi:
    """A client of the public read API at `base_url` (or through a given ``httpx.Client``, e.g. FastAPI's
    ``TestClient``)."""

    def __init__(
        self, base_url: str | None = None, *, client: httpx.Client | None = None, timeout: float = 60.0,
        page_size: int = 1000, max_waits: int = 30,
    ) -> None:
        if client is None:
            if not base_url:
                raise ValueError("give the API's base URL or a client")
            client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, follow_redirects=True)
        self.client = client
        self.where = str(client.base_url).rstrip("/") or "the API"
        self.page_size = page_size
        self.max_waits = max_waits
        self.requests = 0

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of ``GET {PREFIX}{path}``; :class:`ApiError` for an error status."""
        response = self._send(path, params)
        if response.status_code >= 400:
            raise ApiError(self.path_of(path, params), response.status_code, _message(response))
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(self.path_of(path, params), response.status_code, "the answer is not JSON") from exc

    def get_or_none(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """Like :meth:`get`, but None for 404 (a resource the API does not have)."""
        try:
            return self.get(path, params)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

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
                raise ApiError(self.path_of(path, query), 200, f"the page cursor {cursor!r} repeats")
            seen.add(cursor)
            query = {**query, "after": cursor}

    def lines(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of a JSON Lines export, streamed."""
        url = PREFIX + path
        try:
            with self.client.stream("GET", url, params=params) as response:
                self.requests += 1
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(self.path_of(path, params), response.status_code, _message(response))
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise CannotAudit(f"the public API at {self.where} does not answer: {exc}") from exc

    def path_of(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items() if v is not None)
        return PREFIX + path + (f"?{query}" if query else "")

    def _send(self, path: str, params: dict[str, Any] | None) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        for _ in range(self.max_waits + 1):
            try:
                response = self.client.get(PREFIX + path, params=clean)
            except httpx.TransportError as exc:
                raise CannotAudit(f"the public API at {self.where} does not answer: {exc}") from exc
            self.requests += 1
            if response.status_code != 429:
                return response
            retry_after = response.headers.get("Retry-After", "1")
            time.sleep(min(30.0, float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 1.0))
        return response

    def close(self) -> None:
        self.client.close()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(body)[:200]
