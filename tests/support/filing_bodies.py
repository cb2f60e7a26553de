"""Bodies of ``POST /api/v1/filings`` and ``POST /api/v1/receipt-claims`` as the citizen's page makes them: a new key
from a receipt code (``ledger.receipts``), a random salt, the content (``ledger.filings.FilingContent``) and its hash,
the EIP-712 signature in the filings module's domain (eth-account here; the page's bytes are checked against these in
the browser tests), and the proof of work."""

from __future__ import annotations

import base64
import secrets
import struct
import zlib
from typing import Any

from ledger import receipts
from ledger.chain.contract import Ledger
from ledger.encoding import code_text
from ledger.filings import FilingContent, attachment_of, do_work
from ledger.records import Channel, Filing, ReceiptClaim, short_code

FILINGS = "/api/v1/filings"
CLAIMS = "/api/v1/receipt-claims"
#: the proof of work's bits in these tests: a few hundred hashes
WORK_BITS = 6


def png(seed: int = 0) -> bytes:
    """A real 1×1 PNG (its colour from `seed`), as a phone's photo would be, only smaller."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = zlib.compress(b"\x00" + bytes([seed % 256, 80, 160]))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel) + chunk(b"IEND", b"")


def filing_body(
    ledger: Ledger,
    agency_id: bytes,
    commitment_id: bytes,
    *,
    code: str | None = None,
    description: str = "The street light outside No. 12 has been dark for three nights.",
    photos: list[bytes] = (),  # type: ignore[assignment]
    district: str = "EAST",
    channel: int = Channel.WEB,
    work_bits: int = WORK_BITS,
    sign_with: bytes | None = None,
    **content: Any,
) -> tuple[dict[str, Any], str]:
    """A filing's body, and the receipt code whose key made it (what the page shows the citizen once)."""
    code = code or receipts.new_code()
    salt = secrets.token_bytes(32)
    given = FilingContent(description=description, attachments=[attachment_of("image/png", p) for p in photos],
                          **content)
    record = Filing(agency_id=agency_id, commitment_id=commitment_id, district=short_code(district), channel=channel,
                    content_hash=given.content_hash(salt), receipt=receipts.address(code))
    signature = ledger.sign_filing(sign_with or receipts.private_key(code), record)
    body = {
        "filing": {"agency_id": code_text(agency_id), "commitment_id": code_text(commitment_id), "district": district,
                   "channel": channel, "content_hash": "0x" + record.content_hash.hex(), "receipt": record.receipt},
        "signature": "0x" + signature.hex(),
        "salt": "0x" + salt.hex(),
        "content": given.model_dump(exclude_defaults=True),
        "photos": [{"media_type": "image/png", "data": base64.b64encode(p).decode()} for p in photos],
        "work": do_work(record.receipt, work_bits),
    }
    return body, code


def claim_body(ledger: Ledger, agency_id: bytes, case_id: bytes, printed: str, own: str | None = None,
               *, sign_with: bytes | None = None) -> tuple[dict[str, Any], str]:
    """A claim of the case whose printed code is `printed`, to the key of `own` (a new code by default)."""
    own = own or receipts.new_code()
    claim = ReceiptClaim(agency_id=agency_id, case_id=case_id, receipt=receipts.address(own))
    body = {
        "agency_id": code_text(agency_id), "case_id": "0x" + case_id.hex(), "receipt": claim.receipt,
        "signature": "0x" + ledger.sign_filing(sign_with or receipts.private_key(printed), claim).hex(),
        "new_key_signature": "0x" + ledger.sign_filing(receipts.private_key(own), claim).hex(),
    }
    return body, own
