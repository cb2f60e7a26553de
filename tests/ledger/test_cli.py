"""The operator CLI end to end on a real node: governance, commitments, cases (with receipts, and answers to
disputes), import, outbox, sync, metrics.

Every claimed time here is explicit (``--at`` and CSV times from the chain's clock, an hour or more before its latest
block) and the metrics range is explicit too: a figure never depends on how the wall clock and the chain's clock
compare, or on the second a command happens to run in.
"""

from __future__ import annotations

import csv
import json
import re

import pytest
from eth_account import Account
from typer.testing import CliRunner

from ledger import receipts
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
from ledger.cli import app
from ledger.dev import devnet
from ledger.dev.node import AnvilNode
from ledger.importer import case_id_for
from ledger.records import CaseAction, Dispute, Rating, ReceiptCaseStatus, short_code
from tests.support.cli import code_in, iso

runner = CliRunner()
AGENCY = "SH-ROADS"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp("cli-data")
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        keys = KeyStore(data / "keys")
        ledger, _ = devnet.ensure_ledger(chain, data, keys)
        signer = keys.get_or_create("roads")
        desk2 = keys.get_or_create("roads-desk-2")
        chain.fund(signer.address)
        chain.fund(desk2.address)
        start = chain.w3.eth.get_block("latest")["timestamp"]
        yield {"data": data, "url": node.url, "signer": signer, "desk2": desk2, "chain": chain, "ledger": ledger,
               "relayer": chain.new_account(), "start": start}


def cli(env, *args: str, code: int = 0):
    result = runner.invoke(app, ["--rpc-url", env["url"], "--data-dir", str(env["data"]), *args])
    assert result.exit_code == code, result.output
    return result.output


def flat(output: str) -> str:
    """The output with Rich's line wrapping undone, for looking up messages."""
    return " ".join(output.split())


def salt(env) -> bytes:
    return bytes.fromhex((env["data"] / "keys" / f"case-salt-{AGENCY}").read_text().strip())


KEY = ("--key", "roads")


@pytest.fixture(scope="module")
def agency(env):
    cli(env, "agency", "register", AGENCY, "--jurisdiction", "CN-SH",
        "--name-zh", "路政局", "--name-en", "Roads Office")
    cli(env, "agency", "authorize", AGENCY, env["signer"].address)
    cli(env, "agency", "authorize", AGENCY, env["desk2"].address)
    out = cli(env, "commitment", "publish", "LIGHT-48H", "--service-code", "STREETLIGHT", "--name-zh", "路灯维修",
              "--name-en", "Streetlight repair", "--deadline", "48", "--unit", "hours", "--target", "95",
              "--terms", "A dark streetlight is repaired within 48 hours.", "--at", iso(env, -7200),
              "--valid-from", iso(env, -7200), *KEY)
    assert "recorded as entry" in out
    return AGENCY


def test_operator_flow(env, agency, tmp_path):
    cli(env, "calendar", "publish", "2026", "--holidays", "2026-10-01,2026-10-02", "--workdays", "2026-09-27",
        "--at", iso(env, -7000), *KEY)
    cli(env, "case", "open", "R-1", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel", "hotline",
        "--no-receipt", "--at", iso(env, -5400), *KEY)
    cli(env, "case", "update", "R-1", "accepted", "--at", iso(env, -5000), *KEY)
    cli(env, "case", "close", "R-1", "fulfilled", "--details", "lamp replaced", "--at", iso(env, -4000), *KEY)

    # a refused write names the contract's error and changes nothing
    out = cli(env, "case", "open", "R-2", "--commitment", "NO-SUCH", "--district", "EAST", "--channel", "web",
              "--no-receipt", "--at", iso(env, -3900), *KEY, code=1)
    assert "UnknownCommitment" in out

    csv_path = tmp_path / "cases.csv"
    csv_path.write_text(
        "case,action,occurred_at,commitment,district,channel\n"
        f"R-3,opened,{iso(env, -3600)},LIGHT-48H,WEST,app\n"
        f"R-3,fulfilled,{iso(env, -3000)},,,\n"
        "R-4,opened,2026-11-01T09:00:00,LIGHT-48H,WEST,app\n"
        f"R-5,opened,{iso(env, -3600)},RETIRED-OR-UNKNOWN,WEST,app\n"
    )
    out = cli(env, "case", "import", str(csv_path), *KEY, code=1)
    assert "has no zone" in out and "UnknownCommitment" in out
    assert import_summary(out) == {"rows": 4, "recorded": 2, "refused before sending": 1, "refused by the ledger": 1}
    out = cli(env, "case", "import", str(csv_path), *KEY, code=1)  # again: nothing recorded twice
    assert import_summary(out)["recorded"] == 2
    assert "failed" in cli(env, "outbox", "status", *KEY)

    out = cli(env, "sync", "--confirmations", "0")
    assert "indexed" in out
    window = ("--from", iso(env, -6000), "--to", iso(env, -2000))
    figures = json.loads(cli(env, "metrics", "--by", "all", "--json", *window))["all"]
    assert figures["cases_opened"] == 2 and figures["fulfilled"] == 2
    by_commitment = json.loads(cli(env, "metrics", "--by", "commitment", "--json", *window))
    assert by_commitment[f"{AGENCY}/LIGHT-48H"]["cases_opened"] == 2
    assert "Civic Ledger metrics" in cli(env, "metrics", *window)


def import_summary(output: str) -> dict[str, int]:
    """The numbers of the import's summary table, by column."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if "rows" in line and "recorded" in line)
    names = [c.strip() for c in re.split(r"[┃│|]", lines[header]) if c.strip()]
    values = next(line for line in lines[header + 1 :] if re.search(r"\d", line))
    numbers = [int(c) for c in re.split(r"[┃│|]", values) if c.strip()]
    # column titles may wrap onto a second line; match on the first words
    keys = ["rows", "recorded", "refused before sending", "refused by the ledger", "receipts"]
    return {key: number for key, number in zip(keys, numbers, strict=False)} if len(names) >= 4 else {}


def test_case_open_gives_a_receipt_the_citizen_can_use(env, agency):
    ledger: Ledger = env["ledger"]
    out = cli(env, "case", "open", "LAMP-7", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel",
              "counter", "--at", iso(env, -1800), "--page-url", "https://ledger.example.org/", *KEY)
    code = code_in(out)
    link = f"https://ledger.example.org/#/receipt/{code}"
    assert link in out
    case_id = case_id_for(salt(env), AGENCY, "LAMP-7", receipt=True)
    state = ledger.receipt_case(short_code(AGENCY), case_id)
    assert state.status is ReceiptCaseStatus.OPEN and state.receipt == receipts.address(code)

    folder = env["data"] / "receipts"
    page = (folder / "receipt-LAMP-7.html").read_text()
    assert code.replace("-", " ") in page and link in page
    assert "路政局" in page and "Roads Office" in page and "路灯维修" in page and "48小时内" in page
    assert "唯一凭证" in page and "only way to rate or dispute" in page
    assert "<svg" in page and "http" not in page.replace(link, "").replace("http://www.w3.org/2000/svg", "")
    assert (folder / "receipt-LAMP-7.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "receipt-LAMP-7.svg").read_text().lstrip().startswith("<?xml")
    for suffix in ("html", "svg", "png"):
        assert (folder / f"receipt-LAMP-7.{suffix}").stat().st_mode & 0o077 == 0
    # the code is nowhere the service keeps things: not in the outbox, the keys or the index
    cli(env, "sync", "--confirmations", "0")
    plain = receipts.normalize(code).encode()
    for path in env["data"].rglob("*"):
        if path.is_file() and folder not in path.parents:
            data = path.read_bytes()
            assert plain not in data and code.encode() not in data, path

    # later events find the flagged case: from this desk (its outbox remembers) and another (the ledger knows)
    cli(env, "case", "update", "LAMP-7", "accepted", "--at", iso(env, -1700), *KEY)
    cli(env, "case", "close", "LAMP-7", "fulfilled", "--at", iso(env, -1600), "--key", "roads-desk-2")
    state = ledger.receipt_case(short_code(AGENCY), case_id)
    assert state.status is ReceiptCaseStatus.FULFILLED and state.closures == 1

    # the citizen rates with the code; nobody else can
    rating = Rating(agency_id=short_code(AGENCY), case_id=case_id, score=5)
    ledger.submit_citizen(env["relayer"], rating, ledger.sign_citizen(receipts.private_key(code), rating))
    assert ledger.receipt_case(short_code(AGENCY), case_id).rated

    # a second receipt for the same case is refused, clearly, and the code is not shown again
    out = cli(env, "case", "open", "LAMP-7", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel",
              "counter", *KEY, code=1)
    assert "already" in out and "gets one receipt" in flat(out) and code not in out


def test_no_receipt_no_flag(env, agency):
    for reference in ("P-1", "P-2", "P-3", "P-4"):  # whatever their HMAC's top bit
        out = cli(env, "case", "open", reference, "--commitment", "LIGHT-48H", "--district", "EAST", "--channel",
                  "proactive", "--no-receipt", "--at", iso(env, -1500), *KEY)
        assert "receipt code" not in out and not (env["data"] / "receipts" / f"receipt-{reference}.html").exists()
        cli(env, "case", "close", reference, "fulfilled", "--at", iso(env, -1400), "--key", "roads-desk-2")
        entries = env["ledger"].entries()
        plain = case_id_for(salt(env), AGENCY, reference)
        assert not plain[0] & 0x80
        assert [e.record.action for e in entries if getattr(e.record, "case_id", None) == plain] == [
            CaseAction.OPENED, CaseAction.FULFILLED]


def test_answering_disputes(env, agency, tmp_path):
    ledger: Ledger = env["ledger"]
    agency_id = short_code(AGENCY)
    codes, ids = {}, {}
    for reference in ("D-1", "D-2"):
        out = cli(env, "case", "open", reference, "--commitment", "LIGHT-48H", "--district", "WEST", "--channel",
                  "app", "--at", iso(env, -1200), "--receipt-dir", str(tmp_path), *KEY)
        codes[reference] = code_in(out)
        ids[reference] = case_id_for(salt(env), AGENCY, reference, receipt=True)
        assert (tmp_path / f"receipt-{reference}.html").exists()
        cli(env, "case", "close", reference, "fulfilled", "--at", iso(env, -1100), *KEY)

    out = cli(env, "case", "respond", "D-1", "--reject-dispute", "--reason", "fixed", *KEY, code=1)
    assert "no dispute awaiting an answer" in flat(out)
    out = cli(env, "case", "respond", "D-1", "--reject-dispute", *KEY, code=2)
    assert "needs --reason" in flat(out)
    out = cli(env, "case", "respond", "D-1", "--reopen", "--reject-dispute", "--reason", "x", *KEY, code=2)
    assert "exactly one of" in flat(out)

    for reference in ("D-1", "D-2"):
        dispute = Dispute(agency_id=agency_id, case_id=ids[reference], closure=1)
        ledger.submit_citizen(env["relayer"], dispute, ledger.sign_citizen(receipts.private_key(codes[reference]),
                                                                           dispute))
        assert ledger.receipt_case(agency_id, ids[reference]).disputed

    reason = "The lamp was lit on inspection on 2026-11-20; photo 3 attached to the case file."
    out = cli(env, "case", "respond", "D-1", "--reject-dispute", "--reason", reason, *KEY)
    assert "recorded as entry" in out and "0x" + receipts_text_hash(reason) in out
    state = ledger.receipt_case(agency_id, ids["D-1"])
    assert not state.disputed and state.status is ReceiptCaseStatus.FULFILLED
    answer = [e for e in ledger.entries() if getattr(e.record, "case_id", None) == ids["D-1"]][-1]
    assert answer.record.action is CaseAction.DISPUTE_REJECTED
    assert answer.record.details_hash.hex() == receipts_text_hash(reason)

    cli(env, "case", "respond", "D-2", "--reopen", "--reason", "still dark", *KEY)
    state = ledger.receipt_case(agency_id, ids["D-2"])
    assert state.status is ReceiptCaseStatus.OPEN and not state.disputed
    out = cli(env, "case", "respond", "D-2", "--reopen", *KEY, code=1)
    assert "only a closed case can be reopened" in flat(out)
    cli(env, "case", "close", "D-2", "fulfilled", *KEY)
    assert ledger.receipt_case(agency_id, ids["D-2"]).closures == 2


def test_rectifying_a_bad_rating(env, agency, tmp_path):
    ledger: Ledger = env["ledger"]
    agency_id = short_code(AGENCY)
    codes, ids = {}, {}
    for reference in ("B-1", "B-2"):
        out = cli(env, "case", "open", reference, "--commitment", "LIGHT-48H", "--district", "WEST", "--channel",
                  "app", "--at", iso(env, -1200), "--receipt-dir", str(tmp_path), *KEY)
        codes[reference] = code_in(out)
        ids[reference] = case_id_for(salt(env), AGENCY, reference, receipt=True)
        cli(env, "case", "close", reference, "fulfilled", "--at", iso(env, -1100), *KEY)

    out = cli(env, "case", "rectify", "B-1", "--report", "new lamp", *KEY, code=1)
    assert "case B-1 has no rating to rectify (its citizen has not rated it)" in flat(out)
    out = cli(env, "case", "rectify", "B-1", "--report", " ", *KEY, code=2)
    assert "--report needs" in flat(out)
    for reference, score in (("B-1", 1), ("B-2", 4)):
        rating = Rating(agency_id=agency_id, case_id=ids[reference], score=score)
        ledger.submit_citizen(env["relayer"], rating,
                              ledger.sign_citizen(receipts.private_key(codes[reference]), rating))
    # the contract keeps no score and would take it, but only a bad rating is rectified (ledger.cases)
    out = cli(env, "case", "rectify", "B-2", "--report", "new lamp", *KEY, code=1)
    assert "case B-2 was rated 4: only a bad rating (1 to 2) is rectified" in flat(out)

    before = ledger.receipt_case(agency_id, ids["B-1"])
    report = "The lamp was replaced with an LED one, and the street's lamps are now checked every week."
    out = cli(env, "case", "rectify", "B-1", "--report", report, *KEY)
    assert "recorded as entry" in out and "0x" + receipts_text_hash(report) in out
    answer = [e for e in ledger.entries() if getattr(e.record, "case_id", None) == ids["B-1"]][-1]
    assert answer.record.action is CaseAction.RECTIFIED
    assert answer.record.details_hash.hex() == receipts_text_hash(report)
    assert ledger.receipt_case(agency_id, ids["B-1"]) == before  # the tracked state did not move

    cli(env, "case", "open", "B-3", "--commitment", "LIGHT-48H", "--district", "WEST", "--channel", "app",
        "--no-receipt", "--at", iso(env, -1200), *KEY)
    cli(env, "case", "close", "B-3", "fulfilled", "--at", iso(env, -1100), *KEY)
    out = cli(env, "case", "rectify", "B-3", "--report", "new lamp", *KEY, code=1)
    assert "case B-3 has no rating to rectify (it has no receipt, so nobody can rate it)" in flat(out)


def receipts_text_hash(text: str) -> str:
    from ledger.records import text_hash

    return text_hash(text).hex()


def test_import_with_receipts(env, agency, tmp_path):
    ledger: Ledger = env["ledger"]
    source = tmp_path / "intake.csv"
    source.write_text(
        "case,action,occurred_at,commitment,district,channel,receipt\n"
        f"I-1,opened,{iso(env, -900)},LIGHT-48H,EAST,counter,\n"
        f"I-2,opened,{iso(env, -900)},LIGHT-48H,EAST,web,yes\n"
        f"I-3,opened,{iso(env, -900)},LIGHT-48H,EAST,proactive,no\n"
        f"I-4,opened,{iso(env, -900)},NO-SUCH,EAST,counter,\n"
        f"I-1,fulfilled,{iso(env, -800)},,,,\n"
    )
    folder = tmp_path / "out"
    out = cli(env, "case", "import", str(source), "--receipts", str(folder), *KEY, code=1)
    summary = import_summary(out)
    assert summary["recorded"] == 4 and summary["refused by the ledger"] == 1 and summary["receipts"] == 2
    assert "holds the receipt codes, which are secrets" in flat(out)
    listing = folder / "intake-receipts.csv"
    assert listing.stat().st_mode & 0o077 == 0
    rows = {row["reference"]: row for row in csv.DictReader(listing.open())}
    assert set(rows) == {"I-1", "I-2"}  # I-3 asked for none; I-4's opening was refused, so its receipt went too
    assert not (folder / "receipt-I-4.html").exists() and not (folder / "receipt-I-3.html").exists()
    for reference, row in rows.items():
        assert row["link"] == f"http://127.0.0.1:8000/#/receipt/{row['code']}"
        assert (folder / f"receipt-{reference}.html").exists()
        state = ledger.receipt_case(short_code(AGENCY), case_id_for(salt(env), AGENCY, reference, receipt=True))
        assert state.receipt == receipts.address(row["code"])
    fulfilled = ledger.receipt_case(short_code(AGENCY), case_id_for(salt(env), AGENCY, "I-1", receipt=True))
    assert fulfilled.status is ReceiptCaseStatus.FULFILLED  # the receipt went out before the closing
    entries = ledger.entry_count()

    # again: nothing twice, the same codes
    out = cli(env, "case", "import", str(source), "--receipts", str(folder), *KEY, code=1)
    assert ledger.entry_count() == entries
    assert {row["reference"]: row["code"] for row in csv.DictReader(listing.open())} == {
        k: v["code"] for k, v in rows.items()}

    # a later file with later events, imported at another desk (whose outbox knows none of these cases), finds the
    # receipt cases through the ledger, asked about all references at once
    later = tmp_path / "later.csv"
    later.write_text(f"case,action,occurred_at\nI-2,rejected,{iso(env, -700)}\nI-3,withdrawn,{iso(env, -700)}\n")
    cli(env, "case", "import", str(later), "--key", "roads-desk-2")
    state = ledger.receipt_case(short_code(AGENCY), case_id_for(salt(env), AGENCY, "I-2", receipt=True))
    assert state.status is ReceiptCaseStatus.CLOSED_UNFULFILLED
    i3 = case_id_for(salt(env), AGENCY, "I-3")
    assert [e.record.action for e in ledger.entries() if getattr(e.record, "case_id", None) == i3] == [
        CaseAction.OPENED, CaseAction.WITHDRAWN]


def test_bad_input_is_a_clear_error(env, agency):
    out = cli(env, "case", "open", "R-9", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel", "web",
              code=2)
    assert "no key given" in out
    out = cli(env, "commitment", "retire", "X", "--reason", "r", "--key", "nobody", code=2)
    assert "nobody" in out
    out = cli(env, "metrics", "--from", "yesterday", code=2)
    assert "--from must be a date" in out
    out = cli(env, "case", "open", "R-9", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel", "web",
              "--page-url", "ledger.example.org", *KEY, code=2)
    assert "page URL" in out
    out = cli(env, "case", "respond", "NEVER-OPENED", "--reject-dispute", "--reason", "r", *KEY, code=1)
    assert "no receipt" in out


def test_wrong_chain_is_refused(env):
    out = cli(env, "--chain-id", "1", "agency", "revoke", env["signer"].address, code=2)
    assert "expected 1" in out


def test_governance_registers_and_revokes_an_auditor_but_never_an_agency_key(env, agency):
    auditor = Account.create().address
    assert f"registered auditor {auditor}" in flat(cli(env, "auditor", "authorize", auditor))
    assert env["ledger"].auditor_state(auditor) == (True, 0)
    out = cli(env, "auditor", "authorize", env["signer"].address, code=1)
    assert "KeyRoleConflict" in flat(out)
    assert f"revoked auditor {auditor}" in flat(cli(env, "auditor", "revoke", auditor))
    assert "UnknownAuditor" in flat(cli(env, "auditor", "revoke", auditor, code=1))
