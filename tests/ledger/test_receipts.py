"""The citizen's copy of a receipt: the link, the QR code (SVG, PNG) and the printable one-page HTML receipt —
self-contained, bilingual, one page on A5 and A4, written only where asked and readable by its owner only."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import segno

from ledger import receipts
from ledger.errors import InvalidRecord
from ledger.records import DeadlineUnit

CODE = "7KQ2-M9XD-4F8A-ZZ01-HB3C"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def sheet(**changes: object) -> receipts.ReceiptSheet:
    fields: dict[str, object] = dict(
        code=CODE, link=receipts.receipt_link("https://ledger.example.gov.cn/civic", CODE), agency_id="DEMO-ROADS",
        agency_name_zh="示范市道路管理所", agency_name_en="Demo City Roads Office", commitment_id="STREETLIGHT-48H",
        commitment_name_zh="路灯故障48小时内修复", commitment_name_en="Dark streetlight repaired within 48 hours",
        deadline=48, deadline_unit=DeadlineUnit.CALENDAR_HOURS, opened_at=1_790_000_000, reference="R-2026-000123",
    )
    fields.update(changes)
    return receipts.ReceiptSheet(**fields)  # type: ignore[arg-type]


def test_the_link_carries_the_code_in_the_fragment_only():
    assert receipts.receipt_link("http://127.0.0.1:8000", CODE.lower()) == f"http://127.0.0.1:8000/#/receipt/{CODE}"
    assert receipts.receipt_link("https://x.example/civic/", CODE) == f"https://x.example/civic/#/receipt/{CODE}"
    for bad in ("ledger.example.org", "ftp://x.example", "https://x.example/?a=1", "https://x.example/#/", ""):
        with pytest.raises(InvalidRecord, match="page URL"):
            receipts.receipt_link(bad, CODE)
    with pytest.raises(InvalidRecord, match="20 characters"):
        receipts.receipt_link("https://x.example", "7KQ2")


def test_qr_codes_encode_the_link():
    link = receipts.receipt_link("https://ledger.example.gov.cn/civic", CODE)
    expected = segno.make(link, error="m", micro=False)
    assert expected.version <= 5  # a small symbol: scans from paper and from a phone screen
    svg = receipts.qr_svg(link)
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert CODE not in svg  # the QR's modules, not the text
    png = receipts.qr_png(link)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert width == (expected.symbol_size(border=4)[0]) * 10


def test_the_printed_receipt_is_self_contained_and_bilingual():
    page = receipts.receipt_html(sheet(agency_name_en="Roads <b>&</b> Lights"))
    assert "7KQ2 M9XD 4F8A ZZ01 HB3C" in page  # large, grouped
    assert "https://ledger.example.gov.cn/civic/#/receipt/" + CODE in page
    for text in ("办事回执", "Service receipt", "示范市道路管理所", "Roads &lt;b&gt;&amp;&lt;/b&gt; Lights",
                 "路灯故障48小时内修复", "48小时内", "within 48 hours", "2026-09-21 22:13 (UTC+8)", "R-2026-000123",
                 "唯一凭证", "only way to rate or dispute", "not stored anywhere", "30"):
        assert text in page, text
    assert "<b>&</b>" not in page
    # nothing is fetched from anywhere: no external script, style, font, image or frame
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page and "<script" not in page
    assert "@page" in page and "@media print" in page
    assert "3个工作日内" in receipts.receipt_html(sheet(deadline=3, deadline_unit=DeadlineUnit.WORKING_DAYS))


@pytest.mark.slow
@pytest.mark.parametrize("size", ["A5", "A4"])
def test_the_printed_receipt_is_one_page(tmp_path, size):
    long_names = sheet(agency_name_en="Demo City Housing and Urban-Rural Development Office, Eastern Branch",
                       commitment_name_en="Housing subsidy application decided within fifteen working days of filing",
                       reference="HOUSING/2026/EAST/0000123456")
    page = receipts.receipt_html(long_names).replace(
        "@page { margin: 9mm; }", f"@page {{ size: {size}; margin: 9mm; }}"
    )
    source = tmp_path / "receipt.html"
    source.write_text(page, encoding="utf-8")
    pdf = tmp_path / "receipt.pdf"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         f"--print-to-pdf={pdf}", source.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))
    assert pages == 1, f"{size}: {pages} pages"


def test_files_are_written_where_asked_owner_only(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "receipts" / "today"
    files = receipts.write_receipt_files(folder, "R-1", sheet())
    assert (files.html.name, files.svg.name, files.png.name) == ("receipt-R-1.html", "receipt-R-1.svg",
                                                                  "receipt-R-1.png")
    assert folder.stat().st_mode & 0o077 == 0
    for path in (files.html, files.svg, files.png):
        assert path.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(["receipt-R-1.html", "receipt-R-1.svg",
                                                               "receipt-R-1.png"])  # no temporary files left
    assert CODE not in caplog.text and receipts.normalize(CODE) not in caplog.text
    receipts.remove_receipt_files(files)
    assert list(folder.iterdir()) == []


def test_file_names_from_any_reference():
    assert receipts.file_stem("R-1") == "receipt-R-1"
    odd = [receipts.file_stem(r) for r in ("LIC/2026/1", "LIC_2026_1", "王 1", "../../etc", "..", "a" * 300)]
    assert odd[1] == "receipt-LIC_2026_1" and odd[0] != odd[1]  # sanitised names get a hash: never shared
    for stem in odd:
        assert re.fullmatch(r"receipt-[A-Za-z0-9._-]+", stem) and "/" not in stem and len(stem) < 110
        assert not stem.startswith("receipt-.")
