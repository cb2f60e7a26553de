"""Bulk export, under ``/api/v1``: every entry or every case (of one agency, if given), streamed as CSV or JSON
Lines, a chunk at a time."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection

from api.batches import batch_proofs, verified_files
from api.deps import Settings, Snapshot
from api.http import SHORT, not_modified, not_modified_response, view_etag
from api.read._common import read_snapshot
from api.read.batches import batch_files
from api.read.exports import CASE_EXPORT_COLUMNS, ENTRY_EXPORT_COLUMNS, export_cases, export_entries
from api.routes._common import (
    CACHE_HEADERS,
    NOT_FOUND,
    NOT_MODIFIED,
    AgencyQuery,
    read_route,
    read_router,
    require_agency,
    state_of,
)
from api.settings import ApiSettings

TAG = {"name": "export", "description": "Bulk export, streamed"}
#: rows per chunk of an export stream (each chunk is one write to the client)
EXPORT_CHUNK_ROWS = 500

# --- export writers ---------------------------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)  # a Merkle proof: its hashes, space-separated
    return value


def _chunks(rows: Iterator[dict[str, Any]], columns: tuple[str, ...], fmt: Literal["csv", "jsonl"]) -> Iterator[str]:
    """Rows as CSV (header first) or JSON Lines, ``EXPORT_CHUNK_ROWS`` rows to a chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    count = 0
    for row in rows:
        if writer is not None:
            writer.writerow([_csv_value(row[name]) for name in columns])
        else:
            buffer.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            buffer.write("\n")
        count += 1
        if count % EXPORT_CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


# --- the endpoints ----------------------------------------------------------------------------------------------------

router = read_router("export")


def export(
    request: Request,
    conn: Connection,
    settings: ApiSettings,
    what: Literal["entries", "cases"],
    fmt: Literal["csv", "jsonl"],
    agency_id: str | None,
) -> Response:
    state = state_of(conn, settings)
    if agency_id is not None:
        require_agency(conn, agency_id)
    missing: tuple[int, ...] = ()
    if what == "entries":  # a batch file published later gives its records their Merkle proofs
        files = verified_files(request.app)
        missing = tuple(
            seq for seq, file_hash in batch_files(conn, agency_id) if not files.present(file_hash)
        )
    etag = view_etag(request, state.position, missing)
    headers = {
        "ETag": etag,
        "Cache-Control": SHORT,
        "Content-Disposition": f'attachment; filename="{what}.{fmt}"',
    }
    if not_modified(request, etag):
        return not_modified_response(etag, SHORT)
    if request.method == "HEAD":
        return Response(headers=headers, media_type=MEDIA[fmt])
    store = request.app.state.store

    def generate() -> Iterator[str]:
        # its own connection, open for as long as the stream: the request's one closes when the handler returns
        with read_snapshot(store) as stream_conn:
            if what == "entries":
                # the entries counted when the headers were made: an export is one position of the log
                # each batch's tree looked up once, only the current one held (its records are consecutive)
                proofs = batch_proofs(request.app, keep=1)
                rows = (
                    row
                    for row in export_entries(stream_conn, state, agency_id, proofs=proofs)
                    if row["seq"] < state.entry_count
                )
                yield from _chunks(rows, ENTRY_EXPORT_COLUMNS, fmt)
            else:
                yield from _chunks(export_cases(stream_conn, agency_id), CASE_EXPORT_COLUMNS, fmt)

    return StreamingResponse(generate(), media_type=MEDIA[fmt], headers=headers)


def _export_route(what: Literal["entries", "cases"], fmt: Literal["csv", "jsonl"]) -> None:
    columns = ENTRY_EXPORT_COLUMNS if what == "entries" else CASE_EXPORT_COLUMNS
    example = ",".join(columns) + "\n" if fmt == "csv" else '{"' + columns[0] + '":…}\n'
    media = MEDIA[fmt].split(";")[0]
    order = "seq order" if what == "entries" else "(agency id, case id) order"
    description = (
        f"Every {what[:-1]} row in {order}, streamed as "
        + ("CSV (a header line, then one line per row; empty = null)" if fmt == "csv" else "JSON Lines")
        + ". Read from the database a batch at a time, so the server's memory stays flat whatever the size. "
        + f"Columns: {', '.join(columns)}."
        + (
            " A record written in a Merkle-anchored batch has batch_seq, batch_index, batch_root, "
            "batch_file_hash and merkle_proof (the sibling hashes, "
            + ("space-separated" if fmt == "csv" else "a list")
            + "; empty with merkle_proof_unavailable saying why when the batch file is not here)."
            if what == "entries" else ""
        )
    )

    def endpoint(
        request: Request,
        conn: Snapshot,
        settings: Settings,
        agency_id: AgencyQuery = None,
    ) -> Response:
        return export(request, conn, settings, what, fmt, agency_id)

    endpoint.__name__ = f"export_{what}_{fmt}"
    read_route(
        router,
        f"/export/{what}.{fmt}",
        operation_id=f"export{what.title()}{fmt.title()}",
        summary=f"Bulk export of {what} as {'CSV' if fmt == 'csv' else 'JSON Lines'}",
        description=description,
        response_class=StreamingResponse,
        responses={
            200: {
                "description": f"{what}, streamed",
                "content": {media: {"schema": {"type": "string"}, "example": example}},
                "headers": {
                    **CACHE_HEADERS,
                    "Content-Disposition": {"description": "attachment file name", "schema": {"type": "string"}},
                },
            },
            **NOT_MODIFIED,
            **NOT_FOUND,
        },
    )(endpoint)


for _what in ("entries", "cases"):
    for _fmt in ("csv", "jsonl"):
        _export_route(_what, _fmt)

