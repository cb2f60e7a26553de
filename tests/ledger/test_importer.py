"""Importing case events from CSV and JSON Lines: good rows become records, bad rows say why, none stops the rest."""

from __future__ import annotations

import json

import pytest

from ledger.errors import InvalidRecord
from ledger.importer import case_id_for, read_rows
from ledger.records import CaseAction, Channel, code_text, text_hash

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
