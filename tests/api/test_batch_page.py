"""The citizen page with Merkle-anchored batches, in real headless Chromium against the real app (the page tests'
harness, ``tests/support/browser.py``) over the batch world (``tests/support/batches.py``): a batched event says which
batch it is in and links to its Merkle proof, the batch and the file; the proof view shows the batch and checks the
proof in the browser; the batch views and the raw log's batch anchors; Chinese and English; an agency's withheld batches
on its page, the batch views and the chain facts. Screenshots go to pytest's tmp dir and to build/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.batches import BatchWorld, batch_case_id, batch_world
from tests.support.browser import PHONE, screenshot, serve, visit
from tests.support.withheld import WithheldWorld, withheld_world


@pytest.fixture(scope="module")
def bw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchWorld]:
    with batch_world(tmp_path_factory.mktemp("batch-page")) as world:
        yield world


@pytest.fixture(scope="module")
def base_url(bw: BatchWorld) -> Iterator[str]:
    with serve(bw.settings()) as url:
        yield url


def test_a_batched_event_links_its_batch_its_proof_and_its_file(
    page: Page, base_url: str, bw: BatchWorld, tmp_path: Path
) -> None:
    first = bw.anchored[0][1].seq
    visit(page, f"{base_url}/#/case/{bw.agency}/0x{batch_case_id('a0').hex()}")
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(3)
    note = rows.nth(0).locator(".batch-note")
    expect(note).to_contain_text(f"in batch #{first}")
    expect(note.get_by_role("link", name="Merkle proof")).to_have_attribute("href", f"#/proof/{first}")
    expect(note.get_by_role("link", name=f"Batch #{first}")).to_have_attribute("href", f"#/batch/{first}")
    expect(note.get_by_role("link", name="file")).to_have_attribute("href", f"/api/v1/batches/{first}/file")
    screenshot(page, "page-en-batched-case.png", tmp_path)
    # an event written on its own has no batch note
    visit(page, f"{base_url}/#/case/{bw.agency}/0x{batch_case_id(bw.mixed).hex()}")
    mixed = page.locator("table.events tbody tr")
    expect(mixed.nth(0).locator(".batch-note")).to_have_count(0)
    expect(mixed.nth(1).locator(".batch-note")).to_have_count(1)


def test_the_proof_view_checks_the_merkle_proof_in_the_browser(
    page: Page, base_url: str, bw: BatchWorld, tmp_path: Path
) -> None:
    batch, anchored = bw.anchored[0]
    seq = anchored.seq + 5
    visit(page, f"{base_url}/#/proof/{seq}")
    section = page.locator("section.batch-proof")
    expect(section.get_by_role("heading", name="In a Merkle-anchored batch")).to_be_visible()
    expect(section).to_contain_text("0x" + batch.root.hex())
    expect(section.locator("ol.merkle-proof li")).to_have_count(len(batch.proof(5)))
    expect(page.locator("ol.steps")).to_contain_text("verifyBatchEntry")
    section.get_by_role("button", name="Check the proof in this browser").click()
    expect(section.get_by_role("status")).to_have_text(
        "The proof leads from this record's hash to the anchored root: the record is in the batch."
    )
    screenshot(page, "page-en-batch-proof.png", tmp_path)


def test_the_batch_views_and_the_raw_log_show_the_anchors(
    page: Page, base_url: str, bw: BatchWorld, tmp_path: Path
) -> None:
    visit(page, f"{base_url}/#/log")
    more = page.get_by_role("button", name="Load more")
    while more.is_visible():  # the whole log, a page at a time
        shown = page.locator("table.log tbody tr").count()
        more.click()
        expect(page.locator("table.log tbody tr")).not_to_have_count(shown)
    anchors = page.locator("tr.batch-anchor")
    expect(anchors).to_have_count(len(bw.anchored))
    for row, (batch, anchored) in zip(anchors.all(), bw.anchored, strict=True):
        expect(row).to_contain_text(f"Batch #{anchored.seq} anchored: {batch.count} entries")
    expect(page.locator("table.log .badge", has_text=f"batch #{bw.anchored[1][1].seq}")).to_have_count(
        bw.anchored[1][0].count
    )
    page.get_by_role("link", name="Merkle-anchored batches").click()
    page.wait_for_function("() => document.getElementById('main').dataset.drawn === '#/batches'")
    expect(page.locator("table.batches tbody tr")).to_have_count(len(bw.anchored))
    batch, anchored = bw.anchored[1]
    page.get_by_role("link", name=f"#{anchored.seq}", exact=True).click()
    page.wait_for_function(f"() => document.getElementById('main').dataset.drawn === '#/batch/{anchored.seq}'")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Batch #{anchored.seq}")
    expect(page.locator("main")).to_contain_text("0x" + batch.file_hash.hex())
    expect(page.get_by_role("link", name="Download the batch file")).to_have_attribute(
        "href", f"/api/v1/batches/{anchored.seq}/file"
    )
    screenshot(page, "page-en-batch.png", tmp_path)


def test_in_chinese_on_a_phone(phone: Page, base_url: str, bw: BatchWorld, tmp_path: Path) -> None:
    first = bw.anchored[0][1].seq
    visit(phone, f"{base_url}/#/case/{bw.agency}/0x{batch_case_id('a1').hex()}")
    expect(phone.locator(".batch-note").first).to_contain_text(f"属于批次 #{first}")
    expect(phone.locator(".batch-note").first.get_by_role("link", name="默克尔证明")).to_be_visible()
    visit(phone, f"{base_url}/#/proof/{first}")
    expect(phone.get_by_role("heading", name="属于默克尔锚定批次")).to_be_visible()
    phone.get_by_role("button", name="在本浏览器中验证证明").click()
    expect(phone.locator(".verify-status")).to_contain_text("此记录在该批次中")
    # nothing wider than the screen
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "page-zh-mobile-batch-proof.png", tmp_path)


# --- withheld batches -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def withheld_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, WithheldWorld]]:
    with withheld_world(tmp_path_factory.mktemp("withheld-page")) as ww:
        store = f"sqlite:///{tmp_path_factory.mktemp('withheld-page-index') / 'index.sqlite3'}"
        ww.index(store)
        with serve(ww.settings(store)) as url:
            yield url, ww


def test_an_agency_s_withheld_batches_show_on_its_page(
    page: Page, withheld_url: tuple[str, WithheldWorld], tmp_path: Path
) -> None:
    base, ww = withheld_url
    visit(page, f"{base}/#/agency/{ww.roads}")
    section = page.locator("section.withheld")
    expect(section.get_by_role("heading", name="Withheld batches")).to_be_visible()
    expect(section.get_by_role("alert")).to_contain_text("anchored 2 batches")
    rows = section.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(f"#{ww.missing_seq}")
    expect(rows.nth(0)).to_contain_text("withheld: file missing")
    expect(rows.nth(1)).to_contain_text("withheld for ever: file does not match")
    expect(rows.nth(1)).to_contain_text("root differs")
    link = section.get_by_role("link", name=f"#{ww.missing_seq}")
    expect(link).to_have_attribute("href", f"#/batch/{ww.missing_seq}")
    screenshot(page, "page-en-withheld-batches.png", tmp_path)
    # the other agency withholds nothing
    visit(page, f"{base}/#/agency/{ww.water}")
    expect(page.locator("section.withheld")).to_have_count(0)
    # the batch itself says it is withheld, and a batched event of a receipt case that it was not applied
    visit(page, f"{base}/#/batch/{ww.impossible_seq}")
    expect(page.locator("main")).to_contain_text("withheld for ever")
    visit(page, f"{base}/#/case/{ww.roads}/0x{ww.receipted.hex()}")
    expect(page.locator("table.events .not-applied")).to_have_text("not applied")
