"""Tables of the index. Every row is derived from chain events (plus block hashes and times) and nothing else,
so dropping the store and re-syncing gives the same rows.

Conventions: codes (agency, commitment, district, service, jurisdiction) are decoded ASCII text; opaque 32-byte
values (case ids, hashes) are binary; addresses are checksummed text; times are unix seconds (BigInteger), never
database datetimes, so SQLite and PostgreSQL hold and compare identical values.

A code on chain is any non-zero bytes32: the contract does not check that it is ASCII. One that is not 1 to 32
printable ASCII characters right-padded with zero bytes (what ``ledger.records.short_code`` makes) is stored as
``0x`` + 64 hex digits instead, so the mapping stays one-to-one and PostgreSQL never sees a NUL character; hence
``CODE`` is 66 characters wide. Free text (names) is stored as UTF-8 with invalid bytes and NULs replaced by
U+FFFD; its exact bytes are on chain and in the record hash.

An entry that belongs to no agency (the auditors' kinds: an auditor registered or revoked, an attestation) has the
zero bytes32 as its agency on chain; ``entries.agency_id`` holds it as any code is held, :data:`NO_AGENCY`, which no
agency can have (the contract refuses to register the zero id). The API shows it as null.

The one exception is ``index_leader``, the indexer's leader lease: which process may write the store now.

Migrations (``ledger/store/migrations``, Alembic) build exactly this schema; a test compares them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    case,
    event,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import Grouping

metadata = MetaData()

# ``batches.withheld`` holds ``ledger.batches.read.WITHHELD_MISSING`` (the indexer tries again at every sync) or
# ``WITHHELD_IMPOSSIBLE`` (never indexed), or NULL for a batch whose events are indexed.

#: width of a code column: 32 ASCII characters, or 0x + 64 hex digits for a bytes32 that is not a printable code
CODE = 66
#: ``entries.agency_id`` of an entry of no agency: the zero bytes32 written as a code (``ledger.encoding.code_text``)
NO_AGENCY = "0x" + "00" * 32

#: One row per indexed contract: where indexing stands, so it resumes after a restart.
sync_state = Table(
    "sync_state",
    metadata,
    Column("contract_address", String(42), primary_key=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("deploy_block", BigInteger, nullable=False),
    #: highest block whose events are all in the store (-1 before the first)
    Column("last_block", BigInteger, nullable=False),
    #: entries in the store, and the running hash over them (bytes24), as the contract computes it
    Column("entry_count", BigInteger, nullable=False),
    Column("running_hash", LargeBinary(24), nullable=False),
    #: set when indexing stopped on purpose (e.g. a reorg deeper than the confirmation depth); cleared by an operator
    Column("halted_reason", Text, nullable=True),
    #: highest block the indexer has reported final (head minus the confirmation depth when it was seen, never more
    #: than last_block, never decreasing): entries at or below it are final; a reorg reaching it halts indexing
    Column("finalized_block", BigInteger, nullable=False),
)

#: The indexer's leader lease (``ledger.index.leader``): at most one row, the indexer process allowed to write this
#: store now. The one table not derived from the chain: a re-sync does not give it back, nor needs to.
index_leader = Table(
    "index_leader",
    metadata,
    #: always 1 (``ledger.index.leader.LEASE_ID``): one leader per store
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    #: a random id of the holding indexer, new for each process; and where it runs (host name and process id)
    Column("holder", String(32), nullable=False),
    Column("label", String(128), nullable=False),
    #: when it took the lease, its last heartbeat, and when the lease ends without another (the holder's clock)
    Column("acquired_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

#: Hashes of recently indexed blocks, to notice a reorganisation and find the fork point.
blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

#: Every ledger entry, of every kind, with its proof (transaction, block, log index) and hashes.
entries = Table(
    "entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", SmallInteger, nullable=False),
    Column("agency_id", String(CODE), nullable=False),
    #: the agency key (or governance account) that authorised the entry
    Column("actor", String(42), nullable=False),
    Column("record_hash", LargeBinary(32), nullable=False),
    Column("entry_hash", LargeBinary(32), nullable=False),
    #: running hash after this entry (bytes24)
    Column("running_hash", LargeBinary(24), nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", LargeBinary(32), nullable=False),
    Column("block_time", BigInteger, nullable=False),
    Column("tx_hash", LargeBinary(32), nullable=False),
    Column("log_index", Integer, nullable=False),
    #: agency-claimed time (null for governance entries, which have none)
    Column("occurred_at", BigInteger, nullable=True),
    #: seq of the correction that voided this entry, if any
    Column("voided_by", BigInteger, nullable=True),
    #: for an entry of a Merkle-anchored batch (revision 0004): the batch's first seq and the entry's position in it.
    #: Its tx/block/log columns are the anchoring transaction's, and running_hash is the head after the batch.
    Column("batch_seq", BigInteger, nullable=True),
    Column("batch_index", Integer, nullable=True),
    Index("ix_entries_block", "block_number"),
    Index("ix_entries_agency_seq", "agency_id", "seq"),
    # The few voided entries, so metrics exclude them with a small lookup instead of a scan (revision 0002).
    Index(
        "ix_entries_voided",
        "seq",
        postgresql_where=text("voided_by IS NOT NULL"),
        sqlite_where=text("voided_by IS NOT NULL"),
    ),
)

agencies = Table(
    "agencies",
    metadata,
    Column("agency_id", String(CODE), primary_key=True),
    Column("jurisdiction", String(CODE), nullable=False),
    Column("name_zh", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("seq", BigInteger, ForeignKey("entries.seq"), nullable=False),
)

#: Key history: one row per authorisation or revocation, in order.
signer_changes = Table(
    "signer_changes",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("signer", String(42), nullable=False),
    Column("authorized", Boolean, nullable=False),
    Index("ix_signer_changes_signer", "signer"),
)

#: Every version of every commitment.
commitments = Table(
    "commitments",
    metadata,
    Column("agency_id", String(CODE), primary_key=True),
    Column("commitment_id", String(CODE), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("service_code", String(CODE), nullable=False),
    Column("name_zh", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    #: 1 calendar hours, 2 working days
    Column("deadline_unit", SmallInteger, nullable=False),
    Column("target_bps", Integer, nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("terms_hash", LargeBinary(32), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("seq", BigInteger, ForeignKey("entries.seq"), nullable=False, unique=True),
    #: seq of the retirement entry, set on every version of a retired commitment
    Column("retired_seq", BigInteger, nullable=True),
)

commitment_retirements = Table(
    "commitment_retirements",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("commitment_id", String(CODE), nullable=False),
    Column("reason_hash", LargeBinary(32), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
)

#: ledger.records.CaseAction.REOPENED (``ledger.cells`` checks it), for the index of reopenings
REOPENED_ACTION = 9

#: Every case event as recorded (voided ones included: see entries.voided_by).
case_events = Table(
    "case_events",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("case_id", LargeBinary(32), nullable=False),
    #: ledger.records.CaseAction
    Column("action", SmallInteger, nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("block_time", BigInteger, nullable=False),
    Column("details_hash", LargeBinary(32), nullable=False),
    #: intake fields, on Opened events only (null on the others): re-folding a case after a correction needs them
    Column("commitment_id", String(CODE), nullable=True),
    Column("district", String(CODE), nullable=True),
    Column("channel", SmallInteger, nullable=True),
    Index("ix_case_events_case", "agency_id", "case_id", "seq"),
    Index("ix_case_events_block_time", "block_time"),
    # the few reopenings by time (revision 0014): the one count of the parts of days read from the events themselves
    # (``ledger.cells``: the others are the points of their latencies)
    Index(
        "ix_case_events_reopened",
        "block_time",
        postgresql_where=text(f"action = {REOPENED_ACTION}"),
        sqlite_where=text(f"action = {REOPENED_ACTION}"),
    ),
)

#: One row per case: its state folded from its non-voided events by ledger.cases (the one definition).
cases = Table(
    "cases",
    metadata,
    Column("agency_id", String(CODE), primary_key=True),
    Column("case_id", LargeBinary(32), primary_key=True),
    Column("commitment_id", String(CODE), nullable=False),
    #: the commitment version in force when the case opened (latest version recorded before the Opened entry)
    Column("commitment_version", Integer, nullable=False),
    Column("district", String(CODE), nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("opened_seq", BigInteger, nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    #: open, on_hold, fulfilled, rejected, withdrawn
    Column("status", String(16), nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    #: total seconds spent on hold (up to closing, or up to the last event while open)
    Column("hold_seconds", BigInteger, nullable=False),
    #: start of the current hold, while on hold
    Column("on_hold_since", BigInteger, nullable=True),
    #: when the case is due, hold time excluded (extended by completed holds); null if it cannot be computed
    #: (a working-day deadline without the jurisdiction's calendar for the years it spans)
    Column("due_at", BigInteger, nullable=True),
    #: seconds from opening to fulfilment minus hold time (fulfilled cases only)
    Column("fulfil_seconds", BigInteger, nullable=True),
    #: fulfilled by due_at (fulfilled cases with a due time only)
    Column("on_time", Boolean, nullable=True),
    Column("escalated", Boolean, nullable=False),
    #: number of events that broke the case state machine (the auditor reports them; the index keeps counting)
    Column("invalid_transitions", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    #: receipt key address when the case was issued a receipt (revision 0003), else null
    Column("receipt", String(42), nullable=True),
    #: the receipt holder's rating 1-5 and its entry's block time (null when not rated)
    Column("rating", SmallInteger, nullable=True),
    Column("rated_at", BigInteger, nullable=True),
    #: disputes recorded, times the case was reopened, and whether a dispute awaits the agency's answer
    Column("disputes", Integer, nullable=False, server_default="0"),
    Column("reopened", Integer, nullable=False, server_default="0"),
    Column("dispute_open", Boolean, nullable=False, server_default=text("false")),
    #: the claimed time of the agency's first response (Accepted, OnHold, Fulfilled or Rejected), and when it was due
    #: (revision 0009; ``ledger.cases``, "Response")
    Column("responded_at", BigInteger, nullable=True),
    Column("response_due", BigInteger, nullable=True),
    #: the block time of the case's first dispute (revision 0009)
    Column("disputed_at", BigInteger, nullable=True),
    #: a bad rating's rectification: its claimed time, and when it is due (bad ratings only; revision 0009)
    Column("rectified_at", BigInteger, nullable=True),
    Column("rectification_due", BigInteger, nullable=True),
    #: the time the fold took for the case's last event: none is taken before its previous one (``ledger.cases``,
    #: "Times"; revision 0009)
    Column("last_at", BigInteger, nullable=False, server_default="0"),
    Index("ix_cases_commitment_opened", "agency_id", "commitment_id", "opened_at"),
    Index("ix_cases_opened", "opened_at"),
    Index("ix_cases_closed", "closed_at"),
    Index("ix_cases_district", "district"),
    Index("ix_cases_channel", "channel"),
)

corrections = Table(
    "corrections",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("target_seq", BigInteger, nullable=False),
    Column("reason_hash", LargeBinary(32), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    #: whether it took effect: the target exists, belongs to the same agency, was not voided already and can be
    #: voided (``ledger.cases.unvoidable``: never a citizen's entry, a filing's answer or a case's Opened)
    Column("applied", Boolean, nullable=False),
)

holiday_calendars = Table(
    "holiday_calendars",
    metadata,
    Column("jurisdiction", String(CODE), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    #: JSON arrays of day numbers (days since 1970-01-01)
    Column("holidays", Text, nullable=False),
    Column("workdays", Text, nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("seq", BigInteger, ForeignKey("entries.seq"), nullable=False, unique=True),
)


#: Receipt keys issued to citizens (revision 0003): the public side only, never the secret.
receipts = Table(
    "receipts",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("case_id", LargeBinary(32), nullable=False),
    #: checksummed address of the receipt key; a citizen's page looks its case up by it
    Column("receipt", String(42), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("block_time", BigInteger, nullable=False),
    Index("ix_receipts_receipt", "receipt"),
    Index("ix_receipts_case", "agency_id", "case_id"),
)

#: Ratings by receipt holders (revision 0003), as recorded; the contract allows one per case.
ratings = Table(
    "ratings",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("case_id", LargeBinary(32), nullable=False),
    Column("score", SmallInteger, nullable=False),
    Column("comment_hash", LargeBinary(32), nullable=False),
    Column("receipt", String(42), nullable=False),
    Column("block_time", BigInteger, nullable=False),
    #: the origin of the key that signed it (``ledger.metrics``, "ratings_by_key_origin": filed, claimed,
    #: agency_issued), worked out once from the receipts rows before it when its range is written (revision 0009)
    Column("key_origin", String(16), nullable=True),
    Index("ix_ratings_case", "agency_id", "case_id"),
    Index("ix_ratings_block_time", "block_time"),
)

#: Disputes by receipt holders (revision 0003) and the agency's answer to each.
disputes = Table(
    "disputes",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("case_id", LargeBinary(32), nullable=False),
    #: which closure of the case is disputed (1 for the first)
    Column("closure", Integer, nullable=False),
    Column("reason_hash", LargeBinary(32), nullable=False),
    Column("receipt", String(42), nullable=False),
    Column("block_time", BigInteger, nullable=False),
    #: the agency's answering case event (Reopened or DisputeRejected): its seq, action and block time
    Column("answer_seq", BigInteger, nullable=True),
    Column("answer_action", SmallInteger, nullable=True),
    Column("answered_at", BigInteger, nullable=True),
    #: the origin of the key that signed it, as for ``ratings.key_origin`` (revision 0009)
    Column("key_origin", String(16), nullable=True),
    Index("ix_disputes_case", "agency_id", "case_id"),
    Index("ix_disputes_block_time", "block_time"),
)


#: Merkle-anchored batches (revision 0004): one row per anchoring; the batch's entries are rows of ``entries``
#: (seq to seq + count - 1) rebuilt from the published batch file, checked against root, count and file hash.
#: A batch whose file cannot be read is withheld (revision 0005): its row is written all the same, with ``withheld``
#: saying why, and no ``entries`` rows for its seqs.
batches = Table(
    "batches",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("signer", String(42), nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("file_hash", LargeBinary(32), nullable=False),
    #: the batch's own entry hash, folded into the running hash once for all its entries
    Column("entry_hash", LargeBinary(32), nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_time", BigInteger, nullable=False),
    Column("tx_hash", LargeBinary(32), nullable=False),
    Column("log_index", Integer, nullable=False),
    #: the anchoring block's hash and the running hash after the batch (revision 0005: a withheld batch has no
    #: entries to take them from)
    Column("block_hash", LargeBinary(32), nullable=False),
    Column("running_hash", LargeBinary(24), nullable=False),
    #: null: the batch's entries are indexed. Else why they are not: ``missing`` (no file with the anchored hash is
    #: published yet; tried again at every sync) or ``impossible`` (the file with the anchored hash does not match the
    #: anchor's count or root, or is malformed: since a file is fixed by its hash, withheld for ever)
    Column("withheld", String(16), nullable=True),
    #: the indexer's words for what is wrong (null when not withheld)
    Column("withheld_reason", Text, nullable=True),
    Index("ix_batches_block", "block_number"),
    Index("ix_batches_withheld", "withheld", "agency_id"),
)


#: Citizens' filings (revision 0007): one row per FilingRecorded entry, with the agency's answer once it is recorded
#: (``answer_seq``: its FilingAnswered entry; ``decision``: ``ledger.records.FilingDecision``; ``case_id``: the case an
#: acceptance opened, ``ledger.records.filed_case_id``). ``block_time`` is the filing's block time: the clock of the
#: case it opens starts there. Hashes and public codes only, as on chain: the filing's content stays in the service's
#: private store. ``relayer`` is who submitted the transaction (not signed by the citizen). ``filed_case_id``
#: (revision 0008) is ``filed_case_id(seq)`` for every filing, answered or not: the id of the case an acceptance would
#: open, which Open311 gives a request filed here from the start, so that id finds the filing before any answer.
filings = Table(
    "filings",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("agency_id", String(CODE), nullable=False),
    Column("commitment_id", String(CODE), nullable=False),
    Column("district", String(CODE), nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("content_hash", LargeBinary(32), nullable=False),
    Column("receipt", String(42), nullable=False),
    Column("relayer", String(42), nullable=False),
    Column("block_time", BigInteger, nullable=False),
    #: when the answer is due (``ledger.filings.answer_due``, by the jurisdiction's latest calendars: recomputed when
    #: one is published)
    Column("answer_due", BigInteger, nullable=False),
    Column("answer_seq", BigInteger, nullable=True),
    Column("decision", SmallInteger, nullable=True),
    Column("case_id", LargeBinary(32), nullable=True),
    Column("duplicate_of", LargeBinary(32), nullable=True),
    Column("reason_hash", LargeBinary(32), nullable=True),
    Column("answered_at", BigInteger, nullable=True),
    Column("filed_case_id", LargeBinary(32), nullable=False),
    # an agency's filings, unanswered first (answer_seq NULL sorts first in SQLite, last in PostgreSQL: either way
    # the lookup "its unanswered filings" is a range of this index)
    Index("ix_filings_agency", "agency_id", "answer_seq", "seq"),
    Index("ix_filings_receipt", "receipt"),
    Index("ix_filings_filed_case_id", "filed_case_id", unique=True),
)


#: Auditor keys (revision 0006): one row per registration — governance's AuditorAuthorized entry (``seq``) — with the
#: AuditorRevoked entry that ended it (``revoked_seq``), if any. An auditor is registered now when it has a row without
#: a revocation (at most one: the contract refuses to register a registered key). A key revoked and registered again
#: has a row per registration, so a reorganisation can take back either without losing the other.
auditors = Table(
    "auditors",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("auditor", String(42), nullable=False),
    Column("revoked_seq", BigInteger, nullable=True),
    Index("ix_auditors_auditor", "auditor", "seq"),
)

#: Attestations (revision 0006): an auditor's signed checkpoint of the whole ledger, one row per AuditAttested entry,
#: the checkpoint's fields as recorded. ``recorded_block``, ``recorded_at`` and ``tx_hash`` are where the attestation
#: entry itself is (its block, that block's time, its transaction). ``matches_ledger`` is the index's verdict on the
#: checkpoint (``ledger.index.project``): true when the index's own running hash after ``entry_count`` entries is
#: ``running_hash`` and ``entry_count`` is the ledger's count at ``block_number``; false otherwise — the contract
#: checks the signature, the block hash and that the count is not beyond the ledger's, not the running hash, so an
#: auditor can sign any; null while the index has not got that many entries (never, in practice: the contract refuses
#: a count beyond the ledger's at recording).
attestations = Table(
    "attestations",
    metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("auditor", String(42), nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", LargeBinary(32), nullable=False),
    Column("entry_count", BigInteger, nullable=False),
    Column("running_hash", LargeBinary(24), nullable=False),
    Column("report_hash", LargeBinary(32), nullable=False),
    #: ledger.records.AuditVerdict: 1 passed, 2 failed
    Column("verdict", SmallInteger, nullable=False),
    #: a uint32 on chain
    Column("findings", BigInteger, nullable=False),
    Column("recorded_block", BigInteger, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("tx_hash", LargeBinary(32), nullable=False),
    Column("matches_ledger", Boolean, nullable=True),
    Index("ix_attestations_auditor", "auditor", "seq"),
    Index("ix_attestations_report", "report_hash"),
    # the undecided ones (none, in practice), looked for at every range written
    Index(
        "ix_attestations_undecided",
        "seq",
        postgresql_where=text("matches_ledger IS NULL"),
        sqlite_where=text("matches_ledger IS NULL"),
    ),
)


# --- the times the figures count by (``ledger.cells``), each indexed: the part of a day before a boundary of a
# selection is read from the rows as an index range


def _greatest(a: Any, b: Any) -> Any:
    """The greater of two times (null when either is: portable, SQLite has no GREATEST)."""
    return case((a > b, a), else_=b)


def _least(a: Any, b: Any) -> Any:
    """The lesser of two times, `b` when `a` is null (SQLite has no LEAST)."""
    return case((and_(a.is_not(None), a < b), a), else_=b)


_cc, _dc, _fc = cases.c, disputes.c, filings.c
#: name -> a time that is not a column: when an open case became overdue (due time and opening passed); when its
#: response was judged (given, or its time passed); when a bad rating's rectification was judged; when a rectified
#: bad rating was both rated and rectified; when a dispute's answer fell due (``ledger.cases.DISPUTE_RESPONSE_WINDOW``,
#: written out so that the index's expression and the query's are the same text); when a filing's answer was overdue
FIGURE_TIMES: dict[str, Any] = {
    "overdue_from": _greatest(_cc.opened_at, _cc.due_at),
    "response_judged": _least(_cc.responded_at, _cc.response_due),
    "rectification_judged": _greatest(_cc.rated_at, _least(_cc.rectified_at, _cc.rectification_due)),
    "rectified_rated": _greatest(_cc.rated_at, _cc.rectified_at),
    "dispute_answer_due": _dc.block_time + literal_column("864000"),
    "filing_overdue_from": _greatest(_fc.block_time, _fc.answer_due),
}
#: the figures with two times, a case's (``ledger.cells``, "tallies"): name -> (the time the range is on, the time
#: as_of is compared with)
SPANS: dict[str, tuple[Any, Any]] = {
    "rated": (_cc.closed_at, _cc.rated_at),
    "resolved": (_cc.closed_at, _cc.disputed_at),
    "responses": (_cc.opened_at, FIGURE_TIMES["response_judged"]),
    "responded": (_cc.opened_at, _cc.responded_at),
    "rectifications": (_cc.rated_at, FIGURE_TIMES["rectification_judged"]),
    "rectified": (_cc.rated_at, FIGURE_TIMES["rectified_rated"]),
}


def span_range(name: str) -> Any:
    """PostgreSQL: the range ``[t1, t2)`` of a case's two times for `name` when ``t1 <= t2`` (else null), which a GiST
    index finds by containment: the marks spanning an interval, however long ago (``ledger.cells``). Half-open, so no
    bound is ever moved by one (a time may be the largest BIGINT)."""
    t1, t2 = SPANS[name]
    return case((t1 <= t2, func.int8range(t1, t2, literal_column("'[)'"))), else_=None)


def span_gap(name: str) -> Any:
    """``t2 - t1`` of a case's two times for `name`: negative for its *disordered* marks (``t2 < t1``: rated before
    closing, answered before opening...), which ``ledger.cells`` counts from the rows. They are few, and a partial index
    holds them alone (:data:`GAP_INDEXES`); on PostgreSQL statistics on the gap (:data:`STATISTICS`) tell the
    planner how few, which it cannot guess from ``t2 < t1`` (it takes a third of the table and scans the whole time's
    index instead: 0.3 s at 1,000,000 cases, against 0.03 ms). Times are never negative, so the difference never
    overflows."""
    t1, t2 = SPANS[name]
    return t2 - t1


#: the disordered marks of each two-time figure, by ``t2`` (``span_gap``)
GAP_INDEXES = tuple(
    Index(f"ix_figure_gap_{name}", t2 if isinstance(t2, Column) else Grouping(t2),
          postgresql_where=span_gap(name) < 0, sqlite_where=span_gap(name) < 0)
    for name, (_, t2) in SPANS.items()
)


def _statistics() -> list[str]:
    out = []
    for name in SPANS:
        expression = span_gap(name).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        out.append(f"CREATE STATISTICS IF NOT EXISTS st_figure_gap_{name} ON (({expression})) FROM cases"
                   .replace("cases.", ""))
    # a commitment belongs to one agency: without this PostgreSQL multiplies the two selectivities and takes an
    # agency's commitment for 50 times rarer than it is (then reads its every case to find one day's events)
    out.append("CREATE STATISTICS IF NOT EXISTS st_cases_place (dependencies, mcv) ON agency_id, commitment_id "
               "FROM cases")
    return out


#: PostgreSQL's extended statistics the figures' plans need: on each span's gap (on an expression: PostgreSQL 14 or
#: newer), and on a case's agency and commitment together; ANALYZE fills them
STATISTICS = _statistics()


def create_statistics(conn: Any) -> None:
    """Create :data:`STATISTICS` (PostgreSQL; nothing elsewhere), as the ``cases`` table's creation does."""
    if conn.dialect.name == "postgresql":
        for statement in STATISTICS:
            conn.execute(text(statement))


event.listen(cases, "after_create", lambda _table, connection, **_: create_statistics(connection))


FIGURE_INDEXES = (
    *(Index(f"ix_figure_time_span_{name}", Grouping(span_range(name)), postgresql_using="gist").ddl_if(
        dialect="postgresql") for name in SPANS),
    *(Index(f"ix_{table.name}_{column}", table.c[column]) for table, column in (
        (cases, "rated_at"), (cases, "responded_at"), (cases, "disputed_at"), (disputes, "answered_at"),
        (filings, "block_time"), (filings, "answered_at"),
    )),
    # an expression is indexed in parentheses of its own (PostgreSQL requires them)
    *(Index(f"ix_figure_time_{name}", Grouping(expression)) for name, expression in FIGURE_TIMES.items()),
)  # fmt: skip


#: the counters of ``figure_cells``, defined by ``ledger.cells`` (which checks this list names them, in order)
_TALLY_PARTS = ("all", "inf", "fin", "end")
CELL_COUNTERS: tuple[str, ...] = (
    "fulfilled", "rejected", "withdrawn", "on_time", "on_time_eligible", "late_rejections", "late_withdrawals",
    "answers_with_receipt", "bad_ratings", "score_1", "score_2", "score_3", "score_4", "score_5", "ratings_filed",
    "ratings_claimed", "ratings_agency_issued", "scores_filed", "scores_claimed", "scores_agency_issued", "disputes",
    "disputes_filed", "disputes_claimed", "disputes_agency_issued", "events", "late_recordings", "reopened", "filed",
    "filings_accepted", "filings_rejected", "filings_late",
    *(f"{tally}_{part}" for tally in ("open", "overdue", "rated", "resolved", "responses", "responded",
                                      "rectifications", "rectified", "unanswered", "filings_overdue")
      for part in _TALLY_PARTS),
)  # fmt: skip
#: the dimensions each cuboid of ``figure_cells`` is keyed by (a commitment only with its agency)
CUBOIDS: tuple[frozenset[str], ...] = tuple(
    frozenset(keyed)
    for keyed in (
        (), ("agency_id",), ("agency_id", "commitment_id"), ("district",), ("channel",), ("agency_id", "district"),
        ("agency_id", "channel"), ("district", "channel"), ("agency_id", "commitment_id", "district"),
        ("agency_id", "commitment_id", "channel"), ("agency_id", "district", "channel"),
        ("agency_id", "commitment_id", "district", "channel"),
    )
)


def _dimensions(primary_key: bool) -> list[Column[Any]]:
    """A mark's dimensions, as the figure tables hold them ('' or 0 where a cell is not keyed by one, or a mark's case
    has no row)."""
    return [
        Column("agency_id", String(CODE), primary_key=primary_key, nullable=False),
        Column("commitment_id", String(CODE), primary_key=primary_key, nullable=False),
        Column("district", String(CODE), primary_key=primary_key, nullable=False),
        Column("channel", SmallInteger, primary_key=primary_key, nullable=False),
    ]


def _cell_key() -> list[Column[Any]]:
    """The key of a cell: its cuboid, its dimensions ('' or 0 where the cuboid is not keyed by one), day (level 0) or
    32 days (level 1), and which of them."""
    return [
        Column("cuboid", SmallInteger, primary_key=True),
        *_dimensions(primary_key=True),
        Column("level", SmallInteger, primary_key=True),
        Column("period", BigInteger, primary_key=True),
    ]


#: the counts the figures are made of, per cuboid, key and day (level 0) or 32 days (level 1): ``ledger.cells``
#: defines them and ``ledger.index.cells`` keeps them (revision 0010). A cuboid's dimensions it is not keyed by hold
#: '' (the channel 0).
figure_cells = Table(
    "figure_cells",
    metadata,
    *_cell_key(),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in CELL_COUNTERS),
    # scorecards fix the district and channel and read every agency (commitment): by these, not by the key's order
    Index("ix_figure_cells_place", "cuboid", "district", "channel", "level", "period"),
)

#: the values the published percentiles are of (``ledger.cells.DISTRIBUTIONS``) that are not columns: a case event's
#: recording latency
FIGURE_VALUES: dict[str, Any] = {"latency": case_events.c.block_time - case_events.c.occurred_at}
#: how many values of each distribution fall in each bucket (``ledger.cells.bucket``), per cuboid, key and day
#: (level 0) or 32 days (level 1), as ``figure_cells`` counts marks
figure_values = Table(
    "figure_values",
    metadata,
    Column("distribution", SmallInteger, primary_key=True),
    *_cell_key(),
    Column("bucket", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
    # by place and period first (revision 0013): a selection reads one range of the key per range of periods, every
    # agency's and commitment's (scorecards group by them; a selection fixing them filters them out of a few rows);
    # on PostgreSQL the key includes the count, so a histogram is read from the key alone, not from the table's
    # pages, which the index writes scatter
    PrimaryKeyConstraint("distribution", "cuboid", "district", "channel", "level", "period", "agency_id",
                         "commitment_id", "bucket", postgresql_include=["n"]),
)

#: every value a percentile is of, how many times it occurs per bucket (``ledger.cells.bucket``), time and
#: dimensions (its case's: '' (0) for a mark whose case has no row, the agency its own): the exact value at a rank is
#: found among the points of the one bucket holding it, in the selection's time range, by the key alone (revision
#: 0013; on PostgreSQL the key includes the count, so no row is fetched)
figure_points = Table(
    "figure_points",
    metadata,
    Column("distribution", SmallInteger, nullable=False),
    Column("bucket", Integer, nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("value", BigInteger, nullable=False),
    *_dimensions(primary_key=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("distribution", "bucket", "time", "value", "agency_id", "commitment_id", "district",
                         "channel", postgresql_include=["n"]),
    # the parts of days at a selection's boundaries: every bucket's points in a time range (and their values: the
    # events and late recordings of those parts are counted from the points of the latencies; revision 0014)
    Index("ix_figure_points_time", "distribution", "time",
          postgresql_include=["bucket", "value", "agency_id", "commitment_id", "district", "channel", "n"]),
    # a commitment's points of one bucket in a time range (scorecards by commitment)
    Index("ix_figure_points_group", "distribution", "agency_id", "commitment_id", "bucket", "time",
          postgresql_include=["value", "district", "channel", "n"]),
)
