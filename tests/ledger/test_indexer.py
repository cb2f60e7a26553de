"""The indexer on a real node (an anvil of this module's own): decoding, every derived row, resuming, atomic ranges,
finality, and the rebuild property — drop the store, re-sync, every row comes back identical, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak as eth_keccak
from sqlalchemy import insert

from ledger import records
from ledger.audit.rebuild import Builder, rebuild
from ledger.cases import (
    ANSWERS,
    CASE_STATE_FIELDS,
    FULFILLED,
    ON_HOLD,
    OPEN,
    REJECTED,
    WITHDRAWN,
    Answer,
    CaseState,
    CommitmentVersion,
    Event,
    Feedback,
    dispute_answers,
    fold_case,
    voided_entries,
)
from ledger.chain.contract import Chain
from ledger.chain.logs import LogDecoder
from ledger.encoding import ZERO32, ZERO_HEAD, code_text, display_text, fold, keccak
from ledger.errors import ChainMismatch, NodeUnavailable, StaleIndex
from ledger.index.cases import CaseFolder
from ledger.index.sync import Indexer
from ledger.metrics import MetricsFilter, compute_metrics
from ledger.records import (
    CaseAction,
    EntryKind,
    FilingDecision,
    HolidayCalendar,
    filed_case_id,
    short_code,
    struct_hash_of,
)
from ledger.store.db import Store, open_store, upgrade
from ledger.store.schema import case_events, corrections, entries, sync_state
from ledger.workdays import YearCalendar
from tests.support.agreement import assert_agree, audit_model, chain_log, deadline_figures, model_cases
from tests.support.feedback import write_feedback
from tests.support.filed import write_filings
from tests.support.indexing import head, index, mine
from tests.support.scenario import WORKING_DAYS_COMMITMENT, Scenario, cst, write_everything
from tests.support.world import World, build_world, case_id

HOUR = 3600


@pytest.fixture
def world(node_chain: Chain) -> World:
    """A freshly deployed ledger (two agencies, their keys, one commitment) on this module's anvil."""
    return build_world(node_chain)


def rows(store: Store, table: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table}").mappings()]


def case_row(store: Store, agency: str, case_id: bytes) -> dict[str, Any] | None:
    found = [r for r in rows(store, "cases") if r["agency_id"] == agency and bytes(r["case_id"]) == case_id]
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------- decoding


#: fields the fast decoder gives of a module event beyond its record (``ledger.chain.logs``)
DECODED_EXTRAS = {EntryKind.FILING_RECORDED: ("relayer",), EntryKind.FILING_ANSWERED: ("case_id",),
                  EntryKind.RECEIPT_CLAIMED: ("previous",)}


def test_fast_decoder_matches_decode_log(world: World) -> None:
    write_everything(world)
    write_feedback(world)
    write_filings(world)
    raw = world.chain.w3.provider.make_request(
        "eth_getLogs", [{"address": world.ledger.addresses, "fromBlock": "0x0", "toBlock": "latest"}]
    )["result"]
    mine = LogDecoder().decode(raw)
    theirs = world.ledger.entries()
    assert len(mine) == len(theirs) == world.ledger.entry_count()
    kinds = set()
    for a, b in zip(sorted(mine, key=lambda e: e.seq), theirs, strict=True):
        kinds.add(a.kind)
        assert (a.seq, a.kind, a.agency_id, a.actor) == (b.seq, b.kind, b.agency_id, b.actor)
        assert (a.block_number, a.tx_hash, a.log_index) == (b.block_number, b.transaction_hash, b.log_index)
        assert (a.version, a.jurisdiction) == (b.version, b.jurisdiction)
        assert a.record_hash == b.record_hash and a.entry_hash == b.entry_hash
        expected = b.record.model_dump()
        got = {k: v.decode() if isinstance(v, bytes) and k.startswith("name") else v for k, v in a.record.items()}
        got = {k: tuple(v) if isinstance(v, list) else v for k, v in got.items()}
        # what a module event carries beyond its record: the relayer of a filing, the case an acceptance opens,
        # the key a claim moves away from
        extra = {k: got.pop(k) for k in set(got) - set(expected)}
        assert set(extra) == set(DECODED_EXTRAS.get(b.kind, ())), b.kind
        assert got == expected, b.kind
        if b.kind == EntryKind.FILING_RECORDED:
            assert extra["relayer"] == world.relayer.address
        if b.kind == EntryKind.FILING_ANSWERED:
            accepted = b.record.decision == FilingDecision.ACCEPTED
            assert extra["case_id"] == (filed_case_id(b.record.filing_seq) if accepted else ZERO32)
        if b.kind == EntryKind.RECEIPT_CLAIMED:
            assert extra["previous"] == b.actor
        if b.kind in (EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED):
            assert a.signer == b.record.signer
        if b.kind in (EntryKind.AUDITOR_AUTHORIZED, EntryKind.AUDITOR_REVOKED):
            assert a.signer == b.record.auditor and a.agency_id == ZERO32
    # every kind but batch anchors, which the batch tests cover (they come with batch files of their own)
    assert kinds == {kind for kind in EntryKind if kind.name != "BATCH_ANCHORED"}
    head_ = ZERO_HEAD
    for e in sorted(mine, key=lambda e: e.seq):
        # the fold as the contract writes it, computed here without ledger.encoding: abi.encode(bytes24, bytes32)
        reference = eth_keccak(abi_encode(["bytes24", "bytes32"], [head_, e.entry_hash]))[:24]
        assert fold(head_, e.entry_hash) == reference
        head_ = fold(head_, e.entry_hash)
    assert head_ == world.ledger.running_hash()


def test_names_need_not_be_utf8() -> None:
    """The contract takes any bytes as a string; the hash is over those bytes and the text replaces the rest."""
    from eth_abi import encode

    decoder = LogDecoder()
    topic0 = next(t for t, (name, _, _) in decoder.table.items() if name == "AgencyRegistered")
    raw_name = b"\xff\xfebad\x00"
    log = {
        "topics": [topic0, "0x" + "00" * 31 + "07", "0x" + short_code("AG").hex(), ],
        "data": "0x" + encode(["bytes32", "bytes", "bytes", "address"],
                              [short_code("J"), raw_name, b"ok", "0x" + "11" * 20]).hex(),
        "blockHash": "0x" + "aa" * 32, "blockNumber": "0x5", "transactionHash": "0x" + "bb" * 32, "logIndex": "0x0",
    }
    (entry,) = decoder.decode([log])
    assert entry.record["name_zh"] == raw_name and entry.block_time is None
    assert entry.record_hash == keccak(
        records.AgencyRegistration.typehash() + short_code("AG") + short_code("J") + keccak(raw_name) + keccak(b"ok")
    )
    assert struct_hash_of(records.AgencyRegistration, {**entry.record, "name_zh": "x"}) != entry.record_hash
    assert display_text(raw_name) == "\ufffd\ufffdbad\ufffd"
    assert code_text(short_code("PUDONG")) == "PUDONG"
    assert code_text(b"a b".ljust(32, b"\0")) == "0x" + b"a b".ljust(32, b"\0").hex()  # a space: not a code
    assert code_text(b"\0" * 31 + b"A") == "0x" + ("00" * 31) + "41"  # not right-padded


# --------------------------------------------------------------------------------------------- every row


def test_indexes_every_kind_and_derives_state(world: World, stores: Callable[..., Store]) -> None:
    s: Scenario = write_everything(world)
    store = stores()
    indexer = index(world, store)
    report = indexer.sync()
    ledger = world.ledger
    assert report.entries == ledger.entry_count() == report.entry_count
    assert report.running_hash == ledger.running_hash()
    assert indexer.finalized_block() == head(world) - 3 == report.finalized_block
    assert indexer.last_block() == head(world)

    entries = {r["seq"]: r for r in rows(store, "entries")}
    assert sorted(entries) == list(range(ledger.entry_count()))
    running = ZERO_HEAD
    for seq in sorted(entries):
        running = fold(running, bytes(entries[seq]["entry_hash"]))
        assert bytes(entries[seq]["running_hash"]) == running
    assert entries[0]["occurred_at"] is None and entries[0]["kind"] == EntryKind.AGENCY_REGISTERED
    relayed = [r for r in rows(store, "case_events") if bytes(r["case_id"]) == s.cases["relayed"]]
    assert {entries[r["seq"]]["actor"] for r in relayed} == {world.signer.address}  # not the relayer

    odd = [a for a in rows(store, "agencies") if a["agency_id"].startswith("0x")]
    assert odd == [{**odd[0], "agency_id": "0x" + keccak(b"odd agency").hex(), "jurisdiction": "CN-BJ",
                    "name_zh": "零\ufffd字节", "name_en": "Odd 🏛"}]
    changes = rows(store, "signer_changes")
    assert [c["authorized"] for c in sorted(changes, key=lambda c: c["seq"])] == [True, True, True, False]

    commitments = {(c["agency_id"], c["commitment_id"], c["version"]): c for c in rows(store, "commitments")}
    assert commitments[("SH-ROADS", "STREETLIGHT-48H", 2)]["deadline"] == 24
    assert commitments[("SH-ROADS", "OLD-SERVICE", 1)]["retired_seq"] == s.seqs["retired"]
    assert commitments[("SH-ROADS", "STREETLIGHT-48H", 1)]["retired_seq"] is None
    assert rows(store, "commitment_retirements")[0]["seq"] == s.seqs["retired"]
    calendars = rows(store, "holiday_calendars")
    assert [(c["jurisdiction"], c["year"], c["version"]) for c in calendars] == [("CN-SH", 2025, 1), ("CN-SH", 2025, 2)]
    assert calendars[1]["workdays"] == "[20359,20372]"

    # Corrections: applied or not, and what they void.
    corrections = {c["seq"]: c["applied"] for c in rows(store, "corrections")}
    assert corrections == {s.seqs["c applied"]: True, s.seqs["c already voided"]: False,
                           s.seqs["c other agency"]: False, s.seqs["c voids opened"]: False,
                           s.seqs["c voids correction"]: True}
    voided = {seq: r["voided_by"] for seq, r in entries.items() if r["voided_by"] is not None}
    assert voided == {s.seqs["undone fulfilled"]: s.seqs["c applied"],
                      s.seqs["c applied"]: s.seqs["c voids correction"]}

    t0 = cst(2025, 9, 1, 9, 0)
    held = case_row(store, "SH-ROADS", s.cases["held"])
    assert held is not None
    assert (held["status"], held["commitment_version"], held["hold_seconds"]) == (FULFILLED, 1, 10 * HOUR)
    assert (held["due_at"], held["fulfil_seconds"], held["on_time"]) == (t0 + 58 * HOUR, 45 * HOUR, True)
    assert (held["district"], held["channel"], held["escalated"]) == ("PUDONG", 2, False)
    assert held["invalid_transitions"] == 0
    v2 = case_row(store, "SH-ROADS", s.cases["v2case"])
    assert v2 is not None and (v2["commitment_version"], v2["due_at"], v2["on_time"]) == (2, t0 + 30 * HOUR, False)
    esc = case_row(store, "SH-ROADS", s.cases["escalated"])
    assert esc is not None and (esc["status"], esc["escalated"], esc["closed_at"]) == (REJECTED, True, t0 + 4 * HOUR)
    assert esc["district"] == "0x" + keccak(b"not an ascii district").hex() and esc["on_time"] is None
    messy = case_row(store, "SH-ROADS", s.cases["messy"])
    assert messy is not None and (messy["status"], messy["invalid_transitions"], messy["hold_seconds"]) == (
        WITHDRAWN, 2, 2 * HOUR)
    orphan = case_row(store, "SH-ROADS", s.cases["orphan"])
    assert orphan is not None and (orphan["status"], orphan["invalid_transitions"]) == (OPEN, 1)
    # Working days across National Day (calendar version 2): Thursday 9, Friday 10, Saturday 11 October (swapped).
    licence = case_row(store, "SH-ROADS", s.cases["licence"])
    assert licence is not None and licence["commitment_id"] == code_text(WORKING_DAYS_COMMITMENT)
    assert (licence["due_at"], licence["on_time"]) == (cst(2025, 10, 12), True)
    still_open = case_row(store, "SH-ROADS", s.cases["licence-open"])
    assert still_open is not None and (still_open["due_at"], still_open["status"]) == (cst(2025, 10, 12), OPEN)
    undone = case_row(store, "SH-ROADS", s.cases["undone"])
    assert undone is not None and (undone["status"], undone["closed_at"], undone["last_seq"]) == (
        OPEN, None, s.seqs["undone fulfilled"] - 1)
    mistake = case_row(store, "SH-ROADS", s.cases["mistake"])  # its Opened stands: no correction voids one
    assert mistake is not None and (mistake["status"], mistake["opened_at"]) == (OPEN, t0 + HOUR)
    water = case_row(store, "SH-WATER", s.cases["held"])
    assert water is not None and water["commitment_id"] == "WATER-24H"
    bulk = [r for r in rows(store, "cases") if r["district"].startswith("D")]
    assert len(bulk) == 60 and sum(r["status"] == FULFILLED for r in bulk) == 30
    assert {r["channel"] for r in bulk} == set(range(1, 7))
    assert len(rows(store, "cases")) == 12 + 60  # the mistake case too: its Opened stands
    assert all(r["status"] != ON_HOLD for r in rows(store, "cases"))


def test_calendar_version_recomputes_due_times(world: World, stores: Callable[..., Store]) -> None:
    """Synced right before the calendar's second version, the working-day case is late; after it, on time."""
    store = stores()
    indexer = index(world, store)
    licence = case_id("licence")
    seen: dict[str, Any] = {}

    def checkpoint(stage: str) -> None:
        indexer.sync()
        seen[stage] = case_row(store, "SH-ROADS", licence)

    write_everything(world, checkpoint)
    before, after = seen["before the calendar changes"], seen["after the corrections"]
    assert before is not None and after is not None
    assert (before["due_at"], before["on_time"]) == (cst(2025, 10, 4), False)  # Wed 1 – Fri 3 October
    assert (after["due_at"], after["on_time"]) == (cst(2025, 10, 12), True)
    # A calendar for another year changes nothing here.
    world.ledger.write(world.signer, HolidayCalendar(year=2024, occurred_at=cst(2025, 1, 1)))
    indexer.sync()
    assert case_row(store, "SH-ROADS", licence) == after


def test_indexes_receipts_ratings_disputes_and_their_answers(world: World, stores: Callable[..., Store]) -> None:
    """Synced between every stage (so answers, ratings and corrections arrive in later syncs than what they concern),
    once by an indexer that keeps its case cache and once by a new indexer each time (no cache: the receipt issued
    before its case's Opened must be found in the store); both equal a sync from scratch."""
    cached_store, fresh_store = stores(), stores()
    cached = index(world, cached_store, max_block_range=2)

    def checkpoint(stage: str) -> None:
        cached.sync()
        index(world, fresh_store, max_block_range=3, case_cache_size=0).sync()

    f = write_feedback(world, checkpoint)
    once = stores()
    index(world, once).sync(to_block=head(world))
    assert cached_store.dump() == fresh_store.dump() == once.dump()
    store = cached_store
    entries = {r["seq"]: r for r in rows(store, "entries")}

    def case(name: str) -> dict[str, Any]:
        found = case_row(store, "SH-ROADS", f.cases[name])
        assert found is not None, name
        return found

    def feedback_of(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in ("receipt", "rating", "rated_at", "disputes", "reopened", "dispute_open"))

    rated_at = entries[f.seqs["rated"]]["block_time"]
    assert feedback_of(case("rated")) == (f.receipt("rated"), 5, rated_at, 0, 0, False)
    reopened = case("reopened")
    assert feedback_of(reopened) == (f.receipt("reopened"), 2, entries[f.seqs["reopened rated"]]["block_time"],
                                     2, 1, True)  # its second closure disputed too, not answered yet
    # the outcome is the final fulfilment's
    final = entries[f.seqs["reopened rated"] - 1]
    assert (reopened["status"], reopened["closed_at"], reopened["invalid_transitions"]) == (
        FULFILLED, final["occurred_at"], 0)
    assert reopened["fulfil_seconds"] == final["occurred_at"] - reopened["opened_at"]
    assert feedback_of(case("rejected"))[3:] == (1, 0, False)  # answered by the rejection
    assert feedback_of(case("voided-answer"))[3:] == (1, 0, True)  # its answer was voided
    assert case("voided-answer")["invalid_transitions"] == 0
    assert case("receipt-first")["receipt"] == f.receipt("receipt-first")
    late = case("late-receipt")
    assert (late["status"], late["receipt"]) == (REJECTED, f.receipt("late-receipt"))
    plain = case("plain-reopened")
    assert (plain["status"], plain["reopened"], plain["receipt"], plain["invalid_transitions"]) == (
        REJECTED, 1, None, 0)

    assert {r["receipt"] for r in rows(store, "receipts")} == {
        f.receipt(n) for n in ("rated", "reopened", "rejected", "voided-answer", "receipt-first", "late-receipt")}
    receipt_first = [r for r in rows(store, "receipts") if r["seq"] == f.seqs["receipt first"]][0]
    assert bytes(receipt_first["case_id"]) == f.cases["receipt-first"]
    ratings = {r["seq"]: (r["score"], r["receipt"]) for r in rows(store, "ratings")}
    assert ratings == {f.seqs["rated"]: (5, f.receipt("rated")), f.seqs["reopened rated"]: (2, f.receipt("reopened"))}
    assert entries[f.seqs["rated"]]["actor"] == f.receipt("rated")  # the receipt key, not the relayer

    def answer(name: str, action: CaseAction) -> tuple[Any, ...]:
        seq = f.seqs[name]
        return (seq, int(action), entries[seq]["block_time"])

    disputes = {r["seq"]: (r["answer_seq"], r["answer_action"], r["answered_at"], r["closure"])
                for r in rows(store, "disputes")}
    assert disputes == {
        f.seqs["reopened dispute"]: (*answer("reopened answer", CaseAction.REOPENED), 1),
        f.seqs["rejected dispute"]: (*answer("rejected answer", CaseAction.DISPUTE_REJECTED), 1),
        f.seqs["voided dispute"]: (None, None, None, 1),
        f.seqs["reopened again"]: (None, None, None, 2),
    }
    corrections = {r["seq"]: r["applied"] for r in rows(store, "corrections")}
    assert corrections == {f.seqs["answer voided"]: True, f.seqs["void rated"]: False,
                           f.seqs["void rejected dispute"]: False, f.seqs["void rated receipt"]: False}
    assert {seq for seq, r in entries.items() if r["voided_by"] is not None} == {f.seqs["voided answer"]}


def test_a_correction_aimed_at_an_opened_is_refused_and_an_opened_again_is_an_invalid_transition(
    world: World, stores: Callable[..., Store]
) -> None:
    """A rated case whose Opened the agency tries to void: the correction is recorded and takes no effect (no
    correction voids an Opened: it starts the case's clock), so the case keeps its row, receipt and rating; an Opened
    recorded again starts no fresh deadline: it is an invalid transition of the open case."""
    store = stores()
    indexer = index(world, store)
    f = write_feedback(world)
    indexer.sync()
    before = case_row(store, "SH-ROADS", f.cases["rated"])
    assert before is not None
    opened = [e for e in world.ledger.entries() if e.kind == EntryKind.CASE_EVENT
              and e.record.case_id == f.cases["rated"] and e.record.action == CaseAction.OPENED][0]
    world.ledger.write(world.signer, records.Correction(target_seq=opened.seq, reason_hash=keccak(b"x"),
                                                        occurred_at=world.now()))
    correction = world.ledger.entry_count() - 1
    indexer.sync()
    assert {r["seq"]: r["applied"] for r in rows(store, "corrections")}[correction] in (False, 0)
    assert {r["seq"]: r["voided_by"] for r in rows(store, "entries")}[opened.seq] is None
    assert case_row(store, "SH-ROADS", f.cases["rated"]) == before
    world.ledger.write(world.signer, world.opened("rated", case_id=f.cases["rated"]))
    indexer.sync()
    again = case_row(store, "SH-ROADS", f.cases["rated"])
    assert again is not None and (again["status"], again["receipt"], again["rating"]) == (
        before["status"], f.receipt("rated"), 5)
    assert (again["opened_at"], again["invalid_transitions"]) == (
        before["opened_at"], before["invalid_transitions"] + 1)
    fresh = stores()
    index(world, fresh).sync(to_block=head(world))
    assert store.dump() == fresh.dump()


@pytest.mark.parametrize(("action", "applied", "refused"), [
    (CaseAction.OPENED, True, True), (CaseAction.OPENED, False, False), (CaseAction.FULFILLED, True, False),
])
def test_the_migration_refuses_an_index_in_which_a_correction_voided_an_opened(
    store_url: str, action: CaseAction, applied: bool, refused: bool
) -> None:
    """Revision 0015 on a store indexed by the old rule: an applied correction of an Opened makes it refuse, saying
    to rebuild the index from the chain, and leaves the store as it was; a refused one, or an applied one of another
    event, lets it through."""
    def entry(seq: int, kind: EntryKind, voided_by: int | None = None) -> dict[str, Any]:
        return dict(seq=seq, kind=int(kind), agency_id="A", actor="0x0", record_hash=b"\1" * 32,
                    entry_hash=b"\1" * 32, running_hash=b"\1" * 24, block_number=seq, block_hash=b"\7" * 32,
                    block_time=1_000 + seq, tx_hash=b"\1" * 32, log_index=0, occurred_at=1_000, voided_by=voided_by)

    store = open_store(store_url, migrate=False)
    try:
        upgrade(store, "0014")
        with store.begin() as conn:
            conn.execute(insert(entries), [entry(0, EntryKind.CASE_EVENT, 1 if applied else None),
                                           entry(1, EntryKind.CORRECTION)])
            conn.execute(insert(case_events).values(
                seq=0, agency_id="A", case_id=b"\2" * 32, action=int(action), occurred_at=1_000, block_time=1_000,
                details_hash=b"\0" * 32, commitment_id="C", district="D", channel=1))
            conn.execute(insert(corrections).values(seq=1, agency_id="A", target_seq=0, reason_hash=b"\0" * 32,
                                                    occurred_at=1_000, applied=applied))
        before = store.dump()
        if refused:
            with pytest.raises(StaleIndex, match=r"1 correction\(s\) that voided a case's Opened \(the first at seq 1\)"
                                                 r".*Rebuild the index from the chain"):
                upgrade(store)
            assert store.revision() == "0014" and store.dump() == before  # nothing half-done
        else:
            upgrade(store)
            assert store.revision() == "0015" and store.dump() == before
    finally:
        store.close()


# ---------------------------------------------------------------------------------------- the rebuild


def test_rebuild_gives_identical_rows_on_sqlite_and_postgresql(
    world: World, sqlite_url: Callable[[], str], pg_database: Callable[[], str]
) -> None:
    """Indexed bit by bit while the chain grows (new indexer and store objects each time, as after restarts), then
    dropped and re-synced in one go: every table is identical, and SQLite's rows equal PostgreSQL's."""
    urls = {"sqlite": sqlite_url(), "postgresql": pg_database()}
    stage_syncs = 0

    def checkpoint(stage: str) -> None:
        nonlocal stage_syncs
        stage_syncs += 1
        for url in urls.values():
            with open_store(url) as store:
                index(world, store, max_block_range=3).sync()

    write_everything(world, checkpoint)
    write_feedback(world, checkpoint)
    assert stage_syncs == 4 + 5
    top = head(world)
    dumps = {}
    for name, url in urls.items():
        with open_store(url) as store:
            index(world, store).sync(to_block=top)
            first = store.dump()
            store.drop()
        with open_store(url) as store:
            assert store.dump()["entries"] == []
            index(world, store, max_block_range=2000).sync(to_block=top)  # other ranges than the first time
            again = store.dump()
        for table in first:
            assert again[table] == first[table], f"{name}: table {table} differs after the rebuild"
        assert len(first["entries"]) == world.ledger.entry_count()
        dumps[name] = again
    assert dumps["sqlite"] == dumps["postgresql"]


# ------------------------------------------------------------------------------------ resuming, atomicity


def test_a_crash_mid_range_writes_nothing_and_the_next_sync_resumes(
    world: World, stores: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores()
    index(world, store).sync()
    before = store.dump()
    write_everything(world)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(CaseFolder, "update", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        index(world, store).sync()
    assert store.dump() == before  # entries, events, calendars: none half-written
    monkeypatch.undo()
    index(world, store).sync()
    fresh = stores()
    index(world, fresh).sync(to_block=index(world, store).last_block())
    assert store.dump() == fresh.dump()


def test_finality_follows_the_confirmation_depth(world: World, stores: Callable[..., Store]) -> None:
    store = stores()
    indexer = index(world, store, confirmations=5)
    indexer.sync()
    world.ledger.write(world.signer, world.opened("fresh"))
    block = head(world)
    report = indexer.sync()
    assert report.finalized_block == block - 5 < block == indexer.last_block()
    world.chain.w3.provider.make_request("anvil_mine", [hex(4)])
    assert indexer.sync().finalized_block == block - 1
    world.chain.w3.provider.make_request("anvil_mine", [hex(1)])
    assert indexer.sync().finalized_block == block  # now the entry is final
    assert indexer.sync(to_block=block - 10).finalized_block == block  # never decreases


def test_sync_to_a_block_and_deploy_block_detection(world: World, stores: Callable[..., Store]) -> None:
    store = stores()
    indexer = index(world, store)
    first_entry_block = world.ledger.entries()[0].block_number
    report = indexer.sync(to_block=first_entry_block)
    state = rows(store, "sync_state")[0]
    assert state["deploy_block"] == first_entry_block - 1  # deployment, then the first registration
    assert report.to_block == first_entry_block and report.entries == 1


def test_refuses_another_chain_and_the_embedded_chain(world: World, stores: Callable[..., Store]) -> None:
    store = stores()
    index(world, store).sync()
    with store.begin() as conn:
        conn.execute(sync_state.update().values(chain_id=1))
    with pytest.raises(ChainMismatch, match="chain 1"):
        index(world, store).sync()
    other = build_world(world.chain)  # another deployment: one ledger per store
    with pytest.raises(ChainMismatch, match="already indexes"):
        Indexer(world.chain, other.ledger.address, store).sync()
    with pytest.raises(NodeUnavailable, match="eth-tester"):
        Indexer(Chain.embedded_chain(), world.ledger.address, stores(), check_code=False)


def test_a_case_event_of_an_unknown_case_and_a_late_opened_across_syncs(
    world: World, stores: Callable[..., Store]
) -> None:
    """An event before its case's Opened (in an earlier sync) still counts as invalid once the case opens."""
    store = stores()
    indexer = index(world, store)
    world.ledger.write(world.signer, world.update("early", CaseAction.ESCALATED))
    indexer.sync()
    assert rows(store, "cases") == []
    world.ledger.write(world.signer, world.opened("early"))
    indexer.sync()
    row = case_row(store, "SH-ROADS", case_id("early"))
    assert row is not None and (row["invalid_transitions"], row["escalated"]) == (1, False)


# ------------------------------------------------------------------------------- the auditor's way, by hand


def auditor_cases(world: World) -> dict[tuple[str, bytes], CaseState]:
    """Every case state recomputed from the chain alone with ledger.cases.fold_case, as an auditor would: no SQL,
    no incremental folding, no caches."""
    log = world.ledger.entries()
    voided = voided_entries(
        (e.seq, e.agency_id, e.record.target_seq if e.kind == EntryKind.CORRECTION else None, e.kind,
         e.record.action if e.kind == EntryKind.CASE_EVENT else None) for e in log
    )
    jurisdiction = {e.agency_id: e.jurisdiction for e in log if e.kind == EntryKind.AGENCY_REGISTERED}
    versions: dict[tuple[bytes, bytes], list[CommitmentVersion]] = {}
    calendars: dict[bytes, dict[int, tuple[int, YearCalendar]]] = {}
    events: dict[tuple[bytes, bytes], list[Event]] = {}
    feedback: dict[tuple[bytes, bytes], list[Feedback]] = {}
    block_times: dict[int, int] = {}
    for e in log:
        r = e.record
        if e.kind in (EntryKind.RECEIPT_ISSUED, EntryKind.CASE_RATED, EntryKind.CASE_DISPUTED):
            if e.block_number not in block_times:
                block_times[e.block_number] = int(world.chain.w3.eth.get_block(e.block_number)["timestamp"])
            address = r.receipt if e.kind == EntryKind.RECEIPT_ISSUED else e.actor
            feedback.setdefault((e.agency_id, r.case_id), []).append(Feedback(
                e.seq, e.kind, address, block_times[e.block_number], getattr(r, "score", 0)))
        if e.kind == EntryKind.COMMITMENT_PUBLISHED:
            versions.setdefault((e.agency_id, r.commitment_id), []).append(
                CommitmentVersion(e.version, e.seq, r.deadline, r.deadline_unit))
        elif e.kind == EntryKind.HOLIDAY_CALENDAR_PUBLISHED:
            year_calendars = calendars.setdefault(e.jurisdiction, {})
            if e.version > year_calendars.get(r.year, (0, None))[0]:
                year_calendars[r.year] = (e.version, YearCalendar.of(r.year, r.holidays, r.workdays))
        elif e.kind == EntryKind.CASE_EVENT and e.seq not in voided:
            # The fold takes intake fields as they come: raw bytes32 here, code text in the index.
            events.setdefault((e.agency_id, r.case_id), []).append(
                Event(e.seq, r.action, r.occurred_at, r.commitment_id, r.district, r.channel)
            )
    out = {}
    for (agency, case), evs in events.items():
        opened = next((ev for ev in evs if ev.action == CaseAction.OPENED), None)
        state = fold_case(
            evs,
            [] if opened is None else versions.get((agency, opened.commitment_id), []),
            {y: cal for y, (_, cal) in calendars.get(jurisdiction[agency], {}).items()},
            feedback.get((agency, case), []),
        )
        if state is not None:
            out[(code_text(agency), case)] = state._replace(
                commitment_id=code_text(state.commitment_id), district=code_text(state.district)
            )
    return out


def test_index_equals_the_auditors_fold(world: World, stores: Callable[..., Store]) -> None:
    store = stores()
    indexer = index(world, store, max_block_range=4)
    write_everything(world, lambda stage: indexer.sync())
    write_feedback(world, lambda stage: indexer.sync())
    stored = {(r["agency_id"], bytes(r["case_id"])): CaseState(**{f: r[f] for f in CASE_STATE_FIELDS})
              for r in rows(store, "cases")}
    expected = auditor_cases(world)
    assert len(expected) == 72 + 7
    assert stored == expected
    # Each dispute's answer, by ledger.cases.dispute_answers over the chain's non-voided answering events.
    log = world.ledger.entries()
    voided = {r["seq"] for r in rows(store, "entries") if r["voided_by"] is not None}
    times = {r["seq"]: r["block_time"] for r in rows(store, "entries")}
    answers: dict[bytes, list[Answer]] = {}
    for e in log:
        if e.kind == EntryKind.CASE_EVENT and e.record.action in ANSWERS and e.seq not in voided:
            answers.setdefault(e.record.case_id, []).append(Answer(e.seq, e.record.action, times[e.seq]))
    disputes = [e for e in log if e.kind == EntryKind.CASE_DISPUTED]
    want = {}
    for e in disputes:
        answer = dispute_answers([e.seq], answers.get(e.record.case_id, []))[e.seq]
        want[e.seq] = (None, None, None) if answer is None else tuple(answer)
    got = {r["seq"]: (r["answer_seq"], r["answer_action"], r["answered_at"]) for r in rows(store, "disputes")}
    assert got == want and len(got) == 4


def test_two_indexers_on_one_store_take_turns(world: World, store_url: str, stores: Callable[..., Store]) -> None:
    """A CLI sync while the service's indexer runs: writes never interleave, and neither trusts stale caches."""
    import threading

    first = index(world, stores(store_url), max_block_range=3)
    second = index(world, stores(store_url), max_block_range=5)
    write_everything(world, lambda stage: first.sync() if stage == "first cases" else None)
    # `first` has case rows cached; `second` moves the store on (the escalated case gets rejected); `first` must
    # not build on what it remembers (the case open), or it would take the next event as valid.
    second.sync(to_block=head(world) - 5)
    world.ledger.write(world.signer, world.update("escalated", CaseAction.ACCEPTED))
    first.sync()
    escalated = case_row(stores(store_url), "SH-ROADS", case_id("escalated"))
    assert escalated is not None and (escalated["status"], escalated["invalid_transitions"]) == (REJECTED, 1)
    # Then both at once: the writes take turns.
    world.ledger.write_batch(world.signer, [world.update(f"bulk-{i}", CaseAction.ESCALATED) for i in range(1, 60, 2)])
    errors: list[BaseException] = []

    def run(indexer: Indexer) -> None:
        try:
            indexer.sync()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ix,)) for ix in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    fresh = stores()
    index(world, fresh).sync(to_block=head(world))
    dump = stores(store_url).dump()
    assert {t: r for t, r in dump.items() if t != "sync_state"} == {
        t: r for t, r in fresh.dump().items() if t != "sync_state"
    }
    assert [row[:6] for row in dump["sync_state"]] == [row[:6] for row in fresh.dump()["sync_state"]]


# ------------------------------------------------------------ a hostile agency against a case's opening (ffdaa88)


def _void(world: World, target: int) -> int:
    world.ledger.write(world.signer, records.Correction(target_seq=target, reason_hash=keccak(b"void"),
                                                        occurred_at=world.now()))
    return world.ledger.entry_count() - 1


def _write(world: World, record: Any) -> int:
    world.ledger.write(world.signer, record)
    return world.ledger.entry_count() - 1


def _roads(opened_at: int) -> Any:
    """The roads office's figures from a day before `opened_at`, taken ten days after it (48 h long past)."""
    return MetricsFilter(agency_id="SH-ROADS", start=opened_at - 86_400, end=opened_at + 10 * 86_400)


def test_attack_sync_stopped_between_the_opened_and_its_correction_gives_what_a_fresh_index_and_the_auditor_give(
    world: World, stores: Callable[..., Store], store_url: str
) -> None:
    """The index syncs the Opened; then the agency aims a correction at it and writes an Opened again (a fresh
    deadline); then voids that refused correction and writes the second Opened's Accepted. Incremental index = fresh
    index = the auditor's rebuild (whole, and by the incremental Builder cut at every entry): the case counts from
    its first opening, overdue at ten days, the second Opened an invalid transition."""
    store = stores(store_url)  # SQLite and PostgreSQL; the fresh index below on SQLite
    indexer = index(world, store, confirmations=0)
    first = _write(world, world.opened("left overdue"))
    indexer.sync()
    before = case_row(store, "SH-ROADS", case_id("left overdue"))
    assert before is not None
    correction = _void(world, first)
    _write(world, world.opened("left overdue"))
    indexer.sync()
    _void(world, correction)  # a refused correction is an entry like any other: voidable, and nothing comes back
    _write(world, world.update("left overdue", CaseAction.ACCEPTED))
    indexer.sync()
    row = case_row(store, "SH-ROADS", case_id("left overdue"))
    assert row is not None
    assert (row["opened_seq"], row["opened_at"], row["due_at"], row["status"], row["invalid_transitions"]) == (
        first, before["opened_at"], before["due_at"], OPEN, 1)
    assert {r["seq"]: bool(r["applied"]) for r in rows(store, "corrections")} == {
        correction: False, correction + 2: True}
    fresh = stores()
    index(world, fresh, confirmations=0).sync(to_block=head(world))
    assert store.dump() == fresh.dump()
    flt = _roads(before["opened_at"])
    model = audit_model(world)
    assert_agree(store, model, flt)
    assert deadline_figures(compute_metrics(store.engine, flt).to_dict()) == (1, 1, 1, 0)
    entries, _ = chain_log(world)
    whole = rebuild(entries)
    for cut in range(1, len(entries)):
        builder = Builder().extend(entries[:cut]).extend(entries[cut:])
        assert model_cases(builder.model()) == model_cases(whole), cut
        assert builder.model().voided == whole.voided and len(builder.model().refused_corrections) == 1, cut


@pytest.mark.parametrize("target", ["first", "second", "both"])
def test_attack_two_openeds_and_a_correction_of_either_leave_the_first_opening_standing(
    world: World, stores: Callable[..., Store], target: str
) -> None:
    """An Opened, a second Opened recorded later (its fresh deadline an invalid transition), and corrections aimed at
    the first, the second or both (the second voided first): every one refused, the case counts from its first
    opening; the index equals the auditor's rebuild and its figures."""
    store = stores()
    first = _write(world, world.opened("twice", district=short_code("EAST")))
    second = _write(world, world.opened("twice", district=short_code("WEST"), channel=5))
    aims = {"first": [first], "second": [second], "both": [second, first]}[target]
    corrections = [_void(world, seq) for seq in aims]
    index(world, store, confirmations=0).sync()
    row = case_row(store, "SH-ROADS", case_id("twice"))
    assert row is not None
    assert (row["opened_seq"], row["district"], row["channel"], row["invalid_transitions"]) == (first, "EAST", 2, 1)
    assert {r["seq"]: bool(r["applied"]) for r in rows(store, "corrections")} == dict.fromkeys(corrections, False)
    model = audit_model(world)
    assert_agree(store, model, _roads(row["opened_at"]))
    assert len(model.refused_corrections) == len(corrections)
    assert all("is the opened event of case" in why for _, why in model.refused_corrections)


def test_attack_a_reorganisation_dropping_and_restoring_corrections_aimed_at_an_opened(
    world: World, stores: Callable[..., Store]
) -> None:
    """Settled: an Opened. An orphaned branch aims a correction at it and opens the case again; the winning branch
    opens it again and aims corrections at both Openeds. After the rollback the index is a fresh index of the winning
    chain and the auditor's rebuild: the first opening stands."""
    store = stores()
    indexer = index(world, store, confirmations=20)
    first = _write(world, world.opened("reorged"))
    mine(world, 20)
    indexer.sync()
    settled = case_row(store, "SH-ROADS", case_id("reorged"))
    assert settled is not None
    snapshot = world.chain.snapshot()
    _void(world, first)
    _write(world, world.opened("reorged"))
    indexer.sync()
    assert case_row(store, "SH-ROADS", case_id("reorged"))["opened_seq"] == first  # type: ignore[index]
    world.chain.revert(snapshot)
    second = _write(world, world.opened("reorged"))
    _void(world, second)
    _void(world, first)
    mine(world, 25)
    report = indexer.sync()
    assert report.reorgs == 1
    row = case_row(store, "SH-ROADS", case_id("reorged"))
    assert row is not None and (row["opened_seq"], row["opened_at"], row["invalid_transitions"]) == (
        first, settled["opened_at"], 1)
    assert not any(r["applied"] for r in rows(store, "corrections"))
    fresh = stores()
    index(world, fresh, confirmations=20).sync(to_block=report.to_block)
    assert store.dump() == fresh.dump()
    assert_agree(store, audit_model(world, to_block=report.to_block), _roads(row["opened_at"]))
