"""Filings audited: what an agency can do to a citizen's filing that the filings module cannot refuse — leave it
unanswered, answer it late, open the filed case itself with a time of its own, reject it as a duplicate of a case that
does not exist — is each a finding of ``filings_answered`` pointing at the entry; and an operator who starts a filed
case's clock at its acceptance instead of its filing is caught comparing the API with the chain. Written on top of the
honest ledger (whose own filings pass: test_checks.py) and undone after each test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ledger.audit import run_audit
from ledger.audit.checks import run_check
from ledger.audit.context import AuditContext
from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode
from ledger.encoding import keccak
from ledger.records import CaseAction, CaseEvent, FilingDecision, filed_case_id, short_code
from tests.support import filings
from tests.support.agreement import chain_log
from tests.support.filed import code_of
from tests.support.honest import (
    DAY,
    HOUR,
    HonestLedger,
    answer_filing,
    chain_state,
    failed,
    file_request,
    findings,
)
from tests.support.tamper import mine_at, tampered
from tests.support.world import build_world, case_id

pytestmark = pytest.mark.slow


def test_a_filing_left_unanswered_is_awaited_then_overdue(honest: HonestLedger) -> None:
    with chain_state(honest):
        seq = file_request(honest, "fh-unanswered", honest.now() + 60)
        report = honest.audit()
        assert not failed(report)
        assert report.check("filings_answered").counts["awaiting"] == 1
        mine_at(honest, honest.now() + 4 * DAY)  # past one working day, whatever the weekday
        report = honest.audit()
        assert failed(report) == {"filings_answered"}
        (found,) = findings(report, "filings_answered")
        assert found.seq == seq and found.field == "answer" and "unanswered past its window" in found.message
        assert report.check("filings_answered").counts["unanswered_overdue"] == 1
        assert report.stats["filings_by_agency"]["DEMO-ROADS"]["overdue"] == 1


def test_an_answer_after_the_window_is_late(honest: HonestLedger) -> None:
    with chain_state(honest):
        file_request(honest, "fh-late", honest.now() + 60)
        answer = answer_filing(honest, "fh-late", FilingDecision.ACCEPTED, honest.now() + 4 * DAY)
        report = honest.audit()
        assert failed(report) == {"filings_answered"}
        (found,) = findings(report, "filings_answered")
        assert found.seq == answer and found.field == "answered_at" and "answered late" in found.message
        # the case's clock started at the filing all the same: the answer's time does not move it
        case = honest.ledger.receipt_case(short_code("DEMO-ROADS"), filed_case_id(honest.seqs["fh-late filing"]))
        assert case.receipt == honest.ledger.filing_state(honest.seqs["fh-late filing"]).receipt


def test_an_agency_that_opens_a_filed_case_itself_is_caught(honest: HonestLedger) -> None:
    """The case id of a filing is known once it is filed: an agency can record an Opened of its own for it, claiming a
    later time, before it accepts the filing. The module cannot refuse it (the ledger does not track case openings);
    the auditor shows it, twice."""
    with chain_state(honest):
        filed = file_request(honest, "fh-preopened", honest.now() + 60)
        case_id = filed_case_id(filed)
        t = honest.now() + 2 * HOUR
        own = honest.write(CaseEvent(case_id=case_id, action=CaseAction.OPENED, occurred_at=t,
                                     commitment_id=short_code("STREETLIGHT-48H"), district=short_code("EAST"),
                                     channel=3), at=t + 10)
        answer = answer_filing(honest, "fh-preopened", FilingDecision.ACCEPTED, t + 20)
        report = honest.audit()
        assert {"filings_answered", "case_transitions"} <= failed(report)
        (found,) = findings(report, "filings_answered")
        assert found.seq == own and "also opened by the agency itself" in found.message
        transitions = findings(report, "case_transitions")
        assert [f.seq for f in transitions] == [answer]  # the filing's own opening comes second: not a transition


def test_a_duplicate_of_a_case_never_opened_is_caught(honest: HonestLedger) -> None:
    with chain_state(honest):
        file_request(honest, "fh-fake-duplicate", honest.now() + 60)
        nowhere = bytes([keccak(b"no such case")[0] | 0x80]) + keccak(b"no such case")[1:]
        answer = answer_filing(honest, "fh-fake-duplicate", FilingDecision.DUPLICATE, honest.now() + 120,
                               duplicate_of=nowhere)
        report = honest.audit()
        assert failed(report) == {"filings_answered"}
        (found,) = findings(report, "filings_answered")
        assert found.seq == answer and found.field == "duplicate_of" and "had not opened" in found.message


def test_an_operator_starting_a_filed_case_clock_at_its_acceptance_is_caught(
    honest: HonestLedger, tmp_path: Path
) -> None:
    """The index says when a filed case opened; an operator moving it to the acceptance (as if the agency's clock
    started when it chose to answer) is caught where the API's cases are compared with the chain's."""
    case_id = filed_case_id(honest.seqs["filed-accepted filing"])
    index = tampered(honest, tmp_path, (
        "UPDATE cases SET opened_at = opened_at + 600, due_at = due_at + 600 WHERE case_id = ?", (case_id,)))
    report = honest.audit(index)
    assert "api_records" in failed(report)
    assert any(f.field in ("opened_at", "due_at") for f in findings(report, "api_records"))


def test_ratings_are_counted_by_the_origin_of_the_key_that_signed_them(honest_report: object) -> None:
    stats = honest_report.stats["feedback_by_key_origin"]  # type: ignore[attr-defined]
    # the filer's rating, the claimant's (after the claim), and the printed codes' are each counted apart
    assert stats["filed"] == {"ratings": 1, "disputes": 0}
    assert stats["claimed"] == {"ratings": 1, "disputes": 0}
    assert stats["agency_issued"]["ratings"] >= 2 and stats["agency_issued"]["disputes"] >= 2
    assert honest_report.stats["receipt_bindings"] == {"filed": 1, "claimed": 1}  # type: ignore[attr-defined]


def test_a_filings_module_not_built_from_the_sources_is_caught(
    honest: HonestLedger, compiled: dict[str, Any]
) -> None:
    module = honest.ledger.filings_address
    with chain_state(honest):
        code = bytes(honest.chain.w3.eth.get_code(module))
        altered = code[:-12] + bytes([code[-12] ^ 0xFF]) + code[-11:]  # one byte of its metadata
        honest.chain.w3.provider.make_request("anvil_setCode", [module, "0x" + altered.hex()])  # type: ignore[arg-type]
        report = run_audit(honest.config(), compiled=compiled)
    assert failed(report) == {"contract_code"}
    [hit] = findings(report, "contract_code")
    assert hit.subject == f"filings module {module}" and hit.field == "module_code"


def test_a_ledger_naming_another_account_its_module_is_caught(
    honest: HonestLedger, compiled: dict[str, Any]
) -> None:
    """The ledger's FILINGS is an immutable: its value sits in the runtime code, masked when the code is compared (as
    a constructor argument would be). A ledger built to name an account of the deployer's as its module — which could
    then append anything — has runtime code that compares equal; the pointer itself is checked."""
    address, module = honest.ledger.address, honest.ledger.filings_address
    intruder = Account.create().address  # no transaction: the shared chain's head must not move
    with chain_state(honest):
        code = bytes(honest.chain.w3.eth.get_code(address))
        word = bytes.fromhex(module[2:]).rjust(32, b"\0")
        assert code.count(word) >= 1
        patched = code.replace(word, bytes.fromhex(intruder[2:]).rjust(32, b"\0"))
        honest.chain.w3.provider.make_request("anvil_setCode", [address, "0x" + patched.hex()])  # type: ignore[arg-type]
        assert honest.ledger.contract.functions.FILINGS().call() == intruder
        report = run_audit(honest.config(), compiled=compiled)
    assert "contract_code" in failed(report)
    hits = findings(report, "contract_code")
    assert [h.field for h in hits] == ["FILINGS"] and hits[0].actual == intruder and hits[0].expected == module


def test_an_operator_hiding_an_answer_or_a_filing_is_caught(honest: HonestLedger, tmp_path: Path) -> None:
    """The API lists the filings from the index: an operator who makes a rejected filing look unanswered (the agency's
    bad answer hidden), drops another filing (the agency's backlog made shorter) or moves a due time is caught where
    the listing is compared with the chain — and in the figures, whose filings counts no longer match the chain's."""
    spam, duplicate = honest.seqs["filed-spam filing"], honest.seqs["filed-duplicate filing"]
    accepted = honest.seqs["filed-accepted filing"]
    index = tampered(
        honest, tmp_path,
        ("UPDATE filings SET answer_seq = NULL, decision = NULL, case_id = NULL, duplicate_of = NULL, "
         "reason_hash = NULL, answered_at = NULL WHERE seq = ?", (spam,)),
        ("DELETE FROM filings WHERE seq = ?", (duplicate,)),
        ("UPDATE filings SET answer_due = answer_due + 86400 WHERE seq = ?", (accepted,)),
    )
    report = honest.audit(index)
    assert failed(report) == {"filings_answered", "metrics_reproduced"}
    assert any("filings" in f.field for f in findings(report, "metrics_reproduced") if f.field)
    found = {(f.seq, f.field) for f in findings(report, "filings_answered")}
    assert (spam, "answer") in found and (duplicate, "seq") in found and (accepted, "answer_due") in found


def test_an_operator_hiding_a_claim_is_caught(honest: HonestLedger, tmp_path: Path) -> None:
    """An operator who drops a receipt claim from the index shows the printed key as still holding the case (so that
    whoever kept the printed code seems to be the citizen), and the claimant's own key only as the chain has it
    (found there, but without the case's rating): both receipt views differ from the chain."""
    claim = honest.seqs["fb-claimed claim"]
    index = tampered(honest, tmp_path, ("DELETE FROM receipts WHERE seq = ?", (claim,)))
    report = honest.audit(index, case_sample=1000)
    assert "receipt_views" in failed(report)
    found = findings(report, "receipt_views")
    assert any(f.field == "feedback.claimed_by" for f in found)
    assert any(f.seq == claim and f.field == "feedback.rating" for f in found)


# ------------------------------------------------------------ a hostile agency against a case's opening (ffdaa88)


def test_attack_a_filing_rejected_as_a_duplicate_of_a_case_the_agency_opened_after_it_is_caught(
    tmp_path: Path,
) -> None:
    """A citizen files; twenty hours later the agency opens a case of its own (a fresh clock, claimed at that time)
    and rejects the filing as a duplicate of it. The filing cannot duplicate a case opened after it: the request's
    clock has moved from the filing to the agency's later opening, with no Opened of the filed case to show it.
    What should hold: ``filings_answered`` finds the duplicate (as it finds a duplicate of a case never opened)."""
    node = AnvilNode().start()
    try:
        world = build_world(Chain.connect(node.url))
        filing = filings.file(world, code_of("fd-later"))
        filings.advance(world, 20 * HOUR)
        world.ledger.write(world.signer, world.opened("fd-opened-later"))
        later = world.ledger.entry_count() - 1
        filings.answer(world, filing, FilingDecision.DUPLICATE, duplicate_of=case_id("fd-opened-later"))
        answer = world.ledger.entry_count() - 1
        entries, _ = chain_log(world)
    finally:
        node.stop()
    ctx = AuditContext.for_entries(entries)
    opened = ctx.model.cases[("SH-ROADS", case_id("fd-opened-later"))].state
    filed_at = next(e.block_time for e in entries if e.seq == filing)
    assert opened is not None and opened.opened_seq == later and opened.opened_at > (filed_at or 0) + 19 * HOUR
    found = run_check("filings_answered", ctx).findings
    assert [f.field for f in found if f.seq == answer and f.field == "duplicate_of"] == ["duplicate_of"], [
        (f.seq, f.field, f.message) for f in found]
