"""Authorisation: every entry was written by a key allowed to write it at that point of the ledger. A Merkle batch's
events were written by its anchoring transaction: the anchor's signer is checked, at the anchor's place in the
ledger, once for all of them."""

from __future__ import annotations

from ledger.audit.chainread import GOVERNOR_ROLE
from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.audit.rebuild import AUDITOR_KINDS, CITIZEN_KINDS, FILING_CITIZEN_KINDS, GOVERNANCE_KINDS, entry_pointer
from ledger.encoding import code_text
from ledger.records import EntryKind

NAME = "authorised"


def run(ctx: AuditContext, result: CheckResult) -> None:
    entries = ctx.model.logged  # as logged: a batch is its anchor
    # Governance: GOVERNOR_ROLE holders, from the contract's RoleGranted/RoleRevoked events, in chain order.
    roles = sorted(
        (r for r in ctx.chain.role_changes if r.role == GOVERNOR_ROLE), key=lambda r: (r.block_number, r.log_index)
    )
    governance = [e for e in entries if e.kind in GOVERNANCE_KINDS]
    if roles:
        holders: set[str] = set()
        i = 0
        for e in sorted(governance, key=lambda e: (e.block_number, e.log_index)):
            while i < len(roles) and (roles[i].block_number, roles[i].log_index) < (e.block_number, e.log_index):
                (holders.add if roles[i].granted else holders.discard)(roles[i].account)
                i += 1
            if e.actor not in holders:
                result.add(Finding(
                    NAME,
                    f"{e.kind.name.lower()} by {e.actor}, which did not hold GOVERNOR_ROLE at that point",
                    **entry_pointer(e), field="actor", actual=e.actor,
                ))
    elif governance:
        result.notes.append(
            "the contract's role grants are not in the audited block range (--from-block after deployment): "
            "governance actors were not checked"
        )

    # Agency keys: replayed from SignerAuthorized / SignerRevoked entries, in seq order.
    registered: set[bytes] = set()
    key_agency: dict[str, bytes] = {}  # key -> agency it is authorised for now
    last_change: dict[str, tuple[int, bool, bytes]] = {}  # key -> (seq, authorised, agency) of its last change
    agency_entries = citizen_entries = batches = batched = 0
    for e in entries:
        kind = e.kind
        if kind in CITIZEN_KINDS or kind in AUDITOR_KINDS or kind in FILING_CITIZEN_KINDS:
            # signed by the case's receipt key, a filer's own key or a registered auditor's, not an agency key: the
            # feedback_authentic, filings_answered and attestations checks' business (an agency's answer to a
            # filing is an agency entry like any other, checked here)
            citizen_entries += kind not in AUDITOR_KINDS
            continue
        if kind in (EntryKind.AUDITOR_AUTHORIZED, EntryKind.AUDITOR_REVOKED):
            continue  # governance's (its actor is checked above); the auditor key history is the attestations check's
        if kind == EntryKind.AGENCY_REGISTERED:
            if e.agency_id in registered:
                result.add(Finding(NAME, f"agency {code_text(e.agency_id)} registered twice", **entry_pointer(e)))
            registered.add(e.agency_id)
            continue
        if kind in (EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED):
            signer = e.signer or ""
            agency = code_text(e.agency_id)
            if kind == EntryKind.SIGNER_AUTHORIZED:
                if e.agency_id not in registered:
                    result.add(Finding(NAME, f"authorises {signer} for {agency}, which is not registered",
                                       **entry_pointer(e)))
                if signer in key_agency:
                    result.add(Finding(
                        NAME, f"authorises {signer}, already authorised for {code_text(key_agency[signer])}",
                        **entry_pointer(e),
                    ))
                key_agency[signer] = e.agency_id
            else:
                if key_agency.get(signer) != e.agency_id:
                    result.add(Finding(NAME, f"revokes {signer} for {agency}, which it was not authorised for",
                                       **entry_pointer(e)))
                key_agency.pop(signer, None)
            last_change[signer] = (e.seq, kind == EntryKind.SIGNER_AUTHORIZED, e.agency_id)
            continue
        agency_entries += 1
        if kind == EntryKind.BATCH_ANCHORED:
            batches += 1
            batched += e.record["count"]
        if key_agency.get(e.actor) == e.agency_id:
            continue
        agency = code_text(e.agency_id)
        change = last_change.get(e.actor)
        if change is None:
            why = "a key never authorised for any agency"
        elif not change[1]:
            why = f"a key revoked at seq {change[0]}, before this entry"
        else:
            why = f"a key authorised for {code_text(change[2])} (seq {change[0]}), not for {agency}"
        what = (f"batch of {e.record['count']} case events (seq {e.seq}-{e.seq + e.record['count'] - 1})"
                if kind == EntryKind.BATCH_ANCHORED else e.kind.name.lower())
        result.add(Finding(
            NAME, f"{what} for {agency} signed by {e.actor}: {why}",
            **entry_pointer(e), field="actor", actual=e.actor,
        ))
    result.counts.update(
        entries=len(entries), governance_entries=len(governance), agency_entries=agency_entries,
        citizen_entries=citizen_entries, batches=batches, batched_entries=batched,
        keys=len(last_change), keys_revoked=sum(1 for _, authorised, _ in last_change.values() if not authorised),
        role_changes=len(roles),
    )


CHECK = Check(
    NAME,
    "Every signer authorised at its block",
    "Replaying the key history from the ledger's own SignerAuthorized/SignerRevoked entries (and GOVERNOR_ROLE "
    "grants from the contract's RoleGranted/RoleRevoked events), every agency entry's signer was authorised for "
    "that agency, and every governance entry's actor held GOVERNOR_ROLE, at the point the entry was written (a "
    "Merkle batch's events: its anchor's signer, at the anchor). "
    "(Ratings and disputes are signed by the citizen's receipt key: feedback_authentic checks those; attestations "
    "by a registered auditor's key: the attestations check.)",
    run,
)
