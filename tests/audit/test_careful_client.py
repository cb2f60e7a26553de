"""The auditor's client of the public API is careful (``ledger.audit.apiread``): it follows no redirect, reads no
answer past its size limit, waits for no answer past its timeouts, looks like any browser; and what it quotes from
the API into findings is cut and shows literally in both reports (``ledger.audit.model.quoted``,
``ledger.audit.report``). A hostile server for the client is a tiny ``http.server`` in a thread."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from rich.console import Console

from ledger.audit import CannotAudit, run_audit
from ledger.audit.apiread import (
    MAX_EXPORT_BYTES,
    MAX_RESPONSE_BYTES,
    USER_AGENT,
    ApiRedirected,
    PublicApi,
    ResponseTooLarge,
)
from ledger.audit.model import QUOTE_LIMIT, Finding
from ledger.audit.report import print_summary, render_html
from ledger.audit.rpc import Rpc
from tests.support.honest import HonestLedger, failed, findings
from tests.support.hostile import Hostile, Route, answer
from tests.support.lying import lying

MARKUP = '[bold red]PASS[/] </td><script>alert("x")</script>\x1b[2J'

@pytest.fixture
def hostile() -> Iterator[Callable[[dict[str, Route]], Hostile]]:
    servers: list[Hostile] = []

    def start(routes: dict[str, Route]) -> Hostile:
        servers.append(Hostile(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def endless(line: bytes, pause: float = 0.0) -> Route:
    """An answer that never ends (no length, the connection kept writing until the client hangs up)."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        while True:
            h.wfile.write(line)
            h.wfile.flush()
            if pause:
                time.sleep(pause)

    return route


def slow(seconds: float) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        answer(200)(h)

    return route


# --- the client against a hostile server --------------------------------------------------------------------------


def test_a_redirect_is_not_followed_and_names_where_it_pointed(hostile: Callable[..., Hostile]) -> None:
    elsewhere = hostile({"/api/v1/chain": answer(200, b'{"entry_count": 0}')})
    server = hostile({
        "/api/v1/chain": answer(302, b"", Location=f"{elsewhere.url}/api/v1/chain"),
        "/api/v1/export/cases.jsonl": answer(308, b"", Location="https://honest-looking.example/cases.jsonl"),
    })
    api = PublicApi(server.url)
    with pytest.raises(ApiRedirected) as caught:
        api.get("/chain")
    assert caught.value.status == 302 and caught.value.location == f"{elsewhere.url}/api/v1/chain"
    assert f"redirects to {elsewhere.url}/api/v1/chain" in str(caught.value)
    with pytest.raises(ApiRedirected, match="honest-looking.example"):
        list(api.lines("/export/cases.jsonl"))
    assert not elsewhere.seen  # never asked


def test_an_endless_answer_is_cut_off_at_the_size_limit(hostile: Callable[..., Hostile]) -> None:
    server = hostile({"/api/v1/chain": endless(b" " * 65536), "/api/v1/export/entries.jsonl": endless(b'{"seq": 1}\n'),
                      "/api/v1/export/cases.jsonl": endless(b'{"seq": 1, "padding": "' + b"x" * 65536)})
    api = PublicApi(server.url, max_response_bytes=1 << 20, max_export_bytes=1 << 20)
    begun = time.perf_counter()
    with pytest.raises(ResponseTooLarge, match="goes on past 1,048,576 bytes; the auditor reads at most 1,048,576"):
        api.get("/chain")
    rows = 0
    with pytest.raises(ResponseTooLarge):
        for _ in api.lines("/export/entries.jsonl"):
            rows += 1
    assert 50_000 < rows < 100_000  # the rows before the limit were read, one at a time
    api = PublicApi(server.url, max_response_bytes=1 << 20)  # exports up to 4 GiB, but no line longer than 1 MiB
    with pytest.raises(ResponseTooLarge, match="a line goes on past 1,048,576 bytes"):
        list(api.lines("/export/cases.jsonl"))
    assert time.perf_counter() - begun < 10


def test_documents_and_files_are_bounded_too(hostile: Callable[..., Hostile]) -> None:
    """Open311 documents (outside /api/v1) and published batch files go through the same careful reads."""
    server = hostile({"/open311/v2/services.xml": endless(b"<service>" * 1000),
                      "/api/v1/batches/7/file": answer(200, b"seq,case\n" * 10),
                      "/api/v1/batches/8/file": answer(302, b"", Location="http://mirror.example/8.csv")})
    api = PublicApi(server.url, max_response_bytes=1 << 16)
    with pytest.raises(ResponseTooLarge, match="GET /open311/v2/services.xml: HTTP 200: the answer goes on past"):
        api.fetch("/open311/v2/services.xml", prefix="")
    assert api.file("/batches/7/file") == b"seq,case\n" * 10 and api.file("/batches/9/file") is None
    with pytest.raises(ResponseTooLarge):
        api.file("/batches/7/file", limit=50)
    with pytest.raises(ApiRedirected, match="redirects to http://mirror.example/8.csv"):
        api.file("/batches/8/file")


def test_an_oversized_declared_length_is_refused_before_reading(hostile: Callable[..., Hostile]) -> None:
    def huge(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(10**12))
        h.end_headers()
        h.wfile.write(b"{")

    api = PublicApi(hostile({"/api/v1/chain": huge}).url, max_response_bytes=1 << 20)
    with pytest.raises(ResponseTooLarge, match="declares 1,000,000,000,000 bytes"):
        api.get("/chain")


def test_a_slow_or_dripping_answer_times_out(hostile: Callable[..., Hostile]) -> None:
    server = hostile({"/api/v1/chain": slow(3), "/api/v1/drip": endless(b" ", pause=0.05)})
    api = PublicApi(server.url, timeout=0.5, request_seconds=1.0)
    begun = time.perf_counter()
    with pytest.raises(CannotAudit, match=r"did not answer GET /api/v1/chain within 0.5 s"):
        api.get("/chain")
    with pytest.raises(CannotAudit, match=r"did not finish answering GET /api/v1/drip within 1 s"):
        api.get("/drip")  # each byte comes in time, the whole answer never does
    assert time.perf_counter() - begun < 3


def first_then(*answers: Route) -> Route:
    """Each request answered by the next of ``answers``, the last one for ever after."""
    queue = list(answers)

    def route(h: BaseHTTPRequestHandler) -> None:
        (queue.pop(0) if len(queue) > 1 else queue[0])(h)

    return route


def test_a_spent_budget_or_shed_work_is_waited_out_as_any_client_would(hostile: Callable[..., Hostile]) -> None:
    """The API's 429 (a budget spent) and 503 with Retry-After (expensive work shed under load, exports busy) say
    when to come back: the auditor comes back then, for documents and exports alike; a 503 that says nothing is an
    answer."""
    busy = b'{"error": {"code": "overloaded"}}'
    server = hostile({
        "/api/v1/metrics": first_then(answer(429, busy, Retry_After="1"), answer(503, busy, Retry_After="1"),
                                      answer(200, b'{"metrics": {}}')),
        "/api/v1/export/cases.jsonl": first_then(answer(503, busy, Retry_After="1"), answer(200, b'{"case_id": 1}\n')),
        "/api/v1/chain": answer(503, busy),
    })
    api = PublicApi(server.url)
    begun = time.perf_counter()
    assert api.get("/metrics") == {"metrics": {}}
    assert list(api.lines("/export/cases.jsonl")) == [{"case_id": 1}]
    assert 2.5 < time.perf_counter() - begun < 6
    assert api.fetch("/chain")[0] == 503 and len(server.seen) == 6


def test_the_client_looks_like_a_browser_not_an_auditor(hostile: Callable[..., Hostile]) -> None:
    server = hostile({"/api/v1/chain": answer(200, b'{"entry_count": 0}')})
    api = PublicApi(server.url)
    assert api.get("/chain") == {"entry_count": 0}
    [headers] = server.seen
    agent = headers["User-Agent"]
    assert agent == USER_AGENT and agent.startswith("Mozilla/5.0")
    assert not any(word in " ".join(headers.values()).lower() for word in ("civic", "audit", "python", "httpx"))


def test_an_error_answer_is_quoted_cut(hostile: Callable[..., Hostile]) -> None:
    body = json.dumps({"error": {"message": MARKUP * 100}}).encode()
    api = PublicApi(hostile({"/api/v1/chain": answer(500, body)}).url)
    with pytest.raises(Exception) as caught:
        api.get("/chain")
    text = str(caught.value)
    assert "HTTP 500" in text and f"({len(MARKUP) * 100:,} characters)" in text and "\x1b" not in text


def test_the_node_client_follows_no_redirect_either(hostile: Callable[..., Hostile]) -> None:
    elsewhere = hostile({"/": answer(200, b'{"jsonrpc": "2.0", "id": 1, "result": "0x1"}')})
    node = hostile({"/": answer(307, b"", Location=f"{elsewhere.url}/?key=secret")})
    rpc = Rpc(node.url)
    refused = f"the node at {node.url} redirects to {elsewhere.url}: redirects are not followed"
    with pytest.raises(CannotAudit, match=refused):
        rpc.call("eth_chainId", [])
    assert not elsewhere.seen


# --- the whole audit against an operator that redirects ---------------------------------------------------------------


def test_operator_redirecting_the_auditor_to_another_server_cannot_be_audited(
    honest: HonestLedger, hostile: Callable[..., Hostile]
) -> None:
    server = hostile({"/api/v1/chain": answer(307, b"", Location="http://mirror.example/api/v1/chain")})
    with pytest.raises(CannotAudit, match="redirects to http://mirror.example/api/v1/chain"):
        run_audit(honest.config(api_url=server.url, batches=str(honest.batch_dir)))


def test_operator_redirecting_only_the_exports_is_caught(honest: HonestLedger) -> None:
    def redirect_exports(app: FastAPI) -> None:
        @app.middleware("http")
        async def elsewhere(request: Request, call_next: Any) -> Any:
            if request.url.path.startswith("/api/v1/export/"):
                return RedirectResponse(f"http://mirror.example{request.url.path}", status_code=307)
            return await call_next(request)

    report = honest.audit(wrap=redirect_exports, case_sample=5)
    assert failed(report) == {"api_records"}
    hits = findings(report, "api_records")
    redirected = {f.subject for f in hits if "redirects to http://mirror.example" in f.message}
    assert redirected == {"GET /api/v1/export/entries.jsonl", "GET /api/v1/export/cases.jsonl"}


# --- what is quoted from the API, in both reports ---------------------------------------------------------------------


def test_operator_quoting_markup_in_its_answers_shows_literally_and_cut_in_both_reports(
    honest: HonestLedger, tmp_path: Path
) -> None:
    long_markup = MARKUP + "x" * 1000

    def markup(body: Any, request: Request) -> Any:
        if "after" not in request.query_params:
            body["items"][3]["agency_id"] = long_markup
        return body

    report = honest.audit(wrap=lying("/api/v1/entries", markup), case_sample=5)
    # entry_views sees the lie too when it draws the first log page
    assert "api_records" in failed(report) and failed(report) <= {"api_records", "entry_views"}
    [hit] = [f for f in findings(report, "api_records") if f.field == "agency_id"]
    assert isinstance(hit.actual, str) and hit.actual.endswith(f"… ({len(long_markup):,} characters)")
    assert hit.actual.startswith('[bold red]PASS[/] </td><script>alert("x")</script>\\x1b[2J')
    assert len(hit.actual) < QUOTE_LIMIT + 30 and len(hit.message) <= 1000 + 30

    page = render_html(report)
    assert "<script>" not in page and "&lt;/td&gt;&lt;script&gt;alert(" in page
    assert "[bold red]PASS[/]" in page and f"({len(long_markup):,} characters)" in page

    console = Console(file=io.StringIO(), soft_wrap=True, force_terminal=True, color_system="truecolor")
    print_summary(report, console)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "[bold red]PASS[/]" in shown  # literally, not a red PASS
    assert '</td><script>alert(\\"x\\")</script>\\\\x1b[2J' in shown
    assert "\x1b[2J" not in shown  # the API's escape sequence never reaches the terminal
    assert f"({len(long_markup):,} characters)" in shown


def test_quoted_values_keep_numbers_and_cut_long_structures() -> None:
    finding = Finding("x", "m", expected=12, actual={"items": list(range(500))}, subject="s" * 5000)
    assert finding.expected == 12
    assert isinstance(finding.actual, str) and finding.actual.startswith('{"items": [0, 1, 2')
    assert finding.actual.endswith(f"… ({len(json.dumps({'items': list(range(500))})):,} characters)")
    assert finding.subject is not None and finding.subject.endswith("… (5,000 characters)")
    assert Finding("x", "m", actual=[1, 2]).actual == [1, 2] and Finding("x", "m", actual=True).actual is True


def test_the_honest_api_answers_well_within_the_size_limit(honest: HonestLedger) -> None:
    """The largest answer the honest demo city's API gives (a bulk export), against the default limit."""
    with honest.api() as client:
        api = PublicApi(client=client)
        rows = sum(1 for _ in api.lines("/export/entries.jsonl"))
        largest, path = api.largest
    assert rows == honest.ledger.entry_count() and path == "/api/v1/export/entries.jsonl"
    assert largest < 1000 * rows and MAX_EXPORT_BYTES // 1000 > 4_000_000  # under 1 kB an entry: 4 GiB holds millions
    with honest.api() as client:
        api = PublicApi(client=client)
        api.get("/entries", {"limit": 1000})
        assert api.largest[0] < 1_000_000 and MAX_RESPONSE_BYTES > 60 * 1_000_000  # the largest page it asks for
