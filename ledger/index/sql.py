"""The index's hot-path SQL: the statements the projection (:mod:`ledger.index.project`) and the case fold
(:mod:`ledger.index.cases`) run for every range, compiled once for the store's dialect as plain DBAPI statements; the
column order of the rows they take; and the chunked selection of cases by key.

Only statement text and SQLAlchemy clauses: nothing here opens a connection or runs a query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ledger.cases import CASE_STATE_FIELDS
from ledger.store.schema import case_events, cases, disputes, entries, ratings, receipts

#: rows per statement when selecting by a list of keys (well under SQLite's and PostgreSQL's parameter limits)
_CHUNK = 400

ENTRY_COLUMNS = (
    "seq", "kind", "agency_id", "actor", "record_hash", "entry_hash", "running_hash", "block_number", "block_hash",
    "block_time", "tx_hash", "log_index", "occurred_at", "voided_by", "batch_seq", "batch_index",
)
EVENT_COLUMNS = (
    "seq", "agency_id", "case_id", "action", "occurred_at", "block_time", "details_hash", "commitment_id", "district",
    "channel",
)
CASE_COLUMNS = ("agency_id", "case_id", *CASE_STATE_FIELDS)
RECEIPT_COLUMNS = ("seq", "agency_id", "case_id", "receipt", "occurred_at", "block_time")
#: the key's origin (last column) is written as null and filled once the range's bindings are in (fill_key_origins)
RATING_COLUMNS = ("seq", "agency_id", "case_id", "score", "comment_hash", "receipt", "block_time", "key_origin")
DISPUTE_COLUMNS = (
    "seq", "agency_id", "case_id", "closure", "reason_hash", "receipt", "block_time", "answer_seq", "answer_action",
    "answered_at", "key_origin",
)


class Statements:
    """The hot path's SQL, as plain DBAPI statements: executemany with tuples skips SQLAlchemy's per-row parameter
    processing, which otherwise costs more than everything else per entry."""

    def __init__(self, dialect: Any) -> None:
        ph = "?" if dialect.paramstyle == "qmark" else "%s"
        q = dialect.identifier_preparer.quote

        def insert_sql(table: Any, columns: Sequence[str]) -> str:
            if set(columns) != set(table.columns.keys()):
                raise RuntimeError(f"{table.name}: the indexer's columns do not match the schema")
            return (
                f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in columns)}) "
                f"VALUES ({', '.join([ph] * len(columns))})"
            )

        self.insert_entries = insert_sql(entries, ENTRY_COLUMNS)
        self.insert_case_events = insert_sql(case_events, EVENT_COLUMNS)
        self.insert_cases = insert_sql(cases, CASE_COLUMNS)
        self.insert_receipts = insert_sql(receipts, RECEIPT_COLUMNS)
        self.insert_ratings = insert_sql(ratings, RATING_COLUMNS)
        self.insert_disputes = insert_sql(disputes, DISPUTE_COLUMNS)
        # A dispute's answer: the case's first Reopened or DisputeRejected event after it (ledger.cases).
        self.answer_disputes = (
            f"UPDATE {q(disputes.name)} SET {q('answer_seq')} = {ph}, {q('answer_action')} = {ph}, "
            f"{q('answered_at')} = {ph} WHERE {q('agency_id')} = {ph} AND {q('case_id')} = {ph} AND "
            f"{q('answer_seq')} IS NULL AND {q('seq')} < {ph}"
        )
        self.postgresql = dialect.name == "postgresql"
        #: table name -> (PostgreSQL, SQLite) statement: which of these cases have rows in the table before a seq
        self.rows_before: dict[str, tuple[str, str]] = {}
        for table in (case_events, receipts):
            before = (
                f"SELECT DISTINCT {q('case_id')} FROM {q(table.name)} WHERE {q('agency_id')} = {ph} AND "
                f"{q('case_id')} {{}} AND {q('seq')} < {ph}"
            )
            # PostgreSQL: one array parameter; SQLite: a list of them, filled in per chunk
            self.rows_before[table.name] = (before.format(f"= ANY({ph})"), before.format("IN ({})"))
        self.update_cases = (
            f"UPDATE {q(cases.name)} SET {', '.join(f'{q(c)} = {ph}' for c in CASE_STATE_FIELDS)} "
            f"WHERE {q('agency_id')} = {ph} AND {q('case_id')} = {ph}"
        )


def case_filters(agency_column: Any, case_column: Any, keys: Iterable[tuple[str, bytes]]) -> Iterator[Any]:
    """WHERE clauses selecting cases by (agency, case id), one agency and a chunk of ids at a time: unlike a
    row-value IN, ``agency_id = ? AND case_id IN (…)`` uses the (agency_id, case_id, …) index on SQLite."""
    by_agency: dict[str, list[bytes]] = {}
    for agency, case_id in keys:
        by_agency.setdefault(agency, []).append(case_id)
    for agency in sorted(by_agency):
        for chunk in chunks(by_agency[agency]):
            yield (agency_column == agency) & case_column.in_(chunk)


def chunks(items: Sequence[Any] | Iterable[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]

