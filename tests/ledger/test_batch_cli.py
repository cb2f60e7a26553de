"""`civic-ledger batch submit` and `batch verify` end to end on anvil: rows as for `case import`, refused rows with
their reasons (nothing anchored unless --skip-invalid), large inputs split, anchoring exactly once across reruns, a
lost answer and a transaction still in the pool; the index takes the batches from DATA_DIR/batches, and every entry's
proof checks off chain and on chain."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner
from web3.eth import Eth
from web3.exceptions import TimeExhausted

from ledger import batches
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
from ledger.cli import app
from ledger.dev import devnet
from ledger.dev.node import AnvilNode
from ledger.importer import case_id_for
from ledger.records import CaseAction, short_code
from ledger.store import schema
from ledger.store.db import default_url, open_store
from tests.support.cli import iso

runner = CliRunner()
AGENCY = "SH-HOTLINE"
KEY = ("--key", "hotline")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp("batch-cli")
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        keys = KeyStore(data / "keys")
        ledger, _ = devnet.ensure_ledger(chain, data, keys)
        signer = keys.get_or_create("hotline")
        chain.fund(signer.address)
        e = {"data": data, "url": node.url, "signer": signer, "chain": chain, "ledger": ledger}
        cli(e, "agency", "register", AGENCY, "--jurisdiction", "CN-SH", "--name-zh", "热线", "--name-en", "Hotline")
        cli(e, "agency", "authorize", AGENCY, signer.address)
        for code in ("COMPLAINT-2WD", "OLD-1WD"):
            cli(e, "commitment", "publish", code, "--service-code", code.split("-")[0], "--name-zh", "投诉",
                "--name-en", code, "--deadline", "2", "--unit", "working-days", "--target", "90", "--terms", code,
                "--at", iso(e, -86_400), "--valid-from", iso(e, -86_400), *KEY)
        cli(e, "commitment", "retire", "OLD-1WD", "--reason", "merged", "--at", iso(e, -80_000), *KEY)
        yield e


def cli(env, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--rpc-url", env["url"], "--data-dir", str(env["data"]), *args])
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())  # Rich's wrapping undone


def rows_csv(env, path, prefix: str, cases: int) -> None:
    """`cases` cases, each opened, accepted and fulfilled within the last hours."""
    lines = ["case,action,occurred_at,commitment,district,channel,details"]
    for i in range(cases):
        lines += [f"{prefix}-{i},opened,{iso(env, -7200 + i)},COMPLAINT-2WD,EAST,hotline,",
                  f"{prefix}-{i},accepted,{iso(env, -5000 + i)},,,,",
                  f"{prefix}-{i},fulfilled,{iso(env, -3000 + i)},,,,answered by phone"]
    path.write_text("\n".join(lines) + "\n")


def anchors(env) -> list[dict]:
    ledger: Ledger = env["ledger"]
    return [dict(log["args"]) for log in ledger.contract.events.BatchAnchored.get_logs(from_block=0)]


def seqs(output: str) -> list[int]:
    return [int(s) for s in re.findall(r"batch at seq (\d+):", output)]


def test_submit_anchors_once_publishes_the_file_and_says_no_receipts(env, tmp_path):
    ledger: Ledger = env["ledger"]
    path = tmp_path / "day-1.csv"
    rows_csv(env, path, "D1", 20)
    before = ledger.entry_count()
    out = cli(env, "batch", "submit", str(path), *KEY)
    assert "anchored now" in out and "receipts are not issued for batched cases" in out
    (seq,) = seqs(out)
    assert seq == before and ledger.entry_count() == before + 60
    (anchor,) = [a for a in anchors(env) if a["seq"] == seq]
    assert anchor["count"] == 60 and anchor["agencyId"] == short_code(AGENCY)
    for value in (anchor["root"], anchor["fileHash"]):
        assert "0x" + bytes(value).hex() in out
    store = batches.BatchStore(env["data"] / "batches")
    batch = batches.rebuild(store.get(bytes(anchor["fileHash"])))
    assert batch.root == bytes(anchor["root"])
    # rows as `case import` reads them: the same case ids (HMAC of the reference under the agency's salt)
    salt = bytes.fromhex((env["data"] / "keys" / f"case-salt-{AGENCY}").read_text().strip())
    assert batch.events[0].case_id == case_id_for(salt, AGENCY, "D1-0")
    assert [e.action for e in batch.events[:3]] == [CaseAction.OPENED, CaseAction.ACCEPTED, CaseAction.FULFILLED]
    gas = int(re.search(r"anchored now in block \d+, gas ([\d,]+) ", out).group(1).replace(",", ""))
    assert 40_000 < gas < 60_000

    again = cli(env, "batch", "submit", str(path), *KEY)  # nothing anchored twice
    assert "anchored earlier" in again and "anchored now" not in again and seqs(again) == [seq]
    assert ledger.entry_count() == before + 60
    assert len([a for a in anchors(env) if a["fileHash"] == anchor["fileHash"]]) == 1


def test_large_inputs_are_split_and_rerun_whole(env, tmp_path):
    ledger: Ledger = env["ledger"]
    path = tmp_path / "day-2.jsonl"
    rows = []
    for i in range(7):
        rows.append({"case": f"D2-{i}", "action": "opened", "occurred_at": iso(env, -7000 + i),
                     "commitment": "COMPLAINT-2WD", "district": "WEST", "channel": "web"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = ledger.entry_count()
    out = cli(env, "batch", "submit", str(path), "--max-entries", "3", *KEY)
    assert seqs(out) == [before, before + 3, before + 6] and ledger.entry_count() == before + 7
    assert "7 entries in 3 batch(es) of at most 3" in out and "(3), anchored now" in out and "(1), anchored now" in out
    again = cli(env, "batch", "submit", str(path), "--max-entries", "3", *KEY)
    assert again.count("anchored earlier") >= 3 and "anchored now" not in again
    assert ledger.entry_count() == before + 7
    cli(env, "batch", "submit", str(path), "--max-entries", "0", *KEY, code=2)


def test_refused_rows_are_listed_and_nothing_is_anchored(env, tmp_path):
    ledger: Ledger = env["ledger"]
    # a case opened with a receipt, one by one: the ledger tracks it, so its later events stay out of batches
    cli(env, "case", "open", "R-1", "--commitment", "COMPLAINT-2WD", "--district", "EAST", "--channel", "counter",
        "--at", iso(env, -9000), "--receipt-dir", str(tmp_path / "receipts"), *KEY)
    cli(env, "case", "open", "P-1", "--commitment", "COMPLAINT-2WD", "--district", "EAST", "--channel", "counter",
        "--at", iso(env, -9000), "--no-receipt", *KEY)
    path = tmp_path / "mixed.csv"
    path.write_text(
        "case,action,occurred_at,commitment,district,channel,receipt\n"
        f"G-1,opened,{iso(env, -7200)},COMPLAINT-2WD,EAST,app,\n"                 # 2 good
        f"P-1,fulfilled,{iso(env, -7000)},,,,\n"                                 # 3 good: opened one by one earlier
        f"G-2,opened,{iso(env, -7200)},COMPLAINT-2WD,EAST,app,yes\n"              # 4 wants a receipt
        f"G-3,opened,{iso(env, -7200)},NO-SUCH,EAST,app,\n"                      # 5 unknown commitment
        f"G-4,opened,{iso(env, -7200)},OLD-1WD,EAST,app,\n"                      # 6 retired
        f"G-5,opened,{iso(env, 3600)},COMPLAINT-2WD,EAST,app,\n"                 # 7 in the future
        "G-6,opened,2026-11-01T09:00:00,COMPLAINT-2WD,EAST,app,\n"               # 8 no zone
        f"R-1,fulfilled,{iso(env, -6000)},,,,\n"                                 # 9 a receipt case
        f"G-1,dispute_rejected,{iso(env, -6000)},,,,\n"                          # 10 no receipt, no dispute
        f"G-1,rectified,{iso(env, -6000)},,,,\n"                                 # 11 no receipt, no rating
    )
    before, anchored = ledger.entry_count(), len(anchors(env))
    out = cli(env, "batch", "submit", str(path), *KEY, code=1)
    assert "nothing was anchored" in out
    for line, why in ((4, "receipt requested"), (5, "UnknownCommitment"), (6, "CommitmentIsRetired"),
                      (7, "occurred_at is after"), (9, "the case was opened"), (10, "dispute_rejected answers"),
                      (11, "rectified answers")):
        assert re.search(f"│ {line} │ {why}", out), why  # the table's cells wrap: their first words
    assert "has no zone" in out
    assert ledger.entry_count() == before and len(anchors(env)) == anchored
    out = cli(env, "batch", "submit", str(path), "--skip-invalid", *KEY, code=1)  # the good rows now
    assert "anchored now" in out and ledger.entry_count() == before + 2


def test_a_lost_answer_or_a_pending_anchor_is_never_anchored_twice(env, tmp_path, monkeypatch):
    ledger: Ledger = env["ledger"]
    w3 = env["chain"].w3
    path = tmp_path / "day-3.csv"
    rows_csv(env, path, "D3", 5)
    before = ledger.entry_count()
    # The anchoring transaction goes out but its answer is lost (a timeout) while it waits in the pool.
    w3.provider.make_request("evm_setAutomine", [False])
    real_wait = Eth.wait_for_transaction_receipt

    def timeout(self, tx_hash, timeout=120, poll_latency=0.1):
        raise TimeExhausted(f"transaction {tx_hash!r} not mined in time")

    monkeypatch.setattr(Eth, "wait_for_transaction_receipt", timeout)
    try:
        out = cli(env, "batch", "submit", str(path), *KEY, code=1)
        assert "published to" in out and "harmless" in out and "not mined in time" in out
        monkeypatch.setattr(Eth, "wait_for_transaction_receipt", real_wait)
        out = cli(env, "batch", "submit", str(path), *KEY, code=2)  # still in the pool: refused, not sent again
        assert "in the node's pool" in out
    finally:
        monkeypatch.setattr(Eth, "wait_for_transaction_receipt", real_wait)
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("evm_mine", [])
    assert ledger.entry_count() == before + 15
    out = cli(env, "batch", "submit", str(path), *KEY)  # mined meanwhile: found, not sent again
    assert "anchored earlier" in out and seqs(out) == [before]
    assert ledger.entry_count() == before + 15


def test_sync_indexes_batches_and_verify_checks_a_proof(env, tmp_path):
    ledger: Ledger = env["ledger"]
    out = cli(env, "sync", "--confirmations", "0")
    assert "indexed" in out
    store = open_store(default_url(env["data"]), migrate=False)
    try:
        with store.engine.connect() as conn:
            batched = conn.execute(select(func.count()).select_from(schema.entries)
                                   .where(schema.entries.c.batch_seq.is_not(None))).scalar_one()
            total = conn.execute(select(func.count()).select_from(schema.entries)).scalar_one()
    finally:
        store.close()
    assert batched == sum(a["count"] for a in anchors(env))
    assert total == ledger.entry_count()  # a batch is its entries: its anchor takes no seq of its own
    first = min(anchors(env), key=lambda a: a["seq"])
    out = cli(env, "batch", "verify", str(first["seq"]), "4")
    assert f"entry {first['seq'] + 4}: index 4 of the batch at seq {first['seq']}" in out
    assert "accepted at" in out and "INVALID" not in out  # D1-1's acceptance
    assert "off chain (ledger.batches.verify_proof): valid" in out and "on chain (verifyBatchEntry): valid" in out
    cli(env, "batch", "verify", str(first["seq"]), str(first["count"]), code=1)
    assert "no batch is anchored at seq" in cli(env, "batch", "verify", str(first["seq"] + 1), "0", code=1)
    missing = tmp_path / "elsewhere"
    assert "is not in" in cli(env, "batch", "verify", str(first["seq"]), "0", "--batches", str(missing), code=1)
