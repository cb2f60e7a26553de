"""The page's filing cryptography (api/static/filing.js) agrees with Python's (ledger/filings.py, ledger/receipts.py,
Ledger.sign_filing through eth-account), run in headless Chromium in a page without WebCrypto's subtle API (as on a
plain http page): the canonical content and its hash for tricky content, the Filing's and the ReceiptClaim's
signatures byte for byte, the proof of work's digest and first nonce, the new receipt codes, a whole filing's body as
the API's checks take it, and photos made into small JPEGs whose attachment is Python's."""

from __future__ import annotations

import base64
import json
import re
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak
from playwright.sync_api import Page, sync_playwright
from web3 import Web3

from api.errors import ERRORS
from api.filing_desk import REVERT_CODES
from api.routes import filing_writes
from api.settings import ApiSettings
from ledger import receipts
from ledger.chain.contract import Chain, Ledger, citizen_typed_data
from ledger.encoding import code_text
from ledger.filings import FilingContent, attachment_of, do_work, work_digest, work_done
from ledger.records import Filing, short_code
from ledger.relay.verify import check_citizen_signature
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, serve
from tests.support.filing_bodies import claim_body, png


@pytest.fixture(scope="module")
def js(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """A page whose filing and receipt modules are loaded (the app on an empty index, no chain), in a browser
    context without WebCrypto's subtle API."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    store = tmp_path_factory.mktemp("filing-js") / "index.sqlite"
    with serve(ApiSettings(store_url=f"sqlite:///{store}", rpc_url=None)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.add_init_script("Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined });")
            page.goto(url + "/")
            page.evaluate("""async () => {
                window.filing = await import('/static/filing.js');
                window.receipt = await import('/static/receipt.js');
            }""")
            assert page.evaluate("typeof crypto.subtle") == "undefined"
            yield page
            assert errors == []
        finally:
            browser.close()


def _ledger(chain_id: int, contract: str) -> Ledger:
    """A Ledger for signing only (offline: the chain id is given, nothing is sent)."""
    chain = Chain(Web3())
    chain.__dict__["chain_id"] = chain_id  # the cached property, set instead of asking a node
    return Ledger(chain, contract, check_code=False)


LEDGERS = [
    _ledger(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
    _ledger(1, "0x" + "ab" * 20),
    _ledger(2**40 + 7, Account.create().address),
]


def _attachment(seed: int) -> dict[str, Any]:
    return attachment_of("image/png", png(seed)).model_dump()


#: content as a citizen might write it, and worse: every character JSON escapes or might, keys Python and
#: JSON.stringify order differently, astral characters, every field
TRICKY: list[dict[str, Any]] = [
    {"description": "x"},
    {"description": "路灯坏了三天。The light at \"No. 12\" is out — since Monday.\nPlease fix.\r\n\tThanks \\ 谢谢"},
    {"description": "control \x00\x01\x07\x08\x0b\x0c\x0e\x1b\x1f and \x7f\x80\x9f, \u2028\u2029 \ufeff \ufffe end"},
    {"description": "emoji 🚦🕳️👨‍👩‍👧 and astral CJK 𠀀𪜀, combining é é, RTL مرحبا", "address": "人民路 12 号 🏠",
     "lat": "31.2304", "long": "121.4737"},
    {"description": "attributes", "attributes": {"10": ["ten"], "9": ["nine"], "Z": ["z"], "a": ["", "二", "\"q\""],
                                                 "a.b": ["x"], "x:y": ["1", "2", "3"], "_": ["_"], "-": ["-"]}},
    {"description": "contact", "contact": {"phone": "+86 138 0000 0000", "email": "a@例子.中国",
                                           "first_name": "小明", "last_name": "O'Brien \"Jr\""}},
    {"description": "empty contact values are left out", "contact": {"phone": "", "email": "x@y.z"}},
    {"description": "photos", "media_url": "https://example.org/p?a=1&b=\"2\"",
     "attachments": [_attachment(1), _attachment(2), _attachment(250)]},
    {"description": "-0.5", "lat": "-0.5", "long": "-179.9999999999", "address": "0"},
]


def test_canonical_content_and_its_hash_are_python_s(js: Page) -> None:
    salt = "0x" + secrets.token_bytes(32).hex()
    for given in TRICKY:
        content = FilingContent.model_validate(given)
        answer = js.evaluate(
            """([content, salt]) => ({
                 canonical: window.filing.canonicalContent(content),
                 hash: window.filing.contentHash(salt, content),
                 compact: window.filing.compactContent(content),
               })""",
            [given, salt],
        )
        assert answer["canonical"] == content.canonical(), given
        assert answer["hash"] == "0x" + content.content_hash(bytes.fromhex(salt[2:])).hex(), given
        # what the page sends (only the fields that are not empty) is what Python reads back: the same content
        assert FilingContent.model_validate(answer["compact"]).canonical() == content.canonical(), given


def test_keys_are_sorted_as_python_sorts_them_not_as_javascript_orders_them(js: Page) -> None:
    # JSON.stringify writes integer-like keys first, in numeric order ("9" before "10"); Python sorts them as text
    assert js.evaluate("() => JSON.stringify({'10': 1, '9': 2})") == '{"9":2,"10":1}'
    content = FilingContent(description="order", attributes={"9": ["b"], "10": ["a"], "e": ["d"], "E": ["c"]})
    given = {"description": "order", "attributes": {"9": ["b"], "10": ["a"], "e": ["d"], "E": ["c"]}}
    canonical = js.evaluate("(c) => window.filing.canonicalContent(c)", given)
    assert canonical == content.canonical() and canonical.index('"10"') < canonical.index('"9"')
    # by code point: U+10000 after U+FF21, as Python sorts str (UTF-16 code units would put it first). The API's
    # codes are ASCII, so this is the serializer's own rule, checked against json.dumps itself.
    keys = {"\uff21": ["x"], "\U00010000": ["y"], "a": ["z"]}
    answer = js.evaluate("(keys) => window.filing.canonicalContent({description: 'k', attributes: keys})", keys)
    assert answer == json.dumps({"attributes": keys, "description": "k", "format": "civic-filing/1"},
                                ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def test_content_python_refuses_is_refused(js: Page) -> None:
    with pytest.raises(ValueError):
        FilingContent(description="   ")
    for script, field in [
        ("window.filing.canonicalContent({description: '  \\n '})", "description"),
        ("window.filing.canonicalContent({description: 'lone \\ud800 surrogate'})", "description"),
        ("window.filing.canonicalContent({description: 'ok', address: 'lone \\udc00'})", "address"),
        ("window.filing.canonicalContent({description: 'ok', contact: {phone: '\\ud83d'}})", "contact.phone"),
    ]:
        answer = js.evaluate(f"() => {{ try {{ {script}; return null; }} catch (e) {{ return e.field; }} }}")
        assert answer == field, script


def _filings() -> list[tuple[Filing, str]]:
    out = []
    for i in range(6):
        code = receipts.new_code()
        out.append((Filing(
            agency_id=short_code(["DEMO-ROADS", "SH-ROADS", "X"][i % 3]),
            commitment_id=short_code(["LIGHT-48H", "STREETLIGHT-48H", "!~"][i % 3]),
            district=short_code(["EAST", "WEST", "D" * 32][i % 3]),
            channel=[3, 4, 255][i % 3],
            content_hash=keccak(secrets.token_bytes(32)),
            receipt=receipts.address(code),
        ), code))
    return out


def test_filing_signatures_are_byte_for_byte_python_s(js: Page) -> None:
    for n, (record, code) in enumerate(_filings()):
        ledger = LEDGERS[n % len(LEDGERS)]
        typed = citizen_typed_data(ledger.filings_domain(), record)
        signable = encode_typed_data(full_message=typed)
        digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
        signature = ledger.sign_filing(receipts.private_key(code), record)
        filing = {"agency_id": code_text(record.agency_id), "commitment_id": code_text(record.commitment_id),
                  "district": code_text(record.district), "channel": record.channel,
                  "content_hash": "0x" + record.content_hash.hex(), "receipt": record.receipt}
        answer = js.evaluate("([code, domain, filing]) => window.filing.signFiling(code, domain, filing)",
                             [code, typed["domain"], filing])
        assert answer == {"digest": "0x" + digest.hex(), "signature": "0x" + signature.hex(),
                          "receipt": record.receipt}, record


def test_claims_are_signed_by_both_keys_as_python_signs_them(js: Page) -> None:
    for n, agency in enumerate(["DEMO-ROADS", "SH-ROADS", "Z"]):
        ledger = LEDGERS[n]
        case_id = bytes([0x80 | secrets.randbits(7)]) + secrets.token_bytes(31)
        printed, own = receipts.new_code(), receipts.new_code()
        expected, _ = claim_body(ledger, short_code(agency), case_id, printed, own)
        answer = js.evaluate(
            "([printed, own, domain, claim]) => window.filing.claimBody(printed, own, domain, claim)",
            [printed, own, ledger.filings_domain(), {"agencyId": agency, "caseId": "0x" + case_id.hex()}],
        )
        assert answer == expected


def test_the_proof_of_work_is_python_s(js: Page) -> None:
    for bits in [0, 1, 4, 8, 11]:
        address = receipts.address(receipts.new_code())
        answer = js.evaluate("([address, bits]) => window.filing.doWork(address, bits)", [address, bits])
        assert answer == do_work(address, bits), (address, bits)
        assert work_done(address, answer, bits)
    address = receipts.address(receipts.new_code())
    for nonce in [0, 1, 255, 256, 2**32 - 1, 2**32, 2**40 + 3, 2**53 - 1]:
        digest = js.evaluate("([address, nonce]) => window.filing.workDigest(address, nonce)", [address, nonce])
        assert digest == "0x" + work_digest(address, nonce).hex(), nonce
        for bits in (1, 3, 9):
            assert js.evaluate("([a, n, b]) => window.filing.workDone(a, n, b)", [address, nonce, bits]) == work_done(
                address, nonce, bits)


def test_the_work_yields_to_the_page_and_reports_its_progress(js: Page) -> None:
    """At 16 bits (about 65,000 hashes) the page keeps running timers between slices, and hears of the progress."""
    address = receipts.address(receipts.new_code())
    answer = js.evaluate(
        """async (address) => {
             let ticks = 0;
             const timer = setInterval(() => { ticks += 1; }, 0);
             const reports = [];
             const started = performance.now();
             const nonce = await window.filing.doWork(address, 16, { onProgress: (p) => reports.push(p) });
             const ms = performance.now() - started;
             clearInterval(timer);
             return { nonce, ticks, reports, ms };
           }""",
        address,
    )
    assert answer["nonce"] == do_work(address, 16)
    done = [report["done"] for report in answer["reports"]]
    assert done == sorted(done) and answer["reports"][-1] == {"done": answer["nonce"] + 1, "expected": 2**16,
                                                              "found": True}
    if answer["nonce"] > 20_000:  # long enough to take several slices
        assert len(done) > 2 and answer["ticks"] > 0
    stopped = js.evaluate(
        """async (address) => {
             const controller = new AbortController();
             const work = window.filing.doWork(address, 40, { signal: controller.signal });
             setTimeout(() => controller.abort(), 50);
             try { await work; return 'finished'; } catch (e) { return e.name; }
           }""",
        address,
    )
    assert stopped == "AbortError"


def test_new_receipt_codes_are_codes_as_ledger_receipts_makes_them(js: Page) -> None:
    codes = js.evaluate("() => Array.from({ length: 400 }, () => window.receipt.newCode())")
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert receipts.format_code(code) == code
    assert set("".join(codes).replace("-", "")) == set(receipts.ALPHABET)  # 8,000 characters: every one appears


def test_a_whole_filing_is_one_the_api_s_checks_take(js: Page) -> None:
    """prepareFiling's body: the content's hash matches its salt, the signature is by the filing's own receipt key in
    the filings module's domain, the work is done — and the receipt code is nowhere in it."""
    ledger = LEDGERS[0]
    policy = {"domain": ledger.filings_domain(), "work": {"bits": 8, "domain": "civic-ledger/filing-work/v1"},
              "content": {"format": "civic-filing/1"}}
    photo = png(7)
    answer = js.evaluate(
        """async ([policy, photo]) => {
             const bytes = Uint8Array.from(atob(photo), (c) => c.charCodeAt(0));
             const photos = [
               { media_type: 'image/png', bytes, sha256: window.filing.sha256Hex(bytes), size: bytes.length },
             ];
             return window.filing.prepareFiling({
               policy, agencyId: 'SH-ROADS', commitmentId: 'LIGHT-48H', district: 'EAST', channel: 3, photos,
               content: {
                 description: '路灯不亮 "No. 12"\\n🚦', address: '', lat: '', long: '',
                 contact: { phone: '138', email: '' },
               },
             });
           }""",
        [policy, base64.b64encode(photo).decode()],
    )
    code, body = answer["code"], answer["body"]
    assert receipts.format_code(code) == code
    text = json.dumps(body)
    assert receipts.normalize(code) not in text.upper().replace("-", "") and code not in text
    content = FilingContent.model_validate(body["content"])
    assert content.description == '路灯不亮 "No. 12"\n🚦' and content.contact == {"phone": "138"}
    assert content.attachments == [attachment_of("image/png", photo)]
    assert [base64.b64decode(p["data"]) for p in body["photos"]] == [photo]
    filing = Filing(agency_id=short_code("SH-ROADS"), commitment_id=short_code("LIGHT-48H"),
                    district=short_code("EAST"), channel=3,
                    content_hash=bytes.fromhex(body["filing"]["content_hash"][2:]), receipt=body["filing"]["receipt"])
    assert filing.content_hash == content.content_hash(bytes.fromhex(body["salt"][2:]))
    assert filing.receipt == receipts.address(code)
    assert check_citizen_signature(filing, body["signature"], ledger.filings_domain()).signer == filing.receipt
    assert work_done(filing.receipt, body["work"], 8) and body["work"] == do_work(filing.receipt, 8)


def _noise_png(width: int, height: int) -> bytes:
    """A PNG of random pixels (incompressible: a JPEG of it is large), made without an imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + secrets.token_bytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1))
            + chunk(b"IEND", b""))


READ_PHOTO = """async ([data, type, name]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  try {
    const photo = await window.filing.readPhoto(new File([bytes], name, { type }));
    return { ...photo, bytes: window.filing.base64(photo.bytes) };
  } catch (error) {
    return { error: error.kind || error.message };
  }
}"""


def test_photos_are_made_small_jpegs_whose_attachment_is_python_s(js: Page, tmp_path: Path) -> None:
    for source, (width, height) in [(png(3), (1, 1)), (_noise_png(2400, 1800), (1600, 1200)),
                                    (_noise_png(900, 3000), (480, 1600))]:
        answer = js.evaluate(READ_PHOTO, [base64.b64encode(source).decode(), "image/png", "photo.png"])
        data = base64.b64decode(answer.pop("bytes"))
        assert data.startswith(b"\xff\xd8\xff") and len(data) <= 2**20
        # noise makes the largest JPEGs there are: the quality (then the size) came down until it fitted
        assert (answer["width"], answer["height"]) == (width, height) or len(data) > 2**19
        assert max(answer["width"], answer["height"]) <= 1600
        assert attachment_of("image/jpeg", data).model_dump() == {
            "media_type": answer["media_type"], "sha256": answer["sha256"], "size": answer["size"]}
    refused = js.evaluate(READ_PHOTO, [base64.b64encode(b"not a picture").decode(), "image/png", "x.png"])
    assert refused == {"error": "unreadable"}


def _refusal_codes() -> set[str]:
    """Every refusal code POST /filings and /receipt-claims document or the desk maps the module's errors to."""
    documented = set(re.findall(r"``([a-z_]+)``", filing_writes.__doc__ or "")) & set(ERRORS)
    return documented | {code for code, _ in REVERT_CODES.values()} | {"refused_by_ledger", "write_unavailable",
                                                                       "citizen_queue_full"}


def test_every_refusal_has_its_own_words_in_both_languages(js: Page) -> None:
    codes = sorted(_refusal_codes())
    assert {"work_missing", "content_mismatch", "commitment_retired", "already_claimed", "receipt_in_use"} <= set(codes)
    claim_only = {"already_claimed", "unknown_receipt"}  # a claim's refusals; a filing's are all the others
    answers = js.evaluate(
        """async (codes) => {
             const i18n = await import('/static/i18n.js');
             const { filingRefusalText } = await import('/static/views/file.js');
             const out = {};
             for (const lang of ['en', 'zh']) {
               i18n.setLang(lang);
               out[lang] = Object.fromEntries(codes.map((code) => {
                 const error = { status: 409, code, message: 'MESSAGE', body: { error: { code, work_bits: 18 } } };
                 const claim = filingRefusalText(error, ['claim_refusal', 'filing_refusal']);
                 return [code, { filing: filingRefusalText(error), claim }];
               }));
             }
             return out;
           }""",
        codes,
    )
    for lang, fallback in (("en", "Not sent: MESSAGE"), ("zh", "未能提交：MESSAGE")):
        for code in codes:
            texts = [answers[lang][code]["claim"]] + ([] if code in claim_only else [answers[lang][code]["filing"]])
            for text in texts:
                assert text != fallback and "{" not in text, (lang, code, text)
        assert "18" in answers[lang]["work_missing"]["filing"]
        assert answers[lang]["forged_signature"]["claim"] != answers[lang]["forged_signature"]["filing"]
