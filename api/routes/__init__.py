"""The API's routers. ``register_all`` includes every one of them in the app (its middleware is ``api.app``'s)."""

from __future__ import annotations

from fastapi import FastAPI

from api.settings import ApiSettings


def register_all(app: FastAPI, settings: ApiSettings) -> None:
    from api.routes import audit, citizen, feeds, filing_writes, intake, open311, page, public, write

    public.register(app, settings)  # first: the read API's paths lead the OpenAPI document
    audit.register(app, settings)
    feeds.register(app, settings)
    open311.register(app, settings)
    page.register(app, settings)
    write.register(app, settings)
    citizen.register(app, settings)  # after write: it shares the write API's relay
    filing_writes.register(app, settings)  # so do citizens' filings and claims (Open311's POST uses its desk)
    intake.register(app, settings)  # agencies read their filings (it asks the chain through the same relay)
