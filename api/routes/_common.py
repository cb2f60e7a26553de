"""What the read API's routers share (``api.routes.public`` lists them): the prefix, the documented error and caching
responses, the path and query parameters several resources take, a route for GET and HEAD, the page size of a list,
and small helpers (the index's state, an agency that must exist, the clock, the JSON of a response model).

A list endpoint declares its page size as ``limit: Limit = DEFAULT_LIMIT``. Its bound and default are the app's
settings (``max_page_size``, ``default_page_size``), and FastAPI reads a parameter's declaration only from the
endpoint's signature, so :func:`include` declares them there for each app as it includes a router.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import copy
import functools
import inspect
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query
from fastapi.routing import APIRoute
from sqlalchemy import Connection
from starlette.routing import BaseRoute

from api.errors import not_found
from api.read.agencies import agency_exists
from api.read.commitments import commitment_exists
from api.read.state import IndexState, index_state
from api.schemas._common import CODE_PATTERN, Model
from api.schemas.errors import ErrorResponse
from api.schemas.figures import MetricsValues
from api.settings import ApiSettings
from ledger.metrics import Metrics

PREFIX = "/api/v1"
INT64_MAX = 2**63 - 1

# --- shared parameter and response declarations ----------------------------------------------------------------------

CODE_DOC = "printable ASCII without spaces, 1 to 66 characters (as written on chain)"
AgencyPath = Annotated[
    str, Path(pattern=CODE_PATTERN, description=f"agency code, {CODE_DOC}", examples=["DEMO-ROADS"])
]
CommitmentPath = Annotated[
    str,
    Path(pattern=CODE_PATTERN, description=f"commitment code, {CODE_DOC}", examples=["STREETLIGHT-48H"]),
]
AgencyQuery = Annotated[
    str | None,
    Query(pattern=CODE_PATTERN, description=f"only this agency ({CODE_DOC})", examples=["DEMO-ROADS"]),
]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Invalid request (the problems are in error.detail)"},
    429: {
        "model": ErrorResponse,
        "description": "Too many requests from this address",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such resource"}}
CACHE_HEADERS = {
    "ETag": {"description": "entity tag, for If-None-Match", "schema": {"type": "string"}},
    "Cache-Control": {"description": "how long the answer may be reused", "schema": {"type": "string"}},
}
NOT_MODIFIED = {304: {"description": "Not modified: If-None-Match matched the current ETag"}}
LINK_HEADER = {
    "Link": {"description": 'RFC 8288 link to the next page (rel="next"), if any', "schema": {"type": "string"}}
}


def ok(description: str, *, headers: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "headers": {**CACHE_HEADERS, **(headers or {})}}}


def read_router(tag: str) -> APIRouter:
    """A resource's router: under :data:`PREFIX`, its operations tagged ``tag``, documenting 422 and 429."""
    return APIRouter(prefix=PREFIX, responses=ERROR_RESPONSES, tags=[tag])


def read_route(router: APIRouter, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding GET (documented) and HEAD (the same answer without its body) for ``path`` to ``router``."""

    def decorate(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, endpoint, methods=["GET"], **kwargs)
        head_kwargs = {k: v for k, v in kwargs.items() if k in ("response_model", "response_class")}
        router.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False, **head_kwargs)
        return endpoint

    return decorate


# --- the page size of a list ------------------------------------------------------------------------------------------

#: the page size parameter of a list endpoint, as declared in its module; :func:`include` gives it the app's bound
Limit = Annotated[int, Query(ge=1)]
#: the default ``limit`` as declared in the module; :func:`include` gives it the app's default
DEFAULT_LIMIT = ApiSettings.default_page_size


def include(app: FastAPI, router: APIRouter, settings: ApiSettings) -> None:
    """Include ``router`` in ``app``, each ``limit: Limit`` of its endpoints declared with the page size of
    ``settings``: at most ``max_page_size``, ``default_page_size`` by default (and documented so)."""
    max_page = settings.max_page_size
    default_page = min(settings.default_page_size, max_page)
    limit = Annotated[
        int,
        Query(ge=1, le=max_page, description=f"page size, at most {max_page}", examples=[default_page]),
    ]
    routes = [_with_page_size(route, limit, default_page) for route in router.routes]
    app.include_router(APIRouter(routes=routes))


def _with_page_size(route: BaseRoute, limit: Any, default: int) -> BaseRoute:
    """``route`` (an APIRoute), or a copy of it whose endpoint's signature declares ``limit`` and ``default`` for
    its page size. FastAPI builds the included route from the endpoint's signature and the route's other attributes,
    so the copy is the route with only the page size changed."""
    if not isinstance(route, APIRoute):
        return route
    signature = inspect.signature(route.endpoint)
    if not any(parameter.annotation is Limit for parameter in signature.parameters.values()):
        return route
    endpoint = route.endpoint
    assert not inspect.iscoroutinefunction(endpoint)  # the wrapper below calls it as a plain function

    @functools.wraps(endpoint)
    def sized(*args: Any, **kwargs: Any) -> Any:
        return endpoint(*args, **kwargs)

    parameters = [
        parameter.replace(annotation=limit, default=default) if parameter.annotation is Limit else parameter
        for parameter in signature.parameters.values()
    ]
    sized.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]  # read by inspect
    copied = copy.copy(route)
    copied.endpoint = sized
    return copied


# --- helpers ----------------------------------------------------------------------------------------------------------


def state_of(conn: Connection, settings: ApiSettings) -> IndexState:
    return index_state(conn, settings.contract_address, settings.chain_id)


def require_agency(conn: Connection, agency_id: str | None, commitment_id: str | None = None) -> None:
    if agency_id is not None and not agency_exists(conn, agency_id):
        raise not_found(f"no agency {agency_id!r}")
    if agency_id is not None and commitment_id is not None and not commitment_exists(
        conn, agency_id, commitment_id
    ):
        raise not_found(f"no commitment {commitment_id!r} of agency {agency_id!r}")


def metric_values(metrics: Metrics) -> MetricsValues:
    return MetricsValues(**metrics.to_dict())


def unix_now() -> int:
    return int(time.time())


def serialise(model: Model) -> bytes:
    """The JSON FastAPI makes of a response model (by alias, compact), for answers returned as a ready Response."""
    return model.model_dump_json(by_alias=True).encode()
