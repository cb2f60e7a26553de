"""The API's routers. ``register_all`` includes every one of them (and its middleware) in the app."""

from __future__ import annotations

from fastapi import FastAPI

from api.settings import ApiSettings


def register_all(app: FastAPI, settings: ApiSettings) -> None:
    from api.routes import audit, citizen, open311, page, public, write

    public.register(app, settings)  # first: its error handlers, rate limiter and CORS apply app-wide
    audit.register(app, settings)
    open311.register(app, settings)
    page.register(app, settings)
    write.register(app, settings)
    citizen.register(app, settings)  # after write: it shares the write API's relay
