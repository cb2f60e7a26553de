"""What the API checks share: the API's own account of how far it has indexed the chain (``/chain``), and the
state rebuilt from exactly that many entries of the chain, so that an index a few blocks behind is compared with
the chain as it was at its position — not reported as wrong for being behind.

Positions (the audit guide's "what is compared when positions differ"): the API is compared at the lower of its
position and the audited block. Behind the audited block, the chain's first ``entry_count`` entries are rebuilt and
compared with it (how far behind is :func:`lag`: a finding beyond the configured distance). Past it (``--to-block``
in the past, or a node behind the API's), the API is compared with the audited entries; what it serves beyond them —
entries in later blocks, and every view or figure those later entries change (:attr:`Horizon.later`) — is left to
an audit at a later block and counted in a note, never a finding. The API is past the audited block only if the first
entry it serves beyond the audited count is in a later block; one in an audited block is a divergence (a finding).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ledger.audit import expected
from ledger.audit.apiread import ApiError
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import LedgerModel, entry_pointer, rebuild
from ledger.chain.logs import DecodedEntry
from ledger.records import EntryKind


@dataclass
class Horizon:
    facts: dict[str, Any]
    #: entries of the chain the API's answers are compared with (seq 0 … count-1)
    count: int
    #: whether the API's count and running hash are the chain's at that count
    consistent: bool
    model: LedgerModel
    note: str
    #: whether the API is past the audited block (serves entries of later blocks, not compared)
    beyond: bool = False
    #: when it is: the kinds of the entries it serves past the audited count, by agency (their views and figures
    #: are not compared: an audit at a later block does)
    later: dict[str, set[int]] = field(default_factory=dict)

    def untouched(self, agency_id: str | None) -> bool:
        """Whether what the API serves of `agency_id` (None: of the whole city) is as of the compared position: no
        entry of it (of any agency) lies past that position in the API."""
        if not self.beyond:
            return True
        return not self.later if agency_id is None else agency_id not in self.later

    def case_untouched(self, agency_id: str, last_seq: Any) -> bool:
        """Whether a case the API serves with last event `last_seq` is as of the compared position: its agency has no
        later entry but case events (a correction, feedback, a batch or a commitment may change any of its cases) and
        its own last event is within the position."""
        kinds = self.later.get(agency_id) if self.beyond else None
        if not kinds:
            return True
        return kinds <= {int(EntryKind.CASE_EVENT)} and isinstance(last_seq, int) and last_seq < self.count


def horizon(ctx: AuditContext) -> Horizon:
    """The API's position as it answered first (read before the chain, by the runner), and the state there."""
    found = ctx.cache.get("api_horizon")
    if found is None:
        found = ctx.cache["api_horizon"] = horizon_at(ctx, ctx.cache.get("api_chain_facts") or ctx.api.get("/chain"))
    return found


def moved(ctx: AuditContext, h: Horizon) -> dict[str, Any] | None:
    """The API's /chain now, if it is no longer at `h`'s position (a live index moves while it is audited)."""
    facts = ctx.api.get("/chain")
    same = (facts.get("entry_count"), facts.get("running_hash")) == (h.facts.get("entry_count"),
                                                                     h.facts.get("running_hash"))
    return None if same else facts


def horizon_at(ctx: AuditContext, facts: dict[str, Any]) -> Horizon:
    """The state of the chain's entries up to the position `facts` (an answer of /chain) names."""
    model = ctx.model
    count = int(facts.get("entry_count") or 0)
    chain_count = model.count
    last = facts.get("last_indexed_block")
    if count > chain_count and isinstance(last, int) and last > ctx.chain.block_number:
        found = _past(ctx, facts, count, chain_count, last)
        if found is not None:
            return found
    head = None
    if count == 0:
        head = "0x" + "00" * 24
    elif count <= chain_count and (count - 1) in model.running:
        head = "0x" + model.running[count - 1].hex()
    consistent = head is not None and str(facts.get("running_hash", "")).lower() == head
    used = min(count, chain_count)
    if used == chain_count:
        sub = model
        note = f"the API has indexed all {chain_count} entries of the audited block"
    else:
        # (the index takes a batch whole: a batch starting before `used` is in)
        sub = rebuild([e for e in model.logged if e.seq < used], model.contents)
        note = (f"the API has indexed {count} of the chain's {chain_count} entries: it is compared with the chain's "
                f"first {used}")
    return Horizon(facts, used, consistent, sub, note)


def _past(ctx: AuditContext, facts: dict[str, Any], count: int, chain_count: int, last: int) -> Horizon | None:
    """The horizon of an API past the audited block (its entries beyond `chain_count` all in later blocks), or None
    when it is not (it serves an entry beyond the chain's count in an audited block: a divergence, reported)."""
    later: dict[str, set[int]] = {}
    params = {"after": chain_count - 1} if chain_count else None
    first_block: Any = None
    try:
        for item in ctx.api.pages("/entries", params):
            seq = item.get("seq")
            if not isinstance(seq, int) or seq < chain_count:
                continue
            block = (item.get("proof") or item).get("block_number")
            if first_block is None:
                first_block = block
                if not isinstance(block, int) or block <= ctx.chain.block_number:
                    return None
            later.setdefault(str(item.get("agency_id")), set()).add(int(item.get("kind_code", -1)))
    except ApiError:
        return None  # reported by api_records as the API's failure to list entries
    if first_block is None:
        return None
    note = (f"the API has indexed {count} entries up to block {last}, past the audited block "
            f"{ctx.chain.block_number} ({chain_count} entries): it is compared with the audited entries; its "
            f"{count - chain_count} later entries, and the views and figures they change, are left to an audit at a "
            "later block")
    # (its count and running hash at its block are checked against the contract's there by api_records)
    return Horizon(facts, chain_count, True, ctx.model, note, beyond=True, later=later)


def node_head(ctx: AuditContext) -> int | None:
    if ctx.reader is None:
        return None
    found, _ = ctx.reader.rpc.try_call("eth_blockNumber", [])
    return int(found, 16) if isinstance(found, str) else None


def lag(ctx: AuditContext, facts: dict[str, Any]) -> tuple[int, int] | None:
    """How far the API's position (`facts`, an answer of /chain) is behind the audited block: (blocks, seconds),
    the seconds being the block time from the first block it has not indexed to the audited block (an index that just
    missed a new block is seconds behind, however long the chain was idle before it); None when it is not behind."""
    last = facts.get("last_indexed_block")
    audited = ctx.chain.block_number
    if not isinstance(last, int) or last >= audited:
        return None
    seconds = 0
    if ctx.reader is not None:
        block, _ = ctx.reader.rpc.try_call("eth_getBlockByNumber", [hex(max(0, last + 1)), False])
        if isinstance(block, dict) and block.get("timestamp"):
            seconds = max(0, ctx.chain.block_time - int(block["timestamp"], 16))
    return audited - last, seconds


def withheld_of(ctx: AuditContext, h: Horizon) -> expected.Withheld:
    """The batches the API must call withheld at its position (``expected.withheld``), worked out once."""
    key = ("withheld", h.count)
    found = ctx.cache.get(key)
    if found is None:
        found = ctx.cache[key] = expected.withheld(ctx.model, h.count, ctx.batch_files, ctx.batches_from_api)
    return found


class Finality:
    """``final`` may only be true at or below /chain's finalized block (a depth the service chooses). Finality moves
    on while the audit runs: before calling a flag wrong, /chain is asked again (at most once a second)."""

    def __init__(self, ctx: AuditContext, h: Horizon) -> None:
        self.ctx = ctx
        self.block = int(h.facts.get("finalized_block", -1))
        self.asked = 0.0  # the first doubt always asks again

    def ok(self, item: dict[str, Any], block: int) -> bool:
        if item.get("final") is not True or block <= self.block:
            return True
        if time.monotonic() - self.asked > 1.0:
            self.asked = time.monotonic()
            self.block = max(self.block, int(self.ctx.api.get("/chain").get("finalized_block", -1)))
        return block <= self.block


def finality_of(ctx: AuditContext, h: Horizon) -> Finality:
    """The audit's one :class:`Finality` (shared by the checks: /chain is asked again at most once a second)."""
    found = ctx.cache.get("api_finality")
    if found is None:
        found = ctx.cache["api_finality"] = Finality(ctx, h)
    return found


def unfinal(finality: Finality, item: dict[str, Any], e: DecodedEntry, field: str) -> list[tuple[str, Any, Any]]:
    """A difference (at `field`) when `item` says final an entry whose block is past ``/chain``'s finalized block."""
    if finality.ok(item, e.block_number):
        return []
    return [(field, f"false (block {e.block_number} > finalized {finality.block})", True)]


def show(diffs: list[tuple[str, Any, Any]], limit: int = 4) -> str:
    """Differences (field, chain's value, API's value) for a person: the first `limit`, and how many more."""
    shown = "; ".join(f"{field}: API {actual!r}, chain {want!r}" for field, want, actual in diffs[:limit])
    return shown + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def differs(check: str, e: DecodedEntry | None, what: str, diffs: list[tuple[str, Any, Any]],
            subject: str) -> Finding:
    """The finding of `check` that `what` (at `subject`, about entry `e`) differs from the chain in `diffs` (the first
    difference names the field)."""
    pointer = entry_pointer(e) if e is not None else {}
    field, want, actual = diffs[0]
    return Finding(check, f"{what} differs from the chain: {show(diffs)}", **pointer, subject=subject,
                   field=field, expected=want, actual=actual)


#: what :func:`fetch` answers when the API failed (the failure is recorded as a finding)
FAILED = object()


def fetch(ctx: AuditContext, result: CheckResult, name: str, path: str, about: DecodedEntry | None) -> Any:
    """``GET path``: the answer, None for 404, or :data:`FAILED` when the API fails — recorded as a finding of check
    `name`, pointing at the entry `about` when given."""
    try:
        return ctx.api.get_or_none(path)
    except ApiError as exc:
        result.add(Finding(name, f"the API failed to answer: {exc.status} {exc.message}",
                           **(entry_pointer(about) if about is not None else {}), subject=f"GET /api/v1{path}"))
        return FAILED
