"""The receipt-case state machine: THE one definition of what the contract tracks of a case with a receipt
(``ICivicLedger.ReceiptCase``), how recorded entries move it, and whether its holder's rating or dispute would be
accepted now — and if not, why. Pure functions, no chain, no database, no web framework: the API (the receipt view,
the write API's checks, through ``api.feedback``) and the auditor judge a receipt case by these rules alone.

Why not in ``ledger.cases``
    ``ledger.cases`` folds a case's non-voided events by their claimed times into the case's full status (open, on
    hold, fulfilled, rejected, withdrawn) — what the ledger *means*. The contract tracks something coarser and
    different (``CivicLedger._issueReceipt``, ``_applyToReceiptCase``, ``rateCase``, ``disputeCase``): from the receipt
    on, every case event it recorded moves the state (it knows nothing of corrections), at its block time, and a
    batched event never does (it never sees inside a batch). Two machines, kept apart so neither is used for the
    other; this one takes its windows (:data:`ledger.cases.DISPUTE_WINDOW`,
    :data:`~ledger.cases.DISPUTE_RESPONSE_WINDOW`), closing actions and answers from ``ledger.cases``.

The state (:class:`ReceiptCase`)
    ``status`` OPEN, FULFILLED or CLOSED_UNFULFILLED (``ledger.records.ReceiptCaseStatus``; NONE: no receipt, not
    tracked); ``closures`` how many times it was closed; ``closed_at`` the block time of the latest closing (None:
    never); ``rated``; ``disputed``: a dispute awaits the agency's answer; ``disputed_closure`` the last closure
    disputed (0: none). Each closure can be disputed once: an answer clears ``disputed``, not ``disputed_closure``.

Transitions (:func:`issued`, :func:`after_event`, :func:`after_rating`, :func:`after_dispute`; :func:`track` folds them)

    ======================  ===========================================================================
    entry                   move
    ======================  ===========================================================================
    ReceiptIssued           OPEN, no closure, not rated, not disputed
    Fulfilled               OPEN → FULFILLED; ``closures + 1``, ``closed_at`` = its block time
    Rejected, Withdrawn     OPEN → CLOSED_UNFULFILLED; ``closures + 1``, ``closed_at`` = its block time
    Reopened                → OPEN, the dispute cleared (``closures``, ``closed_at`` kept)
    DisputeRejected         the dispute cleared (the fulfilment stands, and that closure stays disputed)
    Rectified               no move (it answers the rating: the case is disputed or closed after it as before)
    other case events       no move
    CaseRated               ``rated``
    CaseDisputed            ``disputed``, ``disputed_closure = closures``
    ======================  ===========================================================================

    The contract refuses a case event its state does not allow (:func:`event_refusal`): a closing of a case not open
    or a Reopened of an open one (``InvalidReceiptCaseStatus``), a DisputeRejected with no dispute awaiting an answer
    (``CaseNotDisputed``), a Rectified of a case not rated (``CaseNotRated``). The two answers are refused of a case
    without a receipt too (status NONE: nothing to answer), whatever its id; its other events are taken. The contract
    keeps no score, so it takes a Rectified after any rating: that it answers a bad one is ``ledger.cases``' rule. A
    refused event is never recorded, so a fold of what was recorded applies every event; :func:`after_event` given
    one anyway makes the move above all the same, except that a closing of a case not open is ignored.

What the holder may do now (:func:`rate_refusal`, :func:`dispute_refusal`, :func:`decide`), in the contract's order
    A rating: ``not_closed`` (the case is open), ``already_rated`` (once ever). A dispute, of the latest closure
    only: ``not_closed``, ``not_fulfilled`` (closed otherwise), ``already_disputed`` (a dispute awaits its answer),
    ``closure_disputed`` (this closure was disputed and answered), ``stale_closure`` (the dispute names another
    closure than the latest), ``dispute_window_closed`` (later than :func:`dispute_deadline`: ``DISPUTE_WINDOW``
    after the closing's block time, inclusive). A service relaying the holder's records adds ``rating_pending`` and
    ``dispute_pending`` last: one of theirs is on its way already. These are the codes of the write API's refusals.
    (The contract refuses a case without a receipt first, ``CaseHasNoReceipt``: the callers do.)

Disputes' answers (:func:`answer_due`, :func:`answer_overdue`)
    The agency must answer a dispute (Reopened or DisputeRejected) within ``DISPUTE_RESPONSE_WINDOW`` of the
    dispute's block time; one unanswered after that is overdue. Not enforced on chain: the API shows it, the
    metrics count it (``ledger.metrics.is_unanswered_at``) and the auditor flags it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ledger.cases import ANSWERS, CLOSING_ACTIONS, DISPUTE_RESPONSE_WINDOW, DISPUTE_WINDOW
from ledger.cases import FULFILLED as CASE_FULFILLED
from ledger.records import CaseAction, ReceiptCaseStatus

OPEN = ReceiptCaseStatus.OPEN
FULFILLED = ReceiptCaseStatus.FULFILLED
CLOSED_UNFULFILLED = ReceiptCaseStatus.CLOSED_UNFULFILLED

#: the case events that close a case, and the tracked status each leads to (``ledger.cases``' closing actions)
CLOSING: dict[int, ReceiptCaseStatus] = {
    int(action): FULFILLED if status == CASE_FULFILLED else CLOSED_UNFULFILLED
    for action, status in CLOSING_ACTIONS.items()
}
_REOPENED = int(CaseAction.REOPENED)
_DISPUTE_REJECTED = int(CaseAction.DISPUTE_REJECTED)
_RECTIFIED = int(CaseAction.RECTIFIED)

StatusName = Literal["open", "fulfilled", "closed_unfulfilled"]
#: a tracked status as the API names it
STATUS_NAMES: dict[ReceiptCaseStatus, StatusName] = {
    OPEN: "open",
    FULFILLED: "fulfilled",
    CLOSED_UNFULFILLED: "closed_unfulfilled",
}

RateRefusal = Literal["claimed", "not_closed", "already_rated", "rating_pending"]
DisputeRefusal = Literal[
    "claimed", "not_closed", "not_fulfilled", "already_disputed", "closure_disputed", "stale_closure",
    "dispute_window_closed", "dispute_pending",
]
#: the contract's custom errors for a case event of a receipt case it refuses (:func:`event_refusal`)
EventRefusal = Literal["InvalidReceiptCaseStatus", "CaseNotDisputed", "CaseNotRated"]


class ReceiptCaseLike(Protocol):
    """What the rules read of a receipt case's state: a :class:`ReceiptCase`, or the contract's own ``receiptCase``
    as read from the chain (``ledger.chain.contract.ReceiptCaseState``, whose ``closed_at`` is 0 when never closed)."""

    @property
    def status(self) -> ReceiptCaseStatus: ...
    @property
    def closures(self) -> int: ...
    @property
    def closed_at(self) -> int | None: ...
    @property
    def rated(self) -> bool: ...
    @property
    def disputed(self) -> bool: ...
    @property
    def disputed_closure(self) -> int: ...


@dataclass(frozen=True)
class ReceiptCase:
    """``ICivicLedger.ReceiptCase`` without its receipt key (block times, not claimed times)."""

    status: ReceiptCaseStatus
    closures: int
    closed_at: int | None
    rated: bool
    disputed: bool
    #: the last closure disputed (0: none); a closure can be disputed once (``ReceiptCase.disputedClosure``)
    disputed_closure: int = 0

    @classmethod
    def of_chain(cls, state: ReceiptCaseLike) -> ReceiptCase:
        """The contract's own ``receiptCase`` of a case it tracks (not status NONE: the caller refuses a case
        without a receipt first); ``closedAt`` 0 is never closed."""
        if state.status is ReceiptCaseStatus.NONE:
            raise ValueError("the contract tracks no receipt for this case")
        return cls(state.status, state.closures, state.closed_at or None, state.rated, state.disputed,
                   state.disputed_closure)


def issued() -> ReceiptCase:
    """A case's state once its receipt is issued."""
    return ReceiptCase(OPEN, 0, None, False, False)


def after_event(state: ReceiptCase, action: int, block_time: int) -> ReceiptCase:
    """The state after a case event of the case (its action, its entry's block time), as the contract moves it."""
    if action in ANSWERS:
        status = OPEN if action == _REOPENED else state.status
        return dataclasses.replace(state, status=status, disputed=False)
    closing = CLOSING.get(action)
    if closing is not None and state.status is OPEN:
        return dataclasses.replace(state, status=closing, closures=state.closures + 1, closed_at=block_time)
    return state


def after_rating(state: ReceiptCase) -> ReceiptCase:
    """The state after a rating of the case."""
    return dataclasses.replace(state, rated=True)


def after_dispute(state: ReceiptCase) -> ReceiptCase:
    """The state after a dispute of the case (of its latest closure)."""
    return dataclasses.replace(state, disputed=True, disputed_closure=state.closures)


def track(receipt_seq: int, events: Sequence[tuple[int, int, int]], rated_seqs: Sequence[int],
          dispute_seqs: Sequence[int]) -> ReceiptCase:
    """The contract's state of a case after the recorded entries: `events` are the case's events as ``(seq, action,
    block_time)`` (voided ones included: the contract knows nothing of corrections; never batched ones: it never saw
    them), `rated_seqs` and `dispute_seqs` the seqs of its ratings and disputes. Only what was recorded after the
    receipt (its entry's seq `receipt_seq`) counts: before it the contract did not track the case."""
    merged: list[tuple[int, str, int, int]] = [(seq, "event", action, at) for seq, action, at in events]
    merged += [(seq, "rating", 0, 0) for seq in rated_seqs] + [(seq, "dispute", 0, 0) for seq in dispute_seqs]
    state = issued()
    for seq, what, action, at in sorted(merged):
        if seq <= receipt_seq:
            continue
        if what == "rating":
            state = after_rating(state)
        elif what == "dispute":
            state = after_dispute(state)
        else:
            state = after_event(state, action, at)
    return state


def event_refusal(state: ReceiptCaseLike, action: int) -> EventRefusal | None:
    """The contract's refusal of a case event, or None when it takes it, given the case's tracked state (NONE: no
    receipt was issued for it). It checks the events of a case whose id carries ``RECEIPT_CASE_FLAG``, and the
    answers (DisputeRejected, Rectified) of any case: one without the flag has state NONE."""
    if action == _RECTIFIED:
        return None if state.rated else "CaseNotRated"
    if action == _DISPUTE_REJECTED:
        return None if state.disputed else "CaseNotDisputed"
    if state.status is ReceiptCaseStatus.NONE:
        return None
    if action == _REOPENED:
        return "InvalidReceiptCaseStatus" if state.status is OPEN else None
    if action in CLOSING:
        return None if state.status is OPEN else "InvalidReceiptCaseStatus"
    return None


def dispute_deadline(closed_at: int) -> int:
    """Until when (block time, inclusive) a fulfilment closed at block time `closed_at` may be disputed."""
    return closed_at + DISPUTE_WINDOW


def in_dispute_window(closed_at: int, at: int) -> bool:
    """Whether a dispute at block time `at` is within the window of the fulfilment closed at `closed_at`."""
    return at <= dispute_deadline(closed_at)


def dispute_closure(state: ReceiptCaseLike) -> int | None:
    """The closure a dispute must name (the latest), or None when the case is not fulfilled."""
    return state.closures if state.status is FULFILLED else None


def latest_dispute_deadline(state: ReceiptCaseLike) -> int | None:
    """Until when the latest fulfilment may be disputed (:func:`dispute_deadline`), or None when the case is not
    fulfilled."""
    if state.status is not FULFILLED:
        return None
    assert state.closed_at is not None  # a fulfilled case has been closed
    return dispute_deadline(state.closed_at)


def rate_refusal(state: ReceiptCaseLike, *, pending: bool = False) -> RateRefusal | None:
    """Why a rating would be refused now (None: it would be accepted); `pending`: one is being relayed already."""
    if state.status is OPEN:
        return "not_closed"
    if state.rated:
        return "already_rated"
    if pending:
        return "rating_pending"
    return None


def dispute_refusal(state: ReceiptCaseLike, now: int, *, closure: int | None = None,
                    pending: bool = False) -> DisputeRefusal | None:
    """Why a dispute at block time `now` would be refused (None: it would be accepted); `closure`: the closure it
    names (None: the latest, as the receipt view offers it); `pending`: one is being relayed already."""
    if state.status is OPEN:
        return "not_closed"
    if state.status is not FULFILLED:
        return "not_fulfilled"
    if state.disputed:
        return "already_disputed"
    if state.disputed_closure == state.closures:
        # answered (the agency stood by the fulfilment): the contract takes one dispute per closure
        return "closure_disputed"
    if closure is not None and closure != state.closures:
        return "stale_closure"
    assert state.closed_at is not None  # a fulfilled case has been closed
    if not in_dispute_window(state.closed_at, now):
        return "dispute_window_closed"
    if pending:
        return "dispute_pending"
    return None


@dataclass(frozen=True)
class Decision:
    """Whether a rating and a dispute would be accepted now, and if not why (a refusal code of the write API)."""

    rate_refusal: RateRefusal | None
    dispute_refusal: DisputeRefusal | None
    dispute_deadline: int | None


def decide(state: ReceiptCaseLike, now: int, *, rating_pending: bool = False,
           dispute_pending: bool = False, claimed: bool = False) -> Decision:
    """What the contract would say to a rating or a dispute of the latest closure now (`now`: the time a block would
    have), given `state`; ``*_pending``: one is being relayed already. `claimed`: the key asking is no longer the
    case's (its holder's receipt was claimed to another key, ``ledger.records.ReceiptClaim``): the contract takes
    nothing signed with it (``InvalidReceiptSignature``)."""
    if claimed:
        return Decision("claimed", "claimed", latest_dispute_deadline(state))
    return Decision(
        rate_refusal(state, pending=rating_pending),
        dispute_refusal(state, now, pending=dispute_pending),
        latest_dispute_deadline(state),
    )


def answer_due(disputed_at: int) -> int:
    """When the agency's answer to a dispute recorded at block time `disputed_at` is due."""
    return disputed_at + DISPUTE_RESPONSE_WINDOW


def answer_overdue(disputed_at: int, now: int, *, answered: bool) -> bool:
    """Whether a dispute recorded at block time `disputed_at` is left unanswered past its due time at `now`."""
    return not answered and answer_due(disputed_at) < now
