"""One JSON shape for every error the API returns: ``{"error": {"code": "...", "message": "..."}}``, and one table
of the codes (:data:`ERRORS`): each code has one HTTP status, whichever route answers with it.

Routers raise :class:`ApiError` (or FastAPI's ``HTTPException``) or return :func:`refusal`; :func:`install`
registers the handlers that turn exceptions, request validation failures (FastAPI's detail kept under
``error.detail``) and unexpected failures into it.

The statuses follow HTTP's meaning: 400 a request that cannot be taken as it is written (not JSON, a signature that
does not decode or recover, a record or domain that is wrong), 422 a well-formed body or query that fails the
documented shape or means nothing, 401 no valid access token, 403 a valid signature by a key without the right, 404
nothing there, 408 a body that did not arrive in time, 409 a conflict with the ledger's state, 413 too large, 429 a
limit (with ``Retry-After``, naming the budget), 503 the node, the relay, or the server shedding expensive work under
load (with ``Retry-After``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.accesslog import REQUEST_ID_HEADER, failure_of, method_of, route_of
from ledger.store.db import is_statement_timeout

log = logging.getLogger(__name__)

#: every error code the API answers with, and its one HTTP status
ERRORS: dict[str, int] = {
    # 400: not a request that can be taken as written
    "bad_request": 400,
    "invalid_json": 400,
    "unsupported_primary_type": 400,
    "wrong_types": 400,
    "wrong_domain": 400,
    "wrong_chain": 400,
    "wrong_contract": 400,
    "invalid_record": 400,
    "bad_signature": 400,
    "signer_mismatch": 400,
    "expired": 400,
    "invalid_address": 400,
    "work_missing": 400,
    "page_too_deep": 400,
    # 403: a valid signature by a key that may not do this
    "unauthenticated": 401,
    "token_expired": 401,
    "unauthorized_signer": 403,
    "agency_mismatch": 403,
    "forged_signature": 403,
    # 404
    "not_found": 404,
    "unknown_receipt": 404,
    "unknown_agency": 404,
    "unknown_commitment": 404,
    "report_unavailable": 404,
    "report_not_attested": 404,
    "batch_file_unavailable": 404,
    # 405, 406
    "method_not_allowed": 405,
    "not_acceptable": 406,
    # 408: the body did not arrive in time
    "body_timeout": 408,
    # 409: the ledger's state refuses it
    "conflict": 409,
    "duplicate": 409,
    "stale_nonce": 409,
    "not_closed": 409,
    "already_rated": 409,
    "not_fulfilled": 409,
    "already_disputed": 409,
    "closure_disputed": 409,
    "stale_closure": 409,
    "dispute_window_closed": 409,
    "refused_by_ledger": 409,
    "commitment_retired": 409,
    "receipt_in_use": 409,
    "already_claimed": 409,
    # 413, 415
    "body_too_large": 413,
    "unsupported_media_type": 415,
    # 422: well formed, but not the documented shape, or meaningless
    "invalid_request": 422,
    "invalid_body": 422,
    "text_mismatch": 422,
    "hash_mismatch": 422,
    "content_mismatch": 422,
    # 429: a limit
    "rate_limited": 429,
    "budget_exceeded": 429,
    "citizen_queue_full": 429,
    "filing_queue_full": 429,
    "filing_budget_exhausted": 429,
    # 500, 503
    "internal_error": 500,
    "unavailable": 503,
    "write_unavailable": 503,
    "node_unavailable": 503,
    "overloaded": 503,
    "query_timeout": 503,
    "exports_busy": 503,
}

#: the code of each status the API answers with when the raiser named none (an HTTPException, a framework answer)
STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with its code's status (:data:`ERRORS`) and optional
    headers."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        detail: Sequence[Mapping[str, Any]] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = ERRORS[code]
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.detail = list(detail) if detail is not None else None
        #: further facts beside code and message (e.g. which budget), JSON values
        self.extra = dict(extra or {})

    def response(self) -> JSONResponse:
        return error_response(self.status_code, self.code, self.message, headers=self.headers, detail=self.detail,
                              extra=self.extra)


def refusal(code: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The answer refusing a request with ``code`` (its status from :data:`ERRORS`); ``extra`` adds facts beside code
    and message (None values left out)."""
    return error_response(ERRORS[code], code, message, headers=headers, extra=extra)


def not_found(message: str) -> ApiError:
    return ApiError("not_found", message)


def budget_exceeded(budget: str, message: str, *, limit: int, used: int, resets_at: int, retry_after: int) -> ApiError:
    """429 for a relayed write that would take its signer past one of its budgets (``ledger.relay.budgets``): names
    the budget and when enough of it is free again (unix seconds, and ``Retry-After`` in seconds)."""
    return ApiError(
        "budget_exceeded", message, headers={"Retry-After": str(max(1, retry_after))},
        extra={"budget": budget, "limit": limit, "used": used, "resets_at": resets_at},
    )


def invalid(message: str, *, param: str | None = None, location: str = "query") -> ApiError:
    """422 for a request that is well formed but means nothing (bad date, empty range, unknown unit)."""
    detail = None
    if param is not None:
        detail = [{"loc": [location, param], "msg": message, "type": "value_error"}]
    return ApiError("invalid_request", message, detail=detail)


def error_body(
    code: str,
    message: str,
    detail: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    error.update({k: v for k, v in (extra or {}).items() if v is not None and k not in error})
    if detail is not None:
        error["detail"] = list(detail)
    return {"error": error}


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    detail: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, detail, extra), status_code=status_code, headers=dict(headers or {}))


def validation_detail(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's validation errors reduced to JSON-safe ``loc`` / ``msg`` / ``type`` (the input is not echoed: it
    may be large, and it is what the caller sent anyway)."""
    out: list[dict[str, Any]] = []
    for error in errors:
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        out.append({"loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))})
    return out


def _validation_message(detail: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for error in detail[:3]:
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    if len(detail) > 3:
        parts.append(f"and {len(detail) - 3} more")
    return "; ".join(parts) or "invalid request"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "client_error" if exc.status_code < 500 else "server_error")
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = validation_detail(exc.errors())
    return error_response(422, "invalid_request", _validation_message(detail), detail=detail)


#: seconds a client is asked to wait before trying again after a read ran out of time, and after the server had no
#: free database connection for it
QUERY_TIMEOUT_RETRY_AFTER = 10
OVERLOADED_RETRY_AFTER = 2


def overloaded(message: str, retry_after: int) -> ApiError:
    """503 ``overloaded``: the server sheds this request's work for now (says what), come back in `retry_after` s."""
    return ApiError("overloaded", message, headers={"Retry-After": str(retry_after)})


def query_timeout(message: str) -> ApiError:
    """503 ``query_timeout``: reading the answer took longer than a read may (says what), come back later."""
    return ApiError("query_timeout", message, headers={"Retry-After": str(QUERY_TIMEOUT_RETRY_AFTER)})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A statement stopped by the store's statement timeout (``ledger.store.db.open_store``): 503 ``query_timeout``.
    Any other database error goes on to :func:`_unexpected`."""
    if not is_statement_timeout(exc):
        raise exc
    log.warning("a statement answering %s %s ran past the statement timeout and was stopped", method_of(request),
                route_of(request))
    return query_timeout(
        "the database took too long to answer this request, so it was stopped; try again later, or ask for less "
        "(a narrower selection or range)"
    ).response()


async def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
    """No database connection came free in time (every one busy with other requests): 503 ``overloaded``."""
    log.warning("no database connection came free in time to answer %s %s", method_of(request), route_of(request))
    return overloaded(
        "the server is answering too many requests at once to take this one; try again shortly", OVERLOADED_RETRY_AFTER
    ).response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # the exception without its messages: they may quote what the client sent, or the SQL's parameters
    log.error("unexpected error answering %s %s:\n%s", method_of(request), route_of(request), failure_of(exc))
    # the request's id, as every other answer carries it (this one is made outside the access log's reach)
    request_id = request.scope.get("state", {}).get("request_id")
    return error_response(500, "internal_error", "the server failed to answer; the error was logged",
                          headers={REQUEST_ID_HEADER: request_id} if request_id else None)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (every router's errors then share the shape)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # a statement past the statement timeout, as SQLAlchemy wraps it or as the drivers raise it (the hot paths
    # read through the drivers: ``api.deps.IndexReader``)
    for database_error in (sqlalchemy.exc.OperationalError, sqlite3.OperationalError, psycopg.errors.QueryCanceled):
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _pool_exhausted)
    app.add_exception_handler(Exception, _unexpected)
