"""Tamper tests: each fault injected into the honest ledger — in the index the API serves, in the API's answers, in
the node's answers, or written on the chain itself — is caught by the check whose job it is, with a finding that
points at the entry (seq, transaction hash, log index) and says what is wrong; the other checks are unaffected
where the fault does not concern them. The honest ledger itself passes with zero findings (test_checks.py).

Citizens' feedback is tampered with as an agency really could: leaving a dispute unanswered or answering it late,
"correcting" away a rating, a dispute or a receipt, issuing a receipt too late or too early, or to its own key; what
the contract refuses (rating with an agency key) is shown refused, and a rating forged by a lying node is caught.

Merkle-anchored batches are tampered with for real: a published file withheld, deleted, altered or truncated, a root
anchored over a file lacking an entry, a malformed line anchored, and batched events that break the other checks'
rules; each is a finding at the anchoring transaction and log, saying what is wrong."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from rich.console import Console

from ledger import batches, receipts
from ledger.audit import CannotAudit, Status, run_audit
from ledger.audit.model import AuditReport, Finding
from ledger.audit.monitor import Monitor, MonitorOptions
from ledger.audit.report import print_summary, render_html
from ledger.audit.verify_case import verify
from ledger.dev import demo
from ledger.encoding import keccak
from ledger.errors import ContractReverted
from ledger.records import CaseAction, Correction, Rating, Receipt, short_code, text_hash
from tests.support.honest import (
    DAY,
    HOUR,
    HonestLedger,
    case_id,
    chain_state,
    failed,
    findings,
    later,
    opened,
    receipt_case_id,
    receipt_code,
    receipt_opened,
)
from tests.support.honest import receipt_later as later_receipt
from tests.support.index_faults import FaultProxy, rewrite
from tests.support.lying import lying
from tests.support.tamper import mine_at, query, tampered

pytestmark = pytest.mark.slow

CHAIN_CHECKS = {"log_complete", "authorised", "case_transitions", "timeliness"}


def pointer(h: HonestLedger, seq: int) -> tuple[str, int]:
    """(transaction hash, log index) of the entry `seq`, asked of the node directly."""
    logs = h.chain.w3.provider.make_request("eth_getLogs", [{
        "address": h.ledger.address, "fromBlock": "0x0", "toBlock": "latest",
        "topics": [None, "0x" + seq.to_bytes(32, "big").hex()],
    }])["result"]
    assert len(logs) == 1, logs
    return logs[0]["transactionHash"], int(logs[0]["logIndex"], 16)


def points_at(h: HonestLedger, finding: Finding, seq: int) -> bool:
    tx_hash, log_index = pointer(h, seq)
    return finding.seq == seq and finding.tx_hash == tx_hash and finding.log_index == log_index


def at_seq(report: AuditReport, check: str, seq: int) -> list[Finding]:
    return [f for f in findings(report, check) if f.seq == seq]


# --- 1. the index the API serves -------------------------------------------------------------------------------------


def test_altered_record_served_by_the_api(honest: HonestLedger, tmp_path: Path) -> None:
    seq = honest.seqs["relayed"]
    index = tampered(honest, tmp_path, ("UPDATE entries SET record_hash = ? WHERE seq = ?", (b"\x01" * 32, seq)))
    report = honest.audit(index, case_sample=20)
    # (entry_views too, when it draws the entry, or a page of the log holding it)
    assert "api_records" in failed(report) and failed(report) <= {"api_records", "entry_views"}
    assert all(f.seq == seq for f in findings(report, "entry_views"))
    hits = at_seq(report, "api_records", seq)
    assert hits and all(points_at(honest, f, seq) for f in hits)
    assert any(f.field == "record_hash" and f.actual == "0x" + "01" * 32 for f in hits)
    assert "differs from the chain" in hits[0].message


def test_entry_missing_from_the_index(honest: HonestLedger, tmp_path: Path) -> None:
    seq = honest.seqs["spare wrote"]  # the spare key's acceptance of its case
    index = tampered(honest, tmp_path, ("DELETE FROM entries WHERE seq = ?", (seq,)))
    report = honest.audit(index, case_sample=20)
    assert "api_records" in failed(report) and failed(report) <= {"api_records", "entry_views"}  # (as above)
    missing = [f for f in at_seq(report, "api_records", seq) if "missing from the API" in f.message]
    assert len(missing) == 2  # from the entry pages and from the bulk export
    assert all(points_at(honest, f, seq) for f in missing)


def test_metric_off_by_one_case(honest: HonestLedger, tmp_path: Path) -> None:
    """One fulfilled case's on_time flag flipped in the index: every figure that counts it is one off."""
    agency, case_id, last_seq = query(
        honest.index_path, "SELECT agency_id, case_id, last_seq FROM cases WHERE on_time = 1 ORDER BY opened_seq"
    )[0]
    index = tampered(honest, tmp_path, ("UPDATE cases SET on_time = 0 WHERE agency_id = ? AND case_id = ?",
                                        (agency, case_id)))
    report = honest.audit(index, case_sample=20)
    assert "metrics_reproduced" in failed(report)
    whole = [f for f in findings(report, "metrics_reproduced")
             if f.field == "on_time" and f.subject and "agency_id" not in f.subject and "by=" not in f.subject]
    assert whole and all(f.expected - f.actual == 1 for f in whole)
    # and the case's state, as exported, is caught too, pointing at the case's last event
    state = [f for f in findings(report, "api_records") if f.subject and f"0x{case_id.hex()}" in f.subject]
    assert state and state[0].field == "on_time" and points_at(honest, state[0], last_seq)
    assert failed(report) <= {"metrics_reproduced", "api_records", "open311"}  # Open311 shows the case too


def test_figures_served_from_altered_cells_over_honest_rows(honest: HonestLedger, tmp_path: Path) -> None:
    """The operator leaves every row honest and adds a fulfilled case to the city's figure cells (``figure_cells``,
    which the figures are read from): the city's figures the auditor recomputes from the chain differ, and only they
    (no row, case view or export differs)."""
    index = tampered(honest, tmp_path, ("UPDATE figure_cells SET fulfilled = fulfilled + 1 WHERE cuboid = 0", ()),
                     cells=False)
    report = honest.audit(index, case_sample=20)
    assert failed(report) == {"metrics_reproduced"}
    city = [f for f in findings(report, "metrics_reproduced")
            if f.field == "fulfilled" and f.subject and "agency_id" not in f.subject and "by=" not in f.subject]
    assert city and all(f.actual - f.expected >= 1 for f in city)


def test_case_served_with_a_wrong_status(honest: HonestLedger, tmp_path: Path) -> None:
    agency, case_id, last_seq = query(
        honest.index_path,
        "SELECT agency_id, case_id, last_seq FROM cases WHERE status = 'fulfilled' ORDER BY opened_seq DESC",
    )[0]
    index = tampered(honest, tmp_path, (
        "UPDATE cases SET status = 'rejected' WHERE agency_id = ? AND case_id = ?", (agency, case_id)))
    report = honest.audit(index)  # every case view fetched (there are fewer than 1000)
    hits = [f for f in findings(report, "api_records") if f.subject and f"0x{case_id.hex()}" in f.subject]
    assert len(hits) == 2  # the bulk export and the case view
    assert {hits[0].subject.split(" ")[0], hits[1].subject.split(" ")[0]} == {"case", "GET"}
    assert all(f.field == "status" and f.expected == "fulfilled" and f.actual == "rejected" for f in hits)
    assert all(points_at(honest, f, last_seq) for f in hits)
    assert report.check("api_records").counts["case_views_compared"] == len(query(index, "SELECT 1 FROM cases"))


def test_case_served_with_a_false_rectification_and_a_false_response(honest: HonestLedger, tmp_path: Path) -> None:
    """The operator's index says the roads office rectified the case its citizen rated 2 the day after the rating
    (it never did), and that a case taken up late was taken up within ten minutes: each case view differs from the
    fold's state, at that field, pointing at the case's last event."""
    bad = receipt_case_id("fb-reopened")  # rated 2 (tests/support/honest.py), never rectified
    [(rated_at, due, bad_last)] = query(
        honest.index_path, "SELECT rated_at, rectification_due, last_seq FROM cases WHERE case_id = ?", (bad,))
    agency, late, opened_at, responded_at, late_last = query(
        honest.index_path, "SELECT agency_id, case_id, opened_at, responded_at, last_seq FROM cases "
        "WHERE responded_at > response_due ORDER BY opened_seq",
    )[0]
    index = tampered(
        honest, tmp_path,
        ("UPDATE cases SET rectified_at = ? WHERE case_id = ?", (rated_at + DAY, bad)),
        ("UPDATE cases SET responded_at = ? WHERE agency_id = ? AND case_id = ?", (opened_at + 600, agency, late)),
    )
    report = honest.audit(index)  # every case view fetched (there are fewer than 1000)
    views = {f.subject: f for f in findings(report, "api_records") if f.subject and f.subject.startswith("GET ")}
    rectified = views[f"GET /api/v1/cases/DEMO-ROADS/0x{bad.hex()}"]
    assert (rectified.field, rectified.expected, rectified.actual) == ("rectified_at", None, rated_at + DAY)
    assert due is not None and points_at(honest, rectified, bad_last)
    responded = views[f"GET /api/v1/cases/{agency}/0x{late.hex()}"]
    assert (responded.field, responded.expected, responded.actual) == ("responded_at", responded_at, opened_at + 600)
    assert points_at(honest, responded, late_last) and "differs from the chain" in responded.message
    assert set(views) == {rectified.subject, responded.subject}
    # the receipt views show the case as the case view does, and the figures count the rows: the lie shows there too
    assert failed(report) <= {"api_records", "receipt_views", "metrics_reproduced"}


def test_commitment_version_served_altered(honest: HonestLedger, tmp_path: Path) -> None:
    seq = query(honest.index_path, "SELECT seq FROM commitments WHERE agency_id = 'DEMO-ROADS' AND commitment_id = "
                       "'POTHOLE-72H' AND version = 1")[0][0]
    index = tampered(honest, tmp_path, ("UPDATE commitments SET deadline = 96 WHERE seq = ?", (seq,)))
    report = honest.audit(index, case_sample=5)
    # Open311's service definition and its requests' expected times show the deadline too
    assert "api_records" in failed(report) and failed(report) <= {"api_records", "open311"}
    hits = at_seq(report, "api_records", seq)
    assert len(hits) == 4  # the list, the agency page's list, the history and the version itself
    assert all(points_at(honest, f, seq) and "deadline" in f.field and f.actual == 96 for f in hits)


def test_chain_facts_served_with_a_wrong_entry_count(honest: HonestLedger, tmp_path: Path) -> None:
    index = tampered(honest, tmp_path, ("UPDATE sync_state SET entry_count = entry_count + 1", ()))
    report = honest.audit(index, case_sample=5)
    assert failed(report) == {"api_records"}
    [hit] = [f for f in findings(report, "api_records") if f.subject == "GET /api/v1/chain"]
    assert hit.field == "entry_count" and hit.actual == hit.expected + 1
    assert "not on the chain" in hit.message


def test_index_serving_a_reorganised_block(honest: HonestLedger, tmp_path: Path) -> None:
    """The index followed a branch the chain abandoned (an anvil snapshot reverted): it serves entries whose blocks
    are no longer on the chain."""
    index = honest.index_copy(tmp_path)
    base = honest.chain.snapshot()
    try:
        t = honest.now()
        first = honest.write_batch([opened("orphan-a", t), later("orphan-a", CaseAction.ACCEPTED, t)], at=t + 60) - 1
        honest.write(opened("orphan-b", t + 60), at=t + 120)
        honest.sync(index)
        orphaned = honest.chain.w3.eth.get_block("latest")["hash"]
    finally:
        honest.chain.revert(base)
    with chain_state(honest):
        t = honest.now()
        honest.write(opened("winner", t), at=t + 300)
        gone = honest.chain.w3.provider.make_request("eth_getBlockByHash", [orphaned.to_0x_hex(), False])
        assert gone["result"] is None
        report = honest.audit(index, case_sample=5)
        api = findings(report, "api_records")
        reorg = [f for f in api if "not on the chain" in f.message]
        # seq `first`: on the chain in another block now; first+1, first+2: not on the chain at all
        assert any(f.seq == first and f.field == "proof.block_hash" and points_at(honest, f, first) for f in reorg)
        assert any(f.seq == first + 1 and "which the chain does not have" in f.message for f in reorg)
        assert any(f.subject == "GET /api/v1/chain" and f.field == "entry_count" for f in api)
        assert any(f.field == "last_indexed_block" for f in api)
        assert not failed(report) & CHAIN_CHECKS


# --- 2. the API's answers themselves -------------------------------------------------------------------------------


def test_api_metric_off_by_one(honest: HonestLedger) -> None:
    def plus_one(body: Any, request: Request) -> Any:
        if "agency_id" not in request.query_params and "district" not in request.query_params:
            body["metrics"]["fulfilled"] += 1
        return body

    report = honest.audit(wrap=lying("/api/v1/metrics", plus_one), case_sample=5)
    assert failed(report) == {"metrics_reproduced"}
    hits = findings(report, "metrics_reproduced")
    assert hits and all(f.field == "fulfilled" and f.actual == f.expected + 1 for f in hits)
    assert all("agency_id" not in (f.subject or "") for f in hits)


def test_api_serving_an_entry_twice(honest: HonestLedger) -> None:
    def duplicate(body: Any, request: Request) -> Any:
        if "after" not in request.query_params:
            body["items"].insert(5, body["items"][4])
        return body

    report = honest.audit(wrap=lying("/api/v1/entries", duplicate), case_sample=5)
    # entry_views fails too when it draws a first page of the log (a quarter of its pages): the same lie, seen there
    assert "api_records" in failed(report) and failed(report) <= {"api_records", "entry_views"}
    [hit] = findings(report, "api_records")
    assert "duplicated entry" in hit.message and points_at(honest, hit, 4)
    assert all("after" not in (f.subject or "") for f in findings(report, "entry_views"))  # first pages alone


# --- 3. the node's answers (a node that lies about the log) -----------------------------------------------------------


def _seq_topic(seq: int) -> str:
    return "0x" + seq.to_bytes(32, "big").hex()


def forged(h: HonestLedger, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> AuditReport:
    with FaultProxy(h.url) as proxy:
        proxy.add("eth_getLogs", rewrite(lambda logs: change([dict(log) for log in logs])), times=None)
        return run_audit(h.config(rpc_url=proxy.url))


def test_node_duplicating_a_log(honest: HonestLedger) -> None:
    seq = honest.seqs["relayed"]

    def twice(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for log in logs:
            out += [log, log] if log["topics"][1:2] == [_seq_topic(seq)] else [log]
        return out

    report = forged(honest, twice)
    assert failed(report) == {"log_complete"}
    [hit] = findings(report, "log_complete")
    assert "duplicated entry" in hit.message and points_at(honest, hit, seq)


def test_node_hiding_a_log(honest: HonestLedger) -> None:
    seq = honest.seqs["spare wrote"]
    report = forged(honest, lambda logs: [log for log in logs if log["topics"][1:2] != [_seq_topic(seq)]])
    assert failed(report) == {"log_complete"}
    [hit] = findings(report, "log_complete")
    assert hit.seq == seq and f"missing from the log: seq {seq}" in hit.message


def test_node_altering_a_log(honest: HonestLedger) -> None:
    """One logged field changed (the claimed time): the entries no longer fold to the contract's running hash, and
    bisection on the contract's historical state finds the block."""
    seq = honest.seqs["relayed"]

    def alter(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for log in logs:
            if log["topics"][1:2] == [_seq_topic(seq)]:
                data = bytes.fromhex(log["data"][2:])
                occurred = int.from_bytes(data[32:64], "big") - HOUR
                log["data"] = "0x" + (data[:32] + occurred.to_bytes(32, "big") + data[64:]).hex()
        return logs

    report = forged(honest, alter)
    assert failed(report) == {"log_complete"}
    [hit] = findings(report, "log_complete")
    assert points_at(honest, hit, seq) and "first diverges" in hit.message


def test_entry_by_a_revoked_key(honest: HonestLedger) -> None:
    """The contract refuses a revoked key, so only a lying node can show such an entry: the authorisation check
    names the revocation, and the running hash exposes the forgery too."""
    seq = honest.seqs["fulfilled again"]  # a roads-office entry written after the spare key was revoked
    revoked = honest.revoked_key

    def resign(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for log in logs:
            if log["topics"][1:2] == [_seq_topic(seq)]:
                data = bytes.fromhex(log["data"][2:])
                log["data"] = "0x" + (data[:-32] + bytes.fromhex(revoked[2:]).rjust(32, b"\0")).hex()
        return logs

    report = forged(honest, resign)
    assert failed(report) == {"authorised", "log_complete"}
    [hit] = findings(report, "authorised")
    assert points_at(honest, hit, seq) and hit.actual == revoked
    assert f"revoked at seq {honest.seqs['spare revoked']}" in hit.message


def test_claimed_time_after_the_recorded_time(honest: HonestLedger) -> None:
    seq = honest.seqs["relayed"]

    def future(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for log in logs:
            if log["topics"][1:2] == [_seq_topic(seq)]:
                data = bytes.fromhex(log["data"][2:])
                occurred = int(log["blockTimestamp"], 16) + HOUR
                log["data"] = "0x" + (data[:32] + occurred.to_bytes(32, "big") + data[64:]).hex()
        return logs

    report = forged(honest, future)
    assert failed(report) == {"timeliness", "log_complete"}
    [hit] = findings(report, "timeliness")
    assert points_at(honest, hit, seq) and "after the block time" in hit.message


# --- 4. the chain itself --------------------------------------------------------------------------------------------


def test_backdated_event(honest: HonestLedger) -> None:
    with chain_state(honest):
        t = honest.now() + 60
        seq = honest.write(opened("backdated", t - 30 * DAY), at=t)
        report = run_audit(honest.config())
        assert failed(report) == {"timeliness"}
        [hit] = findings(report, "timeliness")
        assert points_at(honest, hit, seq) and "30.0 days after its claimed time" in hit.message


def test_invalid_transitions(honest: HonestLedger) -> None:
    with chain_state(honest):
        t = honest.now() + 60
        before_opened = honest.write(later("never-opened", CaseAction.FULFILLED, t), at=t)
        last = honest.write_batch([
            opened("twice", t), later("twice", CaseAction.FULFILLED, t), later("twice", CaseAction.FULFILLED, t),
        ], at=t + 60)
        report = run_audit(honest.config())
        assert failed(report) == {"case_transitions"}
        hits = {f.seq: f for f in findings(report, "case_transitions")}
        assert set(hits) == {before_opened, last}
        assert "fulfilled before the case was opened (it never is)" in hits[before_opened].message
        assert "fulfilled after the case was closed (fulfilled)" in hits[last].message
        assert points_at(honest, hits[before_opened], before_opened) and points_at(honest, hits[last], last)


def test_hold_abuse(honest: HonestLedger) -> None:
    """The water company puts eight cases on hold at 22 h of a 24 h deadline, resumes them a day later and fulfils
    them: each counts as on time only because of the hold, and the habit is a finding."""
    names = [f"held-{i}" for i in range(8)]
    with chain_state(honest):
        t = honest.now() + 60
        honest.write_batch([opened(n, t, "WATER-OUTAGE-24H") for n in names], "DEMO-WATER", at=t)
        first_hold = honest.write_batch([later(n, CaseAction.ON_HOLD, t + 22 * HOUR) for n in names], "DEMO-WATER",
                                        at=t + 22 * HOUR) - 7
        honest.write_batch([later(n, CaseAction.RESUMED, t + 46 * HOUR) for n in names], "DEMO-WATER",
                           at=t + 46 * HOUR)
        honest.write_batch([later(n, CaseAction.FULFILLED, t + 47 * HOUR) for n in names], "DEMO-WATER",
                           at=t + 47 * HOUR)
        report = run_audit(honest.config())
        assert failed(report) == {"timeliness"}
        [hit] = findings(report, "timeliness")
        assert hit.subject == "agency DEMO-WATER" and "holds" in hit.message and points_at(honest, hit, first_hold)
    late = [w for w in report.check("timeliness").warnings if w.message.startswith("late hold")]
    assert len(late) == 8 and all("92%" in w.message for w in late)


def test_bytecode_differing_from_the_source(honest: HonestLedger, compiled: dict[str, Any]) -> None:
    address = honest.ledger.address
    with chain_state(honest):
        code = bytes(honest.chain.w3.eth.get_code(address))
        # one byte of the compiler's metadata at the end: the contract still runs, but it is not this build
        altered = code[:-12] + bytes([code[-12] ^ 0xFF]) + code[-11:]
        honest.chain.w3.provider.make_request("anvil_setCode", [address, "0x" + altered.hex()])
        report = run_audit(honest.config(), compiled=compiled)
    assert failed(report) == {"contract_code"}
    [hit] = findings(report, "contract_code")
    assert f"first difference at byte {len(code) - 12}" in hit.message and hit.subject == f"contract {address}"


def test_wrong_chain(honest: HonestLedger) -> None:
    with pytest.raises(CannotAudit, match="wrong chain: .* serves chain id 31337, but the audit expects 1"):
        run_audit(honest.config(chain_id=1))


def test_no_contract_at_the_address(honest: HonestLedger) -> None:
    with pytest.raises(CannotAudit, match="no contract at"):
        run_audit(honest.config(contract="0x" + "12" * 20))


# --- 5. citizens' feedback: what an agency can really do on the chain, and what it cannot ---------------------------


def test_dispute_left_unanswered_past_its_deadline(honest: HonestLedger, tmp_path: Path) -> None:
    """A citizen disputes the rated streetlight's fulfilment; the roads office never answers. Eleven days on, the
    dispute is a finding, pointing at it; the index and the API count it as unanswered, and agree with the
    auditor."""
    index = honest.index_copy(tmp_path)
    with chain_state(honest):
        t = honest.now() + 60
        seq = honest.dispute("fb-rated", 1, t)
        mine_at(honest, t + 9 * DAY)
        honest.sync(index)
        early = honest.audit(index, case_sample=5)
        assert not failed(early)  # due in ten days: not yet
        assert early.check("feedback_authentic").counts["awaiting_answer"] == 1
        mine_at(honest, t + 11 * DAY)
        honest.sync(index)
        report = honest.audit(index, case_sample=5)
        assert failed(report) == {"feedback_authentic"}
        [hit] = findings(report, "feedback_authentic")
        assert points_at(honest, hit, seq) and "unanswered 1.0 days past its deadline" in hit.message
        assert report.check("feedback_authentic").counts["unanswered_overdue"] == 1
        # the published figure counts it too, and the API's equals the auditor's
        assert report.check("metrics_reproduced").status is Status.PASS
        with honest.api(index) as client:
            end = t + 11 * DAY + 1
            whole = client.get("/api/v1/metrics", params={"from": 0, "to": end, "as_of": end}).json()["metrics"]
        assert whole["disputes_unanswered"] == 1 and whole["disputes"] >= 3


def test_dispute_answered_late(honest: HonestLedger) -> None:
    with chain_state(honest):
        t = honest.now() + 60
        seq = honest.dispute("fb-rated", 1, t)
        honest.write(later_receipt("fb-rated", CaseAction.DISPUTE_REJECTED, t + 12 * DAY), at=t + 12 * DAY)
        report = run_audit(honest.config())
        assert failed(report) == {"feedback_authentic"}
        [hit] = findings(report, "feedback_authentic")
        assert points_at(honest, hit, seq) and "answered 2.0 days late" in hit.message
        assert "dispute_rejected" in hit.message and report.check("feedback_authentic").counts["answered_late"] == 1


def test_correction_aimed_at_a_rating_a_dispute_and_a_receipt(honest: HonestLedger, tmp_path: Path) -> None:
    """The roads office 'corrects' away a bad rating, a dispute and a receipt. The contract records the corrections
    (it does not read targets), but none takes effect: the index keeps counting the rating, and the auditor flags
    each correction, pointing at it."""
    index = honest.index_copy(tmp_path)
    with chain_state(honest):
        t = honest.now() + 60
        targets = [honest.seqs[k] for k in ("fb-reopened rating", "fb-rejected dispute", "fb-open receipt")]
        corrections = [
            honest.write(Correction(target_seq=target, reason_hash=text_hash("unfair"), occurred_at=t), at=t)
            for target in targets
        ]
        honest.sync(index)
        report = honest.audit(index, case_sample=5)
        assert failed(report) == {"feedback_authentic"}
        hits = findings(report, "feedback_authentic")
        assert [f.seq for f in hits] == corrections
        assert all(points_at(honest, f, seq) for f, seq in zip(hits, corrections, strict=True))
        assert "cannot void what a citizen wrote" in hits[0].message and hits[0].actual == targets[0]
        # listed by the transitions check as corrections that took no effect, and not applied in the index
        refused = report.check("case_transitions").warnings
        assert {w.seq for w in refused} >= set(corrections)
        assert query(index, "SELECT applied FROM corrections WHERE seq >= ?", (corrections[0],)) == [(0,)] * 3
        assert query(index, "SELECT voided_by FROM entries WHERE seq = ?", (targets[0],)) == [(None,)]
        assert query(index, "SELECT rating FROM cases WHERE case_id = ?", (receipt_case_id("fb-reopened"),)) == [(2,)]


def test_an_agency_voiding_its_fulfilment_cannot_make_the_citizens_dispute_look_refused(
    honest: HonestLedger, tmp_path: Path
) -> None:
    """The roads office fulfils the open receipt case, the citizen disputes that fulfilment and rates it — both taken
    by the contract, which tracks every closing it recorded — and then the office 'corrects' its fulfilment away. By
    the case's own fold the case never closed, but the citizen's dispute and rating were what the contract allowed
    when they were written: no finding against either, in the one-shot audit and in the monitor's incremental model
    alike; the correction itself is a valid one and the dispute awaits the office's answer."""
    monitor = Monitor(honest.config(), MonitorOptions(state=tmp_path / "state", interval=0, spread=0))
    with chain_state(honest):
        assert monitor.round().findings == 0
        t = honest.now() + 60
        fulfilled = honest.write(later_receipt("fb-open", CaseAction.FULFILLED, t), at=t)
        dispute = honest.dispute("fb-open", 1, t + HOUR)
        rating = honest.rate("fb-open", 1, t + 2 * HOUR)
        correction = honest.write(Correction(target_seq=fulfilled, reason_hash=text_hash("never fixed"),
                                             occurred_at=t + 3 * HOUR), at=t + 3 * HOUR)
        for report in (run_audit(honest.config()), monitor.round().report):
            assert report is not None and not failed(report), [f.message for c in report.failed for f in c.findings]
            feedback = report.check("feedback_authentic")
            assert feedback.counts["disputes"] >= 3 and feedback.counts["awaiting_answer"] == 1
            assert not [w for w in report.check("case_transitions").warnings if w.seq == correction]
        model = monitor.builder.model()
        [*_, disputed, rated] = model.feedback[("DEMO-ROADS", receipt_case_id("fb-open"))]
        assert (disputed.entry.seq, rated.entry.seq) == (dispute, rating)
        assert disputed.status == "open" and disputed.tracked is not None and disputed.tracked.closures == 1
        assert model.voided[fulfilled] == correction


def test_receipts_issued_too_late_or_too_early(honest: HonestLedger) -> None:
    """A receipt recorded after its case closed (the agency picks which cases can be rated), and one recorded before
    its case's Opened: the contract takes both; the auditor flags both."""
    with chain_state(honest):
        t = honest.now() + 60
        honest.write_batch([receipt_opened("late", t), later_receipt("late", CaseAction.REJECTED, t)], at=t)
        late = honest.issue_receipt("late", t + 60)
        early = honest.issue_receipt("early", t + 120)
        honest.write(receipt_opened("early", t + 180), at=t + 180)
        report = run_audit(honest.config())
        assert failed(report) == {"feedback_authentic"}
        hits = {f.seq: f for f in findings(report, "feedback_authentic")}
        assert set(hits) == {late, early}
        assert "after the case was closed (rejected)" in hits[late].message and points_at(honest, hits[late], late)
        assert "before the case's Opened event" in hits[early].message and points_at(honest, hits[early], early)


def test_an_agency_key_cannot_rate_but_a_receipt_issued_to_one_is_caught(honest: HonestLedger) -> None:
    """The roads office signs a rating of its open-then-closed case with its own key: refused on chain. So it issues
    the receipt of a new case to its own key, and rates that case itself: the contract cannot tell, the auditor can."""
    roads = honest.signers["DEMO-ROADS"]
    with chain_state(honest):
        t = honest.now() + 60
        honest.write(later_receipt("fb-open", CaseAction.FULFILLED, t), at=t)
        rating = Rating(agency_id=short_code("DEMO-ROADS"), case_id=receipt_case_id("fb-open"), score=5)
        with pytest.raises(ContractReverted) as refused:
            honest.ledger.submit_citizen(honest.relayer, rating, honest.ledger.sign_citizen(bytes(roads.key), rating))
        assert refused.value.error_name == "InvalidReceiptSignature"
        honest.write(receipt_opened("self-rated", t + 120), at=t + 120)
        receipt = Receipt(case_id=receipt_case_id("self-rated"), receipt=roads.address, occurred_at=t + 180)
        issued = honest.write(receipt, at=t + 180)
        honest.write(later_receipt("self-rated", CaseAction.FULFILLED, t + 240), at=t + 240)
        honest.rate("self-rated", 5, t + 300, key=bytes(roads.key))
        report = run_audit(honest.config())
        assert failed(report) == {"feedback_authentic"}
        [hit] = findings(report, "feedback_authentic")
        assert points_at(honest, hit, issued) and "is an agency signing key" in hit.message


def test_a_node_forging_a_rating(honest: HonestLedger) -> None:
    """A lying node shows the roads office's rating as signed by another key: the feedback check names the receipt
    the rating should have been signed with; the running hash exposes the forgery too."""
    seq = honest.seqs["fb-rated rating"]
    forger = "0x" + "66" * 20

    def resign(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for log in logs:
            if log["topics"][1:2] == [_seq_topic(seq)]:
                data = bytes.fromhex(log["data"][2:])
                log["data"] = "0x" + (data[:-32] + bytes.fromhex(forger[2:]).rjust(32, b"\0")).hex()
        return logs

    report = forged(honest, resign)
    assert failed(report) == {"feedback_authentic", "log_complete"}
    [hit] = findings(report, "feedback_authentic")
    assert points_at(honest, hit, seq) and "not signed by the case's receipt key" in hit.message
    assert hit.expected == receipts.address(receipt_code("fb-rated")) and hit.actual.lower() == forger


# --- Merkle-anchored batches -------------------------------------------------------------------------------------


def anchor_log(h: HonestLedger, seq: int) -> tuple[str, int]:
    """(transaction hash, log index) of the BatchAnchored log of the batch starting at `seq` (its seq topic)."""
    return pointer(h, seq)


def at_anchor(h: HonestLedger, finding: Finding, batch_seq: int, seq: int | None = None) -> bool:
    """The finding points at the anchoring transaction and log of the batch (and at entry `seq` of it)."""
    tx_hash, log_index = anchor_log(h, batch_seq)
    return (finding.seq == (batch_seq if seq is None else seq) and finding.tx_hash == tx_hash
            and finding.log_index == log_index)


def copy_batches(h: HonestLedger, target: Path) -> Path:
    shutil.copytree(h.batch_dir, target)
    return target


def batch_file(h: HonestLedger, directory: Path, seq: int) -> Path:
    [anchor] = [e for e in h.ledger.entries() if e.seq == seq]
    return directory / f"{anchor.record.file_hash.hex()}.csv"


def test_without_batch_files_the_batch_check_is_skipped_never_passed(honest: HonestLedger) -> None:
    report = run_audit(honest.config(batches=None))  # no --batches, no --api
    check = report.check("batches_complete")
    assert check.status is Status.SKIPPED
    assert "2 batches" in check.notes[0] and "--batches" in check.notes[0]


@pytest.mark.parametrize("fault", ["deleted", "altered", "truncated", "extended"])
def test_a_published_batch_file_deleted_altered_or_truncated(honest: HonestLedger, tmp_path: Path, fault: str) -> None:
    directory = copy_batches(honest, tmp_path / "batches")
    seq, count = honest.seqs["hotline batch"], honest.seqs["hotline batch count"]
    path = batch_file(honest, directory, seq)
    content = path.read_bytes()
    if fault == "deleted":
        path.unlink()
        words = f"the batch file is not available: {path} has no such file (not published there)"
    elif fault == "altered":  # one event's action changed (a fulfilment made a rejection)
        path.write_bytes(content.replace(b",6,", b",7,", 1))
        words = f"its {count} events build another Merkle root"
    elif fault == "truncated":  # the last event cut off
        path.write_bytes(content[: content.rstrip(b"\n").rfind(b"\n") + 1])
        words = f"it holds {count - 1} events, the anchor says {count}"
    else:  # an event added
        path.write_bytes(content + content.splitlines(keepends=True)[-1].replace(f"{count - 1},".encode(),
                                                                                 f"{count},".encode(), 1))
        words = f"it holds {count + 1} events, the anchor says {count}"
    report = honest.audit(batches=str(directory))
    [hit] = findings(report, "batches_complete")
    assert at_anchor(honest, hit, seq), hit
    # another file under the anchored name is no file with the anchored hash: the right one may still be published
    assert f"batch of {count} entries, seq {seq}-{seq + count - 1} withheld by DEMO-ROADS — file not published (yet)" \
        in hit.message
    assert words in hit.message, hit.message
    assert "none of its events is applied" in hit.message and hit.agency == "DEMO-ROADS"
    if fault != "deleted":
        assert "the published file is not the anchored one" in hit.message and hit.field == "file_hash"
    # The running hash and count still reproduce (the anchor is on chain); the batch's events are missing from the
    # state, which the transitions show: a case of the batch closed later by an entry of its own was never opened.
    assert report.check("log_complete").status is Status.PASS
    assert "batches_complete" in failed(report)
    [orphan] = findings(report, "case_transitions")
    assert orphan.seq == honest.seqs["closed alone"] and "before the case was opened" in orphan.message
    assert f"may be in batch seq {seq}, which DEMO-ROADS withheld" in orphan.message


def test_a_batch_file_withheld_by_the_service(honest: HonestLedger, tmp_path: Path) -> None:
    """The API does not serve the files (its batch directory is empty) but serves the batches' entries from its
    index: the audit, reading the files from the API by default, finds both batches unavailable, at their anchors —
    and the API serving entries nobody can check from their files is a finding against the operator."""
    empty = tmp_path / "none"
    empty.mkdir()
    report = honest.audit(batch_dir=empty, case_sample=5)
    hits = findings(report, "batches_complete")
    batch_seqs = [honest.seqs["hotline batch"], honest.seqs["water batch"]]
    assert [h.seq for h in hits] == batch_seqs
    for hit, seq in zip(hits, batch_seqs, strict=True):
        assert at_anchor(honest, hit, seq)
        assert "the batch file is not available" in hit.message and f"/api/v1/batches/{seq}/file" in hit.message
    assert report.check("log_complete").status is Status.PASS
    served = [f for f in findings(report, "api_records") if "whose file cannot be read" in f.message]
    assert sorted(f.seq for f in served) == sorted(batch_seqs * 2)  # the entry pages and the export
    assert all("the API does not serve the batch's file itself" in f.message and f.agency is None for f in served)


@pytest.mark.parametrize("fault", ["lacks an entry", "another root", "malformed line"])
def test_an_anchored_root_over_a_file_that_does_not_match(honest: HonestLedger, tmp_path: Path, fault: str) -> None:
    """The agency anchors (root, count, file hash) where the file it publishes (and whose hash it anchors) lacks an
    entry, holds other events than the root's, or has a malformed line."""
    t = honest.now() + 60
    events = [opened(f"short-{i}", t - HOUR) for i in range(4)] + [later("short-0", CaseAction.FULFILLED, t - 60)]
    full = batches.build_batch(events)
    if fault == "lacks an entry":
        content, root, count = batches.build_batch(events[:-1]).content, full.root, full.count
        words, field = "the file holds 4 events, the anchor says 5: 1 missing", "count"
    elif fault == "another root":
        content, root, count = full.content, batches.build_batch(events[::-1]).root, full.count
        words, field = f"the file's 5 events build Merkle root 0x{full.root.hex()}, the anchor says", "root"
    else:
        content, root, count = full.content.replace(b",6,", b",66,", 1), full.root, full.count
        words, field = "line 6: not a well-formed case event", "line 6"
    directory = copy_batches(honest, tmp_path / "batches")
    (directory / f"{keccak(content).hex()}.csv").write_bytes(content)
    with chain_state(honest):
        seq = honest.ledger.entry_count()
        demo.set_next_block_time(honest.chain, t)
        honest.ledger.anchor_batch(honest.signers["DEMO-ROADS"], root, count, keccak(content))
        report = honest.audit(batches=str(directory))
        [hit] = findings(report, "batches_complete")
        assert at_anchor(honest, hit, seq)
    assert words in hit.message and hit.field == field, hit.message
    assert "withheld by DEMO-ROADS — can never match" in hit.message and hit.agency == "DEMO-ROADS"
    assert report.check("log_complete").status is Status.PASS


def test_batched_events_join_the_other_checks(honest: HonestLedger, tmp_path: Path) -> None:
    """A batch with an invalid transition and a backdated event: found by the transitions and timeliness checks,
    pointing at the batched entry's seq and the anchoring transaction and log; the batch itself is fine."""
    t = honest.now() + 60
    events = [opened("b-ok", t - HOUR), later("b-never-opened", CaseAction.FULFILLED, t - 60),
              opened("b-backdated", t - 9 * DAY)]
    with chain_state(honest):
        batch, seq = honest.anchor(events, at=t, directory=tmp_path / "batches")
        report = honest.audit(batches=str(tmp_path / "batches"))
        assert report.check("batches_complete").findings[0].seq != seq  # the honest batches are not in that directory
        copy_batches(honest, tmp_path / "all")
        batches.BatchStore(tmp_path / "all").put(batch)
        report = honest.audit(batches=str(tmp_path / "all"))
        [transition] = findings(report, "case_transitions")
        assert at_anchor(honest, transition, seq, seq + 1)
        assert "fulfilled before the case was opened" in transition.message
        [backdated] = findings(report, "timeliness")
        assert at_anchor(honest, backdated, seq, seq + 2) and "possible backdating" in backdated.message
        assert report.check("batches_complete").status is Status.PASS
        assert report.check("authorised").counts["batches"] == 3
        assert failed(report) == {"case_transitions", "timeliness"}


def test_api_serving_a_wrong_merkle_proof_or_batch(honest: HonestLedger) -> None:
    """The API's Merkle proof of a batched record that does not lead to the anchored root, and a batch listed with
    another root: both found, at the anchoring transaction (the record's seq, the batch's seq)."""
    seq = honest.seqs["hotline batch"]
    target = seq + 3

    def bend_proof(body: Any, request: Request) -> Any:
        for item in body["items"]:
            batch = item["proof"].get("batch")
            if item["seq"] == target and batch and batch.get("merkle_proof"):
                batch["merkle_proof"][0] = "0x" + "00" * 32
        return body

    def other_root(body: Any, request: Request) -> Any:
        for item in body["items"]:
            if item["seq"] == seq:
                item["root"] = "0x" + "ab" * 32
        return body

    report = honest.audit(wrap=lying("/api/v1/entries", bend_proof), case_sample=5)
    # (entry_views too, when one of the log pages it draws holds the record)
    assert "api_records" in failed(report) and failed(report) <= {"api_records", "entry_views"}
    assert all(f.seq == target for f in findings(report, "entry_views"))
    [hit] = findings(report, "api_records")
    assert at_anchor(honest, hit, seq, target) and "does not lead to the anchored root" in hit.message
    report = honest.audit(wrap=lying("/api/v1/batches", other_root), case_sample=5)
    assert failed(report) == {"api_records"}
    [hit] = findings(report, "api_records")
    assert at_anchor(honest, hit, seq) and hit.field == "root" and hit.actual == "0x" + "ab" * 32


# --- withheld batches and hidden receipt case events: findings against the agency (issue 10) ----------------------


def withholding(h: HonestLedger, agency: str, name: str, directory: Path, at: int) -> tuple[int, int]:
    """`agency` anchors a batch of three new cases (two closed in it), its file published only in `directory` (the
    service never sees it); returns the batch's first seq and count."""
    events = [opened(f"{name}-{i}", at - HOUR, "WATER-OUTAGE-24H" if agency == "DEMO-WATER" else "STREETLIGHT-48H")
              for i in range(3)]
    events += [later(f"{name}-0", CaseAction.FULFILLED, at - 60), later(f"{name}-1", CaseAction.REJECTED, at - 30)]
    batch, seq = h.anchor(events, agency, at=at, directory=directory)
    return seq, batch.count


def test_agency_withholding_a_batch_file_is_a_finding_against_that_agency_alone(
    honest: HonestLedger, tmp_path: Path
) -> None:
    """The water office anchors a batch and never publishes its file; the roads office goes on writing (an entry and
    a batch, published). The audit names the water office — and only it — for the withheld batch, the seqs and
    entries it stands for and the anchoring transaction and log; everything else audits clean: the chain's checks,
    a roads case (the water office's batch cannot hold it) and, with the API over an index that quarantined the
    batch, no entry of it "missing from the API" and no metric differing. (The API half needs the index's quarantine
    of withheld batches and /batches listing them: ledger/index/withheld.py, api/.)"""
    index = honest.index_copy(tmp_path)
    with chain_state(honest):
        t = honest.now() + 60
        seq, count = withholding(honest, "DEMO-WATER", "withheld", tmp_path / "private", t)
        after = honest.write(opened("after-withheld", t + 60), at=t + 120)
        _, published = honest.anchor([opened("published-later", t + 100), later("published-later",
                                                                                CaseAction.ACCEPTED, t + 150)],
                                     at=t + 180)
        assert published > after > seq
        report = honest.audit(batches=str(honest.batch_dir))  # the chain and the published files
        assert failed(report) == {"batches_complete"}, {c.name: c.findings[:3] for c in report.failed}
        [hit] = findings(report, "batches_complete")
        assert at_anchor(honest, hit, seq) and hit.agency == "DEMO-WATER"
        assert f"batch of {count} entries, seq {seq}-{seq + count - 1} withheld by DEMO-WATER" in hit.message
        assert "file not published (yet)" in hit.message and "none of its events is applied" in hit.message
        assert hit.subject.startswith("agency DEMO-WATER, batch seq")
        check = report.check("batches_complete")
        assert check.counts["batches_withheld"] == 1 and check.counts["entries_withheld"] == count
        assert check.counts["batches_not_published"] == 1 and check.counts["batches_never_matching"] == 0
        assert check.counts["batches_verified"] == 3  # the honest two and the roads office's new one
        assert report.stats["withheld_by_agency"] == {"DEMO-WATER": {
            "batches": 1, "entries": count, "not_published": 1, "never_match": 0, "hidden_receipt_events": 0,
        }}
        assert any("DEMO-WATER: 1 batch withheld (5 entries; 1 not published (yet))" in n for n in check.notes)
        assert report.check("log_complete").status is Status.PASS
        # the reports put the agency first
        html = render_html(report)
        assert "DEMO-WATER" in html.split("Batch findings against the agencies")[1][:2000]
        console = Console(file=io.StringIO(), width=200)
        print_summary(report, console)
        summary = console.file.getvalue()  # type: ignore[attr-defined]
        assert "Against the agencies that anchored the batches" in summary
        assert f"DEMO-WATER: batches withheld 1, entries withheld {count}, file not published (yet) 1" in summary
        # a roads case verifies: the water office's batch cannot hold it
        result = verify(honest.url, honest.ledger.address, case_id("after-withheld"), agency="DEMO-ROADS",
                        batches=str(honest.batch_dir))
        assert result["ok"] and not result["unread_batches"]
        # one of the water office's cases does not: its events may be in the batch it withholds
        result = verify(honest.url, honest.ledger.address, case_id("water-batch-1"), agency="DEMO-WATER",
                        batches=str(honest.batch_dir))
        assert not result["ok"]
        [note] = result["unread_batches"]
        assert f"batch seq {seq} ({count} entries) of DEMO-WATER withheld — file not published (yet)" in note

        # The service: its index quarantines the batch and goes on; its API agrees with the audit.
        honest.sync(index)
        report = honest.audit(index, case_sample=20)
        assert failed(report) == {"batches_complete"}, {c.name: c.findings[:3] for c in report.failed}
        assert [f.agency for f in findings(report, "batches_complete")] == ["DEMO-WATER"]
        api = report.check("api_records")
        assert api.counts["entries_compared"] == honest.ledger.entry_count() - count
        assert any(f"of 1 withheld batch(es) (seq {seq})" in note for note in api.notes)


def test_agency_anchoring_a_random_root_can_never_match(honest: HonestLedger, tmp_path: Path) -> None:
    """The roads office publishes a well-formed file and anchors its hash and count under a random root: no file can
    ever match that anchor. The audit names the roads office and says the batch can never match; the rest audits
    clean, with the API over an index that quarantined the batch for ever too. (The API half needs the index's
    quarantine, and the API serving a withheld batch's file: ledger/index/withheld.py, api/.)"""
    index = honest.index_copy(tmp_path)
    directory = copy_batches(honest, tmp_path / "batches")
    t = honest.now() + 60
    batch = batches.build_batch([opened(f"random-root-{i}", t - HOUR) for i in range(3)])
    (directory / f"{batch.file_hash.hex()}.csv").write_bytes(batch.content)
    with chain_state(honest):
        seq = honest.ledger.entry_count()
        demo.set_next_block_time(honest.chain, t)
        honest.ledger.anchor_batch(honest.signers["DEMO-ROADS"], keccak(b"a random root"), batch.count,
                                   batch.file_hash)
        honest.write(opened("after-random-root", t + 60), at=t + 120)
        for report in (honest.audit(batches=str(directory)), None):
            if report is None:  # the service: quarantined for ever, and the API agrees with the audit
                honest.sync(index, directory)
                report = honest.audit(index, batch_dir=directory, case_sample=20)
            assert failed(report) == {"batches_complete"}, {c.name: c.findings[:3] for c in report.failed}
            [hit] = findings(report, "batches_complete")
            assert at_anchor(honest, hit, seq) and hit.agency == "DEMO-ROADS" and hit.field == "root"
            assert "withheld by DEMO-ROADS — can never match" in hit.message
            assert f"build Merkle root 0x{batch.root.hex()}" in hit.message
            assert report.stats["withheld_by_agency"]["DEMO-ROADS"]["never_match"] == 1


def test_api_withholding_a_batch_whose_file_matches(honest: HonestLedger, tmp_path: Path) -> None:
    """The operator's index drops the hotline batch's entries and calls the batch withheld, though its file is
    published and matches: the audit, which read that file, reports the API — not the agency."""
    seq, count = honest.seqs["hotline batch"], honest.seqs["hotline batch count"]
    index = tampered(
        honest, tmp_path,
        ("DELETE FROM entries WHERE seq >= ? AND seq < ?", (seq, seq + count)),
        ("UPDATE batches SET withheld = 'missing', withheld_reason = 'file missing' WHERE seq = ?", (seq,)),
    )
    report = honest.audit(index, batches=str(honest.batch_dir), case_sample=5)
    assert report.check("batches_complete").status is Status.PASS
    api = findings(report, "api_records")
    missing = [f for f in api if "the API withholds entries of a batch that can be indexed" in f.message]
    assert len(missing) == 2 and all(at_anchor(honest, f, seq) for f in missing)  # entry pages and export
    assert all(f"seqs {seq}-{seq + count - 1} ({count} entries)" in f.message for f in missing)
    assert all(f.agency is None for f in api)
    # /batches, and the agency page's list of its withheld batches (/batches?agency_id=…&withheld=true)
    claims = [f for f in api if f.field == "withheld"]
    assert len(claims) == 2 and {f.subject for f in claims} == {
        "GET /api/v1/batches", "GET /api/v1/batches?agency_id=DEMO-ROADS&withheld=true"}
    for claim in claims:
        assert at_anchor(honest, claim, seq) and "matches the anchor" in claim.message and claim.actual == "missing"
    # the single batch and the agency's page say so too
    [single] = [f for f in findings(report, "entry_views") if f.field == "withheld"]
    assert single.subject == f"GET /api/v1/batches/{seq}" and at_anchor(honest, single, seq)
    counts = [f for f in api if f.field == "batches_withheld"]
    assert {f.subject for f in counts} == {"GET /api/v1/agencies", "GET /api/v1/agencies/DEMO-ROADS",
                                           "GET /api/v1/chain"}
    assert all(f.expected == 0 and f.actual == 1 for f in counts)


def test_receipt_case_fulfilment_hidden_in_a_batch(honest: HonestLedger, tmp_path: Path) -> None:
    """The roads office "fulfils" its open receipt case inside a batch, where the contract never sees it — the
    citizen could then neither rate nor dispute. The event stays an entry but is never applied: the rebuilt case
    stays open, and the audit names the roads office, the seq, the case and the batch. The rest audits clean (the
    index applies the same rule: ledger.cases.batched_event_applies)."""
    index = honest.index_copy(tmp_path)
    with chain_state(honest):
        t = honest.now() + 60
        events = [opened("hidden-neighbour", t - HOUR), later_receipt("fb-open", CaseAction.FULFILLED, t - 60),
                  later("hidden-neighbour", CaseAction.FULFILLED, t - 30)]
        _, seq = honest.anchor(events, at=t)
        honest.sync(index)
        report = honest.audit(index)  # every case view
        assert failed(report) == {"batches_complete"}, {c.name: c.findings[:3] for c in report.failed}
        [hit] = findings(report, "batches_complete")
        case = "0x" + receipt_case_id("fb-open").hex()
        assert at_anchor(honest, hit, seq, seq + 1) and hit.agency == "DEMO-ROADS"
        assert hit.message.startswith(f"receipt case event hidden in a batch: fulfilled of receipt case {case}")
        assert f"entry 1 of batch seq {seq} anchored by DEMO-ROADS" in hit.message
        assert hit.field == "action" and hit.actual == "fulfilled" and case in hit.subject
        check = report.check("batches_complete")
        assert check.counts["receipt_events_hidden"] == 1 and check.counts["batches_verified"] == 3
        assert report.stats["withheld_by_agency"]["DEMO-ROADS"]["hidden_receipt_events"] == 1
        # the rebuilt case stays open; the batch's other case is fulfilled as usual
        result = verify(honest.url, honest.ledger.address, receipt_case_id("fb-open"), agency="DEMO-ROADS",
                        batches=str(honest.batch_dir))
        [state] = result["cases"]
        assert state["state"]["status"] == "open" and not result["ok"]
        assert [e["status_after"] for e in state["events"] if e["seq"] == seq + 1] == [
            "NOT APPLIED: a receipt case's event hidden in a batch"]
        [hidden] = result["hidden_events"]
        assert hidden.startswith(f"seq {seq + 1}: fulfilled of this receipt case hidden in batch seq {seq}")
        neighbour = verify(honest.url, honest.ledger.address, case_id("hidden-neighbour"), agency="DEMO-ROADS",
                           batches=str(honest.batch_dir))
        assert neighbour["ok"] and neighbour["cases"][0]["state"]["status"] == "fulfilled"
