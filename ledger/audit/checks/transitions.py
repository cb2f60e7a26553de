"""Case state transitions: every case's events (those not voided by a correction) follow the life cycle of
``ledger.cases`` — the definition the index and the metrics use. A withheld batch's events are applied to no case (as
in the index): an event of a case that comes before its opening, while the same agency withheld an earlier batch,
says which batch may hold what is missing."""

from __future__ import annotations

from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import LedgerModel, entry_pointer
from ledger.cases import CLOSED, ON_HOLD, OPEN
from ledger.chain.logs import DecodedEntry
from ledger.encoding import code_text
from ledger.records import CaseAction

NAME = "case_transitions"


def _why(action: int, before: str, ever_opened: bool) -> str:
    name = CaseAction(action).name.lower()
    if before == "":
        return f"{name} before the case was opened" + ("" if ever_opened else " (it never is)")
    if action == CaseAction.OPENED:
        return f"opened again while {before}"
    if before in CLOSED:
        return f"{name} after the case was closed ({before})"
    if before == ON_HOLD:
        return f"{name} while the case is on hold (only resumed, rejected or withdrawn are valid)"
    if before == OPEN:
        return f"{name} while the case is open (not on hold)"
    return f"{name} while {before}"


def _withheld_before(model: LedgerModel, e: DecodedEntry) -> str:
    """For an event before its case's opening: the batches its agency withheld earlier, which may hold the rest."""
    earlier = [a.seq for a in model.unread.values() if a.agency_id == e.agency_id and a.seq < e.seq]
    if not earlier:
        return ""
    return (f"; the case's earlier events may be in batch seq {', '.join(str(s) for s in sorted(earlier))}, which "
            f"{code_text(e.agency_id)} withheld (batches_complete)")


def run(ctx: AuditContext, result: CheckResult) -> None:
    model = ctx.model
    invalid = orphans = events = voided = 0
    for record in model.cases.values():
        events += len(record.events)
        voided += sum(1 for e in record.events if e.seq in model.voided)
        if record.state is None:
            orphans += 1
        for e, before in record.invalid:
            invalid += 1
            result.add(Finding(
                NAME,
                f"invalid transition: {_why(e.record['action'], before, record.state is not None)}"
                + (_withheld_before(model, e) if before == "" and model.unread else ""),
                **entry_pointer(e), subject=f"case {record.agency_id}/0x{record.case_id.hex()}",
                field="action", actual=CaseAction(e.record["action"]).name.lower(), expected=None,
            ))
    for correction, why in model.refused_corrections:
        result.warn(Finding(NAME, f"correction did not take effect: {why}", **entry_pointer(correction)))
    result.counts.update(
        cases=len(model.cases), case_events=events, voided_events=voided, invalid_transitions=invalid,
        cases_never_opened=orphans, corrections_applied=len(model.voided),
        corrections_refused=len(model.refused_corrections),
    )


CHECK = Check(
    NAME,
    "Valid case state transitions",
    "Folding each case's non-voided events in ledger order (ledger/cases.py): opened first and once; from open: "
    "accepted, escalated, on hold, fulfilled, rejected, withdrawn; from on hold: resumed, rejected, withdrawn; "
    "nothing after fulfilled, rejected or withdrawn. Every other event is a finding. Corrections that did not take "
    "effect are listed as warnings.",
    run,
)
