"""Receipts, ratings and disputes as the API shows them: a case looked up by its receipt key, and what its holder
may do now.

What the holder may do is the contract's decision (``CivicLedger.rateCase`` / ``disputeCase``), made on the state
it tracks for a case with a receipt (``ICivicLedger.ReceiptCase``). Both — the state machine and the decision — are
``ledger.receipt_state``'s one definition: :func:`case_feedback` rebuilds the state from the index's entries with
:func:`track` (every case event recorded after the receipt, voided or not: the contract knows nothing of
corrections), and :func:`decide` says what the holder may do.

When the index lacks or lags (:func:`receipt_view` with a ``chain``)
    Citizens never depend on the index being whole. The contract's own state of the case (``receiptCase``, read by
    ``Ledger.receipt_case``; :meth:`Tracked.of_chain` is its one translation) decides what its holder may do: when the
    index has no receipt with this key, the key's ReceiptIssued entry is found through the contract's
    ``receiptIssuance`` (``ledger.chain.receipt_case.ChainReceipts``: one call, one log read); when the index has it but
    its state of the case differs from the chain's (the index is behind the case's latest change), the chain's state is
    shown. Either way ``feedback.source`` is ``"chain"`` and ``feedback.source_reason`` says why; the case's events,
    rating and disputes are only what the index has (nothing is made up for what it lacks). A node behind the index, or
    one that does not answer, leaves the index's answer standing. The write API checks ratings and disputes on the
    chain's state alone (``ledger.receipt_state``'s ``rate_refusal`` and ``dispute_refusal`` on
    :meth:`Tracked.of_chain`): one definition, and no index needed.

The off-chain texts (comments, dispute reasons) are not in the index: they are read from the relay store
(``ledger.relay.store.CitizenFiles``) and shown only when the citizen agreed and the hash they match is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, select
from sqlalchemy.engine import RowMapping

from api.batches import BatchProofs
from api.read._common import proof_columns, proof_of, to_hex
from api.read.cases import CASE_STATE_FIELDS, case_view
from api.read.state import IndexState
from api.schemas.cases import CaseView
from api.schemas.citizen import (
    DisputeAnswer,
    DisputeItem,
    Feedback,
    FeedbackSubmission,
    RatingItem,
    ReceiptInfo,
    ReceiptView,
)
from api.schemas.proofs import Proof
from ledger.cases import DISPUTE_RESPONSE_WINDOW, DISPUTE_WINDOW
from ledger.chain.contract import ReceiptCaseState
from ledger.chain.receipt_case import ChainReceipts, IssuedReceipt
from ledger.encoding import ZERO32, code_text
from ledger.errors import InvalidRecord, NodeUnavailable
from ledger.receipt_state import (
    STATUS_NAMES,
    answer_due,
    answer_overdue,
    decide,
    dispute_closure,
    track,
)
from ledger.receipt_state import ReceiptCase as Tracked
from ledger.records import CaseAction, ReceiptCaseStatus, short_code
from ledger.relay.store import CitizenFiles, CitizenSubmission
from ledger.store.schema import case_events, disputes, entries, ratings, receipts

log = logging.getLogger("api.feedback")


def code_bytes(code: str) -> bytes:
    """A code as the API shows it (ASCII text, or ``0x`` + 64 hex digits for a bytes32 that is not) back to the
    bytes32 written on chain. Raises ``ledger.errors.InvalidRecord`` for text that is neither."""
    if len(code) == 66 and code.startswith("0x"):
        try:
            return bytes.fromhex(code[2:])
        except ValueError:
            pass
    return short_code(code)


# --- reading the index ------------------------------------------------------------------------------------------------


def receipt_by_address(conn: Connection, address: str) -> RowMapping | None:
    """The first receipt issued with this key (a key is issued once in practice: codes carry 100 random bits)."""
    query = (
        select(receipts, entries.c.block_number, *proof_columns())
        .join(entries, entries.c.seq == receipts.c.seq)
        .where(receipts.c.receipt == address)
        .order_by(receipts.c.seq)
        .limit(1)
    )
    return conn.execute(query).mappings().first()


@dataclass(frozen=True)
class CaseFeedback:
    """A case's receipt and the index's entries that decide what its holder may do; `holder`, the case's latest key
    binding (the receipt itself, or a later claim that moved the case to another key)."""

    receipt: RowMapping
    tracked: Tracked
    ratings: list[RowMapping]
    disputes: list[RowMapping]
    holder: RowMapping

    @property
    def claimed_away(self) -> bool:
        """Whether this receipt's key no longer holds the case (a claim moved it to another)."""
        return self.holder["receipt"] != self.receipt["receipt"]


def case_feedback(conn: Connection, receipt: RowMapping) -> CaseFeedback:
    agency_id, case_id = receipt["agency_id"], bytes(receipt["case_id"])
    e = case_events.c
    events = [
        (row.seq, row.action, row.block_time)
        for row in conn.execute(
            # a batched event of a receipt case is never applied by the contract (ledger.cases.batched_event_applies),
            # so it moves nothing in the receipt case's state
            select(e.seq, e.action, e.block_time)
            .join(entries, entries.c.seq == e.seq)
            .where(e.agency_id == agency_id, e.case_id == case_id, entries.c.batch_seq.is_(None))
            .order_by(e.seq)
        )
    ]
    rating_rows = list(
        conn.execute(
            select(ratings, entries.c.block_number, *proof_columns())
            .join(entries, entries.c.seq == ratings.c.seq)
            .where(ratings.c.agency_id == agency_id, ratings.c.case_id == case_id)
            .order_by(ratings.c.seq)
        ).mappings()
    )
    dispute_rows = list(
        conn.execute(
            select(disputes, entries.c.block_number, *proof_columns())
            .join(entries, entries.c.seq == disputes.c.seq)
            .where(disputes.c.agency_id == agency_id, disputes.c.case_id == case_id)
            .order_by(disputes.c.seq)
        ).mappings()
    )
    # every key binding of the case: the first starts what the contract tracks, the latest holds the case now
    bindings = list(conn.execute(
        select(receipts).where(receipts.c.agency_id == agency_id, receipts.c.case_id == case_id)
        .order_by(receipts.c.seq)
    ).mappings())
    first = bindings[0] if bindings else receipt
    tracked = track(first["seq"], events, [r["seq"] for r in rating_rows], [d["seq"] for d in dispute_rows])
    return CaseFeedback(receipt, tracked, rating_rows, dispute_rows, bindings[-1] if bindings else receipt)


def _live(submissions: Sequence[CitizenSubmission], kind: str, indexed: set[str]) -> list[CitizenSubmission]:
    """This service's submissions of `kind` that are not failed and whose record the index does not show yet."""
    return [s for s in submissions if s.primary_type == kind and s.state != "failed" and s.key not in indexed]


@dataclass(frozen=True)
class ChainAnswer:
    """The chain's state of a receipt's case, when it is to be shown instead of the index's: `issued` is the receipt
    found on chain when the index lacks it (None: the index has the receipt but is behind the case)."""

    state: ReceiptCaseState
    reason: Literal["index_lacks_receipt", "index_behind"]
    issued: IssuedReceipt | None = None


def chain_answer(
    chain: ChainReceipts, state: IndexState, address: str, receipt: RowMapping | None, indexed: Tracked | None
) -> ChainAnswer | None:
    """What the chain says of the receipt with this address when the index's answer is not the whole truth: the
    index has no such receipt (it is looked up on the chain), or its state of the case
    (`indexed`) is not the contract's. None when the index's answer stands (or the chain has no such receipt)."""
    if receipt is None:
        found = chain.find(address)
        if found is None:
            return None
        on_chain = chain.case_state(found.agency_id, found.case_id)
        if on_chain.status is ReceiptCaseStatus.NONE or on_chain.receipt != address:
            return None  # not this case's receipt (any more: its block was reorganised away)
        return ChainAnswer(on_chain, "index_lacks_receipt", found)
    try:
        agency_bytes = code_bytes(receipt["agency_id"])
    except InvalidRecord:  # a code the index could not have written: nothing to ask the chain
        return None
    if chain.head() < state.last_block:
        return None  # the node is behind the index: the index knows more
    on_chain = chain.case_state(agency_bytes, bytes(receipt["case_id"]))
    if on_chain.status is ReceiptCaseStatus.NONE or on_chain.receipt != address:
        return None
    if indexed is not None and Tracked.of_chain(on_chain) == indexed:
        return None
    return ChainAnswer(on_chain, "index_behind")


def receipt_view(
    conn: Connection,
    state: IndexState,
    address: str,
    now: int,
    files: CitizenFiles | None,
    proofs: BatchProofs | None = None,
    chain: ChainReceipts | None = None,
) -> ReceiptView | None:
    """The case of the receipt with this (checksummed) address, with its receipt and feedback; None if no receipt
    with this key is recorded (in the index, nor on the chain when `chain` is given). Batched events carry their
    Merkle proofs (from ``proofs``). With `chain`, the contract's state of the case stands in for the index's when
    the index lacks the receipt or lags behind the case (see the module docstring)."""
    receipt = receipt_by_address(conn, address)
    found = case_feedback(conn, receipt) if receipt is not None else None
    answer = None
    if chain is not None:
        try:
            answer = chain_answer(chain, state, address, receipt, found.tracked if found else None)
        except NodeUnavailable as exc:  # the chain cannot be asked now: the index's answer is all there is
            log.warning("receipt look-up: the node did not answer, the index's answer stands (%s)", exc)
    if answer is not None and answer.issued is not None:
        agency_id, case_id = code_text(answer.issued.agency_id), answer.issued.case_id
    elif receipt is not None:
        agency_id, case_id = receipt["agency_id"], bytes(receipt["case_id"])
    else:
        return None
    tracked = Tracked.of_chain(answer.state) if answer is not None else found.tracked if found else None
    assert tracked is not None
    rating_rows = found.ratings if found else []
    dispute_rows = found.disputes if found else []
    view = case_view(conn, state, agency_id, case_id, now, proofs)
    if view is None:  # a receipt for a case whose events are not recorded (yet)
        view = CaseView(agency_id=agency_id, case_id=to_hex(case_id), events=[],
                               **dict.fromkeys(CASE_STATE_FIELDS))

    try:
        agency_bytes = code_bytes(agency_id)
    except Exception:  # noqa: BLE001 - a code the index could not have written; no texts or submissions then
        agency_bytes = None
    texts: dict[str, str] = {}
    submissions: list[CitizenSubmission] = []
    if files is not None and agency_bytes is not None:
        texts = files.published_texts(agency_bytes, case_id)
        submissions = files.submissions(agency_bytes, case_id)
    # a submission the index shows already: its entry's transaction is in the index
    indexed_tx = {to_hex(r["p_tx_hash"]) for r in (*rating_rows, *dispute_rows)}
    indexed = {s.key for s in submissions if s.tx_hash is not None and s.tx_hash in indexed_tx}
    live_ratings = _live(submissions, "Rating", indexed)
    live_disputes = [s for s in _live(submissions, "Dispute", indexed) if s.closure == tracked.closures]
    claimed = found is not None and found.claimed_away and answer is None
    decision = decide(tracked, now, rating_pending=bool(live_ratings), dispute_pending=bool(live_disputes),
                      claimed=claimed)

    def text(hash_value: bytes) -> str | None:
        return None if bytes(hash_value) == ZERO32 else texts.get(to_hex(hash_value))

    rating = None
    if rating_rows:
        r = rating_rows[0]
        rating = RatingItem(
            score=r["score"], comment_hash=to_hex(r["comment_hash"]), comment=text(r["comment_hash"]),
            rated_at=r["block_time"], final=state.is_final(r["block_number"]), proof=proof_of(r),
        )
    dispute_items = []
    for d in dispute_rows:
        due = answer_due(d["block_time"])
        answered = None
        if d["answer_seq"] is not None:
            answered = DisputeAnswer(
                action="reopened" if d["answer_action"] == CaseAction.REOPENED else "dispute_rejected",
                seq=d["answer_seq"], answered_at=d["answered_at"],
            )
        dispute_items.append(
            DisputeItem(
                closure=d["closure"], reason_hash=to_hex(d["reason_hash"]), reason=text(d["reason_hash"]),
                disputed_at=d["block_time"], answer_due=due, answer=answered,
                answer_overdue=answer_overdue(d["block_time"], now, answered=answered is not None),
                final=state.is_final(d["block_number"]),
                proof=proof_of(d),
            )
        )
    feedback = Feedback(
        status=STATUS_NAMES[tracked.status],
        closures=tracked.closures,
        closed_at=tracked.closed_at if tracked.status is not ReceiptCaseStatus.OPEN else None,
        rated=tracked.rated,
        rating=rating,
        can_rate=decision.rate_refusal is None,
        rate_refusal=decision.rate_refusal,
        can_dispute=decision.dispute_refusal is None,
        # decide names no closure, so never stale_closure, which the view's type leaves out
        dispute_refusal=decision.dispute_refusal,  # type: ignore[arg-type]
        dispute_closure=dispute_closure(tracked),
        dispute_deadline=decision.dispute_deadline,
        dispute_window_seconds=DISPUTE_WINDOW,
        response_window_seconds=DISPUTE_RESPONSE_WINDOW,
        claimed_by=found.holder["receipt"] if claimed and found is not None else None,
        claimed_seq=found.holder["seq"] if claimed and found is not None else None,
        disputes=dispute_items,
        submissions=[
            FeedbackSubmission(id=s.key, kind="rating" if s.primary_type == "Rating" else "dispute",
                                      status=s.state, closure=s.closure)
            for s in (*live_ratings, *_live(submissions, "Dispute", indexed))
        ],
        source="chain" if answer is not None else "index",
        source_reason=answer.reason if answer is not None else None,
    )
    if answer is not None and answer.issued is not None:
        info = _receipt_on_chain(state, answer.issued)
    else:
        assert receipt is not None
        info = ReceiptInfo(
            address=receipt["receipt"], issued_at=receipt["occurred_at"],
            final=state.is_final(receipt["block_number"]), proof=proof_of(receipt),
        )
    fields: dict[str, Any] = view.model_dump()
    return ReceiptView(**fields, receipt=info, feedback=feedback)


def _receipt_on_chain(state: IndexState, issued: IssuedReceipt) -> ReceiptInfo:
    """The receipt as the log that bound its key shows it (a ReceiptIssued, an accepted filing's answer, a claim),
    with the proof anyone can check against a node."""
    entry = issued.entry
    assert issued.block_time is not None
    return ReceiptInfo(
        address=issued.address,
        issued_at=issued.issued_at,
        final=state.is_final(entry.block_number),
        proof=Proof(
            seq=entry.seq, tx_hash=to_hex(entry.transaction_hash), block_number=entry.block_number,
            block_hash=to_hex(issued.block_hash), block_time=issued.block_time, log_index=entry.log_index,
            entry_hash=to_hex(entry.entry_hash),
        ),
    )
