"""Bulk export, under ``/api/v1``: every entry or every case (of one agency, if given), streamed as CSV or JSON
Lines, a chunk at a time.

An export holds nothing of the database while its client reads: its rows are read a chunk at a time, each chunk in a
short snapshot of its own (``api.read.exports``), and the request's own snapshot ends when the headers are made. What
it holds is one of the process's export slots (:class:`ExportSlots`: so many at once, so many per client, beyond
them 503 ``exports_busy`` or 429 ``rate_limited`` with ``Retry-After``), from before its response starts until its
stream ends, fails, its client goes away, or its client takes nothing for :data:`EXPORT_SEND_TIMEOUT` seconds
(:class:`ExportResponse`)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import csv
import io
import json
import logging
import threading
import weakref
from collections.abc import Generator, Iterator, Mapping
from typing import Any, Literal

import anyio
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from api.batches import batch_proofs, verified_files
from api.clients import client_of
from api.deps import Settings, Snapshot
from api.errors import ApiError
from api.http import SHORT, not_modified, not_modified_response, view_etag
from api.ratelimit import Budget
from api.read.batches import batch_files
from api.read.exports import (
    CASE_EXPORT_COLUMNS,
    ENTRY_EXPORT_COLUMNS,
    IndexRewound,
    LogPrefix,
    export_cases,
    export_entries,
)
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
from api.schemas.errors import ErrorResponse
from api.settings import ApiSettings

log = logging.getLogger(__name__)

TAG = {"name": "export", "description": "Bulk export, streamed"}
#: rows per chunk of an export stream (each chunk is one write to the client)
EXPORT_CHUNK_ROWS = 500
#: seconds a client may take to accept a chunk before its stream is ended (its connection closed) and its slot freed;
#: ``ApiSettings.extra["export_send_timeout"]`` overrides it for an app
EXPORT_SEND_TIMEOUT = 30.0
#: what a client refused an export slot is told to wait, in seconds
EXPORT_RETRY_AFTER = 10

# --- slots: exports streaming at once ---------------------------------------------------------------------------------


class ExportSlot:
    """One export streaming, counted in its :class:`ExportSlots` until :meth:`release` (which may be called any number
    of times, from any thread)."""

    def __init__(self, slots: "ExportSlots", client: str) -> None:
        self._slots = slots
        self._client = client
        self._held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._slots._release(self._client)

    @property
    def held(self) -> bool:
        return self._held


class ExportSlots:
    """The exports a process streams at once: at most ``total``, at most ``per_client`` to one client (``api.clients``
    key); 0 is no limit. Taken in the handler's thread, released on the event loop."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._lock = threading.Lock()
        self._running = 0
        self._by_client: dict[str, int] = {}

    def take(self, client: str) -> ExportSlot:
        """A slot for ``client``, or the refusal: 429 ``rate_limited`` (budget ``exports``) when the client has as
        many as it may, else 503 ``exports_busy`` when the process has."""
        retry = {"Retry-After": str(EXPORT_RETRY_AFTER)}
        with self._lock:
            mine = self._by_client.get(client, 0)
            if 0 < self.per_client <= mine:
                raise ApiError(
                    "rate_limited",
                    f"this client already has {mine} export{'s' if mine > 1 else ''} streaming, as many as it may at "
                    f"once; retry in {EXPORT_RETRY_AFTER} s, or when one has ended",
                    headers=retry,
                    extra={"budget": "exports", "limit": self.per_client},
                )
            if 0 < self.total <= self._running:
                raise ApiError(
                    "exports_busy",
                    f"the server is streaming as many exports as it serves at once; retry in {EXPORT_RETRY_AFTER} s "
                    "(other requests are served as usual)",
                    headers=retry,
                )
            self._running += 1
            self._by_client[client] = mine + 1
        return ExportSlot(self, client)

    def _release(self, client: str) -> None:
        with self._lock:
            self._running -= 1
            left = self._by_client.pop(client) - 1
            if left:
                self._by_client[client] = left

    @property
    def running(self) -> int:
        """Exports streaming now."""
        return self._running

    def of(self, client: str) -> int:
        """Exports streaming now to ``client``."""
        return self._by_client.get(client, 0)


_SLOTS_MADE = threading.Lock()


def export_slots(app: Any) -> ExportSlots:
    """The app's :class:`ExportSlots` (made on first use, from its settings' ``max_exports`` and
    ``max_exports_per_client``)."""
    with _SLOTS_MADE:
        slots: ExportSlots | None = getattr(app.state, "export_slots", None)
        if slots is None:
            settings: ApiSettings = app.state.settings
            slots = app.state.export_slots = ExportSlots(settings.max_exports, settings.max_exports_per_client)
        return slots


def send_timeout(settings: ApiSettings) -> float:
    """Seconds a client of this app may take to accept a chunk (:data:`EXPORT_SEND_TIMEOUT`, or the app's
    ``extra["export_send_timeout"]``)."""
    return float(settings.extra.get("export_send_timeout", EXPORT_SEND_TIMEOUT))


# --- the streamed response -------------------------------------------------------------------------------------------


class ExportResponse(StreamingResponse):
    """An export's stream, holding its :class:`ExportSlot` until it ends: when its chunks are all sent; when reading
    them fails; when the client goes away; when the client takes no chunk for ``send_timeout`` seconds; or, for a
    response never sent, when it is collected. Each chunk is made in the thread pool (it reads the database).

    Ending early is ending the connection without completing the body: ASGI has no other way to say that a response
    is cut short, so the server closes the connection (uvicorn logs one line, "ASGI callable returned without
    completing response.") and the client sees an incomplete body, never a complete-looking truncated one."""

    def __init__(
        self,
        chunks: Generator[str, None, None],
        slot: ExportSlot,
        *,
        send_timeout: float,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(chunks, media_type=media_type, headers=headers)
        self.chunks = chunks
        self.slot = slot
        self.send_timeout = send_timeout
        weakref.finalize(self, slot.release)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def until_disconnected() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()  # the client went away: stop reading for it

                group.start_soon(until_disconnected)
                await self._stream(send)
                group.cancel_scope.cancel()
        except BaseExceptionGroup as failed:  # the stream's own failure, as itself
            if len(failed.exceptions) != 1:
                raise
            error = failed.exceptions[0]
            raise error from error.__cause__
        finally:
            self.slot.release()
            self.chunks.close()  # between chunks: no snapshot open, nothing to wait for

    async def _stream(self, send: Send) -> None:
        if not await self._send(send, {"type": "http.response.start", "status": self.status_code,
                                       "headers": self.raw_headers}):
            return
        while True:
            try:
                chunk = await run_in_threadpool(next, self.chunks, None)
            except IndexRewound:
                log.warning("an entries export was ended early: the index was rolled back below its position")
                return
            if chunk is None:
                break
            if not await self._send(send, {"type": "http.response.body", "body": chunk.encode(self.charset),
                                           "more_body": True}):
                return
        await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})

    async def _send(self, send: Send, message: Message) -> bool:
        """Send ``message``, unless the client takes nothing for ``send_timeout`` seconds or is gone (False: the stream
        ends)."""
        with anyio.move_on_after(self.send_timeout) as waited:
            try:
                await send(message)
            except OSError:  # the client went away (a server of ASGI 2.4 says so when sent to)
                return False
        if waited.cancelled_caught:
            log.warning("an export was ended: its client took nothing for %g s", self.send_timeout)
            return False
        return True


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


def _export_text(
    app: Any, fmt: Literal["csv", "jsonl"], agency_id: str | None, prefix: LogPrefix | None
) -> Generator[str, None, None]:
    """The export's text, a chunk at a time: the entries of ``prefix``, or (None) the cases."""
    store = app.state.store
    if prefix is not None:
        # each batch's tree looked up once, only the current one held (its records are consecutive)
        rows = export_entries(store, prefix, agency_id, proofs=batch_proofs(app, keep=1))
        yield from _chunks(rows, ENTRY_EXPORT_COLUMNS, fmt)
    else:
        yield from _chunks(export_cases(store, agency_id), CASE_EXPORT_COLUMNS, fmt)


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
    # the entries of the state the ETag is of, as this snapshot holds them: what every chunk is checked against
    prefix = LogPrefix.read(conn, state) if what == "entries" else None
    client = client_of(request)
    budget: Budget = request.app.state.expensive_budget  # an export is expensive work (``api.ratelimit``)
    budget.charge(client)
    slot = export_slots(request.app).take(client)
    try:
        return ExportResponse(
            _export_text(request.app, fmt, agency_id, prefix),
            slot,
            send_timeout=send_timeout(settings),
            media_type=MEDIA[fmt],
            headers=headers,
        )
    except BaseException:
        slot.release()
        raise


RETRY_AFTER_HEADER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def _export_route(what: Literal["entries", "cases"], fmt: Literal["csv", "jsonl"]) -> None:
    columns = ENTRY_EXPORT_COLUMNS if what == "entries" else CASE_EXPORT_COLUMNS
    example = ",".join(columns) + "\n" if fmt == "csv" else '{"' + columns[0] + '":…}\n'
    media = MEDIA[fmt].split(";")[0]
    order = "seq order" if what == "entries" else "(agency id, case id) order"
    description = (
        f"Every {what[:-1]} row in {order}, streamed as "
        + ("CSV (a header line, then one line per row; empty = null)" if fmt == "csv" else "JSON Lines")
        + ". Read from the database a chunk at a time, each chunk in a short read of its own, so the server's memory "
        "stays flat whatever the size and a slow reader holds nothing of the database. "
        + (
            "The export is exactly one position of the log, the one its ETag is of: the entries counted when it "
            "started, as the index held them then. Should the index be rolled back below that position while the "
            "export streams (a chain reorganisation), the stream is cut short (an incomplete response, never a "
            "complete-looking one mixing two histories): ask again. "
            if what == "entries"
            else "Each chunk of case rows is read from the index as it is then, not from one snapshot: cases that "
            "change while the export streams may appear as they were or as they became (the agencies are those with "
            "cases when it starts). The entries export is the one exact to a position of the log. "
        )
        + "Exports streaming at once are limited per client (beyond: 429 rate_limited, error.budget exports) and "
        "per server (beyond: 503 exports_busy), both with Retry-After; HEAD and 304 answers take no part. A client "
        "that takes no data for 30 seconds has its stream cut short. "
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
            429: {
                "model": ErrorResponse,
                "description": "Too many requests from this client, or as many of its exports streaming as it may "
                "have at once (error.budget: exports)",
                "headers": RETRY_AFTER_HEADER,
            },
            503: {
                "model": ErrorResponse,
                "description": "As many exports streaming as the server serves at once (exports_busy)",
                "headers": RETRY_AFTER_HEADER,
            },
        },
    )(endpoint)


for _what in ("entries", "cases"):
    for _fmt in ("csv", "jsonl"):
        _export_route(_what, _fmt)
