"""Feedback authentic: receipts, ratings and disputes are what the ledger's rules allow, signed by the citizen's
receipt key, and every dispute is answered in time.

The contract enforces most of these rules when an entry is written (a rating needs a closed case and the receipt
key's signature, a dispute names the latest fulfilment within ``DISPUTE_WINDOW``, ...); the auditor checks them
again from the log alone, against the case as the contract tracks it (``ledger.receipt_state``: every case event
recorded since the receipt, voided ones included — a correction the agency records later cannot make a citizen's
rating or dispute look refused) — a node or a contract that let one through is caught here. A receipt is judged
against the case as ``ledger.cases`` folds it. What the contract cannot enforce is checked only here: that a receipt
is issued right after its case opens, that the agency answers each dispute within ``DISPUTE_RESPONSE_WINDOW`` (as of
the audited block), and that no correction was aimed at what a citizen wrote.
"""

from __future__ import annotations

from collections import Counter

from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import FeedbackContext, entry_pointer
from ledger.audit.rpc import RpcError
from ledger.cases import CLOSED, DISPUTE_RESPONSE_WINDOW, DISPUTE_WINDOW, FULFILLED, UNVOIDABLE_KINDS
from ledger.encoding import keccak, module_address
from ledger.filings import AGENCY_ISSUED, KEY_ORIGINS, key_origin
from ledger.receipt_state import FULFILLED as TRACKED_FULFILLED
from ledger.receipt_state import OPEN, STATUS_NAMES, answer_due, answer_overdue, dispute_deadline, in_dispute_window
from ledger.records import CaseAction, EntryKind, is_receipt_case

NAME = "feedback_authentic"
DAY = 86_400


def _days(seconds: int) -> str:
    return f"{seconds / DAY:.1f} days" if abs(seconds) >= DAY else f"{seconds / 3600:.1f} h"


def run(ctx: AuditContext, result: CheckResult) -> None:
    model = ctx.model
    as_of = ctx.as_of
    _windows(ctx, result)
    agency_keys = {signer for a in model.agencies.values() for _, signer, _ in a.key_history}
    receipt_cases: dict[str, list[FeedbackContext]] = {}
    counts = Counter[str]()
    scores = Counter[int]()
    by_origin = {origin: Counter[str]() for origin in KEY_ORIGINS}
    by_agency: dict[str, Counter[str]] = {}
    for (agency, case_id), contexts in model.feedback.items():
        subject = f"case {agency}/0x{case_id.hex()}"
        never_opened = model.cases.get((agency, case_id)) is None or model.cases[(agency, case_id)].state is None
        tally = by_agency.setdefault(agency, Counter())
        disputed: dict[int, int] = {}  # closure -> seq of its dispute
        origin: str | None = None  # where the case's key came from (ledger.filings.key_origin), once bound
        for c in contexts:
            e = c.entry
            kind = e.kind
            if kind == EntryKind.RECEIPT_ISSUED:
                counts["receipts"] += 1
                receipt_cases.setdefault(e.record["receipt"], []).append(c)
                _receipt(result, c, subject, agency_keys, never_opened)
                origin = key_origin(kind)
                continue
            if kind == EntryKind.FILING_ANSWERED:  # an accepted filing: the case opens bound to the filer's key
                counts["filed_receipts"] += 1
                receipt_cases.setdefault(e.record["receipt"], []).append(c)
                if c.receipts:
                    result.add(Finding(NAME, f"the filed case had a receipt already ({c.receipt}): a case gets one "
                                       "receipt, and a filed one the filer's", **entry_pointer(e), subject=subject,
                                       field="receipt", expected=e.record["receipt"], actual=c.receipt))
                origin = key_origin(kind)
                continue
            if kind == EntryKind.RECEIPT_CLAIMED:
                counts["claims"] += 1
                receipt_cases.setdefault(e.record["receipt"], []).append(c)
                _claim(result, c, subject, origin)
                origin = key_origin(kind)
                continue
            if c.receipt is None:
                result.add(Finding(NAME, f"{_what(kind)} of a case that has no receipt", **entry_pointer(e),
                                   subject=subject, field="actor", actual=e.actor))
            elif e.actor != c.receipt:
                result.add(Finding(
                    NAME, f"{_what(kind)} not signed by the case's receipt key ({c.receipt}): whoever wrote it did "
                    "not hold the citizen's receipt", **entry_pointer(e), subject=subject, field="actor",
                    expected=c.receipt, actual=e.actor,
                ))
            if kind == EntryKind.CASE_RATED:
                counts["ratings"] += 1
                tally["ratings"] += 1
                scores[e.record["score"]] += 1
                by_origin[origin or AGENCY_ISSUED]["ratings"] += 1
                _rating(result, c, subject)
            else:
                counts["disputes"] += 1
                tally["disputes"] += 1
                by_origin[origin or AGENCY_ISSUED]["disputes"] += 1
                closure = e.record["closure"]
                if closure in disputed:
                    result.add(Finding(
                        NAME, f"closure {closure} of the case was disputed already (seq {disputed[closure]}): each "
                        "closure can be disputed once", **entry_pointer(e), subject=subject, field="closure",
                        actual=closure,
                    ))
                disputed.setdefault(closure, e.seq)
                outcome = _dispute(ctx, result, c, subject, as_of)
                counts[outcome] += 1
                tally[outcome] += 1
    for address, issued in sorted(receipt_cases.items()):
        if len(issued) > 1:
            first = issued[0].entry
            for c in issued[1:]:
                result.warn(Finding(
                    NAME, f"the receipt key {address} was issued for {len(issued)} cases (first at seq {first.seq}): "
                    "a receipt belongs to one citizen's one case", **entry_pointer(c.entry), field="receipt",
                    actual=address,
                ))
    for correction, _ in model.refused_corrections:
        target = model.by_seq.get(correction.record["target_seq"])
        if target is not None and int(target.kind) in UNVOIDABLE_KINDS and target.seq < correction.seq:
            counts["corrections_of_citizen_entries"] += 1
            result.add(Finding(
                NAME, f"correction aimed at a {target.kind.name.lower()} entry (seq {target.seq}): an agency cannot "
                "void what a citizen wrote, nor their receipt (the correction took no effect)",
                **entry_pointer(correction), subject=f"seq {target.seq}", field="target_seq", actual=target.seq,
            ))
    result.counts.update(
        receipts=counts["receipts"], ratings=counts["ratings"], disputes=counts["disputes"],
        answered_in_time=counts["answered"], answered_late=counts["late"],
        unanswered_overdue=counts["overdue"], awaiting_answer=counts["awaiting"],
        corrections_of_citizen_entries=counts["corrections_of_citizen_entries"],
    )
    if not model.feedback:
        result.notes.append("no receipts, ratings or disputes on this ledger yet: nothing to check but corrections")
    result.notes.append(
        f"windows: a fulfilment may be disputed within {_days(DISPUTE_WINDOW)} of its closing entry's block time; "
        f"the agency must answer within {_days(DISPUTE_RESPONSE_WINDOW)} of the dispute's (audit time as_of = block "
        f"time {as_of})"
    )
    ctx.stats["rating_distribution"] = {str(score): scores[score] for score in range(1, 6)}
    # a rating signed with a key the agency issued (a printed code) may be the agency's own, and a claimed key shows
    # only that its claimant held that code: each counted apart from the filers' own keys
    ctx.stats["feedback_by_key_origin"] = {
        origin: {"ratings": t["ratings"], "disputes": t["disputes"]} for origin, t in by_origin.items()
    }
    ctx.stats["receipt_bindings"] = {"filed": counts["filed_receipts"], "claimed": counts["claims"]}
    ctx.stats["disputes_by_agency"] = {
        a: {k: t[k] for k in ("ratings", "disputes", "answered", "late", "overdue", "awaiting")}
        for a, t in sorted(by_agency.items())
    }


def _what(kind: EntryKind) -> str:
    return "rating" if kind == EntryKind.CASE_RATED else "dispute"


def _receipt(result: CheckResult, c: FeedbackContext, subject: str, agency_keys: set[str], never_opened: bool) -> None:
    e = c.entry
    address = e.record["receipt"]
    if not is_receipt_case(e.record["case_id"]):
        result.add(Finding(NAME, "receipt for a case id without the receipt flag (its top bit): the contract refuses "
                           "that", **entry_pointer(e), subject=subject, field="case_id"))
    if c.receipts:
        result.add(Finding(NAME, f"a second receipt for the case (the first: {c.receipt}): a case gets one receipt",
                           **entry_pointer(e), subject=subject, field="receipt", expected=c.receipt, actual=address))
    if c.status == "":
        result.add(Finding(
            NAME, "receipt issued before the case's Opened event" + (" (the case is never opened)" if never_opened
                                                                      else ""),
            **entry_pointer(e), subject=subject,
        ))
    elif c.status in CLOSED:
        result.add(Finding(
            NAME, f"receipt issued after the case was closed ({c.status}): the citizen got it too late to follow "
            "the case, and the agency chose which case could be rated", **entry_pointer(e), subject=subject,
            field="status", actual=c.status,
        ))
    if address in agency_keys:
        result.add(Finding(NAME, f"the receipt key {address} is an agency signing key: the agency holds the receipt "
                           "it issued, and could rate its own case", **entry_pointer(e), subject=subject,
                           field="receipt", actual=address))


def _claim(result: CheckResult, c: FeedbackContext, subject: str, origin: str | None) -> None:
    """A claim moves an agency-issued receipt to the holder's own key: signed by the key it moves away from, once."""
    e = c.entry
    if c.receipt is None:
        result.add(Finding(NAME, "receipt claim of a case that has no receipt", **entry_pointer(e), subject=subject,
                           field="actor", actual=e.actor))
    elif e.actor != c.receipt:
        result.add(Finding(NAME, f"receipt claim not signed by the case's receipt key ({c.receipt})",
                           **entry_pointer(e), subject=subject, field="actor", expected=c.receipt, actual=e.actor))
    if origin is not None and origin != AGENCY_ISSUED:
        result.add(Finding(NAME, f"receipt claim of a case whose key is {origin.replace('_', ' ')} already (from a "
                           "filing or an earlier claim): only an agency-issued receipt is claimed, once",
                           **entry_pointer(e), subject=subject))


def _rating(result: CheckResult, c: FeedbackContext, subject: str) -> None:
    e = c.entry
    if c.ratings:
        result.add(Finding(NAME, f"a second rating of the case (it had {c.ratings}): a case is rated at most once",
                           **entry_pointer(e), subject=subject))
    if not 1 <= e.record["score"] <= 5:
        result.add(Finding(NAME, f"score {e.record['score']} is not 1 to 5", **entry_pointer(e), subject=subject,
                           field="score", actual=e.record["score"]))
    tracked = c.tracked
    if tracked is None:  # no receipt (reported): judged by the case's own status
        if c.status not in CLOSED:
            why = "before the case was opened" if c.status == "" else f"before the case was closed ({c.status})"
            result.add(Finding(NAME, f"rating {why}: a case is rated after it closes", **entry_pointer(e),
                               subject=subject, field="status", actual=c.status or None))
    elif tracked.status is OPEN:
        status = STATUS_NAMES[tracked.status]
        why = (f"while the case was reopened ({status})" if tracked.closures
               else f"before the case was closed ({status})")
        result.add(Finding(NAME, f"rating {why}: a case is rated after it closes", **entry_pointer(e),
                           subject=subject, field="status", actual=status))


def _dispute(ctx: AuditContext, result: CheckResult, c: FeedbackContext, subject: str, as_of: int) -> str:
    """Check one dispute; returns how it was answered: answered, late, overdue (no answer, past the deadline),
    awaiting (no answer, not due yet)."""
    e = c.entry
    closure = e.record["closure"]
    recorded = e.block_time or 0
    tracked = c.tracked
    if tracked is None:  # no receipt (reported): nothing the contract tracked to dispute
        status: str | None = c.status or "not opened"
        latest = 0
    else:
        status = None if tracked.status is TRACKED_FULFILLED else STATUS_NAMES[tracked.status]
        latest = tracked.closures
    if status is not None:
        result.add(Finding(NAME, f"dispute of a case that is not fulfilled ({status.replace('_', ' ')}): only a "
                           "fulfilment can be disputed", **entry_pointer(e), subject=subject, field="status",
                           expected=FULFILLED, actual=status))
    if closure != latest:
        result.add(Finding(NAME, f"dispute names closure {closure}, but the case's latest is closure {latest}",
                           **entry_pointer(e), subject=subject, field="closure", expected=latest, actual=closure))
    if tracked is not None and status is None:
        closed = tracked.closed_at or 0
        if not in_dispute_window(closed, recorded):
            result.add(Finding(
                NAME, f"dispute recorded {_days(recorded - closed)} after the fulfilment it disputes (closure "
                f"{latest}): the window is {_days(DISPUTE_WINDOW)}", **entry_pointer(e), subject=subject,
                field="block_time", expected=f"<= {dispute_deadline(closed)}", actual=recorded,
            ))
    deadline = answer_due(recorded)
    answer = ctx.model.answers.get(e.seq)
    if answer is None:
        if answer_overdue(recorded, as_of, answered=False):
            result.add(Finding(
                NAME, f"dispute left unanswered {_days(as_of - deadline)} past its deadline (an answer — Reopened "
                f"or DisputeRejected — was due within {_days(DISPUTE_RESPONSE_WINDOW)})", **entry_pointer(e),
                subject=subject, field="answer", expected=f"by {deadline}", actual=None,
            ))
            return "overdue"
        return "awaiting"
    answered = answer.block_time or 0
    if answered > deadline:
        result.add(Finding(
            NAME, f"dispute answered {_days(answered - deadline)} late, by seq {answer.seq} "
            f"({CaseAction(answer.record['action']).name.lower()}, "
            f"{_days(answered - recorded)} after the dispute; due within {_days(DISPUTE_RESPONSE_WINDOW)})",
            **entry_pointer(e), subject=subject, field="answered_at", expected=f"<= {deadline}", actual=answered,
        ))
        return "late"
    return "answered"


def _windows(ctx: AuditContext, result: CheckResult) -> None:
    """The windows the auditor applies are the audited contract's own (published by its filings module, which the
    ledger has no room to publish them itself)."""
    if ctx.reader is None:
        return
    block = hex(ctx.chain.block_number)
    module = module_address(ctx.chain.address)
    for name, mine in (("DISPUTE_WINDOW", DISPUTE_WINDOW), ("DISPUTE_RESPONSE_WINDOW", DISPUTE_RESPONSE_WINDOW)):
        selector = "0x" + keccak(f"{name}()".encode())[:4].hex()
        try:
            answer = ctx.reader.rpc.call("eth_call", [{"to": module, "data": selector}, block])
        except RpcError as exc:
            result.notes.append(f"could not read the contract's {name}() ({exc}): the auditor's {mine} s applied")
            continue
        theirs = int(answer, 16) if answer not in (None, "0x") else None
        if theirs != mine:
            result.add(Finding(NAME, f"the contract's {name} is {theirs} s, but this auditor applies {mine} s: "
                               "audit with a matching version", subject=f"contract {ctx.chain.address}", field=name,
                               expected=mine, actual=theirs))


CHECK = Check(
    NAME,
    "Feedback authentic (one per case, receipt-signed), disputes answered",
    "Every rating and dispute is signed by the receipt key issued for its case; a case is rated at most once, only "
    "once closed and not while reopened; a dispute concerns a fulfilment, names the case's latest closure, and comes "
    "within 30 days of that closing entry's block time, once per closure; a receipt is issued once per case, only "
    "for a flagged case id, after the case's Opened and before it closes, and never to an agency key; a filed case "
    "is bound to its filer's key as it opens; a receipt claim is signed by the agency-issued key it replaces, once "
    "per case, never of a citizen-held key; no correction aims at a receipt, "
    "rating or dispute; every dispute is answered (Reopened or DisputeRejected) within 10 days of it — one still "
    "unanswered past that, as of the audited block, or answered late, is a finding.",
    run,
)
