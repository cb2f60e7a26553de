"""The read API under abuse, on the demo city (``tests/api/conftest.py``): every client's budgets are its own and
per kind (cheap reads, expensive reads), an IPv6 /64 and a spoofed X-Forwarded-For buy nothing, time parameters do
not defeat the figures cache, expensive work is coalesced and shed first, and bodies are bounded while they arrive.
Each attack ends in a refusal naming what was spent, while other clients are served."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import errors
from api.app import create_app
from api.bodies import BodyLimitMiddleware, nests_too_deep, read_body
from api.clients import Clients
from api.overload import ExpensiveWork
from api.ratelimit import Budget, RateLimitMiddleware
from api.read.figures import FiguresCache
from api.routes import figures as figures_route
from api.settings import ApiSettings
from tests.support.browser import serve_app
from tests.support.city import IndexedCity

V1 = "/api/v1"


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]  # type: ignore[no-any-return]


def city_range(city: IndexedCity) -> tuple[int, int]:
    return city.city.start, city.city.end


# --- clients and budgets ----------------------------------------------------------------------------------------------


def test_the_addresses_of_one_ipv6_64_share_a_budget(api_settings: ApiSettings) -> None:
    app = create_app(dataclasses.replace(api_settings, read_rate_per_minute=3))
    with TestClient(app, client=("2001:db8:1:2::1", 1000)) as one:
        assert [one.get(f"{V1}/agencies").status_code for _ in range(3)] == [200, 200, 200]
        for host in ("2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:fffe"):
            with TestClient(app, client=(host, 1001)) as same_64:
                assert error_of(same_64.get(f"{V1}/agencies"), 429)["budget"] == "reads"
        with TestClient(app, client=("2001:db8:1:3::1", 1002)) as neighbour:
            assert neighbour.get(f"{V1}/agencies").status_code == 200  # another /64 is another client


def test_a_spoofed_forwarded_header_buys_nothing(api_settings: ApiSettings) -> None:
    app = create_app(dataclasses.replace(api_settings, read_rate_per_minute=3))
    with TestClient(app, client=("203.0.113.5", 1000)) as spoofer:
        answers = [spoofer.get(f"{V1}/agencies", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
                   for n in range(5)]
        assert answers == [200, 200, 200, 429, 429]
    with TestClient(app, client=("203.0.113.6", 1000)) as other:
        assert other.get(f"{V1}/agencies").status_code == 200


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_budget(api_settings: ApiSettings) -> None:
    app = create_app(dataclasses.replace(api_settings, read_rate_per_minute=2, trusted_proxies=("10.0.0.0/8",)))
    with TestClient(app, client=("10.0.0.2", 1000)) as proxy:
        def get(forwarded: str) -> int:
            return proxy.get(f"{V1}/agencies", headers={"X-Forwarded-For": forwarded}).status_code

        assert [get("198.51.100.7"), get("198.51.100.7"), get("198.51.100.7")] == [200, 200, 429]
        assert get("198.51.100.8") == 200  # another citizen behind the same proxy
        assert get("1.2.3.4, 198.51.100.7") == 429  # a hop of its own choosing on the left changes nothing


def test_expensive_reads_have_their_own_budget(api_settings: ApiSettings, indexed_city: IndexedCity) -> None:
    start, end = city_range(indexed_city)
    app = create_app(dataclasses.replace(api_settings, expensive_rate_per_minute=2))
    with TestClient(app) as client:
        def metrics(as_of: int) -> Any:
            return client.get(f"{V1}/metrics", params={"from": start, "to": end, "as_of": as_of})

        assert metrics(end).status_code == 200 and metrics(end + 3600).status_code == 200
        refused = metrics(end + 7200)  # a third answer not computed yet: the cache-buster's move
        error = error_of(refused, 429)
        assert error["budget"] == "expensive" and "2 expensive reads" in error["message"]
        assert int(refused.headers["retry-after"]) >= 1
        # what is computed already is cheap, and so are other reads
        assert metrics(end).status_code == 200 and metrics(end + 3600).status_code == 200
        assert client.get(f"{V1}/agencies").status_code == 200
    with TestClient(app, client=("192.0.2.9", 1)) as other:
        assert other.get(f"{V1}/metrics", params={"from": start, "to": end, "as_of": end + 7200}).status_code == 200


def test_the_seconds_of_a_time_do_not_make_another_answer(api_settings: ApiSettings, indexed_city: IndexedCity) -> None:
    start, end = city_range(indexed_city)
    minute = end - end % 60 - 600
    with TestClient(create_app(dataclasses.replace(api_settings, expensive_rate_per_minute=1))) as client:
        answers = [client.get(f"{V1}/scorecards", params={"from": start, "to": minute + s, "as_of": minute + s})
                   for s in (0, 1, 17, 59)]
        assert {a.status_code for a in answers} == {200}
        assert {a.content for a in answers} == {answers[0].content} and len({a.headers["etag"] for a in answers}) == 1
        assert answers[0].json()["filter"]["to"] == answers[0].json()["filter"]["as_of"] == minute
        cache: FiguresCache = client.app.state.figures_cache  # type: ignore[attr-defined]
        assert (cache.hits, cache.misses) == (3, 1)
        # exact for the times applied: the same figures as asked with those times
        exact = client.get(f"{V1}/scorecards", params={"from": start - start % 60, "to": minute, "as_of": minute})
        assert exact.content == answers[0].content
        same_minute = client.get(f"{V1}/metrics", params={"from": minute + 5, "to": minute + 50})
        assert "same minute" in error_of(same_minute, 422)["message"]


# --- expensive work: coalesced, bounded, shed first -------------------------------------------------------------------


def test_expensive_work_is_joined_bounded_and_shed() -> None:
    async def scenario() -> None:
        work = ExpensiveWork("figures", capacity=1, waiting=1, patience=0.2)
        gate = asyncio.Event()
        admitted: list[str] = []
        computed: list[str] = []

        async def compute(name: str) -> str:
            computed.append(name)
            await gate.wait()
            return name.upper()

        first = asyncio.create_task(work.run("a", lambda: compute("a"), admit=lambda: admitted.append("a")))
        await asyncio.sleep(0.01)
        joined = asyncio.create_task(work.run("a", lambda: compute("a"), admit=lambda: admitted.append("a2")))
        queued = asyncio.create_task(work.run("b", lambda: compute("b"), admit=lambda: admitted.append("b")))
        await asyncio.sleep(0.01)
        with pytest.raises(errors.ApiError) as shed:  # one running, one waiting: a third is shed at once
            await work.run("c", lambda: compute("c"), admit=lambda: admitted.append("c"))
        assert shed.value.code == "overloaded" and shed.value.headers["Retry-After"] == "5"
        with pytest.raises(errors.ApiError):  # and the one waiting gives up after its patience
            await queued
        gate.set()
        assert await first == "A" and await joined == "A"
        assert computed == ["a"] and admitted == ["a", "b", "c"]  # the joiner was not charged
        assert (work.computed, work.joined, work.shed) == (1, 1, 2)
        assert await work.run("d", lambda: compute("d"), admit=lambda: None) == "D"  # the slot is free again

        async def failing() -> str:
            raise RuntimeError("statement failed")

        with pytest.raises(RuntimeError):
            await work.run("e", failing, admit=lambda: None)
        assert await work.run("e", lambda: compute("e"), admit=lambda: None) == "E"  # a failure is not kept

    asyncio.run(scenario())


def test_expensive_work_takes_no_more_than_its_share_of_time() -> None:
    """Computations take at most their share of the process's time over 10 s (then 503), and one client at most half
    of it (then 429, budget expensive): a client monopolising the figures leaves room for others."""

    async def scenario() -> None:
        now = [100.0]
        work = ExpensiveWork("figures", capacity=2, waiting=4, share=0.5, clock=lambda: now[0])

        async def compute(seconds: float) -> float:
            now[0] += seconds  # the computation takes this long
            return seconds

        def run(key: str, seconds: float, client: str) -> Any:
            return work.run(key, lambda: compute(seconds), admit=lambda: None, client=client)

        assert await run("a", 2, "monopolist") == 2
        assert await run("b", 1, "monopolist") == 1  # admitted at 20 % of its own
        with pytest.raises(errors.ApiError) as refused:  # 30 %: past half the share, its turn is over
            await run("c", 1, "monopolist")
        assert refused.value.code == "rate_limited" and refused.value.extra["budget"] == "expensive"
        assert work.busy("monopolist") == pytest.approx(0.3) and work.busy("citizen") == 0
        assert await run("d", 1.5, "citizen") == 1.5  # another client still has room
        assert await run("e", 0.6, "another") == 0.6  # 45 % of the server's time: admitted
        with pytest.raises(errors.ApiError) as shed:  # 51 %: shed for everyone until the window moves on
            await run("f", 1, "newcomer")
        assert shed.value.code == "overloaded"
        now[0] += 7  # the last 10 s hold 0.9 s of the second, 1.5 s and 0.6 s
        assert work.busy() == pytest.approx(0.3)
        assert await run("f", 1, "newcomer") == 1
        now[0] += 20
        assert work.busy() == 0 and await run("c", 1, "monopolist") == 1

    asyncio.run(scenario())


def test_under_load_cached_and_cheap_reads_are_served_and_new_figures_shed(
    api_settings: ApiSettings, indexed_city: IndexedCity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With its one computation slot held by a slow computation (the database made slow by holding the computation
    in a thread), a request for other figures is a 503 at once, while an answer the cache holds and a cheap read are
    served."""
    start, end = city_range(indexed_city)
    settings = dataclasses.replace(api_settings, max_computations=1, max_computations_waiting=0)
    release = threading.Event()
    real = figures_route.compute_figures

    def slow(*args: Any) -> Any:
        if args[3][0] == "scorecards":
            release.wait(10)
        return real(*args)

    async def scenario() -> None:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                cached = await client.get(f"{V1}/metrics", params={"from": start, "to": end})
                assert cached.status_code == 200
                monkeypatch.setattr(figures_route, "compute_figures", slow)
                held = asyncio.create_task(client.get(f"{V1}/scorecards", params={"from": start, "to": end}))
                await asyncio.sleep(0.3)
                began = time.monotonic()
                shed = await client.get(f"{V1}/metrics", params={"from": start, "to": end, "as_of": end + 60})
                assert error_of(shed, 503)["code"] == "overloaded" and shed.headers["retry-after"] == "5"
                again = await client.get(f"{V1}/metrics", params={"from": start, "to": end})
                assert again.status_code == 200 and again.content == cached.content
                assert (await client.get(f"{V1}/agencies")).status_code == 200
                assert time.monotonic() - began < 2
                release.set()
                assert (await held).status_code == 200

    try:
        asyncio.run(scenario())
    finally:
        release.set()


# --- bodies -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, int]]:
    """A small app served by uvicorn, reading its bodies with ``read_body`` under the middleware with short bounds:
    its host and port."""

    async def bounded(request: Request) -> Response:
        return Response(str(len(await read_body(request, 1000, seconds=0.5))))

    async def unbounded(request: Request) -> Response:
        return Response(str(len(await request.body())))  # a route that forgot read_body: the middleware bounds it

    app = Starlette(routes=[Route("/bounded", bounded, methods=["POST"]),
                            Route("/unbounded", unbounded, methods=["POST"])])
    app.add_middleware(BodyLimitMiddleware, limit=5000, seconds=0.8)
    errors.install(app)  # type: ignore[arg-type]
    with serve_app(app) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def post_chunked(server: tuple[str, int], path: str, chunk: bytes, count: int, pause: float = 0.0) -> tuple[str, int]:
    """POST ``count`` chunks of ``chunk`` (chunked transfer, ``pause`` s apart) over a raw socket, stopping as soon as
    an answer comes: (the answer's status line and JSON, the bytes sent)."""
    sent = 0
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     "Content-Type: application/json\r\n\r\n".encode())
        sock.setblocking(False)
        answer = b""
        for _ in range(count):
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause)
        else:
            sock.sendall(b"0\r\n\r\n")
        sock.setblocking(True)
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: *(\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += sock.recv(65536)
        answer = head + b"\r\n\r\n" + body
    return answer.decode("latin-1"), sent


def test_a_chunked_body_is_cut_off_as_it_passes_the_limit(echo: tuple[str, int]) -> None:
    answer, _ = post_chunked(echo, "/bounded", b"x" * 100, 5)
    assert answer.startswith("HTTP/1.1 200") and answer.endswith("500")
    answer, sent = post_chunked(echo, "/bounded", b"x" * 400, 2500, pause=0.001)  # 1 MB offered
    assert answer.startswith("HTTP/1.1 413") and "the body exceeds 1000 bytes" in answer
    assert sent < 200_000  # refused while it arrived, not after
    answer, sent = post_chunked(echo, "/unbounded", b"x" * 1000, 1000, pause=0.001)
    assert answer.startswith("HTTP/1.1 413") and "the body exceeds 5000 bytes" in answer and sent < 200_000
    with socket.create_connection(echo, timeout=10) as sock:  # a declared length over the bound: refused at once
        sock.sendall(b"POST /unbounded HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")


def test_a_body_that_trickles_in_is_cut_off_in_time(echo: tuple[str, int]) -> None:
    began = time.monotonic()
    answer, sent = post_chunked(echo, "/bounded", b"x" * 10, 60, pause=0.05)
    assert answer.startswith("HTTP/1.1 408") and "the body did not arrive within 0.5 s" in answer
    assert time.monotonic() - began < 2 and sent < 600
    answer, _ = post_chunked(echo, "/unbounded", b"x" * 10, 60, pause=0.05)
    assert answer.startswith("HTTP/1.1 408") and "the body did not arrive within 0.8 s" in answer


def test_the_app_refuses_a_huge_declared_body_on_any_route(client: TestClient) -> None:
    huge = {"Content-Length": str(64 * 2**20), "Content-Type": "application/json"}
    for path in (f"{V1}/filings", f"{V1}/agencies", "/open311/v2/requests.json"):
        assert error_of(client.post(path, headers=huge, content=b"{}"), 413)["code"] == "body_too_large"


def test_json_nested_deep_inside_a_string_is_refused_not_parsed(client: TestClient) -> None:
    """typed_data may come as a JSON string (eth_signTypedData_v4's form), parsed after the body's own depth check:
    200,000 brackets inside it would overflow the C stack in json.loads and kill the process."""
    deep = "[" * 200_000 + "]" * 200_000
    answer = client.post(f"{V1}/agency/records", json={"typed_data": deep, "signature": "0x" + "00" * 65})
    assert answer.status_code in (400, 422) and "nests deeper than 200 levels" in answer.text
    assert nests_too_deep(deep) and nests_too_deep(deep.encode()) and not nests_too_deep("[" * 150 + "]" * 150)
    assert not nests_too_deep("not json")  # what is not JSON is the parser's to say


def test_the_bodies_held_at_once_are_bounded_for_the_whole_process() -> None:
    """Many clients each sending a body within its route's limit cannot make the process hold more than its room for
    bodies: past it a body is a 503 with Retry-After, and the room comes back when the requests are answered."""

    async def scenario() -> None:
        release = asyncio.Event()

        async def hold(request: Request) -> Response:
            body = await read_body(request, 5000)
            await release.wait()
            return Response(str(len(body)))

        app = Starlette(routes=[Route("/hold", hold, methods=["POST"])])
        app.add_middleware(BodyLimitMiddleware, limit=5000, in_flight=5000)
        errors.install(app)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            held = [asyncio.create_task(client.post("/hold", content=b"x" * 2000)) for _ in range(2)]
            await asyncio.sleep(0.1)
            refused = await client.post("/hold", content=b"x" * 2000)
            assert error_of(refused, 503)["code"] == "overloaded" and refused.headers["retry-after"] == "2"
            release.set()
            assert [(await task).text for task in held] == ["2000", "2000"]
            assert (await client.post("/hold", content=b"x" * 2000)).text == "2000"  # the room came back

    asyncio.run(scenario())


def test_a_client_has_few_requests_in_flight_at_once() -> None:
    """Within its budget, one client on many connections still cannot hold every thread and connection: past its
    requests in flight it is a 429 (budget in_flight) at once, while another client is served."""

    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(request: Request) -> Response:
            await release.wait()
            return Response("done")

        app = Starlette(routes=[Route("/slow", slow)])
        app.state.clients = Clients()
        app.add_middleware(RateLimitMiddleware, budget=Budget("reads", 0), clients=app.state.clients, in_flight=2)
        errors.install(app)  # type: ignore[arg-type]

        def client(host: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(host, 1000))
            return httpx.AsyncClient(transport=transport, base_url="http://test")

        async with client("2001:db8::1") as one, client("2001:db8::2") as same_64, client("192.0.2.1") as other:
            held = [asyncio.create_task(one.get("/slow")) for _ in range(2)]
            await asyncio.sleep(0.1)
            refused = await same_64.get("/slow")
            error = error_of(refused, 429)
            assert error["budget"] == "in_flight" and error["limit"] == 2 and refused.headers["retry-after"] == "1"
            waiting = asyncio.create_task(other.get("/slow"))
            await asyncio.sleep(0.1)
            release.set()
            assert [(await task).text for task in [*held, waiting]] == ["done"] * 3
            assert (await same_64.get("/slow")).text == "done"  # answered: room again

    asyncio.run(scenario())


def test_a_trend_is_bounded_in_time_as_a_statement_is(api_settings: ApiSettings) -> None:
    """400 buckets are 400 computations in one snapshot: together they may take no longer than one statement may."""
    url = f"{V1}/commitments/DEMO-ROADS/POTHOLE-72H/trend"
    asked = {"from": "2019-01-01", "to": "2026-01-01", "bucket": "week"}
    with TestClient(create_app(dataclasses.replace(api_settings, statement_timeout_ms=1))) as client:
        answer = client.get(url, params=asked)
        error = error_of(answer, 503)
        assert error["code"] == "query_timeout" and "of 366 buckets" in error["message"]
        assert answer.headers["retry-after"] == "10"
    with TestClient(create_app(api_settings)) as client:
        assert len(client.get(url, params=asked).json()["buckets"]) == 366
