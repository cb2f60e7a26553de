"""Entries projected into the tables: the rows a range of checked entries gives (``entries``, ``batches``, the
per-kind tables, ``case_events``, ``receipts``, ``ratings``, ``disputes``), the corrections applied, and the cases
handed to the fold (:mod:`ledger.index.cases`) — all in the caller's transaction (:mod:`ledger.index.sync` opens it,
takes the write lock and commits). Every derived row is a pure function of the entries: dropping the store and
re-syncing gives the same rows.

Merkle-anchored batches (``ledger.batches``)
    A ``BatchAnchored`` entry gives one ``batches`` row and, when its file was read and matches the anchor
    (:mod:`ledger.index.withheld`), per event an ``entries`` row exactly like a case event written alone (kind
    CASE_EVENT, the anchor's agency and signer as actor, its record hash, and its own entry hash
    ``entry_hash(seq, CASE_EVENT, agency, signer, record_hash)`` — shown, not folded), whose proof columns are the
    anchoring transaction's, whose ``running_hash`` is the head after the batch, and whose ``batch_seq`` and
    ``batch_index`` say where it sits; plus its ``case_events`` row and the case fold, so metrics and the API treat
    it as any other case event — except that a batched event of a case whose id carries ``RECEIPT_CASE_FLAG`` is
    never folded into its case (``ledger.cases.batched_event_applies``): its entry and ``case_events`` row are
    written, the fold leaves it out (and it answers no dispute). A withheld batch's row says why
    (``withheld``, ``withheld_reason``) and no ``entries`` row exists for its seqs until its file is published: then
    :meth:`Projection.release` writes its entries and case events at their seqs, applies the corrections aimed at
    them as they would have been, and has the cases they touch re-folded.

Corrections (the rule is ``ledger.cases.voided_entries``)
    A correction is ``applied`` when its target belongs to the same agency, is not voided already and is not a
    receipt, rating or dispute (those are the citizen's: an agency cannot void them), a filing's answer or a case's
    Opened (``ledger.cases.unvoidable``); it then sets the target's
    ``entries.voided_by``. Voiding is final: a correction that voids another correction does not restore that one's
    target (record the entry again instead). Voiding a case event re-folds its case. Voiding a commitment version,
    retirement or holiday calendar marks the entry only: the contract still counts that version, retirement or
    calendar, so deadlines follow the contract's view.

Auditors and attestations (entries of no agency: ``entries.agency_id`` is ``NO_AGENCY``)
    An AuditorAuthorized entry opens an ``auditors`` row, an AuditorRevoked one closes it (``revoked_seq``); an
    AuditAttested entry is an ``attestations`` row whose ``matches_ledger`` says whether its checkpoint is the ledger
    the index holds (:func:`checkpoint_matches`: the running hash after that many entries, and that many entries at
    that block), decided when the range is written (:func:`settle_attestations`; the contract never records a count
    beyond the ledger's, so the index always has the entries by then). No correction voids them: a correction applies
    only to its own agency's entries, and no agency is the zero id.

Filings (``ledger.records.Filing``; the filings module's entries)
    A FilingRecorded entry is a ``filings`` row, with the id of the case its acceptance would open
    (``ledger.records.filed_case_id``: Open311 finds a filed request by it before any answer). A FilingAnswered
    entry records its answer on that row; an acceptance also opens the case bound to the filing, exactly as an
    Opened case event and a ReceiptIssued entry would, both at the answer's seq: a ``case_events`` row (action Opened,
    ``occurred_at`` the *filing's* block time — the clock starts at filing, whatever the agency claims —, the
    filing's commitment, district and channel, the answer's reason hash as details) and a ``receipts`` row (the
    filer's key). A ReceiptClaimed entry is a ``receipts`` row of the new key at its seq: the case's key moves to it
    (``ledger.cases.CaseProgress.take``). None of them can be voided (``ledger.cases.unvoidable``).

What it touches: the tables above, through the caller's connection; it never opens a connection or a transaction of
its own, and never imports the sync loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from ledger.batches.read import BatchContent
from ledger.cases import (
    ANSWERS,
    CommitmentVersion,
    Event,
    Feedback,
    batched_event_applies,
    correction_applies,
    voided_entries,
)
from ledger.chain.logs import DecodedEntry
from ledger.encoding import ZERO_HEAD, code_text, display_text, entry_hashes_in_order
from ledger.filings import answer_due
from ledger.index import cells
from ledger.index.cases import Caches, CaseFolder
from ledger.index.sql import Statements, chunks
from ledger.index.withheld import Withheld
from ledger.metrics import key_origin_sql
from ledger.records import CaseAction, EntryKind, FilingDecision, filed_case_id
from ledger.store.schema import (
    agencies,
    attestations,
    auditors,
    batches,
    case_events,
    commitment_retirements,
    commitments,
    corrections,
    disputes,
    entries,
    filings,
    holiday_calendars,
    ratings,
    signer_changes,
)
from ledger.workdays import YearCalendar


@dataclass
class _RangeRows:
    """What a range's entries give, table by table, before any of it is written; and what the case fold needs."""

    entries: list[tuple[Any, ...]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    per_kind: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    new_events: dict[tuple[str, bytes], list[Event]] = field(default_factory=dict)
    #: receipts, ratings and disputes: rows per table, and per case what the fold reads of them
    feedback: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    new_feedback: dict[tuple[str, bytes], list[Feedback]] = field(default_factory=dict)
    #: Reopened and DisputeRejected events, which answer disputes: (seq, agency, case id, action, block time)
    answers: list[tuple[int, str, bytes, int, int]] = field(default_factory=list)
    retirements: list[tuple[int, str, str]] = field(default_factory=list)
    #: (seq, auditor) of each AuditorRevoked entry: ends the auditor's open registration
    auditor_revocations: list[tuple[int, str | None]] = field(default_factory=list)
    corrections: list[DecodedEntry] = field(default_factory=list)
    #: FilingAnswered entries, applied once the range's filings are written
    filing_answers: list[DecodedEntry] = field(default_factory=list)
    changed_years: set[tuple[str, int]] = field(default_factory=set)


class Projection:
    """Writes checked entries into the tables of one store (with the statements compiled for its dialect), and hands
    the cases they touch to the case fold."""

    def __init__(self, sql: Statements, cases: CaseFolder) -> None:
        self._sql = sql
        self._cases = cases

    def write(
        self, conn: Connection, decoded: list[DecodedEntry], running: list[bytes], caches: Caches,
        contents: dict[int, BatchContent | Withheld] | None = None,
    ) -> None:
        """Write a range's entries (`running`: the running hash after each; `contents`: each batch anchor's file or
        why it is withheld) and everything derived from them."""
        rows = self._rows(decoded, running, caches, contents)
        cells.before(conn, cases=_cases_written(conn, rows), filing_seqs=_filings_written(rows))
        self._insert(conn, rows)
        if rows.filing_answers:
            self._answer_filings(conn, rows)
        if decoded and (self._sql.insert_ratings in rows.feedback or self._sql.insert_disputes in rows.feedback):
            fill_key_origins(conn, decoded[0].seq)  # every binding before them is written by now
        refold: set[tuple[str, bytes]] = set()
        if rows.corrections:
            refold |= _apply_corrections(conn, rows.corrections)
        self._cases.update(conn, rows.new_events, rows.new_feedback, refold, caches,
                           first_new_seq=decoded[0].seq if decoded else 0)
        for jurisdiction, year in sorted(rows.changed_years):
            self._cases.recompute_due(conn, jurisdiction, year, caches)

    def release(self, conn: Connection, row: Any, content: BatchContent, caches: Caches) -> None:
        """Write a withheld batch's entries at their seqs (`row`: its ``batches`` row; `content`: its file, read and
        matching now): entries and case events, the corrections aimed at them applied as they would have been, the
        cases they touch re-folded (their events come in out of seq order), the batch no longer withheld."""
        seq, count, agency = int(row["seq"]), int(row["count"]), row["agency_id"]
        entry_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        new_events: dict[tuple[str, bytes], list[Event]] = {}
        proof = (int(row["block_number"]), bytes(row["block_hash"]), int(row["block_time"]),
                 bytes(row["tx_hash"]), int(row["log_index"]))
        _batched_rows(seq, agency, _code_word(agency), row["signer"], bytes(row["running_hash"]), proof,
                      content, entry_rows, event_rows, new_events, [])
        cells.before(conn, cases={(row[1], bytes(row[2])) for row in event_rows})
        conn.exec_driver_sql(self._sql.insert_entries, entry_rows)
        conn.exec_driver_sql(self._sql.insert_case_events, event_rows)
        _void_released(conn, seq, count, agency)
        conn.execute(update(batches).where(batches.c.seq == seq).values(withheld=None, withheld_reason=None))
        # dispute answers included: an earlier-seq Reopened may now answer a dispute a later one answered
        self._cases.refold(conn, new_events, caches)

    def _rows(
        self, decoded: list[DecodedEntry], running: list[bytes], caches: Caches,
        contents: dict[int, BatchContent | Withheld] | None,
    ) -> _RangeRows:
        """The rows of a range's entries. Case events, receipts, ratings, disputes and corrections — nearly every
        entry — are handled inline; batch anchors and governance entries, few, each in a call of its own."""
        rows = _RangeRows()
        entry_rows, event_rows, new_events, answers = rows.entries, rows.events, rows.new_events, rows.answers
        feedback_rows, new_feedback, correction_entries = rows.feedback, rows.new_feedback, rows.corrections
        insert_receipts, insert_ratings = self._sql.insert_receipts, self._sql.insert_ratings
        insert_disputes = self._sql.insert_disputes
        for e, running_hash in zip(decoded, running, strict=True):
            assert e.block_time is not None  # the sync loop fills it in from the block's header when the log lacks it
            agency = code_text(e.agency_id)
            r = e.record
            kind = e.kind
            if kind == EntryKind.BATCH_ANCHORED:
                assert contents is not None
                _anchor_rows(e, agency, running_hash, contents[e.seq], rows)
                continue
            entry_rows.append(
                (
                    e.seq, int(kind), agency, e.actor, e.record_hash, e.entry_hash, running_hash, e.block_number,
                    e.block_hash, e.block_time, e.tx_hash, e.log_index,
                    # governance entries, citizens' ratings and disputes (and batch anchors) claim no time
                    r["occurred_at"] if kind == EntryKind.CASE_EVENT else r.get("occurred_at"), None, None, None,
                )
            )
            if kind == EntryKind.CASE_EVENT:
                case_id, action, at = r["case_id"], r["action"], r["occurred_at"]
                intake: tuple[Any, Any, int | None]
                if action == CaseAction.OPENED:
                    event = Event(e.seq, action, at, code_text(r["commitment_id"]), code_text(r["district"]),
                                  r["channel"])
                    intake = (event.commitment_id, event.district, event.channel)
                else:
                    event = Event(e.seq, action, at)
                    intake = (None, None, None)
                    if action in ANSWERS:
                        answers.append((e.seq, agency, case_id, action, e.block_time))
                event_rows.append(
                    (e.seq, agency, case_id, action, at, e.block_time, r["details_hash"], *intake)
                )
                new_events.setdefault((agency, case_id), []).append(event)
            elif kind == EntryKind.RECEIPT_ISSUED:
                case_id = r["case_id"]
                feedback_rows.setdefault(insert_receipts, []).append(
                    (e.seq, agency, case_id, r["receipt"], r["occurred_at"], e.block_time)
                )
                new_feedback.setdefault((agency, case_id), []).append(
                    Feedback(e.seq, kind, r["receipt"], e.block_time)
                )
            elif kind == EntryKind.CASE_RATED:
                # the entry's actor is the receipt key that signed it (the contract checked the signature)
                case_id = r["case_id"]
                feedback_rows.setdefault(insert_ratings, []).append(
                    (e.seq, agency, case_id, r["score"], r["comment_hash"], e.actor, e.block_time, None)
                )
                new_feedback.setdefault((agency, case_id), []).append(
                    Feedback(e.seq, kind, e.actor, e.block_time, r["score"])
                )
            elif kind == EntryKind.CASE_DISPUTED:
                case_id = r["case_id"]
                feedback_rows.setdefault(insert_disputes, []).append(
                    (e.seq, agency, case_id, r["closure"], r["reason_hash"], e.actor, e.block_time, None, None, None,
                     None)
                )
                new_feedback.setdefault((agency, case_id), []).append(Feedback(e.seq, kind, e.actor, e.block_time))
            elif kind == EntryKind.CORRECTION:
                correction_entries.append(e)
            elif kind == EntryKind.FILING_RECORDED:
                calendars = caches.calendars.get(caches.jurisdiction.get(agency, ""), {})
                rows.per_kind.setdefault(filings, []).append({
                    "seq": e.seq, "agency_id": agency, "commitment_id": code_text(r["commitment_id"]),
                    "district": code_text(r["district"]), "channel": r["channel"], "content_hash": r["content_hash"],
                    "receipt": r["receipt"], "relayer": r["relayer"], "block_time": e.block_time,
                    "answer_due": answer_due(e.block_time, calendars), "filed_case_id": filed_case_id(e.seq),
                })
            elif kind == EntryKind.FILING_ANSWERED:
                rows.filing_answers.append(e)
            elif kind == EntryKind.RECEIPT_CLAIMED:
                # the case's key moves to the claimant's own (a receipt row at the claim's seq)
                case_id = r["case_id"]
                feedback_rows.setdefault(insert_receipts, []).append(
                    (e.seq, agency, case_id, r["receipt"], e.block_time, e.block_time)
                )
                new_feedback.setdefault((agency, case_id), []).append(
                    Feedback(e.seq, EntryKind.RECEIPT_ISSUED, r["receipt"], e.block_time)
                )
            else:
                _governance_rows(e, agency, rows, caches)
        return rows

    def _answer_filings(self, conn: Connection, rows: _RangeRows) -> None:
        """Record each answer on its filing's row (written by now, in this range or an earlier one); an acceptance
        opens the case bound to the filing (module docstring), handed to the fold with the range's other events."""
        event_rows: list[tuple[Any, ...]] = []
        receipt_rows: list[tuple[Any, ...]] = []
        updates: list[dict[str, Any]] = []
        touched: set[tuple[str, bytes]] = set()
        # the filings of the range's answers, read at once (and updated at once, below)
        found = {
            row["seq"]: row
            for chunk in chunks(e.record["filing_seq"] for e in rows.filing_answers)
            for row in conn.execute(select(filings).where(filings.c.seq.in_(chunk))).mappings()
        }
        for e in rows.filing_answers:
            r = e.record
            assert e.block_time is not None  # filled in by the sync loop, as in _rows
            filing = found.get(r["filing_seq"])
            # the module answers only filings it recorded, of the answering agency
            assert filing is not None and filing["agency_id"] == code_text(e.agency_id), e.seq
            accepted = r["decision"] == FilingDecision.ACCEPTED
            updates.append({
                "_seq": r["filing_seq"], "answer_seq": e.seq, "decision": r["decision"],
                "case_id": r["case_id"] if accepted else None, "duplicate_of": r["duplicate_of"],
                "reason_hash": r["reason_hash"], "answered_at": e.block_time,
            })
            if not accepted:
                continue
            agency, case_id, filed_at = filing["agency_id"], r["case_id"], int(filing["block_time"])
            event = Event(e.seq, int(CaseAction.OPENED), filed_at, filing["commitment_id"], filing["district"],
                          int(filing["channel"]))
            event_rows.append((e.seq, agency, case_id, int(CaseAction.OPENED), filed_at, e.block_time,
                               r["reason_hash"], event.commitment_id, event.district, event.channel))
            receipt_rows.append((e.seq, agency, case_id, filing["receipt"], filed_at, e.block_time))
            key = (agency, case_id)
            rows.new_events.setdefault(key, []).append(event)
            rows.new_feedback.setdefault(key, []).append(
                Feedback(e.seq, EntryKind.RECEIPT_ISSUED, filing["receipt"], e.block_time)
            )
            touched.add(key)
        conn.execute(update(filings).where(filings.c.seq == bindparam("_seq")), updates)
        if event_rows:
            conn.exec_driver_sql(self._sql.insert_case_events, event_rows)
            conn.exec_driver_sql(self._sql.insert_receipts, receipt_rows)
        for key in touched:  # the opening joins the range's later events of the case: keep each list in seq order
            rows.new_events[key].sort()
            rows.new_feedback[key].sort()

    def _insert(self, conn: Connection, rows: _RangeRows) -> None:
        """Write the rows of a range, and the updates its entries make to earlier rows (disputes answered,
        commitments retired, auditors revoked)."""
        if rows.entries:
            conn.exec_driver_sql(self._sql.insert_entries, rows.entries)
        if rows.batches:
            conn.execute(insert(batches), rows.batches)
        for table, table_rows in rows.per_kind.items():
            conn.execute(insert(table), table_rows)
        if rows.events:
            conn.exec_driver_sql(self._sql.insert_case_events, rows.events)
        for statement, statement_rows in rows.feedback.items():
            conn.exec_driver_sql(statement, statement_rows)
        # Each answer takes the case's disputes before it that have none yet; a case re-folded later (its answer
        # voided by a correction, say) has its answers worked out again there.
        for seq, agency, case_id, action, block_time in rows.answers:
            conn.exec_driver_sql(self._sql.answer_disputes, (seq, action, block_time, agency, case_id, seq))
        for seq, agency, commitment in rows.retirements:
            conn.execute(
                update(commitments)
                .where(commitments.c.agency_id == agency, commitments.c.commitment_id == commitment)
                .values(retired_seq=seq)
            )
        for seq, auditor in rows.auditor_revocations:
            # the contract revokes only a registered auditor: its one registration without a revocation
            conn.execute(
                update(auditors)
                .where(auditors.c.auditor == auditor, auditors.c.revoked_seq.is_(None), auditors.c.seq < seq)
                .values(revoked_seq=seq)
            )


def _anchor_rows(
    e: DecodedEntry, agency: str, running_hash: bytes, content: BatchContent | Withheld, rows: _RangeRows
) -> None:
    """A batch anchor's ``batches`` row and, when its file is there and matches, the rows of its events."""
    r = e.record
    withheld = content if isinstance(content, Withheld) else None
    rows.batches.append(
        {"seq": e.seq, "agency_id": agency, "signer": e.actor, "root": r["root"], "count": r["count"],
         "file_hash": r["file_hash"], "entry_hash": e.entry_hash, "block_number": e.block_number,
         "block_time": e.block_time, "tx_hash": e.tx_hash, "log_index": e.log_index,
         "block_hash": e.block_hash, "running_hash": running_hash,
         "withheld": None if withheld is None else withheld.kind,
         "withheld_reason": None if withheld is None else withheld.reason}
    )
    if withheld is None:
        assert isinstance(content, BatchContent) and e.block_time is not None
        proof = (e.block_number, e.block_hash, e.block_time, e.tx_hash, e.log_index)
        _batched_rows(e.seq, agency, e.agency_id, e.actor, running_hash, proof, content, rows.entries,
                      rows.events, rows.new_events, rows.answers)


def _governance_rows(e: DecodedEntry, agency: str, rows: _RangeRows, caches: Caches) -> None:
    """The rows of an entry that is neither a case entry nor a correction: agencies, signers, auditors,
    attestations, commitments, retirements and calendars (the facts the fold mirrors in `caches` kept current)."""
    r = e.record
    kind = e.kind
    per_kind = rows.per_kind
    if kind == EntryKind.AGENCY_REGISTERED:
        jurisdiction = code_text(r["jurisdiction"])
        caches.jurisdiction[agency] = jurisdiction
        per_kind.setdefault(agencies, []).append(
            {"agency_id": agency, "jurisdiction": jurisdiction, "name_zh": display_text(r["name_zh"]),
             "name_en": display_text(r["name_en"]), "seq": e.seq}
        )
    elif kind in (EntryKind.SIGNER_AUTHORIZED, EntryKind.SIGNER_REVOKED):
        per_kind.setdefault(signer_changes, []).append(
            {"seq": e.seq, "agency_id": agency, "signer": e.signer,
             "authorized": kind == EntryKind.SIGNER_AUTHORIZED}
        )
    elif kind == EntryKind.AUDIT_ATTESTED:
        # the entry's actor is the auditor key that signed it (the contract checked the signature)
        per_kind.setdefault(attestations, []).append(
            {"seq": e.seq, "auditor": e.actor, "block_number": r["block_number"],
             "block_hash": r["block_hash"], "entry_count": r["entry_count"],
             "running_hash": r["running_hash"], "report_hash": r["report_hash"], "verdict": r["verdict"],
             "findings": r["findings"], "recorded_block": e.block_number, "recorded_at": e.block_time,
             "tx_hash": e.tx_hash, "matches_ledger": None}
        )
    elif kind == EntryKind.AUDITOR_AUTHORIZED:
        per_kind.setdefault(auditors, []).append({"seq": e.seq, "auditor": e.signer, "revoked_seq": None})
    elif kind == EntryKind.AUDITOR_REVOKED:
        rows.auditor_revocations.append((e.seq, e.signer))
    elif kind == EntryKind.COMMITMENT_PUBLISHED:
        commitment = code_text(r["commitment_id"])
        assert e.version is not None
        per_kind.setdefault(commitments, []).append(
            {
                "agency_id": agency, "commitment_id": commitment, "version": e.version,
                "service_code": code_text(r["service_code"]), "name_zh": display_text(r["name_zh"]),
                "name_en": display_text(r["name_en"]), "deadline": r["deadline"],
                "deadline_unit": r["deadline_unit"], "target_bps": r["target_bps"],
                "valid_from": r["valid_from"], "terms_hash": r["terms_hash"], "occurred_at": r["occurred_at"],
                "seq": e.seq, "retired_seq": None,
            }
        )
        caches.versions.setdefault((agency, commitment), []).append(
            CommitmentVersion(e.version, e.seq, r["deadline"], r["deadline_unit"])
        )
    elif kind == EntryKind.COMMITMENT_RETIRED:
        commitment = code_text(r["commitment_id"])
        per_kind.setdefault(commitment_retirements, []).append(
            {"seq": e.seq, "agency_id": agency, "commitment_id": commitment,
             "reason_hash": r["reason_hash"], "occurred_at": r["occurred_at"]}
        )
        rows.retirements.append((e.seq, agency, commitment))
    elif kind == EntryKind.HOLIDAY_CALENDAR_PUBLISHED:
        assert e.jurisdiction is not None and e.version is not None
        jurisdiction = code_text(e.jurisdiction)
        per_kind.setdefault(holiday_calendars, []).append(
            {
                "jurisdiction": jurisdiction, "year": r["year"], "version": e.version, "agency_id": agency,
                "holidays": _days_json(r["holidays"]), "workdays": _days_json(r["workdays"]),
                "occurred_at": r["occurred_at"], "seq": e.seq,
            }
        )
        if e.version > caches.calendar_versions.get((jurisdiction, r["year"]), 0):
            caches.calendar_versions[(jurisdiction, r["year"])] = e.version
            caches.calendars.setdefault(jurisdiction, {})[r["year"]] = YearCalendar.of(
                r["year"], r["holidays"], r["workdays"]
            )
            rows.changed_years.add((jurisdiction, r["year"]))


def _cases_written(conn: Connection, rows: _RangeRows) -> set[tuple[str, bytes]]:
    """The cases whose rows a range's entries change: those of its case events, receipts, ratings and disputes, of
    the case events its corrections aim at, and those its filings' acceptances open."""
    # every case event written counts in the figures, a batched one its case's fold leaves out included
    keys = {*rows.new_events, *rows.new_feedback, *((row[1], bytes(row[2])) for row in rows.events)}
    targets = [int(e.record["target_seq"]) for e in rows.corrections]
    for chunk in chunks(targets):
        keys.update((row.agency_id, bytes(row.case_id)) for row in conn.execute(
            select(case_events.c.agency_id, case_events.c.case_id).where(case_events.c.seq.in_(chunk))))
    keys.update((code_text(e.agency_id), e.record["case_id"]) for e in rows.filing_answers
                if e.record["decision"] == FilingDecision.ACCEPTED)
    return keys


def _filings_written(rows: _RangeRows) -> set[int]:
    """The filings a range records or answers."""
    recorded = {int(row["seq"]) for row in rows.per_kind.get(filings, ())}
    return recorded | {int(e.record["filing_seq"]) for e in rows.filing_answers}


def _apply_corrections(conn: Connection, found: list[DecodedEntry]) -> set[tuple[str, bytes]]:
    """Void the targets (in seq order, each seeing the voids before it); returns the cases to re-fold."""
    refold: set[tuple[str, bytes]] = set()
    rows = []
    for e in found:
        agency, target = code_text(e.agency_id), int(e.record["target_seq"])
        row = conn.execute(
            select(entries.c.agency_id, entries.c.kind, entries.c.voided_by, case_events.c.action)
            .select_from(entries.outerjoin(case_events, case_events.c.seq == entries.c.seq))
            .where(entries.c.seq == target)
        ).first()
        target_entry = None if row is None else (row.agency_id, row.kind, row.action)
        applied = correction_applies(agency, target_entry, row is not None and row.voided_by is not None)
        if row is not None and applied:
            conn.execute(update(entries).where(entries.c.seq == target).values(voided_by=e.seq))
            if row.kind == EntryKind.CASE_EVENT:
                case = conn.execute(
                    select(case_events.c.agency_id, case_events.c.case_id).where(case_events.c.seq == target)
                ).one()
                refold.add((case.agency_id, bytes(case.case_id)))
        rows.append(
            {"seq": e.seq, "agency_id": agency, "target_seq": target, "reason_hash": e.record["reason_hash"],
             "occurred_at": e.record["occurred_at"], "applied": applied}
        )
    conn.execute(insert(corrections), rows)
    return refold


def _void_released(conn: Connection, first: int, count: int, agency: str) -> None:
    """Apply the corrections aimed at the entries of a batch released now (they were refused while it was
    withheld), by the one rule (``ledger.cases.voided_entries``): every such correction comes after the batch."""
    c = corrections.c
    found = conn.execute(
        select(c.seq, c.agency_id, c.target_seq)
        .where(c.target_seq >= first, c.target_seq < first + count)
        .order_by(c.seq)
    ).all()
    if not found:
        return
    actions = {row.seq: row.action for row in conn.execute(  # the batch's events are written by now
        select(case_events.c.seq, case_events.c.action)
        .where(case_events.c.seq >= first, case_events.c.seq < first + count)
    )}
    log_order: list[tuple[int, Any, int | None, int, int | None]] = [
        (seq, agency, None, int(EntryKind.CASE_EVENT), actions.get(seq)) for seq in range(first, first + count)
    ]
    log_order += [(int(r.seq), r.agency_id, int(r.target_seq), int(EntryKind.CORRECTION), None) for r in found]
    for target, by in voided_entries(log_order).items():
        conn.execute(update(entries).where(entries.c.seq == target).values(voided_by=by))
        conn.execute(update(corrections).where(c.seq == by).values(applied=True))


def settle_attestations(conn: Connection, indexed: int) -> None:
    """Decide ``matches_ledger`` of every attestation still undecided whose checkpoint the index has reached
    (``entry_count`` at most `indexed`, the entries the store holds): :func:`checkpoint_matches`."""
    a = attestations.c
    pending = conn.execute(
        select(a.seq, a.entry_count, a.block_number, a.running_hash)
        .where(a.matches_ledger.is_(None), a.entry_count <= indexed)
        .order_by(a.seq)
    ).all()
    for row in pending:
        matches = checkpoint_matches(conn, int(row.entry_count), int(row.block_number), bytes(row.running_hash))
        conn.execute(update(attestations).where(a.seq == row.seq).values(matches_ledger=matches))


def checkpoint_matches(conn: Connection, count: int, block_number: int, running_hash: bytes) -> bool:
    """Whether a checkpoint (``count`` entries, ``running_hash`` after them, at ``block_number``) is the ledger's as
    the index holds it: the running hash the index folded after exactly ``count`` entries is ``running_hash`` — a
    count inside a Merkle-anchored batch has none, since the contract adds a batch's entries at once —, and
    ``count`` is the ledger's entry count after block ``block_number`` (its entry ``count - 1`` in that block or an
    earlier one, its entry ``count`` in a later one). The index must hold at least ``count`` entries, and every
    block up to ``block_number``."""
    e, b = entries.c, batches.c
    if count == 0:
        head = ZERO_HEAD
        last_block = -1
    else:
        # after a batch (withheld or not: its row has the head after it), or after an entry written on its own
        found = conn.execute(
            select(b.running_hash, b.block_number).where(b.seq + b.count == count)
        ).first() or conn.execute(
            select(e.running_hash, e.block_number).where(e.seq == count - 1, e.batch_seq.is_(None))
        ).first()
        if found is None:
            return False  # inside a batch: the ledger never had that count
        head, last_block = bytes(found[0]), int(found[1])
    following = conn.execute(select(e.block_number).where(e.seq == count)).scalar()
    if following is None:  # the next entry may be in a withheld batch, which has no entry rows
        following = conn.execute(select(b.block_number).where(b.seq == count)).scalar()
    return head == running_hash and last_block <= block_number and (following is None or following > block_number)


def _batched_rows(
    first: int,
    agency: str,
    agency_word: bytes,
    actor: str,
    running_hash: bytes,
    proof: tuple[int, bytes, int, bytes, int],
    content: BatchContent,
    entry_rows: list[tuple[Any, ...]],
    event_rows: list[tuple[Any, ...]],
    new_events: dict[tuple[str, bytes], list[Event]],
    answers: list[tuple[int, str, bytes, int, int]],
) -> None:
    """The rows of a batch's events (entries ``first`` on): each an entry of kind CASE_EVENT like one written alone
    (agency and actor of the anchor, its own record hash and entry hash), with the anchoring transaction as its proof
    (``proof``: block number, block hash, block time, tx hash, log index), the running hash after the batch, and its
    place in the batch; plus its case_events row and, when it applies to its case (``batched_event_applies``), what the
    case fold needs."""
    block_time = proof[2]
    opened, answering = CaseAction.OPENED, ANSWERS
    case_kind = int(EntryKind.CASE_EVENT)
    entry_hashes = entry_hashes_in_order(first, case_kind, agency_word, actor, content.record_hashes)
    for index, ((case_id, action, at, commitment, district, channel, details), record_hash, entry_hash) in enumerate(
        zip(content.events, content.record_hashes, entry_hashes, strict=True)
    ):
        seq = first + index
        entry_rows.append(
            (seq, case_kind, agency, actor, record_hash, entry_hash, running_hash, *proof, at, None, first, index)
        )
        if action == opened:
            event = Event(seq, action, at, code_text(commitment), code_text(district), channel)
            event_rows.append((seq, agency, case_id, action, at, block_time, details, event.commitment_id,
                               event.district, channel))
        else:
            event = Event(seq, action, at)
            event_rows.append((seq, agency, case_id, action, at, block_time, details, None, None, None))
        if not batched_event_applies(case_id):
            continue  # on the ledger, never folded into its case (a receipt case: ledger.cases)
        if action in answering:
            answers.append((seq, agency, case_id, action, block_time))
        found = new_events.get((agency, case_id))
        if found is None:
            new_events[(agency, case_id)] = [event]
        else:
            found.append(event)


def _code_word(code: str) -> bytes:
    """A code's bytes32 from its text in the index (the inverse of ``ledger.encoding.code_text``)."""
    if len(code) == 66 and code.startswith("0x"):
        return bytes.fromhex(code[2:])
    return code.encode("ascii").ljust(32, b"\0")


def _days_json(days: Iterable[int]) -> str:
    return json.dumps([int(d) for d in days], separators=(",", ":"))

def fill_key_origins(conn: Connection, first_seq: int) -> None:
    """Store the key origin of the ratings and disputes from `first_seq` on that have none yet
    (``ledger.metrics.key_origin_sql``: from the receipts rows before each, so those must be written first). A key's
    binding before a rating never changes (no receipt, claim or filing answer can be voided), so it is worked out
    once."""
    for table in (ratings, disputes):
        conn.execute(
            update(table)
            .where(table.c.seq >= first_seq, table.c.key_origin.is_(None))
            .values(key_origin=key_origin_sql(table))
        )

