"""Read case events from CSV or JSON Lines files, row by row: every good row becomes a record, every bad row a
clear reason, and one bad row never stops the others.

Columns (CSV header or JSON keys): ``case`` (the agency's own case reference; turned into an opaque case id with
the agency's secret salt, so the reference never reaches the chain), ``action`` (opened, accepted, on_hold,
resumed, escalated, fulfilled, rejected, withdrawn), ``occurred_at`` (ISO 8601 with a zone, e.g.
2026-11-21T09:30:00+08:00), and for ``opened`` also ``commitment``, ``district``, ``channel`` (counter, hotline,
web, app, mail, proactive, or its number). Optional ``details``: free text, of which only the hash is recorded.
Optional ``receipt`` on an opened row (yes/no, true/false, 1/0): whether the citizen gets a receipt; when an import
issues receipts it defaults to yes, otherwise a "yes" is refused (there is nowhere to hand the code over).

``civic-ledger case import`` records the rows through the writer's outbox; ``civic-ledger batch submit`` reads the
same files and anchors them as Merkle batches (``ledger.batches``), which give no receipts.

Case ids (:class:`CaseIds`)
    A case id is HMAC-SHA256 of the reference under the agency's secret salt (:func:`case_id_for`), with its top bit
    (``ledger.records.RECEIPT_CASE_FLAG``) set when the case is opened with a receipt and cleared otherwise: the
    ledger tracks the state of flagged cases only (ratings and disputes depend on it), so a case without a receipt
    never pays for the feature. The same reference has two possible ids, so a later event (``case update``,
    ``case close``, ``case respond``, an import row) must know how its case was opened. :class:`CaseIds` decides, in
    this order:

    1. a reference opened earlier in the same run (an import's opened row before its later rows);
    2. the caller's memory of cases opened with a flagged id — the CLI passes the writer's outbox, which remembers
       every Opened event it sent with one (``Outbox.opened_with_receipt``), and then the ledger itself, which
       tracks every case that was issued a receipt (``receiptCase``), so a case opened at another desk, with another
       key, is found too; an import asks about all its references at once (:meth:`CaseIds.prefetch`);
    3. otherwise the id without the flag.

    One case is out of reach: opened with a receipt at another desk whose receipt is not on chain yet (still in
    that desk's outbox). Its later events here would get the id without the flag; send them once the receipt is in.

    Only case ids are remembered, never a reference (which may hold a name or a phone number). Before receipts
    existed every case kept the bare HMAC, top bit and all; the outbox took note of those openings when it was
    upgraded, so their references still find their cases through it.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ledger.encoding import keccak
from ledger.errors import InvalidRecord
from ledger.records import RECEIPT_CASE_FLAG, CaseAction, CaseEvent, Channel, filed_case_id, short_code

ACTIONS = {a.name.lower(): a for a in CaseAction}
CHANNELS = {c.name.lower(): int(c) for c in Channel}
KNOWN_COLUMNS = {"case", "action", "occurred_at", "commitment", "district", "channel", "details", "receipt"}
_YES = {"yes", "y", "true", "1"}
#: why a row asking for a receipt is refused by an import that issues none
NO_RECEIPTS = "receipt requested, but this import issues no receipts (give it a receipts directory)"
_NO = {"no", "n", "false", "0"}


def case_id_for(salt: bytes, agency_id: str, reference: str, *, receipt: bool = False) -> bytes:
    """Opaque case id: HMAC-SHA256 of the agency's case reference under the agency's secret salt, its top bit set
    for a case opened with a receipt and cleared for one without. Without the salt nobody can test guesses of a
    reference (which may contain a name or a phone number) against the chain."""
    if len(salt) < 16:
        raise InvalidRecord("the case-id salt must be at least 16 bytes")
    digest = hmac.new(salt, f"{agency_id}\0{reference}".encode(), hashlib.sha256).digest()
    return with_receipt_flag(digest) if receipt else without_receipt_flag(digest)


#: how a case reference names the case an accepted filing opened: ``filing:`` and the filing's seq
FILED_REFERENCE_PREFIX = "filing:"


def filed_seq(reference: str) -> int | None:
    """The filing seq a ``filing:SEQ`` reference names, or None for any other reference (an agency's own)."""
    if not reference.startswith(FILED_REFERENCE_PREFIX):
        return None
    number = reference[len(FILED_REFERENCE_PREFIX):]
    if not number.isdigit():
        raise InvalidRecord(f"case reference {reference!r}: a filed case is named filing:SEQ, SEQ the filing's seq")
    return int(number)


def filed_reference(reference: str) -> bytes | None:
    """The case id a ``filing:SEQ`` reference names, or None for any other reference (an agency's own)."""
    seq = filed_seq(reference)
    return None if seq is None else filed_case_id(seq)


def with_receipt_flag(case_id: bytes) -> bytes:
    """The case id with its top bit set (``RECEIPT_CASE_FLAG``)."""
    return bytes([case_id[0] | RECEIPT_CASE_FLAG]) + case_id[1:]


def without_receipt_flag(case_id: bytes) -> bytes:
    """The case id with its top bit cleared."""
    return bytes([case_id[0] & ~RECEIPT_CASE_FLAG & 0xFF]) + case_id[1:]


#: Given flagged case ids, the ones whose case was opened with that id (the caller's memory: outbox, ledger).
OpenedFlagged = Callable[[list[bytes]], set[bytes]]


class CaseIds:
    """Turns an agency's case references into case ids, opened with or without a receipt (see the module doc).

    `opened_flagged(ids)` answers, for flagged ids, which cases were opened with them. It is asked only about later
    events of references not opened in this run, once per reference: one by one, or all at once after
    :meth:`prefetch`.
    """

    def __init__(self, salt: bytes, agency_id: str, opened_flagged: OpenedFlagged | None = None) -> None:
        case_id_for(salt, agency_id, "")  # refuses a short salt up front
        self.salt = salt
        self.agency_id = agency_id
        self._ask = opened_flagged
        self._opened: dict[str, bytes] = {}  # reference -> id it was opened with in this run
        self._known: dict[str, bytes] = {}  # reference -> id of its earlier opening, as the memory says

    def opened(self, reference: str, *, receipt: bool) -> bytes:
        """The id a case opened now gets; later events of the reference in this run find it."""
        if filed_reference(reference) is not None:
            raise InvalidRecord(f"case {reference} is a filed case: it opens when its filing is accepted "
                                "(`intake accept`), not with an Opened event")
        case_id = case_id_for(self.salt, self.agency_id, reference, receipt=receipt)
        self._opened[reference] = case_id
        return case_id

    def existing(self, reference: str) -> bytes:
        """The id of a case opened before (in this run, or earlier through the caller's memory). A reference
        ``filing:SEQ`` names the case an accepted filing opened (:func:`ledger.records.filed_case_id`): its id comes
        from the filing, not from a reference of the agency's."""
        filed = filed_reference(reference)
        if filed is not None:
            return filed
        if reference in self._opened:
            return self._opened[reference]
        if reference not in self._known:
            self.prefetch([reference])
        return self._known[reference]

    def prefetch(self, references: Iterable[str]) -> None:
        """Ask the memory about many references at once (an import's, before its rows are read)."""
        todo = {r: case_id_for(self.salt, self.agency_id, r, receipt=True)
                for r in references
                if r not in self._opened and r not in self._known and not r.startswith(FILED_REFERENCE_PREFIX)}
        flagged = self._ask(list(todo.values())) if self._ask is not None and todo else set()
        for reference, case_id in todo.items():
            self._known[reference] = case_id if case_id in flagged else without_receipt_flag(case_id)


def references(path: Path) -> list[str]:
    """The case references of a .csv or .jsonl/.ndjson file's later events (rows other than opened) whose case is
    not opened earlier in the file, for :meth:`CaseIds.prefetch`: an import opening and closing the day's cases asks
    the memory about none of them. Rows that cannot be read are skipped (:func:`read_rows` reports them; a reference
    whose opened row is refused is asked about alone, when its later row is read)."""
    found: dict[str, None] = {}
    opened: set[str] = set()

    def take(raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        reference = str(raw.get("case") or "").strip()
        if not reference:
            return
        if str(raw.get("action") or "").strip().lower() == "opened":
            opened.add(reference)
        elif reference not in opened:
            found[reference] = None

    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for raw in csv.DictReader(handle):
                take(raw)
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for text in handle:
                try:
                    take(json.loads(text))
                except json.JSONDecodeError:
                    continue
    return list(found)


@dataclass(frozen=True)
class Row:
    """One input row: its line number, and either the record it gives or why it was refused. `receipt` marks an
    opened row whose citizen gets a receipt; `reference` is the agency's reference (never recorded on chain)."""

    line: int
    record: CaseEvent | None
    error: str | None
    receipt: bool = False
    reference: str | None = None


def read_rows(
    path: Path, *, agency_id: str, salt: bytes, case_ids: CaseIds | None = None, receipts: bool = False,
    no_receipts: str = NO_RECEIPTS,
) -> Iterator[Row]:
    """Rows of a .csv or .jsonl/.ndjson file, in order. `case_ids` resolves references (default: no memory, so every
    later event gets the id without the receipt flag); with `receipts`, opened rows get a receipt unless their
    ``receipt`` column says no; without, a row asking for one is refused with the reason `no_receipts`."""
    ids = case_ids or CaseIds(salt, agency_id)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return
            unknown = set(reader.fieldnames) - KNOWN_COLUMNS
            if unknown:
                raise InvalidRecord(
                    f"{path.name}: unknown column(s) {sorted(unknown)}; expected {sorted(KNOWN_COLUMNS)}"
                )
            for number, raw in enumerate(reader, start=2):
                yield parse_row(number, raw, agency_id=agency_id, salt=salt, case_ids=ids, receipts=receipts,
                                no_receipts=no_receipts)
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    raw = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield Row(number, None, f"not valid JSON: {exc.msg}")
                    continue
                if not isinstance(raw, dict):
                    yield Row(number, None, "each line must be a JSON object")
                    continue
                yield parse_row(number, raw, agency_id=agency_id, salt=salt, case_ids=ids, receipts=receipts,
                                no_receipts=no_receipts)
    else:
        raise InvalidRecord(f"{path.name}: expected a .csv, .jsonl or .ndjson file")


def parse_row(
    line: int,
    raw: dict[str, Any],
    *,
    agency_id: str,
    salt: bytes,
    case_ids: CaseIds | None = None,
    receipts: bool = False,
    no_receipts: str = NO_RECEIPTS,
) -> Row:
    ids = case_ids or CaseIds(salt, agency_id)
    try:
        record, receipt, reference = _record(raw, ids, receipts, no_receipts)
        return Row(line, record, None, receipt, reference)
    except (InvalidRecord, ValueError) as exc:
        return Row(line, None, _reason(exc))


def _record(raw: dict[str, Any], ids: CaseIds, receipts: bool, no_receipts: str) -> tuple[CaseEvent, bool, str]:
    unknown = set(raw) - KNOWN_COLUMNS
    if unknown:
        raise InvalidRecord(f"unknown field(s) {sorted(unknown)}")
    reference = _text(raw, "case")
    action_name = _text(raw, "action").lower()
    if action_name not in ACTIONS:
        raise InvalidRecord(f"action {action_name!r} is not one of {', '.join(ACTIONS)}")
    action = ACTIONS[action_name]
    fields: dict[str, Any] = {"action": action, "occurred_at": _text(raw, "occurred_at")}
    details = raw.get("details")
    if details not in (None, ""):
        fields["details_hash"] = _details_hash(str(details))
    receipt = False
    if action is CaseAction.OPENED:
        fields["commitment_id"] = short_code(_text(raw, "commitment"))
        fields["district"] = short_code(_text(raw, "district"))
        fields["channel"] = _channel(raw.get("channel"))
        receipt = _receipt(raw.get("receipt"), receipts, no_receipts)
    else:
        for name in ("commitment", "district", "channel", "receipt"):
            if raw.get(name) not in (None, ""):
                raise InvalidRecord(f"{name} belongs to the opened row only")
    # Validate everything before the id is chosen: a refused opened row must not decide its reference's id. The
    # id (an HMAC, 32 bytes, never zero) then replaces the placeholder without validating the event a second time.
    checked = CaseEvent(case_id=b"\x01" * 32, **fields)
    case_id = ids.opened(reference, receipt=receipt) if action is CaseAction.OPENED else ids.existing(reference)
    return checked.model_copy(update={"case_id": case_id}), receipt, reference


@functools.lru_cache(maxsize=65_536)
def _details_hash(text: str) -> bytes:
    """``ledger.records.text_hash`` with the C keccak, remembered: an import repeats a few texts many times."""
    return keccak(text.encode("utf-8"))


def _receipt(value: Any, receipts: bool, no_receipts: str) -> bool:
    if value is None or str(value).strip() == "":
        return receipts
    text = str(value).strip().lower()
    if text in _YES:
        if not receipts:
            raise InvalidRecord(no_receipts)
        return True
    if text in _NO:
        return False
    raise InvalidRecord(f"receipt {value!r} is not yes or no")


def _text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None or str(value).strip() == "":
        raise InvalidRecord(f"{name} is missing")
    return str(value).strip()


def _channel(value: Any) -> int:
    if value is None or str(value).strip() == "":
        raise InvalidRecord("channel is missing")
    text = str(value).strip().lower()
    if text in CHANNELS:
        return CHANNELS[text]
    if text.isdigit() and 1 <= int(text) <= 255:
        return int(text)
    raise InvalidRecord(f"channel {value!r} is not one of {', '.join(CHANNELS)} or a number 1-255")


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())
    return str(exc)


__all__ = ["CaseIds", "Row", "case_id_for", "parse_row", "read_rows", "references", "with_receipt_flag",
           "without_receipt_flag"]
