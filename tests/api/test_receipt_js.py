"""The page's receipt cryptography (api/static/receipt.js) agrees with Python's (ledger/receipts.py, and
Ledger.sign_citizen through eth-account): run in headless Chromium, in a page that has no WebCrypto (as on a plain
http page), on many codes and records. And the vendored libraries are exactly the npm packages pinned in
package.json."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak
from playwright.sync_api import Browser, Page, sync_playwright
from web3 import Web3

from api.app import create_app
from api.routes.page import STATIC_DIR
from api.settings import ApiSettings
from ledger import receipts
from ledger.chain.contract import Chain, Ledger, citizen_typed_data
from ledger.encoding import ZERO32
from ledger.errors import InvalidRecord
from ledger.records import Dispute, Rating, short_code
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
#: vendored file -> its origin in node_modules (the packages package.json pins)
VENDORED = {
    "vendor/noble-secp256k1/index.js": "@noble/secp256k1/lib/esm/index.js",
    "vendor/noble-secp256k1/LICENSE": "@noble/secp256k1/LICENSE",
    **{
        f"vendor/noble-hashes/{name}": f"@noble/hashes/esm/{name}"
        for name in ("_assert.js", "_u64.js", "_sha2.js", "utils.js", "sha3.js", "sha256.js", "hmac.js", "pbkdf2.js",
                     "cryptoBrowser.js")
    },
    "vendor/noble-hashes/LICENSE": "@noble/hashes/LICENSE",
}
PINNED = {"@noble/secp256k1": "1.7.1", "@noble/hashes": "1.2.0"}


# --- the vendored files -----------------------------------------------------------------------------------------------


def test_vendored_files_are_the_pinned_packages_byte_for_byte() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    for name, version in PINNED.items():
        assert package["dependencies"][name] == version  # a direct dependency, pinned exactly
        assert lock["packages"][""]["dependencies"][name] == version
        locked = lock["packages"][f"node_modules/{name}"]
        assert locked["version"] == version and not locked.get("dev"), locked
        installed = json.loads((ROOT / "node_modules" / name / "package.json").read_text())
        assert installed["version"] == version
    for vendored, origin in VENDORED.items():
        assert (STATIC_DIR / vendored).read_bytes() == (ROOT / "node_modules" / origin).read_bytes(), vendored
    on_disk = {p.relative_to(STATIC_DIR).as_posix() for p in (STATIC_DIR / "vendor").rglob("*") if p.is_file()}
    assert on_disk == set(VENDORED) | {"vendor/empty-module.js"}


def test_every_bare_import_of_the_vendored_files_is_in_the_import_map() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    start = html.index('<script type="importmap">') + len('<script type="importmap">')
    imports = json.loads(html[start : html.index("</script>", start)])["imports"]
    import re

    bare = set()
    for path in (STATIC_DIR / "vendor").rglob("*.js"):
        for specifier in re.findall(r"""^import .*? from ['"]([^'"]+)['"];""", path.read_text(), re.M):
            if not specifier.startswith("."):
                bare.add(specifier)
    assert bare == set(imports) == {"crypto", "@noble/hashes/crypto"}
    for target in imports.values():
        assert (STATIC_DIR / target.removeprefix("/static/")).is_file(), target


# --- the same answers in the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app (an empty index, no chain) on a loopback port: enough to serve the page and its modules."""
    store = tmp_path_factory.mktemp("receipt-js") / "index.sqlite"
    app = create_app(ApiSettings(store_url=f"sqlite:///{store}", rpc_url=None))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def js(page_url: str) -> Iterator[Page]:
    """A page whose receipt module is loaded, in a browser context without WebCrypto's subtle API."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    with sync_playwright() as pw:
        browser: Browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # as on a page served over plain http: no crypto.subtle (signing must not need it)
            page.add_init_script("Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined });")
            page.goto(page_url)
            page.evaluate("async () => { window.receipt = await import('/static/receipt.js'); }")
            assert page.evaluate("typeof crypto.subtle") == "undefined"
            yield page
            assert errors == []
        finally:
            browser.close()


def _codes() -> list[str]:
    fixed = ["0000-0000-0000-0000-0000", "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ", "7KQ2-M9XD-4HJ8-PRST-VW01"]
    return fixed + [receipts.new_code() for _ in range(9)]


def test_codes_normalise_and_derive_the_same_key_and_address(js: Page) -> None:
    codes = _codes()
    # typed as people type them: lower case, no dashes, spaces, I/L for 1 and O for 0
    variants = []
    for code in codes:
        plain = code.replace("-", "")
        variants += [code, plain.lower(), " ".join(plain[i : i + 5] for i in range(0, 20, 5)),
                     plain.replace("1", "l").replace("0", "O"), plain.replace("1", "I").lower()]
    answers = js.evaluate(
        """(codes) => codes.map((code) => {
             const key = window.receipt.privateKey(code);
             return { normal: window.receipt.normalize(code), formatted: window.receipt.formatCode(code),
                      key: window.receipt.toHex(key), address: window.receipt.address(code) };
           })""",
        variants,
    )
    for code, answer in zip(variants, answers, strict=True):
        assert answer["normal"] == receipts.normalize(code), code
        assert answer["formatted"] == receipts.format_code(code), code
        assert answer["key"] == "0x" + receipts.private_key(code).hex(), code
        assert answer["address"] == receipts.address(code), code


def test_bad_codes_are_refused_alike(js: Page) -> None:
    for bad in ["", "1234", "0000-0000-0000-0000-00000", "UUUU-0000-0000-0000-0000", "0000-0000-0000-0000-000*"]:
        with pytest.raises(InvalidRecord) as refused:
            receipts.normalize(bad)
        answer = js.evaluate(
            "(code) => { try { window.receipt.normalize(code); return null; }"
            " catch (e) { return { kind: e.kind, message: e.message }; } }",
            bad,
        )
        assert answer is not None, bad
        assert answer["message"] == str(refused.value), bad
        assert answer["kind"] == ("length" if "characters; got" in str(refused.value) else "characters")


def _ledger(chain_id: int, contract: str) -> Ledger:
    """A Ledger object for signing only (offline: nothing is sent, the chain id is given)."""
    chain = Chain(Web3())
    chain.__dict__["chain_id"] = chain_id  # the cached property, set instead of asking a node
    return Ledger(chain, contract, check_code=False)


def _records() -> list[Rating | Dispute]:
    out: list[Rating | Dispute] = []
    for i in range(6):
        agency = short_code(["DEMO-ROADS", "DEMO-HOTLINE", "X"][i % 3])
        case = bytes([0x80 | secrets.randbits(7)]) + secrets.token_bytes(31)
        comment = ZERO32 if i % 2 else keccak(secrets.token_bytes(32) + "路灯还是不亮".encode())
        out.append(Rating(agency_id=agency, case_id=case, score=1 + i % 5, comment_hash=comment))
        out.append(Dispute(agency_id=agency, case_id=case, closure=[1, 2, 65535][i % 3], reason_hash=comment))
    out.append(Rating(agency_id=b"\xff" * 32, case_id=b"\x80" + b"\0" * 31, score=5))
    return out


def test_rating_and_dispute_signatures_are_byte_for_byte_python_s(js: Page) -> None:
    ledgers = [
        _ledger(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        _ledger(1, "0x" + "ab" * 20),
        _ledger(2**40 + 7, Account.create().address),
    ]
    cases: list[dict[str, Any]] = []
    expected = []
    for n, record in enumerate(_records()):
        ledger = ledgers[n % len(ledgers)]
        code = receipts.new_code()
        typed = citizen_typed_data(ledger.domain(), record)
        signable = encode_typed_data(full_message=typed)
        digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
        signature = ledger.sign_citizen(receipts.private_key(code), record)
        assert Account.recover_message(signable, signature=signature) == receipts.address(code)
        cases.append({"code": code, "domain": typed["domain"], "primaryType": typed["primaryType"],
                      "message": typed["message"]})
        expected.append(("0x" + digest.hex(), "0x" + signature.hex(), receipts.address(code)))
    answers = js.evaluate(
        """(cases) => cases.map((c) => window.receipt.signRecord(c.code, c.domain, c.primaryType, c.message))""",
        cases,
    )
    for case, answer, (digest_hex, signature_hex, receipt) in zip(cases, answers, expected, strict=True):
        assert answer["digest"] == digest_hex, case
        assert answer["signature"] == signature_hex, case  # deterministic (RFC 6979), low s, v 27/28: the same bytes
        assert answer["receipt"] == receipt
        assert int(signature_hex[-2:], 16) in (27, 28)


def test_salted_text_hash_and_codes_as_bytes32(js: Page) -> None:
    salt = "0x" + secrets.token_bytes(32).hex()
    for text in ["", "ok", "路灯还是不亮。The light is still out.", "emoji 🚦 and\nnew lines"]:
        answer = js.evaluate("([salt, text]) => window.receipt.saltedTextHash(salt, text)", [salt, text])
        assert answer == "0x" + keccak(bytes.fromhex(salt[2:]) + text.encode("utf-8")).hex()
    fresh = js.evaluate("() => [window.receipt.newSalt(), window.receipt.newSalt()]")
    assert all(len(s) == 66 and s.startswith("0x") for s in fresh) and fresh[0] != fresh[1]
    for code in ["DEMO-ROADS", "X", "!" * 32]:
        assert js.evaluate("(c) => window.receipt.codeBytes32(c)", code) == "0x" + short_code(code).hex()
    raw = "0x" + "ff" * 32
    assert js.evaluate("(c) => window.receipt.codeBytes32(c)", raw.upper().replace("0X", "0x")) == raw
