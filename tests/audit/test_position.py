"""The API's position against the audited block: an honest ledger passes with zero findings at the latest block, at a
past block (``--to-block``) and through a node a few blocks behind the API's; an index frozen behind the chain is a
finding, whether it says so or claims a later block than it has read."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.audit.model import AuditReport
from ledger.records import CaseAction
from tests.support.honest import HonestLedger, chain_state, failed, findings, later, opened
from tests.support.tamper import mine_at, tampered

pytestmark = pytest.mark.slow


#: checks another change is bringing to the horizon rules of ``ledger.audit.checks._api`` (not yet position-aware)
NOT_YET_POSITION_AWARE: set[str] = set()


def all_findings(report: AuditReport) -> list[str]:
    return [f"{r.name}: {f.message}" for r in report.checks for f in r.findings
            if r.name not in NOT_YET_POSITION_AWARE]


def head(h: HonestLedger) -> int:
    return int(h.chain.w3.eth.block_number)


def test_honest_ledger_at_the_latest_block_has_zero_findings(honest: HonestLedger) -> None:
    report = honest.audit(honest.index_path, case_sample=40)
    assert all_findings(report) == []
    assert report.check("api_records").counts["api_lag_blocks"] == 0


def test_honest_ledger_audited_at_a_past_block_has_zero_findings(honest: HonestLedger) -> None:
    """``--to-block`` 30 blocks back: the API (at the head) has entries past the audited block, none a finding."""
    past = head(honest) - 30
    report = honest.audit(honest.index_path, case_sample=40, to_block=past)
    assert report.target["block_number"] == past
    assert all_findings(report) == []
    notes = " ".join(report.check("api_records").notes)
    assert "past the audited block" in notes and "were not compared" in notes
    assert report.check("metrics_reproduced").counts["figures_compared"] > 0


def test_honest_ledger_through_a_node_behind_the_api_has_zero_findings(honest: HonestLedger, tmp_path: Path) -> None:
    """A node three blocks behind the API's (simulated: the audit stops three blocks before the head the API has
    indexed), the entries of those blocks included."""
    with chain_state(honest):
        t = honest.now()
        for i in range(3):
            honest.write(opened(f"lagging-{i}", t + i), at=t + 60 * (i + 1))
        index = honest.index_copy(tmp_path)
        honest.sync(index)
        report = honest.audit(index, case_sample=40, to_block=head(honest) - 3)
    assert all_findings(report) == []
    assert report.check("api_records").counts["entries_compared"] == report.target["entry_count"]


def test_operator_freezing_the_index_60_blocks_behind_is_caught(honest: HonestLedger, tmp_path: Path) -> None:
    index = honest.index_copy(tmp_path)  # synced at the head, then frozen
    with chain_state(honest):
        t = honest.now()
        honest.write(opened("embarrassing", t), at=t + 60)
        honest.write(later("embarrassing", CaseAction.REJECTED, t + 60), at=t + 120)
        honest.chain.w3.provider.make_request("anvil_mine", [hex(58)])
        report = honest.audit(index, case_sample=20)
    assert failed(report) == {"api_records"}
    [hit] = [f for f in findings(report, "api_records") if f.field == "last_indexed_block"]
    assert "60 blocks" in hit.message and "behind the chain" in hit.message
    assert report.check("api_records").counts["api_lag_blocks"] == 60


def test_an_index_a_few_blocks_behind_is_no_finding(honest: HonestLedger, tmp_path: Path) -> None:
    index = honest.index_copy(tmp_path)
    with chain_state(honest):
        t = honest.now()
        honest.write(opened("recent", t), at=t + 5)
        mine_at(honest, t + 10)
        report = honest.audit(index, case_sample=20)
    assert all_findings(report) == []
    assert any("2 blocks / 5 s behind the chain" in n for n in report.check("api_records").notes)


def test_lag_in_block_time_alone_is_a_finding(honest: HonestLedger, tmp_path: Path) -> None:
    """Two blocks, but the first the API has not indexed was made an hour before the audited one."""
    index = honest.index_copy(tmp_path)
    with chain_state(honest):
        t = honest.now()
        honest.write(opened("an-hour-ago", t), at=t + 5)
        mine_at(honest, t + 3605)
        report = honest.audit(index, case_sample=20, max_lag_seconds=600)
    [hit] = [f for f in findings(report, "api_records") if f.field == "last_indexed_block"]
    assert "2 blocks / 60 min behind" in hit.message


def test_operator_freezing_the_index_but_claiming_the_latest_block_is_caught(honest: HonestLedger,
                                                                              tmp_path: Path) -> None:
    """The index stops before an embarrassing entry but says it has read every block: its count and running hash
    are not the contract's at the block it names."""
    with chain_state(honest):
        t = honest.now()
        honest.write(opened("hidden", t), at=t + 60)
        latest = head(honest)
        index = tampered(honest, tmp_path, ("UPDATE sync_state SET last_block = ?", (latest,)))
        report = honest.audit(index, case_sample=20)
    [hit] = [f for f in findings(report, "api_records") if f.field == "last_indexed_block"]
    assert f"up to block {latest}" in hit.message and "its position is not the chain's" in hit.message
    assert hit.expected == hit.actual + 1
