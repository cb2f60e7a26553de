"""The access log without personal data: one line per HTTP request naming the route, never the request.

A request's path can carry what identifies a citizen (a receipt address in ``/api/v1/receipts/{address}``, an
Open311 token) and its query anything (``?email=``); its client address, who asked. So a line names only the method
(one of HTTP's, else ``OTHER``), the matched route's path template, the status and the duration: ``GET
/api/v1/receipts/{address} 200 3.2ms``. Its length is bounded by construction, whatever the client sent, so a client
cannot make the log grow faster than its requests.

Each request has an id (:data:`REQUEST_ID`): a new one, or the ``X-Request-ID`` a trusted proxy
(``CIVIC_TRUSTED_PROXIES``, ``api.clients``) sent when it is one short token (:data:`REQUEST_ID_PATTERN`); the answer
echoes it in ``X-Request-ID``, and every log line written while the request is answered carries it. With
:class:`JsonLines` as a handler's formatter (:func:`json_lines` makes a logging configuration use it: ``python -m
api``), each line is one JSON object — time, level, logger, message, request id, and the access line's fields
(method, route, status, duration) — so a log pipeline reads fields, not text. The access middleware also reports each
request to an observer (the Prometheus metrics, ``api.prometheus``) by the same method and route template.

The API's other log lines use the same pieces: :func:`route_of` and :func:`method_of` for the request, and
:func:`failure_of` for an exception, as its types and frames without its messages (a message may quote what a client
sent, or SQLAlchemy's parameters: a receipt address); :class:`WithoutExceptionMessages` does that to every record a
logging handler writes (``python -m api`` puts it on uvicorn's, so uvicorn's own "Exception in ASGI application"
says no more).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import secrets
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.clients import Clients

log = logging.getLogger("api.access")

#: HTTP's methods (RFC 9110 §9 and PATCH, RFC 5789); any other is logged as ``OTHER``
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
#: what a request no route matched is logged under (a 404, a redirect to the path with or without its last slash)
UNMATCHED = "(unmatched)"
#: what a request answered before routing is logged under (a 429 of the reads' budget, a 413 declared body, CORS
#: preflight)
UNROUTED = "(unrouted)"
#: the longest route template logged (the routes' own are far shorter: this only bounds the line by construction)
MAX_ROUTE_CHARS = 200
#: the status logged for a request whose client went away before any answer was sent (nginx's convention)
CLIENT_CLOSED = 499
#: how much of an exception :func:`failure_of` shows: the innermost frames of each, and how many chained exceptions
MAX_FRAMES = 40
MAX_CHAINED = 5
#: the header carrying a request's id, in the answer (and from a trusted proxy)
REQUEST_ID_HEADER = "X-Request-ID"
#: an id a trusted proxy may give a request: one short token (a UUID, nginx's ``$request_id``, a trace id), nothing
#: that could break a log line or a header
REQUEST_ID_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:+/=-]{0,127}")
#: the id of the request being answered, for every log line written meanwhile (None outside a request). A request is
#: answered in a task of its own (uvicorn's), whose context is a copy: the id set there is seen by nothing else
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("civic_request_id", default=None)
#: an observer of each request answered: (method, route template, status, seconds)
Observer = Callable[[str, str, int, float], None]


def method_of(where: Scope | HTTPConnection) -> str:
    """The request's method if it is one of HTTP's (:data:`METHODS`), else ``OTHER``."""
    method = _scope(where).get("method")
    return method if method in METHODS else "OTHER"


def route_of(where: Scope | HTTPConnection) -> str:
    """The path template of the route that took the request (``/api/v1/receipts/{address}``), :data:`UNMATCHED`
    when the router found none, :data:`UNROUTED` before routing: never the path itself. Good once the router has
    run, e.g. in an exception handler or after the app answered."""
    scope = _scope(where)
    template = _template(scope)
    if template is not None:
        return template if len(template) <= MAX_ROUTE_CHARS else template[: MAX_ROUTE_CHARS - 1] + "…"
    return UNMATCHED if "router" in scope else UNROUTED


def _template(scope: Mapping[str, Any]) -> str | None:
    # FastAPI (0.165) keeps an included router's routes under it: the route's own path_format then lacks the
    # prefixes it was included under, and the whole template is its effective context's
    fastapi_scope = scope.get("fastapi")
    context = fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    for route in (context, scope.get("route")):
        template = getattr(route, "path_format", None)
        if isinstance(template, str) and template:
            return template
    # Starlette's own routes and mounts on the app (the OpenAPI document, the static files) leave only their
    # endpoint in the scope: the first of the app's routes with that endpoint (none of them shares one)
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        for route in getattr(scope.get("router"), "routes", ()):
            if getattr(route, "endpoint", None) is endpoint or (isinstance(route, Mount) and route.app is endpoint):
                return route.path_format
    return None


def failure_of(exc: BaseException) -> str:
    """``exc`` for a log: each exception of its chain (the outermost first, then what caused it) as its frames (file,
    line, function and the line of code) and its type, never its message or arguments."""
    shown: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(shown) < MAX_CHAINED:
        frames = traceback.extract_tb(current.__traceback__)[-MAX_FRAMES:]
        kind = type(current)
        shown.append("".join(traceback.format_list(frames)) + f"{kind.__module__}.{kind.__qualname__}")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n-- raised while handling, or caused by:\n".join(shown)


class WithoutExceptionMessages(logging.Filter):
    """A log handler's filter that writes a record's exception as :func:`failure_of` does: without its messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = "Traceback (messages left out):\n" + failure_of(record.exc_info[1])
            record.exc_info = None
        return True


def _scope(where: Scope | HTTPConnection) -> Mapping[str, Any]:
    return where.scope if isinstance(where, HTTPConnection) else where


def request_id_of(scope: Scope, clients: Clients | None) -> str:
    """The request's id: the ``X-Request-ID`` a trusted proxy sent when it is one (and only one) valid token
    (:data:`REQUEST_ID_PATTERN`), else a new one (128 random bits in hex)."""
    if clients is not None and clients.trusted and clients.peer_is_trusted(scope):
        given = [value for name, value in scope.get("headers") or () if name.lower() == b"x-request-id"]
        if len(given) == 1:
            value = given[0].decode("latin-1")
            if REQUEST_ID_PATTERN.fullmatch(value):
                return value
    return secrets.token_hex(16)


class AccessLogWithoutPersonalData:
    """Logs each HTTP request as method, route template, status and milliseconds: no path, query, header or client.
    Gives each request its id (:func:`request_id_of`, ``clients`` saying which proxies are trusted), echoed in the
    answer's ``X-Request-ID``, and reports each request answered to ``observe``, if given."""

    def __init__(self, app: ASGIApp, *, clients: Clients | None = None, observe: Observer | None = None) -> None:
        self.app = app
        self.clients = clients
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        request_id = request_id_of(scope, self.clients)
        scope.setdefault("state", {})["request_id"] = request_id
        # not reset when the request is answered: the server's error middleware, outside this one, logs a failure
        # after it, and the request's task (and so this value) ends with the request
        REQUEST_ID.set(request_id)
        echoed = (REQUEST_ID_HEADER.lower().encode("latin-1"), request_id.encode("latin-1"))

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:  # the client went away
            status = CLIENT_CLOSED if status is None else status
            raise
        except Exception:  # answered 500 by the server's error middleware (``api.errors``), outside this one
            status = 500 if status is None else status
            raise
        finally:
            seconds = time.perf_counter() - started
            method, route, answered = method_of(scope), route_of(scope), 500 if status is None else status
            log.info("%s %s %d %.1fms", method, route, answered, seconds * 1000, extra={
                "request_id": request_id,
                "fields": {"method": method, "route": route, "status": answered,
                           "duration_ms": round(seconds * 1000, 1)},
            })
            if self.observe is not None:
                self.observe(method, route, answered, seconds)


class WithRequestId(logging.Filter):
    """A log handler's filter that stamps each record with the id of the request being answered (``request_id``; None
    outside a request), for a handler that formats it later or elsewhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonLines(logging.Formatter):
    """A log record as one line of JSON: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
    ``request_id`` of the request being answered (if any), a record's ``fields`` (the access line's), and an
    exception as :func:`failure_of` writes it (never its message)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({key: value for key, value in fields.items() if key not in line})
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = "Traceback (messages left out):\n" + failure_of(record.exc_info[1])
        elif record.exc_text:  # written by :class:`WithoutExceptionMessages` already
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def json_lines(config: dict[str, Any]) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` configuration (uvicorn's, say) whose every formatter is :class:`JsonLines` and
    every handler stamps records with their request's id (:class:`WithRequestId`)."""
    config["formatters"] = {name: {"()": f"{__name__}.JsonLines"} for name in config.get("formatters", {})}
    config.setdefault("filters", {})["request_id"] = {"()": f"{__name__}.WithRequestId"}
    for handler in config.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", ()), "request_id"]
    return config
