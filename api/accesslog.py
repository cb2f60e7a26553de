"""The access log without personal data: one line per HTTP request naming the route, never the request.

A request's path can carry what identifies a citizen (a receipt address in ``/api/v1/receipts/{address}``, an
Open311 token) and its query anything (``?email=``); its client address, who asked. So a line names only the method
(one of HTTP's, else ``OTHER``), the matched route's path template, the status and the duration: ``GET
/api/v1/receipts/{address} 200 3.2ms``. Its length is bounded by construction, whatever the client sent, so a client
cannot make the log grow faster than its requests.

The API's other log lines use the same pieces: :func:`route_of` and :func:`method_of` for the request, and
:func:`failure_of` for an exception, as its types and frames without its messages (a message may quote what a client
sent, or SQLAlchemy's parameters: a receipt address); :class:`WithoutExceptionMessages` does that to every record a
logging handler writes (``python -m api`` puts it on uvicorn's, so uvicorn's own "Exception in ASGI application"
says no more).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class AccessLogWithoutPersonalData:
    """Logs each HTTP request as method, route template, status and milliseconds: no path, query, header or client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
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
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info("%s %s %d %.1fms", method_of(scope), route_of(scope), 500 if status is None else status,
                     elapsed_ms)
