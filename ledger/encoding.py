"""The ledger's encodings, one definition each, byte for byte the contract's: keccak, the entry hash and the running
hash's fold, and how a bytes32 code and on-chain text are shown. Used by the records, the log decoder, the batch
reader, the indexer, the API and the auditor alike.

- ``entry_hash`` = keccak256(abi.encode(ENTRY_TYPEHASH, seq, kind, agencyId, actor, recordHash))
  (``ICivicFilings.entryHashOf``); every argument is one 32-byte word, so the encoding is their concatenation.
- ``fold`` = bytes24(keccak256(abi.encode(bytes24 head, bytes32 entryHash))): one step of the running hash.
- ``code_text``: a bytes32 code's text when it is 1 to 32 printable ASCII characters right-padded with zero bytes
  (what ``ledger.records.short_code`` makes), else ``0x`` + hex: one-to-one, so the index can key on it.

Speed: keccak goes through safe-pysha3 (installed with ``eth-hash[pysha3]``), about four times faster than
eth-hash's automatic choice; the hot paths (decoding logs, reading batch files) hash from words they already hold
with :func:`entry_hash_of_words`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

try:  # the C implementation; the same values as eth-hash's, about four times faster
    from sha3 import keccak_256  # type: ignore[import-untyped]  # safe-pysha3 ships no types
except ImportError:  # pragma: no cover - same values, slower
    from Crypto.Hash import keccak as _pycryptodome

    def keccak_256(data: bytes) -> Any:
        """A keccak256 hasher over ``data`` (``.digest()`` gives the hash)."""
        return _pycryptodome.new(data=data, digest_bits=256)


def keccak(data: bytes) -> bytes:
    """keccak256 of ``data``."""
    return bytes(keccak_256(data).digest())


ZERO32 = b"\0" * 32
#: the running hash of an empty ledger
ZERO_HEAD = b"\0" * 24
ENTRY_TYPEHASH = keccak(b"Entry(uint256 seq,uint8 kind,bytes32 agencyId,address actor,bytes32 recordHash)")


def module_address(ledger_address: str) -> ChecksumAddress:
    """The address of the filings module a ledger at `ledger_address` created in its constructor: the first
    contract a contract creates has CREATE address ``keccak256(rlp([creator, 1]))[12:]`` (EIP-161: a contract's
    nonce starts at 1). Derived, not asked of the ledger, so nobody has to trust an answer about it."""
    creator = bytes.fromhex(ledger_address[2:])
    return to_checksum_address(keccak(rlp.encode([creator, 1]))[12:])


def word(value: int) -> bytes:
    """A uint256 ABI word."""
    return value.to_bytes(32, "big")


def address_word(address: str) -> bytes:
    """A 0x-hex address as its ABI word."""
    return bytes.fromhex(address[2:]).rjust(32, b"\0")


def entry_hash_of_words(seq_word: bytes, kind_word: bytes, agency_id: bytes, actor_word: bytes,
                        record_hash: bytes) -> bytes:
    """The entry hash from its ABI words (for callers that already hold them)."""
    return bytes(keccak_256(ENTRY_TYPEHASH + seq_word + kind_word + agency_id + actor_word + record_hash).digest())


def entry_hash(seq: int, kind: int, agency_id: bytes, actor: str, record_hash: bytes) -> bytes:
    """The entry hash the contract folds into its running hash (``ICivicFilings.entryHashOf``)."""
    return entry_hash_of_words(word(seq), word(int(kind)), agency_id, address_word(actor), record_hash)


def entry_hashes_in_order(first_seq: int, kind: int, agency_id: bytes, actor: str,
                          record_hashes: Sequence[bytes]) -> Iterator[bytes]:
    """The entry hashes of consecutive entries of one kind, agency and actor from ``first_seq`` on (a batch's
    events: ``first_seq`` is the anchor's seq)."""
    hasher, prefix = keccak_256, ENTRY_TYPEHASH
    middle = word(int(kind)) + agency_id + address_word(actor)
    for i, record_hash in enumerate(record_hashes):
        yield hasher(prefix + (first_seq + i).to_bytes(32, "big") + middle + record_hash).digest()


def fold(head: bytes, entry: bytes) -> bytes:
    """One step of the running hash: bytes24(keccak256(abi.encode(bytes24 head, bytes32 entryHash)))."""
    return keccak(head + b"\0" * 8 + entry)[:24]


def running_hash(entry_hashes: Iterable[bytes], start: bytes = ZERO_HEAD) -> bytes:
    """The running hash after folding ``entry_hashes`` into ``start``."""
    head = start
    for entry in entry_hashes:
        head = fold(head, entry)
    return head


_CODES: dict[bytes, str] = {}
_PRINTABLE = bytes(range(0x21, 0x7F))


def code_text(value: bytes) -> str:
    """A bytes32 code as text: its characters when it is 1 to 32 printable ASCII characters right-padded with zero
    bytes (what ``ledger.records.short_code`` makes), else ``0x`` + hex. One-to-one either way."""
    found = _CODES.get(value)
    if found is not None:
        return found
    text = value.rstrip(b"\0")
    found = text.decode("ascii") if text and not text.translate(None, _PRINTABLE) else "0x" + value.hex()
    if len(_CODES) > 100_000:  # codes repeat (agencies, districts, commitments); bound the memory anyway
        _CODES.clear()
    _CODES[value] = found
    return found


def display_text(raw: bytes) -> str:
    """Free text for display and the index: UTF-8, with invalid bytes and NUL (which PostgreSQL refuses) as U+FFFD."""
    return raw.decode("utf-8", errors="replace").replace("\0", "\ufffd")
