"""Public read API, under ``/api/v1``: chain facts, agencies, commitments, metrics and scorecards, cases, the raw
citizens' filings, entry log, Merkle-anchored batches and bulk exports. No login; every record carries its proof.

One module per resource, each with its router and the description of its tag (:data:`READ_API`, in the order their
paths are documented); what they share is in ``api.routes._common``, their dependencies (settings, a snapshot of the
index, the figures cache) in ``api.deps``. The error shape, rate limiting and CORS are the whole app's
(``api.app.create_app``). Caching follows ``api.http``: immutable data (final entries, final commitment versions, full
pages of final entries) is served ``immutable`` with a strong ETag; everything else with an ETag of the index position
and a short max-age; a matching ``If-None-Match`` is answered 304.

The two hot paths answer without a thread: a case lookup (``api.routes.cases``) and metrics and scorecards
(``api.routes.figures``, from the app's figures cache) each start with one statement awaited on the event loop
(``api.deps.IndexReader``).
"""

from __future__ import annotations

from fastapi import FastAPI

from api.overload import ExpensiveWork
from api.read.figures import FiguresCache
from api.routes import agencies, batches, cases, chain, commitments, entries, exports, figures, filings
from api.routes._common import include
from api.settings import ApiSettings

#: the read API's resources, in the order of their paths (and tags) in the OpenAPI document
READ_API = (chain, agencies, commitments, figures, cases, filings, entries, batches, exports)


def register(app: FastAPI, settings: ApiSettings) -> None:
    """Include the read API in ``app``, with what its endpoints depend on: the figures cache, the bound on figures
    computed at once (``api.overload``) and the node probe."""
    app.state.figures_cache = FiguresCache()
    app.state.figure_work = ExpensiveWork("figures", settings.max_computations, settings.max_computations_waiting,
                                          share=settings.computation_share)
    app.state.node_probe = chain.NodeProbe(settings.rpc_url)
    for resource in READ_API:
        include(app, resource.router, settings)
    app.openapi_tags = (app.openapi_tags or []) + [resource.TAG for resource in READ_API]


__all__ = ["READ_API", "register"]
