"""Relayed writes: records an agency key signed with EIP-712 (``eth_signTypedData_v4``), checked, stored durably and
sent by a relayer key as ``…BySig`` transactions, exactly once.

Three parts:

- :func:`check_signed_record` takes the typed data and signature as a wallet produced them and either returns a
  :class:`SignedRecord` (the records, nonce, deadline, EIP-712 digest and the recovered signer) or raises
  :class:`RelayRefused` with a stable ``code`` saying what is wrong. It checks only what needs no chain; whether the
  signer is authorised and the nonce current is the caller's to ask the chain.
- :class:`RelayStore` keeps every accepted submission (the signed envelope: signer, nonce, deadline, signature,
  records) in a small SQLite file next to the writer's :class:`~ledger.writer.outbox.Outbox`, and puts its records into
  that outbox, one row per entry. The idempotency key is ``keccak("civic-ledger relay" ‖ signer ‖ EIP-712 digest)``: the
  same signed message submitted twice (a client retrying after a timeout) is the same submission, whatever the
  signature bytes. Submissions are serialised (a lock across threads and processes), so the nonce check — the
  signer's on-chain nonce plus its submissions not yet settled — and the insert cannot interleave.
- :class:`RelayWriter` is a :class:`~ledger.writer.sender.Writer` whose transactions are the stored submissions, one per
  transaction, sent from the relayer key. Everything else — signing before broadcast, re-broadcasting the same bytes
  after a crash, receipts, retries with backoff, decoding reverts — is the writer's. A relayed batch is never split:
  its one signature covers every event in it, so a revert fails the whole submission with the decoded custom error.

Fair relaying:

- Budgets. Each agency key's submissions are charged to it (:mod:`ledger.relay.budgets`: transactions and gas per
  rolling hour and day, gas estimated until the receipts say what was paid); one that would pass a budget is refused
  with :class:`~ledger.relay.budgets.BudgetExceeded` before anything is stored, inside the same lock as the nonce
  check. Citizens' records are never charged to an agency.
- Two lanes. Agencies' submissions and citizens' ratings and disputes have an outbox each (``outbox.sqlite``,
  ``citizens-outbox.sqlite``) and a relay writer each, sending from a key each (:data:`LANES`), so each lane has its
  own nonces: no backlog of agency batches, however long, sits in front of a rating — not in the outbox, not in the
  relayer's nonce order.
- Front-running. Anyone who sees a relayed transaction can copy its signed record and send it first. Ours then
  reverts (the nonce is used; a case is rated once), yet the record is on chain — once. Before failing a refused
  submission the writer looks for it (:meth:`RelayWriter.found_on_chain`): an entry of the same agency, by the same
  signer (receipt key), with the same record hashes in order, in a block since the submission was accepted, whose
  transaction carries the same signature (for a citizen's record, which has no nonce, the record hash is the signed
  message itself). Found, the submission is ``recorded`` with that transaction and its seqs.

A crash between storing the envelope and adding its outbox rows leaves an envelope without rows; the store notices
and queues it before anything else (on opening, and before every submission), so submission order — and so each
signer's nonce order — is kept.

Citizens' records go the same way. A receipt holder's :class:`~ledger.records.Rating` or
:class:`~ledger.records.Dispute` is signed by the receipt key over the record itself (EIP-712, no nonce and no
deadline: a case is rated once, and a dispute names the closure it disputes) and sent as ``rateCase`` /
``disputeCase`` (:meth:`Ledger.encode_citizen_call`). :func:`check_citizen_signature` checks the signature and
recovers the key; :meth:`RelayStore.submit_citizen` stores the envelope (the receipt address as signer) together
with a row naming the case — so a second rating of a case, or a second dispute of a closure, is refused while the
first is in flight — and the off-chain text, if the citizen wrote one: the comment or reason, the random salt its
on-chain hash was made with (``keccak256(salt ‖ utf8(text))``) and whether the citizen agreed to publish it. That
text lives here only: never on chain, never in the index (which must stay rebuildable from the chain), never in a
log. :class:`CitizenFiles` reads it back, and the state of citizens' submissions, without a chain connection.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, cast

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_typing import Hash32
from eth_utils import is_hex_address, to_checksum_address
from pydantic import ValidationError
from web3.exceptions import Web3RPCError

from ledger.chain.contract import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    Ledger,
    citizen_typed_data,
    relay_typed_data,
    relay_wrapper_fields,
)
from ledger.errors import ContractReverted, LedgerError, NodeUnavailable, OutboxError
from ledger.records import (
    BATCH_RELAY,
    CITIZEN_RECORDS,
    CaseEvent,
    Commitment,
    Correction,
    Dispute,
    HolidayCalendar,
    Rating,
    Record,
    Retirement,
)
from ledger.relay.budgets import BudgetBook, BudgetUse, RelayBudgets, estimated_gas
from ledger.writer.outbox import (
    RECORD_TYPES,
    Outbox,
    OutboxItem,
    OutboxState,
    record_from_json,
    record_json,
    struct_hash,
)
from ledger.writer.sender import MAX_BATCH, MAX_CALLDATA, FoundOnChain, Writer

# The outbox rebuilds a row's record from its class name; citizens' records reach the outbox only through this
# module, so it makes them known there (a no-op once ledger.writer.outbox lists them itself).
for _citizen in CITIZEN_RECORDS:
    RECORD_TYPES.setdefault(_citizen.__name__, _citizen)

#: case events in one relayed batch; ``recordCaseEventsBySig`` calldata then stays under the writer's MAX_CALLDATA
MAX_RELAY_BATCH = 500
assert 4 + 32 * 8 + 65 + 7 * 32 * MAX_RELAY_BATCH < MAX_CALLDATA

UINT256_MAX = 2**256 - 1
#: secp256k1 group order; a signature's s above half of it is the malleable twin (EIP-2), refused by OpenZeppelin
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: an entry stamped this far ahead of the clock is refused at once rather than held for a block that late
MAX_CLOCK_SKEW = 60

_KEY_DOMAIN = b"civic-ledger relay"


@dataclass(frozen=True)
class RelayType:
    """One EIP-712 primary type a relayer accepts."""

    primary_type: str
    #: name of the wrapper's record field ("caseEvent", "caseEvents", …)
    field: str
    record_type: type[Record]
    batch: bool
    #: the contract function the relayer calls
    function: str


RELAY_TYPES: dict[str, RelayType] = {
    "PublishCommitment": RelayType("PublishCommitment", "commitment", Commitment, False, "publishCommitmentBySig"),
    "RetireCommitment": RelayType("RetireCommitment", "retirement", Retirement, False, "retireCommitmentBySig"),
    "RecordCaseEvent": RelayType("RecordCaseEvent", "caseEvent", CaseEvent, False, "recordCaseEventBySig"),
    BATCH_RELAY: RelayType(BATCH_RELAY, "caseEvents", CaseEvent, True, "recordCaseEventsBySig"),
    "RecordCorrection": RelayType("RecordCorrection", "correction", Correction, False, "recordCorrectionBySig"),
    "PublishHolidayCalendar": RelayType(
        "PublishHolidayCalendar", "calendar", HolidayCalendar, False, "publishHolidayCalendarBySig"
    ),
}

# EIP-712 §Definition of domainSeparator: the fields of this contract's domain, in order
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def relay_types(primary_type: str) -> dict[str, list[dict[str, str]]]:
    """The EIP-712 ``types`` of a relayed record, exactly as :func:`ledger.chain.contract.relay_typed_data` writes
    them."""
    spec = RELAY_TYPES[primary_type]
    inner = spec.record_type
    field_type = f"{inner.TYPE_NAME}[]" if spec.batch else inner.TYPE_NAME
    return {
        "EIP712Domain": [dict(f) for f in _DOMAIN_FIELDS],
        primary_type: relay_wrapper_fields(spec.field, field_type),
        inner.TYPE_NAME: [{"name": n, "type": t} for _, n, t in inner.FIELDS],
    }


class RelayRefused(LedgerError):
    """A signed record was refused before anything was stored. ``code`` is stable (API clients branch on it);
    ``details`` adds facts such as the field at fault or the expected nonce."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class StaleNonce(RelayRefused):
    def __init__(self, given: int, expected: int) -> None:
        super().__init__(
            "stale_nonce",
            f"nonce {given} is not the signer's next one: expected {expected} (its on-chain nonce plus its "
            "submissions still being relayed); sign again with that nonce",
            expected_nonce=expected,
        )


@dataclass(frozen=True)
class SignedRecord:
    """A relayed submission whose typed data and signature have been checked (but not yet against the chain)."""

    relay_type: RelayType
    #: the agency signed for (``agencyId``): the contract accepts it only while the key writes for that agency
    agency_id: bytes
    records: tuple[Record, ...]
    nonce: int
    deadline: int
    #: EIP-712 digest the signer signed (``keccak(0x1901 ‖ domainSeparator ‖ hashStruct(message))``)
    digest: bytes
    #: 65 bytes r ‖ s ‖ v with v 27 or 28 (what OpenZeppelin's ECDSA takes)
    signature: bytes
    signer: str

    def check_deadline(self, now: float | None = None) -> None:
        """Refuse the submission when its deadline has passed (the contract would refuse it too)."""
        if self.deadline < (time.time() if now is None else now):
            raise RelayRefused(
                "expired", f"the signature's deadline {self.deadline} has passed; sign again with a later one"
            )

    @property
    def key(self) -> str:
        return relay_key(self.signer, self.digest)

    @property
    def record_hash(self) -> bytes:
        """What the signature covers besides nonce and deadline: the record's struct hash, or for a batch the
        keccak256 of its events' struct hashes (EIP-712 encoding of an array of structs)."""
        if self.relay_type.batch:
            return keccak(b"".join(struct_hash(r) for r in self.records))
        return struct_hash(self.records[0])


def relay_key(signer: str, digest: bytes) -> str:
    """Idempotency key of a submission: one per signer and signed message, whatever the signature's bytes."""
    return "0x" + keccak(_KEY_DOMAIN + bytes.fromhex(signer[2:]) + digest).hex()


# ---------------------------------------------------------------------- citizens' records

#: primary type -> (record class, contract function) of the records a receipt key signs
CITIZEN_TYPES: dict[str, tuple[type[Rating] | type[Dispute], str]] = {
    "Rating": (Rating, "rateCase"),
    "Dispute": (Dispute, "disputeCase"),
}
#: the longest comment or dispute reason kept off chain, in characters
MAX_TEXT_LENGTH = 2000


def salted_text_hash(salt: bytes, text: str) -> bytes:
    """``keccak256(salt ‖ utf8(text))``: the on-chain hash of a comment or a dispute's reason. The salt is 32 random
    bytes the citizen's page chose, so a short text ("ok") cannot be found by hashing guesses."""
    return keccak(bytes(salt) + text.encode("utf-8"))


@dataclass(frozen=True)
class OffChainText:
    """A comment or dispute reason kept off chain: its text, the salt of its hash, and whether it may be published."""

    text: str
    salt: bytes
    publish: bool

    @property
    def hash(self) -> bytes:
        return salted_text_hash(self.salt, self.text)

    def __repr__(self) -> str:  # never the text itself (reprs end up in logs and tracebacks)
        return f"OffChainText(<{len(self.text)} characters>, publish={self.publish})"


@dataclass(frozen=True)
class SignedCitizenRecord:
    """A rating or dispute whose signature has been checked (not yet against the case's receipt or the chain)."""

    record: Rating | Dispute
    #: EIP-712 digest the receipt key signed
    digest: bytes
    #: 65 bytes r ‖ s ‖ v with v 27 or 28
    signature: bytes
    #: the address the signature recovers to: the receipt's, if it is genuine
    signer: str

    @property
    def primary_type(self) -> str:
        return self.record.TYPE_NAME

    @property
    def key(self) -> str:
        return relay_key(self.signer, self.digest)

    @property
    def record_hash(self) -> bytes:
        return self.record.struct_hash()

    @property
    def text_hash(self) -> bytes:
        return self.record.comment_hash if isinstance(self.record, Rating) else self.record.reason_hash


def check_citizen_signature(
    record: Rating | Dispute, signature: str | bytes, domain: Mapping[str, Any]
) -> SignedCitizenRecord:
    """Check a receipt holder's signature over `record` under this deployment's `domain` (65 bytes, low s,
    recoverable) and recover the key that made it. Whether that key is the case's receipt is the caller's to check,
    against the index and the chain. Raises RelayRefused ``bad_signature``."""
    raw = _signature_bytes(signature)
    signable = encode_typed_data(full_message=citizen_typed_data(dict(domain), record))
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    try:
        recovered = Account.recover_message(signable, signature=raw)
    except Exception as exc:  # eth-keys raises BadSignature, ValueError… for bytes that are no signature
        raise RelayRefused("bad_signature", "the signature does not recover to any key") from exc
    return SignedCitizenRecord(record, digest, raw, recovered)


# ---------------------------------------------------------------------- checking a signed record


def check_signed_record(
    typed_data: Mapping[str, Any],
    signature: str | bytes,
    domain: Mapping[str, Any],
    *,
    signer: str | None = None,
) -> SignedRecord:
    """Check typed data as ``eth_signTypedData_v4`` takes it and its signature, against this deployment's `domain`
    (:meth:`Ledger.domain`). Checks, in order: primary type, types (exactly the canonical ones; ``EIP712Domain`` may
    be left out), domain (name and version, chain id, contract), the record (the ``ledger.records`` models), the
    signature (65 bytes, low s, recoverable; equal to `signer` when given). Raises RelayRefused.

    The deadline is checked separately (:meth:`SignedRecord.check_deadline`), so that a caller can first recognise a
    message it already accepted (its key) and answer with that submission even after the deadline passed."""
    primary = typed_data.get("primaryType")
    spec = RELAY_TYPES.get(primary) if isinstance(primary, str) else None
    if spec is None:
        raise RelayRefused(
            "unsupported_primary_type",
            f"primaryType {primary!r} is not relayed here; use one of {', '.join(RELAY_TYPES)}",
        )
    _check_types(spec, typed_data.get("types"))
    _check_domain(typed_data.get("domain"), domain)
    agency_id, records, nonce, deadline = _parse_message(spec, typed_data.get("message"))
    canonical = relay_typed_data(
        # a batch's message holds case events only (its spec's record type)
        dict(domain), cast(list[CaseEvent], list(records)) if spec.batch else records[0], agency_id, nonce, deadline
    )
    signable = encode_typed_data(full_message=canonical)
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    raw = _signature_bytes(signature)
    try:
        recovered = Account.recover_message(signable, signature=raw)
    except Exception as exc:  # eth-keys raises BadSignature, ValueError… for bytes that are no signature
        raise RelayRefused("bad_signature", "the signature does not recover to any key") from exc
    if signer is not None:
        if not is_hex_address(signer):
            raise RelayRefused("invalid_body", "signer is not an address", field="signer")
        if to_checksum_address(signer) != recovered:
            raise RelayRefused(
                "signer_mismatch",
                f"the signature over this typed data is not by {to_checksum_address(signer)} (it recovers to "
                f"{recovered}): the message, domain or key differ from what was signed",
                recovered=recovered,
            )
    return SignedRecord(spec, agency_id, records, nonce, deadline, digest, raw, recovered)


def _check_types(spec: RelayType, types: Any) -> None:
    expected = relay_types(spec.primary_type)
    if not isinstance(types, dict):
        raise RelayRefused("wrong_types", "types must be an object of EIP-712 struct definitions")
    given = dict(types)
    if "EIP712Domain" not in given:  # ethers-style typed data leaves the domain's type implied
        given["EIP712Domain"] = expected["EIP712Domain"]
    for name in sorted(set(given) | set(expected)):
        if name not in expected:
            raise RelayRefused("wrong_types", f"types has {name!r}, which {spec.primary_type} does not use")
        if name not in given:
            raise RelayRefused("wrong_types", f"types lacks {name!r}")
        if given[name] != expected[name]:
            want = ",".join(f"{f['type']} {f['name']}" for f in expected[name])
            raise RelayRefused(
                "wrong_types", f"types.{name} must be exactly ({want}), in that order and with nothing else",
                field=f"types.{name}",
            )


def _check_domain(given: Any, expected: Mapping[str, Any]) -> None:
    if not isinstance(given, dict) or set(given) != {"name", "version", "chainId", "verifyingContract"}:
        raise RelayRefused("wrong_domain", "domain must have exactly name, version, chainId and verifyingContract")
    if given["name"] != DOMAIN_NAME or given["version"] != DOMAIN_VERSION:
        raise RelayRefused(
            "wrong_domain", f"domain name and version must be {DOMAIN_NAME!r} and {DOMAIN_VERSION!r}"
        )
    chain_id = _uint(given["chainId"])
    if chain_id is None or chain_id != int(expected["chainId"]):
        raise RelayRefused(
            "wrong_chain",
            f"domain.chainId {given['chainId']!r} is not this ledger's chain ({expected['chainId']}): a signature "
            "for another chain is never relayed here",
            expected_chain_id=int(expected["chainId"]),
        )
    contract = given["verifyingContract"]
    if not isinstance(contract, str) or not is_hex_address(contract) or (
        to_checksum_address(contract) != to_checksum_address(expected["verifyingContract"])
    ):
        raise RelayRefused(
            "wrong_contract",
            f"domain.verifyingContract {contract!r} is not this ledger ({expected['verifyingContract']})",
            expected_contract=expected["verifyingContract"],
        )


def _uint(value: Any) -> int | None:
    """A uint256 as JSON typed data carries it: a number, or a decimal or 0x-hex string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and value:
        try:
            result = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
        except ValueError:
            return None
    else:
        return None
    return result if 0 <= result <= UINT256_MAX else None


def _parse_message(spec: RelayType, message: Any) -> tuple[bytes, tuple[Record, ...], int, int]:
    if not isinstance(message, dict):
        raise RelayRefused("invalid_record", "message must be an object", field="message")
    expected_keys = {"agencyId", spec.field, "nonce", "deadline"}
    if set(message) != expected_keys:
        extra, missing = sorted(set(message) - expected_keys), sorted(expected_keys - set(message))
        what = "; ".join(p for p in (extra and f"unexpected {', '.join(extra)}",
                                     missing and f"missing {', '.join(missing)}") if p)
        raise RelayRefused(
            "invalid_record", f"message must have exactly agencyId, {spec.field}, nonce and deadline: {what}",
            field="message",
        )
    agency_id = _bytes32(message["agencyId"])
    if agency_id is None:
        raise RelayRefused(
            "invalid_record", "message.agencyId must be the signing key's agency id as a bytes32 (0x + 64 hex digits)",
            field="agencyId",
        )
    nonce, deadline = _uint(message["nonce"]), _uint(message["deadline"])
    if nonce is None:
        raise RelayRefused("invalid_record", "message.nonce must be a uint256", field="nonce")
    if deadline is None:
        raise RelayRefused("invalid_record", "message.deadline must be a uint256", field="deadline")
    value = message[spec.field]
    if spec.batch:
        if not isinstance(value, list) or not value:
            raise RelayRefused("invalid_record", f"{spec.field} must be a non-empty list", field=spec.field)
        if len(value) > MAX_RELAY_BATCH:
            raise RelayRefused(
                "invalid_record", f"{spec.field} holds {len(value)} events; at most {MAX_RELAY_BATCH} per signature",
                field=spec.field,
            )
        records = tuple(_record(spec.record_type, item, f"{spec.field}[{i}]") for i, item in enumerate(value))
    else:
        records = (_record(spec.record_type, value, spec.field),)
    horizon = time.time() + MAX_CLOCK_SKEW
    for index, record in enumerate(records):
        if record.occurred_at > horizon:  # type: ignore[attr-defined]  # every relayed record has it
            where = f"{spec.field}[{index}]" if spec.batch else spec.field
            raise RelayRefused("invalid_record", f"{where}.occurredAt is in the future", field=f"{where}.occurredAt")
    return agency_id, records, nonce, deadline


def _bytes32(value: Any) -> bytes | None:
    """A bytes32 message value as eth_signTypedData_v4 writes it (0x + 64 hex digits), or None."""
    if not isinstance(value, str) or len(value) != 66 or not value.lower().startswith("0x"):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def _record(cls: type[Record], value: Any, where: str) -> Record:
    """Build a record from its EIP-712 message value (Solidity field names), naming the field at fault."""
    if not isinstance(value, dict):
        raise RelayRefused("invalid_record", f"{where} must be an object", field=where)
    names = {sol: attr for attr, sol, _ in cls.FIELDS}
    unknown, missing = sorted(set(value) - set(names)), sorted(set(names) - set(value))
    if unknown or missing:
        problem = f"unknown field {unknown[0]}" if unknown else f"missing field {missing[0]}"
        field = f"{where}.{unknown[0] if unknown else missing[0]}"
        raise RelayRefused("invalid_record", f"{where}: {problem}", field=field)
    try:
        return cls.model_validate({names[k]: v for k, v in value.items()})
    except ValidationError as exc:
        error = exc.errors()[0]
        attr = str(error["loc"][0]) if error.get("loc") else ""
        solidity = next((sol for a, sol, _ in cls.FIELDS if a == attr), "")
        field = f"{where}.{solidity}" if solidity else where
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        raise RelayRefused("invalid_record", f"{field}: {message}", field=field) from None
    except LedgerError as exc:
        raise RelayRefused("invalid_record", f"{where}: {exc}", field=where) from None


def _signature_bytes(signature: str | bytes) -> bytes:
    """65 bytes r ‖ s ‖ v, v normalised to 27/28 (some wallets give 0/1); a high-s twin is refused, as the
    contract refuses it (OpenZeppelin ECDSA, EIP-2)."""
    if isinstance(signature, str):
        text = signature[2:] if signature.startswith(("0x", "0X")) else None
        try:
            raw = bytes.fromhex(text) if text is not None else b""
        except ValueError:
            raw = b""
        if not raw:
            raise RelayRefused("bad_signature", "signature must be 0x-hex")
    else:
        raw = bytes(signature)
    if len(raw) != 65:
        raise RelayRefused("bad_signature", f"signature must be 65 bytes (r, s, v), got {len(raw)}")
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if v in (0, 1):
        v += 27
    if v not in (27, 28) or not 0 < r < SECP256K1_N or s == 0:
        raise RelayRefused("bad_signature", "the signature is malformed (r, s or v out of range)")
    if s > SECP256K1_N // 2:
        raise RelayRefused(
            "bad_signature", "the signature has a high s value (the malleable twin of a valid one); the ledger "
            "accepts only low-s signatures (EIP-2)"
        )
    return raw[:64] + bytes([v])


# ---------------------------------------------------------------------- the store


@dataclass(frozen=True)
class RelayStatus:
    key: str
    state: str  # pending | sent | recorded | failed
    signer: str
    agency_id: bytes
    primary_type: str
    nonce: int
    deadline: int
    record_hash: str
    entries: int
    created_at: float
    tx_hash: str | None = None
    #: seq of each recorded entry, in order
    seqs: tuple[int, ...] = ()
    #: for failed submissions: the decoded custom error's name (or a short reason) and a message
    error_name: str | None = None
    error: str | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS relays (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,   -- submission order
    key          TEXT NOT NULL UNIQUE,                -- relay_key(signer, digest)
    signer       TEXT NOT NULL,
    agency_id    TEXT NOT NULL,                       -- 0x-hex bytes32, as authorised when accepted
    primary_type TEXT NOT NULL,
    nonce        TEXT NOT NULL,                       -- uint256, zero-padded decimal so that text order is number order
    deadline     TEXT NOT NULL,
    signature    BLOB NOT NULL,
    record_type  TEXT NOT NULL,
    records_json TEXT NOT NULL,                       -- JSON list of the records (ledger.writer.outbox.record_json)
    record_hash  TEXT NOT NULL,
    entries      INTEGER NOT NULL,
    queued       INTEGER NOT NULL DEFAULT 0,          -- its rows are in the outbox
    settled      TEXT,                                -- NULL until recorded or failed
    created_at   REAL NOT NULL,
    accepted_block INTEGER                            -- the chain's latest block when it was accepted
);
CREATE INDEX IF NOT EXISTS relays_by_signer ON relays (signer, settled, nonce);
CREATE INDEX IF NOT EXISTS relays_unqueued ON relays (queued, id);
-- Citizens' submissions (ratings and disputes; their envelope is in relays, signer = the receipt address, nonce and
-- deadline 0): the case they are about, and the off-chain text of the comment or reason, if any. Never in the index.
CREATE TABLE IF NOT EXISTS citizen_records (
    key          TEXT PRIMARY KEY REFERENCES relays (key),
    primary_type TEXT NOT NULL,                       -- Rating | Dispute
    agency_id    TEXT NOT NULL,                       -- 0x-hex bytes32
    case_id      TEXT NOT NULL,                       -- 0x-hex bytes32
    closure      INTEGER,                             -- disputes: the closure disputed
    text_hash    TEXT NOT NULL,                       -- commentHash or reasonHash, 0x-hex
    salt         BLOB,                                -- the text's salt and the text, when the citizen wrote one
    text         TEXT,
    publish      INTEGER NOT NULL DEFAULT 0           -- whether the citizen agreed to its publication
);
CREATE INDEX IF NOT EXISTS citizen_records_by_case ON citizen_records (agency_id, case_id, primary_type);
"""

#: ratings and disputes of one agency's cases that may wait in the citizens' lane at a time (see
#: ``RelayStore._refuse_full_queue``): a real citizen waits behind at most this many per agency
CITIZEN_QUEUE_PER_AGENCY = 20
#: what a citizen refused ``citizen_queue_full`` is told to wait (a few blocks drain a queue that size)
CITIZEN_QUEUE_RETRY_SECONDS = 60

_COLUMNS = (
    "key, signer, agency_id, primary_type, nonce, deadline, signature, record_type, records_json, record_hash, "
    "entries, queued, settled, created_at"
)
#: the same columns of ``relays`` aliased ``r``, for queries that join it
_RELAY_COLUMNS = ", ".join(f"r.{c.strip()}" for c in _COLUMNS.split(","))


@dataclass(frozen=True)
class _Envelope:
    key: str
    signer: str
    agency_id: bytes
    primary_type: str
    nonce: int
    deadline: int
    signature: bytes
    record_type: str
    records_json: str
    record_hash: str
    entries: int
    queued: bool
    settled: str | None
    created_at: float

    def records(self) -> list[Record]:
        return [record_from_json(self.record_type, json.dumps(r)) for r in json.loads(self.records_json)]

    def row_keys(self) -> list[str]:
        return [row_key(self.key, i) for i in range(self.entries)]


def _envelope(row: Sequence[Any]) -> _Envelope:
    return _Envelope(row[0], row[1], bytes.fromhex(row[2][2:]), row[3], int(row[4]), int(row[5]), bytes(row[6]),
                     row[7], row[8], row[9], row[10], bool(row[11]), row[12], row[13])


def row_key(key: str, index: int) -> str:
    """Outbox idempotency key of entry `index` of a submission."""
    return f"{key}/{index}"


def _submission_key(item: OutboxItem) -> str:
    return item.idempotency_key.rsplit("/", 1)[0]


def _nonce_text(value: int) -> str:
    return f"{value:078d}"  # 2**256 has 78 digits


#: the relay's lanes: agencies' signed records, and citizens' ratings and disputes. Each has its own outbox and relay
#: writer, sending from its own key (the key's name in the service's ``ledger.chain.keys.KeyStore``,
#: ``DATA_DIR/keys``), so neither waits for the other.
AGENCY_LANE, CITIZEN_LANE = "agencies", "citizens"
LANES: dict[str, tuple[str, str]] = {
    # lane: (outbox file in the relay directory, relayer key name)
    AGENCY_LANE: ("outbox.sqlite", "relayer"),
    CITIZEN_LANE: ("citizens-outbox.sqlite", "relayer-citizens"),
}


def lane_of(primary_type: str) -> str:
    return CITIZEN_LANE if primary_type in CITIZEN_TYPES else AGENCY_LANE


class RelayStore:
    """Accepted submissions and the outbox their entries go through. Safe to share between threads, and between
    processes on one machine (SQLite files plus a lock file)."""

    def __init__(
        self,
        directory: Path | str,
        ledger: Ledger,
        *,
        synchronous: str = "FULL",
        budgets: RelayBudgets | None = None,
        citizen_queue_per_agency: int = CITIZEN_QUEUE_PER_AGENCY,
    ) -> None:
        """:param budgets: what each agency key may make the relayer pay for (default :class:`RelayBudgets`)
        :param citizen_queue_per_agency: ratings and disputes of one agency's cases that may wait in the citizens'
            lane at a time (:data:`CITIZEN_QUEUE_PER_AGENCY`)"""
        if citizen_queue_per_agency < 1:
            raise ValueError("citizen_queue_per_agency must be >= 1")
        self.citizen_queue_per_agency = citizen_queue_per_agency
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ledger = ledger
        self.budgets = BudgetBook(budgets or RelayBudgets())
        #: the agencies' lane (and citizens' records queued before the lanes were split)
        self.outbox = Outbox(self.directory / LANES[AGENCY_LANE][0], synchronous=synchronous)
        #: the citizens' lane
        self.citizen_outbox = Outbox(self.directory / LANES[CITIZEN_LANE][0], synchronous=synchronous)
        #: called (without arguments) after rows were added to the outbox, e.g. to wake a writer
        self.on_queued: list[Callable[[], None]] = []
        self._thread_lock = threading.RLock()
        self._lock_path = self.directory / "submit.lock"
        try:
            self._db = sqlite3.connect(
                str(self.directory / "relays.sqlite"), isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(relays)")}
            if "accepted_block" not in columns:  # a store made before front-run lookups
                self._db.execute("ALTER TABLE relays ADD COLUMN accepted_block INTEGER")
            BudgetBook.create(self._db)
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot open the relay store in {self.directory}: {exc}") from exc
        with self._exclusive():
            self._queue_orphans()

    def close(self) -> None:
        with self._thread_lock:
            self._db.close()
            self.outbox.close()
            self.citizen_outbox.close()

    def lane_outbox(self, lane: str) -> Outbox:
        """The outbox of a lane (:data:`LANES`)."""
        if lane not in LANES:
            raise ValueError(f"no relay lane {lane!r}; one of {', '.join(LANES)}")
        return self.citizen_outbox if lane == CITIZEN_LANE else self.outbox

    def __repr__(self) -> str:
        return f"RelayStore({str(self.directory)!r})"

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise submissions across threads (RLock) and processes (flock on a lock file)."""
        with self._thread_lock:
            handle: IO[str] = open(self._lock_path, "a+")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                yield
            finally:
                handle.close()  # releases the flock

    # -- submitting

    def submit(
        self, signed: SignedRecord, agency_id: bytes, onchain_nonce: Callable[[], int]
    ) -> tuple[RelayStatus, bool]:
        """Store a checked submission, charge it to its signer's budgets and queue its entries; return ``(status,
        created)``. The same signed message again returns the stored submission with ``created`` False. Raises
        :class:`~ledger.relay.budgets.BudgetExceeded` when it would take the signer past a budget (checked first:
        a flood costs no node call), then :class:`StaleNonce` unless the nonce is the signer's next:
        `onchain_nonce()` (read under the lock) plus its submissions not yet settled."""
        key = signed.key
        primary_type = signed.relay_type.primary_type
        gas = estimated_gas(primary_type, len(signed.records))
        with self._exclusive():
            self._queue_orphans()
            existing = self._get(key)
            if existing is not None:
                return self._status(existing), False
            now = time.time()
            with self._thread_lock:
                self.budgets.check(self._db, signed.signer, gas, now)
            head = self._head_block()
            expected = self._next_nonce(signed.signer, onchain_nonce())
            if signed.nonce != expected:
                raise StaleNonce(signed.nonce, expected)
            records = list(signed.records)
            texts = json.dumps([json.loads(record_json(r)) for r in records], separators=(",", ":"))
            with self._transaction() as db:
                db.execute(
                    f"INSERT INTO relays ({_COLUMNS}, accepted_block) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?)",
                    (key, signed.signer, "0x" + agency_id.hex(), primary_type,
                     _nonce_text(signed.nonce), _nonce_text(signed.deadline), signed.signature,
                     type(records[0]).__name__, texts, "0x" + signed.record_hash.hex(), len(records), now, head),
                )
                self.budgets.charge(db, key, signed.signer, gas, now)
            envelope = self._get(key)
            assert envelope is not None
            self._queue(envelope)
        self._notify()
        return self._status(envelope), True

    def submit_citizen(self, signed: SignedCitizenRecord, text: OffChainText | None = None) -> tuple[RelayStatus, bool]:
        """Store a checked rating or dispute (and its off-chain text) and queue it; return ``(status, created)``. The
        same signed message again returns the stored submission with ``created`` False. While another rating of the
        case (another dispute of the same closure) is pending, sent or recorded, raises :class:`RelayRefused`
        ``already_rated`` (``already_disputed``) naming it: the contract would refuse the second anyway."""
        record = signed.record
        if text is not None and text.hash != signed.text_hash:
            raise RelayRefused("text_mismatch", "the text and salt do not hash to the record's hash")
        key = signed.key
        agency_hex, case_hex = "0x" + record.agency_id.hex(), "0x" + record.case_id.hex()
        closure = record.closure if isinstance(record, Dispute) else None
        with self._exclusive():
            self._queue_orphans()
            existing = self._get(key)
            if existing is not None:
                return self._status(existing), False
            self._refuse_in_flight(record, agency_hex, case_hex)
            self._refuse_full_queue(agency_hex)
            head = self._head_block()
            texts = json.dumps([json.loads(record_json(record))], separators=(",", ":"))
            with self._transaction() as db:
                db.execute(
                    f"INSERT INTO relays ({_COLUMNS}, accepted_block) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?)",
                    (key, signed.signer, agency_hex, signed.primary_type, _nonce_text(0), _nonce_text(0),
                     signed.signature, type(record).__name__, texts, "0x" + signed.record_hash.hex(), 1, time.time(),
                     head),
                )
                db.execute(
                    "INSERT INTO citizen_records (key, primary_type, agency_id, case_id, closure, text_hash, salt, "
                    "text, publish) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, signed.primary_type, agency_hex, case_hex, closure, "0x" + signed.text_hash.hex(),
                     None if text is None else bytes(text.salt), None if text is None else text.text,
                     int(text is not None and text.publish)),
                )
            envelope = self._get(key)
            assert envelope is not None
            self._queue(envelope)
        self._notify()
        return self._status(envelope), True

    def retry_citizen(self, key: str) -> RelayStatus:
        """Send a failed rating or dispute again (its record is signed once and for all: the same record always has
        the same signature, so "sign again" is no way to retry it). The caller has checked that the chain would take
        it now. Anything but a failed citizen submission is returned as it is."""
        with self._exclusive():
            envelope = self._get(key)
            if envelope is None or envelope.primary_type not in CITIZEN_TYPES:
                raise RelayRefused("not_found", "no such rating or dispute")
            status = self._status(envelope)
            if status.state != "failed":
                return status
            record = envelope.records()[0]
            assert isinstance(record, (Rating, Dispute))
            self._refuse_in_flight(record, "0x" + record.agency_id.hex(), "0x" + record.case_id.hex(), exclude=key)
            outbox, _ = self._first_row(envelope)
            items = [outbox.get_by_key(row) for row in envelope.row_keys()]
            outbox.requeue([item.id for item in items if item is not None])
            with self._transaction() as db:
                db.execute("UPDATE relays SET settled = NULL WHERE key = ?", (key,))
            envelope = self._get(key)
            assert envelope is not None
        self._notify()
        return self._status(envelope)

    def _refuse_in_flight(self, record: Rating | Dispute, agency_hex: str, case_hex: str,
                          exclude: str | None = None) -> None:
        """RelayRefused while another rating of the case (dispute of the closure) is pending, sent or recorded."""
        closure = record.closure if isinstance(record, Dispute) else None
        for other in self._citizen_envelopes(agency_hex, case_hex, record.TYPE_NAME, closure):
            if other.key == exclude:
                continue
            status = self._status(other)
            if status.state != "failed":
                code = "already_rated" if isinstance(record, Rating) else "already_disputed"
                what = "a rating of this case" if isinstance(record, Rating) else "a dispute of this closure"
                raise RelayRefused(code, f"{what} was submitted already ({status.state})", submission=status.key)

    def _refuse_full_queue(self, agency_hex: str) -> None:
        """RelayRefused ``citizen_queue_full`` while ``citizen_queue_per_agency`` ratings and disputes of this agency's
        cases are waiting (pending or sent). An agency that issues receipts to keys it holds could otherwise queue any
        number of ratings of its own cases ahead of other agencies' citizens; bounded per agency, its flood delays a
        real citizen by at most that many transactions per agency, and only its own citizens are told to retry."""
        rows = self._db.execute(
            f"SELECT {_RELAY_COLUMNS} FROM relays r JOIN citizen_records c ON c.key = r.key "
            "WHERE r.agency_id = ? AND r.settled IS NULL ORDER BY r.id",
            (agency_hex,),
        ).fetchall()
        waiting = sum(1 for row in rows if self._status(_envelope(row)).state not in ("recorded", "failed"))
        if waiting >= self.citizen_queue_per_agency:
            raise RelayRefused(
                "citizen_queue_full",
                f"{waiting} ratings and disputes of this agency's cases are waiting to be recorded; try again in a "
                f"minute (each agency has at most {self.citizen_queue_per_agency} waiting at a time)",
                retry_after=CITIZEN_QUEUE_RETRY_SECONDS,
            )

    def _citizen_envelopes(
        self, agency_hex: str, case_hex: str, primary_type: str, closure: int | None
    ) -> list[_Envelope]:
        query = (
            f"SELECT {_RELAY_COLUMNS} FROM citizen_records c JOIN relays r ON r.key = c.key "
            "WHERE c.agency_id = ? AND c.case_id = ? AND c.primary_type = ?"
        )
        params: list[Any] = [agency_hex, case_hex, primary_type]
        if closure is not None:
            query += " AND c.closure = ?"
            params.append(closure)
        with self._thread_lock:
            rows = self._db.execute(query + " ORDER BY r.id", params).fetchall()
        return [_envelope(row) for row in rows]

    def _queue(self, envelope: _Envelope) -> None:
        """Put the submission's entries into its lane's outbox (idempotent), then mark it queued."""
        records = envelope.records()
        self.lane_outbox(lane_of(envelope.primary_type)).add_many(
            (record, key, None) for record, key in zip(records, envelope.row_keys(), strict=True)
        )
        with self._transaction() as db:
            db.execute("UPDATE relays SET queued = 1 WHERE key = ?", (envelope.key,))

    def _queue_orphans(self) -> None:
        """Envelopes stored by a process that died before queuing them go into the outbox now, in their order."""
        with self._thread_lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM relays WHERE queued = 0 ORDER BY id").fetchall()
        for row in rows:
            self._queue(_envelope(row))
        if rows:
            self._notify()

    def _notify(self) -> None:
        for callback in list(self.on_queued):
            callback()

    def _first_row(self, envelope: _Envelope) -> tuple[Outbox, OutboxItem | None]:
        """The outbox holding the submission's rows, and its first row (None: not queued yet, or pruned). A
        citizen's record queued before the lanes were split is in the agencies' outbox, and is sent from there."""
        outbox = self.lane_outbox(lane_of(envelope.primary_type))
        first = outbox.get_by_key(row_key(envelope.key, 0)) if envelope.queued else None
        if first is None and envelope.queued and outbox is not self.outbox:
            legacy = self.outbox.get_by_key(row_key(envelope.key, 0))
            if legacy is not None:
                return self.outbox, legacy
        return outbox, first

    def _head_block(self) -> int:
        """The chain's latest block number: a submission's entries can only be recorded after it (where the relay
        writer looks for a copy someone else sent first)."""
        try:
            return int(self.ledger.w3.eth.block_number)
        except (OSError, Web3RPCError) as exc:  # requests' errors are OSErrors
            raise NodeUnavailable(f"cannot read the latest block: {type(exc).__name__}") from exc

    def accepted_block(self, key: str) -> int:
        """The latest block when the submission was accepted (0 when it was accepted before this was kept)."""
        with self._thread_lock:
            row = self._db.execute("SELECT accepted_block FROM relays WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    # -- budgets

    def check_budget(self, signed: SignedRecord) -> None:
        """Raise :class:`~ledger.relay.budgets.BudgetExceeded` if the submission would take its signer past a budget
        now: a check that costs no node call, for refusing a flood before anything else is asked of the chain
        (:meth:`submit` checks again, under its lock, before it charges)."""
        gas = estimated_gas(signed.relay_type.primary_type, len(signed.records))
        with self._thread_lock:
            self.budgets.check(self._db, signed.signer, gas, time.time())

    def charge_gas(self, key: str, gas: int) -> None:
        """The relayer paid `gas` for a transaction carrying submission `key` (0: it settled without one of the
        relayer's); it replaces the submission's estimate in its signer's budgets."""
        with self._transaction() as db:
            self.budgets.settle(db, key, gas)

    def budget_usage(self, signer: str, now: float | None = None) -> list[BudgetUse]:
        """Where an agency key stands against each of its budgets."""
        with self._thread_lock:
            return self.budgets.usage(self._db, to_checksum_address(signer), time.time() if now is None else now)

    def _next_nonce(self, signer: str, onchain: int) -> int:
        """The on-chain nonce, moved past every nonce this signer has in submissions not failed (pending, sent, or
        recorded since the chain was read)."""
        taken: set[int] = set()
        with self._thread_lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM relays WHERE signer = ? AND nonce >= ? AND "
                "(settled IS NULL OR settled = 'recorded') AND primary_type NOT IN ('Rating', 'Dispute') "
                "ORDER BY nonce",
                (signer, _nonce_text(onchain)),
            ).fetchall()
        for row in rows:
            envelope = _envelope(row)
            if self._status(envelope).state != "failed":
                taken.add(envelope.nonce)
        expected = onchain
        while expected in taken:
            expected += 1
        return expected

    # -- reading

    def status(self, key: str) -> RelayStatus | None:
        envelope = self._get(key)
        return None if envelope is None else self._status(envelope)

    def envelope(self, key: str) -> _Envelope | None:
        return self._get(key)

    def next_nonce(self, signer: str, onchain: int) -> tuple[int, int]:
        """``(next nonce, submissions of this signer not yet settled)`` given its on-chain nonce."""
        expected = self._next_nonce(signer, onchain)
        return expected, expected - onchain

    def _get(self, key: str) -> _Envelope | None:
        with self._thread_lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM relays WHERE key = ?", (key,)).fetchone()
        return None if row is None else _envelope(row)

    def _status(self, envelope: _Envelope) -> RelayStatus:
        common: dict[str, Any] = dict(
            key=envelope.key, signer=envelope.signer, agency_id=envelope.agency_id,
            primary_type=envelope.primary_type, nonce=envelope.nonce, deadline=envelope.deadline,
            record_hash=envelope.record_hash, entries=envelope.entries, created_at=envelope.created_at,
        )
        outbox, first = self._first_row(envelope)
        if first is None:  # not queued yet, or its outbox rows were pruned after it settled
            return RelayStatus(state=envelope.settled or "pending", **common)
        state = first.state.value
        seqs: tuple[int, ...] = ()
        error_name = error = None
        if first.state is OutboxState.RECORDED:
            rows = outbox.tx_items(first.tx_hash) if first.tx_hash and envelope.entries > 1 else [first]
            seqs = tuple(int(r.seq) for r in rows if r.seq is not None)
        elif first.state is OutboxState.FAILED:
            error = first.error
            if first.revert_data:
                error_name = self.ledger.decode_revert_data(first.revert_data).error_name
            else:
                error_name = "NotRelayed"
        if first.state in (OutboxState.RECORDED, OutboxState.FAILED) and envelope.settled != state:
            with self._transaction() as db:
                db.execute("UPDATE relays SET settled = ? WHERE key = ?", (state, envelope.key))
        return RelayStatus(state=state, tx_hash=first.tx_hash, seqs=seqs, error_name=error_name, error=error,
                           **common)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._thread_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


# ---------------------------------------------------------------------- the writer


class RelayWriter(Writer):
    """Sends one lane's stored submissions (:data:`LANES`) from that lane's relayer key: one ``…BySig``
    (``rateCase`` / ``disputeCase``) transaction per submission, in submission order (so each signer's nonces go out in
    order). One relay writer per lane of a store (the outbox's lock file enforces it), each with its own key: the
    lanes' nonces are independent, so neither lane's backlog delays the other's transactions."""

    def __init__(
        self,
        ledger: Ledger,
        relayer: LocalAccount,
        store: RelayStore,
        *,
        lane: str = AGENCY_LANE,
        poll_interval: float = 0.5,
        **options: Any,
    ) -> None:
        options.setdefault("batch_size", MAX_BATCH)  # only sets how many rows a flush reads at once
        options.setdefault("flush_interval", 0.05)
        super().__init__(ledger, relayer, store.lane_outbox(lane), **options)
        self.lane = lane
        self.store = store
        self.poll_interval = poll_interval
        self._envelopes: dict[str, _Envelope] = {}
        self._poller: threading.Thread | None = None
        self._poll_stop = threading.Event()
        store.on_queued.append(self._wake)

    def __repr__(self) -> str:
        return (f"RelayWriter(ledger={self.ledger.address}, relayer={self.address}, lane={self.lane!r}, "
                f"store={str(self.store.directory)!r})")

    def _wake(self) -> None:
        self.notice_pending()

    def _envelope_of(self, item: OutboxItem) -> _Envelope:
        key = _submission_key(item)
        envelope = self._envelopes.get(key)
        if envelope is None:
            envelope = self.store.envelope(key)
            if envelope is None:
                raise OutboxError(f"outbox entry {item.id} belongs to no stored relay submission")
            if len(self._envelopes) > 10_000:
                self._envelopes.clear()
            self._envelopes[key] = envelope
        return envelope

    # -- the Writer hooks

    def ready_rows(self, chunk: list[OutboxItem], records: dict[int, Record]) -> list[OutboxItem]:
        """The writer's ready prefix, cut back to whole submissions (a flush reads rows in chunks, and an entry
        waiting for a newer block holds back the rest of its submission)."""
        ready = super().ready_rows(chunk, records)
        end = 0
        index = 0
        while index < len(ready):
            envelope = self._envelope_of(ready[index])
            if index + envelope.entries > len(ready):
                break
            index += envelope.entries
            end = index
        return ready[:end]

    def plan_units(self, ready: list[OutboxItem]) -> list[list[OutboxItem]]:
        units: list[list[OutboxItem]] = []
        index = 0
        while index < len(ready):
            size = self._envelope_of(ready[index]).entries
            units.append(ready[index : index + size])
            index += size
        return units

    def encode_unit(self, items: list[OutboxItem], records: Sequence[Record]) -> bytes:
        envelope = self._envelope_of(items[0])
        if len(items) != envelope.entries or any(_submission_key(i) != envelope.key for i in items):
            raise OutboxError(f"outbox entries {items[0].id}… do not match relay submission {envelope.key}")
        if envelope.primary_type in CITIZEN_TYPES:
            call = self.ledger.encode_citizen_call(records[0], envelope.signature)  # type: ignore[arg-type]
            return bytes.fromhex(self.ledger.contract.encode_abi(call.fn_name, list(call.args))[2:])
        spec = RELAY_TYPES[envelope.primary_type]
        record = [r.abi_values() for r in records] if spec.batch else records[0].abi_values()
        args = [record, envelope.signer, envelope.deadline, envelope.signature]
        return bytes.fromhex(self.ledger.contract.encode_abi(spec.function, args)[2:])

    def unit_splittable(self, items: list[OutboxItem]) -> bool:
        return False  # one signature covers every entry of a submission

    def gas_spent(self, items: list[OutboxItem], gas: int) -> None:
        """Charge what the relayer paid to the submission's signer, in place of its estimate (citizens' records are
        charged to no one: the store keeps no charge for them)."""
        if items:
            self.store.charge_gas(_submission_key(items[0]), gas)

    def found_on_chain(self, items: list[OutboxItem], revert: ContractReverted) -> FoundOnChain | None:
        """The transaction that put exactly this submission on chain, if someone sent a copy of it first.

        An agency's submission can only have been copied once its nonce is used, so the signer's on-chain nonce is
        read first (no nonce used, no look-up). Then the ledger's entries of the submission's agency since it was
        accepted (one ``eth_getLogs``, filtered by agency, and by case for a citizen's record) are searched for a
        transaction whose entries — by this signer (receipt key), in log order — have exactly the submission's
        record hashes. For an agency's record that transaction must also carry the signature: the same record
        written directly by the agency key, with the nonce used by another signed record, is not this submission.
        A citizen's record has no nonce: its record hash is all the receipt key signed."""
        envelope = self._envelope_of(items[0])
        citizen = envelope.primary_type in CITIZEN_TYPES
        if not citizen:
            onchain = self._rpc("read a signer's nonce", lambda: self.ledger.nonce(envelope.signer))
            if onchain <= envelope.nonce:
                return None
        records = envelope.records()
        wanted = [struct_hash(r) for r in records]
        agency_topic = "0x" + envelope.agency_id.hex()
        topics: list[Any] = [["0x" + t.hex() for t in self.ledger.entry_event_topics], None, agency_topic]
        if citizen:
            topics.append("0x" + records[0].case_id.hex())  # type: ignore[attr-defined]  # ratings, disputes
        query: Any = {"address": self.ledger.address, "fromBlock": self.store.accepted_block(envelope.key),
                      "toBlock": "latest", "topics": topics}
        logs = self._rpc("look for a copy of a relayed record", lambda: self._w3.eth.get_logs(query))
        by_tx: dict[bytes, list[Any]] = {}
        for log_ in logs:
            entry = self.ledger.decode_log(log_)
            if entry is not None and entry.actor == envelope.signer:
                by_tx.setdefault(entry.transaction_hash, []).append(entry)
        for tx_hash, entries in by_tx.items():
            entries.sort(key=lambda e: e.log_index)
            hashes = [e.record_hash for e in entries]
            for start in range(len(hashes) - len(wanted) + 1):
                if hashes[start : start + len(wanted)] != wanted:
                    continue
                tx: Any = self._rpc(
                    "read the copy's transaction", partial(self._w3.eth.get_transaction, Hash32(tx_hash))
                )
                if not citizen and envelope.signature not in bytes(tx["input"]):
                    break  # the same records, but not sent with this signature
                seqs = tuple(e.seq for e in entries[start : start + len(wanted)])
                return FoundOnChain("0x" + bytes(tx_hash).hex(), to_checksum_address(tx["from"]), int(tx["nonce"]),
                                    seqs)
        return None

    # -- picking up submissions other processes stored

    def start(self) -> None:
        super().start()
        if self._poller is None:
            self._poll_stop.clear()
            self._poller = threading.Thread(target=self._poll, name="ledger-relay-poll", daemon=True)
            self._poller.start()

    def stop(self, *, flush: bool = True, timeout: float | None = None) -> None:
        self._poll_stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
            self._poller = None
        super().stop(flush=flush, timeout=timeout)

    def close(self) -> None:
        if self._wake in self.store.on_queued:
            self.store.on_queued.remove(self._wake)
        super().close()

    def _poll(self) -> None:
        while not self._poll_stop.wait(self.poll_interval):
            try:
                self.notice_pending()
            except Exception:  # noqa: BLE001 - the outbox may be closing; the next poll tries again
                continue


# ---------------------------------------------------------------------- reading citizens' submissions back


@dataclass(frozen=True)
class CitizenSubmission:
    """A rating or dispute accepted for relaying, as far as it got."""

    key: str
    primary_type: str  # Rating | Dispute
    state: str  # pending | sent | recorded | failed
    closure: int | None
    text_hash: str
    tx_hash: str | None
    seq: int | None
    created_at: float


class CitizenFiles:
    """Citizens' submissions and published texts in a relay directory, read without a chain connection or any lock
    (the read API answers with them while the relaying process writes). Each call opens the files afresh and finds
    nothing where there are none yet; nothing is ever written."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @contextmanager
    def _open(self) -> Iterator[sqlite3.Connection | None]:
        relays = self.directory / "relays.sqlite"
        if not relays.exists():
            yield None
            return
        db = sqlite3.connect(str(relays), isolation_level=None, timeout=30)
        try:
            has_table = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'citizen_records'"
            ).fetchone()
            if not has_table:
                yield None
                return
            # the citizens' lane, and the agencies' outbox, where citizens' records queued before the lanes were split
            # still are
            for alias, lane in (("cb", CITIZEN_LANE), ("ob", AGENCY_LANE)):
                outbox = self.directory / LANES[lane][0]
                if outbox.exists():
                    db.execute("ATTACH DATABASE ? AS " + alias, (str(outbox),))
            yield db
        finally:
            db.close()

    def submissions(self, agency_id: bytes, case_id: bytes) -> list[CitizenSubmission]:
        """Every rating and dispute of the case accepted here, oldest first."""
        with self._open() as db:
            if db is None:
                return []
            attached = {row[1] for row in db.execute("PRAGMA database_list")}
            joins = [f"LEFT JOIN {alias}.entries {alias}e ON {alias}e.idempotency_key = r.key || '/0'"
                     for alias in ("cb", "ob") if alias in attached]
            outbox_columns = ", ".join(
                "COALESCE(" + ", ".join([f"{alias}e.{column}" for alias in ("cb", "ob") if alias in attached]
                                        + ["NULL", "NULL"]) + ")"
                for column in ("state", "tx_hash", "seq")
            )
            outbox_join = " ".join(joins)
            rows = db.execute(
                f"SELECT r.key, c.primary_type, r.settled, c.closure, c.text_hash, r.created_at, {outbox_columns} "
                f"FROM citizen_records c JOIN relays r ON r.key = c.key {outbox_join} "
                "WHERE c.agency_id = ? AND c.case_id = ? ORDER BY r.id",
                ("0x" + agency_id.hex(), "0x" + case_id.hex()),
            ).fetchall()
        return [
            CitizenSubmission(key=row[0], primary_type=row[1], state=row[6] or row[2] or "pending", closure=row[3],
                              text_hash=row[4], tx_hash=row[7], seq=row[8], created_at=row[5])
            for row in rows
        ]

    def published_texts(self, agency_id: bytes, case_id: bytes) -> dict[str, str]:
        """The texts of the case's ratings and disputes whose authors agreed to publish them, by their hash
        (0x-hex). Whether a hash was recorded on chain is the caller's to check (against the index)."""
        with self._open() as db:
            if db is None:
                return {}
            rows = db.execute(
                "SELECT text_hash, text FROM citizen_records WHERE agency_id = ? AND case_id = ? AND publish = 1 "
                "AND text IS NOT NULL",
                ("0x" + agency_id.hex(), "0x" + case_id.hex()),
            ).fetchall()
        return {row[0]: row[1] for row in rows}


__all__ = [
    "AGENCY_LANE",
    "CITIZEN_LANE",
    "CITIZEN_TYPES",
    "LANES",
    "CitizenFiles",
    "CitizenSubmission",
    "OffChainText",
    "SignedCitizenRecord",
    "check_citizen_signature",
    "salted_text_hash",
    "MAX_RELAY_BATCH",
    "RELAY_TYPES",
    "RelayRefused",
    "RelayStatus",
    "RelayStore",
    "RelayType",
    "RelayWriter",
    "SignedRecord",
    "StaleNonce",
    "check_signed_record",
    "relay_key",
    "relay_types",
    "row_key",
]
