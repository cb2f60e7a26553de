"""The FastAPI application: ``create_app(settings)`` wires the routers; ``python -m api`` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

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
        store = open_store(settings.store_url)
        app.state.store = store
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="Civic Ledger",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    _include_routers(app, settings)
    return app


def _include_routers(app: FastAPI, settings: ApiSettings) -> None:
    """Each router lives in api/routes/ and is included here; a missing one is an error, not a silent gap."""
    from api.routes import register_all

    register_all(app, settings)
