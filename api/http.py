"""HTTP helpers of the read API: entity tags and caching headers, conditional requests, time parameters, and the
language of an answer.

Caching rules
    Data that can no longer change — an entry, or a commitment version, in a block at or below the finalized block —
    is served with a strong ETag derived from what identifies it on chain and ``Cache-Control: public,
    max-age=31536000, immutable``. Everything else (lists, cases, metrics, anything not yet final) gets an ETag derived
    from the index's position (entry count, last indexed block, finalized block) and the request, and a short
    ``max-age``: the same request on the same index gives the same bytes, so a revalidation is answered ``304``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response

from api.errors import invalid
from ledger.open311 import Lang

#: bumped whenever the JSON representation of a resource changes, so cached copies of the old one are not reused
REPRESENTATION = "2"  # 2: proofs gained `batch` (Merkle-anchored batches)

IMMUTABLE = "public, max-age=31536000, immutable"
#: lists and other views that move as the chain grows: a few seconds, about a block
SHORT = "public, max-age=5"


def etag_of(*parts: Any) -> str:
    """A strong entity tag (quoted) over ``parts``."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in (REPRESENTATION, *parts)).encode()).hexdigest()
    return f'"{digest[:32]}"'


def request_key(request: Request) -> tuple[str, str]:
    """The request as an ETag part: its path and its query parameters in a canonical order."""
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    return request.url.path, query


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def not_modified(request: Request, etag: str) -> bool:
    """Whether ``If-None-Match`` matches ``etag`` (weak comparison, as RFC 9110 §13.1.2 prescribes)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = _tags(header)
    return "*" in tags or etag.removeprefix("W/") in tags


def cache_headers(etag: str, cache_control: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": cache_control}


def not_modified_response(etag: str, cache_control: str) -> Response:
    return Response(status_code=304, headers=cache_headers(etag, cache_control))


def apply_cache(response: Response, etag: str, cache_control: str) -> None:
    response.headers.update(cache_headers(etag, cache_control))


def conditional(request: Request, response: Response, etag: str, cache_control: str) -> Response | None:
    """Set the caching headers; the 304 to return instead if the client already has this version."""
    if not_modified(request, etag):
        return not_modified_response(etag, cache_control)
    apply_cache(response, etag, cache_control)
    return None


def view_etag(request: Request, position: tuple[Any, ...], *extra: Any) -> str:
    """The ETag of a view that moves with the index: its position (``api.read.state.IndexState.position``), the request
    and whatever else the answer depends on."""
    return etag_of("view", *position, *request_key(request), *extra)


def next_link(request: Request, **params: Any) -> str:
    """An RFC 8288 ``Link`` header value to the next page: this path with ``params`` as its query."""
    return f'<{request.url.path}?{urlencode(params)}>; rel="next"'


# --- times ------------------------------------------------------------------------------------------------------------

#: the forms a time parameter may take (the zone is optional here only so that a time without one is refused with
#: a message saying so, rather than as "not a time")
TIME_PATTERN = r"^(\d{1,19}|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?)$"
_TIME = re.compile(TIME_PATTERN)
TIME_DESCRIPTION = (
    "unix seconds (`1793491200`), an ISO 8601 date meaning its midnight UTC (`2026-11-01`), or an ISO 8601 time "
    "with its zone (`2026-11-01T08:00:00+08:00`, `2026-11-01T00:00:00Z`; fractions of a second are dropped)"
)
TIME_EXAMPLES = ["2026-11-01", "2026-11-01T08:00:00+08:00", "1793491200"]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SECONDS = re.compile(r"^\d{1,19}$")


def parse_time(value: str, name: str) -> int:
    """A time parameter as unix seconds; a 422 naming the parameter and the accepted forms otherwise."""
    if not _TIME.fullmatch(value):
        raise invalid(f"{name}: {value!r} is not a time; give {TIME_DESCRIPTION}", param=name)
    if _SECONDS.fullmatch(value):
        return int(value)
    try:
        if _DATE.fullmatch(value):
            day = date.fromisoformat(value)
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"{name}: {value!r} is not a time; give {TIME_DESCRIPTION}", param=name) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise invalid(
            f"{name}: {value!r} has no zone; add one (Z or an offset such as +08:00), or give a date or unix seconds",
            param=name,
        )
    try:
        return int(moment.astimezone(UTC).timestamp() // 1)
    except (OverflowError, ValueError):
        raise invalid(f"{name}: {value!r} is out of range", param=name) from None


def optional_time(value: str | None, name: str) -> int | None:
    return None if value is None else parse_time(value, name)


# --- language ---------------------------------------------------------------------------------------------------------

#: the languages the API answers in, in the order of preference when nothing says otherwise (the first is the default)
LANGUAGES: tuple[Lang, ...] = ("en", "zh")
#: how much of an Accept-Language header is read: the header has no size limit of its own (a server's limit on all
#: headers is far larger), and a real one names a few languages; a range cut by this limit is not read
ACCEPT_LANGUAGE_LIMIT = 512
#: how much of a client's ``lang`` value an error message repeats
_ECHO = 20


def _primary(tag: str) -> str:
    """A language tag's primary subtag, lowercased: ``zh`` of ``zh-CN``, of ``zh_Hant_TW`` and of `` ZH ``."""
    return tag.strip().split("-", 1)[0].split("_", 1)[0].lower()


def _weight(params: str) -> float | None:
    """The q of a language range's parameters (``;q=0.8``): 1 if none is given, None if it is not a number in [0, 1]."""
    q = 1.0
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                return None
            if not 0.0 <= q <= 1.0:  # also refuses nan
                return None
    return q


def negotiate_language(given: str | None, accept_language: str | None) -> Lang:
    """The one rule choosing the language of an answer: the ``lang`` parameter if `given`, else Accept-Language.

    ``lang`` is a language tag whose primary subtag (before ``-`` or ``_``, any case) is ``en`` or ``zh``
    (``zh-CN`` and ``zh_TW`` are ``zh``); anything else is a ValueError whose message the caller returns in its own
    error format (it repeats at most the first 20 characters of the value).

    Accept-Language (RFC 9110 §12.5.4) is read in one pass without regular expressions, and only its first
    :data:`ACCEPT_LANGUAGE_LIMIT` characters: comma-separated ranges ``tag;q=x``, whitespace around each piece ignored.
    A range whose q is not a number in [0, 1] is skipped; ``q=0`` means "not acceptable", so it is never chosen. Of
    the ranges naming ``en`` or ``zh`` (by primary subtag), the one with the highest q wins, the earlier on a tie.
    ``*`` and every other language are ignored (RFC 9110 allows that: the answer is then in the default). With no
    header, or nothing acceptable in it, the answer is in ``en``.
    """
    if given is not None:
        primary = _primary(given)
        if primary not in LANGUAGES:
            raise ValueError(f"lang must be en or zh, not {given[:_ECHO]!r}")
        return "zh" if primary == "zh" else "en"
    if not accept_language:
        return LANGUAGES[0]
    ranges = accept_language[:ACCEPT_LANGUAGE_LIMIT].split(",")
    if len(accept_language) > ACCEPT_LANGUAGE_LIMIT and accept_language[ACCEPT_LANGUAGE_LIMIT] != ",":
        ranges.pop()  # cut by the limit: not read
    best_q, best = 0.0, LANGUAGES[0]
    for language_range in ranges:
        tag, _, params = language_range.partition(";")
        primary = _primary(tag)
        if primary not in LANGUAGES:
            continue
        q = _weight(params)
        if q is not None and q > best_q:
            best_q, best = q, ("zh" if primary == "zh" else "en")
    return best
