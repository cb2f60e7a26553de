"""Citizens' filings in the index: the ``filings`` rows and their answers; the case an accepted filing opens (its
clock from the filing's block time, its intake fields from the filing, the filer's key as its receipt); receipt
claims moving a case's key; an agency's correction aimed at its own acceptance (never applied); the same rows synced
in stages, in one go, on PostgreSQL, and after a reorganisation; revision 0008's ``filed_case_id``, written by the
projection and computed for rows indexed before it. On an anvil of this module's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic import command

from ledger.audit.checks import run_check
from ledger.audit.context import AuditContext
from ledger.chain.contract import Chain
from ledger.encoding import keccak
from ledger.filings import answer_due
from ledger.metrics import MetricsFilter
from ledger.records import CaseAction, Correction, EntryKind, FilingDecision, HolidayCalendar, filed_case_id
from ledger.store.db import Store, alembic_config, head_revision, open_store
from ledger.workdays import YearCalendar, local_day, year_of
from tests.support.agreement import assert_agree, audit_model, chain_log
from tests.support.filed import Filed, answer, file, write_filings
from tests.support.filings import advance
from tests.support.indexing import index, mine
from tests.support.world import World, build_world

HOUR = 3600


@pytest.fixture
def world(node_chain: Chain) -> World:
    return build_world(node_chain)


def rows(store: Store, table: str, order: str = "seq") -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}").mappings()]


def block_time(world: World, seq: int) -> int:
    entry = next(e for e in world.ledger.entries() if e.seq == seq)
    return int(world.chain.w3.eth.get_block(entry.block_number)["timestamp"])


def test_filings_and_their_answers(world: World, store_url: str) -> None:
    f: Filed = write_filings(world)
    store = open_store(store_url)
    try:
        index(world, store).sync()
        filings = {r["seq"]: r for r in rows(store, "filings")}
        assert sorted(filings) == sorted(f.filings.values())
        accepted = filings[f.filings["accepted"]]
        assert accepted["agency_id"] == "SH-ROADS" and accepted["commitment_id"] == "STREETLIGHT-48H"
        assert (accepted["district"], accepted["channel"]) == ("PUDONG", 3)
        assert accepted["receipt"] == f.key("accepted") and accepted["relayer"] == world.relayer.address
        assert accepted["block_time"] == block_time(world, f.filings["accepted"])
        assert (accepted["answer_seq"], accepted["decision"]) == (f.seqs["accepted answer"], FilingDecision.ACCEPTED)
        assert bytes(accepted["case_id"]) == filed_case_id(f.filings["accepted"])
        duplicate = filings[f.filings["duplicate"]]
        assert duplicate["decision"] == FilingDecision.DUPLICATE and duplicate["case_id"] is None
        assert bytes(duplicate["duplicate_of"]) == f.cases["accepted"]
        assert filings[f.filings["spam"]]["decision"] == FilingDecision.SPAM
        assert filings[f.filings["out-of-scope"]]["decision"] == FilingDecision.OUT_OF_SCOPE
        unanswered = filings[f.filings["unanswered"]]
        assert unanswered["answer_seq"] is None and unanswered["decision"] is None
        # every filing, answered or not, carries the id of the case its acceptance opens (Open311 finds it by that)
        assert all(bytes(row["filed_case_id"]) == filed_case_id(seq) for seq, row in filings.items())
        kinds = {r["seq"]: r["kind"] for r in rows(store, "entries")}
        assert kinds[f.filings["accepted"]] == EntryKind.FILING_RECORDED
        assert kinds[f.seqs["accepted answer"]] == EntryKind.FILING_ANSWERED
        assert kinds[f.seqs["printed claim"]] == EntryKind.RECEIPT_CLAIMED
    finally:
        store.close()


def test_an_accepted_filing_opens_its_case_with_the_clock_started_at_filing(
    world: World, stores: Callable[..., Store]
) -> None:
    filing = file(world, "late answer")
    filed_at = block_time(world, filing)
    mine(world, 1)
    world.chain.w3.provider.make_request("evm_increaseTime", [5 * HOUR])  # type: ignore[arg-type]
    accepted = answer(world, filing, FilingDecision.ACCEPTED)
    assert block_time(world, accepted) >= filed_at + 5 * HOUR
    store = stores()
    index(world, store).sync()
    case_id = filed_case_id(filing)
    (case,) = [r for r in rows(store, "cases", "opened_seq") if bytes(r["case_id"]) == case_id]
    assert (case["opened_seq"], case["opened_at"]) == (accepted, filed_at)  # not the answer's time
    assert case["due_at"] == filed_at + 48 * HOUR  # STREETLIGHT-48H, counted from filing
    assert (case["commitment_id"], case["district"], case["channel"]) == ("STREETLIGHT-48H", "PUDONG", 3)
    assert case["receipt"] == f_key("late answer") and case["status"] == "open"
    (event,) = [r for r in rows(store, "case_events") if bytes(r["case_id"]) == case_id]
    assert (event["seq"], event["action"], event["occurred_at"]) == (accepted, CaseAction.OPENED, filed_at)
    assert event["block_time"] == block_time(world, accepted)
    (receipt,) = [r for r in rows(store, "receipts") if bytes(r["case_id"]) == case_id]
    assert (receipt["seq"], receipt["receipt"], receipt["occurred_at"]) == (accepted, f_key("late answer"), filed_at)


def f_key(name: str) -> str:
    return Filed().key(name)


def test_filed_cases_run_their_course_and_claims_move_the_key(world: World, stores: Callable[..., Store]) -> None:
    f = write_filings(world)
    store = stores()
    index(world, store).sync()
    cases = {bytes(r["case_id"]): r for r in rows(store, "cases", "opened_seq")}
    accepted = cases[f.cases["accepted"]]
    assert (accepted["status"], accepted["rating"], accepted["receipt"]) == ("fulfilled", 5, f.key("accepted"))
    disputed = cases[f.cases["disputed"]]
    assert (disputed["status"], disputed["disputes"], disputed["reopened"]) == ("open", 1, 1)
    (dispute,) = rows(store, "disputes")
    assert dispute["answer_seq"] == f.seqs["disputed answer to dispute"]
    # printed receipts, claimed: the key moves; a rating made with the printed key before the claim stays
    printed = cases[f.cases["printed"]]
    assert (printed["receipt"], printed["rating"]) == (f.key("printed-own"), 4)
    used = cases[f.cases["printed-used"]]
    assert (used["receipt"], used["rating"]) == (f.key("printed-used-own"), 5)
    ratings = {r["seq"]: r["receipt"] for r in rows(store, "ratings")}
    assert ratings[f.seqs["printed-used rated"]] == f.key("printed-used")
    receipts = [(r["seq"], r["receipt"]) for r in rows(store, "receipts") if bytes(r["case_id"]) == f.cases["printed"]]
    assert receipts == [(f.seqs["printed receipt"], f.key("printed")), (f.seqs["printed claim"], f.key("printed-own"))]
    # the agency's correction aimed at its acceptance took no effect
    (correction,) = [r for r in rows(store, "corrections") if r["seq"] == f.seqs["void acceptance"]]
    assert correction["applied"] is False or correction["applied"] == 0
    entries = {r["seq"]: r for r in rows(store, "entries")}
    assert entries[f.seqs["accepted answer"]]["voided_by"] is None


def test_filings_synced_in_stages_equal_one_sync(world: World, stores: Callable[..., Store]) -> None:
    stepwise = stores()
    indexer = index(world, stepwise, confirmations=0)
    write_filings(world, checkpoint=lambda stage: indexer.sync())
    indexer.sync()
    whole = stores()
    index(world, whole, confirmations=0).sync(to_block=indexer.last_block())
    assert stepwise.dump() == whole.dump()
    ranged = stores()
    index(world, ranged, confirmations=0, max_block_range=1).sync(to_block=indexer.last_block())
    assert ranged.dump() == whole.dump()


def test_a_reorganisation_takes_back_answers_and_claims(world: World, stores: Callable[..., Store]) -> None:
    store = stores()
    indexer = index(world, store, confirmations=20)
    filing = file(world, "reorged")
    mine(world, 20)
    indexer.sync()
    settled = store.dump()
    snapshot = world.chain.snapshot()
    answer(world, filing, FilingDecision.ACCEPTED)  # orphaned to be
    file(world, "orphaned")
    indexer.sync()
    assert [r["answer_seq"] is not None for r in rows(store, "filings")] == [True, False]
    world.chain.revert(snapshot)
    answer(world, filing, FilingDecision.SPAM)  # the winning branch rejects it instead
    mine(world, 25)
    report = indexer.sync()
    assert report.reorgs == 1
    (row,) = rows(store, "filings")
    assert row["decision"] == FilingDecision.SPAM and row["case_id"] is None
    assert not [r for r in rows(store, "cases", "opened_seq") if bytes(r["case_id"]) == filed_case_id(filing)]
    assert store.dump()["filings"] != settled["filings"]
    fresh = stores()
    index(world, fresh, confirmations=20).sync(to_block=report.to_block)
    assert store.dump() == fresh.dump()


def test_a_calendar_published_later_moves_the_answer_due(world: World, stores: Callable[..., Store]) -> None:
    """The answer window counts working days of the agency's jurisdiction: a holiday calendar published after the
    filing, naming the day the answer was due a holiday, moves the due time to the next working day's end."""
    seq = file(world, "calendar")
    store = stores()
    indexer = index(world, store, confirmations=0)
    indexer.sync()
    filed_at = block_time(world, seq)
    due = next(r["answer_due"] for r in rows(store, "filings") if r["seq"] == seq)
    assert due == answer_due(filed_at, {})
    due_day = local_day(due - 1)
    year = year_of(due_day)
    world.ledger.write(world.signer, HolidayCalendar(year=year, holidays=(due_day,), workdays=(),
                                                     occurred_at=world.now()))
    indexer.sync()
    moved = next(r["answer_due"] for r in rows(store, "filings") if r["seq"] == seq)
    assert moved > due and moved == answer_due(filed_at, {year: YearCalendar.of(year, [due_day])})
    fresh = stores()
    index(world, fresh, confirmations=0).sync(to_block=indexer.last_block())
    assert fresh.dump()["filings"] == store.dump()["filings"]


def test_revision_0008_computes_filed_case_ids_of_filings_indexed_before_it(world: World, store_url: str) -> None:
    """A store indexed before revision 0008 has filings without ``filed_case_id``: the migration computes each from
    its seq, and the store is then what a sync after it gives."""
    write_filings(world)
    store = open_store(store_url)
    try:
        index(world, store).sync()
        synced = store.dump()
        config = alembic_config()
        with store.engine.begin() as conn:  # as the version before 0008 left it: no column, no index
            config.attributes["connection"] = conn
            command.downgrade(config, "0007")
        with store.connect() as conn:
            assert "filed_case_id" not in conn.exec_driver_sql("SELECT * FROM filings").keys()
    finally:
        store.close()
    migrated = open_store(store_url)
    try:
        assert migrated.revision() == head_revision()
        assert migrated.dump() == synced
        filings = rows(migrated, "filings")
        assert len(filings) > 1 and all(bytes(r["filed_case_id"]) == filed_case_id(r["seq"]) for r in filings)
    finally:
        migrated.close()


# ------------------------------------------------------------ a hostile agency against a case's opening (ffdaa88)


def test_attack_an_agency_opening_a_filed_case_itself_a_day_late_then_accepting_it_is_seen_by_the_auditor(
    world: World, stores: Callable[..., Store]
) -> None:
    """A citizen files; a day later the agency records an Opened of its own for the filed case's id (the module cannot
    refuse it), accepts the filing, and aims corrections at both openings (refused). The filed case's deadline then
    runs from the agency's own Opened, not the filing: index and auditor agree on it, and the auditor shows it — a
    ``filings_answered`` finding at the agency's Opened, a ``case_transitions`` finding at the acceptance (the
    filing's opening comes second) and two refused corrections."""
    filing = file(world, "preopened")
    filed_at = block_time(world, filing)
    advance(world, 26 * HOUR)
    case = filed_case_id(filing)
    world.ledger.write(world.signer, world.opened("own", case_id=case, channel=3))
    own = world.ledger.entry_count() - 1
    acceptance = answer(world, filing, FilingDecision.ACCEPTED)
    for target in (own, acceptance):
        world.ledger.write(world.signer, Correction(target_seq=target, reason_hash=keccak(b"undo"),
                                                    occurred_at=world.now()))
    store = stores()
    index(world, store, confirmations=0).sync()
    (row,) = [r for r in rows(store, "cases", "opened_seq") if bytes(r["case_id"]) == case]
    assert (row["opened_seq"], row["invalid_transitions"]) == (own, 1)
    assert row["opened_at"] > filed_at + 24 * HOUR  # the residual: the clock runs from the agency's Opened
    assert not any(r["applied"] for r in rows(store, "corrections"))
    assert_agree(store, audit_model(world), MetricsFilter(agency_id="SH-ROADS", start=filed_at - 86_400,
                                                          end=filed_at + 10 * 86_400))
    entries, _ = chain_log(world)
    ctx = AuditContext.for_entries(entries)
    filed = run_check("filings_answered", ctx).findings
    assert any(f.seq == own and "also opened by the agency itself" in f.message for f in filed)
    assert [f.seq for f in run_check("case_transitions", ctx).findings] == [acceptance]
    assert len(ctx.model.refused_corrections) == 2
