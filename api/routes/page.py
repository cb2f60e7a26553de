"""The citizen web page: ``/`` and its static assets (``api/static``, shipped in the package; no CDN, no build step).

Caching: the assets are served under ``/static/<version>/``, where the version is a digest of every static file, and
cached for a year (``immutable``); ``index.html`` names them by that path and is served with ``no-cache`` and an
ETag, so a browser revalidates it on every visit and gets new assets exactly when they change. The same files are also
under ``/static/`` (ETag, ``no-cache``) for links that do not know the version.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from fastapi import FastAPI, Request, Response
from starlette.datastructures import Headers
from starlette.responses import FileResponse
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from api.http import IMMUTABLE, not_modified
from api.settings import ApiSettings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Content types by extension, so they do not depend on the host's mime.types (a module script must be JavaScript)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}

#: The page loads nothing from elsewhere; the policy makes the browser refuse if anything ever tries to.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
REVALIDATE = "no-cache"


class _Assets(StaticFiles):
    """Static files with fixed content types, a Cache-Control header and the page's security headers."""

    def __init__(self, directory: Path, cache_control: str) -> None:
        super().__init__(directory=directory)
        self.cache_control = cache_control

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        media_type = CONTENT_TYPES.get(Path(full_path).suffix.lower())
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result, media_type=media_type)
        response.headers["Cache-Control"] = self.cache_control
        response.headers.update(SECURITY_HEADERS)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def asset_version(directory: Path = STATIC_DIR) -> str:
    """A digest of every file under `directory` (names and contents): it changes whenever any asset does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def render_index(version: str, directory: Path = STATIC_DIR) -> bytes:
    """index.html with its asset paths — in attributes and in the import map — pointing at the versioned copies."""
    html = (directory / "index.html").read_text(encoding="utf-8")
    return html.replace('"/static/', f'"/static/{version}/').encode("utf-8")


_INLINE_SCRIPT = re.compile(rb"<script(?: [^>]*)?>(.*?)</script>", re.S)


def content_security_policy(index: bytes) -> str:
    """The page's policy, allowing its inline scripts — only the import map, which cannot be a file in every
    browser — by their SHA-256 (CSP Level 2 hash sources), and nothing else inline."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(match.group(1)).digest()).decode() + "'"
        for match in _INLINE_SCRIPT.finditer(index)
        if match.group(1).strip()
    ]
    return CONTENT_SECURITY_POLICY.replace("script-src 'self'", " ".join(["script-src 'self'", *hashes]))


def register(app: FastAPI, settings: ApiSettings) -> None:
    version = asset_version()
    index = render_index(version)
    etag = f'"{hashlib.sha256(index).hexdigest()[:32]}"'
    index_headers = {
        "ETag": etag, "Cache-Control": REVALIDATE, **SECURITY_HEADERS,
        "Content-Security-Policy": content_security_policy(index),
    }

    def page(request: Request) -> Response:
        if not_modified(request, etag):
            return Response(status_code=304, headers=index_headers)
        return Response(index, media_type=CONTENT_TYPES[".html"], headers=index_headers)

    app.add_api_route("/", page, methods=["GET", "HEAD"], include_in_schema=False)
    # the versioned mount first: "/static" would otherwise take its paths and find no such file
    app.mount(f"/static/{version}", _Assets(STATIC_DIR, IMMUTABLE), name="static-versioned")
    app.mount("/static", _Assets(STATIC_DIR, REVALIDATE), name="static")
