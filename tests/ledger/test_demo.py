"""The demo city: realistic, deterministic, free of personal data, and loadable in one go or after an interruption;
with receipts, ratings and disputes that the ledger accepts and the case fold finds valid."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pytest

from ledger import batches, receipts
from ledger.cases import BAD_RATING_MAX, CaseState, CommitmentVersion, Event, Feedback, fold_case
from ledger.chain.contract import Chain, Ledger
from ledger.dev import demo
from ledger.dev.node import AnvilNode
from ledger.encoding import running_hash
from ledger.errors import LedgerError
from ledger.records import (
    CaseAction,
    CaseEvent,
    Commitment,
    Dispute,
    EntryKind,
    HolidayCalendar,
    Rating,
    ReceiptCaseStatus,
    is_receipt_case,
    short_code,
)
from ledger.workdays import YearCalendar

END = 1_790_000_000  # 2026-09-21


@pytest.fixture(scope="module")
def city() -> demo.DemoCity:
    return demo.generate_city(end=END, cases=3000, seed=7)


@pytest.fixture(scope="module")
def full_city() -> demo.DemoCity:
    """The demo city at its full size, as the devnet loads it (20,000 cases over 90 days): enough ratings, and bad
    ratings, for rates."""
    return demo.generate_city(end=END)


def test_city_shape(city):
    assert len(city.agencies) == 6
    commitments = [r for records in city.setup.values() for r in records if isinstance(r, Commitment)]
    assert len(commitments) == 15
    assert any(isinstance(r, HolidayCalendar) and r.workdays for rs in city.setup.values() for r in rs)
    assert city.cases == 3000
    events = [r for b in city.batches for r in b.records]
    actions = Counter(e.action for e in events)
    assert actions[CaseAction.OPENED] == 3000
    for action in (CaseAction.ON_HOLD, CaseAction.RESUMED, CaseAction.ESCALATED, CaseAction.REJECTED,
                   CaseAction.WITHDRAWN, CaseAction.FULFILLED, CaseAction.RECTIFIED):
        assert actions[action] > 0, action
    # some cases are still open at the end of the period
    closing = actions[CaseAction.FULFILLED] + actions[CaseAction.REJECTED] + actions[CaseAction.WITHDRAWN]
    assert closing < 3000


def test_recording_is_after_occurrence_and_sometimes_late(city):
    latencies = [b.recorded_at - e.occurred_at for b in city.batches for e in b.records]
    assert min(latencies) > 0
    late = sum(1 for latency in latencies if latency > demo.DAY)
    assert 0 < late < len(latencies) * 0.05
    assert all(city.start <= b.recorded_at <= END for b in city.batches)
    assert [b.recorded_at for b in city.batches] == sorted(b.recorded_at for b in city.batches)


def test_each_case_is_recorded_in_order_starting_with_opened(city):
    seen: dict[bytes, list[CaseAction]] = {}
    for batch in city.batches:
        for event in batch.records:
            seen.setdefault(event.case_id, []).append(event.action)
    assert all(actions[0] is CaseAction.OPENED for actions in seen.values())
    assert all(actions.count(CaseAction.OPENED) == 1 for actions in seen.values())


def test_deterministic_for_a_seed(city):
    again = demo.generate_city(end=END, cases=3000, seed=7)
    assert [(b.recorded_at, b.records) for b in again.batches] == [(b.recorded_at, b.records) for b in city.batches]


def test_no_personal_data_only_opaque_ids_and_codes(city):
    for batch in city.batches:
        for event in batch.records:
            assert isinstance(event, CaseEvent)
            assert set(type(event).model_fields) == {
                "case_id", "action", "occurred_at", "commitment_id", "district", "channel", "details_hash"
            }


def test_receipts_go_to_citizens_who_can_use_them(city):
    opened = {e.case_id: (b, e) for b in city.batches for e in b.records if e.action is CaseAction.OPENED}
    given = [(b, r) for b in city.batches for r in b.receipts]
    share = len(given) / city.cases
    assert 0.3 < share < 0.6  # counter, web and app mostly; a few by hotline or mail; none proactive
    for batch, receipt in given:
        assert is_receipt_case(receipt.case_id)
        home, event = opened[receipt.case_id]
        assert home is batch and receipt.occurred_at == event.occurred_at  # issued with the opening, recorded with it
        assert event.channel != 6  # nobody to hand a receipt to when the agency found the problem itself
        assert receipt.code == demo.receipt_code(city.seed, receipt.case_id) == receipts.format_code(receipt.code)
        assert receipt.code not in repr(receipt)
    with_receipt = {r.case_id for _, r in given}
    assert all(not is_receipt_case(case) for case in opened if case not in with_receipt)
    # a receipt case's closing is never in the batch its receipt goes out with: it waits for the receipt
    for batch in city.batches:
        waiting = {r.case_id for r in batch.receipts}
        assert not [e for e in batch.records if e.case_id in waiting and e.action is not CaseAction.OPENED
                    and e.action not in (CaseAction.ACCEPTED, CaseAction.ON_HOLD, CaseAction.RESUMED,
                                         CaseAction.ESCALATED)]


def test_ratings_and_disputes_follow_the_cases(city):
    closed_at: dict[bytes, int] = {}  # when each case's latest closing was recorded
    answers: dict[bytes, list[tuple[int, CaseAction]]] = {}
    for batch in city.batches:
        for e in batch.records:
            if e.action in (CaseAction.FULFILLED, CaseAction.REJECTED, CaseAction.WITHDRAWN):
                closed_at[e.case_id] = max(closed_at.get(e.case_id, 0), batch.recorded_at)
            if e.action in (CaseAction.REOPENED, CaseAction.DISPUTE_REJECTED):
                answers.setdefault(e.case_id, []).append((batch.recorded_at, e.action))
    ratings = [a for a in city.citizen_actions if isinstance(a.record, Rating)]
    disputes = [a for a in city.citizen_actions if isinstance(a.record, Dispute)]
    # RATING_SHARE (5 %) of receipt holders (about 45 % of cases) whose case closed in time: about 2 % of cases
    assert 0.01 * city.cases < len(ratings) < 0.05 * city.cases and len(disputes) >= 2
    assert [a.at for a in city.citizen_actions] == sorted(a.at for a in city.citizen_actions)
    assert len({a.record.case_id for a in ratings}) == len(ratings)  # once per case
    assert all(city.start < a.at < END for a in city.citizen_actions)
    for action in ratings:
        assert action.at > closed_at[action.record.case_id] + 60  # rated after the (final) closing is on chain
        assert action.receipt.case_id == action.record.case_id
    kinds = set()
    for action in disputes:
        case = action.record.case_id
        assert action.at > closed_at[case] or answers[case]  # a fulfilment it disputes was on chain before
        (answered, kind), = answers[case]
        assert action.at < answered <= action.at + 10 * demo.DAY  # answered within the response window
        kinds.add(kind)
    assert kinds == {CaseAction.REOPENED, CaseAction.DISPUTE_REJECTED}


def test_scores_follow_how_the_case_went(full_city):
    """Fulfilments rate well, refusals badly (over the full city's ratings: more than ten of rejected cases)."""
    ratings = [a for a in full_city.citizen_actions if isinstance(a.record, Rating)]
    outcome = {e.case_id: e.action for b in full_city.batches for e in b.records
               if e.action in (CaseAction.FULFILLED, CaseAction.REJECTED, CaseAction.WITHDRAWN)}
    fulfilled = [a.record.score for a in ratings if outcome[a.record.case_id] is CaseAction.FULFILLED]
    rejected = [a.record.score for a in ratings if outcome[a.record.case_id] is CaseAction.REJECTED]
    assert len(rejected) >= 10, len(rejected)
    assert sum(fulfilled) / len(fulfilled) > 3.5 > 2.8 > sum(rejected) / len(rejected)
    assert {a.record.score for a in ratings} == {1, 2, 3, 4, 5}


def test_the_hotline_anchors_a_batch_a_day_of_its_cases_without_receipts(city):
    anchored = city.anchored
    hotline = next(a for a in demo.AGENCIES if a.batched)
    assert hotline.agency_id == "DEMO-HOTLINE" and [a for a in demo.AGENCIES if a.batched] == [hotline]
    assert {b.agency_id for b in anchored} == {"DEMO-HOTLINE"} and not any(b.receipts for b in anchored)
    assert 80 <= len(anchored) <= 91  # one a day (of 90), the first days' few cases included
    assert [b.recorded_at for b in anchored] == sorted({b.recorded_at for b in anchored})  # one a day, in order
    assert len({b.recorded_at % demo.DAY for b in anchored[:-1]}) == 1  # at the hotline's own minute (the last: END)
    batched = {e.case_id for b in anchored for e in b.records}
    direct = {e.case_id for b in city.batches if not b.anchored for e in b.records}
    assert not batched & direct  # a case is batched whole or not at all
    assert not any(is_receipt_case(case) for case in batched)  # receipt cases stay transactions
    assert any(is_receipt_case(e.case_id) for b in city.batches if b.agency_id == "DEMO-HOTLINE" and not b.anchored
               for e in b.records)
    # a day's batch holds the 24 hours before it: only the few events recorded late (by design) are older
    latencies = [b.recorded_at - e.occurred_at for b in anchored for e in b.records]
    assert min(latencies) > 0 and sum(1 for t in latencies if t > demo.DAY) < 0.01 * len(latencies)
    # the same files every time (their hashes are on chain)
    again = demo.generate_city(end=END, cases=3000, seed=7)
    assert [demo.build_batch(b).file_hash for b in again.anchored] == [demo.build_batch(b).file_hash for b in anchored]


def test_load_resumes_after_an_interruption(monkeypatch, tmp_path):
    city = demo.generate_city(end=END, days=10, cases=120, seed=3)
    store = batches.BatchStore(tmp_path / "batches")
    assert len(city.anchored) >= 5
    with AnvilNode(extra_args=["--timestamp", str(city.start - 3600)]) as node:
        chain = Chain.connect(node.url)
        governance = chain.new_account()
        signers = {a.agency_id: chain.new_account() for a in demo.AGENCIES}
        ledger = Ledger.deploy(chain, governance)
        sent = 0
        real_send = demo._BatchSender.send

        def failing_send(self, signer, events):
            nonlocal sent
            sent += 1
            if sent == 5:
                raise LedgerError("node went away")
            real_send(self, signer, events)

        monkeypatch.setattr(demo._BatchSender, "send", failing_send)
        with pytest.raises(LedgerError, match="node went away"):
            demo.load_city(chain, ledger, governance, signers, city, batch_store=store)
        partial = ledger.entry_count()
        assert chain.w3.provider.make_request("anvil_getAutomine", [])["result"] is True  # left as it was
        monkeypatch.setattr(demo._BatchSender, "send", real_send)
        # then at an anchor: its file is published already (harmless), its block dropped
        anchors = 0
        real_anchor = demo._BatchSender.send_anchor

        def failing_anchor(self, signer, batch):
            nonlocal anchors
            anchors += 1
            if anchors == 3:
                raise LedgerError("anchor went away")
            real_anchor(self, signer, batch)

        monkeypatch.setattr(demo._BatchSender, "send_anchor", failing_anchor)
        with pytest.raises(LedgerError, match="anchor went away"):
            demo.load_city(chain, ledger, governance, signers, city, batch_store=store)
        assert partial < ledger.entry_count()
        partial = ledger.entry_count()
        monkeypatch.setattr(demo._BatchSender, "send_anchor", real_anchor)
        # and once more, at a citizen's rating this time
        real_citizen = demo._BatchSender.send_citizen

        def failing_citizen(self, relayer, action):
            raise LedgerError("relayer went away")

        monkeypatch.setattr(demo._BatchSender, "send_citizen", failing_citizen)
        with pytest.raises(LedgerError, match="relayer went away"):
            demo.load_city(chain, ledger, governance, signers, city, batch_store=store)
        assert partial < ledger.entry_count()
        monkeypatch.setattr(demo._BatchSender, "send_citizen", real_citizen)
        relayer = chain.new_account()
        demo.load_city(chain, ledger, governance, signers, city, relayer=relayer, batch_store=store)
        expected = demo.setup_entries(city) + city.entries
        assert partial < expected == ledger.entry_count()
        assert demo.load_city(chain, ledger, governance, signers, city, batch_store=store) == 0
        entries = ledger.entries()
        # every anchored day once, its file in the store: together with the transactions, every event once
        anchored = [e for e in entries if e.kind == EntryKind.BATCH_ANCHORED]
        assert len(anchored) == len(city.anchored) and len(list(store.directory.glob("*.csv"))) == len(anchored)
        batched = []
        for entry, day in zip(anchored, city.anchored, strict=True):
            built = batches.rebuild(store.get(entry.record.file_hash))
            assert (built.root, built.count) == (entry.record.root, entry.record.count) == (
                demo.build_batch(day).root, len(day.records))
            assert entry.agency_id == short_code("DEMO-HOTLINE") and entry.actor == signers["DEMO-HOTLINE"].address
            assert ledger.verify_batch_entry(entry.seq, 0, built.record_hashes[0], built.proof(0))
            batched += built.record_hashes
        case_hashes = [e.record_hash for e in entries if isinstance(e.record, CaseEvent)] + batched
        assert len(case_hashes) == len(set(case_hashes)) == city.case_events
        # no gaps: each anchor's seq range ends where the next entry begins
        spans = sorted((e.seq, e.record.count if e.kind == EntryKind.BATCH_ANCHORED else 1) for e in entries)
        assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:])) and sum(n for _, n in spans) == expected
        kinds = Counter(e.kind for e in entries)
        assert kinds[EntryKind.RECEIPT_ISSUED] == len(city.receipts)
        assert kinds[EntryKind.CASE_RATED] + kinds[EntryKind.CASE_DISPUTED] == len(city.citizen_actions) > 0
        for receipt in city.receipts:  # every receipt on chain is the key of its demo code
            agency = next(b.agency_id for b in city.batches if receipt in b.receipts)
            state = ledger.receipt_case(short_code(agency), receipt.case_id)
            assert state.receipt == receipts.address(receipt.code) and state.status is not ReceiptCaseStatus.NONE
        for action in city.citizen_actions:
            state = ledger.receipt_case(short_code(action.agency_id), action.record.case_id)
            assert state.rated if isinstance(action.record, Rating) else state.closures >= 1
            assert not state.disputed  # every dispute answered
        assert running_hash(e.entry_hash for e in entries) == ledger.running_hash()  # each batch folded once
        store.path(anchored[0].record.file_hash).unlink()  # lost: publishing again brings back the same file
        assert demo.publish_batches(city, store) == 1 and store.get(anchored[0].record.file_hash) is not None
        # block times move with the history: recording latency is realistic, not 90 days. A batch whose time is
        # already past is mined a second after the block before it, so the last may end a few seconds after END.
        last = max(entries, key=lambda e: e.seq)
        assert END - 86_400 < chain.w3.eth.get_block(last.block_number)["timestamp"] <= END + 60


def replayed(city: demo.DemoCity, calendars: Mapping[int, YearCalendar]) -> dict[bytes, CaseState]:
    """Every case's state, folded from the city's steps in recording order (as the ledger would number them): its
    events, receipts, ratings and disputes (every case under one 48-hour commitment version)."""
    events: dict[bytes, list[Event]] = {}
    feedback: dict[bytes, list[Feedback]] = {}
    seq = 0
    for step in city.steps():
        if isinstance(step, demo.CitizenAction):
            kind = EntryKind.CASE_RATED if isinstance(step.record, Rating) else EntryKind.CASE_DISPUTED
            score = step.record.score if isinstance(step.record, Rating) else 0
            feedback.setdefault(step.record.case_id, []).append(
                Feedback(seq, int(kind), "0x" + "11" * 20, step.at, score))
            seq += 1
            continue
        for e in step.records:
            events.setdefault(e.case_id, []).append(
                Event(seq, int(e.action), e.occurred_at, e.commitment_id, e.district, e.channel)
            )
            seq += 1
        for r in step.receipts:
            feedback.setdefault(r.case_id, []).append(
                Feedback(seq, int(EntryKind.RECEIPT_ISSUED), "0x" + "11" * 20, step.recorded_at))
            seq += 1
    version = [CommitmentVersion(version=1, seq=-1, deadline=48, deadline_unit=1)]
    states = {case: fold_case(case_events, version, calendars, feedback.get(case, ()))
              for case, case_events in events.items()}
    assert all(state is not None for state in states.values())
    return states  # type: ignore[return-value]


def test_replayed_in_recording_order_every_case_is_a_valid_life(city):
    """Regression: a late event used to be recorded after a later event of its case, which the case fold (and so
    the auditor) counts as an invalid transition. Receipts, ratings, disputes, their answers and the rectifications
    of bad ratings fold in too."""
    states = list(replayed(city, {}).values())
    assert len(states) == city.cases
    assert sum(state.invalid_transitions for state in states) == 0
    assert not any(state.dispute_open for state in states)
    assert sum(state.reopened for state in states) >= 1
    assert sum(state.rectified_at is not None for state in states) >= 1


def test_agencies_respond_within_a_working_day_mostly_and_rectify_most_bad_ratings(full_city):
    """By the fold (ledger.cases) under the demo's published calendars: most cases are taken up within the working
    day after their opening's, some later — the housing office most often; most bad ratings are rectified after
    the rating within 15 working days, some later, some never."""
    calendars = {r.year: YearCalendar.of(r.year, r.holidays, r.workdays)
                 for r in full_city.setup["DEMO-LICENSING"] if isinstance(r, HolidayCalendar)}
    states = replayed(full_city, calendars)
    agency_of = {e.case_id: b.agency_id for b in full_city.batches for e in b.records}
    responded: dict[str, list[bool]] = {}  # agency -> late or not, of each response
    for case, state in states.items():
        assert state.response_due is not None
        if state.responded_at is not None:
            responded.setdefault(agency_of[case], []).append(state.responded_at > state.response_due)
    late = {agency: sum(lates) / len(lates) for agency, lates in responded.items()}
    assert set(late) == {a.agency_id for a in demo.AGENCIES} and all(0 < share < 0.25 for share in late.values())
    assert max(late, key=late.__getitem__) == "DEMO-HOUSING"
    everyone = [x for lates in responded.values() for x in lates]
    assert 0.02 < sum(everyone) / len(everyone) < 0.1, sum(everyone) / len(everyone)

    bad = [s for s in states.values() if s.rating is not None and s.rating <= BAD_RATING_MAX]
    assert len(bad) >= 30 and all(s.rectification_due is not None for s in bad)
    assert all(s.rectification_due is None for s in states.values() if s.rating is None or s.rating > BAD_RATING_MAX)
    rectified = [s for s in bad if s.rectified_at is not None]
    assert all(s.rated_at is not None and s.rectified_at > s.rated_at for s in rectified)  # type: ignore[operator]
    on_time = sum(s.rectified_at <= s.rectification_due for s in rectified)  # type: ignore[operator]
    never = sum(s.rectified_at is None and s.rectification_due < END for s in bad)  # type: ignore[operator]
    assert on_time >= 0.4 * len(bad) and len(rectified) - on_time >= 1 and never >= 1, (len(bad), on_time, never)
    # recorded after the rating it answers (the contract takes a Rectified event of a rated case only), once
    rated_at = {a.record.case_id: a.at for a in full_city.citizen_actions if isinstance(a.record, Rating)}
    events = [(b.recorded_at, e) for b in full_city.batches for e in b.records if e.action is CaseAction.RECTIFIED]
    assert len(events) == len({e.case_id for _, e in events}) == len(rectified)
    assert all(rated_at[e.case_id] < e.occurred_at < recorded for recorded, e in events)
    assert all(e.details_hash != bytes(32) for _, e in events)
