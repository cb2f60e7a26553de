"""Receipt views equal the chain: what a citizen sees when they look their case up by its receipt key
(``GET /api/v1/receipts/{address}``) is the case the chain issued that key for, as the chain has it — and a key the
chain never issued is found by no look-up.

For a sample of the receipts on chain (drawn from the audit's secret seed, ``ctx.rng("receipt views")``; as many as
the case-view sample, all when there are no more) the view must show:

* the case (agency, case id), its state and every event with its proof, as a case view (``expected.case_view``);
* the receipt: its key's address, issue time and the ReceiptIssued entry's proof;
* the rating (score, comment hash, block time) and every dispute (closure, reason hash, block time, answer due
  ``DISPUTE_RESPONSE_WINDOW`` after it, and the agency's answer: the first Reopened or DisputeRejected after it);
* the case as the contract tracks it for its receipt holder — status, closures, last closing time, rated — read from
  the contract itself (``receiptCase``) at the audited block; the dispute window's end (``DISPUTE_WINDOW`` after the
  last fulfilment); and what the holder may do, by the contract's rules (``ledger.receipt_state``): no rating of an
  open or rated case, no
  dispute but of a fulfilment not disputed already, within its window. The service may decline what the contract
  would accept only while a submission of the holder's is waiting to be relayed (``rating_pending``,
  ``dispute_pending``).

A few addresses drawn at random, which the chain never issued, must answer 404. Cases changed after the API's
position or the audited block are not compared (``_position``).
"""

from __future__ import annotations

import time
from typing import Any

from eth_utils import to_checksum_address

from ledger.audit import expected
from ledger.audit.apiread import ApiError
from ledger.audit.checks import Check
from ledger.audit.checks._api import horizon
from ledger.audit.checks._position import Position, position
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import BINDING_KINDS, CaseRecord, LedgerModel, entry_pointer, hex0x
from ledger.audit.rpc import RpcError
from ledger.cases import DISPUTE_RESPONSE_WINDOW, DISPUTE_WINDOW
from ledger.chain.contract import ReceiptCaseState
from ledger.chain.logs import DecodedEntry
from ledger.encoding import keccak
from ledger.receipt_state import answer_due, decide, dispute_closure, latest_dispute_deadline
from ledger.records import CaseAction, EntryKind, ReceiptCaseStatus

NAME = "receipt_views"
#: addresses the chain never issued, asked per audit: each must be unknown (404)
NEVER_ISSUED = 3
_RECEIPT_CASE = "0x" + keccak(b"receiptCase(bytes32,bytes32)")[:4].hex()


def run(ctx: AuditContext, result: CheckResult) -> None:
    h = horizon(ctx)
    pos = position(ctx, h)
    result.notes.append(pos.note)
    model = ctx.model
    issued: dict[str, tuple[DecodedEntry, CaseRecord]] = {}
    for key, contexts in model.feedback.items():
        record = model.cases.get(key)
        for c in contexts:
            # every key bound to a case: an agency's receipt, a filer's (an accepted filing), a claimant's
            if c.entry.kind in BINDING_KINDS and record is not None:
                issued.setdefault(c.entry.record["receipt"], (c.entry, record))
    settled = sorted((a for a, (_, record) in issued.items() if pos.settled(record)), key=str.lower)
    n = min(ctx.config.case_sample, len(settled))
    rng = ctx.rng("receipt views")
    sample = rng.sample(settled, n)
    result.notes.append(
        f"receipt views: {n} of {len(settled)} receipts" + (" (drawn from the audit's seed)" if n < len(settled)
                                                            else " (all of them)")
        + (f"; {len(issued) - len(settled)} of cases changed after the position compared at were not compared"
           if len(issued) > len(settled) else "")
    )
    if ctx.reader is None:
        result.notes.append("no node at hand: the contract's own state of each case (receiptCase) was not compared")
    for address in sample:
        receipt, record = issued[address]
        _view(ctx, pos, result, address, receipt, record)
    never = 0
    known = {a.lower() for a in issued}
    while never < NEVER_ISSUED:
        address = to_checksum_address(rng.randbytes(20))
        if address.lower() in known:
            continue
        never += 1
        path = f"/receipts/{address}"
        try:
            found = ctx.api.get_or_none(path)
        except ApiError as exc:
            result.add(Finding(NAME, f"the API failed to answer: {exc.status} {exc.message}",
                               subject=f"GET /api/v1{path}"))
            continue
        if found is not None:
            shown = found.get("agency_id") if isinstance(found, dict) else None
            case = found.get("case_id") if isinstance(found, dict) else None
            result.add(Finding(NAME, f"the API shows a case ({str(shown)[:40]}/{str(case)[:70]}) for the receipt key "
                               f"{address}, which the chain never issued", subject=f"GET /api/v1{path}",
                               field="(whole)", expected="404", actual="200"))
    result.counts.update(receipt_views_compared=n, never_issued_asked=never)


def contract_state(ctx: AuditContext, receipt: DecodedEntry) -> ReceiptCaseState | None:
    """The contract's ``receiptCase`` of the receipt's case at the audited block (None without a node)."""
    if ctx.reader is None:
        return None
    data = _RECEIPT_CASE + receipt.agency_id.hex() + receipt.record["case_id"].hex()
    answer = ctx.reader.rpc.call("eth_call", [{"to": ctx.chain.address, "data": data}, hex(ctx.chain.block_number)])
    raw = bytes.fromhex(str(answer)[2:])
    if len(raw) < 7 * 32:
        raise RpcError("eth_call", None, f"receiptCase answered {len(raw)} bytes, not a ReceiptCase")
    words = [int.from_bytes(raw[i * 32:(i + 1) * 32], "big") for i in range(7)]
    return ReceiptCaseState(to_checksum_address(raw[12:32]), ReceiptCaseStatus(words[1]), words[2], words[3],
                            bool(words[4]), bool(words[5]), words[6])


def _feedback_entries(model: LedgerModel, record: CaseRecord) -> dict[str, Any]:
    """The rating and disputes of the case, as the log has them."""
    rating = next((e for e in record.feedback if e.kind == EntryKind.CASE_RATED), None)
    disputes = []
    for e in record.feedback:
        if e.kind != EntryKind.CASE_DISPUTED:
            continue
        at = e.block_time or 0
        answer = model.answers.get(e.seq)
        disputes.append({
            "closure": e.record["closure"], "reason_hash": hex0x(e.record["reason_hash"]), "disputed_at": at,
            "answer_due": answer_due(at),
            "answer": None if answer is None else {
                "action": "reopened" if answer.record["action"] == CaseAction.REOPENED else "dispute_rejected",
                "seq": answer.seq, "answered_at": answer.block_time or 0,
            },
        })
    return {
        "rating": None if rating is None else {"score": rating.record["score"],
                                               "comment_hash": hex0x(rating.record["comment_hash"]),
                                               "rated_at": rating.block_time or 0},
        "disputes": disputes,
        "dispute_window_seconds": DISPUTE_WINDOW,
        "response_window_seconds": DISPUTE_RESPONSE_WINDOW,
    }


def _tracked(state: ReceiptCaseState) -> dict[str, Any]:
    """The feedback fields that are the contract's state of the case."""
    closed = state.status is not ReceiptCaseStatus.OPEN
    return {
        "status": state.status.name.lower(),
        "closures": state.closures,
        "closed_at": (state.closed_at or None) if closed else None,
        "rated": state.rated,
        "dispute_closure": dispute_closure(state),
        "dispute_deadline": latest_dispute_deadline(state),
    }


def allowed(
    state: ReceiptCaseState, when: tuple[int, int], *, claimed: bool = False
) -> tuple[set[str | None], set[str | None]]:
    """What the contract lets the receipt holder do (`when`: the moments the view was asked between): the refusals a
    view may give for a rating and for a dispute (None: it may be done), as the contract decides
    (``ledger.receipt_state.decide``) at either moment, with or without a submission of the holder's being relayed;
    `claimed`: the key was moved away from (nothing signed with it counts)."""
    rate: set[str | None] = set()
    dispute: set[str | None] = set()
    for now in when:
        for pending in (False, True):
            decision = decide(state, now, rating_pending=pending, dispute_pending=pending, claimed=claimed)
            rate.add(decision.rate_refusal)
            dispute.add(decision.dispute_refusal)
    return rate, dispute


def _view(ctx: AuditContext, pos: Position, result: CheckResult, address: str, receipt: DecodedEntry,
          record: CaseRecord) -> None:
    path = f"/receipts/{address}"
    subject = f"GET /api/v1{path}"
    report = result.warn if pos.doubtful else result.add
    before = int(time.time())
    try:
        view = ctx.api.get_or_none(path)
    except ApiError as exc:
        result.add(Finding(NAME, f"the API failed to answer: {exc.status} {exc.message}", **entry_pointer(receipt),
                           subject=subject))
        return
    after = int(time.time()) + 1
    if not isinstance(view, dict):
        report(Finding(NAME, f"the API finds no case for the receipt key {address} (404), but the chain issued it "
                       f"for case {record.agency_id}/0x{record.case_id.hex()}", **entry_pointer(receipt),
                       subject=subject, expected=f"{record.agency_id}/0x{record.case_id.hex()}", actual="404"))
        return
    state = contract_state(ctx, receipt)
    feedback = _feedback_entries(ctx.model, record)
    # the case's latest key binding: when it is another key's, this one was claimed away
    holder = [e for e in record.feedback if e.kind in BINDING_KINDS][-1]
    claimed = holder.record["receipt"] != address
    feedback.update(claimed_by=holder.record["receipt"] if claimed else None,
                    claimed_seq=holder.seq if claimed else None)
    if state is not None:
        feedback.update(_tracked(state))
    issued_at = receipt.record.get("occurred_at", receipt.block_time)  # a claim claims no time: its block's
    want = {
        **expected.case_view(record, ctx.model),
        "receipt": {"address": address, "issued_at": issued_at, "proof": expected.proof(receipt)},
        "feedback": feedback,
    }
    diffs = expected.differences(want, view)
    shown_feedback = view.get("feedback")
    got = shown_feedback if isinstance(shown_feedback, dict) else {}
    if state is not None:
        rate, dispute = allowed(state, (before, after), claimed=state.receipt != address)
        for verb, refusals in (("rate", rate), ("dispute", dispute)):
            can, why = got.get(f"can_{verb}"), got.get(f"{verb}_refusal")
            if why not in refusals or can is not (why is None):
                choices = sorted("allowed" if r is None else r for r in refusals)
                diffs.append((f"feedback.can_{verb}", " or ".join(choices),
                              "allowed" if can is True and why is None else f"can_{verb} {can}, {why}"))
    if diffs:
        field, want_value, actual = diffs[0]
        shown = "; ".join(f"{f}: API {str(a)[:100]!r}, chain {w!r}" for f, w, a in diffs[:4])
        more = f"; and {len(diffs) - 4} more" if len(diffs) > 4 else ""
        report(Finding(NAME, f"the receipt view of key {address} differs from the chain: {shown}{more}",
                       **entry_pointer(receipt), subject=subject, field=field, expected=want_value, actual=actual))


CHECK = Check(
    NAME,
    "Receipt views equal on-chain data",
    "For a sample of the receipts on chain (drawn from the audit's secret seed; all when few), the citizen's view by "
    "receipt key shows the case the key was issued for, its state and events, the receipt, the rating and disputes "
    "with their answers, the case as the contract tracks it (status, closures, last closing, rated), the dispute "
    "window's end, and what the holder may do by the contract's rules; a receipt key the chain never issued finds "
    "no case (404).",
    run,
    needs_api=True,
)
