"""Agencies' webhooks: each new filing POSTed to the agency's case system in seq order, signed with HMAC-SHA256 over
the timestamp and the body, one delivery id per filing however often it is retried, retried with backoff until the
receiver answers 2xx; URLs into the operator's own network refused; the receiver's check (``verify_signature``) refuses
an edited body, another secret and an old timestamp."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.webhooks import WebhookRefused, check_url, sign, verify_signature
from ledger.chain.access import make_token
from ledger.chain.keys import KeyStore
from ledger.relay.store import CITIZEN_LANE, LANES
from tests.support.citizens import CitizenWorld, citizen_world
from tests.support.filing_bodies import FILINGS, WORK_BITS, filing_body

WEBHOOK = "/api/v1/intake/webhook"


class Receiver:
    """A case system on loopback: records every delivery, answers with the statuses queued (then 200)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("webhooks")) as world:
        world.chain.fund(KeyStore(world.data_dir / "keys").get_or_create(LANES[CITIZEN_LANE][1]).address)
        yield world


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    # the background deliverer polls once at start, then waits: the tests drive its rounds themselves
    settings = cw.settings(filing_work_bits=WORK_BITS, filing_rate_per_minute=0, webhook_allow_private=True,
                           extra={"webhook_poll_seconds": "3600"})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def auth(cw: CitizenWorld) -> dict[str, str]:
    return {"Authorization": "Bearer " + make_token(cw.world.signer, cw.chain.chain_id, cw.ledger.address, cw.agency)}


def file(client: TestClient, cw: CitizenWorld, description: str) -> int:
    body, _ = filing_body(cw.ledger, cw.world.agency_id, cw.world.commitment_id, description=description)
    answer = client.post(FILINGS, json=body)
    assert answer.status_code == 202 and answer.json()["status"] == "recorded", answer.text
    return int(answer.json()["seq"])


def test_new_filings_are_delivered_in_order_signed_and_retried_until_acknowledged(client: TestClient,
                                                                                   cw: CitizenWorld):
    before = file(client, cw, "filed before the webhook: in the intake list, not delivered")
    cw.sync()
    receiver = Receiver()
    set_ = client.put(WEBHOOK, json={"url": receiver.url}, headers=auth(cw))
    assert set_.status_code == 200, set_.text
    secret = set_.json()["secret"]
    assert set_.json()["cursor"] >= before and "secret" not in client.get(WEBHOOK, headers=auth(cw)).json()
    first, second = file(client, cw, "first after"), file(client, cw, "second after")
    cw.sync()
    deliverer = client.app.state.webhook_deliverer  # type: ignore[attr-defined]
    receiver.statuses = [500]  # the case system fails the first attempt
    assert deliverer.deliver_due() == 0
    state = client.get(WEBHOOK, headers=auth(cw)).json()
    assert state["failures"] == 1 and state["last_error"] == "answered HTTP 500" and state["delivered"] == 0
    assert deliverer.deliver_due() == 0  # not due yet: it waits (2 s) before the same delivery again
    assert deliverer.deliver_due(now=state["next_attempt_at"] + 1) == 2
    ids = [headers["x-civic-delivery"] for headers, _ in receiver.deliveries]
    assert ids == [f"{cw.agency}:{first}", f"{cw.agency}:{first}", f"{cw.agency}:{second}"]  # the retry: same id
    for headers, body in receiver.deliveries:
        assert verify_signature(secret, headers["x-civic-signature"], body)
        assert headers["x-civic-event"] == "filing.recorded"
    delivered = [json.loads(body) for _, body in receiver.deliveries[1:]]
    assert [d["filing"]["seq"] for d in delivered] == [first, second]
    assert delivered[0]["content"]["description"] == "first after" and delivered[0]["event"] == "filing.recorded"
    assert client.get(WEBHOOK, headers=auth(cw)).json()["delivered"] == 2
    assert deliverer.deliver_due() == 0  # nothing new
    assert client.delete(WEBHOOK, headers=auth(cw)).status_code == 204
    assert client.get(WEBHOOK, headers=auth(cw)).status_code == 404


def test_a_webhook_needs_the_agency_s_token(client: TestClient, cw: CitizenWorld):
    assert client.put(WEBHOOK, json={"url": "https://example.org/x"}).status_code == 401
    assert client.get(WEBHOOK).json()["error"]["code"] == "unauthenticated"


def test_urls_into_the_operator_s_network_are_refused():
    for url in ("http://127.0.0.1:8080/x", "https://127.0.0.1/x", "https://10.1.2.3/x", "https://[::1]/x",
                "https://169.254.169.254/latest/meta-data", "ftp://example.org/x", "https://u:p@example.org/x",
                "https:///nohost"):
        with pytest.raises(WebhookRefused):
            check_url(url, allow_private=False, resolve=lambda host: [host.strip("[]")])
    with pytest.raises(WebhookRefused, match="not a public address"):  # a public name that points inside
        check_url("https://cases.example.org/x", allow_private=False, resolve=lambda host: ["192.168.1.5"])
    check_url("https://cases.example.org/x", allow_private=False, resolve=lambda host: ["93.184.215.14"])
    check_url("http://127.0.0.1:8080/x", allow_private=True)


def test_refused_on_the_api_too(cw: CitizenWorld, tmp_path: Any):
    with TestClient(create_app(cw.settings(data_dir=tmp_path))) as strict:
        answer = strict.put(WEBHOOK, json={"url": "http://127.0.0.1:9/x"}, headers=auth(cw))
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_body"
        assert "https" in answer.json()["error"]["message"]


def test_the_receiver_s_check():
    secret, body = "ab" * 32, b'{"event":"filing.recorded"}'
    header = sign(secret, 1_800_000_000, body)
    assert verify_signature(secret, header, body, now=1_800_000_010)
    assert not verify_signature(secret, header, body + b" ", now=1_800_000_010)
    assert not verify_signature("cd" * 32, header, body, now=1_800_000_010)
    assert not verify_signature(secret, header, body, now=1_800_000_000 + 301)
    assert not verify_signature(secret, "garbage", body, now=1_800_000_010)
