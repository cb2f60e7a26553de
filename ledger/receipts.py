"""Citizen receipts: a short code the citizen keeps, and the key derived from it.

When a case opens, the citizen is given a receipt code: 20 characters of Crockford's base32 (100 random bits),
shown in groups of four, ``7KQ2-M9XD-…``. From the code a secp256k1 key is derived; only the key's address goes on
chain (a ``Receipt`` entry), so the code never reaches the chain, the logs or the index. The citizen's page derives
the same key in the browser (``api/static/receipt.js``) to find the case and to sign a rating or dispute, which the
API relays, so the citizen needs no wallet and pays nothing.

Derivation, version 1 (the page implements the same; ``tests/api/test_receipt_js.py`` checks they agree)::

    code  = the 20 characters, upper case, with I and L read as 1 and O as 0, separators dropped
    seed  = PBKDF2-HMAC-SHA256(password=code (ASCII), salt="civic-ledger/receipt/v1", iterations=2048, length=32)
    key   = int(seed) mod (n - 1) + 1     (n: the secp256k1 group order; never zero, always a valid key)

The code has 100 bits of entropy, so the derivation needs no stretching to resist guessing; PBKDF2 is there to
tie the key to a versioned domain, and is available to both Python (hashlib) and the browser.

Artefacts (:func:`receipt_link`, :func:`qr_svg`, :func:`qr_png`, :func:`receipt_html`, :func:`write_receipt_files`)
    The citizen's copy of a receipt: a QR code (SVG and PNG, made with segno) of the link
    ``{page_url}/#/receipt/{CODE}`` — the code rides in the URL fragment, which browsers never send to a server — and
    a printable one-page HTML receipt (A5, so it also fits A4) in Chinese and English, self-contained (the QR code is
    inline SVG; no script, font or image is fetched). Nothing here logs a code; files are written only where the
    caller asks, readable by their owner only, and the service keeps no copy: the code is the only way to rate or
    dispute the case, and a lost code cannot be recovered.
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlencode

import segno
from eth_account import Account

from ledger.cases import DAY, DISPUTE_WINDOW
from ledger.errors import InvalidRecord
from ledger.records import DeadlineUnit

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
CODE_LENGTH = 20
GROUP = 4
SALT = b"civic-ledger/receipt/v1"
ITERATIONS = 2048
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_code() -> str:
    """A fresh receipt code, grouped for reading aloud and typing."""
    return format_code("".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH)))


def normalize(code: str) -> str:
    """The code's 20 characters, or InvalidRecord saying what is wrong with what was typed."""
    cleaned = "".join(ch for ch in code.upper() if ch not in " -\t").translate(_READ_AS)
    wrong = sorted({ch for ch in cleaned if ch not in ALPHABET})
    if wrong:
        raise InvalidRecord(f"a receipt code has only digits and the letters {ALPHABET[10:]}; got {''.join(wrong)!r}")
    if len(cleaned) != CODE_LENGTH:
        raise InvalidRecord(f"a receipt code has {CODE_LENGTH} characters; got {len(cleaned)}")
    return cleaned


def format_code(code: str) -> str:
    plain = normalize(code)
    return "-".join(plain[i : i + GROUP] for i in range(0, CODE_LENGTH, GROUP))


def private_key(code: str) -> bytes:
    """The receipt key (32 bytes) derived from a code."""
    seed = hashlib.pbkdf2_hmac("sha256", normalize(code).encode("ascii"), SALT, ITERATIONS, 32)
    return (int.from_bytes(seed, "big") % (SECP256K1_N - 1) + 1).to_bytes(32, "big")


def address(code: str) -> str:
    """Checksummed address of the receipt key: the public commitment recorded on chain."""
    return Account.from_key(private_key(code)).address


# ----------------------------------------------------------------------------------------------- artefacts

#: Where the local web page runs by default (``make run``); an operator sets the public address.
DEFAULT_PAGE_URL = "http://127.0.0.1:8000"
#: Receipts show times in the ledger's local time (the zone working-day deadlines are counted in).
LOCAL_ZONE = timezone(timedelta(hours=8), "UTC+8")
#: How long after a fulfilment its receipt holder may dispute it (the contract's DISPUTE_WINDOW), in days.
DISPUTE_DAYS = DISPUTE_WINDOW // DAY


def _page_base(page_url: str) -> str:
    base = page_url.strip()
    if not re.match(r"^https?://[^\s/#?]+", base):
        raise InvalidRecord(f"the page URL must start with http:// or https:// and a host, got {page_url!r}")
    if "#" in base or "?" in base:
        raise InvalidRecord(f"the page URL must not have a query or fragment, got {page_url!r}")
    return base.rstrip("/")


def receipt_link(page_url: str, code: str) -> str:
    """The link a receipt's QR code opens: the case page, with the code in the URL fragment only."""
    return f"{_page_base(page_url)}/#/receipt/{format_code(code)}"


def pairing_link(page_url: str, agency: str, commitment: str, district: str) -> str:
    """The link a desk's pairing QR code opens on the citizen's phone: the page's filing form for `agency`, with the
    service and district filled in and the counter as the channel. The phone makes the key and files the request
    itself, so the receipt is the citizen's own (a filed key), never one the desk saw; the desk then accepts the
    filing (``civic-ledger intake accept``)."""
    query = urlencode({"commitment": commitment, "district": district, "channel": "counter"})
    return f"{_page_base(page_url)}/#/file/{quote(agency, safe='')}?{query}"


def qr_text(link: str) -> str:
    """The QR code of `link` in text (Unicode half blocks), for a terminal on the desk's screen."""
    out = io.StringIO()
    _qr(link).terminal(out=out, compact=True, border=2)
    return out.getvalue()


def _qr(link: str) -> segno.QRCode:
    # Error correction M (15 %): survives a crease or a smudge on paper, and stays a small symbol (version 4-5).
    return segno.make(link, error="m", micro=False)


def qr_svg(link: str) -> str:
    """The QR code of `link` as a standalone SVG document (scales to any size; 4 modules of quiet zone)."""
    out = io.BytesIO()
    _qr(link).save(out, kind="svg", scale=8, border=4, xmldecl=True, svgns=True, title="Civic Ledger receipt",
                   dark="#000", light="#fff")
    return out.getvalue().decode("utf-8")


def qr_png(link: str, *, scale: int = 10) -> bytes:
    """The QR code of `link` as a PNG (black on white, `scale` pixels per module, 4 modules of quiet zone)."""
    out = io.BytesIO()
    _qr(link).save(out, kind="png", scale=scale, border=4, dark="#000", light="#fff")
    return out.getvalue()


def _qr_inline(link: str) -> str:
    return _qr(link).svg_inline(scale=1, border=4, omitsize=True, dark="#000", light="#fff",
                                svgclass="qr", lineclass="qr-line")


@dataclass(frozen=True)
class ReceiptSheet:
    """What a printed receipt shows. Names come from the ledger (the agency's registration, the commitment's latest
    version); the code and the link are the citizen's secret and are shown, never stored."""

    code: str
    link: str
    agency_id: str
    agency_name_zh: str
    agency_name_en: str
    commitment_id: str
    commitment_name_zh: str
    commitment_name_en: str
    deadline: int
    deadline_unit: DeadlineUnit
    opened_at: int
    #: the agency's own case reference, printed for the citizen to quote (it is never recorded on chain)
    reference: str | None = None


def _deadline_text(deadline: int, unit: DeadlineUnit) -> tuple[str, str]:
    if unit is DeadlineUnit.WORKING_DAYS:
        return f"{deadline}个工作日内", f"within {deadline} working day{'s' if deadline != 1 else ''}"
    return f"{deadline}小时内", f"within {deadline} hour{'s' if deadline != 1 else ''}"


def _local_time(unix: int) -> str:
    return datetime.fromtimestamp(unix, LOCAL_ZONE).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"


_STYLE = """
@page { margin: 9mm; }
* { box-sizing: border-box; }
html { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "Microsoft YaHei",
       "PingFang SC", system-ui, sans-serif; color: #000; background: #fff; }
body { margin: 0 auto; max-width: 130mm; padding: 8mm 0; font-size: 9.5pt; line-height: 1.35; }
header { display: flex; justify-content: space-between; align-items: baseline; border-bottom: 0.6mm solid #000;
         padding-bottom: 2mm; margin-bottom: 3mm; }
h1 { font-size: 14pt; margin: 0; }
h1 span, .en { font-weight: normal; }
.en { color: #333; font-size: 8.5pt; }
.brand { font-size: 8.5pt; color: #333; text-align: right; }
dl { display: grid; grid-template-columns: 28mm 1fr; gap: 0.8mm 3mm; margin: 0 0 2mm; }
dt { font-weight: bold; }
dd { margin: 0; }
.code-box { border: 0.5mm solid #000; border-radius: 2mm; padding: 3mm; margin: 3mm 0; break-inside: avoid;
            page-break-inside: avoid; }
.code-label { font-size: 9.5pt; margin: 0; }
.code { font-family: "DejaVu Sans Mono", "Noto Sans Mono", Consolas, "Courier New", monospace; font-size: 19pt;
        font-weight: bold; letter-spacing: 0.05em; white-space: nowrap; text-align: center; margin: 1mm 0 2mm;
        line-height: 1.3; }
.qr-row { display: flex; gap: 4mm; align-items: center; }
.qr { width: 32mm; height: 32mm; flex: none; }
.link { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 7.5pt; \
word-break: break-all; margin: 1mm 0 0; }
.notice { border-left: 1.2mm solid #000; padding: 0.5mm 0 0.5mm 3mm; margin: 2.5mm 0; }
.notice p, .how p { margin: 0 0 1.2mm; }
.how { font-size: 9pt; }
footer { margin-top: 2mm; font-size: 7.5pt; color: #333; border-top: 0.3mm solid #999; padding-top: 1.5mm; }
.print { margin: 0 0 4mm; }
@media print { .print { display: none; } body { padding: 0; } }
"""


def receipt_html(sheet: ReceiptSheet) -> str:
    """A one-page printable receipt (A5, fits A4) in Chinese and English, self-contained: inline SVG QR code, no
    script, font or image from anywhere. Print it from any browser."""
    e = html.escape
    grouped = format_code(sheet.code)
    deadline_zh, deadline_en = _deadline_text(sheet.deadline, sheet.deadline_unit)
    reference = ""
    if sheet.reference:
        reference = f"<dt>办件编号 <span class=\"en\">Case no.</span></dt><dd>{e(sheet.reference)}</dd>"
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>办事回执 Service receipt</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
  <h1>办事回执 <span>Service receipt</span></h1>
  <div class="brand">公共服务承诺账本<br>Civic Ledger</div>
</header>
<dl>
  <dt>办理机关 <span class="en">Agency</span></dt>
  <dd>{e(sheet.agency_name_zh)}<br><span class="en">{e(sheet.agency_name_en)} ({e(sheet.agency_id)})</span></dd>
  <dt>服务承诺 <span class="en">Service</span></dt>
  <dd>{e(sheet.commitment_name_zh)}<br>\
<span class="en">{e(sheet.commitment_name_en)} ({e(sheet.commitment_id)})</span></dd>
  <dt>办理时限 <span class="en">Deadline</span></dt>
  <dd>{e(deadline_zh)} <span class="en">{e(deadline_en)}</span></dd>
  <dt>受理时间 <span class="en">Opened</span></dt>
  <dd>{e(_local_time(sheet.opened_at))}</dd>
  {reference}
</dl>
<section class="code-box" aria-label="回执码 Receipt code">
  <p class="code-label">回执码 <span class="en">Receipt code</span></p>
  <p class="code">{e(grouped.replace("-", " "))}</p>
  <div class="qr-row">
    {_qr_inline(sheet.link)}
    <div>
      <p class="code-label">扫码或打开链接查看本件 <span class="en">Scan, or open the link, to see your case</span></p>
      <p class="link">{e(sheet.link)}</p>
    </div>
  </div>
</section>
<div class="notice">
  <p><strong>请妥善保管此回执码。它是评价或申诉本件的唯一凭证，本机关和账本均不保存，遗失无法补发。</strong></p>
  <p class="en"><strong>Keep this code safe. It is the only way to rate or dispute this case. It is not stored anywhere
  — not by the agency, not on the ledger — and cannot be reissued if lost.</strong></p>
</div>
<div class="how">
  <p>扫描二维码或打开上面的链接，可随时查看办理进度。办结后可凭此码评价一次（1–5分）；如对“已办结”有异议，可在办结后{DISPUTE_DAYS}日内提出申诉，机关须作出答复。</p>
  <p class="en">Scan the QR code or open the link to follow your case. Once it is closed you can rate it once (1–5);
  if you disagree that it was done, you can dispute it within {DISPUTE_DAYS} days, and the agency must answer.</p>
</div>
<button class="print" type="button" onclick="window.print()">打印 Print</button>
<footer>账本只记录由回执码推导出的公钥，不记录回执码、姓名或联系方式。
<span class="en">The ledger records only a key derived from the code — never the code, your name or how to reach \
you.</span></footer>
</body>
</html>
"""


@dataclass(frozen=True)
class ReceiptFiles:
    html: Path
    svg: Path
    png: Path


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(reference: str) -> str:
    """``receipt-<REF>`` for a file name: the reference as it is when it is a safe name, otherwise with every other
    character replaced by ``_`` and a short hash appended, so two references never share a file."""
    safe = _UNSAFE.sub("_", reference)[:80].strip(".") or "_"
    if safe != reference:
        safe += "-" + hashlib.sha256(reference.encode("utf-8")).hexdigest()[:8]
    return f"receipt-{safe}"


def write_receipt_files(directory: Path, reference: str, sheet: ReceiptSheet) -> ReceiptFiles:
    """Write ``receipt-<REF>.html``, ``.svg`` and ``.png`` into `directory` (made if missing, owner-only), each
    file owner-readable only and written atomically (a crash leaves the old file or the new one, never half)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = directory / file_stem(reference)
    files = ReceiptFiles(stem.with_suffix(".html"), stem.with_suffix(".svg"), stem.with_suffix(".png"))
    _write_private(files.svg, qr_svg(sheet.link).encode("utf-8"))
    _write_private(files.png, qr_png(sheet.link))
    _write_private(files.html, receipt_html(sheet).encode("utf-8"))
    return files


def remove_receipt_files(files: ReceiptFiles) -> None:
    """Delete a receipt's files (e.g. when the ledger refused the case): a code that opens nothing is confusing."""
    for path in (files.html, files.svg, files.png):
        path.unlink(missing_ok=True)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
