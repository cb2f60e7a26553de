"""What the API checks share: the API's own account of how far it has indexed the chain (``/chain``), and the
state rebuilt from exactly that many entries of the chain, so that an index a few blocks behind is compared with
the chain as it was at its position — not reported as wrong for being behind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.audit.context import AuditContext
from ledger.audit.rebuild import LedgerModel, rebuild


@dataclass
class Horizon:
    facts: dict[str, Any]
    #: entries of the chain the API's answers are compared with (seq 0 … count-1)
    count: int
    #: whether the API's count and running hash are the chain's at that count
    consistent: bool
    model: LedgerModel
    note: str


def horizon(ctx: AuditContext) -> Horizon:
    """The API's position as it answered first (read before the chain, by the runner), and the state there."""
    found = ctx.cache.get("api_horizon")
    if found is None:
        found = ctx.cache["api_horizon"] = horizon_at(ctx, ctx.cache.get("api_chain_facts") or ctx.api.get("/chain"))
    return found  # type: ignore[no-any-return]


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
