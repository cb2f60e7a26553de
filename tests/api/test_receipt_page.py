"""The whole citizen flow, from the page, in headless Chromium: an agency opens a case through the CLI (which prints
the receipt code), the citizen looks it up with the code typed as people type it, cannot rate it before it closes —
and an early rating is refused with a clear message —, rates it once it closes (score by keyboard, a published
comment), and a forged rating (signed by the agency's own key) and a second rating (from a tab opened before the
first was sent) are refused with clear messages; then disputes the fulfilment and sees the agency's answer. In
English at desktop width and in Chinese at 360 px. Screenshots go to pytest's tmp dir and build/screenshots/."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
from typer.testing import CliRunner

from api.app import create_app
from api.settings import ApiSettings
from ledger import receipts
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
from ledger.cli import app as cli_app
from ledger.dev import devnet
from ledger.dev.node import AnvilNode
from ledger.index.sync import Indexer
from ledger.records import Rating, short_code
from ledger.store.db import open_store
from tests.support.browser import AUDIT, CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, Console, screenshot, wait_drawn
from tests.support.cli import code_in

AGENCY = "SH-ROADS"
runner = CliRunner()


@dataclass
class Town:
    node: AnvilNode
    chain: Chain
    ledger: Ledger
    data: Path
    signer: LocalAccount
    store_url: str
    base_url: str = ""

    def cli(self, *args: str) -> str:
        result = runner.invoke(cli_app, ["--rpc-url", self.node.url, "--data-dir", str(self.data), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def at(self, offset: int = 0) -> str:
        now = self.chain.w3.eth.get_block("latest")["timestamp"]
        return datetime.fromtimestamp(now + offset, UTC).isoformat()

    def sync(self) -> None:
        store = open_store(self.store_url)
        try:
            Indexer(self.chain, self.ledger.address, store, confirmations=0).sync()
        finally:
            store.close()


def _serve(settings: ApiSettings) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    """A chain of its own, set up through the operator CLI (agency, key, commitment), indexed, and the app on it."""
    data = tmp_path_factory.mktemp("receipt-page")
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        keys = KeyStore(data / "keys")
        ledger, _ = devnet.ensure_ledger(chain, data, keys)
        signer = keys.get_or_create("roads")
        chain.fund(signer.address)
        chain.fund(keys.get_or_create("relayer-citizens").address)  # the API's citizens' lane pays for their entries
        town = Town(node, chain, ledger, data, signer, f"sqlite:///{data / 'index.sqlite'}")
        town.cli("agency", "register", AGENCY, "--jurisdiction", "CN-SH", "--name-zh", "路政局", "--name-en",
                 "Roads Office")
        town.cli("agency", "authorize", AGENCY, signer.address)
        town.cli("commitment", "publish", "LIGHT-48H", "--service-code", "STREETLIGHT", "--name-zh", "路灯维修",
                 "--name-en", "Streetlight repair", "--deadline", "48", "--unit", "hours", "--target", "95",
                 "--terms", "A dark streetlight is repaired within 48 hours.", "--at", town.at(-7200),
                 "--valid-from", town.at(-7200), "--key", "roads")
        town.sync()
        settings = ApiSettings(store_url=town.store_url, rpc_url=node.url, contract_address=ledger.address,
                               chain_id=chain.chain_id, data_dir=data)
        for url in _serve(settings):
            town.base_url = url
            yield town


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Browser, console: Console, *, viewport: dict[str, int], locale: str) -> Page:
    context = browser.new_context(viewport=viewport, locale=locale, reduced_motion="reduce")
    context.set_default_timeout(15_000)
    page = context.new_page()
    console.watch(page)
    return page


def open_receipt(page: Page, url: str) -> None:
    page.goto(url)
    wait_drawn(page)


def reload(page: Page) -> None:
    page.reload()
    wait_drawn(page)


@pytest.mark.slow
def test_open_look_up_rate_and_dispute_from_the_page(town: Town, browser: Browser, tmp_path: Path) -> None:
    console = Console()
    # the API's refusals below are answers the browser logs as failed requests
    for status in ("status of 403", "status of 409"):
        console.expect(status)

    # -- the agency opens the case at the counter; the CLI prints the citizen's code and the page link
    out = town.cli("case", "open", "LAMP-1", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel",
                   "counter", "--at", town.at(-600), "--page-url", town.base_url, "--key", "roads")
    code = code_in(out)
    assert f"{town.base_url}/#/receipt/{code}" in " ".join(out.split())
    town.sync()

    # -- the citizen types the code: lower case, no dashes, an O for a 0 and an l for a 1
    page = new_page(browser, console, viewport=DESKTOP, locale="en-US")
    open_receipt(page, town.base_url + "/#/receipt")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your receipt")
    typed = code.replace("-", "").lower().replace("0", "o").replace("1", "l")
    field = page.get_by_label("Receipt code")
    field.fill("too-short")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("alert")).to_have_text("A receipt code has 20 letters and digits; this one has 8.")
    expect(field).to_be_focused()
    field.fill(typed)
    field.press("Enter")
    wait_drawn(page)
    assert page.evaluate("location.hash") == f"#/receipt/{code}"
    # the page asked the API for the key's address only: the code stays in the fragment
    expect(page.locator("main")).to_contain_text(receipts.address(code))
    result = page.locator(".case-result")
    expect(result.locator("h2")).to_be_focused()
    events = result.locator("table.events tbody tr")
    expect(events).to_have_count(1)
    expect(events.first.locator("th")).to_have_text("Opened")
    expect(events.first.get_by_role("link")).to_have_attribute("href", re.compile(r"^#/proof/\d+$"))
    # not closed: no rating form, a clear note instead
    feedback = page.locator("section.feedback")
    expect(feedback).to_contain_text("You can rate the service once the agency has closed your case.")
    expect(page.locator("form.rating-form")).to_have_count(0)
    assert page.evaluate(AUDIT) == []

    # -- an early rating (a page that believes the case closed) is refused by the API, and the page says why
    def stale_view(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        body["feedback"].update(can_rate=True, rate_refusal=None)
        route.fulfill(response=answer, body=json.dumps(body), headers={**answer.headers, "etag": '"stale"'})

    page.route("**/api/v1/receipts/*", stale_view)
    reload(page)
    page.get_by_role("radio", name="Satisfied", exact=True).check()
    page.get_by_role("button", name="Send rating").click()
    expect(page.locator(".rating-form .form-outcome[role=alert]")).to_have_text(
        "Refused: the case is not closed yet. You can rate it once the agency has closed it."
    )
    page.unroute("**/api/v1/receipts/*")

    # -- the agency closes the case; the citizen reloads and may rate now; a second tab is opened before rating
    town.cli("case", "close", "LAMP-1", "fulfilled", "--key", "roads")
    town.sync()
    reload(page)
    expect(feedback).not_to_contain_text("once the agency has closed")
    other_tab = page.context.new_page()
    console.watch(other_tab)
    open_receipt(other_tab, page.url)
    expect(other_tab.locator("form.rating-form")).to_have_count(1)

    # -- a forged rating: the agency's own authorised key signs a rating for this case (the page's request, its
    # signature swapped), and is refused
    def forge(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        rating = Rating(agency_id=short_code(body["agency_id"]), case_id=body["case_id"], score=body["score"],
                        comment_hash=body["comment_hash"])
        body["signature"] = "0x" + town.ledger.sign_citizen(town.signer.key, rating).hex()
        route.continue_(post_data=json.dumps(body))

    page.route("**/api/v1/ratings", forge)
    page.get_by_role("radio", name="Very satisfied").check()
    page.get_by_role("button", name="Send rating").click()
    expect(page.locator(".rating-form .form-outcome[role=alert]")).to_have_text(
        "Refused: the signature does not match this case's receipt. Only the code on the case's own receipt can "
        "rate it."
    )
    page.unroute("**/api/v1/ratings")

    # -- the genuine rating: the score chosen with the keyboard, a comment the citizen agrees to publish
    very_dissatisfied = page.get_by_role("radio", name="Very dissatisfied")
    very_dissatisfied.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name="Satisfied", exact=True)).to_be_checked()
    expect(page.get_by_role("radio", name="Satisfied", exact=True)).to_be_focused()
    outline = page.evaluate(
        "getComputedStyle(document.activeElement.nextElementSibling).outlineStyle"
    )  # the focused radio's label shows the focus ring
    assert outline not in ("none", ""), outline
    comment = "Fixed the next morning. 第二天就修好了。"
    rating_form = page.get_by_role("form", name="Rate the service")
    rating_form.get_by_label("Comment (optional)").fill(comment)
    rating_form.get_by_label("Show my text publicly on this page").check()
    rating_form.get_by_role("button", name="Send rating").click()
    status = page.locator(".rating-form .form-outcome[role=status]")
    expect(status).to_have_text(
        re.compile(r"^Thank you\. Your rating is recorded on the public ledger as entry #\d+\.$")
    )
    expect(status).to_be_focused()

    # -- the second tab still shows the form; its rating is refused: a case is rated once
    other_tab.get_by_role("radio", name="Very satisfied").check()
    other_tab.get_by_role("button", name="Send rating").click()
    expect(other_tab.locator(".rating-form .form-outcome[role=alert]")).to_have_text(
        "Refused: this case has already been rated. Each case can be rated only once."
    )
    other_tab.close()

    # -- once indexed, the rating and its published comment are on the receipt's page
    town.sync()
    reload(page)
    expect(feedback).to_contain_text("4 of 5")
    expect(feedback.locator("q.citizen-text")).to_have_text(comment)
    expect(page.locator("form.rating-form")).to_have_count(0)
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-receipt.png", tmp_path)
    receipt_url = page.url

    # -- the rating counts in the agency's scorecard and the commitment's figures
    open_receipt(page, town.base_url + "/#/")
    card = page.locator("table.scorecards tbody tr").filter(has_text="Roads Office")
    expect(card).to_contain_text("4.0 (1)")  # average rating (ratings)
    expect(card).to_contain_text("100%")  # every closed case with a receipt was rated
    open_receipt(page, town.base_url + "/#/commitment/SH-ROADS/LIGHT-48H")
    expect(page.get_by_role("heading", name="Citizens' ratings and disputes")).to_be_visible()
    distribution = page.locator("table.distribution tbody tr")
    expect(distribution).to_have_count(5)
    expect(distribution.nth(1)).to_contain_text("4 · Satisfied")
    expect(distribution.nth(1)).to_contain_text("100%")
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-commitment-ratings.png", tmp_path)
    open_receipt(page, receipt_url)

    # -- the light goes dark again: the citizen disputes the fulfilment, keeping the reason private
    page.get_by_label("What is still wrong? (optional)").fill("The streetlight is dark again.")
    page.get_by_role("button", name="Send dispute").click()
    expect(page.locator(".dispute-form .form-outcome[role=status]")).to_have_text(
        re.compile(r"^Your dispute is recorded on the public ledger as entry #\d+\. The agency must answer it\.$")
    )
    town.sync()
    reload(page)
    disputes = page.locator("table.disputes tbody tr")
    expect(disputes).to_have_count(1)
    expect(disputes.first).to_contain_text("Awaiting the answer")
    expect(disputes.first).to_contain_text("Given, not published")
    expect(feedback).to_contain_text("Your dispute awaits the agency's answer.")

    # -- the agency answers through the CLI by reopening the case
    town.cli("case", "respond", "LAMP-1", "--reopen", "--key", "roads")
    town.sync()
    reload(page)
    expect(disputes.first).to_contain_text("Reopened the case")
    expect(events.last.locator("th")).to_have_text("Reopened")
    expect(page.locator("form.dispute-form")).to_have_count(0)
    assert page.evaluate(AUDIT) == []

    # -- the same page at 360 px in Chinese
    phone = new_page(browser, console, viewport=PHONE, locale="zh-CN")
    open_receipt(phone, page.url)
    expect(phone.locator("html")).to_have_attribute("lang", "zh")
    expect(phone.get_by_role("heading", level=1)).to_have_text("我的回执")
    expect(phone.locator("section.feedback")).to_contain_text("4 分（满分 5 分）")
    expect(phone.locator("table.disputes tbody tr").first).to_contain_text("已重新办理")
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert phone.evaluate(AUDIT) == []
    screenshot(phone, "page-zh-mobile-receipt.png", tmp_path)
    phone.context.close()
    page.context.close()
    assert console.unexpected() == []


@pytest.mark.slow
def test_the_rating_form_at_phone_width_in_chinese(town: Town, browser: Browser, tmp_path: Path) -> None:
    """A closed case's rating and dispute forms fit 360 px, in Chinese, and a wrong code is explained."""
    out = town.cli("case", "open", "LAMP-2", "--commitment", "LIGHT-48H", "--district", "WEST", "--channel",
                   "hotline", "--at", town.at(-300), "--page-url", town.base_url, "--key", "roads")
    code = code_in(out)
    town.cli("case", "close", "LAMP-2", "fulfilled", "--key", "roads")
    town.sync()
    console = Console()
    phone = new_page(browser, console, viewport=PHONE, locale="zh-CN")
    open_receipt(phone, f"{town.base_url}/#/receipt/{code.replace('-', '')}U")
    expect(phone.get_by_role("alert")).to_have_text("回执码只含数字和字母（不含 U）：“U”不是回执码中的字符。")
    open_receipt(phone, f"{town.base_url}/#/receipt/{code}")
    expect(phone.locator("form.rating-form")).to_be_visible()
    expect(phone.locator("form.dispute-form")).to_be_visible()
    expect(phone.get_by_role("radio", name="非常满意")).to_be_attached()
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert phone.evaluate(AUDIT) == []
    screenshot(phone, "page-zh-mobile-receipt-form.png", tmp_path)
    phone.get_by_role("button", name="提交评价").click()
    expect(phone.get_by_role("alert")).to_have_text("请选择 1 到 5 分。")
    phone.context.close()
    assert console.unexpected() == []
