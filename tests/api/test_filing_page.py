"""Filing a request and claiming a printed receipt from the citizen page, end to end in headless Chromium on a chain of
its own (``tests.support.town``). In English at desktop width: the citizen files a request with a photo and contact
details, the code is shown once and sent nowhere, the filing is on the ledger with its content in the private store,
its answer's due time appears once indexed; the agency accepts it (``intake accept``), the receipt page shows the case
counted from the filing's block time, the agency closes it (``case close filing:SEQ``), the citizen rates it. In
Chinese at 360 px: a request under a commitment retired meanwhile is refused with a clear message, then one is filed.
And the claim: an agency prints a code, rates its own case with it, then the citizen claims the printed code and the
page says plainly that the receipt was used before the claim. Screenshots go to pytest's tmp dir and
build/screenshots/."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Request, expect, sync_playwright

from ledger import receipts
from ledger.encoding import ZERO32
from ledger.filings import ANSWER_WINDOW_WORKING_DAYS, FilingContent
from ledger.records import FilingStatus, Rating, filed_case_id, short_code
from ledger.relay.store import CitizenFiles
from tests.support.browser import AUDIT, CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, Console, screenshot, wait_drawn
from tests.support.cli import code_in
from tests.support.town import Town, new_page, town_on_anvil

AGENCY = "SH-ROADS"
#: a few hundred hashes: the page does the same work as at 18 bits, only less of it
WORK_BITS = 8
#: how long a polled panel may take to show what the index has (the API lets a browser keep a list for 5 s)
POLLED_MS = 15_000
COMMITMENTS = [
    ["LIGHT-48H", "--service-code", "STREETLIGHT", "--name-zh", "路灯维修", "--name-en", "Streetlight repair",
     "--deadline", "48", "--unit", "hours", "--target", "95", "--terms", "A dark streetlight is repaired in 48 hours."],
    ["PAVE-5D", "--service-code", "PAVEMENT", "--name-zh", "人行道修补", "--name-en", "Pavement repair",
     "--deadline", "5", "--unit", "working-days", "--target", "90", "--terms", "A broken pavement is mended."],
    ["KIOSK-2H", "--service-code", "KIOSK", "--name-zh", "报亭清理", "--name-en", "Kiosk clearing",
     "--deadline", "2", "--unit", "hours", "--target", "90", "--terms", "An abandoned kiosk is cleared."],
    ["OLD-SIGN", "--service-code", "SIGNS", "--name-zh", "旧路牌", "--name-en", "Old street signs",
     "--deadline", "10", "--unit", "working-days", "--target", "80", "--terms", "Old signs are replaced."],
]


def _gradient_png(width: int, height: int) -> bytes:
    """A camera-sized PNG (a smooth gradient, so the file stays small), made without an imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    red = bytes(v for x in range(width) for v in (x * 255 // width, 0, 120))
    rows = bytearray()
    for y in range(height):
        row = bytearray(red)
        row[1::3] = bytes([y * 255 // height]) * width
        rows += b"\x00" + row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def iso(unix: int) -> str:
    """A time as the page's <time datetime> gives it."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    data = tmp_path_factory.mktemp("filing-page")
    with town_on_anvil(data, AGENCY, COMMITMENTS, filing_work_bits=WORK_BITS, filing_rate_per_minute=0) as town:
        town.cli("commitment", "retire", "OLD-SIGN", "--reason", "Signs are now the city's.", "--key", "roads")
        town.sync()
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


def visit(page: Page, url: str) -> None:
    page.goto(url)
    wait_drawn(page)


def reload(page: Page) -> None:
    page.reload()
    wait_drawn(page)


class Sent:
    """Every request a page makes (address and body): the receipt codes must be in none of them."""

    def __init__(self, page: Page) -> None:
        self.requests: list[Request] = []
        page.on("request", lambda request: self.requests.append(request))

    def text(self) -> str:
        return "\n".join(f"{r.url} {r.post_data or ''}" for r in self.requests)

    def posted(self, path: str) -> list[Any]:
        return [json.loads(r.post_data or "{}") for r in self.requests if r.method == "POST" and r.url.endswith(path)]

    def assert_never_sent(self, code: str) -> None:
        plain = receipts.normalize(code)
        text = self.text()
        for form in (plain, code, code.replace("-", " "), plain.lower()):
            assert form not in text, "a receipt code left the page"


def shown_code(page: Page) -> str:
    """The receipt code the page shows once, as the citizen copies it."""
    return receipts.format_code(page.locator(".code-big code").inner_text())


def fact_time(scope: Locator, label: str) -> str | None:
    """The datetime of the <time> in the facts row `label` under `scope`."""
    row = scope.locator(".facts > div").filter(has=scope.page.locator("dt").get_by_text(label, exact=True))
    return row.locator("time").get_attribute("datetime")


def api(town: Town, path: str) -> Any:
    """The JSON the API answers at /api/v1/`path` (it must answer 200)."""
    answer = httpx.get(f"{town.base_url}/api/v1/{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.slow
def test_file_a_request_follow_it_and_rate_it(town: Town, browser: Browser, tmp_path: Path) -> None:
    console = Console()
    console.expect("status of 404")  # the receipt looked up before the case opens: the page shows the filing instead
    page = new_page(browser, console, viewport=DESKTOP, locale="en-US")
    sent = Sent(page)

    # -- the nav leads to the form; the agency in the address is chosen, retired services are not offered
    visit(page, town.base_url + "/#/")
    nav = page.get_by_role("navigation", name="Main").get_by_role("link", name="File a request")
    expect(nav).to_be_visible()
    visit(page, town.base_url + f"/#/file/{AGENCY}")
    expect(page.get_by_role("heading", level=1)).to_have_text("File a request")
    expect(nav).to_have_attribute("aria-current", "page")
    expect(page.locator(".privacy-note")).to_contain_text("a fingerprint (hash) of what you write")
    expect(page.get_by_label("Agency")).to_have_value(AGENCY)
    service = page.get_by_label("Service")
    expect(service.locator("option")).to_have_text(
        ["Choose a service", "Kiosk clearing", "Streetlight repair", "Pavement repair"])  # by code; OLD-SIGN retired
    assert page.evaluate(AUDIT) == []

    # -- mistakes are explained at their fields, the first one focused
    page.get_by_role("button", name="Sign and send").click()
    expect(service).to_be_focused()
    expect(page.locator(".field-error:visible")).to_have_text([
        "Choose the service your request falls under.",
        "A district code has 1 to 32 letters, digits or marks (such as - or _), and no spaces.",
        "Say what is wrong: the description is empty.",
    ])
    service.select_option(label="Streetlight repair")
    page.get_by_label("District code").fill("EAST SIDE")
    description = '路灯坏了三天。The light outside "No. 12" has been dark since Monday.\nPlease fix it 🚦'
    page.get_by_label("What is wrong?").fill(description)
    page.get_by_label("Latitude").fill("31.2304")
    page.get_by_role("button", name="Sign and send").click()
    expect(page.get_by_label("District code")).to_be_focused()
    expect(page.locator(".field-error:visible")).to_have_text([
        "A district code has 1 to 32 letters, digits or marks (such as - or _), and no spaces.",
        "A point has both a latitude and a longitude: give both, or neither.",
    ])
    page.get_by_label("District code").fill("EAST")
    page.get_by_label("Longitude").fill("121.4737")
    page.get_by_label("Address or place (optional)").fill("人民路 12 号, Harbour Road")

    # -- a camera-sized photo is made a small JPEG in the browser; contact details are for the agency only
    page.get_by_label("Photos (optional, up to 3)").set_input_files(
        {"name": "lamp.png", "mimeType": "image/png", "buffer": _gradient_png(2400, 1800)})
    expect(page.locator(".photo-list li")).to_have_count(1)
    expect(page.locator(".photo-list li")).to_contain_text("Photo 1: 1600 × 1200 pixels")
    expect(page.locator("fieldset.contact")).to_contain_text("Shown only to the agency you ask")
    page.get_by_label("Phone").fill("138 0000 0000")
    page.get_by_label("Email").fill("li@example.cn")
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-file-form.png", tmp_path)

    # -- sent: the key is made here, the code shown once (large), confirmed before the page moves on
    page.get_by_role("button", name="Sign and send").click()
    expect(page.locator(".code-once h2")).to_be_focused()
    expect(page.locator(".code-once h2")).to_have_text("Your receipt code: write it down now")
    code = shown_code(page)
    sent.assert_never_sent(code)
    [body] = sent.posted("/api/v1/filings")
    filing_sent = body["filing"]
    assert filing_sent["receipt"] == receipts.address(code)
    [attachment] = body["content"]["attachments"]
    assert attachment["media_type"] == "image/jpeg" and attachment["size"] <= 2**20
    assert body["content"] == {
        "description": description, "address": "人民路 12 号, Harbour Road", "lat": "31.2304", "long": "121.4737",
        "contact": {"phone": "138 0000 0000", "email": "li@example.cn"}, "attachments": [attachment],
    }
    expect(page.get_by_role("button", name="Print the code")).to_be_visible()
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-file-code.png", tmp_path)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_have_text(
        "First confirm that you have written down or printed your code: it will not be shown again.")
    page.get_by_label("I have written down or printed my receipt code").check()
    page.get_by_role("button", name="Continue").click()
    wait_drawn(page)
    filed = page.locator("section.filed")
    expect(filed.locator("h2")).to_have_text("Your request is on the public ledger")
    expect(filed.locator("h2")).to_be_focused()
    expect(page.locator(".code-big")).to_have_count(0)  # shown once
    seq = int(filed.get_by_role("link", name=re.compile(r"^Proof of entry")).first.inner_text().lstrip("#"))

    # -- on the ledger: the filing, its key the citizen's; its content in the private store only
    state = town.ledger.filing_state(seq)
    assert state.status is FilingStatus.FILED and state.receipt == receipts.address(code)
    content_hash = bytes.fromhex(filing_sent["content_hash"][2:])
    stored = CitizenFiles(town.data / "relay").filing(receipts.address(code), content_hash)
    assert stored is not None
    assert stored.content == FilingContent.model_validate(body["content"])
    assert stored.content.contact == {"phone": "138 0000 0000", "email": "li@example.cn"}
    [(media_type, photo)] = stored.photos
    assert media_type == "image/jpeg" and photo.startswith(b"\xff\xd8\xff") and len(photo) <= 2**20

    # -- indexed: the panel shows when the answer is due (a working day of the filing's block time)
    expect(filed).to_contain_text("Shown once the public index has your request")
    town.sync()
    filing = api(town, f"filings/{seq}")
    # the panel polls; the API lets a list be cached for 5 s, so the page may see the index a few seconds late
    expect(filed.locator(".facts")).to_contain_text("Awaiting the agency's answer", timeout=POLLED_MS)
    assert fact_time(filed, "Answer due") == iso(filing["answer_due"])
    assert fact_time(filed, "Filed") == iso(filing["filed_at"])
    # one working day: the end of the next working day, at most a long weekend away
    assert ANSWER_WINDOW_WORKING_DAYS == 1 and 0 < filing["answer_due"] - filing["filed_at"] < 5 * 86400
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-file-filed.png", tmp_path)

    # -- the receipt page, before the agency answers: the filing awaiting its answer
    page.get_by_role("link", name="Follow your request on your receipt page").click()
    wait_drawn(page)
    assert page.evaluate("location.hash") == f"#/receipt/{code}"
    expect(page.locator(".filing-result h2")).to_have_text(f"Your request #{seq}")
    expect(page.locator(".filing-result")).to_contain_text("The agency has not answered yet.")

    # -- the agency accepts it: its case opens, counted from the filing's block time
    town.cli("intake", "accept", str(seq), "--key", "roads")
    town.sync()
    reload(page)
    result = page.locator("section.case-result")
    expect(result.locator("h2")).to_contain_text("0x" + filed_case_id(seq).hex())
    expect(result).to_contain_text("Streetlight repair")
    filed_at = filing["filed_at"]
    assert fact_time(result, "Opened") == iso(filed_at)
    assert fact_time(result, "Due") == iso(filed_at + 48 * 3600)
    expect(page.locator("section.claim")).to_have_count(0)  # the citizen's own key: nothing to claim
    expect(page.locator("section.feedback")).to_contain_text("You can rate the service once the agency has closed")

    # -- the agency closes it; the citizen rates it
    town.cli("case", "close", f"filing:{seq}", "fulfilled", "--key", "roads")
    town.sync()
    reload(page)
    page.get_by_role("radio", name="Satisfied", exact=True).check()
    page.get_by_role("button", name="Send rating").click()
    expect(page.locator(".rating-form .form-outcome[role=status]")).to_have_text(
        re.compile(r"^Thank you\. Your rating is recorded on the public ledger as entry #\d+\.$"))
    town.sync()
    reload(page)
    expect(page.locator("section.feedback")).to_contain_text("4 of 5")
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-file-rated.png", tmp_path)
    sent.assert_never_sent(code)
    page.context.close()
    assert console.unexpected() == []


@pytest.mark.slow
def test_file_a_request_in_chinese_on_a_phone(town: Town, browser: Browser, tmp_path: Path) -> None:
    console = Console()
    console.expect("status of 409")  # the refusal below
    phone = new_page(browser, console, viewport=PHONE, locale="zh-CN")
    sent = Sent(phone)
    visit(phone, town.base_url + "/#/file")
    expect(phone.locator("html")).to_have_attribute("lang", "zh")
    expect(phone.get_by_role("navigation", name="主导航").get_by_role("link", name="提交诉求")).to_be_visible()
    expect(phone.get_by_role("heading", level=1)).to_have_text("提交诉求")
    service = phone.get_by_label("服务事项")
    expect(service).to_be_disabled()
    phone.get_by_label("部门").select_option(AGENCY)
    expect(service).to_be_enabled()
    service.select_option(label="报亭清理")
    phone.get_by_label("区域代码").fill("WEST")
    phone.get_by_label("遇到了什么问题？").fill("报亭被遗弃，占用人行道。")
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert phone.evaluate(AUDIT) == []
    screenshot(phone, "page-zh-mobile-file-form.png", tmp_path)

    # -- the agency retires the service while the page is open: the refusal says so, and what to do
    town.cli("commitment", "retire", "KIOSK-2H", "--reason", "Kiosks are gone.", "--key", "roads")
    phone.get_by_role("button", name="签名并提交").click()
    expect(phone.get_by_role("alert")).to_have_text(
        "已拒绝：本页打开后，部门已停止此服务事项。请刷新页面，选择仍有效的事项。")
    expect(phone.get_by_role("alert")).to_be_focused()

    # -- filed under a service in force
    service.select_option(label="人行道修补")
    phone.get_by_role("button", name="签名并提交").click()
    expect(phone.locator(".code-once h2")).to_have_text("您的回执码：请立即记下")
    code = shown_code(phone)
    sent.assert_never_sent(code)
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert phone.evaluate(AUDIT) == []
    screenshot(phone, "page-zh-mobile-file-code.png", tmp_path)
    phone.get_by_label("我已抄下或打印了回执码").check()
    phone.get_by_role("button", name="继续").click()
    wait_drawn(phone)
    filed = phone.locator("section.filed")
    expect(filed.locator("h2")).to_have_text("您的诉求已记入公开账本")
    town.sync()
    expect(filed.locator(".facts")).to_contain_text("等待部门答复", timeout=POLLED_MS)
    expect(filed.locator(".facts")).to_contain_text("人行道修补")
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert phone.evaluate(AUDIT) == []
    screenshot(phone, "page-zh-mobile-file-filed.png", tmp_path)
    [filing] = api(town, "filings?receipt=" + receipts.address(code))["items"]
    assert filing["commitment_id"] == "PAVE-5D" and filing["district"] == "WEST"
    phone.context.close()
    assert console.unexpected() == []


@pytest.mark.slow
def test_claim_a_printed_receipt_the_agency_used_first(town: Town, browser: Browser, tmp_path: Path) -> None:
    # -- the agency opens a case at the counter and prints its receipt; it closes the case and rates it itself with
    # the printed code, before the citizen comes
    out = town.cli("case", "open", "LAMP-P", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel",
                   "counter", "--receipt", "--at", town.at(-900), "--page-url", town.base_url, "--key", "roads")
    printed = code_in(out)
    town.cli("case", "close", "LAMP-P", "fulfilled", "--key", "roads")
    town.sync()
    case_id = api(town, f"receipts/{receipts.address(printed)}")["case_id"]
    rating = Rating(agency_id=short_code(AGENCY), case_id=bytes.fromhex(case_id[2:]), score=5, comment_hash=ZERO32)
    signature = town.ledger.sign_citizen(receipts.private_key(printed), rating)
    answer = httpx.post(f"{town.base_url}/api/v1/ratings", timeout=30, json={
        "agency_id": AGENCY, "case_id": case_id, "score": 5, "signature": "0x" + signature.hex()})
    assert answer.status_code == 202 and answer.json()["status"] == "recorded", answer.text
    town.sync()

    # -- the citizen opens the printed code: it may be made theirs, and the page says it was used already
    console = Console()
    page = new_page(browser, console, viewport=DESKTOP, locale="en-US")
    sent = Sent(page)
    visit(page, f"{town.base_url}/#/receipt/{printed}")
    claim = page.locator("section.claim")
    expect(claim.locator("h2")).to_have_text("Make this receipt yours")
    expect(claim.locator(".used-before")).to_contain_text("This receipt has been used already:")
    expect(claim.locator(".used-before")).to_contain_text("The case was rated 5 of 5 on")
    expect(claim.locator(".used-before")).to_contain_text("possibly the agency that printed it")
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-claim-offer.png", tmp_path)

    # -- claimed: a new code made here, shown once, the case moved to its key on chain
    page.get_by_role("button", name="Make it mine").click()
    expect(claim.locator(".code-once h3")).to_be_focused()
    expect(claim.locator(".code-once")).to_contain_text("The claim is recorded on the public ledger as entry #")
    expect(claim.locator(".used-before")).to_contain_text("This receipt was used before it was claimed:")
    expect(claim.locator(".used-before")).to_contain_text("The case was rated 5 of 5 on")
    own = shown_code(page)
    assert own != printed
    sent.assert_never_sent(own)
    sent.assert_never_sent(printed)
    [posted] = sent.posted("/api/v1/receipt-claims")
    assert posted["receipt"] == receipts.address(own) and posted["case_id"] == case_id
    held = town.ledger.receipt_case(short_code(AGENCY), bytes.fromhex(case_id[2:]))
    assert held.receipt == receipts.address(own)
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-claim-code.png", tmp_path)

    # -- the new code's page: the claim, and plainly, what the printed code did before it
    town.sync()
    page.get_by_label("I have written down or printed my receipt code").check()
    page.get_by_role("button", name="Continue").click()
    wait_drawn(page)
    assert page.evaluate("location.hash") == f"#/receipt/{own}"
    claim = page.locator("section.claim")
    expect(claim.locator("h2")).to_have_text("A claimed receipt")
    expect(claim.locator(".used-before")).to_contain_text("This receipt was used before it was claimed:")
    expect(claim.locator(".used-before")).to_contain_text("The case was rated 5 of 5 on")
    # the rating stands, named for what it is: not the claimant's own
    rated = page.locator("section.feedback .rating-shown")
    expect(rated).to_contain_text("Rating given with the printed code, before the claim")
    expect(rated).to_contain_text("5 of 5")
    expect(page.locator("form.rating-form")).to_have_count(0)
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-claimed.png", tmp_path)

    # -- the printed code now says it was claimed away, in both languages
    visit(page, f"{town.base_url}/#/receipt/{printed}")
    expect(claim.locator("h2")).to_have_text("This receipt was claimed")
    expect(claim).to_contain_text(receipts.address(own))
    expect(page.get_by_role("button", name="Make it mine")).to_have_count(0)
    phone = new_page(browser, console, viewport=PHONE, locale="zh-CN")
    visit(phone, f"{town.base_url}/#/receipt/{printed}")
    expect(phone.locator("section.claim h2")).to_have_text("此回执已被认领")
    expect(phone.locator("section.claim .used-before")).to_contain_text("此回执已经被使用过：")
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert phone.evaluate(AUDIT) == []
    screenshot(phone, "page-zh-mobile-claimed-away.png", tmp_path)
    phone.context.close()
    page.context.close()
    assert console.unexpected() == []


@pytest.mark.slow
def test_a_desk_s_pairing_code_opens_the_form_filled_in_on_the_citizen_s_phone(
    town: Town, browser: Browser, tmp_path: Path
) -> None:
    """At the counter: the desk shows `intake pair`'s QR code, the citizen's phone opens it — the service and district
    are filled in — and files with a key made on the phone, as the counter's channel."""
    shown = town.cli("intake", "pair", "--agency", AGENCY, "--commitment", "PAVE-5D", "--district", "NORTH",
                     "--page-url", town.base_url)
    [link] = [line.strip() for line in shown.splitlines() if line.strip().startswith("http")]
    console = Console()
    phone = new_page(browser, console, viewport=PHONE, locale="en-GB")
    sent = Sent(phone)
    visit(phone, link)
    expect(phone.get_by_role("heading", level=1)).to_have_text("File a request")
    expect(phone.get_by_label("District code")).to_have_value("NORTH")
    phone.get_by_label("What is wrong?").fill("The kerb by the post office is broken.")
    phone.get_by_role("button", name="Sign and send").click()
    expect(phone.locator(".code-once")).to_be_visible()
    code = shown_code(phone)
    sent.assert_never_sent(code)
    screenshot(phone, "page-en-mobile-file-paired.png", tmp_path)
    town.sync()
    [filing] = api(town, "filings?receipt=" + receipts.address(code))["items"]
    assert filing["commitment_id"] == "PAVE-5D" and filing["district"] == "NORTH" and filing["channel"] == "counter"
    phone.context.close()
    assert console.unexpected() == []
