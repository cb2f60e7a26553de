"""Case folding in the index: the ``cases`` rows (and the disputes' answers) brought up to date with what a range, a
correction, a released batch or a rollback changed, in the caller's transaction.

Cases
    ``ledger.cases`` folds each case's non-voided events, with its receipts, ratings and disputes (rows of
    ``receipts``, ``ratings``, ``disputes``; the ``cases`` columns receipt, rating, rated_at, disputes, reopened,
    dispute_open). A case that gets new entries continues from its stored row (the same result as re-folding, see
    ``CaseProgress``), kept in a bounded in-memory cache of recently written rows so that most cases need no read;
    corrections, reorgs and cases without an Opened are re-folded from all their entries. A case with no
    non-voided Opened has no row. Only a case id with ``RECEIPT_CASE_FLAG`` can have a receipt (the contract sees
    to it), so only such cases cost a look at the receipt, rating and dispute tables. A batched event of such a case
    is never folded into it (``ledger.cases.batched_event_applies``).

Disputes
    A dispute's answer (``answer_seq``, ``answer_action``, ``answered_at``) is the case's first non-voided Reopened
    or DisputeRejected event after it (``ledger.cases.dispute_answers``), set when that event is indexed
    (:mod:`ledger.index.project`) and worked out again here whenever the case is re-folded.

Calendars
    A new holiday calendar version recomputes what calendars decide of the jurisdiction's cases that the year can
    affect (``ledger.cases.deadlines``: ``due_at``, ``on_time``, ``response_due``, ``rectification_due``).

What it touches: it writes ``cases`` rows and the answers of ``disputes`` rows, and reads the case events, entries,
receipts, ratings and disputes of the cases it folds, and the agencies, commitments and calendars it mirrors
(:class:`Caches`) — always in the caller's transaction, never a connection of its own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from ledger.cases import (
    ANSWERS,
    CASE_STATE_FIELDS,
    Answer,
    CaseProgress,
    CaseState,
    CommitmentVersion,
    Event,
    Feedback,
    batched_event_applies,
    deadlines,
    dispute_answers,
)
from ledger.filings import answer_due
from ledger.index import cells
from ledger.index.sql import Statements, case_filters, chunks
from ledger.records import RECEIPT_CASE_FLAG, EntryKind
from ledger.store.schema import (
    agencies,
    case_events,
    cases,
    commitments,
    disputes,
    entries,
    filings,
    holiday_calendars,
    ratings,
    receipts,
)
from ledger.workdays import YearCalendar, local_day_start, year_days

#: per-case tables other than case_events: receipts, ratings and disputes (each row one entry, keyed by seq)
FEEDBACK_TABLES = (receipts, ratings, disputes)

_UNKNOWN: Any = object()  # not in the case cache
_ORPHAN: Any = object()  # cached: the case has events but no row (no non-voided Opened)


@dataclass
class Caches:
    """Small, slowly changing facts every range needs, mirrored from the store (reloaded after a rollback)."""

    jurisdiction: dict[str, str] = field(default_factory=dict)  # agency → jurisdiction
    versions: dict[tuple[str, str], list[CommitmentVersion]] = field(default_factory=dict)  # by seq
    calendars: dict[str, dict[int, YearCalendar]] = field(default_factory=dict)  # jurisdiction → year → latest
    calendar_versions: dict[tuple[str, int], int] = field(default_factory=dict)

    def calendars_of(self, agency: str) -> dict[int, YearCalendar]:
        return self.calendars.get(self.jurisdiction.get(agency, ""), {})

    def versions_of(self, agency: str, commitment_id: Any) -> list[CommitmentVersion]:
        return self.versions.get((agency, commitment_id), [])


class CaseFolder:
    """Folds the cases of one store, and holds what that mirrors of the store: the :class:`Caches` and a bounded
    cache of the case rows written last. :meth:`forget` drops both (after a failed write or a rollback, or when
    another indexer wrote to the store)."""

    def __init__(self, sql: Statements, cache_size: int) -> None:
        self._sql = sql
        self._caches: Caches | None = None
        #: case rows as stored (or _ORPHAN), most recently written last: new events of a recent case need no read
        self.cache: dict[tuple[str, bytes], Any] = {}
        #: how many case rows the cache keeps
        self.cache_size = cache_size

    def forget(self) -> None:
        """Drop everything mirrored from the store (after a failed write or a rollback)."""
        self._caches = None
        self.cache.clear()

    def load_caches(self, conn: Connection) -> Caches:
        """The :class:`Caches`: as held, or read from the store through `conn` (and held until :meth:`forget`)."""
        if self._caches is not None:
            return self._caches
        caches = Caches()
        for agency_row in conn.execute(select(agencies.c.agency_id, agencies.c.jurisdiction)):
            caches.jurisdiction[agency_row.agency_id] = agency_row.jurisdiction
        for row in conn.execute(
            select(commitments.c.agency_id, commitments.c.commitment_id, commitments.c.version, commitments.c.seq,
                   commitments.c.deadline, commitments.c.deadline_unit).order_by(commitments.c.seq)
        ):
            caches.versions.setdefault((row.agency_id, row.commitment_id), []).append(
                CommitmentVersion(row.version, row.seq, row.deadline, row.deadline_unit)
            )
        for row in conn.execute(
            select(holiday_calendars).order_by(holiday_calendars.c.jurisdiction, holiday_calendars.c.year,
                                               holiday_calendars.c.version)
        ):
            caches.calendar_versions[(row.jurisdiction, row.year)] = row.version
            caches.calendars.setdefault(row.jurisdiction, {})[row.year] = YearCalendar.of(
                row.year, json.loads(row.holidays), json.loads(row.workdays)
            )
        self._caches = caches
        return caches

    def update(
        self,
        conn: Connection,
        new_events: dict[tuple[str, bytes], list[Event]],
        new_feedback: dict[tuple[str, bytes], list[Feedback]],
        refold: set[tuple[str, bytes]],
        caches: Caches,
        first_new_seq: int,
    ) -> None:
        """Bring the case rows of every case that got events, receipts, ratings or disputes (or lost events to
        corrections) up to date."""
        incremental = [key for key in new_events if key not in refold]
        incremental += [key for key in new_feedback if key not in refold and key not in new_events]
        cache = self.cache
        known: dict[tuple[str, bytes], CaseState | None] = {}
        unknown: list[tuple[str, bytes]] = []
        for key in incremental:
            found = cache.get(key, _UNKNOWN)
            if found is _UNKNOWN:
                unknown.append(key)
            elif found is _ORPHAN:
                refold.add(key)  # entries but no row: re-fold with the new ones
            else:
                known[key] = found
        # Not in the cache: a case with no earlier entry is new; one with earlier entries has a row to continue
        # from, or (entries before its Opened, or a voided Opened) none, and is re-folded from everything.
        seen_before = self._keys_with_entries_before(conn, unknown, first_new_seq)
        stored = self._load_cases(conn, seen_before)
        for key in unknown:
            if key not in seen_before:
                known[key] = None
            elif key in stored:
                known[key] = stored[key]
            else:
                refold.add(key)
        changes: list[tuple[tuple[str, bytes], CaseState | None, CaseState | None]] = []
        no_events: list[Event] = []
        for key, old in known.items():
            if key in refold:
                continue
            agency = key[0]
            progress = CaseProgress() if old is None else CaseProgress.from_state(old)
            feedback = new_feedback.get(key)
            if feedback is None:
                for event in new_events[key]:
                    progress.apply(event)
            else:
                progress.advance(new_events.get(key, no_events), feedback)
            new = progress.state(caches.versions_of(agency, progress.commitment_id), caches.calendars_of(agency))
            changes.append((key, old, new))
        self._write_cases(conn, changes)
        if refold:
            self.refold(conn, refold, caches)

    def _keys_with_entries_before(
        self, conn: Connection, keys: Sequence[tuple[str, bytes]], seq: int
    ) -> set[tuple[str, bytes]]:
        """Which of these cases have events — or, for a case id that can have a receipt, a receipt — with a smaller
        seq (plain SQL: this runs for every new case)."""
        found = self._keys_with_rows_before(conn, case_events.name, keys, seq)
        flagged = [key for key in keys if key[1][0] & RECEIPT_CASE_FLAG and key not in found]
        if flagged:
            # A rating or dispute needs the case's receipt first (the contract refuses it otherwise, and the chain's
            # running hash vouches for every entry indexed), so the receipts table is enough.
            found |= self._keys_with_rows_before(conn, receipts.name, flagged, seq)
        return found

    def _keys_with_rows_before(
        self, conn: Connection, table: str, keys: Sequence[tuple[str, bytes]], seq: int
    ) -> set[tuple[str, bytes]]:
        found: set[tuple[str, bytes]] = set()
        by_agency: dict[str, list[bytes]] = {}
        for agency, case_id in keys:
            by_agency.setdefault(agency, []).append(case_id)
        any_sql, in_sql = self._sql.rows_before[table]
        for agency, ids in sorted(by_agency.items()):
            for chunk in chunks(ids):
                if self._sql.postgresql:
                    sql, params = any_sql, (agency, chunk, seq)
                else:
                    sql = in_sql.format(", ".join("?" * len(chunk)))
                    params = (agency, *chunk, seq)
                found.update((agency, bytes(row[0])) for row in conn.exec_driver_sql(sql, params))
        return found

    def _load_cases(self, conn: Connection, keys: Iterable[tuple[str, bytes]]) -> dict[tuple[str, bytes], CaseState]:
        out: dict[tuple[str, bytes], CaseState] = {}
        for where in case_filters(cases.c.agency_id, cases.c.case_id, keys):
            for row in conn.execute(select(cases).where(where)).mappings():
                out[(row["agency_id"], bytes(row["case_id"]))] = CaseState(**{n: row[n] for n in CASE_STATE_FIELDS})
        return out

    def refold(self, conn: Connection, keys: Iterable[tuple[str, bytes]], caches: Caches) -> None:
        """Re-fold cases from all their non-voided events (but batched events that do not apply to their case) and
        their receipts, ratings and disputes in the store; rows appear, change or disappear. Their disputes' answers are
        worked out again too."""
        keys = sorted(set(keys))
        events: dict[tuple[str, bytes], list[Event]] = {key: [] for key in keys}
        answers: dict[tuple[str, bytes], list[Answer]] = {}
        c = case_events.c
        for where in case_filters(c.agency_id, c.case_id, keys):
            rows = conn.execute(
                select(c.seq, c.agency_id, c.case_id, c.action, c.occurred_at, c.commitment_id, c.district, c.channel,
                       c.block_time, entries.c.batch_seq)
                .join(entries, entries.c.seq == c.seq)
                .where(where)
                .where(entries.c.voided_by.is_(None))
                .order_by(c.seq)
            )
            for row in rows:
                key = (row.agency_id, bytes(row.case_id))
                if row.batch_seq is not None and not batched_event_applies(key[1]):
                    continue
                events[key].append(
                    Event(row.seq, row.action, row.occurred_at, row.commitment_id or "", row.district or "",
                          row.channel or 0)
                )
                if row.action in ANSWERS:
                    answers.setdefault(key, []).append(Answer(row.seq, row.action, row.block_time))
        feedback, dispute_rows = self._load_feedback(conn, keys)
        stored = self._load_cases(conn, keys)
        changes: list[tuple[tuple[str, bytes], CaseState | None, CaseState | None]] = []
        for key in keys:
            agency = key[0]
            progress = CaseProgress()
            progress.advance(events[key], feedback.get(key, ()))
            new = progress.state(caches.versions_of(agency, progress.commitment_id), caches.calendars_of(agency))
            changes.append((key, stored.get(key), new))
        self._write_cases(conn, changes, has_events={key for key in keys if events[key] or key in feedback})
        updates = []
        for key, case_disputes in dispute_rows.items():
            found = dispute_answers([seq for seq, _ in case_disputes], answers.get(key, ()))
            for seq, current in case_disputes:
                answer = found[seq]
                wanted = (None, None, None) if answer is None else tuple(answer)
                if wanted != current:
                    updates.append({"_seq": seq, "answer_seq": wanted[0], "answer_action": wanted[1],
                                    "answered_at": wanted[2]})
        if updates:
            conn.execute(update(disputes).where(disputes.c.seq == bindparam("_seq")), updates)

    def _load_feedback(
        self, conn: Connection, keys: Sequence[tuple[str, bytes]]
    ) -> tuple[dict[tuple[str, bytes], list[Feedback]], dict[tuple[str, bytes], list[tuple[int, tuple[Any, ...]]]]]:
        """The receipts, ratings and disputes of these cases (only case ids that can have a receipt have any), in
        seq order; and each case's disputes as (seq, its stored answer)."""
        flagged = [key for key in keys if key[1][0] & RECEIPT_CASE_FLAG]
        feedback: dict[tuple[str, bytes], list[Feedback]] = {}
        dispute_rows: dict[tuple[str, bytes], list[tuple[int, tuple[Any, ...]]]] = {}
        if not flagged:
            return feedback, dispute_rows
        kinds = {receipts.name: EntryKind.RECEIPT_ISSUED, ratings.name: EntryKind.CASE_RATED,
                 disputes.name: EntryKind.CASE_DISPUTED}
        for table in FEEDBACK_TABLES:
            t = table.c
            score = t.score if table is ratings else None
            answer = (t.answer_seq, t.answer_action, t.answered_at) if table is disputes else ()
            columns = [t.seq, t.agency_id, t.case_id, t.receipt, t.block_time, *([score] if score is not None else []),
                       *answer]
            for where in case_filters(t.agency_id, t.case_id, flagged):
                for row in conn.execute(select(*columns).where(where)):
                    key = (row.agency_id, bytes(row.case_id))
                    feedback.setdefault(key, []).append(Feedback(
                        row.seq, kinds[table.name], row.receipt, row.block_time,
                        row.score if score is not None else 0,
                    ))
                    if table is disputes:
                        dispute_rows.setdefault(key, []).append(
                            (row.seq, (row.answer_seq, row.answer_action, row.answered_at))
                        )
        for items in feedback.values():
            items.sort()
        for rows in dispute_rows.values():
            rows.sort()
        return feedback, dispute_rows

    def _write_cases(
        self,
        conn: Connection,
        changes: list[tuple[tuple[str, bytes], CaseState | None, CaseState | None]],
        has_events: set[tuple[str, bytes]] | None = None,
    ) -> None:
        """Store (key, old row, new row) changes, and mirror them in the case cache. A key without a new row is
        remembered as an orphan when it has events (always, unless `has_events` says otherwise)."""
        cells.before(conn, cases=[key for key, _, _ in changes])  # a no-op for a case its range announced already
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        deletes: list[tuple[str, bytes]] = []
        cache = self.cache
        for key, old, new in changes:
            if new is None:
                if old is not None:
                    deletes.append(key)
                cache.pop(key, None)
                if has_events is None or key in has_events:
                    cache[key] = _ORPHAN
                continue
            if old is None:
                inserts.append((*key, *new))
            elif new != old:
                updates.append((*new, *key))
            cache.pop(key, None)  # re-inserted at the end: the dict's order is least recently written first
            cache[key] = new
        if inserts:
            conn.exec_driver_sql(self._sql.insert_cases, inserts)
        if updates:
            conn.exec_driver_sql(self._sql.update_cases, updates)
        for where in case_filters(cases.c.agency_id, cases.c.case_id, deletes):
            conn.execute(delete(cases).where(where))
        excess = len(cache) - self.cache_size
        if excess > 0:
            for key in list(itertools.islice(cache, excess)):
                del cache[key]

    def recompute_due(self, conn: Connection, jurisdiction: str, year: int, caches: Caches) -> None:
        """A calendar of `year` changed: recompute due times of the jurisdiction's working-day cases it can affect
        (opened before the year ends, due — or without a due time — after it starts), and the answer due times of
        its agencies' filings it can affect (``ledger.filings.answer_due``)."""
        members = [a for a, j in caches.jurisdiction.items() if j == jurisdiction]
        if not members:
            return
        first, end = year_days(year)
        year_start, year_end = local_day_start(first), local_day_start(end)
        calendars = caches.calendars.get(jurisdiction, {})
        filing_updates = [
            {"_seq": row.seq, "answer_due": due}
            for row in conn.execute(
                select(filings.c.seq, filings.c.block_time, filings.c.answer_due)
                .where(filings.c.agency_id.in_(members), filings.c.block_time < year_end,
                       filings.c.answer_due >= year_start)
            )
            if (due := answer_due(row.block_time, calendars)) != row.answer_due
        ]
        if filing_updates:
            cells.before(conn, filing_seqs=[u["_seq"] for u in filing_updates])
            conn.execute(update(filings).where(filings.c.seq == bindparam("_seq")), filing_updates)
        updates = []
        c = cases.c
        # the cases whose counts of working days the year can reach: from the opening to the due time or the
        # response's, or from a bad rating to its rectification's (and any without a due time)
        reached = (
            ((c.due_at.is_(None)) | (c.due_at >= year_start) | (c.response_due >= year_start))
            | ((c.rated_at < year_end) & (c.rectification_due >= year_start))
        )
        rows = conn.execute(
            select(c.agency_id, c.case_id, c.commitment_id, c.commitment_version, c.opened_at, c.hold_seconds,
                   c.status, c.closed_at, c.rating, c.rated_at, c.due_at, c.on_time, c.response_due,
                   c.rectification_due)
            .where(c.agency_id.in_(members), c.opened_at < year_end, reached)
        )
        for row in rows:
            version = next(
                (v for v in caches.versions_of(row.agency_id, row.commitment_id)
                 if v.version == row.commitment_version),
                None,
            )
            wanted = deadlines(version, calendars, opened_at=row.opened_at, hold_seconds=row.hold_seconds,
                               status=row.status, closed_at=row.closed_at, rating=row.rating, rated_at=row.rated_at)
            if wanted != (row.due_at, row.on_time, row.response_due, row.rectification_due):
                updates.append({"_agency": row.agency_id, "_case": bytes(row.case_id), **wanted._asdict()})
        if updates:
            cells.before(conn, cases=[(u["_agency"], u["_case"]) for u in updates])
            conn.execute(
                update(cases).where(cases.c.agency_id == bindparam("_agency"), cases.c.case_id == bindparam("_case")),
                updates,
            )
            self.cache.clear()  # rare (a calendar changed): simpler than patching cached rows
