"""The checks one by one: the honest ledger passes every one with zero findings; each check's rule holds on crafted
streams of decoded entries (no node needed: what a lying node or a buggy contract could show); the reports are
self-contained; the auditor stays independent of the service's code paths."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ledger import receipts
from ledger.audit import AuditContext, CannotAudit, Status, expected, run_audit
from ledger.audit.batchfiles import WITHHELD_IMPOSSIBLE, BatchOutcome, DirectorySource, anchors_of, load
from ledger.audit.chainread import GOVERNOR_ROLE, ChainReader, RoleChange
from ledger.audit.checks import CHECKS, Check, run_check
from ledger.audit.checks.api_records import sample_cases
from ledger.audit.report import render_html, write_json
from ledger.audit.rpc import Rpc
from ledger.batches import MAX_ENTRIES, batch_hash
from ledger.chain.logs import DecodedEntry
from ledger.encoding import code_text
from ledger.records import CaseAction, EntryKind
from tests.support.honest import DAY, HonestLedger, case_id, copy_entry, receipt_case_id, receipt_code

ROOT = Path(__file__).resolve().parents[2]


#: the honest ledger's batch files, checked against their anchors (by the anchor's seq): crafted streams are made
#: from its entries, batch anchors included, and their files come with them
BATCHES: dict[int, Any] = {}


@pytest.fixture(scope="session")
def entries(honest: HonestLedger) -> list[DecodedEntry]:
    """The honest ledger's entries, as the auditor decodes them (batch anchors as logged)."""
    rpc = Rpc(honest.url)
    try:
        found = ChainReader(rpc, honest.ledger.address).read().entries
    finally:
        rpc.close()
    outcomes = load(anchors_of(found), DirectorySource(honest.batch_dir))
    assert outcomes and all(o.content is not None for o in outcomes.values())
    BATCHES.update({seq: o.content for seq, o in outcomes.items()})
    return found


def context(entries: list[DecodedEntry], **kwargs: Any) -> AuditContext:
    kwargs.setdefault("batches", BATCHES)
    return AuditContext.for_entries(entries, **kwargs)


def last_seq(entries: list[DecodedEntry]) -> int:
    """The last seq of the ledger (a batch anchor's entries counted): crafted entries go after it."""
    return context(entries).model.count - 1


def replace(entries: list[DecodedEntry], *changed: DecodedEntry) -> list[DecodedEntry]:
    by_seq = {e.seq: e for e in changed}
    return [by_seq.get(e.seq, e) for e in entries]


# --- the honest ledger ---------------------------------------------------------------------------------------------


def test_honest_ledger_passes_every_check_with_zero_findings(honest_report: Any, honest: HonestLedger) -> None:
    statuses = {c.name: c.status for c in honest_report.checks}
    assert statuses == {
        "contract_code": Status.PASS, "log_complete": Status.PASS, "authorised": Status.PASS,
        "case_transitions": Status.PASS, "timeliness": Status.PASS, "api_records": Status.PASS,
        "entry_views": Status.PASS, "metrics_reproduced": Status.PASS, "feedback_authentic": Status.PASS,
        "batches_complete": Status.PASS, "open311": Status.PASS, "receipt_views": Status.PASS,
        "attestations": Status.PASS, "filings_answered": Status.PASS,
    }
    assert honest_report.summary()["findings"] == 0 and honest_report.exit_code == 0 and not honest_report.errors
    count = honest.ledger.entry_count()
    assert honest_report.check("log_complete").counts["entries"] == count
    # the batches: read from the API, every one verified, their events compared like any other
    batches = honest_report.check("batches_complete")
    assert batches.counts["batches"] == batches.counts["batches_verified"] == 2
    assert batches.counts["entries_verified"] == honest.seqs["hotline batch count"] + 4
    assert "/api/v1/batches/{seq}/file" in batches.notes[0]
    assert honest_report.stats["batches"]["read"] == 2
    api = honest_report.check("api_records").counts
    assert api["batches_compared"] == 2 and api["merkle_proofs_checked"] == batches.counts["entries_verified"]
    assert honest_report.check("authorised").counts["keys_revoked"] == 1
    assert honest_report.check("case_transitions").counts["corrections_applied"] == 2
    api = honest_report.check("api_records").counts
    assert api["entries_compared"] == api["exported_entries_compared"] == count
    assert api["case_views_compared"] == api["case_rows_compared"] == honest_report.stats["cases"]
    assert honest_report.check("metrics_reproduced").counts["figures_compared"] >= 30
    # every commitment's trend (and the busiest one's over the whole period); single entries with a Merkle proof of
    # each batch among them, every single batch, drawn pages of the log
    assert honest_report.check("metrics_reproduced").counts["trends_compared"] == honest_report.stats["trends"][
        "commitments"] + 1
    views = honest_report.check("entry_views").counts
    assert views["entries_fetched"] >= 100 and views["merkle_proofs_checked"] >= 2
    assert views["batches_fetched"] == 2 and views["entry_pages_fetched"] == 3
    feedback = honest_report.check("feedback_authentic").counts
    assert feedback["receipts"] >= 4 and feedback["ratings"] >= 2 and feedback["disputes"] >= 2
    assert feedback["answered_in_time"] == feedback["disputes"] - feedback["awaiting_answer"]
    filings = honest_report.check("filings_answered").counts
    assert filings == {"filings": 3, "accepted": 1, "rejected": 2, "awaiting": 0, "unanswered_overdue": 0,
                       "answered_late": 0, "filings_compared": 3}
    # signed by citizens' own keys: ratings, disputes, filings and the one receipt claim
    assert honest_report.check("authorised").counts["citizen_entries"] == (
        feedback["ratings"] + feedback["disputes"] + filings["filings"] + 1)
    assert honest_report.stats["feedback_by_key_origin"]["filed"]["ratings"] == 1
    assert honest_report.stats["filings_by_agency"]["DEMO-ROADS"]["duplicate"] == 1
    # late recordings are listed, but the demo city's few are no finding
    assert honest_report.check("timeliness").warnings


def test_contract_code_from_the_verified_build_cache_says_so(
    honest: HonestLedger, compiled: dict[str, Any], tmp_path: Path
) -> None:
    """A build this auditor cached earlier, of exactly this compiler input, stands for the fresh one; the report
    says where it came from (ledger.audit.build; its rules in tests/audit/test_build_cache.py)."""
    from ledger.audit.build import BackgroundBuild, BuildCache, compiler_input

    BuildCache(tmp_path).store(compiler_input(), compiled)
    build = BackgroundBuild(tmp_path)
    report = run_audit(honest.config(compile=True), compiled=build)
    code = report.check("contract_code")
    assert code.status is Status.PASS and not code.findings
    assert build.origin is not None and build.origin.input_sha256 is not None
    assert report.stats["contract_build"]["from_cache"] is True
    assert report.stats["contract_build"]["input_sha256"] == build.origin.input_sha256
    assert any("verified build cache" in n and build.origin.input_sha256 in n for n in code.notes)


def test_reports_are_self_contained(honest_report: Any, tmp_path: Path) -> None:
    page = render_html(honest_report)
    assert page.count("<svg") >= 4 and "PASS" in page
    # nothing that loads anything: no script, stylesheet, image, font or link to fetch (the node's URL appears as text)
    for forbidden in ("<script", "<link", " src=", "@import", "url(", 'href="http', "<img", "<iframe"):
        assert forbidden not in page
    for check in CHECKS:
        assert f'id="{check.name}"' in page
    write_json(honest_report, tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["exit_code"] == 0 and data["summary"]["findings"] == 0
    assert [c["name"] for c in data["checks"]] == [c.name for c in CHECKS]
    assert data["target"]["entry_count"] == honest_report.target["entry_count"]


def test_every_check_is_registered_once_with_its_rule() -> None:
    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names)) == 14
    assert all(isinstance(c, Check) and c.title and len(c.description) > 80 for c in CHECKS)


def test_api_checks_are_skipped_without_an_api(entries: list[DecodedEntry]) -> None:
    for name in ("api_records", "entry_views", "metrics_reproduced", "open311", "receipt_views"):
        result = run_check(name, context(entries))
        assert result.status is Status.SKIPPED and "no public API" in result.notes[0]


# --- authorisation, on crafted streams --------------------------------------------------------------------------------


def test_entry_signed_by_a_revoked_key(entries: list[DecodedEntry], honest: HonestLedger) -> None:
    target = next(e for e in entries if e.seq == honest.seqs["fulfilled again"])
    forged = copy_entry(target, actor=honest.revoked_key)
    result = run_check("authorised", context(replace(entries, forged)))
    [finding] = result.findings
    assert (finding.seq, finding.tx_hash, finding.log_index) == (target.seq, "0x" + target.tx_hash.hex(),
                                                                target.log_index)
    assert f"a key revoked at seq {honest.seqs['spare revoked']}, before this entry" in finding.message


def test_entry_signed_by_a_key_never_authorised_or_of_another_agency(
    entries: list[DecodedEntry], honest: HonestLedger
) -> None:
    roads = [e for e in entries if e.kind == EntryKind.CASE_EVENT and code_text(e.agency_id) == "DEMO-ROADS"]
    stranger = copy_entry(roads[0], actor=Account.create().address)
    other = copy_entry(roads[1], actor=honest.signers["DEMO-WATER"].address)
    result = run_check("authorised", context(replace(entries, stranger, other)))
    messages = {f.seq: f.message for f in result.findings}
    assert "a key never authorised for any agency" in messages[roads[0].seq]
    assert "a key authorised for DEMO-WATER" in messages[roads[1].seq]
    assert "not for DEMO-ROADS" in messages[roads[1].seq]


def test_governance_entry_by_an_account_without_the_role(entries: list[DecodedEntry], honest: HonestLedger) -> None:
    registration = entries[0]
    grant = RoleChange(0, 0, b"\0" * 32, GOVERNOR_ROLE, honest.governance.address, True)
    forged = copy_entry(registration, actor=Account.create().address)
    result = run_check("authorised", context(replace(entries, forged), role_changes=[grant]))
    [finding] = result.findings
    assert finding.seq == 0 and "did not hold GOVERNOR_ROLE" in finding.message
    # with the role history out of range, governance actors are not checked, and the check says so
    result = run_check("authorised", context(entries))
    assert result.status is Status.PASS and "governance actors were not checked" in result.notes[0]


# --- timeliness ---------------------------------------------------------------------------------------------------


def _case_events(entries: list[DecodedEntry], agency: str) -> list[DecodedEntry]:
    return [e for e in entries if e.kind == EntryKind.CASE_EVENT and code_text(e.agency_id) == agency]


def test_claimed_after_recorded_and_backdating(entries: list[DecodedEntry]) -> None:
    a, b, c = _case_events(entries, "DEMO-ROADS")[10:13]
    future = copy_entry(a, record={"occurred_at": a.block_time + 5})
    backdated = copy_entry(b, record={"occurred_at": b.block_time - 8 * DAY})
    late = copy_entry(c, record={"occurred_at": c.block_time - 2 * DAY})
    result = run_check("timeliness", context(replace(entries, future, backdated, late)))
    found = {f.seq: f.message for f in result.findings}
    assert set(found) == {a.seq, b.seq}
    assert "5 s after the block time" in found[a.seq] and "8.0 days after" in found[b.seq]
    assert any(w.seq == c.seq and "late recording: 2.0 days" in w.message for w in result.warnings)


def test_an_agency_recording_late_as_a_habit(entries: list[DecodedEntry]) -> None:
    water = _case_events(entries, "DEMO-WATER")
    n = len(water) // 10 + 1  # about 10 %, above the 5 % threshold
    late = [copy_entry(e, record={"occurred_at": e.block_time - 2 * DAY}) for e in water[:n]]
    honest_late = run_check("timeliness", context(entries)).counts["late_recordings"]
    result = run_check("timeliness", context(replace(entries, *late)))
    [finding] = result.findings
    # its events as the checks see them: those of its batch too
    total = len(_case_events(context(entries).model.entries, "DEMO-WATER"))
    assert total > len(water)
    assert finding.subject == "agency DEMO-WATER" and f"of its {total} case events" in finding.message
    assert result.counts["late_recordings"] >= honest_late + n - 3
    assert len([w for w in result.warnings if w.message.startswith("late recording")]) >= n


# --- transitions ----------------------------------------------------------------------------------------------------


def test_transitions_on_a_crafted_case(entries: list[DecodedEntry]) -> None:
    """Take one fulfilled case's events and make them wrong in several ways at once."""
    ctx = context(entries)
    record = next(r for r in ctx.model.cases.values() if r.state and r.state.status == "fulfilled"
                  and [e.record["action"] for e in r.events][-1] == CaseAction.FULFILLED and len(r.events) >= 3)
    opened_entry, accepted_entry, fulfilled_entry = record.events[0], record.events[1], record.events[-1]
    crafted = replace(
        entries,
        copy_entry(accepted_entry, record={"action": int(CaseAction.RESUMED)}),  # resumed while open
        copy_entry(fulfilled_entry, record={"action": int(CaseAction.WITHDRAWN)}),
    )
    result = run_check("case_transitions", context(crafted))
    [finding] = result.findings
    assert finding.seq == accepted_entry.seq and "resumed while the case is open" in finding.message
    assert finding.subject == f"case {record.agency_id}/0x{record.case_id.hex()}"
    # the agency's correction aimed at the case's opening: refused (no correction voids an Opened), and shown
    correction = dataclasses.replace(
        fulfilled_entry, seq=last_seq(entries) + 1, kind=EntryKind.CORRECTION,
        record={"target_seq": opened_entry.seq, "reason_hash": b"\0" * 32, "occurred_at": fulfilled_entry.block_time},
    )
    result = run_check("case_transitions", context([*entries, correction]))
    assert result.status is Status.PASS and result.counts["cases_never_opened"] == 0
    [warning] = result.warnings
    assert warning.seq == correction.seq
    assert f"is the opened event of case 0x{record.case_id.hex()}, which no correction can void" in warning.message
    # a case whose opening is another action: every event comes before an opening
    crafted = replace(entries, copy_entry(opened_entry, record={"action": int(CaseAction.ACCEPTED)}))
    result = run_check("case_transitions", context(crafted))
    assert {f.seq for f in result.findings} == {e.seq for e in record.events}
    assert all("before the case was opened (it never is)" in f.message for f in result.findings)
    assert result.counts["cases_never_opened"] == 1


def test_correction_of_another_agencys_entry_is_a_warning(entries: list[DecodedEntry]) -> None:
    water = _case_events(entries, "DEMO-WATER")[0]
    roads_case = _case_events(entries, "DEMO-ROADS")[5]
    correction = dataclasses.replace(
        water, seq=last_seq(entries) + 1, kind=EntryKind.CORRECTION,
        record={"target_seq": roads_case.seq, "reason_hash": b"\0" * 32, "occurred_at": water.block_time},
    )
    result = run_check("case_transitions", context([*entries, correction]))
    assert result.status is Status.PASS
    [warning] = result.warnings
    assert warning.seq == correction.seq and "belongs to another agency (DEMO-ROADS)" in warning.message


# --- feedback, on crafted streams (what a lying node or a contract that let it through could show) --------------------


def _feedback_entry(entries: list[DecodedEntry], seq: int) -> DecodedEntry:
    return next(e for e in entries if e.seq == seq)


def feedback_findings(stream: list[DecodedEntry]) -> list[Any]:
    return run_check("feedback_authentic", context(stream)).findings


def test_ratings_the_contract_would_refuse(entries: list[DecodedEntry], honest: HonestLedger) -> None:
    rating = _feedback_entry(entries, honest.seqs["fb-rated rating"])
    top = last_seq(entries)
    open_receipt = receipts.address(receipt_code("fb-open"))
    again = copy_entry(rating, seq=top + 1, record={"score": 1})
    early = copy_entry(rating, seq=top + 2, actor=open_receipt, record={"case_id": receipt_case_id("fb-open")})
    stranger = copy_entry(rating, seq=top + 3, actor=Account.create().address,
                          record={"case_id": receipt_case_id("fb-open")})
    unknown = copy_entry(rating, seq=top + 4, record={"case_id": receipt_case_id("no receipt")})
    hits = feedback_findings([*entries, again, early, stranger, unknown])
    messages = {(f.seq, f.message.split(":")[0]) for f in hits}
    assert messages == {
        (top + 1, "a second rating of the case (it had 1)"),
        (top + 2, "rating before the case was closed (open)"),
        (top + 3, "rating not signed by the case's receipt key (" + open_receipt + ")"),
        (top + 3, "rating before the case was closed (open)"),
        (top + 3, "a second rating of the case (it had 1)"),  # the one at top + 2 counts, refused or not
        (top + 4, "rating of a case that has no receipt"),
        (top + 4, "rating before the case was opened"),
    }
    assert all((f.tx_hash, f.log_index) == ("0x" + rating.tx_hash.hex(), rating.log_index) for f in hits)


def test_a_rating_while_the_case_is_reopened(entries: list[DecodedEntry], honest: HonestLedger) -> None:
    """Cut the stream right after the reopening that answered a dispute, and rate the case there."""
    reopened = honest.seqs["fb-reopened answer"]
    rating = _feedback_entry(entries, honest.seqs["fb-reopened rating"])
    stream = [e for e in entries if e.seq <= reopened] + [copy_entry(rating, seq=reopened + 1)]
    [hit] = feedback_findings(stream)
    assert hit.seq == reopened + 1 and hit.message.startswith("rating while the case was reopened (open)")


def test_disputes_the_contract_would_refuse(entries: list[DecodedEntry], honest: HonestLedger) -> None:
    dispute = _feedback_entry(entries, honest.seqs["fb-rejected dispute"])
    fulfilled = _feedback_entry(entries, honest.seqs["fb fulfilled"])  # fb-rated's fulfilment
    top = last_seq(entries)
    rated = {"case_id": receipt_case_id("fb-rated")}
    rated_receipt = receipts.address(receipt_code("fb-rated"))
    stale = copy_entry(dispute, seq=top + 1, actor=rated_receipt, record={**rated, "closure": 2})
    window = (fulfilled.block_time or 0) + 31 * DAY
    late = copy_entry(dispute, seq=top + 2, actor=rated_receipt, record=rated, block_time=window)
    not_fulfilled = copy_entry(dispute, seq=top + 3, actor=receipts.address(receipt_code("fb-open")),
                               record={"case_id": receipt_case_id("fb-open")}, block_time=window)
    replayed = copy_entry(dispute, seq=top + 4, block_time=window)  # fb-rejected's answered dispute, again
    hits = feedback_findings([*entries, stale, late, not_fulfilled, replayed])
    by_seq: dict[int, list[str]] = {}
    for f in hits:
        by_seq.setdefault(f.seq, []).append(f.message)
    # the audit's "now" is the latest block's time, 31 days after the fulfilment: the first crafted dispute (recorded
    # at the honest dispute's time) has waited for an answer for three weeks by then
    assert [m.split(" (")[0] for m in by_seq[top + 1]] == [
        "dispute names closure 2, but the case's latest is closure 1",
        "dispute left unanswered 20.9 days past its deadline",
    ]
    assert [m.split(" (")[0] for m in by_seq[top + 2]] == [
        "dispute recorded 31.0 days after the fulfilment it disputes"
    ]
    assert sorted(m.split(":")[0] for m in by_seq[top + 3]) == [
        "dispute names closure 1, but the case's latest is closure 0",
        "dispute of a case that is not fulfilled (open)",
    ]
    assert [m.split(" (")[0] for m in by_seq[top + 4]] == [
        "closure 1 of the case was disputed already",
        "dispute recorded 31.0 days after the fulfilment it disputes",
    ]


def test_receipts_the_contract_would_refuse(entries: list[DecodedEntry], honest: HonestLedger) -> None:
    receipt = _feedback_entry(entries, honest.seqs["fb-open receipt"])
    top = last_seq(entries)
    plain = bytes([receipt.record["case_id"][0] & 0x7F]) + receipt.record["case_id"][1:]
    second = copy_entry(receipt, seq=top + 1, record={"receipt": Account.create().address})
    unflagged = copy_entry(receipt, seq=top + 2, record={"case_id": plain})
    hits = feedback_findings([*entries, second, unflagged])
    assert sorted((f.seq, f.message.split(":")[0].split(" (")[0]) for f in hits) == [
        (top + 1, "a second receipt for the case"),
        (top + 2, "receipt for a case id without the receipt flag"),
        (top + 2, "receipt issued before the case's Opened event"),
    ]


# --- log completeness -----------------------------------------------------------------------------------------------


def test_log_gaps_duplicates_and_extras(entries: list[DecodedEntry]) -> None:
    # the ledger up to its last batch (the water office's), before the auditor's entries
    last_batch = max(i for i, e in enumerate(entries) if e.kind == EntryKind.BATCH_ANCHORED)
    entries = entries[: last_batch + 1]
    model_ctx = context(entries)
    count, head = model_ctx.model.count, model_ctx.model.head
    gapped = [e for e in entries if e.seq not in (100, 101, 102)]
    result = run_check("log_complete", context(gapped, contract_count=count, contract_head=head))
    [gap] = result.findings
    assert gap.seq == 100 and "seqs 100-102 (3 entries)" in gap.message and "after seq 99" in gap.message
    twice = [*entries, entries[7]]
    result = run_check("log_complete", context(twice, contract_count=count, contract_head=head))
    [dup] = result.findings
    assert dup.seq == 7 and "served this log twice" in dup.message
    result = run_check("log_complete", context(entries, contract_count=count - 1, contract_head=head))
    # the last entry is a batch's (the water office's): its anchor claims one entry too many
    anchor = entries[-1]
    assert anchor.kind == EntryKind.BATCH_ANCHORED and anchor.seq + anchor.record["count"] == count
    assert any(f.seq == anchor.seq and "claims 4 entries, beyond the contract's entry count" in f.message
               for f in result.findings)
    result = run_check("log_complete", context(entries[:-1], contract_count=anchor.seq - 1, contract_head=head))
    assert any(f.seq == anchor.seq - 1 and "beyond the contract's entry count" in f.message for f in result.findings)
    # a batch's seqs are its own: another entry claiming one of them is found, and a gap after a batch too
    hotline = next(e for e in entries if e.kind == EntryKind.BATCH_ANCHORED)
    intruder = dataclasses.replace(entries[7], seq=hotline.seq + 3)
    result = run_check("log_complete", context([*entries, intruder], contract_count=count, contract_head=head))
    [claim] = [f for f in result.findings if f.seq == hotline.seq + 3]
    words = f"also one of the {hotline.record['count']} entries of the batch anchored at seq {hotline.seq}"
    assert words in claim.message
    after = hotline.seq + hotline.record["count"]
    result = run_check("log_complete", context([e for e in entries if e.seq != after], contract_count=count,
                                                contract_head=head))
    [gap] = result.findings
    assert gap.seq == after and f"after seq {hotline.seq}" in gap.message
    result = run_check("log_complete", context(entries, contract_count=count, contract_head=b"\1" * 24))
    [mismatch] = result.findings
    assert mismatch.subject == "running hash" and mismatch.expected == "0x" + "01" * 24


# --- pieces ---------------------------------------------------------------------------------------------------------


def test_case_sample_is_the_seeds(entries: list[DecodedEntry]) -> None:
    """The sample is drawn from the audit's secret seed: the same seed replays it, another draws another."""
    model = context(entries).model
    everything, sampled = sample_cases(model, 10_000, random.Random(1))
    assert not sampled and len(everything) == len(model.cases)
    some, sampled = sample_cases(model, 25, random.Random(1))
    assert sampled and len(some) == 25 and some == sample_cases(model, 25, random.Random(1))[0]
    assert some != sample_cases(model, 25, random.Random(2))[0]


def test_differences_compare_values_not_representations() -> None:
    want = {"a": "0xAbC", "b": [1, 2], "c": {"d": None}}
    assert expected.differences(want, {"a": "0xabc", "b": [1, 2], "c": {"d": None}, "extra": 1}) == []
    assert expected.differences({"a": True}, {"a": 1}) == [("a", True, 1)]
    assert expected.differences({"a": 1}, {}) == [("a", 1, "(missing)")]
    assert expected.differences({"b": [1, 2]}, {"b": [1]}) == [("b (length)", 2, 1)]


def test_unreachable_node_cannot_be_audited(honest: HonestLedger) -> None:
    from ledger.dev.node import free_port

    with pytest.raises(CannotAudit, match="cannot reach the JSON-RPC node"):
        run_audit(honest.config(rpc_url=f"http://127.0.0.1:{free_port()}", timeout=2))


def test_a_check_that_breaks_makes_the_audit_incomplete(honest: HonestLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ctx: AuditContext, result: Any) -> None:
        raise RuntimeError("boom")

    patched = [dataclasses.replace(c, run=broken) if c.name == "case_transitions" else c for c in CHECKS]
    monkeypatch.setattr("ledger.audit.runner.CHECKS", patched)
    report = run_audit(honest.config())
    assert report.check("case_transitions").status is Status.SKIPPED
    assert report.errors == ["case_transitions: RuntimeError: boom"] and report.exit_code == 2


def test_the_auditor_reads_no_database() -> None:
    """Independent by construction: the auditor's modules load neither the indexer nor the store's database layer
    (``ledger.metrics`` brings in the table definitions it shares with the SQL implementation, nothing that opens
    a database)."""
    code = (
        "import sys, ledger.audit.cli, ledger.audit.verify_case, ledger.audit.runner;"
        "bad = [m for m in ('ledger.index.sync', 'ledger.store.db', 'api', 'sqlite3') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_corrections_void_by_the_shared_rule(entries: list[DecodedEntry], honest: HonestLedger) -> None:
    """The rebuilt state uses ledger.cases' voiding: the voided fulfilment and escalation do not count."""
    model = context(entries).model
    corrected = model.cases[("DEMO-ROADS", case_id("corrected"))].state
    assert corrected is not None and corrected.status == "fulfilled" and corrected.invalid_transitions == 0
    assert corrected.last_seq == honest.seqs["fulfilled again"]
    spare = model.cases[("DEMO-ROADS", case_id("spare"))].state
    assert spare is not None and not spare.escalated
    assert model.voided == {honest.seqs["corrected fulfilled"]: honest.seqs["correction"],
                            honest.seqs["accepted voided"]: honest.seqs["accepted voided"] + 1}


def test_a_live_index_moving_during_the_audit_is_no_finding(honest: HonestLedger, tmp_path: Path) -> None:
    """The indexer catches up with new entries while the audit runs: the API is compared at the position it
    first reported, metrics are compared again at its new one, and a case it changed meanwhile is a warning."""
    from fastapi import FastAPI, Request

    from ledger.records import CaseAction
    from tests.support.honest import chain_state, later

    index = honest.index_copy(tmp_path)
    synced: list[bool] = []

    def catch_up_after_the_first_answer(app: FastAPI) -> None:
        @app.middleware("http")
        async def catch_up(request: Request, call_next: Any) -> Any:
            response = await call_next(request)
            if request.url.path == "/api/v1/chain" and not synced:
                synced.append(True)
                honest.sync(index)
            return response

    with chain_state(honest):
        t = honest.now() + 60
        honest.write(later("relayed", CaseAction.ACCEPTED, t), at=t)
        report = honest.audit(index, wrap=catch_up_after_the_first_answer, case_sample=2000)
    assert synced and report.exit_code == 0, [f.message for c in report.checks for f in c.findings]
    warned = [w for w in report.check("api_records").warnings if "the index moved on" in w.message]
    assert warned and all(f"0x{case_id('relayed').hex()}" in (w.subject or "") for w in warned)
    assert "the index advanced from" in report.check("metrics_reproduced").notes[0]


def test_an_anchor_no_file_can_match_is_withheld_for_ever_without_fetching(
    entries: list[DecodedEntry], tmp_path: Path
) -> None:
    """An anchor claiming more entries than any batch file holds (the contract refuses it: only a lying node or an
    older contract shows one) is withheld as impossible, its file never fetched, and is a finding against its agency."""
    anchor = next(e for e in entries if e.kind == EntryKind.BATCH_ANCHORED)
    r = anchor.record
    huge = dataclasses.replace(anchor, seq=last_seq(entries) + 1, record={**r, "count": MAX_ENTRIES + 1},
                               record_hash=batch_hash(r["root"], MAX_ENTRIES + 1, r["file_hash"]))
    [outcome] = load([huge], DirectorySource(tmp_path)).values()  # an empty directory: never looked in
    assert outcome.withheld == WITHHELD_IMPOSSIBLE and outcome.problem is not None
    assert f"at most {MAX_ENTRIES:,}" in outcome.problem.message and outcome.where == f"directory {tmp_path}"
    ctx = context([*entries, huge])
    ctx.batch_files = {seq: BatchOutcome(ctx.model.anchors[seq], "(test)", content=content)
                       for seq, content in BATCHES.items()}
    ctx.batch_files[huge.seq] = outcome
    ctx.batch_source = f"directory {tmp_path}"
    result = run_check("batches_complete", ctx)
    [hit] = result.findings
    assert hit.seq == huge.seq and hit.agency == code_text(anchor.agency_id) and hit.field == "count"
    assert "can never match" in hit.message and result.counts["batches_never_matching"] == 1
    # its entries are counted in the log, and none of its events is in the state
    assert ctx.model.count == huge.seq + MAX_ENTRIES + 1 and huge.seq in ctx.model.unread
