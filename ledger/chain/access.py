"""Agency access to its intake (``/api/v1/intake``): a short-lived bearer token an agency key signs for itself.

The token is the base64url of ``{"agency_id", "issued_at", "expires_at", "signature"}``, the signature an EIP-712
``IntakeAccess(bytes32 agencyId, uint64 issuedAt, uint64 expiresAt)`` in the domain ``CivicLedger Intake`` / ``1`` /
chain id / the ledger's address — a domain of its own, so the signature can never be taken for a record of the ledger,
and a key's signature for one deployment counts for no other. The service takes it only from a key the ledger says is
authorised for that agency *now* (``CivicLedger.agencyOf``): revoking a key on chain revokes its tokens.

A token lives at most :data:`MAX_LIFETIME` seconds; ``civic-ledger intake token`` makes one (an hour by default) for
the agency's own case system. It is a bearer token: whoever holds it reads that agency's filings, contact details
included, until it expires — keep it as a password.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from ledger.errors import LedgerError
from ledger.records import short_code

DOMAIN_NAME = "CivicLedger Intake"
DOMAIN_VERSION = "1"
#: the longest a token may live, and the clock skew allowed on its start
MAX_LIFETIME, CLOCK_SKEW = 24 * 3600, 60

_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "IntakeAccess": [
        {"name": "agencyId", "type": "bytes32"},
        {"name": "issuedAt", "type": "uint64"},
        {"name": "expiresAt", "type": "uint64"},
    ],
}


class AccessRefused(LedgerError):
    """A token that does not grant access: ``code`` is ``unauthenticated`` (absent, malformed, not a signature) or
    ``token_expired``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Access:
    """A token's claims and the key that signed them (whether that key is the agency's is the caller's to ask)."""

    agency_id: str
    issued_at: int
    expires_at: int
    signer: str


def _typed_data(chain_id: int, ledger_address: str, agency_id: str, issued_at: int, expires_at: int) -> dict[str, Any]:
    return {
        "types": _TYPES,
        "primaryType": "IntakeAccess",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": ledger_address},
        "message": {"agencyId": short_code(agency_id), "issuedAt": issued_at, "expiresAt": expires_at},
    }


def make_token(key: LocalAccount, chain_id: int, ledger_address: str, agency_id: str, *, lifetime: int = 3600,
               now: int | None = None) -> str:
    """A token for `agency_id`'s intake signed by `key`, valid from now for `lifetime` seconds."""
    if not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"a token lives 1 to {MAX_LIFETIME} seconds")
    issued = int(time.time()) if now is None else now
    data = _typed_data(chain_id, ledger_address, agency_id, issued, issued + lifetime)
    signature = Account.sign_typed_data(key.key, full_message=data).signature
    claims = {"agency_id": agency_id, "issued_at": issued, "expires_at": issued + lifetime,
              "signature": "0x" + bytes(signature).hex()}
    return base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")


def read_token(token: str, chain_id: int, ledger_address: str, *, now: int | None = None) -> Access:
    """The token's claims and signer; :class:`AccessRefused` when it is malformed, not yet valid, expired, or lives
    longer than :data:`MAX_LIFETIME`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        claims = json.loads(raw)
        agency_id, issued, expires = str(claims["agency_id"]), int(claims["issued_at"]), int(claims["expires_at"])
        signature = bytes.fromhex(str(claims["signature"]).removeprefix("0x"))
        data = _typed_data(chain_id, ledger_address, agency_id, issued, expires)
        signer = Account.recover_message(encode_typed_data(full_message=data), signature=signature)
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, LedgerError):
        raise AccessRefused("unauthenticated", "the access token is malformed (make one with `civic-ledger intake "
                                               "token`)") from None
    except Exception:  # noqa: BLE001 - eth-keys' BadSignature and kin: bytes that are no signature
        raise AccessRefused("unauthenticated", "the access token's signature does not recover to a key") from None
    current = int(time.time()) if now is None else now
    if expires - issued > MAX_LIFETIME or expires <= issued:
        raise AccessRefused("unauthenticated", f"an access token lives at most {MAX_LIFETIME} seconds")
    if current + CLOCK_SKEW < issued:
        raise AccessRefused("unauthenticated", "the access token is not valid yet (check the clock)")
    if current >= expires:
        raise AccessRefused("token_expired", "the access token has expired: make a new one")
    return Access(agency_id, issued, expires, signer)


__all__ = ["Access", "AccessRefused", "make_token", "read_token"]
