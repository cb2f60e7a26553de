"""The command lines, as an auditor runs them: ``scripts/audit.py`` / ``civic-audit`` against a node and the API
served over HTTP (uvicorn), with its exit codes, summary, JSON and HTML reports; ``scripts/verify_case.py`` /
``civic-verify-case`` on one case."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from ledger.audit import cli, verify_case
from ledger.audit.checks import CHECKS
from ledger.dev.node import free_port
from ledger.records import CaseAction
from tests.support.honest import DAY, HonestLedger, case_id, chain_state, later, opened
from tests.support.index_faults import FaultProxy, rewrite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api_url(honest: HonestLedger) -> Iterator[str]:
    """The real API over the honest index, served over HTTP by uvicorn in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(honest.settings(honest.index_path)), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def args(h: HonestLedger, *extra: str) -> list[str]:
    return ["--rpc-url", h.url, "--contract", h.ledger.address, "--quiet", *extra]


@pytest.mark.slow
def test_full_audit_from_the_script_passes(honest: HonestLedger, api_url: str, tmp_path: Path) -> None:
    """scripts/audit.py end to end: fresh compile, chain and API over HTTP; exit 0 and both reports."""
    report, page = tmp_path / "audit.json", tmp_path / "audit.html"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "audit.py"), *args(honest, "--api", api_url, "--chain-id", "31337",
                                                                  "--json", str(report), "--html", str(page))],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # every check passes, batches included (their files read from the API, the default without --batches)
    summary = f"PASS: {len(CHECKS)} passed, 0 failed, 0 skipped, 0 not applicable; 0 finding(s)"
    assert summary in " ".join(done.stdout.split())
    data_seed = json.loads(report.read_text())["target"]["seed"]
    assert f"samples drawn from seed {data_seed}" in " ".join(done.stdout.split())
    data = json.loads(report.read_text())
    assert data["exit_code"] == 0 and {c["status"] for c in data["checks"]} == {"pass"}
    assert data["target"]["api"] == api_url
    assert data["checks"][0]["name"] == "contract_code" and data["checks"][0]["status"] == "pass"
    assert "<svg" in page.read_text()


def test_findings_exit_1_and_point_at_the_entry(honest: HonestLedger, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with chain_state(honest):
        t = honest.now() + 60
        seq = honest.write(opened("cli-backdated", t - 20 * DAY), at=t)
        code = cli.main(args(honest, "--no-compile", "--json", str(tmp_path / "r.json")))
    out = capsys.readouterr().out
    assert code == 1
    assert f"seq {seq}" in out and "20.0 days after its claimed time" in out and "FAIL" in out
    finding = json.loads((tmp_path / "r.json").read_text())["checks"][4]["findings"][0]
    assert finding["seq"] == seq and finding["tx_hash"].startswith("0x") and "log_index" in finding


def test_wrong_chain_exit_2(honest: HonestLedger, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(args(honest, "--chain-id", "10")) == 2
    assert "wrong chain" in capsys.readouterr().err


def test_unreachable_node_exit_2(honest: HonestLedger, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--rpc-url", f"http://127.0.0.1:{free_port()}", "--contract", honest.ledger.address, "--quiet",
                     "--timeout", "2"]) == 2
    assert "cannot reach the JSON-RPC node" in capsys.readouterr().err


def test_unreachable_api_exit_2(honest: HonestLedger, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(args(honest, "--api", f"http://127.0.0.1:{free_port()}", "--no-compile")) == 2
    assert "does not answer" in capsys.readouterr().err


def test_verify_case_prints_each_event_with_its_proof(
    honest: HonestLedger, api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrected = "0x" + case_id("corrected").hex()
    code = verify_case.main([corrected, "--rpc-url", honest.url, "--contract", honest.ledger.address,
                             "--agency", "DEMO-ROADS", "--api", api_url, "--json", str(tmp_path / "case.json")])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    result = json.loads((tmp_path / "case.json").read_text())
    [case] = result["cases"]
    assert [e["action"] for e in case["events"]] == ["opened", "accepted", "fulfilled", "fulfilled"]
    assert all(e["proof_verified"] for e in case["events"]) and case["state"]["status"] == "fulfilled"
    assert case["events"][2]["status_after"] == f"voided by seq {honest.seqs['correction']}"
    # its response is the acceptance; no bad rating, so no rectification is due
    state = case["state"]
    assert state["responded_at"] == case["events"][1]["occurred_at"] and state["rectification_due"] is None
    assert re.search(r"responded \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+0800 \(due \d{4}-\d\d-\d\d 00:00:00\+0800\)", out)
    for event in case["events"]:
        assert f"seq {event['seq']}: tx {event['proof']['tx_hash']}" in out
        assert event["proof"]["entry_hash"] in out
    assert "VERIFIED" in out and result["log_complete"]


def test_verify_case_from_the_script(honest: HonestLedger) -> None:
    relayed = "0x" + case_id("relayed").hex()
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "verify_case.py"), relayed, "--rpc-url", honest.url, "--contract",
         honest.ledger.address, "--batches", str(honest.batch_dir)], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERIFIED" in done.stdout and "opened" in done.stdout


def test_verify_case_of_a_batched_case(
    honest: HonestLedger, api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case opened in a batch and closed by an entry of its own: the batched event's proof is the anchoring log
    plus its Merkle proof, checked off chain and by the contract; without the batch files nothing is verified."""
    name = "0x" + case_id("hotline-6").hex()
    code = verify_case.main([name, "--rpc-url", honest.url, "--contract", honest.ledger.address, "--api", api_url,
                             "--json", str(tmp_path / "case.json")])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    [case] = json.loads((tmp_path / "case.json").read_text())["cases"]
    assert [e["action"] for e in case["events"]] == ["opened", "accepted", "fulfilled"]
    batched, alone = case["events"][:2], case["events"][2]
    batch_seq = honest.seqs["hotline batch"]
    for event in batched:
        assert event["proof_verified"] and event["batch"]["batch_seq"] == batch_seq
        assert event["batch"]["verified"] and event["batch"]["contract_verified"] is True
        assert event["batch"]["index"] == event["seq"] - batch_seq
        assert f"in batch seq {batch_seq} at index {event['batch']['index']}" in out
    assert alone["batch"] is None and alone["seq"] == honest.seqs["closed alone"]
    assert case["state"]["status"] == "fulfilled" and "VERIFIED" in out
    # without the batch files: the case's batched events are unknown, so nothing is verified
    code = verify_case.main([name, "--rpc-url", honest.url, "--contract", honest.ledger.address])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1 and "NOT VERIFIED" in out and f"batch seq {batch_seq}" in out


def test_verify_case_unknown_or_forged(honest: HonestLedger, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = "0x" + "ab" * 32
    assert verify_case.main([unknown, "--rpc-url", honest.url, "--contract", honest.ledger.address]) == 1
    assert "no case" in capsys.readouterr().out
    # a node whose logs lie about the case's acceptance: the receipt and the running hash disagree with it
    seq = honest.seqs["spare wrote"]
    topic = "0x" + seq.to_bytes(32, "big").hex()

    def alter(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for log in logs:
            log = dict(log)
            if log["topics"][1:2] == [topic]:
                data = bytes.fromhex(log["data"][2:])
                log["data"] = "0x" + (int(CaseAction.ESCALATED).to_bytes(32, "big") + data[32:]).hex()
            out.append(log)
        return out

    with FaultProxy(honest.url) as proxy:
        proxy.add("eth_getLogs", rewrite(alter), times=None)
        code = verify_case.main(["0x" + case_id("spare").hex(), "--rpc-url", proxy.url, "--contract",
                                 honest.ledger.address])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1 and "NOT VERIFIED" in out
    assert f"seq {seq}: the receipt's log decodes to another entry" in out
    assert "running hash first diverges" in out


def test_console_scripts_are_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["civic-audit"] == "ledger.audit.cli:main"
    assert scripts["civic-verify-case"] == "ledger.audit.verify_case:main"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "audit.py"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "--rpc-url" in done.stdout and "Exit codes" in done.stdout


def test_later_writes_are_seen(honest: HonestLedger, capsys: pytest.CaptureFixture[str]) -> None:
    """The audit reads the chain as it is now: an entry written a moment ago is part of it."""
    with chain_state(honest):
        t = honest.now() + 60
        honest.write(later("corrected", CaseAction.ACCEPTED, t), at=t)
        assert cli.main(args(honest, "--no-compile")) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "accepted after the case was closed (fulfilled)" in out


@pytest.mark.parametrize(("flags", "says"), [
    (["--confidence", "1.5"], "strictly between 0 and 1"),
    (["--confidence", "0.99", "--case-sample", "10"], "not allowed with argument"),
    (["--assume-lies", "0"], "at least 1"),
    (["--seed", "-3"], "must not be negative"),
    (["--max-lag-blocks", "many"], "not a whole number"),
])
def test_sampling_and_lag_flags_refuse_bad_values_saying_why(flags: list[str], says: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.parser().parse_args(["--rpc-url", "http://x", "--contract", "0x" + "00" * 20, *flags])
    assert exit_.value.code == 2 and says in capsys.readouterr().err


def test_seed_and_confidence_reach_the_audit_config() -> None:
    got = cli.parser().parse_args(["--rpc-url", "http://x", "--contract", "0x0", "--seed", "42", "--confidence",
                                   "0.99", "--assume-lies", "10", "--max-lag-blocks", "5", "--max-lag-seconds", "60"])
    assert (got.seed, got.confidence, got.assume_lies, got.max_lag_blocks, got.max_lag_seconds) == (42, 0.99, 10, 5, 60)
