"""Timeliness: claimed times are not after recorded times, late recordings are listed (and extreme ones or an
agency's habit of them are findings), and holds are not used to make late cases look on time."""

from __future__ import annotations

from collections import Counter

from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import entry_pointer
from ledger.cases import FULFILLED, ON_HOLD, OPEN
from ledger.encoding import code_text
from ledger.metrics import CaseRow, is_overdue_at
from ledger.records import EntryKind

NAME = "timeliness"

#: recording-latency histogram buckets (upper bounds, seconds) for the report's chart
LATENCY_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 1 min", 60), ("< 1 h", 3600), ("< 6 h", 6 * 3600), ("< 12 h", 12 * 3600), ("< 24 h", 86_400),
    ("1-2 d", 2 * 86_400), ("2-7 d", 7 * 86_400), ("> 7 d", float("inf")),
)


def _days(seconds: int) -> str:
    return f"{seconds / 86_400:.1f} days" if seconds >= 86_400 else f"{seconds / 3600:.1f} h"


def run(ctx: AuditContext, result: CheckResult) -> None:
    t = ctx.thresholds
    model = ctx.model
    as_of = ctx.as_of
    histogram = [0] * len(LATENCY_BUCKETS)
    events = Counter[str]()
    late = Counter[str]()
    late_entries: dict[str, list] = {}
    checked = future = extreme = late_total = 0
    for e in model.entries:
        claimed = e.record.get("occurred_at")
        if claimed is None:  # governance's entries, citizens' ratings and disputes (and batch anchors) claim none
            continue
        checked += 1
        recorded = e.block_time or 0
        latency = recorded - claimed
        if latency < 0:
            future += 1
            result.add(Finding(
                NAME, f"claimed time {claimed} is {-latency} s after the block time {recorded}: recorded before it "
                "happened (the contract refuses this; the log or the node is wrong)",
                **entry_pointer(e), field="occurred_at", expected=f"<= {recorded}", actual=claimed,
            ))
        elif latency > t.extreme_recording_seconds:
            extreme += 1
            result.add(Finding(
                NAME, f"recorded {_days(latency)} after its claimed time (more than "
                f"{_days(t.extreme_recording_seconds)}): possible backdating",
                **entry_pointer(e), field="occurred_at", actual=claimed,
            ))
        elif latency > t.late_recording_seconds:
            result.warn(Finding(NAME, f"late recording: {_days(latency)} after its claimed time", **entry_pointer(e),
                                field="occurred_at", actual=claimed))
        if e.kind != EntryKind.CASE_EVENT or e.seq in model.voided:
            continue
        code = code_text(e.agency_id)
        events[code] += 1
        if latency > t.late_recording_seconds:
            late[code] += 1
            late_total += 1
            late_entries.setdefault(code, []).append(e)
        for i, (_, bound) in enumerate(LATENCY_BUCKETS):
            if latency < bound:
                histogram[i] += 1
                break
    shares = {}
    for code, n in sorted(events.items()):
        share = late[code] / n
        shares[code] = {"events": n, "late": late[code], "share": round(share, 4)}
        if n >= t.agency_min_events and share > t.agency_late_share:
            worst = max(late_entries[code], key=lambda e: (e.block_time or 0) - e.record["occurred_at"])
            result.add(Finding(
                NAME, f"{code} recorded {late[code]} of its {n} case events more than "
                f"{_days(t.late_recording_seconds)} late ({share:.1%}, above {t.agency_late_share:.0%}); the latest "
                "is shown", **entry_pointer(worst), subject=f"agency {code}",
            ))

    holds, late_holds = _holds(ctx, result)
    result.counts.update(
        entries_checked=checked, claimed_after_recorded=future, late_recordings=late_total,
        extreme_late_recordings=extreme, holds=sum(holds.values()), late_holds=sum(late_holds.values()),
    )
    result.notes.append(
        f"late recording > {_days(t.late_recording_seconds)} (warning), > {_days(t.extreme_recording_seconds)} "
        f"(finding); an agency with >= {t.agency_min_events} case events and more than {t.agency_late_share:.0%} "
        f"late is a finding. A hold is late when it starts after {t.late_hold_fraction:.0%} of the case's deadline "
        f"(hold time excluded), and listed when only its hold time keeps the case on time; an agency with >= "
        f"{t.agency_min_holds} holds and more than {t.agency_late_hold_share:.0%} late is a finding; holds longer "
        f"than {t.long_hold_factor:g}x the deadline are warnings. Audit time "
        f"(as_of) = block time {as_of}."
    )
    ctx.stats["latency_histogram"] = {label: n for (label, _), n in zip(LATENCY_BUCKETS, histogram, strict=True)}
    ctx.stats["late_share_by_agency"] = shares
    ctx.stats["holds_by_agency"] = {a: {"holds": holds[a], "late": late_holds[a]} for a in sorted(holds)}


def _holds(ctx: AuditContext, result: CheckResult) -> tuple[Counter[str], Counter[str]]:
    t = ctx.thresholds
    as_of = ctx.as_of
    holds = Counter[str]()
    late_holds = Counter[str]()
    examples: dict[str, list] = {}
    for record in ctx.model.cases.values():
        state = record.state
        if state is None or not record.holds:
            continue
        holds[record.agency_id] += len(record.holds)
        if state.due_at is None:
            continue
        base_due = state.due_at - state.hold_seconds
        span = base_due - state.opened_at
        if span <= 0:
            continue
        subject = f"case {record.agency_id}/0x{record.case_id.hex()}"
        running = max(0, as_of - state.on_hold_since) if state.status == ON_HOLD and state.on_hold_since else 0
        if state.hold_seconds + running > t.long_hold_factor * span:
            result.warn(Finding(
                NAME, f"long hold: {_days(state.hold_seconds + running)} on hold, more than "
                f"{t.long_hold_factor:g}x its deadline of {_days(span)}", **entry_pointer(record.holds[0][0]),
                subject=subject,
            ))
        row = CaseRow(agency_id=record.agency_id, case_id=record.case_id, **state.row())
        for e, held_before in record.holds:
            used = e.record["occurred_at"] - state.opened_at - held_before
            fraction = used / span
            if fraction < t.late_hold_fraction:
                continue
            late_holds[record.agency_id] += 1
            examples.setdefault(record.agency_id, []).append(e)
            saved_on_time = state.status == FULFILLED and bool(state.on_time) and (state.closed_at or 0) > base_due
            saved_overdue = state.status in (OPEN, ON_HOLD) and as_of > base_due and not is_overdue_at(row, as_of)
            if saved_on_time or saved_overdue:
                # A hold can only stop a clock that is still running (a case already late when put on hold stays
                # late: ledger.cases and ledger.metrics see to that), so one late hold is a warning; a habit of
                # them is the finding below.
                outcome = "fulfilled on time" if saved_on_time else "not overdue"
                result.warn(Finding(
                    NAME, f"late hold: put on hold when {fraction:.0%} of its deadline had passed; the case counts as "
                    f"{outcome} only because of hold time", **entry_pointer(e), subject=subject,
                ))
    for agency, n in sorted(holds.items()):
        share = late_holds[agency] / n
        if n >= t.agency_min_holds and share > t.agency_late_hold_share:
            result.add(Finding(
                NAME, f"{agency} put {late_holds[agency]} of its {n} holds on after {t.late_hold_fraction:.0%} of the "
                f"deadline had passed ({share:.0%}, above {t.agency_late_hold_share:.0%}): holds used to stop the "
                "clock; the first is shown", **entry_pointer(examples[agency][0]), subject=f"agency {agency}",
            ))
    return holds, late_holds


CHECK = Check(
    NAME,
    "Timeliness (claimed ≤ recorded, late recordings, hold abuse)",
    "No entry claims a time after its block's; recordings more than 24 h late are listed and more than 7 days late "
    "are findings, as is an agency recording more than 5 % of its case events late; an agency putting more than a "
    "quarter of its holds (at least 8) on late — after 80 % of the case's deadline had passed, hold time excluded — "
    "is hold abuse (each late hold that is all that keeps a case on time is listed); holds longer than 3x the "
    "deadline are listed.",
    run,
)
