"""The operator's endpoints, outside the public API's document: ``GET /healthz`` (the process serves), ``GET /readyz``
(it should be sent traffic: ``api.readiness``) and ``GET /metrics`` (Prometheus: ``api.prometheus``).

They are for a load balancer, an orchestrator and a scraper: exempt from the cheap reads' budget and cheap whatever
the rate (``api.ops``). Readiness and metrics are each worked out by one thread at a time and reused for a moment.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api import prometheus, readiness
from api.ops import HEALTHZ, METRICS, READYZ, Reused
from api.settings import ApiSettings

#: probes' answers are about this moment: never reused by a cache between the probe and the process
NO_STORE = {"Cache-Control": "no-store"}


async def healthz() -> JSONResponse:
    """200 whenever the process serves: reads nothing (no database, no node)."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> JSONResponse:
    """200 ready or 503 unready, with each check and what it found (``api.readiness``)."""
    checks: Reused[readiness.Readiness] = request.app.state.readiness
    try:
        answer = await asyncio.wait_for(checks.get(), readiness.TIMEOUT)
    except TimeoutError:
        answer = readiness.timed_out()
    return JSONResponse(answer.body(), status_code=200 if answer.ready else 503, headers=NO_STORE)


async def metrics(request: Request) -> Response:
    """The Prometheus text exposition of the app's registry (``api.prometheus``)."""
    text: Reused[bytes] = request.app.state.metrics_text
    return Response(await text.get(), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)


def register(app: FastAPI, settings: ApiSettings) -> None:
    """Add the operator's endpoints to ``app``, which holds its :class:`api.prometheus.ServiceMetrics` as
    ``app.state.prometheus`` (made with the app: the access log observes every request into it) and its node probe
    (``api.routes.public``)."""
    service_metrics: prometheus.ServiceMetrics = app.state.prometheus
    app.state.readiness = Reused(lambda: readiness.check(app, app.state.node_probe.status), readiness.FRESH_FOR)
    app.state.metrics_text = Reused(service_metrics.render, prometheus.FRESH_FOR)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(service_metrics.close)

    router = APIRouter(include_in_schema=False, lifespan=lifespan)
    router.add_api_route(HEALTHZ, healthz, methods=["GET", "HEAD"])
    router.add_api_route(READYZ, readyz, methods=["GET", "HEAD"])
    router.add_api_route(METRICS, metrics, methods=["GET"])
    app.include_router(router)
