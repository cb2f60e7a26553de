"""Citizens' filings and receipt claims attacked, on a real anvil, as each adversary would: someone copying a relayed
record and sending it first, an abusive public (oversized, malformed or tricky bodies), a hostile agency (floods,
burnt keys, claims of its own printed receipts), a faulty operator (a crash between storing and queueing, a damaged
private store), and anyone reading the logs or the relay's files for what a citizen wrote.

Each test is named after what it attempts; each shows the attempt refused or contained. (The attempts that first
succeeded — a deeply nested body killing the server, a copy mined while the store waited missed, a chunked body read
whole, a RIFF sound taken for a photo, a damaged private store shown, a stored filing left unqueued — were fixed.)
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.filing_writes import MAX_BODY_BYTES
from ledger import receipts
from ledger.chain.contract import citizen_typed_data
from ledger.chain.keys import KeyStore
from ledger.dev.node import free_port
from ledger.errors import OutboxError
from ledger.filings import MAX_ATTACHMENT_BYTES, MAX_DESCRIPTION, Attachment, FilingContent, attachment_of, do_work
from ledger.records import (
    EntryKind,
    Filing,
    FilingAnswer,
    FilingDecision,
    Receipt,
    ReceiptClaim,
    filed_case_id,
    short_code,
)
from ledger.relay.store import CITIZEN_LANE, LANES, CitizenFiles, RelayStore
from ledger.relay.verify import RelayRefused, SignedCitizenRecord, check_citizen_signature
from ledger.relay.writer import RelayWriter
from tests.support.citizens import CitizenWorld, citizen_world, receipt_case_id, refused, relay_rows
from tests.support.filing_bodies import CLAIMS, FILINGS, WORK_BITS, claim_body, filing_body, png
from tests.support.pool import Pool, wait_for

CITIZENS_RELAYER = LANES[CITIZEN_LANE][1]
#: a POST answers at once (``pending``) rather than waiting for the relay: where the test sends, or holds, the lane
NO_WAIT = {"write_wait_seconds": "0"}


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitizenWorld]:
    with citizen_world(tmp_path_factory.mktemp("filing-attacks")) as world:
        world.chain.fund(KeyStore(world.data_dir / "keys").get_or_create(CITIZENS_RELAYER).address)
        # the other agency publishes a commitment too, so that both can be filed with
        world.ledger.write(world.world.other_signer, world.world.commitment())
        yield world


@pytest.fixture(scope="module")
def client(cw: CitizenWorld) -> Iterator[TestClient]:
    with TestClient(create_app(cw.settings(filing_work_bits=WORK_BITS, filing_rate_per_minute=0))) as test_client:
        yield test_client


# ---------------------------------------------------------------------- helpers


def body_of(cw: CitizenWorld, *, agency: bytes | None = None, **changes: Any) -> tuple[dict[str, Any], str]:
    return filing_body(cw.ledger, agency or cw.world.agency_id, cw.world.commitment_id, **changes)


def filing_of(body: dict[str, Any]) -> tuple[Filing, bytes]:
    """The Filing record and signature a filing's body carries (what a copier reads from the mempool)."""
    f = body["filing"]
    record = Filing(agency_id=short_code(f["agency_id"]), commitment_id=short_code(f["commitment_id"]),
                    district=short_code(f["district"]), channel=f["channel"],
                    content_hash=bytes.fromhex(f["content_hash"][2:]), receipt=f["receipt"])
    return record, bytes.fromhex(body["signature"][2:])


def claim_of(body: dict[str, Any]) -> tuple[ReceiptClaim, bytes, bytes]:
    claim = ReceiptClaim(agency_id=short_code(body["agency_id"]), case_id=bytes.fromhex(body["case_id"][2:]),
                         receipt=body["receipt"])
    return claim, bytes.fromhex(body["signature"][2:]), bytes.fromhex(body["new_key_signature"][2:])


def signed_filing(cw: CitizenWorld, body: dict[str, Any]) -> SignedCitizenRecord:
    record, signature = filing_of(body)
    return check_citizen_signature(record, signature, cw.ledger.filings_domain())


def stored_parts(body: dict[str, Any]) -> tuple[FilingContent, bytes, list[bytes]]:
    """The content, salt and photos' bytes a filing's body carries, as the store takes them."""
    return (FilingContent.model_validate(body["content"]), bytes.fromhex(body["salt"][2:]),
            [base64.b64decode(p["data"]) for p in body["photos"]])


def body_with_content(cw: CitizenWorld, content: FilingContent, photos: list[tuple[str, bytes]]) -> dict[str, Any]:
    """A filing's body for any content (``filing_body`` makes PNG photos only), signed and worked as the page does."""
    template, code = body_of(cw)
    salt = bytes.fromhex(template["salt"][2:])
    record = filing_of(template)[0].model_copy(update={"content_hash": content.content_hash(salt)})
    return {
        **template,
        "filing": {**template["filing"], "content_hash": "0x" + record.content_hash.hex()},
        "signature": "0x" + cw.ledger.sign_filing(receipts.private_key(code), record).hex(),
        "content": content.model_dump(exclude_defaults=True),
        "photos": [{"media_type": t, "data": base64.b64encode(d).decode()} for t, d in photos],
        "work": do_work(record.receipt, WORK_BITS),
    }


def filings_by(cw: CitizenWorld, receipt: str, from_block: int) -> list[Any]:
    """Every FilingRecorded entry made with this key since `from_block`."""
    return [e for e in cw.ledger.entries(from_block=from_block)
            if e.kind is EntryKind.FILING_RECORDED and e.actor == receipt]


def accepted(client: TestClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(url, json=body)
    assert answer.status_code == 202, answer.text
    out: dict[str, Any] = answer.json()
    return out


def status_of(client: TestClient, url: str, submission: str) -> dict[str, Any]:
    answer = client.get(f"{url}/{submission}")
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def settled_status(client: TestClient, url: str, submission: str, timeout: float = 30.0) -> dict[str, Any]:
    settled: dict[str, Any] = wait_for(
        lambda: (s := status_of(client, url, submission))["status"] in ("recorded", "failed") and s,
        f"submission {submission} to settle", timeout)
    return settled


def citizens_relayer(data_dir: Path) -> LocalAccount:
    return KeyStore(data_dir / "keys").get_or_create(CITIZENS_RELAYER)


@contextmanager
def app_on(cw: CitizenWorld, data_dir: Path, **changes: Any) -> Iterator[TestClient]:
    """An app of its own on `data_dir` (its own relay store and outboxes), its citizens' relayer funded; a 500 is
    answered, not raised, so that a test sees what the filer sees."""
    cw.chain.fund(citizens_relayer(data_dir).address)
    fields: dict[str, Any] = dict(data_dir=data_dir, filing_work_bits=WORK_BITS, filing_rate_per_minute=0)
    fields.update(changes)
    with TestClient(create_app(cw.settings(**fields)), raise_server_exceptions=False) as test_client:
        yield test_client


@contextmanager
def held_citizens_lane(cw: CitizenWorld, data_dir: Path) -> Iterator[tuple[RelayStore, RelayWriter]]:
    """The citizens' lane of `data_dir`'s relay held by a writer that does not run (another worker that owns the
    lane, stopped): what an app on `data_dir` stores waits in the outbox until the test flushes it. Enter it before
    the app starts, so the app finds the lane taken and sends nothing of it."""
    store = RelayStore(data_dir / "relay", cw.ledger, synchronous="NORMAL")
    writer = RelayWriter(cw.ledger, citizens_relayer(data_dir), store, lane=CITIZEN_LANE, retry_backoff=0.01)
    try:
        yield store, writer
    finally:
        writer.close()
        store.close()


@contextmanager
def automine_off(cw: CitizenWorld) -> Iterator[Pool]:
    """Transactions wait in the node's pool until the test mines a block, so that a copy can overtake the relayer's
    transaction there."""
    pool = Pool(cw.world, citizens_relayer(cw.data_dir))
    cw.chain.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        yield pool
    finally:
        cw.chain.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        pool.mine()


def head(cw: CitizenWorld) -> int:
    return int(cw.chain.w3.eth.block_number)


# ---------------------------------------------------------------------- front-running


def test_a_filing_copied_and_filed_first_ends_recorded_with_the_copy(cw: CitizenWorld, tmp_path: Path) -> None:
    """Someone reads a filing's signed record (from the mempool, or the filer's other relay) and files it directly,
    from an account of their own, before this relay sends it. The relay's call then reverts (the key is used), yet
    the filing is on chain once: the submission ends recorded with the copy's transaction and seq, not failed, and
    the relayer signs nothing."""
    with held_citizens_lane(cw, tmp_path) as (_, writer), app_on(cw, tmp_path, extra=NO_WAIT) as client:
        body, _ = body_of(cw, description="copied from the outbox", photos=[png(7)])
        start = head(cw)
        out = accepted(client, FILINGS, body)
        assert out["status"] == "pending"
        copier = cw.chain.new_account()
        mined = cw.ledger.submit_filing(copier, *filing_of(body))
        writer.flush()
        assert writer.stats.signed == 0  # the relayer paid for nothing
        final = status_of(client, f"{FILINGS}/submissions", out["id"])
    copy_hash = "0x" + bytes(mined["transactionHash"]).hex()
    assert final["status"] == "recorded" and final["tx_hash"] == copy_hash, final
    [entry] = filings_by(cw, body["filing"]["receipt"], start)
    assert final["seq"] == entry.seq and final["case_id"] == "0x" + filed_case_id(entry.seq).hex()
    # the content is the agency's to read, as for any filing relayed here
    stored = CitizenFiles(tmp_path / "relay").filing(body["filing"]["receipt"], filing_of(body)[0].content_hash)
    assert stored is not None and stored.content.description == "copied from the outbox"


def test_a_receipt_claim_copied_and_sent_first_ends_recorded_with_the_copy(cw: CitizenWorld, tmp_path: Path) -> None:
    printed = cw.open("claim-copied-first")
    assert printed is not None
    case = receipt_case_id("claim-copied-first")
    with held_citizens_lane(cw, tmp_path) as (_, writer), app_on(cw, tmp_path, extra=NO_WAIT) as client:
        body, own = claim_body(cw.ledger, cw.world.agency_id, case, printed)
        start = head(cw)
        out = accepted(client, CLAIMS, body)
        assert out["status"] == "pending"
        mined = cw.ledger.submit_claim(cw.chain.new_account(), *claim_of(body))
        writer.flush()
        assert writer.stats.signed == 0
        final = status_of(client, CLAIMS, out["id"])
    assert final["status"] == "recorded" and final["tx_hash"] == "0x" + bytes(mined["transactionHash"]).hex()
    claimed = [e for e in cw.ledger.entries(from_block=start) if e.kind is EntryKind.RECEIPT_CLAIMED]
    assert [e.seq for e in claimed] == [final["seq"]]
    assert cw.ledger.receipt_case(cw.world.agency_id, case).receipt == receipts.address(own)


@pytest.mark.parametrize("kind", ["filing", "claim"])
def test_a_relayed_record_overtaken_in_the_mempool_ends_recorded_with_the_copy(
    cw: CitizenWorld, tmp_path: Path, kind: str
) -> None:
    """The relayer's transaction waits in the pool; someone copies its signed record and sends it with a higher
    tip, so the copy is mined first and ours reverts on chain. The submission ends recorded with the copy."""
    if kind == "filing":
        body, _ = body_of(cw, description="overtaken in the pool")
        record, signature = filing_of(body)
        copy = cw.ledger.encode_filing_call(record, signature)
        url, follow = FILINGS, f"{FILINGS}/submissions"
    else:
        printed = cw.open("claim-overtaken")
        assert printed is not None
        body, _ = claim_body(cw.ledger, cw.world.agency_id, receipt_case_id("claim-overtaken"), printed)
        copy = cw.ledger.encode_claim_call(*claim_of(body))
        url, follow = CLAIMS, CLAIMS
    front_runner = cw.chain.new_account()
    start = head(cw)
    with app_on(cw, tmp_path, extra=NO_WAIT) as own, automine_off(cw) as pool:
        out = accepted(own, url, body)
        ours = wait_for(lambda: (s := status_of(own, follow, out["id"])).get("tx_hash") and pool.in_pool(
            s["tx_hash"]) and s["tx_hash"], "the relayer's transaction to be in the pool")
        copied = pool.send_copy(front_runner, copy, tip=50 * 10**9)
        pool.mine()
        assert cw.chain.w3.eth.get_transaction_receipt(ours)["status"] == 0  # the copy went first
        final = settled_status(own, follow, out["id"])
    assert final["status"] == "recorded" and final["tx_hash"] == copied, final
    kinds = {"filing": EntryKind.FILING_RECORDED, "claim": EntryKind.RECEIPT_CLAIMED}
    [entry] = [e for e in cw.ledger.entries(from_block=start) if e.kind is kinds[kind]]
    assert final["seq"] == entry.seq


class FrontRunMissed(AssertionError):
    """The relay took a copy someone else put on chain for a failure of its own."""


@contextmanager
def relay_lock_held(data_dir: Path) -> Iterator[int]:
    """The relay store's submission lock taken, as another worker's long submission holds it; yields the lock
    file's inode (``/proc/locks`` shows who waits for it)."""
    path = data_dir / "relay" / "submit.lock"
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield os.stat(path).st_ino


def waiting_for_lock(inode: int) -> bool:
    return any(" -> FLOCK " in line and f":{inode} " in line for line in Path("/proc/locks").read_text().splitlines())



@pytest.mark.parametrize("kind", ["filing", "claim"])
def test_a_copy_mined_while_the_store_waits_for_its_lock_is_still_found(
    cw: CitizenWorld, tmp_path: Path, kind: str
) -> None:
    """The desk has run the call on the latest block and waits for the store's lock (another worker holds it).
    Meanwhile a copy of the signed record is mined, and a block after it. The submission is stored, the relay's
    call reverts, and the copy must still be found."""
    if kind == "filing":
        body, _ = body_of(cw, description="copied while the store was busy")
        url, follow = FILINGS, f"{FILINGS}/submissions"

        def send_copy() -> Any:
            return cw.ledger.submit_filing(cw.chain.new_account(), *filing_of(body))
    else:
        printed = cw.open("claim-copied-while-busy")
        assert printed is not None
        body, _ = claim_body(cw.ledger, cw.world.agency_id, receipt_case_id("claim-copied-while-busy"), printed)
        url, follow = CLAIMS, CLAIMS

        def send_copy() -> Any:
            return cw.ledger.submit_claim(cw.chain.new_account(), *claim_of(body))
    with held_citizens_lane(cw, tmp_path) as (_, writer), app_on(cw, tmp_path, extra=NO_WAIT) as client, \
            ThreadPoolExecutor(1) as poster:
        assert client.app.state.agency_writes.store is not None  # type: ignore[attr-defined]  # opened before
        with relay_lock_held(tmp_path) as inode:
            posted = poster.submit(client.post, url, json=body)
            wait_for(lambda: waiting_for_lock(inode), "the desk to wait for the store's lock")
            mined = send_copy()
            cw.chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        answer = posted.result(timeout=30)
        assert answer.status_code == 202, answer.text  # the desk's call ran before the copy was mined
        writer.flush()
        final = status_of(client, follow, answer.json()["id"])
    if final["status"] != "recorded":
        raise FrontRunMissed(f"the submission ended {final['status']} ({final.get('error')}) although "
                             f"{'0x' + bytes(mined['transactionHash']).hex()} recorded it")
    assert final["tx_hash"] == "0x" + bytes(mined["transactionHash"]).hex()


def test_a_claim_to_its_own_printed_key_or_with_the_signatures_swapped_is_refused(
    client: TestClient, cw: CitizenWorld
) -> None:
    printed = cw.open("claimed-to-itself")
    assert printed is not None
    case = receipt_case_id("claimed-to-itself")
    to_itself, _ = claim_body(cw.ledger, cw.world.agency_id, case, printed, own=printed)
    refused(client, cw, CLAIMS, to_itself, 409, "receipt_in_use")
    body, _ = claim_body(cw.ledger, cw.world.agency_id, case, printed)
    swapped = {**body, "signature": body["new_key_signature"], "new_key_signature": body["signature"]}
    refused(client, cw, CLAIMS, swapped, 403, "forged_signature")


def test_a_hostile_agency_burning_a_pending_filing_s_key_makes_it_fail_not_recorded(
    cw: CitizenWorld, tmp_path: Path
) -> None:
    """An agency that sees a filing coming issues a receipt of its own to the filer's key first (the contract takes
    any fresh key for a receipt). The filing can then never be recorded with that key: it must end failed, naming
    the contract's reason — not recorded with the agency's transaction, which is not this filing — and the filer
    files again with a new key."""
    with held_citizens_lane(cw, tmp_path) as (_, writer), app_on(cw, tmp_path, extra=NO_WAIT) as client:
        body, _ = body_of(cw, description="the agency would rather not hear this")
        out = accepted(client, FILINGS, body)
        w = cw.world
        case = receipt_case_id("burns-a-filer-key")
        w.ledger.write(w.signer, w.opened("burns-a-filer-key", case_id=case))
        start = head(cw)
        w.ledger.write(w.signer, Receipt(case_id=case, receipt=body["filing"]["receipt"], occurred_at=w.now()))
        writer.flush()
        final = status_of(client, f"{FILINGS}/submissions", out["id"])
        assert final["status"] == "failed", final
        assert final["error"]["name"] == "ReceiptKeyAlreadyUsed" and "tx_hash" not in final
        assert filings_by(cw, body["filing"]["receipt"], start) == []
        again, _ = body_of(cw, description="the agency would rather not hear this")
        out = accepted(client, FILINGS, again)
        writer.flush()
        assert status_of(client, f"{FILINGS}/submissions", out["id"])["status"] == "recorded"


def test_an_agency_claiming_its_printed_receipt_first_makes_the_citizen_s_claim_fail(
    cw: CitizenWorld, tmp_path: Path
) -> None:
    """An agency that kept the printed code claims the case to a key of its own while the citizen's claim waits. The
    citizen's claim fails (the case is citizen-held already); it is not taken for recorded by the agency's claim,
    which moved the receipt elsewhere."""
    printed = cw.open("claimed-by-the-agency")
    assert printed is not None
    case = receipt_case_id("claimed-by-the-agency")
    with held_citizens_lane(cw, tmp_path) as (_, writer), app_on(cw, tmp_path, extra=NO_WAIT) as client:
        body, own = claim_body(cw.ledger, cw.world.agency_id, case, printed)
        out = accepted(client, CLAIMS, body)
        hijack, kept = claim_body(cw.ledger, cw.world.agency_id, case, printed)
        cw.ledger.submit_claim(cw.chain.new_account(), *claim_of(hijack))
        writer.flush()
        final = status_of(client, CLAIMS, out["id"])
    assert final["status"] == "failed" and final["error"]["name"] == "ReceiptAlreadyCitizenHeld", final
    assert cw.ledger.receipt_case(cw.world.agency_id, case).receipt == receipts.address(kept) != receipts.address(own)


# ---------------------------------------------------------------------- an abusive public


def test_an_over_long_description_is_refused_and_the_longest_taken(client: TestClient, cw: CitizenWorld) -> None:
    body, _ = body_of(cw)
    too_long = {**body, "content": {**body["content"], "description": "x" * (MAX_DESCRIPTION + 1)}}
    answer = refused(client, cw, FILINGS, too_long, 422, "invalid_body")
    assert answer["error"]["field"] == "content.description"
    longest, _ = body_of(cw, description="路" * MAX_DESCRIPTION)
    assert accepted(client, FILINGS, longest)["status"] == "recorded"


def test_a_fourth_photo_is_refused(client: TestClient, cw: CitizenWorld) -> None:
    body, _ = body_of(cw, photos=[png(1), png(2), png(3)])
    fourth = attachment_of("image/png", png(4)).model_dump()
    extra_photo = {"media_type": "image/png", "data": base64.b64encode(png(4)).decode()}
    refused(client, cw, FILINGS, {**body, "photos": [*body["photos"], extra_photo]}, 422, "invalid_body")
    refused(client, cw, FILINGS, {**body, "photos": [*body["photos"], extra_photo], "content": {
        **body["content"], "attachments": [*body["content"]["attachments"], fourth]}}, 422, "invalid_body")


def big_png(size: int, seed: int = 0) -> bytes:
    """`size` bytes that start as a PNG does (all ``attachment_of`` asks of a photo's bytes)."""
    head_ = png(seed)
    return head_ + bytes([seed % 256]) * (size - len(head_))


def test_a_photo_up_to_the_published_size_is_taken_and_a_bigger_one_refused(
    client: TestClient, cw: CitizenWorld
) -> None:
    """The policy publishes ``max_photo_bytes``: a photo of exactly that size is taken; one byte over is refused
    (by its size), a bigger one before its base64 is even decoded; nothing is stored."""
    assert client.get("/api/v1/filing-policy").json()["content"]["max_photo_bytes"] == MAX_ATTACHMENT_BYTES
    taken, _ = body_of(cw, photos=[big_png(MAX_ATTACHMENT_BYTES, 1)])
    assert accepted(client, FILINGS, taken)["status"] == "recorded"
    body, _ = body_of(cw, photos=[png(5)])
    for size, code in ((MAX_ATTACHMENT_BYTES + 1, "content_mismatch"), (3 * 2**20, "invalid_body")):
        over = base64.b64encode(big_png(size, 2)).decode()  # one byte over passes the schema's base64 length
        refused(client, cw, FILINGS, {**body, "photos": [{"media_type": "image/png", "data": over}]}, 422, code)


def test_three_photos_of_the_published_size_fit_the_body_limit(client: TestClient, cw: CitizenWorld) -> None:
    policy = client.get("/api/v1/filing-policy").json()["content"]
    photos = [big_png(policy["max_photo_bytes"], seed) for seed in range(policy["max_photos"])]
    body, _ = body_of(cw, photos=photos)
    answer = client.post(FILINGS, json=body)
    assert answer.status_code == 202, answer.text[:200]


def test_a_body_over_the_limit_is_refused_with_and_without_content_length(client: TestClient, cw: CitizenWorld) -> None:
    body, _ = body_of(cw)
    document = json.dumps({**body, "padding": "x" * MAX_BODY_BYTES}).encode()
    refused(client, cw, FILINGS, document, 413, "body_too_large")  # Content-Length says so

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server learns the size as it reads
        for start in range(0, len(document), 2**16):
            yield document[start : start + 2**16]

    rows = relay_rows(client)
    answer = client.post(FILINGS, content=chunked(), headers={"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"
    assert relay_rows(client) == rows


def test_a_chunked_body_over_the_limit_is_not_read_to_its_end(client: TestClient) -> None:
    """A body sent without Content-Length is read only as far as the limit: whatever follows is never taken into
    memory (here 64 MiB offered in 1 MiB chunks; at most the limit and one chunk may be read)."""
    chunk, offered = 2**20, 64
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < offered:
            pulled += 1
            return {"type": "http.request", "body": b" " * chunk, "more_body": pulled < offered}
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": FILINGS, "raw_path": FILINGS.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")],
             "client": ("203.0.113.9", 50000), "server": ("testserver", 80), "state": {}}
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 413
    assert pulled * chunk <= MAX_BODY_BYTES + chunk, f"read {pulled} MiB of a body whose limit is 4.5 MiB"


def test_nested_json_is_refused_as_invalid(client: TestClient, cw: CitizenWorld) -> None:
    for document in ("[" * 500 + "]" * 500, '{"content": ' + '{"a":' * 500 + "1" + "}" * 500 + "}"):
        refused(client, cw, FILINGS, document, 400, "invalid_json")


#: the API served by uvicorn, as in production (``python SCRIPT DATA_DIR PORT``)
_SERVER = """
import sys
from pathlib import Path
import uvicorn
from api.app import create_app
from api.settings import ApiSettings
data = Path(sys.argv[1])
app = create_app(ApiSettings(store_url=f"sqlite:///{data / 'index.sqlite'}", data_dir=data))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def test_deeply_nested_json_does_not_kill_the_server(tmp_path: Path) -> None:
    """One POST of deeply nested JSON, well under the body limit, to the API served by uvicorn: it is refused and
    the server keeps answering."""
    port = free_port()
    script = tmp_path / "serve.py"
    script.write_text(_SERVER)
    server = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(port)], cwd=Path.cwd(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/api/v1/filing-policy"), "the server to start", timeout=60)
        depth = 1_000_000
        assert 2 * depth < MAX_BODY_BYTES
        try:
            answer: httpx.Response | None = httpx.post(f"{base}{FILINGS}", content="[" * depth + "]" * depth,
                                                       headers={"content-type": "application/json"}, timeout=30)
        except httpx.HTTPError:
            answer = None
        try:  # a process killed by the request is gone a moment after its connection
            died: int | None = server.wait(3)
        except subprocess.TimeoutExpired:
            died = None
        assert died is None, f"the server died (exit status {died})"
        assert answer is not None and answer.status_code == 400, answer
        assert answer.json()["error"]["code"] == "invalid_json"
        assert _answers(f"{base}/api/v1/filing-policy")
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_numbers_given_as_strings(client: TestClient, cw: CitizenWorld) -> None:
    """A code or a count given as a JSON string is read as the number it spells — the signature binds the value,
    so the record relayed is the one signed —, never as another; a coordinate given as a JSON number is refused:
    it would be re-formatted, and the content hash is of the text as the citizen gave it."""
    body, _ = body_of(cw)
    as_strings = {**body, "filing": {**body["filing"], "channel": str(body["filing"]["channel"])},
                  "work": str(body["work"])}
    out = accepted(client, FILINGS, as_strings)
    assert out["status"] == "recorded"
    block = cw.chain.w3.eth.get_transaction_receipt(out["tx_hash"])["blockNumber"]
    [entry] = [e for e in cw.ledger.entries(from_block=block, to_block=block) if e.seq == out["seq"]]
    assert isinstance(entry.record, Filing) and entry.record.channel == body["filing"]["channel"]
    assert out["record_hash"] == "0x" + entry.record_hash.hex()
    spelled, _ = body_of(cw)
    refused(client, cw, FILINGS, {**spelled, "filing": {**spelled["filing"], "channel": "three"}}, 422,
            "invalid_body")
    refused(client, cw, FILINGS, {**spelled, "filing": {**spelled["filing"], "channel": 3.5}}, 422, "invalid_body")
    point, _ = body_of(cw, lat="31.2304", long="121.4737")
    answer = refused(client, cw, FILINGS, {**point, "content": {**point["content"], "lat": 31.2304}}, 422,
                     "invalid_body")
    assert answer["error"]["field"] == "content.lat"


def test_unicode_is_hashed_as_given_never_normalised(client: TestClient, cw: CitizenWorld) -> None:
    """The same words in NFC and NFD are different texts: each hashes as given. Content signed in NFD and sent in
    NFC (a proxy, a framework that normalises) is refused; sent as signed it is recorded and kept byte for byte,
    invisible and direction characters included."""
    nfd = unicodedata.normalize("NFD", "Café Noël — 路灯") + "\u200b\u202e\u2028\ufeff"
    nfc = unicodedata.normalize("NFC", nfd)
    assert nfd != nfc
    body, code = body_of(cw, description=nfd, address=unicodedata.normalize("NFD", "Rue de l'Église 3"))
    normalised = {**body, "content": {**body["content"], "description": nfc}}
    refused(client, cw, FILINGS, normalised, 422, "content_mismatch")
    out = accepted(client, FILINGS, body)
    assert out["status"] == "recorded"
    stored = CitizenFiles(cw.data_dir / "relay").filing(receipts.address(code), filing_of(body)[0].content_hash)
    assert stored is not None and stored.content.description == nfd
    assert stored.content.address == unicodedata.normalize("NFD", "Rue de l'Église 3")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"salt": "0x" + "11" * 31}, "salt"),
        ({"salt": "0x" + "11" * 33}, "salt"),
        ({"work": 2**64}, "work"),
        ({"work": -1}, "work"),
        ({"work": 1.5}, "work"),
        ({"work": "0x10"}, "work"),
        ({"signature": "0x" + "11" * 200}, "signature"),
    ],
)
def test_salt_work_and_signature_out_of_range_are_refused(
    client: TestClient, cw: CitizenWorld, change: dict[str, Any], field: str
) -> None:
    body, _ = body_of(cw)
    answer = refused(client, cw, FILINGS, {**body, **change}, 422, "invalid_body")
    assert answer["error"]["field"] == field



@pytest.mark.parametrize(("field", "value", "words"), [("content_hash", "0x" + "00" * 32, "content hash"),
                                                       ("receipt", "0x" + "00" * 20, "receipt")])
def test_a_filing_the_record_refuses_is_answered_with_the_reason(
    client: TestClient, cw: CitizenWorld, field: str, value: str, words: str
) -> None:
    body, _ = body_of(cw)
    answer = refused(client, cw, FILINGS, {**body, "filing": {**body["filing"], field: value}}, 422, "invalid_body")
    assert words in answer["error"]["message"] and "pydantic" not in answer["error"]["message"], answer


def test_a_filing_signed_in_another_domain_is_refused(client: TestClient, cw: CitizenWorld) -> None:
    """The filing's key signs in the filings module's domain; the same record signed in the ledger's own domain
    (a replay from another contract or chain looks the same) recovers to another key."""
    body, code = body_of(cw)
    record, _ = filing_of(body)
    elsewhere = Account.sign_typed_data(receipts.private_key(code),
                                        full_message=citizen_typed_data(cw.ledger.domain(), record)).signature
    refused(client, cw, FILINGS, {**body, "signature": "0x" + bytes(elsewhere).hex()}, 403, "forged_signature")


def test_a_riff_file_that_is_not_webp_is_refused_as_a_photo(client: TestClient, cw: CitizenWorld) -> None:
    wave = b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + bytes(24)
    with pytest.raises(ValueError, match="not image/webp"):
        attachment_of("image/webp", wave)
    named = Attachment(media_type="image/webp", sha256=hashlib.sha256(wave).hexdigest(), size=len(wave))
    content = FilingContent(description="a photo, supposedly", attachments=[named])
    body = body_with_content(cw, content, [("image/webp", wave)])
    refused(client, cw, FILINGS, body, 422, "content_mismatch")


def test_thousands_of_answers_are_refused_quickly(client: TestClient, cw: CitizenWorld) -> None:
    """Just under the body limit of answers to questions (the content allows 20): refused as invalid, without
    minutes of validation in a worker."""
    body, _ = body_of(cw)
    attributes = {f"q{i}": ["y"] for i in range(180_000)}
    document = json.dumps({**body, "content": {**body["content"], "attributes": attributes}})
    assert len(document) < MAX_BODY_BYTES
    started = time.monotonic()
    refused(client, cw, FILINGS, document, 422, "invalid_body")
    assert time.monotonic() - started < 10  # about a second here: the whole dict is validated before its size


# ---------------------------------------------------------------------- a hostile agency


def test_flooding_one_agency_exhausts_its_daily_budget_only(cw: CitizenWorld, tmp_path: Path) -> None:
    """Filings at one agency up to its daily budget, then refused (429, Retry-After); another agency's filers are
    still served."""
    with app_on(cw, tmp_path, filings_per_agency_per_day=2) as client:
        for _ in range(2):
            assert accepted(client, FILINGS, body_of(cw)[0])["status"] == "recorded"
        answer = refused(client, cw, FILINGS, body_of(cw)[0], 429, "filing_budget_exhausted")
        assert answer["error"]["message"]
        late = client.post(FILINGS, json=body_of(cw)[0])
        assert late.status_code == 429 and 0 < int(late.headers["retry-after"]) <= 86_401
        other = accepted(client, FILINGS, body_of(cw, agency=cw.world.other_agency_id)[0])
        assert other["status"] == "recorded" and other["agency_id"] == "SH-WATER"


def test_the_waiting_queue_is_bounded_per_agency(cw: CitizenWorld, tmp_path: Path) -> None:
    """With nothing sent (the lane stopped), one agency's waiting filings reach its bound and are refused; the other
    agency's filing is still taken."""
    store = RelayStore(tmp_path, cw.ledger, synchronous="NORMAL", filing_queue_per_agency=2)
    try:
        for _ in range(2):
            body, _ = body_of(cw)
            assert store.submit_filing(signed_filing(cw, body), *stored_parts(body))[1]
        body, _ = body_of(cw)
        with pytest.raises(RelayRefused) as full:
            store.submit_filing(signed_filing(cw, body), *stored_parts(body))
        assert full.value.code == "filing_queue_full" and full.value.details["retry_after"] > 0
        other, _ = body_of(cw, agency=cw.world.other_agency_id)
        assert store.submit_filing(signed_filing(cw, other), *stored_parts(other))[1]
    finally:
        store.close()


def test_concurrent_submissions_cannot_pass_the_bounds(cw: CitizenWorld, tmp_path: Path) -> None:
    """Many threads at once: the same signed filing is stored once; filings with one key, however many, one; a
    daily budget of three takes three."""
    store = RelayStore(tmp_path, cw.ledger, synchronous="NORMAL", filings_per_agency_per_day=3,
                       filing_queue_per_agency=100)
    try:
        def attempt(body: dict[str, Any]) -> str:
            try:
                return "created" if store.submit_filing(signed_filing(cw, body), *stored_parts(body))[1] else "same"
            except RelayRefused as exc:
                return exc.code

        body, code = body_of(cw)
        with ThreadPoolExecutor(8) as pool:
            assert sorted(pool.map(attempt, [body] * 8)) == ["created"] + ["same"] * 7
            one_key = [body_of(cw, code=code, description=f"version {i}")[0] for i in range(8)]
            assert sorted(pool.map(attempt, one_key)) == ["receipt_in_use"] * 8
            flood = [body_of(cw)[0] for _ in range(8)]
            assert sorted(pool.map(attempt, flood)) == ["created"] * 2 + ["filing_budget_exhausted"] * 6
    finally:
        store.close()


def test_an_agency_filing_with_its_own_issued_receipt_key_is_refused(client: TestClient, cw: CitizenWorld) -> None:
    """A filing made with a key the agency issued for a printed receipt would count as a citizen's: the key is used,
    so the API refuses it and the module reverts it sent directly."""
    printed = cw.open("agency-files-with-its-key")
    assert printed is not None
    body, _ = body_of(cw, code=printed, description="a filing the agency wrote itself")
    refused(client, cw, FILINGS, body, 409, "receipt_in_use")
    with pytest.raises(Exception, match="ReceiptKeyAlreadyUsed"):
        cw.ledger.submit_filing(cw.world.signer, *filing_of(body))


def test_a_claim_of_a_citizen_held_case_is_refused(client: TestClient, cw: CitizenWorld) -> None:
    """A case opened from an accepted filing is citizen-held from the start: its filer cannot claim it again (the
    module says so), and the agency, holding no key of it, cannot claim it at all."""
    body, code = body_of(cw, description="a filing the agency accepts")
    seq = accepted(client, FILINGS, body)["seq"]
    cw.ledger.answer_filing(cw.world.signer, FilingAnswer(filing_seq=seq, decision=FilingDecision.ACCEPTED))
    case = filed_case_id(seq)
    assert cw.ledger.citizen_held(cw.world.agency_id, case)
    by_filer, _ = claim_body(cw.ledger, cw.world.agency_id, case, code)
    refused(client, cw, CLAIMS, by_filer, 409, "already_claimed")
    agency_key = receipts.new_code()
    by_agency, _ = claim_body(cw.ledger, cw.world.agency_id, case, agency_key)
    refused(client, cw, CLAIMS, by_agency, 403, "forged_signature")


def test_a_second_claim_or_filing_while_the_first_is_in_flight_is_refused(cw: CitizenWorld, tmp_path: Path) -> None:
    """While a claim of a case waits to be sent, another claim of it (to another key) is refused; while a filing
    with a key waits, another filing with that key is refused; neither is stored."""
    printed = cw.open("claimed-twice-in-flight")
    assert printed is not None
    case = receipt_case_id("claimed-twice-in-flight")
    with held_citizens_lane(cw, tmp_path) as (_, writer), app_on(cw, tmp_path, extra=NO_WAIT) as client:
        first, _ = claim_body(cw.ledger, cw.world.agency_id, case, printed)
        claim = accepted(client, CLAIMS, first)
        second, _ = claim_body(cw.ledger, cw.world.agency_id, case, printed)
        answer = refused(client, cw, CLAIMS, second, 409, "already_claimed")
        assert answer["error"]["submission"] == claim["id"]
        filing, code = body_of(cw)
        filed = accepted(client, FILINGS, filing)
        same_key, _ = body_of(cw, code=code, description="the same key, other words")
        answer = refused(client, cw, FILINGS, same_key, 409, "receipt_in_use")
        assert answer["error"]["submission"] == filed["id"]
        writer.flush()  # and the first of each goes out
        assert status_of(client, CLAIMS, claim["id"])["status"] == "recorded"
        assert status_of(client, f"{FILINGS}/submissions", filed["id"])["status"] == "recorded"


# ---------------------------------------------------------------------- a dishonest or faulty operator


@contextmanager
def outbox_fails_once(client: TestClient) -> Iterator[list[str]]:
    """The citizens' outbox raises on the next add (a process killed between storing the envelope and queueing it
    leaves the same: a stored envelope with no rows)."""
    outbox = client.app.state.agency_writes.store.citizen_outbox  # type: ignore[attr-defined]
    original = outbox.add_many
    failures: list[str] = []

    def add_many(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append("raised")
            raise OutboxError("disk I/O error (injected)")
        return original(*args, **kwargs)

    outbox.add_many = add_many
    try:
        yield failures
    finally:
        outbox.add_many = original


def test_a_filing_stored_but_not_queued_goes_out_before_the_next(cw: CitizenWorld, tmp_path: Path) -> None:
    with app_on(cw, tmp_path) as client:
        assert accepted(client, FILINGS, body_of(cw)[0])["status"] == "recorded"  # the relay is up
        orphan, _ = body_of(cw, description="stored, then the process died")
        with outbox_fails_once(client) as failures:
            answer = client.post(FILINGS, json=orphan)
        # the filing is stored durably: the filer is told it is pending, and it is queued as soon as the outbox takes it
        assert failures and answer.status_code == 202 and answer.json()["status"] in ("pending", "recorded")
        orphan_id = signed_filing(cw, orphan).key
        following = accepted(client, FILINGS, body_of(cw)[0])
        final = settled_status(client, f"{FILINGS}/submissions", orphan_id)
        following = settled_status(client, f"{FILINGS}/submissions", following["id"])
    assert final["status"] == following["status"] == "recorded"
    assert final["seq"] < following["seq"]  # in submission order


def test_a_filing_stored_but_not_queued_goes_out_when_its_filer_retries(cw: CitizenWorld, tmp_path: Path) -> None:
    with app_on(cw, tmp_path) as client:
        assert accepted(client, FILINGS, body_of(cw)[0])["status"] == "recorded"
        orphan, _ = body_of(cw, description="stored, then the process died")
        with outbox_fails_once(client):
            client.post(FILINGS, json=orphan)
        retry = client.post(FILINGS, json=orphan)  # what a filer (or the page) does after an error
        assert retry.status_code in (202, 409), retry.text
        final = settled_status(client, f"{FILINGS}/submissions", signed_filing(cw, orphan).key, timeout=5)
        assert final["status"] == "recorded"


def _damage(statement: str) -> Any:
    return lambda db, key: db.execute(statement, (key,))


def _edit_content(change: Any) -> Any:
    def edit(db: sqlite3.Connection, key: str) -> None:
        [text] = db.execute("SELECT content FROM filing_contents WHERE key = ?", (key,)).fetchone()
        db.execute("UPDATE filing_contents SET content = ? WHERE key = ?", (change(text), key))
    return edit


def _moved_point(text: str) -> str:
    data = json.loads(text)
    data.update(lat="95.0", long="1.0")
    return json.dumps(data)


_DAMAGE_SHOWN = "CitizenFiles.filing checks only the content against the content hash:"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_edit_content(lambda t: t.replace("dark", "lit")), id="description-edited"),
        pytest.param(_damage("UPDATE filing_contents SET content_hash = '0x' || substr(content_hash, 3, 62) || 'ff' "
                             "WHERE key = ?"), id="hash-edited"),
        pytest.param(_edit_content(lambda t: t[:-5]), id="content-truncated"),
        pytest.param(_edit_content(_moved_point), id="content-invalid"),
        pytest.param(_damage("UPDATE filing_contents SET salt = substr(salt, 1, 31) WHERE key = ?"),
                     id="salt-truncated"),
        pytest.param(_damage("UPDATE filing_photos SET data = X'89504E470D0A1A0A00' WHERE key = ?"),
                     id="photo-replaced"),
        pytest.param(_damage("UPDATE filing_photos SET media_type = 'text/html' WHERE key = ?"),
                     id="photo-type-changed"),
        pytest.param(_damage("DELETE FROM filing_photos WHERE key = ?"), id="photo-lost"),
    ],
)
def test_a_damaged_private_store_shows_nothing_rather_than_a_lie(cw: CitizenWorld, tmp_path: Path, damage: Any) -> None:
    body, code = body_of(cw, address="88 Xueyuan Road", contact={"phone": "138 0000 0000"}, photos=[png(9)])
    store = RelayStore(tmp_path, cw.ledger, synchronous="NORMAL")
    try:
        status, created = store.submit_filing(signed_filing(cw, body), *stored_parts(body))
        assert created
    finally:
        store.close()
    files = CitizenFiles(tmp_path)
    content_hash = filing_of(body)[0].content_hash
    intact = files.filing(receipts.address(code), content_hash)
    assert intact is not None and intact.photos == (("image/png", png(9)),)
    db = sqlite3.connect(str(tmp_path / "relays.sqlite"), isolation_level=None)
    try:
        damage(db, status.key)
    finally:
        db.close()
    try:
        shown = files.filing(receipts.address(code), content_hash)
    except Exception as exc:  # noqa: BLE001 - the failure itself is what this test reports
        quoted = [part for part in ("Xueyuan", "138 0000") if part in str(exc)]
        raise AssertionError(f"CitizenFiles.filing raised {type(exc).__name__} instead of returning None"
                             + (f" (its message quotes the content: {quoted})" if quoted else "")) from None
    assert shown is None


# ---------------------------------------------------------------------- privacy


SECRET = "窨井盖丢了 near the school gate — Ms Wang"
PHONE = "+86 139 1234 5678"


def test_no_content_in_any_log_record_for_accepted_and_refused_filings(
    client: TestClient, cw: CitizenWorld, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        body, code = body_of(cw, description=SECRET, contact={"phone": PHONE, "email": "wang@example.cn"},
                             address="88 Xueyuan Road")
        assert accepted(client, FILINGS, body)["status"] == "recorded"
        client.post(FILINGS, json=body)  # duplicate
        client.post(FILINGS, json={**body, "content": {**body["content"], "description": SECRET + "!"}})  # mismatch
        again, _ = body_of(cw, code=code, description=SECRET, contact={"phone": PHONE})
        client.post(FILINGS, json=again)  # receipt_in_use
        forged, _ = body_of(cw, description=SECRET, contact={"phone": PHONE},
                            sign_with=receipts.private_key(receipts.new_code()))
        client.post(FILINGS, json=forged)
        invalid = {**body, "content": {**body["content"], "contact": {"home_address": PHONE}, "lat": SECRET}}
        client.post(FILINGS, json=invalid)
        too_long = {**body, "content": {**body["content"], "description": SECRET * 400}}
        client.post(FILINGS, json=too_long)
        client.post(FILINGS, content=json.dumps(body)[:-3], headers={"content-type": "application/json"})
    records = [r.getMessage() + repr(r.args) + (r.exc_text or "") for r in caplog.records]
    assert len(records) > 5  # the logs were captured at all
    for needle in (SECRET, PHONE, "139 1234", "wang@example", "Xueyuan", "Ms Wang"):
        assert not [r for r in records if needle in r], needle


def test_no_content_in_the_relay_envelope_or_the_outbox(cw: CitizenWorld, tmp_path: Path) -> None:
    with app_on(cw, tmp_path) as client:
        body, _ = body_of(cw, description=SECRET, contact={"phone": PHONE}, address="88 Xueyuan Road",
                          photos=[png(11)])
        out = accepted(client, FILINGS, body)
        assert out["status"] == "recorded"
        for other in (client.get(f"{FILINGS}/submissions/{out['id']}").text, json.dumps(out)):
            assert SECRET not in other and PHONE not in other
    db = sqlite3.connect(str(tmp_path / "relay" / "relays.sqlite"))
    try:
        [(envelope, signature)] = db.execute("SELECT records_json, signature FROM relays WHERE key = ?",
                                             (out["id"],)).fetchall()
    finally:
        db.close()
    # the envelope is the signed record: the content's hash and public codes, nothing of what the filer wrote
    [record] = json.loads(envelope)
    assert set(record) == {"agency_id", "commitment_id", "district", "channel", "content_hash", "receipt"}
    assert record["content_hash"] == body["filing"]["content_hash"] and len(signature) == 65
    for needle in (SECRET, PHONE, "Xueyuan"):
        assert needle not in envelope
    outbox_bytes = b"".join(p.read_bytes() for p in (tmp_path / "relay").glob(LANES[CITIZEN_LANE][0] + "*"))
    assert outbox_bytes  # the outbox (and its journal) was written
    for raw in (SECRET.encode(), PHONE.encode(), b"Xueyuan", png(11)):
        assert raw not in outbox_bytes
