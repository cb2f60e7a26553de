"""What a relayed submission is and how it is checked: records an agency key signed with EIP-712
(``eth_signTypedData_v4``), and ratings and disputes a receipt key signed, checked before anything is stored.

Pure: no database, no chain connection, nothing sent (a contract wallet's signature is checked through the
:class:`ContractSignerCheck` the caller passes, which asks the chain). It reads the contract's typed-data definitions
(:mod:`ledger.chain.contract`) and the records' models; what passes is kept by the relay's store
(:mod:`ledger.relay.store`) and sent by its writer (:mod:`ledger.relay.writer`).

- :func:`check_signed_record` takes the typed data and signature as a wallet produced them and either returns a
  :class:`SignedRecord` (the records, nonce, deadline, EIP-712 digest and the recovered signer) or raises
  :class:`RelayRefused` with a stable ``code`` saying what is wrong. It checks only what needs no chain; whether the
  signer is authorised and the nonce current is the caller's to ask the chain.
- The idempotency key of a submission (:func:`relay_key`) is ``keccak("civic-ledger relay" ‖ signer ‖ EIP-712
  digest)``: the same signed message submitted twice (a client retrying after a timeout) is the same submission,
  whatever the signature bytes.
- Citizens' records. A receipt holder's :class:`~ledger.records.Rating` or :class:`~ledger.records.Dispute` is signed
  by the receipt key over the record itself (EIP-712, no nonce and no deadline: a case is rated once, and a dispute
  names the closure it disputes) and sent as ``rateCase`` / ``disputeCase`` (:meth:`Ledger.encode_citizen_call`).
  :func:`check_citizen_signature` checks the signature and recovers the key. The comment or reason stays off chain
  (:class:`OffChainText`); its on-chain hash is :func:`salted_text_hash`, ``keccak256(salt ‖ utf8(text))``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak
from eth_utils import is_hex_address, to_checksum_address
from pydantic import ValidationError

from ledger.chain.contract import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    citizen_typed_data,
    relay_typed_data,
    relay_wrapper_fields,
)
from ledger.encoding import ZERO32
from ledger.errors import LedgerError
from ledger.records import (
    BATCH_RELAY,
    CaseEvent,
    Commitment,
    Correction,
    Dispute,
    Filing,
    HolidayCalendar,
    Rating,
    ReceiptClaim,
    Record,
    Retirement,
    salted_text_hash,
)

#: case events in one relayed batch; ``recordCaseEventsBySig`` calldata then stays under the writer's MAX_CALLDATA
#: (asserted in :mod:`ledger.relay.writer`)
MAX_RELAY_BATCH = 500

UINT256_MAX = 2**256 - 1
#: secp256k1 group order; a signature's s above half of it is the malleable twin (EIP-2), refused by OpenZeppelin
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: the longest contract wallet's signature relayed (a multisig wallet's: 65 bytes an owner; 4 KiB is 63 owners)
MAX_CONTRACT_SIGNATURE = 4096
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
            return keccak(b"".join(r.struct_hash() for r in self.records))
        return self.records[0].struct_hash()


class ContractSignerCheck(Protocol):
    """What :func:`check_signed_record` asks the chain about a contract-wallet signer
    (:class:`ledger.chain.erc1271.ContractSigners`)."""

    def is_contract(self, address: str) -> bool: ...

    def accepts(self, wallet: str, digest: bytes, signature: bytes) -> bool: ...


def relay_key(signer: str, digest: bytes) -> str:
    """Idempotency key of a submission: one per signer and signed message, whatever the signature's bytes."""
    return "0x" + keccak(_KEY_DOMAIN + bytes.fromhex(signer[2:]) + digest).hex()


# ---------------------------------------------------------------------- citizens' records

#: what a citizen's key signs as itself: a rating or dispute (by the case's receipt key, in the ledger's domain), a
#: filing (by the filer's new key) or a receipt claim (by the issued key and the new one), in the filings module's
CitizenRecord = Rating | Dispute | Filing | ReceiptClaim
#: primary type -> (record class, contract function) of the records a citizen's key signs
CITIZEN_TYPES: dict[str, tuple[type[CitizenRecord], str]] = {
    "Rating": (Rating, "rateCase"),
    "Dispute": (Dispute, "disputeCase"),
    "Filing": (Filing, "file"),
    "ReceiptClaim": (ReceiptClaim, "claimReceipt"),
}
#: the longest comment or dispute reason kept off chain, in characters
MAX_TEXT_LENGTH = 2000


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
    """A citizen's record whose signature has been checked (not yet against the case's receipt or the chain)."""

    record: CitizenRecord
    #: EIP-712 digest the receipt key signed
    digest: bytes
    #: 65 bytes r ‖ s ‖ v with v 27 or 28; a receipt claim's is the issued key's then the new key's (130 bytes)
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
        """The hash of the record's private text: a comment, a reason, a filing's content (a claim has none)."""
        record = self.record
        if isinstance(record, Rating):
            return record.comment_hash
        if isinstance(record, Dispute):
            return record.reason_hash
        if isinstance(record, Filing):
            return record.content_hash
        return ZERO32


def check_citizen_signature(
    record: CitizenRecord, signature: str | bytes, domain: Mapping[str, Any]
) -> SignedCitizenRecord:
    """Check a citizen key's signature over `record` under `domain` (the ledger's for a rating or dispute, the
    filings module's for a filing or claim; 65 bytes, low s, recoverable) and recover the key that made it. Whether
    that key is the right one (the case's receipt, the filing's own) is the caller's to check, against the chain.
    Raises RelayRefused ``bad_signature``."""
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
    contract_signers: ContractSignerCheck | None = None,
) -> SignedRecord:
    """Check typed data as ``eth_signTypedData_v4`` takes it and its signature, against this deployment's `domain`
    (:meth:`Ledger.domain`). Checks, in order: primary type, types (exactly the canonical ones; ``EIP712Domain`` may
    be left out), domain (name and version, chain id, contract), the record (the ``ledger.records`` models), the
    signature (65 bytes, low s, recoverable; equal to `signer` when given). Raises RelayRefused.

    A contract wallet (ERC-1271) signs too: when `signer` is given, the signature is not that key's ECDSA signature,
    and `contract_signers` says `signer` holds code, the wallet is asked whether it accepts the signature (of any
    length) over the digest, as the ledger will ask it; the submission's signer is then the wallet. That asks the
    node: its failure raises :class:`~ledger.errors.NodeUnavailable`. An address without code keeps the ECDSA path.

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
    if signer is not None and not is_hex_address(signer):
        raise RelayRefused("invalid_body", "signer is not an address", field="signer")
    claimed = to_checksum_address(signer) if signer is not None else None
    try:
        raw = _signature_bytes(signature)
        try:
            recovered = Account.recover_message(signable, signature=raw)
        except Exception as exc:  # eth-keys raises BadSignature, ValueError… for bytes that are no signature
            raise RelayRefused("bad_signature", "the signature does not recover to any key") from exc
    except RelayRefused:
        # Not an ECDSA signature; a contract wallet's may be anything (ERC-1271): ask it, when it is named.
        if claimed is not None and contract_signers is not None and contract_signers.is_contract(claimed):
            return _contract_signed(contract_signers, claimed, digest, signature,
                                    SignedRecord(spec, agency_id, records, nonce, deadline, digest, b"", claimed))
        raise
    if claimed is not None and claimed != recovered:
        if contract_signers is not None and contract_signers.is_contract(claimed):
            return _contract_signed(contract_signers, claimed, digest, signature,
                                    SignedRecord(spec, agency_id, records, nonce, deadline, digest, raw, claimed))
        raise RelayRefused(
            "signer_mismatch",
            f"the signature over this typed data is not by {claimed} (it recovers to "
            f"{recovered}): the message, domain or key differ from what was signed",
            recovered=recovered,
        )
    return SignedRecord(spec, agency_id, records, nonce, deadline, digest, raw, recovered)


def _contract_signed(
    contract_signers: ContractSignerCheck, wallet: str, digest: bytes, signature: str | bytes, signed: SignedRecord
) -> SignedRecord:
    """`signed` with the signature's bytes as given, once the contract wallet `wallet` accepted them over `digest`
    (ERC-1271 ``isValidSignature``, as the ledger's SignatureChecker asks it); else RelayRefused ``bad_signature``."""
    raw = _any_signature_bytes(signature)
    if not contract_signers.accepts(wallet, digest, raw):
        raise RelayRefused(
            "bad_signature",
            f"{wallet} is a contract wallet and does not accept this signature over the typed data "
            "(ERC-1271 isValidSignature): the message, domain or owners' signatures differ from what it approves",
        )
    return replace(signed, signature=raw)


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


def _any_signature_bytes(signature: str | bytes) -> bytes:
    """A contract wallet's signature as given (ERC-1271 leaves its form to the wallet): 0x-hex or bytes, not empty,
    at most MAX_CONTRACT_SIGNATURE bytes."""
    if isinstance(signature, str):
        try:
            raw = bytes.fromhex(signature[2:]) if signature.startswith(("0x", "0X")) else b""
        except ValueError:
            raw = b""
    else:
        raw = bytes(signature)
    if not raw:
        raise RelayRefused("bad_signature", "signature must be 0x-hex")
    if len(raw) > MAX_CONTRACT_SIGNATURE:
        raise RelayRefused("bad_signature", f"a contract wallet's signature is at most {MAX_CONTRACT_SIGNATURE} bytes")
    return raw


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


__all__ = [
    "CITIZEN_TYPES",
    "ContractSignerCheck",
    "MAX_CONTRACT_SIGNATURE",
    "OffChainText",
    "SignedCitizenRecord",
    "check_citizen_signature",
    "salted_text_hash",
    "MAX_RELAY_BATCH",
    "RELAY_TYPES",
    "RelayRefused",
    "RelayType",
    "SignedRecord",
    "StaleNonce",
    "check_signed_record",
    "relay_key",
    "relay_types",
]
