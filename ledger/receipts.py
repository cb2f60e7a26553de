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
"""

from __future__ import annotations

import hashlib
import secrets

from eth_account import Account

from ledger.errors import InvalidRecord

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
