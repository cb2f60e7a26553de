"""The harness of the page tests (``tests/api/test_page.py`` and its siblings): Debian's Chromium driven by
Playwright (the ``playwright``, ``browser``, ``console``, ``page`` and ``phone`` fixtures of ``tests/api/conftest.py``
use it), a console watcher, waiting for a view to be drawn, screenshots, the structure checks, and the real app
served by uvicorn on a loopback port."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

from api.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
# Never `playwright install` (it downloads): Debian's Chromium, launched as TOOLCHAIN.md says.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


class Console:
    """Console errors and warnings, uncaught exceptions and failed requests of a page: the test fails on any of them
    but those it said to expect."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.expected: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"uncaught: {error}"))
        page.on("requestfailed", lambda request: self.seen.append(f"request failed: {request.url}"))

    def expect(self, text: str) -> None:
        self.expected.append(text)

    def unexpected(self) -> list[str]:
        return [line for line in self.seen if not any(text in line for text in self.expected)]

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.seen.append(f"console {message.type}: {message.text}")


def open_page(browser: Browser, console: Console, *, viewport: ViewportSize, locale: str) -> Iterator[Page]:
    """A new browser context's page (`viewport`, `locale`, reduced motion), its console watched; when the test is
    done, nothing unexpected may have been logged."""
    context = browser.new_context(viewport=viewport, locale=locale, reduced_motion="reduce")
    context.set_default_timeout(10_000)
    page = context.new_page()
    console.watch(page)
    try:
        yield page
        assert console.unexpected() == []
    finally:
        context.close()


def visit(page: Page, url: str) -> None:
    """Go to `url` and wait until the view is drawn."""
    page.goto(url)
    wait_drawn(page)


def wait_drawn(page: Page) -> None:
    """Wait until the view of the current address is on screen (the router marks which one it drew)."""
    page.wait_for_function(
        "() => { const main = document.getElementById('main');"
        " return main.dataset.drawn === location.hash && !main.hasAttribute('aria-busy'); }"
    )


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=tmp_path / name, full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / name, SCREENSHOTS / name)


#: structure checks: landmarks, one h1 and no skipped heading level, captions and scoped headers on every table,
#: a label on every control, alt text on every image; returns what is wrong
AUDIT = """() => {
  const problems = [];
  for (const tag of ["header", "nav", "main", "footer"]) if (!document.querySelector(tag)) problems.push(`no <${tag}>`);
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")].map((h) => Number(h.tagName[1]));
  const h1s = headings.filter((level) => level === 1).length;
  if (h1s !== 1) problems.push(`${h1s} h1 headings`);
  headings.reduce((previous, level) => {
    if (level > previous + 1) problems.push(`heading h${level} after h${previous}`);
    return level;
  }, 0);
  for (const table of document.querySelectorAll("table")) {
    if (!table.querySelector("caption")?.textContent.trim()) problems.push("table without caption");
    for (const th of table.querySelectorAll("th")) if (!th.getAttribute("scope")) problems.push("th without scope");
  }
  for (const control of document.querySelectorAll("input, select, textarea")) {
    if (!control.labels?.length && !control.getAttribute("aria-label")) problems.push(`unlabelled ${control.name}`);
  }
  for (const img of document.querySelectorAll("img")) if (!img.hasAttribute("alt")) problems.push("img without alt");
  for (const svg of document.querySelectorAll("svg[role=img]")) {
    if (!svg.querySelector("title")?.textContent.trim() || !svg.querySelector("desc")?.textContent.trim()) {
      problems.push("chart without title or desc");
    }
  }
  return problems;
}"""


@contextmanager
def serve(settings: Any) -> Iterator[str]:
    """The app on these settings, served by uvicorn on a free local port: its base URL."""
    with serve_app(create_app(settings)) as url:
        yield url


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn in a thread on a free local port (its own proxy handling off, as ``python -m api``
    serves): its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
