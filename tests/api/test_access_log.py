"""The access log without personal data (``api.accesslog``), on the demo city (``tests/api/conftest.py``): a request
is logged as method, route template, status and milliseconds — never its path, query, headers or client — one short
line whatever the client sent, refusals (429) and failures (500) included; ``python -m api`` turns uvicorn's own
access log off, and its log lines carry no exception's message."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from api import __main__ as cli
from api.accesslog import (
    AccessLogWithoutPersonalData,
    JsonLines,
    WithoutExceptionMessages,
    WithRequestId,
    json_lines,
)
from api.app import create_app
from api.settings import ApiSettings
from ledger.dev.node import free_port
from ledger.store.schema import receipts
from tests.support.pool import wait_for

V1 = "/api/v1"
EMAIL = "alice@example.org"
#: one access line: method, route template, status, milliseconds
LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<route>\S+) (?P<status>\d{3}) \d+\.\dms$")
#: the loggers of the service (the test client's own, httpx, logs the URLs it asks for)
SERVICE = ("api", "ledger", "uvicorn", "starlette", "fastapi")


@contextmanager
def logged(settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    lines = []
    for record in caplog.records:
        if record.name == "api.access":
            match = LINE.match(record.getMessage())
            assert match, record.getMessage()
            lines.append(match.groupdict())
    return lines


def service_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records if r.name.startswith(SERVICE))


def a_receipt(store: Any) -> tuple[str, str, str]:
    """A receipt of the demo city: its key's address, and its case (agency, 0x case id)."""
    with store.connect() as conn:
        row = conn.execute(select(receipts.c.receipt, receipts.c.agency_id, receipts.c.case_id).limit(1)).first()
    assert row is not None
    return row.receipt, row.agency_id, "0x" + bytes(row.case_id).hex()


def test_a_receipt_lookup_is_logged_by_its_route_never_its_address_or_query(
    api_settings: ApiSettings, city_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    address, agency, case = a_receipt(city_store)
    caplog.set_level(logging.DEBUG)
    with logged(api_settings) as client:
        asked = [
            client.get(f"{V1}/receipts/{address}", params={"email": EMAIL}),
            client.get(f"{V1}/receipts/{Account.create().address}?email={EMAIL}"),
            client.get(f"{V1}/cases/{agency}/{case}", params={"email": EMAIL}),
            client.get(f"{V1}/feeds/receipts/{address}.atom", params={"email": EMAIL}),
        ]
    assert [a.status_code for a in asked] == [200, 404, 200, 200]
    assert [(line["method"], line["route"], line["status"]) for line in access_lines(caplog)] == [
        ("GET", f"{V1}/receipts/{{address}}", "200"),
        ("GET", f"{V1}/receipts/{{address}}", "404"),
        ("GET", f"{V1}/cases/{{agency_id}}/{{case_id}}", "200"),
        ("GET", f"{V1}/feeds/receipts/{{address}}.atom", "200"),
    ]
    logs = service_text(caplog)
    for personal in (address, address.lower(), case, case[2:], "email", EMAIL, "testclient"):
        assert personal not in logs


def test_a_flood_of_429s_is_one_short_line_each(api_settings: ApiSettings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="api.access")
    with logged(dataclasses.replace(api_settings, read_rate_per_minute=1)) as client:
        statuses = [client.get(f"{V1}/agencies?email={EMAIL}&pad={'x' * 8000}").status_code for _ in range(5)]
    assert statuses == [200, 429, 429, 429, 429]
    lines = [r.getMessage() for r in caplog.records if r.name == "api.access"]
    assert len(lines) == 5 and all(len(line) < 60 for line in lines)
    # refused before any route ran: named as such, not by a path
    assert [access["route"] for access in access_lines(caplog)] == [f"{V1}/agencies"] + ["(unrouted)"] * 4


def test_a_60_kb_unmatched_path_and_an_unknown_method_are_logged_in_a_few_bytes(
    api_settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="api.access")
    with logged(api_settings) as client:
        answers = [
            client.get("/" + "a" * 60_000, params={"email": EMAIL}),
            client.get("/static/" + "a" * 60_000),  # a mount: its template, not the file asked for
            client.request("BREW", f"{V1}/agencies"),
            client.get(f"{V1}/agencies/", follow_redirects=False),
            client.put(f"{V1}/audit-reports/0x{'ab' * 32}", headers={"content-length": str(2**40)}),
        ]
    assert [a.status_code for a in answers] == [404, 404, 405, 307, 413]
    assert [(line["method"], line["route"], line["status"]) for line in access_lines(caplog)] == [
        ("GET", "(unmatched)", "404"),
        ("GET", "/static/{path}", "404"),
        ("OTHER", f"{V1}/agencies", "405"),
        ("GET", "(unmatched)", "307"),
        ("PUT", "(unrouted)", "413"),  # refused by its declared length before routing
    ]
    assert max(len(r.getMessage()) for r in caplog.records if r.name == "api.access") < 60


def test_a_route_included_under_prefixes_is_logged_by_its_whole_template(caplog: pytest.LogCaptureFixture) -> None:
    """FastAPI keeps an included router's routes under it, each with only its own router's prefix: the template
    logged is the whole path's."""
    inner = APIRouter(prefix="/inner")
    inner.add_api_route("/items/{item}", lambda item: {"item": item})
    outer = APIRouter(prefix="/outer")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer, prefix="/v9")
    caplog.set_level(logging.INFO, logger="api.access")
    app.add_middleware(AccessLogWithoutPersonalData)
    with TestClient(app) as client:
        assert client.get("/v9/outer/inner/items/alice").status_code == 200
    assert [line["route"] for line in access_lines(caplog)] == ["/v9/outer/inner/items/{item}"]


def test_a_failure_is_logged_by_its_route_without_the_failures_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real failure: the index loses its receipts table under the running API. The 500 is logged by its route, and
    the error's log line names the failure's types and frames, not its message (SQLAlchemy's quotes the parameters:
    the receipt address)."""
    index = tmp_path / "index.sqlite"
    address = Account.create().address
    caplog.set_level(logging.INFO)
    with logged(ApiSettings(store_url=f"sqlite:///{index}", data_dir=tmp_path)) as client:
        assert client.get(f"{V1}/receipts/{address}").status_code == 404
        with closing(sqlite3.connect(index, isolation_level=None)) as db:
            db.execute("DROP TABLE receipts")
        failed = client.get(f"{V1}/receipts/{address}", params={"email": EMAIL})
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "internal_error"
    # the 500 carries its request's id, as its access line does
    assert [r.request_id for r in caplog.records if r.name == "api.access"][-1] == failed.headers["X-Request-ID"]
    assert [(line["route"], line["status"]) for line in access_lines(caplog)] == [
        (f"{V1}/receipts/{{address}}", "404"), (f"{V1}/receipts/{{address}}", "500")]
    [error] = [r for r in caplog.records if r.name == "api.errors"]
    assert error.getMessage().startswith(f"unexpected error answering GET {V1}/receipts/{{address}}:\n")
    assert "OperationalError" in error.getMessage() and error.exc_info is None
    logs = service_text(caplog)
    assert address not in logs and EMAIL not in logs and "no such table" not in logs


def test_python_m_api_turns_uvicorns_access_log_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's arguments to uvicorn (uvicorn.run recorded, not run)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    cli.main([])
    cli.main(["--limit-concurrency", "50", "--log-level", "warning"])
    default, limited = calls
    assert default["access_log"] is False and default["proxy_headers"] is False
    assert default["limit_concurrency"] == cli.LIMIT_CONCURRENCY == 1000 and limited["limit_concurrency"] == 50
    assert "http" not in default and "timeout_keep_alive" not in default  # httptools, and uvicorn's keep-alive
    assert default["log_config"]["loggers"]["api"]["level"] == "INFO"
    assert limited["log_config"]["loggers"]["api"]["level"] == "WARNING"


def test_served_by_uvicorn_the_log_has_no_request_line_and_no_client(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVIC_")} | {"CIVIC_DATA_DIR": str(tmp_path)}
    output = tmp_path / "log"
    with output.open("wb") as sink:
        server = subprocess.Popen([sys.executable, "-m", "api", "--port", str(port)], cwd=Path.cwd(), env=env,
                                  stdout=sink, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _answers(f"{base}{V1}/chain"), "the server to start", timeout=60)
            address = Account.create().address
            assert httpx.get(f"{base}{V1}/receipts/{address}", params={"email": EMAIL}).status_code == 404
            assert httpx.get(f"{base}/{'a' * 30_000}", params={"email": EMAIL}).status_code == 404
            wait_for(lambda: output.read_text().count(" 404 ") >= 2, "the access lines")
        finally:
            server.terminate()
            server.wait(30)
    log = output.read_text()
    assert f"GET {V1}/receipts/{{address}} 404 " in log and "GET (unmatched) 404 " in log
    assert address not in log and EMAIL not in log and "127.0.0.1:" not in log.replace(f"127.0.0.1:{port}", "")
    assert max(len(line) for line in log.splitlines()) < 600  # a JSON line of the access fields


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# --- request ids and JSON lines ---------------------------------------------------------------------------------------

HEX_ID = re.compile(r"[0-9a-f]{32}")


def a_bare_app(tmp_path: Path, **changes: Any) -> FastAPI:
    """The API on an empty index (no chain): enough for routes that answer 404 and for the probes."""
    return create_app(ApiSettings(store_url=f"sqlite:///{tmp_path / 'index.sqlite'}", data_dir=tmp_path, **changes))


def test_each_request_gets_an_id_echoed_in_the_answer_and_on_its_access_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="api.access")
    with TestClient(a_bare_app(tmp_path, read_rate_per_minute=2)) as client:
        answers = [client.get(f"{V1}/receipts/{Account.create().address}") for _ in range(3)]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert [answer.status_code for answer in answers] == [404, 404, 429]  # a refusal has its id too
    assert all(HEX_ID.fullmatch(i) for i in ids) and len(set(ids)) == 3
    records = [r for r in caplog.records if r.name == "api.access"]
    assert [getattr(r, "request_id", None) for r in records] == ids
    assert [getattr(r, "fields", None) for r in records][0] == {
        "method": "GET", "route": f"{V1}/receipts/{{address}}", "status": 404,
        "duration_ms": records[0].fields["duration_ms"],  # type: ignore[attr-defined]
    }


def test_a_request_id_is_taken_only_from_a_trusted_proxy_and_only_when_it_is_one_short_token(tmp_path: Path) -> None:
    proxy, stranger = ("10.0.0.5", 40000), ("192.0.2.7", 40000)
    given = "0b5e6f6c-2f1d-4c8e-9b35-8d0c1e2a7f10"

    def echoed(client: tuple[str, int], headers: list[tuple[str, str | bytes]]) -> str:
        with TestClient(a_bare_app(tmp_path, trusted_proxies=("10.0.0.0/24",)), client=client) as test_client:
            return test_client.get("/healthz", headers=headers).headers["x-request-id"]

    assert echoed(proxy, [("X-Request-ID", given)]) == given
    assert echoed(proxy, [("X-Request-ID", "trace:Root=1-5759e988-bd862e3fe1be46a994272793")]).startswith("trace:")
    for refused in ([("X-Request-ID", given)], [("X-Request-ID", "")]):
        assert HEX_ID.fullmatch(echoed(stranger, refused))  # a client cannot name its own request
    for bad in ("has spaces in it", "x" * 129, '"quoted"', "-leading-dash", "naïve".encode("latin-1")):
        assert HEX_ID.fullmatch(echoed(proxy, [("X-Request-ID", bad)])), bad
    assert HEX_ID.fullmatch(echoed(proxy, [("X-Request-ID", given), ("X-Request-ID", "another")]))


def test_json_lines_carry_the_request_id_and_never_the_client_query_or_path_values(tmp_path: Path) -> None:
    """Every line the API's loggers write while answering, formatted as ``python -m api`` formats them
    (``api.accesslog.json_lines``): one JSON object each, with the request's id, and none of what identifies the
    client or what it asked for."""
    config = json_lines(cli.log_config("info"))
    assert {spec["()"] for spec in config["formatters"].values()} == {"api.accesslog.JsonLines"}
    assert all("request_id" in handler["filters"] for handler in config["handlers"].values())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.addFilter(WithRequestId())
    handler.addFilter(WithoutExceptionMessages())
    api_logger = logging.getLogger("api")
    api_logger.addHandler(handler)
    level = api_logger.level
    api_logger.setLevel(logging.INFO)
    address = Account.create().address
    try:
        with TestClient(a_bare_app(tmp_path), client=("203.0.113.9", 51515)) as client:
            answers = [
                client.get(f"{V1}/receipts/{address}", params={"email": EMAIL}),
                client.get(f"/{'a' * 5000}?email={EMAIL}"),
                client.get("/readyz"),
            ]
    finally:
        api_logger.removeHandler(handler)
        api_logger.setLevel(level)
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    access = [line for line in lines if line["logger"] == "api.access"]
    assert [line["request_id"] for line in access] == [a.headers["x-request-id"] for a in answers]
    assert [(line["method"], line["route"], line["status"]) for line in access] == [
        ("GET", f"{V1}/receipts/{{address}}", 404), ("GET", "(unmatched)", 404), ("GET", "/readyz", 200)]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    for personal in (address, address.lower(), EMAIL, "email", "203.0.113.9", "aaaa"):
        assert personal not in text


def test_a_json_line_writes_an_exception_without_its_message() -> None:
    try:
        raise ValueError(f"a receipt address {Account.create().address} and {EMAIL}")
    except ValueError:
        record = logging.getLogger("api.test").makeRecord("api.test", logging.ERROR, __file__, 1, "failed", (),
                                                           sys.exc_info())
    line = json.loads(JsonLines().format(record))
    assert line["message"] == "failed" and "request_id" not in line
    assert line["exception"].endswith("builtins.ValueError") and EMAIL not in line["exception"]
