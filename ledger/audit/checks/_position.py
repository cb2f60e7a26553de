"""Which cases a view of the API can be compared at: those whose last change (an event, a receipt, a rating or a
dispute) is at or before both the API's position (the entries it says it has indexed, and its last indexed block)
and the audited block. A case changed after either is not a finding: the API may rightly show it older (its index is
behind) or newer (the audited block is behind) — it is left out, and the check says how many were."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.audit.checks._api import Horizon
from ledger.audit.context import AuditContext
from ledger.audit.rebuild import FEEDBACK_KINDS, CaseRecord
from ledger.encoding import code_text
from ledger.records import EntryKind

CaseKey = tuple[str, bytes]


@dataclass(frozen=True)
class Position:
    #: entries compared: seq 0 … count-1 (the API's count, at most the chain's)
    count: int
    #: min(the API's last indexed block, the audited block)
    block: int
    #: cases with entries after the audited block that the API may already show; None when that cannot be told (the
    #: API is ahead of the audited block, and no node is at hand or a batch was anchored since): then what differs
    #: is a warning, not a finding (:attr:`doubtful`)
    later: frozenset[CaseKey] | None
    #: agencies with other entries after the audited block (corrections, commitments): all their cases may differ
    later_agencies: frozenset[str] = frozenset()

    def settled(self, record: CaseRecord) -> bool:
        """Whether `record` last changed at or before this position (so the API must show it as the chain has it)."""
        if self.later is not None and ((record.agency_id, record.case_id) in self.later
                                       or record.agency_id in self.later_agencies):
            return False
        last = max((e for e in (*record.events, *record.feedback)), key=lambda e: e.seq, default=None)
        return last is None or (last.seq < self.count and last.block_number <= self.block)

    def later_case(self, agency_id: str, case_id: bytes) -> bool:
        """Whether the case may have changed, or been opened, after the audited block (so the API may serve it, or
        serve it newer, rightly)."""
        return self.later is not None and ((agency_id, case_id) in self.later or agency_id in self.later_agencies)

    @property
    def doubtful(self) -> bool:
        return self.later is None

    @property
    def note(self) -> str:
        unknown = "" if self.later is not None else (
            "; the API is ahead of the audited block and no node can say which cases changed since: cases are "
            "compared all the same, and what differs is a warning"
        )
        return f"compared at the first {self.count} entries, up to block {self.block}{unknown}"


def position(ctx: AuditContext, h: Horizon) -> Position:
    """Where `h` (the API's position) and the audited block meet."""
    audited = ctx.chain.block_number
    last = h.facts.get("last_indexed_block")
    api_block = last if isinstance(last, int) else audited
    later: frozenset[CaseKey] | None = frozenset()
    agencies: frozenset[str] = frozenset()
    if api_block > audited:
        if ctx.reader is None:
            later = None
        else:
            newer = ctx.reader.entries_between(audited + 1, api_block)
            if any(e.kind == EntryKind.BATCH_ANCHORED for e in newer):
                later = None  # a batch's cases are in its file, not in the log
            else:
                later = frozenset((code_text(e.agency_id), e.record["case_id"]) for e in newer
                                  if e.kind == EntryKind.CASE_EVENT or e.kind in FEEDBACK_KINDS)
                # a correction or a commitment may change any case of its agency
                agencies = frozenset(code_text(e.agency_id) for e in newer
                                     if e.kind != EntryKind.CASE_EVENT and e.kind not in FEEDBACK_KINDS)
    return Position(h.count, min(api_block, audited), later, agencies)
