"""Independent audits on the citizen page, in real headless Chromium against the real app (the page tests' harness,
``tests/support/browser.py``) over a ledger of its own (``tests/support/audits.py``) that gains auditors as the test
goes: the city view and each agency's view say how far the ledger is independently audited — none yet, passed, findings
(a warning), an attestation that does not match the ledger (a warning) — and link to the attestations and their reports;
the raw log and the proof view show the auditors' entries, which belong to no agency; Chinese on a phone. Screenshots go
to pytest's tmp dir and to build/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from ledger.encoding import code_text, keccak
from ledger.records import AuditVerdict
from tests.support.audits import AuditWorld, audit_world, report
from tests.support.browser import AUDIT, PHONE, screenshot, serve, visit


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    with audit_world(tmp_path_factory.mktemp("audit-page"), auditors=False) as world:
        yield world


@pytest.fixture(scope="module")
def base_url(aw: AuditWorld) -> Iterator[str]:
    with serve(aw.settings()) as url:
        yield url


def fresh(page: Page, url: str) -> None:
    """Load the view at `url` afresh: the page keeps answers for a while, and the browser keeps the API's for their
    max-age (a few seconds), so both are dropped first."""
    page.goto("about:blank")
    page.context.new_cdp_session(page).send("Network.clearBrowserCache")
    visit(page, url)


def audit_line(page: Page, url: str) -> str:
    """The audit line of the view at `url`, loaded afresh."""
    fresh(page, url)
    line = page.locator("p.audit-line")
    expect(line).to_have_count(1)
    return line.inner_text()


def test_the_city_and_agency_views_say_how_far_the_ledger_is_independently_audited(
    page: Page, base_url: str, aw: AuditWorld, tmp_path: Path
) -> None:
    agency = code_text(aw.world.agency_id)
    city, agency_view = f"{base_url}/#/", f"{base_url}/#/agency/{agency}"
    # none yet
    for url in (city, agency_view):
        assert audit_line(page, url).startswith("Not yet independently audited")
    expect(page.locator("p.audit-line")).to_have_class("message audit-line note")
    page.get_by_role("link", name="Attestations and reports").click()
    page.wait_for_function("() => document.getElementById('main').dataset.drawn === '#/audits'")
    expect(page.get_by_role("heading", level=1)).to_have_text("Independent audits")
    expect(page.locator("main")).to_contain_text("No auditor is registered.")
    expect(page.locator("main")).to_contain_text("No attestation has been recorded.")

    # an honest auditor, passed
    aw.register("honest")
    passed = aw.checkpoint(report("honest"))
    aw.attest("honest", passed, report("honest"))
    aw.sync()
    for url in (city, agency_view):
        line = audit_line(page, url)
        assert line.startswith(f"Independently audited up to block {passed.block_number} by 1 auditor — passed"), line
        expect(page.locator("p.audit-line")).to_have_class("message audit-line success")
    screenshot(page, "page-en-agency-audited.png", tmp_path)
    # its report, once published, is linked from the audits view
    assert requests.put(f"{base_url}/api/v1/audit-reports/0x{keccak(report('honest')).hex()}",
                        data=report("honest"), timeout=10).status_code == 201
    fresh(page, f"{base_url}/#/audits")
    current = page.locator("table.auditors tbody tr")
    expect(current).to_have_count(1)
    expect(current.nth(0)).to_contain_text(aw.auditors["honest"].address)
    expect(current.nth(0).get_by_role("link", name="report (JSON)")).to_have_attribute(
        "href", f"/api/v1/audit-reports/0x{keccak(report('honest')).hex()}")
    expect(current.nth(0).get_by_role("link", name=f"#{aw.attested['honest']}")).to_have_attribute(
        "href", f"#/proof/{aw.attested['honest']}")
    assert page.evaluate(AUDIT) == []

    # a later audit with findings: a warning
    aw.register("strict")
    failed = aw.checkpoint(report("strict", 2), verdict=AuditVerdict.FAILED, findings=2)
    aw.attest("strict", failed, report("strict", 2))
    aw.sync()
    line = audit_line(page, city)
    assert line.startswith(f"Independently audited up to block {failed.block_number} by 1 auditor — 2 findings"), line
    expect(page.locator("p.audit-line")).to_have_class("message audit-line error")

    # an attestation the ledger never had: said so, as a warning
    aw.register("liar")
    aw.attest("liar", aw.checkpoint(report("liar"), running_hash=keccak(b"a ledger of its own")[:24]))
    aw.sync()
    line = audit_line(page, agency_view)
    assert "1 auditor's latest attestation does not match the ledger" in line, line
    expect(page.locator("p.audit-line .audit-mismatch")).to_have_class("audit-mismatch badge warn")
    screenshot(page, "page-en-audit-warning.png", tmp_path)
    fresh(page, f"{base_url}/#/audits")
    expect(page.locator("table.attestations tbody tr")).to_have_count(3)
    liar_row = page.locator("table.attestations tbody tr").nth(2)
    expect(liar_row.locator(".badge.warn", has_text="no")).to_be_visible()
    expect(liar_row).to_contain_text("not published here")
    assert page.evaluate(AUDIT) == []
    screenshot(page, "page-en-audits.png", tmp_path)

    # the auditors' entries in the raw log and the proof view: of no agency
    visit(page, f"{base_url}/#/proof/{aw.attested['liar']}")
    expect(page.locator("dl.facts").first).to_contain_text("Audit attested")
    agency_fact = page.locator("dl.facts").first.locator("div", has=page.locator("dt", has_text="Agency"))
    expect(agency_fact.locator("dd")).to_have_text("—")


def test_in_chinese_on_a_phone(phone: Page, base_url: str, aw: AuditWorld, tmp_path: Path) -> None:
    if "liar" not in aw.attested:  # run alone: the scenario of the test above, in short
        for name in ("strict", "liar"):
            aw.register(name)
        aw.attest("strict", aw.checkpoint(report("strict", 2), verdict=AuditVerdict.FAILED, findings=2))
        aw.attest("liar", aw.checkpoint(report("liar"), running_hash=b"\1" * 24))
        aw.sync()
    block = phone.request.get(f"{base_url}/api/v1/chain").json()["audit"]["audited_to_block"]
    line = audit_line(phone, f"{base_url}/#/")
    assert line.startswith(f"独立审计至区块 {block}，1 位审计方 — 发现 2 项问题"), line
    assert "1 位审计方的最新审计证明与账本不符" in line
    expect(phone.get_by_role("link", name="审计证明与报告")).to_have_attribute("href", "#/audits")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "page-zh-mobile-audit.png", tmp_path)
    visit(phone, f"{base_url}/#/audits")
    expect(phone.get_by_role("heading", level=1)).to_have_text("独立审计")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
