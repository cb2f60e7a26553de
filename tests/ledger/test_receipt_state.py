"""The receipt-case state machine (ledger.receipt_state): every move of the state the contract tracks for a case with
a receipt, every refusal of a case event, a rating and a dispute, the windows; and, on random histories, the rules
against a transliteration of the contract's own functions (``CivicLedger._applyToReceiptCase``, ``rateCase``,
``disputeCase``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import receipt_state as rs
from ledger.cases import DISPUTE_RESPONSE_WINDOW, DISPUTE_WINDOW
from ledger.chain.contract import ReceiptCaseState
from ledger.receipt_state import (
    CLOSED_UNFULFILLED,
    FULFILLED,
    OPEN,
    ReceiptCase,
    after_dispute,
    after_event,
    after_rating,
    answer_due,
    answer_overdue,
    decide,
    dispute_closure,
    dispute_deadline,
    dispute_refusal,
    event_refusal,
    in_dispute_window,
    issued,
    latest_dispute_deadline,
    rate_refusal,
    track,
)
from ledger.records import CaseAction as A
from ledger.records import ReceiptCaseStatus

T0 = 1_790_000_000
NOT_MOVING = (A.OPENED, A.ACCEPTED, A.ON_HOLD, A.RESUMED, A.ESCALATED)
CLOSINGS = {A.FULFILLED: FULFILLED, A.REJECTED: CLOSED_UNFULFILLED, A.WITHDRAWN: CLOSED_UNFULFILLED}


def state(status: ReceiptCaseStatus = OPEN, closures: int = 0, closed_at: int | None = None, rated: bool = False,
          disputed: bool = False, disputed_closure: int = 0) -> ReceiptCase:
    return ReceiptCase(status, closures, closed_at, rated, disputed, disputed_closure)


FULFILLED_ONCE = state(FULFILLED, 1, T0)


# --- the state and its moves ------------------------------------------------------------------------------------------


def test_a_receipt_starts_an_open_case() -> None:
    assert issued() == state(OPEN) == ReceiptCase(OPEN, 0, None, False, False, 0)


def test_the_api_names_each_status_by_the_contract_s_enum() -> None:
    assert rs.STATUS_NAMES == {s: s.name.lower() for s in ReceiptCaseStatus if s is not ReceiptCaseStatus.NONE}


@pytest.mark.parametrize(("action", "status"), list(CLOSINGS.items()))
def test_a_closing_closes_an_open_case_at_its_block_time(action: A, status: ReceiptCaseStatus) -> None:
    assert rs.CLOSING[int(action)] is status
    assert after_event(state(OPEN), action, T0) == state(status, 1, T0)
    reopened = state(OPEN, 2, T0, rated=True, disputed_closure=2)
    assert after_event(reopened, action, T0 + 5) == state(status, 3, T0 + 5, rated=True, disputed_closure=2)


@pytest.mark.parametrize("action", list(CLOSINGS))
@pytest.mark.parametrize("closed", [FULFILLED, CLOSED_UNFULFILLED])
def test_a_closing_of_a_closed_case_does_not_move_it(action: A, closed: ReceiptCaseStatus) -> None:
    before = state(closed, 1, T0, disputed=closed is FULFILLED, disputed_closure=1)
    assert after_event(before, action, T0 + 1) is before
    assert event_refusal(before, action) == "InvalidReceiptCaseStatus"


@pytest.mark.parametrize("closed", [FULFILLED, CLOSED_UNFULFILLED])
def test_reopened_opens_a_closed_case_and_clears_its_dispute(closed: ReceiptCaseStatus) -> None:
    before = state(closed, 2, T0, rated=True, disputed=True, disputed_closure=2)
    assert event_refusal(before, A.REOPENED) is None
    assert after_event(before, A.REOPENED, T0 + 9) == state(OPEN, 2, T0, rated=True, disputed_closure=2)


def test_dispute_rejected_clears_the_dispute_and_the_closure_stays_disputed() -> None:
    before = state(FULFILLED, 1, T0, disputed=True, disputed_closure=1)
    assert event_refusal(before, A.DISPUTE_REJECTED) is None
    after = after_event(before, A.DISPUTE_REJECTED, T0 + 9)
    assert after == state(FULFILLED, 1, T0, disputed_closure=1)
    assert dispute_refusal(after, T0 + 10) == "closure_disputed"


@pytest.mark.parametrize("before", [
    state(FULFILLED, 1, T0, rated=True),
    state(FULFILLED, 1, T0, rated=True, disputed=True, disputed_closure=1),
    state(CLOSED_UNFULFILLED, 1, T0, rated=True),
    state(OPEN, 1, T0, rated=True),  # rated, then reopened
])
def test_rectified_answers_a_rating_and_does_not_move_it(before: ReceiptCase) -> None:
    assert event_refusal(before, A.RECTIFIED) is None
    assert after_event(before, A.RECTIFIED, T0 + 9) is before
    # so what the holder may do next is what it was before
    assert decide(before, T0 + 10) == decide(after_event(before, A.RECTIFIED, T0 + 9), T0 + 10)


@pytest.mark.parametrize("before", [state(OPEN), FULFILLED_ONCE, state(CLOSED_UNFULFILLED, 1, T0, disputed_closure=1)])
def test_rectified_of_a_case_not_rated_is_refused(before: ReceiptCase) -> None:
    assert event_refusal(before, A.RECTIFIED) == "CaseNotRated"


@pytest.mark.parametrize("action", NOT_MOVING)
@pytest.mark.parametrize("before", [state(OPEN), FULFILLED_ONCE, state(CLOSED_UNFULFILLED, 1, T0, rated=True)])
def test_other_case_events_do_not_move_it(action: A, before: ReceiptCase) -> None:
    assert after_event(before, action, T0 + 1) is before
    assert event_refusal(before, action) is None


def test_a_rating_and_a_dispute() -> None:
    assert after_rating(FULFILLED_ONCE) == state(FULFILLED, 1, T0, rated=True)
    assert after_dispute(FULFILLED_ONCE) == state(FULFILLED, 1, T0, disputed=True, disputed_closure=1)


# --- the contract's refusals of case events ---------------------------------------------------------------------------


def test_the_contract_refuses_events_that_do_not_move_a_receipt_case() -> None:
    assert event_refusal(state(OPEN), A.REOPENED) == "InvalidReceiptCaseStatus"
    assert event_refusal(FULFILLED_ONCE, A.DISPUTE_REJECTED) == "CaseNotDisputed"
    assert event_refusal(state(OPEN), A.DISPUTE_REJECTED) == "CaseNotDisputed"
    for action in CLOSINGS:
        assert event_refusal(state(OPEN), action) is None


def test_a_case_without_a_receipt_moves_nothing_but_the_answers_are_refused() -> None:
    none = ReceiptCaseState("0x" + "0" * 40, ReceiptCaseStatus.NONE, 0, 0, False, False, 0)
    for action in (*CLOSINGS, A.REOPENED, *NOT_MOVING):
        assert event_refusal(none, action) is None
    assert event_refusal(none, A.DISPUTE_REJECTED) == "CaseNotDisputed"
    assert event_refusal(none, A.RECTIFIED) == "CaseNotRated"


# --- what the holder may do -------------------------------------------------------------------------------------------


def test_rating_refusals_in_the_contract_s_order() -> None:
    assert rate_refusal(state(OPEN)) == "not_closed"
    assert rate_refusal(state(OPEN, rated=True), pending=True) == "not_closed"
    assert rate_refusal(state(CLOSED_UNFULFILLED, 1, T0, rated=True), pending=True) == "already_rated"
    assert rate_refusal(FULFILLED_ONCE, pending=True) == "rating_pending"
    assert rate_refusal(FULFILLED_ONCE) is None
    assert rate_refusal(state(CLOSED_UNFULFILLED, 1, T0)) is None


def test_dispute_refusals_in_the_contract_s_order() -> None:
    late = T0 + DISPUTE_WINDOW + 1
    assert dispute_refusal(state(OPEN, 1, T0), late, closure=0, pending=True) == "not_closed"
    assert dispute_refusal(state(CLOSED_UNFULFILLED, 1, T0), late, closure=0, pending=True) == "not_fulfilled"
    disputed = state(FULFILLED, 1, T0, disputed=True, disputed_closure=1)
    assert dispute_refusal(disputed, late, closure=0, pending=True) == "already_disputed"
    answered = state(FULFILLED, 1, T0, disputed_closure=1)
    assert dispute_refusal(answered, late, closure=0, pending=True) == "closure_disputed"
    assert dispute_refusal(FULFILLED_ONCE, late, closure=0, pending=True) == "stale_closure"
    assert dispute_refusal(FULFILLED_ONCE, late, closure=2, pending=True) == "stale_closure"
    assert dispute_refusal(FULFILLED_ONCE, late, closure=1, pending=True) == "dispute_window_closed"
    assert dispute_refusal(FULFILLED_ONCE, late, pending=True) == "dispute_window_closed"
    assert dispute_refusal(FULFILLED_ONCE, T0 + 1, closure=1, pending=True) == "dispute_pending"
    assert dispute_refusal(FULFILLED_ONCE, T0 + 1, closure=1) is None
    assert dispute_refusal(FULFILLED_ONCE, T0 + 1) is None
    # a second fulfilment (after a reopening) may be disputed though the first was
    again = state(FULFILLED, 2, T0 + 50, disputed_closure=1)
    assert dispute_refusal(again, T0 + 60, closure=2) is None


def test_the_dispute_window_includes_its_last_second() -> None:
    assert dispute_deadline(T0) == T0 + DISPUTE_WINDOW == 30 * 86_400 + T0
    assert in_dispute_window(T0, T0) and in_dispute_window(T0, T0 + DISPUTE_WINDOW)
    assert not in_dispute_window(T0, T0 + DISPUTE_WINDOW + 1)
    assert dispute_refusal(FULFILLED_ONCE, T0 + DISPUTE_WINDOW) is None
    assert dispute_refusal(FULFILLED_ONCE, T0 + DISPUTE_WINDOW + 1) == "dispute_window_closed"


def test_the_closure_to_dispute_and_its_deadline_belong_to_a_fulfilled_case() -> None:
    assert dispute_closure(FULFILLED_ONCE) == 1 and latest_dispute_deadline(FULFILLED_ONCE) == T0 + DISPUTE_WINDOW
    for other in (state(OPEN, 1, T0), state(CLOSED_UNFULFILLED, 1, T0)):
        assert dispute_closure(other) is None and latest_dispute_deadline(other) is None


def test_decide_gives_both_answers_and_the_deadline() -> None:
    decision = decide(FULFILLED_ONCE, T0 + 1, rating_pending=True)
    assert decision == rs.Decision("rating_pending", None, T0 + DISPUTE_WINDOW)
    assert decide(state(OPEN), T0) == rs.Decision("not_closed", "not_closed", None)
    closed = decide(state(CLOSED_UNFULFILLED, 1, T0, rated=True), T0, dispute_pending=True)
    assert closed == rs.Decision("already_rated", "not_fulfilled", None)


def test_the_chain_s_state_reads_as_a_receipt_case() -> None:
    chain = ReceiptCaseState("0x" + "1" * 40, FULFILLED, 2, T0, True, False, 1)
    assert ReceiptCase.of_chain(chain) == state(FULFILLED, 2, T0, rated=True, disputed_closure=1)
    assert ReceiptCase.of_chain(dataclasses.replace(chain, status=OPEN, closed_at=0)).closed_at is None
    with pytest.raises(ValueError, match="no receipt"):
        ReceiptCase.of_chain(dataclasses.replace(chain, status=ReceiptCaseStatus.NONE))
    # the rules read the chain's own state as they read a ReceiptCase
    assert decide(chain, T0 + 1) == decide(ReceiptCase.of_chain(chain), T0 + 1)


def test_answers_to_disputes_are_due_within_the_response_window() -> None:
    assert answer_due(T0) == T0 + DISPUTE_RESPONSE_WINDOW
    due = answer_due(T0)
    assert not answer_overdue(T0, due, answered=False)
    assert answer_overdue(T0, due + 1, answered=False)
    assert not answer_overdue(T0, due + 1, answered=True)


# --- folding recorded entries -----------------------------------------------------------------------------------------


def test_track_counts_only_what_came_after_the_receipt_in_seq_order() -> None:
    events = [(3, A.FULFILLED, T0), (12, A.FULFILLED, T0 + 20), (14, A.REOPENED, T0 + 40), (16, A.REJECTED, T0 + 60)]
    assert track(10, events, rated_seqs=[], dispute_seqs=[]) == state(CLOSED_UNFULFILLED, 2, T0 + 60)
    # given in any order, merged by seq: the dispute (13) was of closure 1, the rating (15) after the reopening
    got = track(10, list(reversed(events)), rated_seqs=[15, 5], dispute_seqs=[13])
    assert got == state(CLOSED_UNFULFILLED, 2, T0 + 60, rated=True, disputed_closure=1)
    assert track(10, [], [], []) == issued()


# --- against the contract ---------------------------------------------------------------------------------------------


@dataclass
class Contract:
    """``CivicLedger``'s receipt-case functions transliterated, from a receipt issued: each returns the custom error
    it reverts with (None: accepted, the state moved)."""

    status: ReceiptCaseStatus = OPEN
    closures: int = 0
    closed_at: int = 0
    rated: bool = False
    disputed: bool = False
    disputed_closure: int = 0

    def move(self, action: int, now: int) -> str | None:
        """``recordCaseEvent``'s part for a receipt case: ``_applyToReceiptCase`` for actions from Fulfilled on."""
        if action < A.FULFILLED:
            return None
        if action == A.RECTIFIED:
            return None if self.rated else "CaseNotRated"
        if action == A.DISPUTE_REJECTED:
            if not self.disputed:
                return "CaseNotDisputed"
            self.disputed = False
        elif action == A.REOPENED:
            if self.status == OPEN:
                return "InvalidReceiptCaseStatus"
            self.status, self.disputed = OPEN, False
        else:
            if self.status != OPEN:
                return "InvalidReceiptCaseStatus"
            self.status = FULFILLED if action == A.FULFILLED else CLOSED_UNFULFILLED
            self.closures += 1
            self.closed_at = now
        return None

    def rate(self) -> str | None:
        if self.status == OPEN:
            return "InvalidReceiptCaseStatus"
        if self.rated:
            return "AlreadyRated"
        self.rated = True
        return None

    def dispute(self, closure: int, now: int) -> str | None:
        if self.status != FULFILLED:
            return "InvalidReceiptCaseStatus"
        if self.disputed or self.disputed_closure == self.closures:
            return "AlreadyDisputed"
        if closure != self.closures:
            return "StaleClosure"
        if now > self.closed_at + DISPUTE_WINDOW:
            return "DisputeWindowClosed"
        self.disputed, self.disputed_closure = True, self.closures
        return None

    def tracked(self) -> ReceiptCase:
        return ReceiptCase(self.status, self.closures, self.closed_at or None, self.rated, self.disputed,
                           self.disputed_closure)


def _rate_code(error: str | None) -> str | None:
    return {None: None, "AlreadyRated": "already_rated", "InvalidReceiptCaseStatus": "not_closed"}[error]


def _dispute_code(error: str | None, before: ReceiptCase) -> str | None:
    if error == "InvalidReceiptCaseStatus":
        return "not_closed" if before.status is OPEN else "not_fulfilled"
    if error == "AlreadyDisputed":
        return "already_disputed" if before.disputed else "closure_disputed"
    return {None: None, "StaleClosure": "stale_closure", "DisputeWindowClosed": "dispute_window_closed"}[error]


step_st = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(list(A)), st.integers(0, 20 * 86_400)),
    st.tuples(st.just("rate"), st.just(0), st.integers(0, 20 * 86_400)),
    st.tuples(st.just("dispute"), st.integers(-1, 1), st.integers(0, 20 * 86_400)),
)


@settings(max_examples=400, deadline=None)
@given(
    steps=st.lists(step_st, max_size=30),
    before=st.lists(st.tuples(st.sampled_from(list(A)), st.booleans()), max_size=4),
)
def test_the_rules_are_the_contract_s(steps: list[tuple[str, int, int]], before: list[tuple[A, bool]]) -> None:
    """On random histories: what the rules say of each event, rating and dispute is what the contract does with it,
    and folding what the contract recorded (with entries from before the receipt, which do not count) gives the state
    the contract holds, after every step."""
    contract = Contract()
    seq = 0
    events: list[tuple[int, int, int]] = []
    rated: list[int] = []
    disputed: list[int] = []
    for action, is_rating in before:  # recorded before the receipt: the contract did not track the case yet
        seq += 1
        if is_rating:
            rated.append(seq)
        else:
            events.append((seq, int(action), T0))
    seq += 1
    receipt_seq = seq
    now = T0
    for kind, value, elapsed in steps:
        now += elapsed
        tracked = track(receipt_seq, events, rated, disputed)
        assert tracked == contract.tracked()
        if kind == "event":
            error = contract.move(value, now)
            assert event_refusal(tracked, value) == error
            if error is None:
                seq += 1
                events.append((seq, value, now))
                assert after_event(tracked, value, now) == contract.tracked()
        elif kind == "rate":
            error = contract.rate()
            assert rate_refusal(tracked) == _rate_code(error)
            assert decide(tracked, now).rate_refusal == rate_refusal(tracked)
            if error is None:
                seq += 1
                rated.append(seq)
        else:
            closure = tracked.closures + value
            error = contract.dispute(closure, now)
            assert dispute_refusal(tracked, now, closure=closure) == _dispute_code(error, tracked)
            if value == 0:
                assert decide(tracked, now).dispute_refusal == _dispute_code(error, tracked)
            if error is None:
                seq += 1
                disputed.append(seq)
    assert track(receipt_seq, events, rated, disputed) == contract.tracked()
