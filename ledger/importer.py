"""Read case events from CSV or JSON Lines files, row by row: every good row becomes a record, every bad row a
clear reason, and one bad row never stops the others.

Columns (CSV header or JSON keys): ``case`` (the agency's own case reference; turned into an opaque case id with
the agency's secret salt, so the reference never reaches the chain), ``action`` (opened, accepted, on_hold,
resumed, escalated, fulfilled, rejected, withdrawn), ``occurred_at`` (ISO 8601 with a zone, e.g.
2026-11-21T09:30:00+08:00), and for ``opened`` also ``commitment``, ``district``, ``channel`` (counter, hotline,
web, app, mail, proactive, or its number). Optional ``details``: free text, of which only the hash is recorded.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ledger.errors import InvalidRecord
from ledger.records import CaseAction, CaseEvent, Channel, short_code, text_hash

ACTIONS = {a.name.lower(): a for a in CaseAction}
CHANNELS = {c.name.lower(): int(c) for c in Channel}
KNOWN_COLUMNS = {"case", "action", "occurred_at", "commitment", "district", "channel", "details"}


def case_id_for(salt: bytes, agency_id: str, reference: str) -> bytes:
    """Opaque case id: HMAC-SHA256 of the agency's case reference under the agency's secret salt. Without the salt
    nobody can test guesses of a reference (which may contain a name or a phone number) against the chain."""
    if len(salt) < 16:
        raise InvalidRecord("the case-id salt must be at least 16 bytes")
    return hmac.new(salt, f"{agency_id}\0{reference}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Row:
    """One input row: its line number, and either the record it gives or why it was refused."""

    line: int
    record: CaseEvent | None
    error: str | None


def read_rows(path: Path, *, agency_id: str, salt: bytes) -> Iterator[Row]:
    """Rows of a .csv or .jsonl/.ndjson file, in order."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return
            unknown = set(reader.fieldnames) - KNOWN_COLUMNS
            if unknown:
                raise InvalidRecord(f"{path.name}: unknown column(s) {sorted(unknown)}; expected {sorted(KNOWN_COLUMNS)}")
            for number, raw in enumerate(reader, start=2):
                yield parse_row(number, raw, agency_id=agency_id, salt=salt)
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
                yield parse_row(number, raw, agency_id=agency_id, salt=salt)
    else:
        raise InvalidRecord(f"{path.name}: expected a .csv, .jsonl or .ndjson file")


def parse_row(line: int, raw: dict[str, Any], *, agency_id: str, salt: bytes) -> Row:
    try:
        return Row(line, _record(raw, agency_id, salt), None)
    except (InvalidRecord, ValueError) as exc:
        return Row(line, None, _reason(exc))


def _record(raw: dict[str, Any], agency_id: str, salt: bytes) -> CaseEvent:
    unknown = set(raw) - KNOWN_COLUMNS
    if unknown:
        raise InvalidRecord(f"unknown field(s) {sorted(unknown)}")
    reference = _text(raw, "case")
    action_name = _text(raw, "action").lower()
    if action_name not in ACTIONS:
        raise InvalidRecord(f"action {action_name!r} is not one of {', '.join(ACTIONS)}")
    action = ACTIONS[action_name]
    fields: dict[str, Any] = {
        "case_id": case_id_for(salt, agency_id, reference),
        "action": action,
        "occurred_at": _text(raw, "occurred_at"),
    }
    details = raw.get("details")
    if details not in (None, ""):
        fields["details_hash"] = text_hash(str(details))
    if action is CaseAction.OPENED:
        fields["commitment_id"] = short_code(_text(raw, "commitment"))
        fields["district"] = short_code(_text(raw, "district"))
        fields["channel"] = _channel(raw.get("channel"))
    else:
        for name in ("commitment", "district", "channel"):
            if raw.get(name) not in (None, ""):
                raise InvalidRecord(f"{name} belongs to the opened row only")
    return CaseEvent(**fields)


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


__all__ = ["Row", "case_id_for", "parse_row", "read_rows"]
