"""The demo city: realistic, deterministic, free of personal data, and loadable in one go or after an interruption."""

from __future__ import annotations

from collections import Counter

import pytest

from ledger import demo
from ledger.chain import Chain, Ledger
from ledger.errors import LedgerError
from ledger.node import AnvilNode
from ledger.records import CaseAction, CaseEvent, Commitment, HolidayCalendar, running_hash

END = 1_790_000_000  # 2026-09-21


@pytest.fixture(scope="module")
def city() -> demo.DemoCity:
    return demo.generate_city(end=END, cases=3000, seed=7)


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
                   CaseAction.WITHDRAWN, CaseAction.FULFILLED):
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


def test_load_resumes_after_an_interruption(monkeypatch):
    city = demo.generate_city(end=END, days=10, cases=120, seed=3)
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
            demo.load_city(chain, ledger, governance, signers, city)
        partial = ledger.entry_count()
        monkeypatch.setattr(demo._BatchSender, "send", real_send)
        demo.load_city(chain, ledger, governance, signers, city)
        expected = demo.setup_entries(city) + city.case_events
        assert partial < expected == ledger.entry_count()
        assert demo.load_city(chain, ledger, governance, signers, city) == 0
        entries = ledger.entries()
        case_hashes = [e.record_hash for e in entries if isinstance(e.record, CaseEvent)]
        assert len(case_hashes) == len(set(case_hashes)) == city.case_events
        assert running_hash(e.entry_hash for e in entries) == ledger.running_hash()
        # block times move with the history: recording latency is realistic, not 90 days. A batch whose time is
        # already past is mined a second after the block before it, so the last may end a few seconds after END.
        last = max(entries, key=lambda e: e.seq)
        assert END - 86_400 < chain.w3.eth.get_block(last.block_number)["timestamp"] <= END + 60


def test_replayed_in_recording_order_every_case_is_a_valid_life(city):
    """Regression: a late event used to be recorded after a later event of its case, which the case fold (and so
    the auditor) counts as an invalid transition."""
    from ledger.cases import CommitmentVersion, Event, fold_case

    events: dict[bytes, list[Event]] = {}
    seq = 0
    for batch in city.batches:
        for e in batch.records:
            events.setdefault(e.case_id, []).append(
                Event(seq, int(e.action), e.occurred_at, e.commitment_id, e.district, e.channel)
            )
            seq += 1
    version = [CommitmentVersion(version=1, seq=-1, deadline=48, deadline_unit=1)]
    states = [fold_case(case_events, version, {}) for case_events in events.values()]
    assert len(states) == city.cases
    assert sum(state.invalid_transitions for state in states) == 0
