"""The citizen web page: served by the app with its own assets, and used in real headless Chromium (Debian's, driven
by Playwright) against the real app on a loopback port over the demo city: load, navigate, look up a case, read the
log, switch language, keyboard only, phone width. Screenshots go to pytest's tmp dir and to build/screenshots/."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, select

from api.app import create_app
from api.routes.page import STATIC_DIR
from api.settings import ApiSettings
from ledger.dev import demo
from ledger.records import Channel
from ledger.store.schema import case_events, cases, entries
from tests.support.browser import AUDIT, PHONE, Console, screenshot, serve, visit, wait_drawn
from tests.support.city import IndexedCity

LOG_PAGE = 50  # views/log.js LOG_PAGE

ROADS = next(a for a in demo.AGENCIES if a.agency_id == "DEMO-ROADS")
STREETLIGHT = ROADS.services[0]


# --- served files (no browser) ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """The app without its lifespan (no store opened): enough for the page and its files."""
    store = tmp_path_factory.mktemp("page") / "unused.sqlite"
    return TestClient(create_app(ApiSettings(store_url=f"sqlite:///{store}", rpc_url=None)))


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def _page_modules() -> list[Path]:
    """The page's own modules: app.js, its siblings and its views (views/), not the vendored code."""
    return sorted(p for p in STATIC_DIR.rglob("*.js") if p.relative_to(STATIC_DIR).parts[0] != "vendor")


def test_index_and_assets_are_served_with_their_types_and_caching(bare_client: TestClient) -> None:
    page = bare_client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert bare_client.get("/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304

    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    urls = [u for u in _asset_urls(page.text) if u.startswith("/static/")]
    assert {Path(u).suffix for u in urls} == set(expected), urls
    for url in urls:
        asset = bare_client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(expected[Path(url).suffix]), url
        # versioned paths: cached for good, since a change of any asset changes the path
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable", url
        assert bare_client.get(url, headers={"If-None-Match": asset.headers["etag"]}).status_code == 304

    # every module the page imports is in the package, and served (also unversioned, revalidated by ETag)
    modules = _page_modules()
    assert {"app.js", "views/scorecards.js"} <= {m.relative_to(STATIC_DIR).as_posix() for m in modules}
    for module in modules:
        name = module.relative_to(STATIC_DIR).as_posix()
        served = bare_client.get(f"/static/{name}")
        assert served.status_code == 200, name
        assert served.headers["content-type"] == "text/javascript; charset=utf-8"
        assert served.headers["cache-control"] == "no-cache"
        # static imports (one line, or the last line of a long one) and dynamic ones: relative, to a file of the page
        specifiers = re.findall(r'^(?:import .*|\}) from "([^"]+)";$|\bimport\("([^"]+)"\)', module.read_text(), re.M)
        for specifier in (static or dynamic for static, dynamic in specifiers):
            target = (module.parent / specifier).resolve()
            assert specifier.startswith(("./", "../")) and target.is_file(), (name, specifier)
            assert target.is_relative_to(STATIC_DIR), (name, specifier)
    assert bare_client.get("/static/no-such-file.js").status_code == 404


def test_the_page_loads_nothing_from_elsewhere(bare_client: TestClient) -> None:
    html = bare_client.get("/").text
    for url in _asset_urls(html):
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url  # same origin: a path or a fragment
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    css = (STATIC_DIR / "style.css").read_text()
    assert "@import" not in css and not re.search(r"url\(", css)
    for module in _page_modules():
        # the only absolute URL in the scripts is the SVG namespace, an identifier that is never fetched
        urls = set(re.findall(r"https?://[^\s\"'`]+", module.read_text()))
        assert urls <= {"http://www.w3.org/2000/svg"}, (module.name, urls)


# --- the page in Chromium ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownCase:
    agency_id: str
    case_id: str
    #: seqs of its events, in ledger order
    event_seqs: list[int]
    #: transaction hash of its first event
    first_tx_hash: str


@pytest.fixture(scope="module")
def known_case(indexed_city: IndexedCity) -> KnownCase:
    """The first row of the cases table, and its events as the index has them."""
    engine = create_engine(indexed_city.store_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(cases.c.agency_id, cases.c.case_id).limit(1)).one()
            seqs = list(
                conn.scalars(
                    select(case_events.c.seq)
                    .where(case_events.c.agency_id == row.agency_id, case_events.c.case_id == row.case_id)
                    .order_by(case_events.c.seq)
                )
            )
            tx_hash = conn.execute(select(entries.c.tx_hash).where(entries.c.seq == seqs[0])).scalar_one()
    finally:
        engine.dispose()
    return KnownCase(row.agency_id, "0x" + bytes(row.case_id).hex(), seqs, "0x" + bytes(tx_hash).hex())


@pytest.fixture(scope="module")
def agencies_with_hotline_cases(indexed_city: IndexedCity) -> set[str]:
    engine = create_engine(indexed_city.store_url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(cases.c.agency_id).where(cases.c.channel == Channel.HOTLINE).distinct()))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def base_url(api_settings: ApiSettings) -> Iterator[str]:
    """The real app, served by uvicorn in a thread on a free loopback port, without the figures' limits per client
    (tests/api/test_overload.py and test_abuse.py test those): on a loaded machine the views' figures, computed afresh
    for one loopback client, would take more than a citizen's share, which the page waits out but the browser logs as
    a failed load."""
    with serve(dataclasses.replace(api_settings, expensive_rate_per_minute=0, computation_share=1.0)) as url:
        yield url


@pytest.mark.slow
def test_scorecards_lead_to_an_agency_and_a_commitment_with_its_trend(
    page: Page, base_url: str, agencies_with_hotline_cases: set[str], tmp_path: Path
) -> None:
    visit(page, base_url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("How agencies keep their promises")
    rows = page.locator("table.scorecards tbody tr")
    expect(rows).to_have_count(len(demo.AGENCIES))
    for agency in demo.AGENCIES:
        expect(page.locator("table.scorecards tbody th").get_by_text(agency.name_en, exact=True)).to_be_visible()
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en.png", tmp_path)

    # filters go to the address (so a filtered view can be shared) and to the API
    page.get_by_label("Channel").select_option(label="Hotline")
    page.get_by_role("button", name="Apply").click()
    wait_drawn(page)
    assert page.evaluate("location.hash") == f"#/?channel={int(Channel.HOTLINE)}"
    assert 0 < len(agencies_with_hotline_cases) < len(demo.AGENCIES)
    expect(rows).to_have_count(len(agencies_with_hotline_cases))
    page.get_by_role("button", name="Reset").click()
    wait_drawn(page)
    expect(rows).to_have_count(len(demo.AGENCIES))

    page.get_by_role("link", name=ROADS.name_en, exact=True).click()
    wait_drawn(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(ROADS.name_en)
    expect(page.locator("h1")).to_be_focused()  # a navigation starts the reader at the new view's heading
    for service in ROADS.services:
        expect(page.get_by_role("link", name=service.name_en, exact=True)).to_be_visible()
    assert page.evaluate(AUDIT) == []

    page.get_by_role("link", name=STREETLIGHT.name_en, exact=True).click()
    wait_drawn(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(STREETLIGHT.name_en)
    chart = page.locator("svg.trend-chart[role=img]")
    expect(chart).to_be_visible()
    bars = chart.locator("rect.bar")
    assert bars.count() > 0
    expect(chart.locator(".target line")).to_have_count(1)  # the target as a reference line
    expect(chart.locator("title").first).to_contain_text("on time per day")
    expect(chart.locator("desc")).to_contain_text("target of 95%")
    # the data table fallback holds one row per bucket: a bar, or a mark where nothing was fulfilled
    page.get_by_text("The chart's figures as a table").click()
    buckets = page.locator("details.chart-data tbody tr")
    expect(buckets).to_have_count(bars.count() + chart.locator(".bar-empty").count())
    assert buckets.count() == 30
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-commitment.png", tmp_path)

    page.get_by_role("radio", name="Week").check()
    wait_drawn(page)
    expect(page.locator("details.chart-data tbody tr")).to_have_count(26)
    expect(page.get_by_role("radio", name="Week")).to_be_focused()


@pytest.mark.slow
def test_case_lookup_shows_every_event_with_its_proof(
    page: Page, base_url: str, known_case: KnownCase, tmp_path: Path
) -> None:
    visit(page, base_url + "/#/case")
    page.get_by_label("Agency").select_option(known_case.agency_id)
    page.get_by_label("Case id").fill(known_case.case_id)
    page.get_by_role("button", name="Look up").click()
    wait_drawn(page)
    result = page.locator(".case-result")
    expect(result.locator("h2")).to_contain_text(known_case.case_id)
    expect(result.locator("h2")).to_be_focused()
    events = result.locator("table.events tbody tr")
    expect(events).to_have_count(len(known_case.event_seqs))
    expect(events.first.locator("th")).to_have_text("Opened")
    for row, seq in zip(events.all(), known_case.event_seqs, strict=True):
        expect(row.get_by_role("link", name=f"Proof of entry #{seq}")).to_have_attribute("href", f"#/proof/{seq}")
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-case.png", tmp_path)

    events.first.get_by_role("link").click()
    wait_drawn(page)
    first = known_case.event_seqs[0]
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Proof of entry #{first}")
    expect(page.locator("main")).to_contain_text(known_case.first_tx_hash)
    proof_json = page.locator("pre.json code").last.inner_text()
    assert f'"tx_hash": "{known_case.first_tx_hash}"' in proof_json
    assert '"chain_id": ' in proof_json and '"contract_address": "0x' in proof_json
    expect(page.locator("main")).to_contain_text("eth_getTransactionReceipt")
    page.get_by_role("button", name="Copy JSON").click()
    expect(page.locator(".copy-status")).not_to_be_empty()
    assert page.evaluate(AUDIT) == []

    page.get_by_role("link", name="Back to the case").click()
    wait_drawn(page)
    expect(page.locator("table.events tbody tr")).to_have_count(len(known_case.event_seqs))


@pytest.mark.slow
def test_case_lookup_checks_its_input_and_reports_an_unknown_case(
    page: Page, base_url: str, known_case: KnownCase, console: Console
) -> None:
    visit(page, base_url + "/#/case")
    page.get_by_label("Case id").fill("0x1234")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("alert")).to_have_text("Choose the agency that handles the case.")
    expect(page.get_by_label("Agency")).to_be_focused()
    page.get_by_label("Agency").select_option(known_case.agency_id)
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("alert")).to_contain_text("64 hexadecimal digits")
    expect(page.get_by_label("Case id")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Case id")).to_be_focused()

    console.expect("status of 404")  # the browser logs the API's 404 for a case that is not there
    page.get_by_label("Case id").fill("0x" + "ab" * 32)
    page.get_by_role("button", name="Look up").click()
    wait_drawn(page)
    expect(page.get_by_role("alert")).to_have_text("No case with this id is recorded by this agency.")


@pytest.mark.slow
def test_unknown_addresses_show_not_found(page: Page, base_url: str, console: Console) -> None:
    console.expect("status of 404")  # the API's answer for the agency that is not there
    for path in ("/#/no/such/view", "/#/agency/NO-SUCH-AGENCY", "/#/case/%E0%A4%A/0x00"):
        visit(page, base_url + path)
        expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    page.get_by_role("link", name="Go to the scorecards").click()
    wait_drawn(page)
    expect(page.locator("table.scorecards tbody tr")).to_have_count(len(demo.AGENCIES))


@pytest.mark.slow
def test_raw_log_loads_more_with_the_cursor(page: Page, base_url: str) -> None:
    visit(page, base_url + "/#/log")
    rows = page.locator("table.log tbody tr")
    expect(rows).to_have_count(LOG_PAGE)
    expect(rows.first.locator("th")).to_have_text("#0")
    expect(rows.first).to_contain_text("Agency registered")
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(2 * LOG_PAGE)
    expect(rows.nth(LOG_PAGE).locator("th")).to_have_text(f"#{LOG_PAGE}")
    expect(page.locator(".log-status")).to_have_text(f"{2 * LOG_PAGE} entries shown.")
    expect(page.get_by_role("button", name="Load more")).to_be_focused()
    assert page.evaluate(AUDIT) == []


@pytest.mark.slow
def test_language_switch(page: Page, base_url: str) -> None:
    visit(page, base_url + "/")
    english, chinese = page.get_by_role("button", name="English"), page.get_by_role("button", name="中文")
    expect(english).to_have_attribute("aria-pressed", "true")
    expect(chinese).to_have_attribute("aria-pressed", "false")
    chinese.click()
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    expect(chinese).to_have_attribute("aria-pressed", "true")
    expect(english).to_have_attribute("aria-pressed", "false")
    expect(chinese).to_be_focused()  # the view is redrawn, the focus stays on the switch
    expect(page.get_by_role("heading", level=1)).to_have_text("各部门承诺兑现情况")
    expect(page.get_by_role("navigation", name="主导航")).to_contain_text("办件查询")
    for agency in demo.AGENCIES:
        expect(page.locator("table.scorecards tbody th").get_by_text(agency.name_zh, exact=True)).to_be_visible()
    expect(page.locator("footer")).to_contain_text("UTC+8")
    # the choice is kept
    page.reload()
    wait_drawn(page)
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    expect(page.get_by_role("heading", level=1)).to_have_text("各部门承诺兑现情况")
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("How agencies keep their promises")


@pytest.mark.slow
def test_keyboard_alone_reaches_a_case_and_its_proof(page: Page, base_url: str, known_case: KnownCase) -> None:
    visit(page, base_url + "/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    assert page.evaluate("location.hash") in ("", "#/")  # the skip link leaves the router alone

    page.reload()  # from the top of the page again: forward through the header to the navigation
    wait_drawn(page)
    case_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Case lookup")
    for _ in range(10):
        if case_link.evaluate("link => link === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(case_link).to_be_focused()
    page.keyboard.press("Enter")
    wait_drawn(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Look up a case")
    expect(page.locator("h1")).to_be_focused()

    agency = page.get_by_label("Agency")
    page.keyboard.press("Tab")
    expect(agency).to_be_focused()
    for _ in range(len(demo.AGENCIES) + 1):
        if agency.input_value() == known_case.agency_id:
            break
        page.keyboard.press("ArrowDown")
    expect(agency).to_have_value(known_case.agency_id)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Case id")).to_be_focused()
    page.keyboard.type(known_case.case_id)
    page.keyboard.press("Enter")
    wait_drawn(page)
    expect(page.locator(".case-result h2")).to_be_focused()
    expect(page.locator("table.events tbody tr")).to_have_count(len(known_case.event_seqs))

    proof = page.get_by_role("link", name=f"Proof of entry #{known_case.event_seqs[0]}")
    for _ in range(40):
        if proof.evaluate("link => link === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(proof).to_be_focused()
    page.keyboard.press("Enter")
    wait_drawn(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Proof of entry #{known_case.event_seqs[0]}")
    # the focused element shows a visible focus ring
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline


@pytest.mark.slow
def test_phone_width_in_chinese(phone: Page, base_url: str, known_case: KnownCase, tmp_path: Path) -> None:
    views = {
        "page-zh-mobile.png": "/#/",
        "page-zh-mobile-agency.png": f"/#/agency/{ROADS.agency_id}",
        "page-zh-mobile-commitment.png": f"/#/commitment/{ROADS.agency_id}/{STREETLIGHT.code}",
        "page-zh-mobile-case.png": f"/#/case/{known_case.agency_id}/{known_case.case_id}",
        "page-zh-mobile-proof.png": f"/#/proof/{known_case.event_seqs[0]}",
        "page-zh-mobile-log.png": "/#/log",
    }
    for name, path in views.items():
        visit(phone, base_url + path)
        # Chinese by default, for a browser that prefers it
        expect(phone.locator("html")).to_have_attribute("lang", "zh")
        assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"], path
        assert phone.evaluate(AUDIT) == [], path
        if name in ("page-zh-mobile.png", "page-zh-mobile-case.png"):
            screenshot(phone, name, tmp_path)
    expect(phone.get_by_role("heading", level=1)).to_have_text("原始账本日志")


@pytest.mark.slow
def test_the_page_waits_out_a_shed_answer_as_it_is_asked_to(page: Page, base_url: str, console: Console) -> None:
    """Under load the API sheds new figures (503 with Retry-After) and refuses a spent budget (429): the page asks again
    after the wait named, rather than showing an error. The server's overload is played by the browser's network
    layer: the first answer to the scorecards is a 503, then the real API answers."""
    asked: list[str] = []

    def shed_once(route: Any) -> None:
        asked.append(route.request.url)
        if len(asked) == 1:
            route.fulfill(status=503, headers={"Retry-After": "1", "Content-Type": "application/json"},
                          body='{"error": {"code": "overloaded", "message": "busy"}}')
        else:
            route.continue_()

    page.route("**/api/v1/scorecards*", shed_once)
    console.expect("status of 503")  # the browser reports the shed answer's load; nothing else may fail
    began = time.monotonic()
    visit(page, base_url + "/")
    expect(page.locator("table.scorecards tbody tr")).to_have_count(len(demo.AGENCIES))
    assert len(asked) == 2 and time.monotonic() - began >= 1
