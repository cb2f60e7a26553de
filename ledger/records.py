"""Ledger records: validated models, and their canonical encoding and hashes, byte for byte those of the contract.

Each record's hash is its EIP-712 ``hashStruct``; an entry hash binds that to its sequence number, kind, agency
and actor; the running hash folds entry hashes in order. ``contracts/CivicLedger.sol`` computes the same values
and the tests cross-check both.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ledger.encoding import ZERO32, keccak
from ledger.errors import InvalidRecord

UINT64_MAX = 2**64 - 1
EPOCH = date(1970, 1, 1)


class EntryKind(enum.IntEnum):
    """Kinds of ledger entry (``ICivicLedger.EntryKind``)."""

    AGENCY_REGISTERED = 0
    SIGNER_AUTHORIZED = 1
    SIGNER_REVOKED = 2
    COMMITMENT_PUBLISHED = 3
    COMMITMENT_RETIRED = 4
    CASE_EVENT = 5
    CORRECTION = 6
    HOLIDAY_CALENDAR_PUBLISHED = 7
    RECEIPT_ISSUED = 8
    CASE_RATED = 9
    CASE_DISPUTED = 10
    BATCH_ANCHORED = 11
    AUDITOR_AUTHORIZED = 12
    AUDITOR_REVOKED = 13
    AUDIT_ATTESTED = 14
    FILING_RECORDED = 15
    FILING_ANSWERED = 16
    RECEIPT_CLAIMED = 17


class CaseAction(enum.IntEnum):
    """Case life-cycle actions (``ICivicLedger.CaseAction``)."""

    OPENED = 1
    ACCEPTED = 2
    ON_HOLD = 3
    RESUMED = 4
    ESCALATED = 5
    FULFILLED = 6
    REJECTED = 7
    WITHDRAWN = 8
    REOPENED = 9
    DISPUTE_REJECTED = 10
    #: the agency's rectification of a bad rating (差评整改), answering the case's rating of 1 or 2
    RECTIFIED = 11


class FilingDecision(enum.IntEnum):
    """An agency's answer to a filing (``ICivicFilings.FilingDecision``): accept it, or reject it with a reason."""

    ACCEPTED = 1
    DUPLICATE = 2
    OUT_OF_SCOPE = 3
    SPAM = 4


class FilingStatus(enum.IntEnum):
    """Where a filing stands (``ICivicFilings.FilingStatus``)."""

    NONE = 0
    FILED = 1
    ACCEPTED = 2
    REJECTED = 3


class ReceiptCaseStatus(enum.IntEnum):
    """What the contract tracks of a case opened with a receipt (``ICivicLedger.ReceiptCaseStatus``)."""

    NONE = 0
    OPEN = 1
    FULFILLED = 2
    CLOSED_UNFULFILLED = 3


class AuditVerdict(enum.IntEnum):
    """An audit's verdict (``ICivicLedger.AuditVerdict``): passed exactly when it made no finding."""

    PASSED = 1
    FAILED = 2


class DeadlineUnit(enum.IntEnum):
    """How a commitment's deadline is counted (``ICivicLedger.DeadlineUnit``)."""

    CALENDAR_HOURS = 1
    WORKING_DAYS = 2


class Channel(enum.IntEnum):
    """Intake channel codes recorded when a case opens."""

    COUNTER = 1
    HOTLINE = 2
    WEB = 3
    APP = 4
    MAIL = 5
    PROACTIVE = 6


#: a channel code's name as the API, the command line and the audit show it (codes without one are shown as numbers)
CHANNEL_NAMES = {channel.value: channel.name.lower() for channel in Channel}


def short_code(text: str) -> bytes:
    """An ASCII code (agency id, district, service code) as a right-padded bytes32."""
    raw = text.encode("ascii", errors="strict") if text.isascii() else b""
    if not raw or len(raw) > 32 or any(b < 0x21 or b > 0x7E for b in raw):
        raise InvalidRecord(f"code {text!r} must be 1 to 32 printable ASCII characters without spaces")
    return raw.ljust(32, b"\0")


def text_hash(text: str) -> bytes:
    """keccak256 of UTF-8 text: how free text and documents appear on chain."""
    return keccak(text.encode("utf-8"))


def salted_text_hash(salt: bytes, text: str) -> bytes:
    """``keccak256(salt ‖ utf8(text))``: the on-chain hash of a citizen's private text — a comment, a dispute's
    reason, a filing's content (``ledger.filings.FilingContent``). The salt is 32 random bytes the citizen's side
    chose, so a short text ("ok") cannot be found by hashing guesses."""
    return keccak(bytes(salt) + text.encode("utf-8"))


def day_number(day: date) -> int:
    """Days since 1970-01-01, the calendar unit on chain."""
    return (day - EPOCH).days


def _to_fixed_bytes(value: Any, size: int) -> Any:
    """`size` bytes, given as bytes or a 0x-hex string (what a bytesN field takes)."""
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        try:
            value = bytes.fromhex(text)
        except ValueError as exc:
            raise ValueError(f"not a hex string: {value!r}") from exc
    if isinstance(value, (bytes, bytearray)):
        if len(value) != size:
            raise ValueError(f"must be {size} bytes, got {len(value)}")
        return bytes(value)
    raise ValueError(f"must be {size} bytes or a 0x-hex string, got {type(value).__name__}")


def _to_bytes32(value: Any) -> Any:
    return _to_fixed_bytes(value, 32)


def _to_unix_time(value: Any) -> Any:
    """Unix seconds, or a time with its zone (datetime or ISO 8601 text); a time without a zone is refused,
    since it would silently mean different instants on different machines."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"time {value.isoformat()} has no zone; give an offset such as +08:00 or Z")
        if value.microsecond:
            raise ValueError("times are recorded to the second; drop the fraction")
        return int(value.timestamp())
    if isinstance(value, bool):
        raise ValueError("a time cannot be a boolean")
    return value


def _to_address(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        value = "0x" + bytes(value).hex()
    if not isinstance(value, str) or not is_address(value):
        raise ValueError(f"not an address: {value!r}")
    return to_checksum_address(value)


Bytes32 = Annotated[bytes, BeforeValidator(_to_bytes32)]
Address = Annotated[str, BeforeValidator(_to_address)]
ZERO_ADDRESS = "0x" + "0" * 40
UnixTime = Annotated[int, BeforeValidator(_to_unix_time), Field(gt=0, le=UINT64_MAX)]


class Record(BaseModel):
    """A record an agency (or governance) appends; subclasses declare their EIP-712 type."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, ser_json_bytes="hex")

    TYPE_NAME: ClassVar[str]
    #: (python attribute, solidity name, solidity type), in struct order
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]]
    KIND: ClassVar[EntryKind]
    #: name of the EIP-712 wrapper a relayer submits, and the wrapper's field name for the record
    RELAY: ClassVar[tuple[str, str] | None] = None

    @classmethod
    def encode_type(cls) -> str:
        """EIP-712 §Definition of encodeType."""
        return f"{cls.TYPE_NAME}({','.join(f'{t} {n}' for _, n, t in cls.FIELDS)})"

    @classmethod
    def typehash(cls) -> bytes:
        return keccak(cls.encode_type().encode())

    def abi_values(self) -> tuple[Any, ...]:
        """Field values in struct order, as the contract ABI takes them."""
        return tuple(_abi_value(getattr(self, attr)) for attr, _, _ in self.FIELDS)

    def struct_hash(self) -> bytes:
        """EIP-712 §Definition of hashStruct: keccak256(typeHash ‖ encodeData(record)) (:func:`struct_hash_of`)."""
        return struct_hash_of(type(self), {attr: getattr(self, attr) for attr, _, _ in self.FIELDS})

    def eip712_fields(self) -> list[dict[str, str]]:
        return [{"name": n, "type": t} for _, n, t in self.FIELDS]

    def eip712_message(self) -> dict[str, Any]:
        """The record as an EIP-712 message value (what ``eth_signTypedData_v4`` takes)."""
        out: dict[str, Any] = {}
        for (_, name, _), value in zip(self.FIELDS, self.abi_values(), strict=True):
            out[name] = "0x" + value.hex() if isinstance(value, bytes) else value
        return out


def struct_hash_of(record_type: type[Record], values: Mapping[str, Any]) -> bytes:
    """EIP-712 ``hashStruct`` of a record of `record_type` given as its field values by attribute name: THE definition
    (the records, the writer, the relay, the log decoder and the auditor all hash with it). Strings may be given as
    their raw bytes, which need not be valid UTF-8 (a log may hold any). Every field's ``encodeData`` is one 32-byte
    word: a string or an array is hashed, an address and a ``uintN`` are right-aligned, a ``bytesN`` left-aligned."""
    words = [record_type.typehash()]
    for attr, _, sol_type in record_type.FIELDS:
        value = values[attr]
        if sol_type == "string":
            words.append(keccak(value if isinstance(value, bytes) else value.encode("utf-8")))
        elif sol_type.endswith("[]"):
            words.append(keccak(b"".join(int(v).to_bytes(32, "big") for v in value)))
        elif sol_type == "address":
            words.append(bytes.fromhex(value[2:]).rjust(32, b"\0"))
        elif sol_type == "bytes32":
            words.append(value)
        elif sol_type.startswith("bytes"):  # bytesN, N < 32: left-aligned in its word
            words.append(value.ljust(32, b"\0"))
        else:  # uintN
            words.append(int(value).to_bytes(32, "big"))
    return keccak(b"".join(words))


def _abi_value(value: Any) -> Any:
    if isinstance(value, enum.IntEnum):
        return int(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class AgencyRegistration(Record):
    """Governance registers an agency."""

    TYPE_NAME = "AgencyRegistration"
    FIELDS = (
        ("agency_id", "agencyId", "bytes32"),
        ("jurisdiction", "jurisdiction", "bytes32"),
        ("name_zh", "nameZh", "string"),
        ("name_en", "nameEn", "string"),
    )
    KIND = EntryKind.AGENCY_REGISTERED

    agency_id: Bytes32
    jurisdiction: Bytes32
    name_zh: str
    name_en: str


class SignerChange(Record):
    """Governance authorises or revokes an agency key; the entry kind tells which."""

    TYPE_NAME = "SignerChange"
    FIELDS = (("agency_id", "agencyId", "bytes32"), ("signer", "signer", "address"))
    KIND = EntryKind.SIGNER_AUTHORIZED

    agency_id: Bytes32
    signer: str


class Commitment(Record):
    """A service commitment, or a new version of one."""

    TYPE_NAME = "Commitment"
    FIELDS = (
        ("commitment_id", "commitmentId", "bytes32"),
        ("service_code", "serviceCode", "bytes32"),
        ("name_zh", "nameZh", "string"),
        ("name_en", "nameEn", "string"),
        ("deadline", "deadline", "uint32"),
        ("deadline_unit", "deadlineUnit", "uint8"),
        ("target_bps", "targetBps", "uint16"),
        ("valid_from", "validFrom", "uint64"),
        ("terms_hash", "termsHash", "bytes32"),
        ("occurred_at", "occurredAt", "uint64"),
    )
    KIND = EntryKind.COMMITMENT_PUBLISHED
    RELAY = ("PublishCommitment", "commitment")

    commitment_id: Bytes32
    service_code: Bytes32
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    deadline: int = Field(gt=0, lt=2**32)
    deadline_unit: DeadlineUnit
    target_bps: int = Field(ge=0, le=10_000)
    valid_from: UnixTime
    terms_hash: Bytes32
    occurred_at: UnixTime


class Retirement(Record):
    """Retirement of a commitment."""

    TYPE_NAME = "Retirement"
    FIELDS = (
        ("commitment_id", "commitmentId", "bytes32"),
        ("reason_hash", "reasonHash", "bytes32"),
        ("occurred_at", "occurredAt", "uint64"),
    )
    KIND = EntryKind.COMMITMENT_RETIRED
    RELAY = ("RetireCommitment", "retirement")

    commitment_id: Bytes32
    reason_hash: Bytes32
    occurred_at: UnixTime


class CaseEvent(Record):
    """One event in the life of a case. Intake fields (commitment, district, channel) belong to Opened only."""

    TYPE_NAME = "CaseEvent"
    FIELDS = (
        ("case_id", "caseId", "bytes32"),
        ("action", "action", "uint8"),
        ("occurred_at", "occurredAt", "uint64"),
        ("commitment_id", "commitmentId", "bytes32"),
        ("district", "district", "bytes32"),
        ("channel", "channel", "uint8"),
        ("details_hash", "detailsHash", "bytes32"),
    )
    KIND = EntryKind.CASE_EVENT
    RELAY = ("RecordCaseEvent", "caseEvent")

    case_id: Bytes32
    action: CaseAction
    occurred_at: UnixTime
    commitment_id: Bytes32 = ZERO32
    district: Bytes32 = ZERO32
    channel: int = Field(default=0, ge=0, le=255)
    details_hash: Bytes32 = ZERO32

    def struct_hash(self) -> bytes:
        """:func:`struct_hash_of`, on a direct path: case events are nearly every entry at volume, all their fields are
        static words, and hashing the seven words directly is several times faster (the tests check both agree)."""
        return keccak(b"".join((
            _case_event_typehash(), self.case_id, int(self.action).to_bytes(32, "big"),
            self.occurred_at.to_bytes(32, "big"), self.commitment_id, self.district, self.channel.to_bytes(32, "big"),
            self.details_hash,
        )))

    @model_validator(mode="after")
    def _intake_fields(self) -> CaseEvent:
        if self.case_id == ZERO32:
            raise ValueError("case_id must not be zero")
        intake = (self.commitment_id != ZERO32, self.district != ZERO32, self.channel != 0)
        if self.action is CaseAction.OPENED and not all(intake):
            raise ValueError("an Opened event needs commitment_id, district and channel")
        if self.action is not CaseAction.OPENED and any(intake):
            raise ValueError("commitment_id, district and channel belong to the Opened event only")
        return self


@functools.cache
def _case_event_typehash() -> bytes:
    return CaseEvent.typehash()


#: The top bit of a case id marks a case that can have a receipt (``ICivicLedger.RECEIPT_CASE_FLAG``).
RECEIPT_CASE_FLAG = 0x80


def is_receipt_case(case_id: bytes) -> bool:
    return bool(case_id[0] & RECEIPT_CASE_FLAG)


class Receipt(Record):
    """The public side of a citizen's receipt: the address of the key derived from its secret (``ledger.receipts``)."""

    TYPE_NAME = "Receipt"
    FIELDS = (
        ("case_id", "caseId", "bytes32"),
        ("receipt", "receipt", "address"),
        ("occurred_at", "occurredAt", "uint64"),
    )
    KIND = EntryKind.RECEIPT_ISSUED
    RELAY = ("IssueReceipt", "receipt")

    case_id: Bytes32
    receipt: Address
    occurred_at: UnixTime

    @model_validator(mode="after")
    def _receipt_case(self) -> Receipt:
        if not is_receipt_case(self.case_id):
            raise ValueError(
                "only a case id with its top bit set can have a receipt (ledger.records.RECEIPT_CASE_FLAG)"
            )
        if self.receipt == ZERO_ADDRESS:
            raise ValueError("the receipt address must not be zero")
        return self


class Rating(Record):
    """A receipt holder's rating (1-5) of their closed case, signed with the receipt key, relayed by anyone."""

    TYPE_NAME = "Rating"
    FIELDS = (
        ("agency_id", "agencyId", "bytes32"),
        ("case_id", "caseId", "bytes32"),
        ("score", "score", "uint8"),
        ("comment_hash", "commentHash", "bytes32"),
    )
    KIND = EntryKind.CASE_RATED

    agency_id: Bytes32
    case_id: Bytes32
    score: int = Field(ge=1, le=5)
    comment_hash: Bytes32 = ZERO32


class Dispute(Record):
    """A receipt holder's dispute of the latest fulfilment (``closure``, counted from 1) of their case."""

    TYPE_NAME = "Dispute"
    FIELDS = (
        ("agency_id", "agencyId", "bytes32"),
        ("case_id", "caseId", "bytes32"),
        ("closure", "closure", "uint16"),
        ("reason_hash", "reasonHash", "bytes32"),
    )
    KIND = EntryKind.CASE_DISPUTED

    agency_id: Bytes32
    case_id: Bytes32
    closure: int = Field(ge=1, lt=2**16)
    reason_hash: Bytes32 = ZERO32


class BatchAnchor(Record):
    """An anchored Merkle batch of case events (``ledger.batches``): its hash is what the running hash folds."""

    TYPE_NAME = "Batch"
    FIELDS = (
        ("root", "root", "bytes32"),
        ("count", "count", "uint64"),
        ("file_hash", "fileHash", "bytes32"),
    )
    KIND = EntryKind.BATCH_ANCHORED

    root: Bytes32
    count: int = Field(gt=0, le=UINT64_MAX)
    file_hash: Bytes32


#: Receipt-signed records: the actor of their entry is the receipt key, and the contract checks the signature.
CITIZEN_RECORDS: tuple[type[Record], ...] = (Rating, Dispute)


class Correction(Record):
    """Voids an earlier entry of the same agency, with a reason; the original stays visible."""

    TYPE_NAME = "Correction"
    FIELDS = (
        ("target_seq", "targetSeq", "uint64"),
        ("reason_hash", "reasonHash", "bytes32"),
        ("occurred_at", "occurredAt", "uint64"),
    )
    KIND = EntryKind.CORRECTION
    RELAY = ("RecordCorrection", "correction")

    target_seq: int = Field(ge=0, le=UINT64_MAX)
    reason_hash: Bytes32
    occurred_at: UnixTime


class HolidayCalendar(Record):
    """Non-working weekdays and working weekend days of a jurisdiction for one year."""

    TYPE_NAME = "HolidayCalendar"
    FIELDS = (
        ("year", "year", "uint16"),
        ("holidays", "holidays", "uint32[]"),
        ("workdays", "workdays", "uint32[]"),
        ("occurred_at", "occurredAt", "uint64"),
    )
    KIND = EntryKind.HOLIDAY_CALENDAR_PUBLISHED
    RELAY = ("PublishHolidayCalendar", "calendar")

    year: int = Field(ge=1970, le=9999)
    holidays: tuple[int, ...] = ()
    workdays: tuple[int, ...] = ()
    occurred_at: UnixTime

    @classmethod
    def from_dates(
        cls, year: int, holidays: Iterable[date], workdays: Iterable[date], occurred_at: int
    ) -> HolidayCalendar:
        return cls(
            year=year,
            holidays=tuple(sorted(day_number(d) for d in holidays)),
            workdays=tuple(sorted(day_number(d) for d in workdays)),
            occurred_at=occurred_at,
        )

    @model_validator(mode="after")
    def _days(self) -> HolidayCalendar:
        first, end = day_number(date(self.year, 1, 1)), day_number(date(self.year, 12, 31)) + 1  # 9999 has no next
        for name, days, weekend in (("holidays", self.holidays, False), ("workdays", self.workdays, True)):
            for i, day in enumerate(days):
                if not first <= day < end:
                    raise ValueError(f"{name}: day {day} is not in {self.year}")
                if i and day <= days[i - 1]:
                    raise ValueError(f"{name} must be strictly ascending")
                if ((day + 4) % 7 in (0, 6)) != weekend:
                    kind = "a Saturday or Sunday" if weekend else "a weekday"
                    raise ValueError(f"{name}: {EPOCH.fromordinal(EPOCH.toordinal() + day)} is not {kind}")
        return self


class AuditorChange(Record):
    """Governance registers or revokes an auditor key; the entry kind tells which (the entry's agency is zero)."""

    TYPE_NAME = "AuditorChange"
    FIELDS = (("auditor", "auditor", "address"),)
    KIND = EntryKind.AUDITOR_AUTHORIZED

    auditor: Address


def _to_bytes24(value: Any) -> Any:
    return _to_fixed_bytes(value, 24)  # a running hash


class Attestation(Record):
    """An auditor's signed checkpoint of the whole ledger up to a block (``ICivicLedger.Attestation``): the chain id
    and contract are in the EIP-712 domain it is signed under."""

    TYPE_NAME = "Attestation"
    FIELDS = (
        ("block_number", "blockNumber", "uint64"),
        ("block_hash", "blockHash", "bytes32"),
        ("entry_count", "entryCount", "uint64"),
        ("running_hash", "runningHash", "bytes24"),
        ("report_hash", "reportHash", "bytes32"),
        ("verdict", "verdict", "uint8"),
        ("findings", "findings", "uint32"),
    )
    KIND = EntryKind.AUDIT_ATTESTED

    block_number: int = Field(gt=0, le=UINT64_MAX)
    block_hash: Bytes32
    entry_count: int = Field(ge=0, le=UINT64_MAX)
    running_hash: Annotated[bytes, BeforeValidator(_to_bytes24)]
    report_hash: Bytes32
    verdict: AuditVerdict
    findings: int = Field(ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _verdict(self) -> Attestation:
        if (self.verdict == AuditVerdict.PASSED) != (self.findings == 0):
            raise ValueError("an audit passed exactly when it made no finding (verdict and findings disagree)")
        return self


#: EIP-712 wrappers a relayer submits: the batch of case events has its own, signed once for all.
BATCH_RELAY = "RecordCaseEvents"


class Filing(Record):
    """A citizen's request (``ICivicFilings.Filing``), signed with the receipt key made on their own device and
    relayed by anyone. Only hashes and public codes: the content stays in the service's private store."""

    TYPE_NAME = "Filing"
    FIELDS = (
        ("agency_id", "agencyId", "bytes32"),
        ("commitment_id", "commitmentId", "bytes32"),
        ("district", "district", "bytes32"),
        ("channel", "channel", "uint8"),
        ("content_hash", "contentHash", "bytes32"),
        ("receipt", "receipt", "address"),
    )
    KIND = EntryKind.FILING_RECORDED

    agency_id: Bytes32
    commitment_id: Bytes32
    district: Bytes32
    channel: int = Field(ge=1, le=255)
    content_hash: Bytes32
    receipt: Address

    @model_validator(mode="after")
    def _filled(self) -> Filing:
        if self.district == ZERO32:
            raise ValueError("a filing names its district")
        if self.content_hash == ZERO32:
            raise ValueError("a filing commits to its content: the content hash must not be zero")
        if self.receipt == ZERO_ADDRESS:
            raise ValueError("the receipt address must not be zero")
        return self


class FilingAnswer(Record):
    """An agency's answer to a filing (``ICivicFilings.FilingAnswer``): accepted, its case opens bound to it (id
    :func:`filed_case_id`, the filer's key); or rejected with a reason."""

    TYPE_NAME = "FilingAnswer"
    FIELDS = (
        ("filing_seq", "filingSeq", "uint64"),
        ("decision", "decision", "uint8"),
        ("duplicate_of", "duplicateOf", "bytes32"),
        ("reason_hash", "reasonHash", "bytes32"),
    )
    KIND = EntryKind.FILING_ANSWERED

    filing_seq: int = Field(ge=0, le=UINT64_MAX)
    decision: FilingDecision
    duplicate_of: Bytes32 = ZERO32
    reason_hash: Bytes32 = ZERO32

    @model_validator(mode="after")
    def _reasoned(self) -> FilingAnswer:
        if (self.decision == FilingDecision.DUPLICATE) != (self.duplicate_of != ZERO32):
            raise ValueError("a duplicate names the case it duplicates (duplicate_of), and only a duplicate does")
        if self.decision != FilingDecision.ACCEPTED and self.reason_hash == ZERO32:
            raise ValueError("a rejection gives the hash of its published reason")
        return self


class ReceiptClaim(Record):
    """The holder of an agency-issued receipt moves it to a key of their own (``ICivicFilings.ReceiptClaim``),
    signed with the issued key."""

    TYPE_NAME = "ReceiptClaim"
    FIELDS = (
        ("agency_id", "agencyId", "bytes32"),
        ("case_id", "caseId", "bytes32"),
        ("receipt", "receipt", "address"),
    )
    KIND = EntryKind.RECEIPT_CLAIMED

    agency_id: Bytes32
    case_id: Bytes32
    receipt: Address


class FiledCase(Record):
    """Not an entry: the EIP-712 type whose hash, with the top bit set, is the id of the case a filing opens."""

    TYPE_NAME = "FiledCase"
    FIELDS = (("filing_seq", "filingSeq", "uint64"),)
    KIND = EntryKind.FILING_ANSWERED

    filing_seq: int = Field(ge=0, le=UINT64_MAX)


def filed_case_id(filing_seq: int) -> bytes:
    """The id of the case an accepted filing opens (``ICivicFilings.caseIdOfFiling``): ``hashStruct(FiledCase)``
    with the receipt-case bit set, so neither the agency nor anyone else chooses it."""
    digest = struct_hash_of(FiledCase, {"filing_seq": filing_seq})
    return bytes([digest[0] | RECEIPT_CASE_FLAG]) + digest[1:]

