"""The FastAPI application: ``create_app(settings)`` wires the routers; ``python -m api`` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import errors
from api.accesslog import AccessLogWithoutPersonalData
from api.bodies import BodyLimitMiddleware
from api.clients import Clients
from api.deps import close_index_reader
from api.ops import ReadBudgetExceptProbes
from api.prometheus import ServiceMetrics
from api.ratelimit import Budget
from api.settings import ApiSettings
from ledger.store.db import open_store

DESCRIPTION = """
Civic Ledger: public-service commitments and every case recorded under them, on an Ethereum-compatible chain.

Everything here is read from an index of the chain and carries its proof (transaction hash, block number and time,
log index, entry hash), so anyone can check it against a node. No login is needed to read. Agencies write by
sending records signed with EIP-712 (`eth_signTypedData_v4`) by an authorised key.
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.store_url, statement_timeout_ms=settings.statement_timeout_ms, pool_timeout=5)
        app.state.store = store
        try:
            yield
        finally:
            close_index_reader(app)  # before the store it reads
            store.close()

    app = FastAPI(
        title="Civic Ledger",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    #: who a request comes from (``api.clients``), and the budgets every route shares (``api.ratelimit``)
    app.state.clients = Clients(settings.trusted_proxies)
    app.state.read_budget = Budget("reads", settings.read_rate_per_minute, "reads")
    app.state.expensive_budget = Budget(
        "expensive", settings.expensive_rate_per_minute, "expensive reads (figures not yet computed, exports)"
    )
    #: the app's Prometheus registry (``api.prometheus``): the access log observes every request into it
    app.state.prometheus = ServiceMetrics(app)
    _install_middleware(app, settings)
    _include_routers(app, settings)
    return app


def _install_middleware(app: FastAPI, settings: ApiSettings) -> None:
    """What applies to every request: the error shape (``api.errors``), bodies bounded while they arrive
    (``api.bodies``), the cheap reads' budget per client (``api.ratelimit``; the operator's probes exempt:
    ``api.ops``), CORS for GET/HEAD/OPTIONS, and the access log without personal data, with request ids and the
    requests' metrics (``api.accesslog``)."""
    errors.install(app)
    # every body bounded in size and time, whatever route takes it (``api.bodies``)
    app.add_middleware(BodyLimitMiddleware)
    # Added before CORS so that CORS is the outer layer: a 429 then carries CORS headers a browser can read.
    app.add_middleware(ReadBudgetExceptProbes, budget=app.state.read_budget, clients=app.state.clients)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["ETag", "Link", "Retry-After", "Content-Disposition", "X-Request-ID"],
        max_age=86_400,
    )
    # outermost but the error middleware: one line per request, 429s and 413s included, with the route's template
    # and never the client, the path's values or the query (``api.accesslog``); each request's id, and its metrics
    app.add_middleware(AccessLogWithoutPersonalData, clients=app.state.clients,
                       observe=app.state.prometheus.observe_request)


def _include_routers(app: FastAPI, settings: ApiSettings) -> None:
    """Each router lives in api/routes/ and is included here; a missing one is an error, not a silent gap. The
    operator's endpoints come last, outside the public API's document (``api.routes.ops``)."""
    from api.routes import ops, register_all

    register_all(app, settings)
    ops.register(app, settings)
