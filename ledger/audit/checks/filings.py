"""Filings answered: every citizen's filing is answered by its agency within the published window, every acceptance
opens the case bound to the filing, and every rejection gives its reason.

The filings module enforces most of it when an entry is written (a filing signed by its own fresh key, an answer by
the filing's agency, once, with a reason to reject; the case id of an acceptance derived from the filing); the auditor
checks it again from the log alone. What no contract can enforce is checked only here (``ledger.filings``): that each
filing is answered within ``ANSWER_WINDOW_WORKING_DAYS`` working days of its block time (as of the audited block),
that the agency did not also open the filed case itself — with a time of its own choosing — and that a duplicate
names a case the agency had opened. Figures per agency (accepted, rejected by reason, awaiting, overdue, late) and per
relayer (who submitted the filings: an agency filing for itself through its own account shows there) go to the
report's statistics.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ledger.audit.apiread import ApiError
from ledger.audit.checks import Check
from ledger.audit.checks._api import horizon
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import LedgerModel, entry_pointer
from ledger.chain.logs import DecodedEntry
from ledger.encoding import ZERO32, code_text
from ledger.filings import ANSWER_WINDOW_WORKING_DAYS, DECISION_NAMES, late, overdue
from ledger.records import CHANNEL_NAMES, CaseAction, EntryKind, FilingDecision, filed_case_id

NAME = "filings_answered"
def run(ctx: AuditContext, result: CheckResult) -> None:
    model = ctx.model
    as_of = ctx.as_of
    filings, first_answers = model.filings, model.filing_answers
    dues = model.filing_dues
    tallies: dict[str, Counter[str]] = {}
    relayers = Counter[str]()
    for e in model.entries:
        if e.kind == EntryKind.FILING_RECORDED:
            _filing(result, e)
            relayers[e.record["relayer"]] += 1
            tallies.setdefault(code_text(e.agency_id), Counter())["filed"] += 1
            continue
        if e.kind != EntryKind.FILING_ANSWERED:
            continue
        r = e.record
        agency = code_text(e.agency_id)
        subject = f"filing {r['filing_seq']}"
        filing = filings.get(r["filing_seq"])
        if filing is None or filing.seq >= e.seq:
            result.add(Finding(NAME, f"answer to seq {r['filing_seq']}, which is not a filing recorded before it",
                               **entry_pointer(e), subject=subject, field="filing_seq", actual=r["filing_seq"]))
            continue
        if filing.agency_id != e.agency_id:
            result.add(Finding(NAME, f"answered by {agency}, but the filing asked {code_text(filing.agency_id)}",
                               **entry_pointer(e), subject=subject, field="agency_id",
                               expected=code_text(filing.agency_id), actual=agency))
            continue
        first = first_answers[r["filing_seq"]]
        if first is not e:
            result.add(Finding(NAME, f"a second answer to the filing (the first: seq {first.seq}): a filing is "
                               "answered once", **entry_pointer(e), subject=subject))
            continue
        tally = tallies.setdefault(agency, Counter())
        decision = int(r["decision"])
        tally[DECISION_NAMES.get(decision, "invalid")] += 1
        _answer(model, result, e, filing, decision, subject)
        due = dues[filing.seq]
        if late(due, e.block_time or 0):
            tally["late"] += 1
            result.add(Finding(
                NAME, f"filing answered late: {DECISION_NAMES.get(decision, 'answer')} at block time {e.block_time}, "
                f"due by {due} ({ANSWER_WINDOW_WORKING_DAYS} working day of its filing at {filing.block_time})",
                **entry_pointer(e), subject=subject, field="answered_at", expected=f"<= {due}", actual=e.block_time,
            ))
    for seq, filing in filings.items():
        if seq in first_answers:
            continue
        tally = tallies.setdefault(code_text(filing.agency_id), Counter())
        if overdue(dues[seq], as_of, answered=False):
            tally["overdue"] += 1
            result.add(Finding(
                NAME, f"filing left unanswered past its window: due by {dues[seq]}"
                f" ({ANSWER_WINDOW_WORKING_DAYS} working day of its filing), still unanswered at block time {as_of}",
                **entry_pointer(filing), subject=f"filing {seq}", field="answer", actual=None,
            ))
        else:
            tally["awaiting"] += 1
    total = sum(tallies.values(), Counter[str]())
    result.counts.update(
        filings=total["filed"], accepted=total["accepted"],
        rejected=total["duplicate"] + total["out_of_scope"] + total["spam"], awaiting=total["awaiting"],
        unanswered_overdue=total["overdue"], answered_late=total["late"],
    )
    keys = ("filed", "accepted", "duplicate", "out_of_scope", "spam", "awaiting", "overdue", "late")
    ctx.stats["filings_by_agency"] = {a: {k: t[k] for k in keys} for a, t in sorted(tallies.items())}
    ctx.stats["filings_by_relayer"] = dict(sorted(relayers.items()))
    if ctx.api is not None:
        _served(ctx, result)
    if not filings:
        result.notes.append("no filings on this ledger yet: nothing to check")
    result.notes.append(f"window: an agency answers a filing within {ANSWER_WINDOW_WORKING_DAYS} working day of its "
                        f"block time, by its jurisdiction's published calendars (audit time as_of = block time "
                        f"{as_of})")


def _filing(result: CheckResult, e: DecodedEntry) -> None:
    """A filing is complete and signed by its own key (the module refuses anything else)."""
    r = e.record
    subject = f"filing {e.seq}"
    for name in ("district", "content_hash"):
        if r[name] == ZERO32:
            result.add(Finding(NAME, f"filing without its {name.replace('_', ' ')}", **entry_pointer(e),
                               subject=subject, field=name))
    if not r["channel"]:
        result.add(Finding(NAME, "filing without its channel", **entry_pointer(e), subject=subject, field="channel"))
    if e.actor != r["receipt"]:
        result.add(Finding(NAME, f"filing signed by {e.actor}, not by its own receipt key {r['receipt']}",
                           **entry_pointer(e), subject=subject, field="actor", expected=r["receipt"], actual=e.actor))


def _answer(
    model: LedgerModel, result: CheckResult, e: DecodedEntry, filing: DecodedEntry, decision: int, subject: str
) -> None:
    """An answer is well formed; a duplicate names a case the agency had opened, whose clock started no later than
    the filing's (else the request's clock moves from the filing to a later opening, which no figure shows); an
    acceptance opens the filing's case, which the agency did not open itself."""
    filing_seq = filing.seq
    r = e.record
    agency = code_text(e.agency_id)
    if decision not in DECISION_NAMES:
        result.add(Finding(NAME, f"answer with decision {decision}, which is none of {sorted(DECISION_NAMES)}",
                           **entry_pointer(e), subject=subject, field="decision", actual=decision))
        return
    if (decision == FilingDecision.DUPLICATE) != (r["duplicate_of"] != ZERO32):
        result.add(Finding(NAME, "a duplicate names the case it duplicates, and only a duplicate does",
                           **entry_pointer(e), subject=subject, field="duplicate_of"))
    if decision != FilingDecision.ACCEPTED and r["reason_hash"] == ZERO32:
        result.add(Finding(NAME, "rejection without the hash of its reason", **entry_pointer(e), subject=subject,
                           field="reason_hash"))
    if decision == FilingDecision.DUPLICATE and r["duplicate_of"] != ZERO32:
        named = model.cases.get((agency, r["duplicate_of"]))
        if named is None or named.state is None or named.state.opened_seq > e.seq:
            result.add(Finding(
                NAME, f"rejected as a duplicate of case 0x{r['duplicate_of'].hex()}, which the agency had not opened",
                **entry_pointer(e), subject=subject, field="duplicate_of", actual="0x" + r["duplicate_of"].hex(),
            ))
        elif named.state.opened_at > (filing.block_time or 0):
            result.add(Finding(
                NAME, f"rejected as a duplicate of case 0x{r['duplicate_of'].hex()}, opened at {named.state.opened_at}"
                f", after the filing (block time {filing.block_time}): the request's clock would start at that later "
                "opening", **entry_pointer(e), subject=subject, field="duplicate_of",
                actual="0x" + r["duplicate_of"].hex(),
            ))
    if decision != FilingDecision.ACCEPTED:
        return
    expected = filed_case_id(filing_seq)
    if r["case_id"] != expected:
        result.add(Finding(NAME, "acceptance opens a case whose id is not the filing's", **entry_pointer(e),
                           subject=subject, field="case_id", expected="0x" + expected.hex(),
                           actual="0x" + r["case_id"].hex()))
        return
    record = model.cases.get((agency, expected))
    for other in record.events if record is not None else ():
        if other.seq != e.seq and other.kind == EntryKind.CASE_EVENT and other.record["action"] == CaseAction.OPENED:
            result.add(Finding(
                NAME, f"the case filing {filing_seq} opens was also opened by the agency itself (seq {other.seq}, "
                f"claiming time {other.record['occurred_at']}): a filed case's clock starts at its filing",
                **entry_pointer(other), subject=f"case {agency}/0x{expected.hex()}", field="action",
            ))


def _expected_view(model: LedgerModel, filing: DecodedEntry, due: int, count: int) -> dict[str, Any]:
    """What ``GET /api/v1/filings`` must show of `filing`, due at `due`, at an API position of `count` entries
    (``overdue`` apart: it moves with the clock)."""
    r = filing.record
    agency = code_text(filing.agency_id)
    answer = model.filing_answers.get(filing.seq)
    shown_answer = None
    if answer is not None and answer.seq < count and answer.agency_id == filing.agency_id:
        a = answer.record
        accepted = int(a["decision"]) == FilingDecision.ACCEPTED
        shown_answer = {
            "seq": answer.seq, "decision": DECISION_NAMES.get(int(a["decision"])),
            "case_id": "0x" + a["case_id"].hex() if accepted else None,
            "duplicate_of": None if a["duplicate_of"] == ZERO32 else "0x" + a["duplicate_of"].hex(),
            "reason_hash": None if a["reason_hash"] == ZERO32 else "0x" + a["reason_hash"].hex(),
            "answered_at": answer.block_time, "late": late(due, answer.block_time or 0),
        }
    channel = r["channel"]
    return {
        "seq": filing.seq, "agency_id": agency, "commitment_id": code_text(r["commitment_id"]),
        "district": code_text(r["district"]),
        "channel": CHANNEL_NAMES.get(channel),
        "content_hash": "0x" + r["content_hash"].hex(), "receipt": r["receipt"], "relayer": r["relayer"],
        "filed_at": filing.block_time, "answer_due": due, "answer": shown_answer,
        "proof": {"seq": filing.seq, "tx_hash": "0x" + filing.tx_hash.hex(), "block_number": filing.block_number,
                  "block_hash": "0x" + filing.block_hash.hex(), "log_index": filing.log_index,
                  "entry_hash": "0x" + filing.entry_hash.hex()},
    }


def _served(ctx: AuditContext, result: CheckResult) -> None:
    """``GET /api/v1/filings`` (every page) shows exactly the chain's filings within the API's position, each as the
    chain has it, with its answer window and answer; a filing's own view, and the look-up by its filer's key, show the
    same."""
    h = horizon(ctx)
    model = h.model
    try:
        served: dict[int, dict[str, Any]] = {}
        for item in ctx.api.pages("/filings", {"state": "all"}):
            seq = item.get("seq")
            if seq in served:
                result.add(Finding(NAME, f"GET /api/v1/filings lists filing {seq} twice", subject=f"filing {seq}"))
            served[seq] = item
    except ApiError as exc:
        result.add(Finding(NAME, f"the API could not list the filings: {exc}", subject="GET /api/v1/filings"))
        return
    expected = {seq: e for seq, e in model.filings.items() if seq < h.count}
    dues = model.filing_dues
    for seq, filing in expected.items():
        item = served.get(seq)
        if item is None:
            result.add(Finding(NAME, f"the API does not list filing {seq}, which the chain has",
                               **entry_pointer(filing), subject=f"filing {seq}", field="seq", expected=seq,
                               actual=None))
            continue
        _compare(result, filing, _expected_view(model, filing, dues[seq], h.count), item, ctx.as_of)
    for seq in sorted(set(served) - set(expected)):
        if not (isinstance(seq, int) and seq >= h.count and h.beyond):
            result.add(Finding(NAME, f"the API lists a filing at seq {seq}, which the chain does not have",
                               subject=f"filing {seq}", field="seq", expected=None, actual=seq))
    # one at a time, and by the filer's key, as a citizen asks: the same view
    for seq in list(expected)[:5]:
        for path, params in ((f"/filings/{seq}", None), ("/filings", {"receipt": expected[seq].record["receipt"]})):
            try:
                answer = ctx.api.get(path, params)
            except ApiError as exc:
                result.add(Finding(NAME, f"{path} failed: {exc}", subject=f"filing {seq}"))
                continue
            one = answer if params is None else next(iter(answer.get("items") or [None]), None)
            if one != served.get(seq) and not _moves(one, served.get(seq)):
                result.add(Finding(NAME, f"{ctx.api.path_of(path, params)} shows filing {seq} otherwise than the list",
                                   **entry_pointer(expected[seq]), subject=f"filing {seq}"))
    result.counts["filings_compared"] = len(expected)


def _moves(one: Any, listed: Any) -> bool:
    """Whether two answers about one filing differ only in what may move between two requests (`overdue`)."""
    if not isinstance(one, dict) or not isinstance(listed, dict):
        return False
    return {k: v for k, v in one.items() if k != "overdue"} == {k: v for k, v in listed.items() if k != "overdue"}


def _compare(result: CheckResult, filing: DecodedEntry, want: dict[str, Any], item: dict[str, Any],
             as_of: int) -> None:
    subject = f"filing {filing.seq}"
    for name, value in want.items():
        got = item.get(name)
        if name == "proof" and isinstance(got, dict):
            got = {k: got.get(k) for k in value}
        if got != value:
            result.add(Finding(NAME, f"GET /api/v1/filings shows filing {filing.seq}'s {name} as {got!r}, the chain "
                               f"{value!r}", **entry_pointer(filing), subject=subject, field=name, expected=value,
                               actual=got))
    # overdue moves with the clock: compared only where it cannot have changed around the audit
    due, answered = want["answer_due"], want["answer"] is not None
    if answered or abs(as_of - due) > 3600:
        behind = overdue(due, as_of, answered=answered)
        if item.get("overdue") != behind:
            result.add(Finding(NAME, f"GET /api/v1/filings shows filing {filing.seq} as "
                               f"{'overdue' if item.get('overdue') else 'not overdue'}; it is "
                               f"{'overdue' if behind else 'not overdue'} (due {due}, audit time {as_of})",
                               **entry_pointer(filing), subject=subject, field="overdue", expected=behind,
                               actual=item.get("overdue")))


CHECK = Check(
    NAME,
    "Filings answered in time, accepted cases bound to their filing",
    "Every filing is complete and signed by its own key; every answer is its agency's, once per filing, and a "
    "rejection gives a reason (a duplicate names a case the agency had opened); an acceptance opens the case whose "
    "id derives from the filing, with the filer's key, and the clock started at the filing's block time — a case the "
    "agency also opened itself is a finding; every filing is answered within "
    f"{ANSWER_WINDOW_WORKING_DAYS} working day of its block time — one still unanswered past that, as of the audited "
    "block, or answered late, is a finding. With --api: GET /api/v1/filings lists exactly the chain's filings, each "
    "as on chain with its answer window and answer, and a filing's own view and its look-up by the filer's key show "
    "the same.",
    run,
)
