"""What the public API should answer, built from the chain alone: each function gives the JSON the API must serve
for an entry, batch, agency, commitment or case (and :func:`withheld`, which batches it must call withheld), in the
API's representation (``api/schemas/``: bytes as ``0x`` + lowercase hex, codes as text, times as unix seconds, rates
as 4-place decimal strings). The auditor compares the API's answers with these value for value. ``final`` is left
out: it depends on the service's confirmation depth, and is checked separately."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.audit.rebuild import CaseRecord, CommitmentState, LedgerModel, hex0x
from ledger.batches import verify_proof
from ledger.batches.read import WITHHELD_IMPOSSIBLE
from ledger.cases import BATCHED_RECEIPT_CASE_EVENT
from ledger.chain.logs import DecodedEntry
from ledger.encoding import ZERO32, code_text
from ledger.metrics import rate_from_bps
from ledger.records import CHANNEL_NAMES, CaseAction, DeadlineUnit, EntryKind

KIND_NAMES = {kind.value: kind.name.lower() for kind in EntryKind}
ACTION_NAMES = {action.value: action.name.lower() for action in CaseAction}
UNIT_NAMES = {unit.value: unit.name.lower() for unit in DeadlineUnit}
GOVERNANCE = (EntryKind.AGENCY_REGISTERED, EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED)


def proof(e: DecodedEntry, model: LedgerModel | None = None) -> dict[str, Any]:
    """An entry's proof; with the model, a batched entry's gains ``batch`` (its Merkle proof is checked apart, by
    :func:`merkle_problem`: the API may build another valid one)."""
    out: dict[str, Any] = {
        "seq": e.seq,
        "tx_hash": hex0x(e.tx_hash),
        "block_number": e.block_number,
        "block_hash": hex0x(e.block_hash),
        "block_time": e.block_time,
        "log_index": e.log_index,
        "entry_hash": hex0x(e.entry_hash),
    }
    anchor = model.batch_of(e.seq) if model is not None and model.anchors else None
    if anchor is not None:
        r = anchor.record
        out["batch"] = {
            "seq": anchor.seq, "index": e.seq - anchor.seq, "root": hex0x(r["root"]), "count": r["count"],
            "file_hash": hex0x(r["file_hash"]), "file_url": f"/api/v1/batches/{anchor.seq}/file",
        }
    return out


def merkle_problem(e: DecodedEntry, model: LedgerModel, served: Any) -> tuple[str, bool] | None:
    """What is wrong with the Merkle proof the API serves for batched entry `e` in its proof object `served`: (the
    problem, whether it is only a warning — no proof offered), or None when it verifies (or `e` is not batched)."""
    anchor = model.batch_of(e.seq) if model.anchors else None
    if anchor is None:
        return None
    batch = served.get("batch") if isinstance(served, dict) else None
    if not isinstance(batch, dict):
        return "the API does not give the batched entry's batch and Merkle proof (proof.batch)", False
    branch = batch.get("merkle_proof")
    if branch is None:
        why = batch.get("proof_unavailable") or "no reason given"
        return f"the API gives no Merkle proof for the batched entry ({why}), though the batch file is published", True
    try:
        siblings = [bytes.fromhex(str(h)[2:]) for h in branch]
    except ValueError:
        return f"the API's Merkle proof is not a list of 0x-hex hashes: {branch!r}", False
    if not verify_proof(anchor.record["root"], e.seq - anchor.seq, e.record_hash, siblings):
        return (f"the API's Merkle proof of entry {e.seq} (index {e.seq - anchor.seq} of batch {anchor.seq}) does not "
                f"lead to the anchored root 0x{anchor.record['root'].hex()}"), False
    return None


def batch(anchor: DecodedEntry, model: LedgerModel) -> dict[str, Any]:
    """``GET /batches`` item (``final`` and ``file_available`` left out: the service's view of the moment)."""
    r = anchor.record
    return {
        "seq": anchor.seq,
        "last_seq": anchor.seq + r["count"] - 1,
        "count": r["count"],
        "agency_id": code_text(anchor.agency_id),
        "signer": anchor.actor,
        "root": hex0x(r["root"]),
        "file_hash": hex0x(r["file_hash"]),
        "record_hash": hex0x(anchor.record_hash),
        "entry_hash": hex0x(anchor.entry_hash),
        "running_hash": hex0x(model.running[anchor.seq]),
        "file_url": f"/api/v1/batches/{anchor.seq}/file",
        "proof": proof(anchor),
    }


@dataclass
class Withheld:
    """The batches the API must call withheld (``GET /batches?withheld=true``; counted as ``batches_withheld`` and
    ``entries_withheld`` on ``/chain``, agency pages and agency scorecards): those whose file the audit could not read
    either, by agency. An agency in `unknown` has a batch whose file the audit looked for elsewhere than the API
    (``--batches``) and did not find there, while the API may have it: what it serves of that agency's withheld
    batches is not compared."""

    by_agency: dict[str, list[DecodedEntry]] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)

    def seqs(self, agency_id: str) -> set[int] | None:
        """The seqs of the agency's withheld batches, or None when that cannot be told."""
        return None if agency_id in self.unknown else {a.seq for a in self.by_agency.get(agency_id, [])}

    def counts(self, agency_id: str | None = None) -> dict[str, int] | None:
        """``batches_withheld`` and ``entries_withheld`` of one agency (None: of the whole ledger), or None when they
        cannot be told."""
        if (self.unknown if agency_id is None else agency_id in self.unknown):
            return None
        anchors = ([a for found in self.by_agency.values() for a in found] if agency_id is None
                   else self.by_agency.get(agency_id, []))
        return {"batches_withheld": len(anchors), "entries_withheld": sum(a.record["count"] for a in anchors)}


def withheld(model: LedgerModel, count: int, outcomes: Mapping[int, Any] | None, from_api: bool) -> Withheld:
    """The batches anchored before seq `count` that the API must call withheld: those whose file the audit could not
    read (``ledger.audit.batchfiles``; `outcomes` by anchor seq, None when no batch files were read) — from the API
    itself (`from_api`), or of a kind no source can cure (a file with the anchored hash that cannot match)."""
    out = Withheld()
    for seq, anchor in sorted(model.anchors.items()):
        if seq >= count or seq in model.contents:
            continue
        agency = code_text(anchor.agency_id)
        outcome = outcomes.get(seq) if outcomes is not None else None
        if outcomes is not None and (from_api or (outcome is not None and outcome.withheld == WITHHELD_IMPOSSIBLE)):
            out.by_agency.setdefault(agency, []).append(anchor)
        else:
            out.unknown.add(agency)
    return out


def entry(e: DecodedEntry, model: LedgerModel) -> dict[str, Any]:
    """``GET /entries`` item."""
    return {
        "seq": e.seq,
        "kind": KIND_NAMES[int(e.kind)],
        "kind_code": int(e.kind),
        "agency_id": None if e.agency_id == ZERO32 else code_text(e.agency_id),  # an auditor's entry: no agency
        "actor": e.actor,
        "record_hash": hex0x(e.record_hash),
        "entry_hash": hex0x(e.entry_hash),
        "running_hash": hex0x(model.running[e.seq]),
        "occurred_at": e.record.get("occurred_at"),  # none for governance entries, ratings and disputes
        "not_applied_reason": not_applied_reason(e, model),
        "proof": proof(e, model),
    }


def not_applied_reason(e: DecodedEntry, model: LedgerModel) -> str | None:
    """Why a case event does not apply to its case (a receipt case's event written in a batch), or None."""
    return BATCHED_RECEIPT_CASE_EVENT if e.seq in model.not_applied else None


def entry_export(e: DecodedEntry, model: LedgerModel) -> dict[str, Any]:
    """``/export/entries.jsonl`` row."""
    out = {k: v for k, v in entry(e, model).items() if k != "proof"}
    out.update(
        voided_by=model.voided.get(e.seq), block_number=e.block_number, block_hash=hex0x(e.block_hash),
        block_time=e.block_time, tx_hash=hex0x(e.tx_hash), log_index=e.log_index,
    )
    anchor = model.batch_of(e.seq) if model.anchors else None
    if anchor is not None:
        r = anchor.record
        out.update(batch_seq=anchor.seq, batch_index=e.seq - anchor.seq, batch_root=hex0x(r["root"]),
                   batch_file_hash=hex0x(r["file_hash"]))
    return out


def agency(model: LedgerModel, agency_id: str, *, detail: bool = False) -> dict[str, Any]:
    state = model.agencies[agency_id]
    out: dict[str, Any] = {
        "agency_id": state.agency_id,
        "jurisdiction": state.jurisdiction,
        "name_zh": state.name_zh,
        "name_en": state.name_en,
        "signers": sorted(state.signers, key=str.lower),
        "registration": proof(state.registration),
    }
    if detail:
        out["key_history"] = [
            {"signer": signer, "action": "authorized" if authorised else "revoked", "proof": proof(e)}
            for e, signer, authorised in state.key_history
        ]
    return out


def _version(row: Any, e: DecodedEntry, *, voided: bool) -> dict[str, Any]:
    out = {
        "agency_id": row.agency_id,
        "commitment_id": row.commitment_id,
        "version": row.version,
        "service_code": row.service_code,
        "name_zh": row.name_zh,
        "name_en": row.name_en,
        "deadline": row.deadline,
        "deadline_unit": UNIT_NAMES.get(row.deadline_unit, str(row.deadline_unit)),
        "target_bps": row.target_bps,
        "target_rate": str(rate_from_bps(row.target_bps)),
        "valid_from": row.valid_from,
        "terms_hash": hex0x(row.terms_hash),
        "occurred_at": row.occurred_at,
        "proof": proof(e),
    }
    if voided:
        out["voided_by"] = row.voided_by
    return out


def commitment_version(c: CommitmentState, version: int) -> dict[str, Any] | None:
    """``GET /commitments/{agency}/{commitment}/versions/{version}``."""
    for row, e in c.versions:
        if row.version == version:
            return _version(row, e, voided=False)
    return None


def _retirement(c: CommitmentState) -> dict[str, Any] | None:
    if c.retirement is None:
        return None
    r = c.retirement
    return {"reason_hash": hex0x(r.record["reason_hash"]), "occurred_at": r.record["occurred_at"], "proof": proof(r)}


def commitment_summary(c: CommitmentState) -> dict[str, Any]:
    """``GET /commitments`` item: the current version (the latest not voided), retirement, version count."""
    row, e = c.current
    return {
        **_version(row, e, voided=True),
        "retired": c.retirement is not None,
        "retirement": _retirement(c),
        "version_count": len(c.versions),
    }


def commitment_history(c: CommitmentState) -> dict[str, Any]:
    """``GET /commitments/{agency}/{commitment}``."""
    return {
        "agency_id": c.agency_id,
        "commitment_id": c.commitment_id,
        "current_version": c.current[0].version,
        "retired": c.retirement is not None,
        "retirement": _retirement(c),
        "versions": [_version(row, e, voided=True) for row, e in sorted(c.versions, key=lambda v: v[0].version)],
    }


CASE_FIELDS = (
    "commitment_id", "commitment_version", "district", "channel", "status", "opened_seq", "opened_at", "closed_at",
    "hold_seconds", "on_hold_since", "due_at", "fulfil_seconds", "on_time", "escalated", "invalid_transitions",
    "last_seq", "rating", "rated_at", "disputes", "reopened", "dispute_open", "responded_at", "response_due",
    "disputed_at", "rectified_at", "rectification_due",
)
#: a case view's receipt, rating and dispute fields (the receipt's address itself is left to ``GET /receipts``)
FEEDBACK_VIEW_FIELDS = ("has_receipt", "rating", "rated_at", "disputes", "reopened", "dispute_open")
#: a case view's response and rectification fields: the case state's, as the fold gives them (``ledger.cases``)
RESPONSE_VIEW_FIELDS = ("responded_at", "response_due", "rectified_at", "rectification_due")


def case_row(record: CaseRecord) -> dict[str, Any] | None:
    """``/export/cases.jsonl`` row (None when the case has no state: no opening that stands)."""
    if record.state is None:
        return None
    state = record.state._asdict()
    return {"agency_id": record.agency_id, "case_id": hex0x(record.case_id), **{k: state[k] for k in CASE_FIELDS}}


def case_event(e: DecodedEntry, model: LedgerModel) -> dict[str, Any]:
    r = e.record
    opened = r["action"] == CaseAction.OPENED
    return {
        "seq": e.seq,
        "action": ACTION_NAMES.get(int(r["action"]), str(r["action"])),
        "action_code": int(r["action"]),
        "occurred_at": r["occurred_at"],
        "recorded_at": e.block_time,
        "recording_latency_seconds": (e.block_time or 0) - r["occurred_at"],
        "details_hash": hex0x(r["details_hash"]),
        "commitment_id": code_text(r["commitment_id"]) if opened else None,
        "district": code_text(r["district"]) if opened else None,
        "channel": r["channel"] if opened else None,
        "voided_by": model.voided.get(e.seq),
        "not_applied_reason": not_applied_reason(e, model),
        "proof": proof(e, model),
    }


def case_view(record: CaseRecord, model: LedgerModel) -> dict[str, Any]:
    """``GET /cases/{agency}/{case}`` without ``overdue`` (taken at the moment of the request: checked apart)."""
    out: dict[str, Any] = {
        "agency_id": record.agency_id,
        "case_id": hex0x(record.case_id),
        "events": [case_event(e, model) for e in record.events],
    }
    state = record.state
    if state is None:
        out.update({name: None for name in (
            "status", "commitment_id", "commitment_version", "district", "channel", "opened_at", "closed_at",
            "due_at", "hold_seconds", "on_hold_since", "fulfil_seconds", "on_time", "escalated",
            "invalid_transitions", *FEEDBACK_VIEW_FIELDS, *RESPONSE_VIEW_FIELDS,
        )})
        return out
    names: tuple[str | None, str | None] = (None, None)
    commitment = model.commitments.get((record.agency_id, state.commitment_id))
    if commitment is not None:
        for row, _ in commitment.versions:
            if row.version == state.commitment_version:
                names = (row.name_zh, row.name_en)
    out.update(
        status=state.status, commitment_id=state.commitment_id, commitment_version=state.commitment_version,
        commitment_name_zh=names[0], commitment_name_en=names[1], district=state.district, channel=state.channel,
        channel_name=CHANNEL_NAMES.get(state.channel), opened_at=state.opened_at, closed_at=state.closed_at,
        due_at=state.due_at, hold_seconds=state.hold_seconds, on_hold_since=state.on_hold_since,
        fulfil_seconds=state.fulfil_seconds, on_time=state.on_time, escalated=state.escalated,
        invalid_transitions=state.invalid_transitions, has_receipt=state.receipt is not None, rating=state.rating,
        rated_at=state.rated_at, disputes=state.disputes, reopened=state.reopened, dispute_open=state.dispute_open,
        **{name: getattr(state, name) for name in RESPONSE_VIEW_FIELDS},
    )
    return out


def differences(expected: Any, actual: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(field path, expected, actual) for every value of `expected` that `actual` does not have equal. Keys absent
    from `expected` are not compared; hex strings compare case-insensitively (checksummed addresses)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [(path or "(whole)", expected, actual)]
        out: list[tuple[str, Any, Any]] = []
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else key
            if key not in actual:
                out.append((sub, value, "(missing)"))
            else:
                out.extend(differences(value, actual[key], sub))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [(path, f"a list of {len(expected)}", actual)]
        out = []
        if len(expected) != len(actual):
            out.append((f"{path} (length)", len(expected), len(actual)))
        for i, (a, b) in enumerate(zip(expected, actual, strict=False)):
            out.extend(differences(a, b, f"{path}[{i}]"))
        return out
    if _same(expected, actual):
        return []
    return [(path, expected, actual)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (a is None and b is None)
    if isinstance(a, str) and isinstance(b, str) and a.startswith("0x") and b.startswith("0x"):
        return a.lower() == b.lower()
    return type(a) is type(b) and a == b if a is not None and b is not None else a is b
