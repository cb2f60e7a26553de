"""An API that lies: the real API wrapped in a middleware that changes its answers (to a JSON route, or the Open311
documents in JSON, XML or both), for the auditor's tests that catch it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

from fastapi import FastAPI, Request, Response


def lying(path: str, change: Callable[[Any, Request], Any]) -> Callable[[FastAPI], None]:
    """Wrap the real API so that answers to `path` are changed by `change(body, request)`: an API that lies."""

    def wrap(app: FastAPI) -> None:
        @app.middleware("http")
        async def lie(request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            if request.url.path != path or response.status_code != 200:
                return response
            body = b"".join([chunk async for chunk in response.body_iterator])
            changed = change(json.loads(body), request)
            headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "etag")}
            return Response(json.dumps(changed), status_code=200, headers=headers, media_type="application/json")

    return wrap


XmlChange = Callable[[ElementTree.Element], None]
JsonChange = Callable[[Any], Any]


def lying_open311(prefix: str, *, json_change: JsonChange | None = None,
                  xml_change: XmlChange | None = None) -> Callable[[FastAPI], None]:
    """Wrap the real API so that its Open311 answers under `prefix` are changed: the JSON ones by `json_change`, the
    XML ones by `xml_change` (an operator lying in one format, or both)."""

    def wrap(app: FastAPI) -> None:
        @app.middleware("http")
        async def lie(request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            path = request.url.path
            change = json_change if path.endswith(".json") else xml_change if path.endswith(".xml") else None
            if not path.startswith(prefix) or response.status_code != 200 or change is None:
                return response
            body = b"".join([chunk async for chunk in response.body_iterator])
            if path.endswith(".json"):
                body = json.dumps(change(json.loads(body))).encode()
            else:
                root = ElementTree.fromstring(body)
                change(root)
                body = ElementTree.tostring(root, encoding="utf-8")
            headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "etag")}
            return Response(body, status_code=200, headers=headers)

    return wrap


def all_closed_json(body: Any) -> Any:
    for item in body:
        item["status"] = "closed"
    return body


def all_closed_xml(root: ElementTree.Element) -> None:
    for status in root.iter("status"):
        status.text = "closed"
