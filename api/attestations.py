"""The audit part of the read API: auditors registered by governance, their attestations (signed checkpoints of the
whole ledger, with the index's verdict on each: ``attestations.matches_ledger``), the audit reports served by their
hash, and the summary ``/api/v1/chain`` shows — "independently audited up to block N by K auditors".

How N and K are defined (:func:`audit_summary`): each currently registered auditor's latest attestation is taken when
it matches the ledger; N is the highest block among those, K how many of them are at N, and the verdict is passed when
all K passed (else failed, with the most findings any of them made). An attestation at block N vouches for every
entry up to N, so a later one supersedes an earlier one of the same auditor; a revoked auditor's attestations stay on
the ledger and in the lists, but no longer count. A registered auditor whose latest attestation does not match the
ledger is counted apart (``not_matching``), as a warning.

Reports are files ``<data dir>/audit-reports/<keccak256 hex>.json`` (``ledger.files.HashedFiles``), written
durably by ``PUT /api/v1/audit-reports/{hash}`` and only for a hash an indexed attestation names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import RowMapping

from api.read._common import proof_columns, proof_of, to_hex
from api.read.state import IndexState
from api.schemas.audit import Attestation, Auditor, AuditorLatest, AuditSummary, AuditVerdictName
from api.schemas.proofs import Proof
from ledger.files import HashedFiles
from ledger.records import AuditVerdict
from ledger.store.schema import attestations, auditors, entries

REPORT_PATH = "/api/v1/audit-reports/"
#: the largest report the service keeps (a report of 100,000 audited entries with every finding is well under it)
MAX_REPORT_BYTES = 8 * 2**20
VERDICT_NAMES: dict[int, AuditVerdictName] = {AuditVerdict.PASSED: "passed", AuditVerdict.FAILED: "failed"}


def audit_reports(app: Any) -> HashedFiles:
    """The app's report files (made on first use, from its settings: ``<data dir>/audit-reports``)."""
    found: HashedFiles | None = getattr(app.state, "audit_reports", None)
    if found is None:
        found = app.state.audit_reports = HashedFiles(app.state.settings.audit_report_directory, ".json")
    return found


def report_url(report_hash: bytes) -> str:
    return REPORT_PATH + to_hex(report_hash)


# --- attestations -----------------------------------------------------------------------------------------------------


def _attestation_query() -> Any:
    return select(attestations, *proof_columns()).join(entries, entries.c.seq == attestations.c.seq)


def attestation_of(row: RowMapping, state: IndexState, reports: HashedFiles) -> Attestation:
    report_hash = bytes(row["report_hash"])
    matches = row["matches_ledger"]
    return Attestation(
        seq=row["seq"],
        auditor=row["auditor"],
        block_number=row["block_number"],
        block_hash=to_hex(row["block_hash"]),
        entry_count=row["entry_count"],
        running_hash=to_hex(row["running_hash"]),
        report_hash=to_hex(report_hash),
        verdict=VERDICT_NAMES[row["verdict"]],
        findings=row["findings"],
        matches_ledger=None if matches is None else bool(matches),
        report_url=report_url(report_hash),
        report_available=reports.present(report_hash),
        final=state.is_final(row["p_block_number"]),
        proof=proof_of(row),
    )


def attestations_page(
    conn: Connection, state: IndexState, reports: HashedFiles, after: int | None, limit: int,
    auditor: str | None = None,
) -> tuple[list[Attestation], bool]:
    """Up to ``limit`` attestations with seq above ``after`` (of one auditor key, if given), and whether more follow."""
    query = _attestation_query().order_by(attestations.c.seq).limit(limit + 1)
    if after is not None:
        query = query.where(attestations.c.seq > after)
    if auditor is not None:
        query = query.where(attestations.c.auditor == auditor)
    rows = conn.execute(query).mappings().all()
    return [attestation_of(row, state, reports) for row in rows[:limit]], len(rows) > limit


def attestation(conn: Connection, state: IndexState, reports: HashedFiles, seq: int) -> Attestation | None:
    row = conn.execute(_attestation_query().where(attestations.c.seq == seq)).mappings().first()
    return None if row is None else attestation_of(row, state, reports)


def latest_attestations(conn: Connection, keys: Iterable[str]) -> dict[str, RowMapping]:
    """Each key's most recent attestation row (keys without one are left out)."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    a = attestations.c
    newest = select(func.max(a.seq)).where(a.auditor.in_(keys)).group_by(a.auditor)
    rows = conn.execute(_attestation_query().where(a.seq.in_(newest))).mappings()
    return {row["auditor"]: row for row in rows}


def report_attested(conn: Connection, report_hash: bytes) -> bool:
    """Whether an indexed attestation names this report hash."""
    query = select(attestations.c.seq).where(attestations.c.report_hash == report_hash).limit(1)
    return conn.execute(query).first() is not None


# --- auditors ---------------------------------------------------------------------------------------------------------


def _proofs(conn: Connection, seqs: Sequence[int]) -> dict[int, Proof]:
    if not seqs:
        return {}
    rows = conn.execute(select(*proof_columns()).where(entries.c.seq.in_(list(seqs)))).mappings()
    return {row["p_seq"]: proof_of(row) for row in rows}


def auditors_page(
    conn: Connection, state: IndexState, reports: HashedFiles, after: int | None, limit: int
) -> tuple[list[Auditor], bool]:
    """Up to ``limit`` registrations with seq above ``after``, and whether more follow."""
    query = (
        select(auditors, *proof_columns()).join(entries, entries.c.seq == auditors.c.seq)
        .order_by(auditors.c.seq).limit(limit + 1)
    )
    if after is not None:
        query = query.where(auditors.c.seq > after)
    rows = conn.execute(query).mappings().all()
    page = rows[:limit]
    keys = [row["auditor"] for row in page]
    revocations = _proofs(conn, [row["revoked_seq"] for row in page if row["revoked_seq"] is not None])
    latest = latest_attestations(conn, keys)
    counts: dict[str, int] = {}
    if keys:
        a = attestations.c
        counts = {row[0]: int(row[1]) for row in conn.execute(
            select(a.auditor, func.count()).where(a.auditor.in_(keys)).group_by(a.auditor)
        )}
    items = []
    for row in page:
        newest = latest.get(row["auditor"])
        items.append(Auditor(
            auditor=row["auditor"],
            registered=row["revoked_seq"] is None,
            registration=proof_of(row),
            revocation=None if row["revoked_seq"] is None else revocations[row["revoked_seq"]],
            attestations=counts.get(row["auditor"], 0),
            latest_attestation=None if newest is None else attestation_of(newest, state, reports),
            final=state.is_final(row["p_block_number"]),
        ))
    return items, len(rows) > limit


def registered_auditors(conn: Connection) -> list[str]:
    """The auditor keys registered now, in registration order."""
    query = select(auditors.c.auditor).where(auditors.c.revoked_seq.is_(None)).order_by(auditors.c.seq)
    return list(conn.execute(query).scalars())


# --- the summary ------------------------------------------------------------------------------------------------------


def audit_summary(conn: Connection, state: IndexState, reports: HashedFiles) -> AuditSummary:
    """Who audits the ledger now and how far (the module's docstring defines N, K and the verdict)."""
    keys = registered_auditors(conn)
    latest = latest_attestations(conn, keys)
    shown = {key: attestation_of(row, state, reports) for key, row in latest.items()}
    matching = [found for found in shown.values() if found.matches_ledger]
    not_matching = sum(1 for found in shown.values() if found.matches_ledger is False)
    top = max((found.block_number for found in matching), default=None)
    at_top = [found for found in matching if found.block_number == top]
    failed = [found for found in at_top if found.verdict == "failed"]
    return AuditSummary(
        registered_auditors=len(keys),
        audited_to_block=top,
        auditors=len(at_top),
        verdict=None if top is None else "failed" if failed else "passed",
        findings=None if top is None else max(found.findings for found in at_top),
        not_matching=not_matching,
        latest=[AuditorLatest(auditor=key, attestation=shown.get(key)) for key in keys],
    )
