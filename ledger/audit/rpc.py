"""A small JSON-RPC client for the auditor: raw answers (no web3 formatters), batches, timeouts, a few retries.

The auditor reads the chain only through this client, so what it checks is exactly what the node says.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Sequence
from typing import Any

import requests

from ledger.audit.errors import CannotAudit
from ledger.errors import LedgerError

# Providers word a refused log query differently ("query returned more than 10000 results", "block range is too
# large", "exceed maximum block range", "response size exceeded", …).
_TOO_LARGE = re.compile(
    r"more than \d+ results|too many (logs|results|blocks)|(block )?range (is )?too (large|wide|big)|"
    r"exceed\w* (the )?(max\w* )?(block )?range|response (size|is too)|too large|size (limit )?exceeded|"
    r"limit exceeded.*(logs|results)",
    re.IGNORECASE,
)


class RpcError(LedgerError):
    """The node answered a call with a JSON-RPC error."""

    def __init__(self, method: str, code: Any, message: str) -> None:
        self.method, self.code, self.message = method, code, message
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")

    @property
    def too_large(self) -> bool:
        return self.method == "eth_getLogs" and bool(_TOO_LARGE.search(self.message))


def safe_url(url: str) -> str:
    """The endpoint without path, query or credentials (API keys often sit in the path): safe to print and report."""
    match = re.match(r"^(https?://)(?:[^@/]*@)?([^/?#]+)", url)
    return match.group(1) + match.group(2) if match else "the node"


class Rpc:
    """JSON-RPC over HTTP to one node."""

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 3) -> None:
        self.url = url
        self.where = safe_url(url)
        self.timeout = timeout
        self.retries = retries
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        self.requests = 0
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        answer = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}, method)
        return _result(method, answer)

    def try_call(self, method: str, params: list[Any]) -> tuple[Any, RpcError | None]:
        """The result, or None and the node's error (for calls a node may legitimately refuse)."""
        try:
            return self.call(method, params), None
        except RpcError as exc:
            return None, exc

    def batch(self, calls: Sequence[tuple[str, list[Any]]], chunk: int = 200) -> list[Any]:
        """Results in order, `chunk` calls per HTTP request; an error answer raises."""
        out: list[Any] = []
        for start in range(0, len(calls), chunk):
            part = calls[start : start + chunk]
            payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(part)]
            answers = self._post(payload, f"{part[0][0]} (batch of {len(part)})")
            if not isinstance(answers, list):
                # Some nodes answer a refused batch with one error object; some refuse batches outright.
                raise RpcError(part[0][0], *_error(answers))
            by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
            out.extend(_result(m, by_id.get(i, {})) for i, (m, _) in enumerate(part))
        return out

    def _post(self, payload: Any, what: str) -> Any:
        body = json.dumps(payload)
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                # Never redirected: the node answers itself (a redirect could send the audit to another chain's node).
                response = self.session.post(self.url, data=body, timeout=self.timeout, allow_redirects=False)
            except requests.Timeout:
                problem = f"no answer within {self.timeout:g} s"
            except requests.ConnectionError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            except requests.RequestException as exc:
                raise CannotAudit(f"cannot reach the JSON-RPC node at {self.where}: {exc}") from exc
            else:
                if response.is_redirect:
                    location = response.headers.get("Location")
                    raise CannotAudit(f"{what}: the node at {self.where} redirects to "
                                      f"{safe_url(location) if location else 'nowhere'}: the auditor does not follow "
                                      "redirects")
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"HTTP {response.status_code}"
                else:
                    try:
                        return json.loads(response.content)
                    except ValueError:
                        if response.status_code >= 400:
                            raise CannotAudit(
                                f"{what}: the node at {self.where} answered HTTP {response.status_code}"
                            ) from None
                        problem = "an answer that is not JSON"
            if attempt > self.retries:
                raise CannotAudit(f"cannot reach the JSON-RPC node at {self.where}: {what} failed with {problem}")
            time.sleep(random.uniform(0, 0.2 * 2**attempt))

    def close(self) -> None:
        self.session.close()


def _error(answer: Any) -> tuple[Any, str]:
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None, f"malformed answer {str(answer)[:200]!r}"
    return error.get("code"), str(error.get("message", ""))


def _result(method: str, answer: Any) -> Any:
    if isinstance(answer, dict) and "result" in answer and "error" not in answer:
        return answer["result"]
    raise RpcError(method, *_error(answer))
