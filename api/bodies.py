"""Request bodies, bounded while they arrive: in size (with a Content-Length or chunked, never held whole past the
limit) and in time (a body that trickles in is cut off).

Two layers use the one rule. :func:`read_body` reads a route's body under the route's own limit. Every route that
takes a body reads it so (the write APIs, Open311's ``POST requests``, audit reports). :class:`BodyLimitMiddleware`
bounds every request whatever its route, at the largest body any route takes (:data:`MAX_REQUEST_BYTES`) and within
:data:`BODY_SECONDS`: a route added later without :func:`read_body` still cannot be made to buffer more, or to
wait for ever.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pydantic_core
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError

#: the largest body any route takes: an audit report (8 MiB, ``api.attestations.MAX_REPORT_BYTES``) and room for its
#: framing; every other route's limit is smaller
MAX_REQUEST_BYTES = 8 * 2**20 + 64 * 1024
#: the longest a request's body may take to arrive, from the first byte asked for to the last
BODY_SECONDS = 30.0
#: the bytes of bodies all requests of a process may hold at once (each up to its route's limit): past it a body is
#: refused (503 ``overloaded``) rather than the process growing with every concurrent upload
BODY_BYTES_IN_FLIGHT = 64 * 2**20
#: what a body refused for want of room is told to wait, in seconds
BODY_RETRY_AFTER = 2
#: how deep JSON a client sends may nest (pydantic-core's parser stops there): nothing this API takes nests past a
#: few levels
MAX_JSON_DEPTH = 200


def nests_too_deep(data: str | bytes) -> bool:
    """Whether the JSON ``data`` nests deeper than :data:`MAX_JSON_DEPTH`. Ask before ``json.loads`` (FastAPI's parser
    too) reads anything a client sent: it recurses in C, and with the recursion limit py_ecc sets on import (100,000)
    deep nesting overflows the stack and kills the process. Whether it is JSON at all is left to the parser."""
    try:
        pydantic_core.from_json(data)
    except ValueError as exc:
        return "recursion limit" in str(exc)
    return False


class BodyRefused(ApiError):
    """A body refused while it arrived: ``code`` is ``body_too_large`` (413), ``body_timeout`` (408) or, with no room
    left for bodies in the process, ``overloaded`` (503). An
    :class:`~api.errors.ApiError`, so raised anywhere in a request it is answered in the API's error shape."""


def too_large(limit: int) -> BodyRefused:
    return BodyRefused("body_too_large", f"the body exceeds {limit} bytes")


def too_slow(seconds: float) -> BodyRefused:
    return BodyRefused("body_timeout", f"the body did not arrive within {seconds:g} s")


def declared_length(headers: Any) -> int | None:
    """The Content-Length a request declares, if it is a number."""
    value = headers.get("content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


async def read_body(request: Request, limit: int, *, seconds: float = BODY_SECONDS) -> bytes:
    """The body of ``request``, refused (:class:`BodyRefused`) as soon as it passes ``limit`` bytes — by its
    Content-Length before anything is read — or when it has not all arrived within ``seconds``. Kept on the request,
    so ``request.body()`` (what FastAPI parses) answers it afterwards."""
    declared = declared_length(request.headers)
    if declared is not None and declared > limit:
        raise too_large(limit)
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large(limit)
    except TimeoutError:
        raise too_slow(seconds) from None
    request._body = bytes(body)  # what request.body() answers from now on (Starlette keeps the body read there)
    return request._body


class BodyLimitMiddleware:
    """Bounds every request's body: a declared Content-Length over ``limit`` is answered 413 before anything is read;
    a body that grows past ``limit`` while it is read, or is not all there after ``seconds``, ends the read with
    :class:`BodyRefused`, which the error handlers answer (413 or 408). And all of them together: the bodies of the
    requests in flight hold at most ``in_flight`` bytes; a chunk that would take them past it is refused (503
    ``overloaded``), and a request's bytes count until its answer is sent."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int = MAX_REQUEST_BYTES,
        seconds: float = BODY_SECONDS,
        in_flight: int = BODY_BYTES_IN_FLIGHT,
    ) -> None:
        self.app = app
        self.limit = limit
        self.seconds = seconds
        self.in_flight = in_flight
        #: bytes of bodies received by requests not yet answered (one event loop: no lock needed)
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        declared = declared_length(headers)
        if declared is not None and declared > self.limit:
            await too_large(self.limit).response()(scope, receive, send)
            return
        received = 0
        deadline: float | None = None
        done = False

        async def bounded() -> Message:
            nonlocal received, deadline, done
            if done:
                return await receive()  # the body is in: what remains to come is the disconnect
            if deadline is None:
                deadline = time.monotonic() + self.seconds
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                raise too_slow(self.seconds) from None
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                if received + size > self.limit:
                    raise too_large(self.limit)
                if self.held + size > self.in_flight:
                    raise BodyRefused(
                        "overloaded", "the server is receiving too many request bodies at once to take this one; "
                        f"retry in {BODY_RETRY_AFTER} s", headers={"Retry-After": str(BODY_RETRY_AFTER)},
                    )
                received += size
                self.held += size
                done = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, bounded, send)
        finally:
            self.held -= received
