"""Importing case events from CSV and JSON Lines: good rows become records, bad rows say why, none stops the rest."""

from __future__ import annotations

import json

import pytest

from ledger.encoding import code_text
from ledger.errors import InvalidRecord
from ledger.importer import CaseIds, case_id_for, read_rows, references, with_receipt_flag, without_receipt_flag
from ledger.records import CaseAction, Channel, text_hash

SALT = b"agency-secret-salt-0001"
HEADER = "case,action,occurred_at,commitment,district,channel,details\n"


def _rows(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return list(read_rows(path, agency_id="DEMO-ROADS", salt=SALT))


def test_csv_good_and_bad_rows(tmp_path):
    rows = _rows(tmp_path, "cases.csv", HEADER + "\n".join([
        "R-1,opened,2026-11-01T09:00:00+08:00,STREETLIGHT-48H,EAST,hotline,lamp 12 dark",
        "R-1,fulfilled,2026-11-02T10:00:00+08:00,,,,",
        "R-2,opened,2026-11-01T09:00:00,STREETLIGHT-48H,EAST,hotline,",  # no zone
        "R-3,teleported,2026-11-01T09:00:00Z,,,,",
        "R-4,accepted,2026-11-01T09:00:00Z,STREETLIGHT-48H,,,",
        "R-5,opened,2026-11-01T09:00:00Z,STREETLIGHT-48H,EAST,carrier pigeon,",
        ",accepted,2026-11-01T09:00:00Z,,,,",
        "R-6,opened,2026-11-01T09:00:00Z,STREETLIGHT-48H,EAST,4,",
    ]) + "\n")
    assert [r.line for r in rows] == list(range(2, 10))
    good = [r for r in rows if r.record is not None]
    assert [r.line for r in good] == [2, 3, 9]
    opened = good[0].record
    assert opened.action is CaseAction.OPENED and opened.channel == Channel.HOTLINE
    assert code_text(opened.district) == "EAST"
    assert opened.details_hash == text_hash("lamp 12 dark")
    assert opened.case_id == good[1].record.case_id == case_id_for(SALT, "DEMO-ROADS", "R-1")
    assert good[2].record.channel == 4
    errors = {r.line: r.error for r in rows if r.error}
    assert "has no zone" in errors[4]
    assert "teleported" in errors[5] and "is not one of" in errors[5]
    assert "belongs to the opened row only" in errors[6]
    assert "carrier pigeon" in errors[7]
    assert "case is missing" in errors[8]


def test_case_reference_never_appears_in_records_or_errors(tmp_path):
    reference = "Zhang San 13800138000"
    rows = _rows(tmp_path, "cases.jsonl", "\n".join([
        json.dumps({"case": reference, "action": "opened", "occurred_at": "2026-11-01T09:00:00+08:00",
                    "commitment": "STREETLIGHT-48H", "district": "EAST", "channel": "app"}),
        json.dumps({"case": reference, "action": "opened", "occurred_at": "2026-11-01T09:00:00",
                    "commitment": "STREETLIGHT-48H", "district": "EAST", "channel": "app"}),
    ]))
    assert rows[0].record is not None
    assert reference not in rows[0].record.model_dump_json() and reference.encode() not in repr(rows[0].record).encode()
    assert reference not in rows[1].error


def test_jsonl_bad_lines_do_not_stop_the_rest(tmp_path):
    rows = _rows(tmp_path, "cases.ndjson", "\n".join([
        "{not json",
        "[1, 2]",
        "",
        json.dumps({"case": "R-9", "action": "withdrawn", "occurred_at": "2026-11-03T00:00:00Z"}),
        json.dumps({"case": "R-9", "action": "withdrawn", "occurred_at": "2026-11-03T00:00:00Z", "name": "x"}),
    ]))
    assert [r.line for r in rows] == [1, 2, 4, 5]
    assert "not valid JSON" in rows[0].error
    assert "JSON object" in rows[1].error
    assert rows[2].record is not None and rows[2].record.action is CaseAction.WITHDRAWN
    assert "unknown field" in rows[3].error


def test_unknown_csv_column_and_file_type_are_refused(tmp_path):
    with pytest.raises(InvalidRecord, match="unknown column"):
        _rows(tmp_path, "bad.csv", "case,action,occurred_at,phone\n")
    with pytest.raises(InvalidRecord, match="expected a .csv"):
        _rows(tmp_path, "cases.xlsx", "")


def test_salt_must_be_long_enough():
    with pytest.raises(InvalidRecord, match="at least 16 bytes"):
        case_id_for(b"short", "A", "R-1")
    assert case_id_for(SALT, "A", "R-1") != case_id_for(SALT, "B", "R-1")


def test_receipt_case_ids_have_the_top_bit_and_others_do_not():
    for i in range(32):
        reference = f"R-{i}"
        plain = case_id_for(SALT, "A", reference)
        flagged = case_id_for(SALT, "A", reference, receipt=True)
        assert not plain[0] & 0x80 and flagged[0] & 0x80 and flagged[1:] == plain[1:]
        assert with_receipt_flag(plain) == flagged and without_receipt_flag(flagged) == plain


def test_later_events_find_the_case_however_it_was_opened():
    asked: list[list[bytes]] = []
    remembered = {case_id_for(SALT, "A", "OLD-RECEIPT-CASE", receipt=True)}

    def memory(case_ids: list[bytes]) -> set[bytes]:
        asked.append(case_ids)
        assert all(c[0] & 0x80 for c in case_ids)
        return remembered & set(case_ids)

    ids = CaseIds(SALT, "A", memory)
    # opened in this run: found without asking
    opened = ids.opened("NEW", receipt=True)
    assert ids.existing("NEW") == opened == case_id_for(SALT, "A", "NEW", receipt=True)
    assert asked == []
    # opened earlier with a receipt: the memory says so, once
    expected = case_id_for(SALT, "A", "OLD-RECEIPT-CASE", receipt=True)
    assert ids.existing("OLD-RECEIPT-CASE") == expected == ids.existing("OLD-RECEIPT-CASE")
    assert asked == [[expected]]
    # opened earlier without: the id without the flag
    assert ids.existing("OLD-PLAIN-CASE") == case_id_for(SALT, "A", "OLD-PLAIN-CASE")
    # an import asks about all its references in one go
    asked.clear()
    ids.prefetch(["A-1", "A-2", "NEW", "OLD-RECEIPT-CASE", "A-3"])
    assert len(asked) == 1 and len(asked[0]) == 3
    assert [ids.existing(r) for r in ("A-1", "A-2")] == [case_id_for(SALT, "A", r) for r in ("A-1", "A-2")]
    assert len(asked) == 1
    # without a memory, every later event gets the id without the flag
    assert CaseIds(SALT, "A").existing("OLD-RECEIPT-CASE") == case_id_for(SALT, "A", "OLD-RECEIPT-CASE")


def test_references_of_later_events(tmp_path):
    """Only cases not opened earlier in the file: those opened in it are found there (CaseIds asks nothing)."""
    path = tmp_path / "rows.csv"
    path.write_text("case,action,occurred_at\nR-1,opened,x\nR-1,fulfilled,x\nR-2,accepted,x\nR-2,rejected,x\n,withdrawn,x\n"
                    "R-3,accepted,x\nR-3,opened,x\n")
    assert references(path) == ["R-2", "R-3"]
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"case": "J-1", "action": "accepted"}\n{broken\n{"case": "J-2", "action": "OPENED"}\n'
                     '{"case": "J-2", "action": "fulfilled"}\n')
    assert references(lines) == ["J-1"]


def test_a_row_is_the_event_its_fields_give(tmp_path):
    """The id is put into the validated event without validating it again: the same event, hashed the same."""
    from ledger.records import CaseEvent

    (row,) = _rows(tmp_path, "one.csv", HEADER + "R-9,opened,2026-11-01T09:00:00Z,STREETLIGHT-48H,EAST,app,déjà vu\n")
    fields = row.record.model_dump()
    assert CaseEvent(**fields) == row.record and CaseEvent(**fields).struct_hash() == row.record.struct_hash()
    assert row.record.case_id == case_id_for(SALT, "DEMO-ROADS", "R-9")
    assert row.record.details_hash == text_hash("déjà vu")


def test_receipt_column_and_receipt_rows(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text(HEADER.replace("details\n", "details,receipt\n") + "\n".join([
        "R-1,opened,2026-11-01T09:00:00+08:00,STREETLIGHT-48H,EAST,counter,,",
        "R-2,opened,2026-11-01T09:00:00+08:00,STREETLIGHT-48H,EAST,proactive,,no",
        "R-1,fulfilled,2026-11-02T09:00:00+08:00,,,,,",
        "R-3,fulfilled,2026-11-02T09:00:00+08:00,,,,,yes",
        "R-4,opened,2026-11-01T09:00:00+08:00,STREETLIGHT-48H,EAST,web,,maybe",
    ]) + "\n")
    with_receipts = list(read_rows(path, agency_id="A", salt=SALT, receipts=True))
    assert [(r.receipt, r.reference) for r in with_receipts[:3]] == [(True, "R-1"), (False, "R-2"), (False, "R-1")]
    assert with_receipts[0].record.case_id == with_receipts[2].record.case_id == case_id_for(
        SALT, "A", "R-1", receipt=True)
    assert with_receipts[1].record.case_id == case_id_for(SALT, "A", "R-2")
    assert "belongs to the opened row only" in with_receipts[3].error
    assert "is not yes or no" in with_receipts[4].error
    without = list(read_rows(path, agency_id="A", salt=SALT))
    assert not without[0].receipt and without[0].record.case_id == case_id_for(SALT, "A", "R-1")
    assert without[1].record is not None
    yes = tmp_path / "yes.jsonl"
    yes.write_text(json.dumps({"case": "R-5", "action": "opened", "occurred_at": "2026-11-01T09:00:00Z",
                               "commitment": "X", "district": "EAST", "channel": "app", "receipt": "yes"}) + "\n")
    (row,) = read_rows(yes, agency_id="A", salt=SALT)
    assert "issues no receipts" in row.error


def test_new_actions_answer_disputes(tmp_path):
    rows = _rows(tmp_path, "answers.csv", HEADER + "\n".join([
        "R-1,reopened,2026-11-05T09:00:00+08:00,,,,still dark",
        "R-2,dispute_rejected,2026-11-05T09:00:00+08:00,,,,photo of the lamp lit on 11-03",
    ]) + "\n")
    assert [r.record.action for r in rows] == [CaseAction.REOPENED, CaseAction.DISPUTE_REJECTED]
    assert rows[1].record.details_hash == text_hash("photo of the lamp lit on 11-03")
