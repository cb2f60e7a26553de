"""The agency's intake on the command line, end to end on a real node: citizens file (signed with their own keys,
relayed), the agency lists and shows its filings from the index, accepts one — its case opens, named ``filing:SEQ``,
its clock from the filing — and closes it, rejects another with a reason; what the module would refuse (another
agency's filing, a filing answered already, events of a filed case not accepted) is refused before anything is sent,
with a clear message."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from ledger import receipts
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
from ledger.cli import app
from ledger.dev import devnet
from ledger.dev.node import AnvilNode
from ledger.filings import FilingContent, attachment_of
from ledger.records import Channel, Filing, FilingStatus, ReceiptCaseStatus, filed_case_id, short_code, text_hash
from ledger.relay.store import RelayStore
from ledger.relay.verify import check_citizen_signature
from tests.support.cli import iso
from tests.support.filing_bodies import png

runner = CliRunner()
KEY = ("--key", "roads")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("intake-data")
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        keys = KeyStore(data / "keys")
        ledger, _ = devnet.ensure_ledger(chain, data, keys)
        roads, water = keys.get_or_create("roads"), keys.get_or_create("water")
        chain.fund(roads.address)
        chain.fund(water.address)
        e = {"data": data, "url": node.url, "chain": chain, "ledger": ledger, "relayer": chain.new_account(),
             "start": chain.w3.eth.get_block("latest")["timestamp"]}
        for agency, key in (("SH-ROADS", roads), ("SH-WATER", water)):
            cli(e, "agency", "register", agency, "--jurisdiction", "CN-SH", "--name-zh", "局", "--name-en", agency)
            cli(e, "agency", "authorize", agency, key.address)
        for key in ("roads", "water"):  # the same commitment code, each agency's own
            cli(e, "commitment", "publish", "LIGHT-48H", "--service-code", "STREETLIGHT", "--name-zh", "路灯维修",
                "--name-en", "Streetlight repair", "--deadline", "48", "--unit", "hours", "--target", "95",
                "--terms", "A dark streetlight is repaired within 48 hours.", "--at", iso(e, -7200),
                "--valid-from", iso(e, -7200), "--key", key)
        yield e


def cli(env: Any, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--rpc-url", env["url"], "--data-dir", str(env["data"]), *args])
    assert result.exit_code == code, result.output
    return result.output


def flat(output: str) -> str:
    return " ".join(output.split())


def file(env: Any, agency: str = "SH-ROADS") -> tuple[int, str]:
    """A citizen files a request with a key of their own; the filing's seq and the key's code."""
    ledger: Ledger = env["ledger"]
    code = receipts.new_code()
    record = Filing(agency_id=short_code(agency), commitment_id=short_code("LIGHT-48H"), district=short_code("PUDONG"),
                    channel=Channel.WEB, content_hash=text_hash(f"salt:{code}"), receipt=receipts.address(code))
    ledger.submit_filing(env["relayer"], record, ledger.sign_filing(receipts.private_key(code), record))
    return ledger.entry_count() - 1, code


def test_the_agency_lists_shows_accepts_and_closes_a_filed_case(env: Any) -> None:
    seq, code = file(env)
    filed_at = env["ledger"].filing_state(seq).filed_at
    cli(env, "sync", "--confirmations", "0")
    listed = flat(cli(env, "intake", "list", "--agency", "SH-ROADS"))
    assert str(seq) in listed and "awaiting" in listed and "PUDONG" in listed
    shown = flat(cli(env, "intake", "show", str(seq), "--agency", "SH-ROADS"))
    assert receipts.address(code) in shown and env["relayer"].address in shown and "awaiting" in shown
    assert "only their hash is" in shown and "0x" + text_hash(f"salt:{code}").hex() in shown
    # events of the filed case before it is accepted are refused: its case is not open
    refused = flat(cli(env, "case", "close", f"filing:{seq}", "fulfilled", *KEY, code=1))
    assert "not answered yet" in refused and "intake accept" in refused

    accepted = flat(cli(env, "intake", "accept", str(seq), "--note", "on our list", *KEY))
    case_id = filed_case_id(seq)
    assert "recorded as entry" in accepted and "0x" + case_id.hex() in accepted and f"filing:{seq}" in accepted
    ledger: Ledger = env["ledger"]
    assert ledger.filing_state(seq).status is FilingStatus.ACCEPTED
    tracked = ledger.receipt_case(short_code("SH-ROADS"), case_id)
    assert tracked.receipt == receipts.address(code) and tracked.status is ReceiptCaseStatus.OPEN
    # once answered, never again — refused before anything is sent
    again = flat(cli(env, "intake", "accept", str(seq), *KEY, code=1))
    assert "answered already (accepted)" in again
    count = ledger.entry_count()
    cli(env, "case", "close", f"filing:{seq}", "fulfilled", *KEY)
    assert ledger.entry_count() == count + 1
    assert ledger.receipt_case(short_code("SH-ROADS"), case_id).status is ReceiptCaseStatus.FULFILLED

    cli(env, "sync", "--confirmations", "0")
    listed = flat(cli(env, "intake", "list", "--agency", "SH-ROADS", "--all"))
    assert "accepted" in listed and "at seq" in listed  # (the table wraps the cell)
    assert str(seq) not in flat(cli(env, "intake", "list", "--agency", "SH-ROADS"))
    assert filed_at > 0


def test_the_agency_rejects_a_filing_with_a_reason(env: Any) -> None:
    seq, _ = file(env)
    bad = flat(cli(env, "intake", "reject", str(seq), "--reason", "duplicate", "--text", "seen it", *KEY, code=2))
    assert "--duplicate-of" in bad
    bad = flat(cli(env, "intake", "reject", str(seq), "--reason", "spam", "--text", " ", *KEY, code=2))
    assert "--text must say why" in bad
    done = flat(cli(env, "intake", "reject", str(seq), "--reason", "out-of-scope", "--text", "a private road", *KEY))
    assert "recorded as entry" in done and "0x" + text_hash("a private road").hex() in done
    assert env["ledger"].filing_state(seq).status is FilingStatus.REJECTED
    other, _ = file(env)
    duplicate = flat(cli(env, "intake", "reject", str(other), "--reason", "duplicate", "--text", "reported before",
                         "--duplicate-of", f"filing:{seq}", *KEY))
    assert "recorded as entry" in duplicate
    cli(env, "sync", "--confirmations", "0")
    shown = flat(cli(env, "intake", "show", str(other), "--agency", "SH-ROADS"))
    assert "duplicate at seq" in shown and "0x" + filed_case_id(seq).hex() in shown


def test_another_agencys_filing_is_not_answered(env: Any) -> None:
    seq, _ = file(env, "SH-WATER")
    refused = flat(cli(env, "intake", "accept", str(seq), *KEY, code=1))
    assert "another agency's filing" in refused
    assert env["ledger"].filing_state(seq).status is FilingStatus.FILED
    nothing = flat(cli(env, "intake", "accept", "999999", *KEY, code=1))
    assert "no such filing" in nothing
    cli(env, "sync", "--confirmations", "0")
    assert "no filing" in flat(cli(env, "intake", "show", str(seq), "--agency", "SH-ROADS", code=1))


def test_the_agency_reads_what_the_citizen_wrote_and_its_photo(env: Any, tmp_path: Any) -> None:
    """What the filer wrote is in this service's private store (as ``POST /api/v1/filings`` stores it), shown by
    ``intake show`` only when it hashes to the filing's content hash; the photo is written to a file only its owner
    reads."""
    ledger: Ledger = env["ledger"]
    code, salt, photo = receipts.new_code(), bytes(range(32)), png(7)
    content = FilingContent(description="井盖丢了 — the manhole cover at gate 3 is gone",
                            address="Gate 3, Century Park", lat="31.2183", long="121.5440",
                            contact={"phone": "138 0000 1111"},
                            attributes={"danger": ["yes"]}, attachments=[attachment_of("image/png", photo)])
    record = Filing(agency_id=short_code("SH-ROADS"), commitment_id=short_code("LIGHT-48H"),
                    district=short_code("PUDONG"), channel=Channel.WEB, content_hash=content.content_hash(salt),
                    receipt=receipts.address(code))
    signature = ledger.sign_filing(receipts.private_key(code), record)
    signed = check_citizen_signature(record, signature, ledger.filings_domain())
    relay = RelayStore(env["data"] / "relay", ledger)
    try:
        relay.submit_filing(signed, content, salt, [photo])
    finally:
        relay.close()
    seq = ledger.entry_count()
    ledger.submit_filing(env["relayer"], record, signature)  # sent by someone; the content is found by its hash
    cli(env, "sync", "--confirmations", "0")
    shown = cli(env, "intake", "show", str(seq), "--agency", "SH-ROADS")
    assert "井盖丢了 — the manhole cover at gate 3 is gone" in shown and "Gate 3, Century Park" in shown
    assert "31.2183, 121.5440" in shown and "138 0000 1111" in shown and "yes" in flat(shown)
    assert "photo 1" in shown and "image/png" in shown
    target = tmp_path / "photo.png"
    cli(env, "intake", "photo", str(seq), "1", "--agency", "SH-ROADS", "-o", str(target))
    assert target.read_bytes() == photo and target.stat().st_mode & 0o777 == 0o600
    assert "has 1 photo" in flat(cli(env, "intake", "photo", str(seq), "2", "--agency", "SH-ROADS", "-o",
                                     str(target), code=1))
    # a filing whose content this service does not hold (filed elsewhere) says so
    other, _ = file(env)
    cli(env, "sync", "--confirmations", "0")
    assert "not held by this service" in cli(env, "intake", "show", str(other), "--agency", "SH-ROADS")


def test_an_intake_token_is_made_with_the_agency_s_key(env: Any) -> None:
    from ledger.chain.access import read_token

    made = cli(env, "intake", "token", "--hours", "2", *KEY).strip()
    ledger: Ledger = env["ledger"]
    access = read_token(made, ledger.chain.chain_id, ledger.address)
    assert access.agency_id == "SH-ROADS" and access.expires_at - access.issued_at == 7200
    assert access.signer == KeyStore(env["data"] / "keys").get_or_create("roads").address
    assert "at most 24 hours" in flat(cli(env, "intake", "token", "--hours", "25", *KEY, code=2))


def test_a_pairing_code_lets_the_citizen_s_phone_file_at_the_desk(env: Any, tmp_path: Any) -> None:
    shown = cli(env, "intake", "pair", "--agency", "SH-ROADS", "--commitment", "LIGHT-48H", "--district", "PUDONG",
                "--page-url", "https://ledger.example.gov", "--svg", str(tmp_path / "pair.svg"))
    link = "https://ledger.example.gov/#/file/SH-ROADS?commitment=LIGHT-48H&district=PUDONG&channel=counter"
    assert link in flat(shown) and "▄" in shown  # the QR code, drawn in the terminal
    assert (tmp_path / "pair.svg").read_text().startswith("<?xml")
    assert "receipt" not in link  # no code: the phone makes the key and files
    bad = flat(cli(env, "intake", "pair", "--agency", "SH ROADS", "--commitment", "X", "--district", "Y", code=2))
    assert "printable ASCII" in bad
    bad_url = flat(cli(env, "intake", "pair", "--agency", "SH-ROADS", "--commitment", "X", "--district", "Y",
                       "--page-url", "ftp://x", code=2))
    assert "http://" in bad_url
