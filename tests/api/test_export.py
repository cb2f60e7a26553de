"""Bulk export (/api/v1/export/…): CSV and JSON Lines of every entry and every case, streamed in chunks while the
database is read a batch at a time, with as many rows as the tables."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from api.read._common import read_snapshot
from api.read.exports import ENTRY_EXPORT_COLUMNS, EXPORT_BATCH, LogPrefix, export_cases, export_entries
from api.read.state import index_state
from api.routes import exports
from ledger.store.schema import cases, entries
from tests.support.city import count

V1 = "/api/v1"


def as_csv_text(value: Any) -> str:
    """How the CSV export writes a value: empty for null, true/false for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def jsonl_rows(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_entries_csv_has_every_entry_with_its_proof(client: TestClient, city_store: Any) -> None:
    response = client.get(f"{V1}/export/entries.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="entries.csv"'
    rows = csv_rows(response.text)
    assert list(rows[0]) == list(ENTRY_EXPORT_COLUMNS)
    assert len(rows) == count(city_store, entries)
    assert [int(r["seq"]) for r in rows] == list(range(len(rows)))
    for seq in (0, 7, len(rows) - 1):
        row, entry = rows[seq], client.get(f"{V1}/entries/{seq}").json()
        assert row["kind"] == entry["kind"] and row["agency_id"] == entry["agency_id"]
        assert row["entry_hash"] == entry["entry_hash"] and row["running_hash"] == entry["running_hash"]
        for name in ("tx_hash", "block_hash", "block_number", "block_time", "log_index"):
            assert row[name] == str(entry["proof"][name])
        assert row["final"] == "true" and row["voided_by"] == ""
    assert rows[0]["occurred_at"] == ""  # a governance entry has no claimed time: empty is null


def test_entries_jsonl_equals_the_csv(client: TestClient, city_store: Any) -> None:
    response = client.get(f"{V1}/export/entries.jsonl")
    assert response.headers["content-type"] == "application/x-ndjson"
    rows = jsonl_rows(response.text)
    assert len(rows) == count(city_store, entries)
    as_csv = csv_rows(client.get(f"{V1}/export/entries.csv").text)
    for from_json, from_csv in zip(rows, as_csv, strict=True):
        assert list(from_json) == list(ENTRY_EXPORT_COLUMNS)
        assert {k: as_csv_text(v) for k, v in from_json.items()} == from_csv


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cases_export_has_every_case(client: TestClient, city_store: Any, fmt: str) -> None:
    text = client.get(f"{V1}/export/cases.{fmt}").text
    rows = csv_rows(text) if fmt == "csv" else jsonl_rows(text)
    assert len(rows) == count(city_store, cases)
    assert len({(r["agency_id"], r["case_id"]) for r in rows}) == len(rows)
    first = rows[0]
    case = client.get(f"{V1}/cases/{first['agency_id']}/{first['case_id']}").json()
    for name in ("status", "commitment_id", "district", "opened_at", "due_at", "on_time"):
        expected = case[name]
        assert first[name] == (as_csv_text(expected) if fmt == "csv" else expected), name
    roads = client.get(f"{V1}/export/cases.{fmt}", params={"agency_id": "DEMO-ROADS"}).text
    roads_rows = csv_rows(roads) if fmt == "csv" else jsonl_rows(roads)
    assert len(roads_rows) == count(city_store, cases, cases.c.agency_id == "DEMO-ROADS") > 0
    assert {r["agency_id"] for r in roads_rows} == {"DEMO-ROADS"}


def test_export_of_an_unknown_agency_is_404(client: TestClient) -> None:
    response = client.get(f"{V1}/export/cases.csv", params={"agency_id": "DEMO-PARKS"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_exports_stream_in_chunks_as_the_client_reads(
    client: TestClient, city_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response is sent a chunk at a time while the rows are read: after the first chunk reaches the client,
    only a few chunks' worth of rows have been read from the database, not the whole table."""
    monkeypatch.setattr(exports, "EXPORT_CHUNK_ROWS", 100)
    read: list[int] = []
    original = export_entries

    def counting(
        conn: Any, state: Any, agency_id: Any, batch: int = EXPORT_BATCH, proofs: Any = None
    ) -> Iterator[dict[str, Any]]:
        for row in original(conn, state, agency_id, batch=50, proofs=proofs):
            read.append(row["seq"])
            yield row

    monkeypatch.setattr(exports, "export_entries", counting)  # where the route looks it up
    total = count(city_store, entries)
    with client.stream("GET", f"{V1}/export/entries.jsonl") as response:
        chunks = response.iter_raw()
        first = next(chunks)
        read_when_first_arrived = len(read)
        rest = list(chunks)
    assert read_when_first_arrived < total / 2
    assert first.count(b"\n") == 100
    assert len(rest) >= total // 100 - 1
    assert len(read) == total
    assert len(jsonl_rows((first + b"".join(rest)).decode())) == total


@pytest.mark.parametrize("export", ["entries", "cases"])
def test_exports_read_in_short_chunks_holding_no_connection(city_store: Any, export: str) -> None:
    """The export reads ``batch`` rows at a time, each chunk one bounded statement in a snapshot of its own, and holds
    no connection of the pool between chunks: a client reading slowly holds nothing of the database."""
    seen: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "FROM entries" in statement or "FROM cases" in statement:
            seen.append(statement)

    event.listen(city_store.engine, "before_cursor_execute", spy)
    try:
        with read_snapshot(city_store) as conn:
            prefix = LogPrefix.read(conn, index_state(conn, None, None))
        rows = export_entries(city_store, prefix, None, 10) if export == "entries" else export_cases(
            city_store, None, 10
        )
        firsts = [next(rows) for _ in range(25)]
        assert city_store.engine.pool.checkedout() == 0
        rows.close()
    finally:
        event.remove(city_store.engine, "before_cursor_execute", spy)
    assert len(firsts) == 25
    chunks = [s for s in seen if "ORDER BY entries.seq" in s or "ORDER BY cases.case_id" in s]
    assert len(chunks) == 3 and all("LIMIT" in s for s in chunks), chunks


def test_export_caching_and_head(client: TestClient) -> None:
    response = client.get(f"{V1}/export/entries.csv")
    etag = response.headers["etag"]
    assert response.headers["cache-control"] == "public, max-age=5"
    assert client.get(f"{V1}/export/entries.csv", headers={"If-None-Match": etag}).status_code == 304
    head = client.head(f"{V1}/export/entries.csv")
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
    assert head.headers["content-type"] == "text/csv; charset=utf-8"
