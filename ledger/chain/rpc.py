"""One JSON-RPC client and one retry policy for every part that talks to a node: the indexer and the auditor read
raw JSON-RPC with :class:`JsonRpc`; the writer, whose calls go through web3, retries them with the same
:class:`RetryPolicy`.

The client:

- posts single calls and batches (``chunk`` calls per HTTP request when given), with a timeout per request;
- never follows a redirect: the node answers itself (a redirect could send the reader to another chain's node);
- retries what a retry can fix — a timeout, a refused connection, HTTP 429 or 5xx (``Retry-After`` honoured), an
  answer that is not JSON, a JSON-RPC error worded as a rate limit — by the policy, and gives up with the caller's
  ``unavailable`` error (``NodeUnavailable`` for the service, ``CannotAudit`` for the auditor);
- answers a JSON-RPC error with :class:`RpcError` (:class:`RangeTooLarge` for a log query the node refused as too
  large, whatever the provider's wording), and an HTTP 4xx without one as the node being unavailable (a wrong URL or
  credentials: retrying will not fix it).

The policy: up to ``max_retries`` retries; before retry ``n`` it waits the node's ``Retry-After`` when it gave one
(at most ``max_retry_after``), else a random time up to ``backoff * 2**(n-1)`` (at most ``max_backoff``):
exponential backoff with full jitter, so many clients retrying never synchronise into bursts.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from ledger.errors import LedgerError, NodeUnavailable

if TYPE_CHECKING:
    from ledger.chain.contract import Chain

log = logging.getLogger(__name__)

T = TypeVar("T")

#: a log query refused as too large; providers word it differently: "query returned more than 10000 results"
#: (Infura, Alchemy, geth), "block range is too large", "exceed maximum block range", "response size exceeded", …
TOO_LARGE = re.compile(
    r"more than \d+ results|too many (logs|results|blocks)|(block )?range (is )?too (large|wide|big)|"
    r"exceed\w* (the )?(max\w* )?(block )?range|response (size|is too)|too large|size (limit )?exceeded|"
    r"limit exceeded.*(logs|results)",
    re.IGNORECASE,
)
#: a JSON-RPC error that is a rate limit (worth a retry), however the provider words it
RATE_LIMITED = re.compile(
    r"rate.?limit|too many requests|capacity|try again|request limit|limit exceeded", re.IGNORECASE
)


class RpcError(LedgerError):
    """The node answered a call with a JSON-RPC error (not a transport failure)."""

    def __init__(self, method: str, code: Any, message: str, data: Any = None) -> None:
        self.method, self.code, self.message, self.data = method, code, message, data
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")

    @property
    def too_large(self) -> bool:
        """A log query the node refused as too large (split the range and ask again)."""
        return isinstance(self, RangeTooLarge)


class RangeTooLarge(RpcError):
    """The node refused a log query as too large (too many blocks, results or bytes)."""


def safe_url(url: str) -> str:
    """The endpoint without path, query or credentials (API keys often sit in the path): safe to log and report."""
    match = re.match(r"^(https?://)(?:[^@/]*@)?([^/?#]+)", url)
    return match.group(1) + match.group(2) if match else "the node"


def retry_after_seconds(value: str | None) -> float:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; 0 when absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and after how long a transient failure is tried again (see the module's docstring)."""

    max_retries: int = 8
    backoff: float = 0.25
    max_backoff: float = 20.0
    max_retry_after: float = 60.0

    def delay(self, retry: int, retry_after: float = 0.0) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, …); ``retry_after``: the node's hint, if any."""
        if retry_after > 0:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (retry - 1)))

    def run(
        self,
        what: str,
        call: Callable[[], T],
        transient: Callable[[Exception], float | None],
        give_up: Callable[[Exception, int], Exception],
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[], None] | None = None,
        describe: Callable[[Exception], str] = str,
    ) -> T:
        """``call()``, tried again while it fails transiently. ``transient(exc)`` says whether a failure is worth a
        retry: None when not (it is raised as it is), else the node's ``Retry-After`` hint in seconds (0: none).
        When the retries run out, ``give_up(last failure, attempts made)`` is raised. Each retry is logged with
        ``describe(failure)`` (which must not show a URL's credentials)."""
        retry = 0
        while True:
            try:
                return call()
            except Exception as exc:
                hint = transient(exc)
                if hint is None:
                    raise
                retry += 1
                if retry > self.max_retries:
                    raise give_up(exc, retry) from exc
                wait = self.delay(retry, hint)
                if on_retry is not None:
                    on_retry()
                log.warning("%s: %s; retry %d of %d in %.2f s", what, describe(exc), retry, self.max_retries, wait)
                sleep(wait)


class _Transient(Exception):
    """One attempt failed in a way a retry may fix."""

    def __init__(self, problem: str, retry_after: float = 0.0) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


class JsonRpc:
    """JSON-RPC over HTTP to one node: raw answers (no web3 formatters), batches, timeouts, retries by a policy.
    ``timeout``: seconds per request, or (seconds to connect, seconds to read) as requests takes it."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float | tuple[float, float] = 30.0,
        policy: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        unavailable: type[LedgerError] = NodeUnavailable,
        chunk: int | None = None,
    ) -> None:
        self.url = url
        self.where = safe_url(url)
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.unavailable = unavailable
        self.chunk = chunk
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/json", **(headers or {})})
        #: HTTP requests made, and transient failures retried (for reports and tests)
        self.requests = 0
        self.retries = 0
        self._ids = iter(range(1, 2**62))

    @classmethod
    def for_chain(cls, chain: Chain, **kwargs: Any) -> JsonRpc:
        """A client to the node `chain` is connected to, with the same request headers."""
        provider = chain.w3.provider
        url = getattr(provider, "endpoint_uri", None)
        if not url or not str(url).startswith(("http://", "https://")):
            raise NodeUnavailable(
                "reading raw JSON-RPC needs a node over HTTP; this chain has none (the embedded eth-tester chain is "
                "not supported: run anvil)"
            )
        headers = {}
        get_kwargs = getattr(provider, "get_request_kwargs", None)
        if callable(get_kwargs):
            headers = dict(get_kwargs().get("headers") or {})
        headers.pop("Content-Type", None)
        return cls(str(url), headers=headers, **kwargs)

    def clone(self) -> JsonRpc:
        """Another client to the same node with the same settings and a session of its own (for another thread)."""
        other = type(self).__new__(type(self))
        JsonRpc.__init__(other, self.url, timeout=self.timeout, policy=self.policy, sleep=self.sleep,
                         unavailable=self.unavailable, chunk=self.chunk)
        other.session.headers.update(self.session.headers)
        return other

    def call(self, method: str, params: list[Any]) -> Any:
        answer = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}, method)
        return _result(method, answer)

    def try_call(self, method: str, params: list[Any]) -> tuple[Any, RpcError | None]:
        """The result, or None and the node's error (for calls a node may legitimately refuse)."""
        try:
            return self.call(method, params), None
        except RpcError as exc:
            return None, exc

    def batch(self, calls: Sequence[tuple[str, list[Any]]], chunk: int | None = None) -> list[Any]:
        """Results in order, ``chunk`` calls per HTTP request (default: the client's chunk size, else all in one);
        a call answered with an error raises it (the batch is one read)."""
        out: list[Any] = []
        step = chunk or self.chunk or max(1, len(calls))
        for start in range(0, len(calls), step):
            part = calls[start : start + step]
            payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(part)]
            answers = self._post(payload, part[0][0] + ("" if len(part) == 1 else f" (batch of {len(part)})"))
            if not isinstance(answers, list):  # some nodes answer a refused batch with one error object
                raise RpcError(part[0][0], *_error_fields(answers))
            by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
            out.extend(_result(m, by_id.get(i, {})) for i, (m, _) in enumerate(part))
        return out

    def _post(self, payload: Any, what: str) -> Any:
        body = json.dumps(payload)

        def give_up(exc: Exception, attempts: int) -> Exception:
            return self.unavailable(
                f"cannot reach the JSON-RPC node at {self.where}: {what} failed {attempts} times, last with {exc}"
            )

        def retried() -> None:
            self.retries += 1

        return self.policy.run(
            what, lambda: self._attempt(body, what),
            lambda exc: exc.retry_after if isinstance(exc, _Transient) else None,
            give_up, sleep=self.sleep, on_retry=retried,
        )

    def _attempt(self, body: str, what: str) -> Any:
        self.requests += 1
        try:
            response = self.session.post(self.url, data=body, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            seconds = max(self.timeout) if isinstance(self.timeout, tuple) else self.timeout
            raise _Transient(f"no answer within {seconds:g} s") from None
        except requests.ConnectionError as exc:
            raise _Transient(f"connection failed ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise self.unavailable(f"cannot reach the JSON-RPC node at {self.where}: {exc}") from exc
        code = response.status_code
        if response.is_redirect:
            location = response.headers.get("Location")
            raise self.unavailable(
                f"{what}: the node at {self.where} redirects to {safe_url(location) if location else 'nowhere'}: "
                "redirects are not followed"
            )
        if code == 429 or code >= 500:
            raise _Transient(f"HTTP {code}", retry_after_seconds(response.headers.get("Retry-After")))
        try:
            answer = json.loads(response.content)
        except ValueError:
            answer = None
        if code == 413 and what.startswith("eth_getLogs"):
            raise RangeTooLarge(what, 413, "HTTP 413: request or response too large")
        error = _single_error(answer)
        if code >= 400 and error is None:
            # Some nodes send JSON-RPC errors with a 4xx status: those are answers; the rest (a wrong URL, no
            # access) retrying will not fix.
            raise self.unavailable(f"{what}: the node at {self.where} answered HTTP {code}")
        if answer is None:
            raise _Transient("an answer that is not JSON")
        if error is not None:
            message = str(error.get("message", ""))
            if RATE_LIMITED.search(message) and not (what.startswith("eth_getLogs") and TOO_LARGE.search(message)):
                raise _Transient(f"rate limited ({error.get('code')})")
        return answer

    def close(self) -> None:
        self.session.close()


def _error_fields(answer: Any) -> tuple[Any, str, Any]:
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None, f"malformed answer {str(answer)[:200]!r}", None
    return error.get("code"), str(error.get("message", "")), error.get("data")


def _single_error(answer: Any) -> dict[str, Any] | None:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return answer["error"]
    return None


def _result(method: str, answer: Any) -> Any:
    if isinstance(answer, dict) and "result" in answer and "error" not in answer:
        return answer["result"]
    code, message, data = _error_fields(answer)
    if method == "eth_getLogs" and TOO_LARGE.search(message):
        raise RangeTooLarge(method, code, message, data)
    raise RpcError(method, code, message, data)
