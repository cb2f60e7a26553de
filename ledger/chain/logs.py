"""Fast decoding of the ledger's raw ``eth_getLogs`` results into entries, with their record and entry hashes.

``ledger.chain.contract.Ledger.decode_log`` goes through web3's ``process_log`` and pydantic models: clear, but tens of
microseconds per log. The indexer needs ten thousand entries a second, so this module decodes the JSON-RPC log
objects directly: a table from ``topic0`` to a decoder, built once from the contract's ABI; fixed-size events by
slicing 32-byte words, events with strings or arrays by ``eth_abi``. The record hash (EIP-712 ``hashStruct``) of a
case event is computed from the very words of the log, and the entry hash from the raw topics, so nothing is
re-encoded. ``tests/ledger/test_indexer.py`` checks every kind against ``Ledger.decode_log``.

Strings (names) are decoded as bytes: the record hash is over the exact bytes on chain, which need not be valid
UTF-8 (the contract does not check); the text kept for display replaces what is not (see :func:`display_text`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address

from ledger.chain.contract import MODULE_NAME, artifact
from ledger.encoding import ZERO32, entry_hash_of_words, keccak, keccak_256
from ledger.records import (
    AgencyRegistration,
    Attestation,
    AuditorChange,
    BatchAnchor,
    CaseAction,
    CaseEvent,
    Commitment,
    Correction,
    Dispute,
    EntryKind,
    Filing,
    FilingAnswer,
    HolidayCalendar,
    Rating,
    Receipt,
    ReceiptClaim,
    Record,
    Retirement,
    SignerChange,
    struct_hash_of,
)

_KIND_WORDS = {kind: int(kind).to_bytes(32, "big") for kind in EntryKind}
_CASE_TYPEHASH = CaseEvent.typehash()
_OPENED_WORD = int(CaseAction.OPENED).to_bytes(32, "big")
_CASE_KIND_WORD = _KIND_WORDS[EntryKind.CASE_EVENT]
_ZERO96 = b"\0" * 96
#: where an entry's log is: block number, block hash, block time (None when the node did not say), transaction hash,
#: log index
_Where = tuple[int, bytes, int | None, bytes, int]


@dataclass(slots=True)
class DecodedEntry:
    """One ledger entry decoded from its log. `record` holds the record's fields under ``ledger.records`` names,
    with codes and hashes as raw bytes and strings as their raw UTF-8 bytes."""

    seq: int
    kind: EntryKind
    agency_id: bytes
    actor: str
    record_hash: bytes
    entry_hash: bytes
    block_number: int
    block_hash: bytes
    #: the log's ``blockTimestamp`` when the node gives one (anvil, recent geth/reth), else None
    block_time: int | None
    tx_hash: bytes
    log_index: int
    record: dict[str, Any] = field(default_factory=dict)
    #: commitment or calendar version, for the kinds that have one
    version: int | None = None
    #: for AgencyRegistered and HolidayCalendarPublished
    jurisdiction: bytes | None = None
    #: SignerAuthorized / SignerRevoked / AuditorAuthorized / AuditorRevoked: the key concerned
    signer: str | None = None

    @property
    def occurred_at(self) -> int | None:
        return self.record.get("occurred_at")


class LogDecoder:
    """Decodes raw JSON-RPC logs of the ledger and its filings module (their events are distinct). Build once;
    :meth:`decode` is the hot path."""

    def __init__(self, abi: list[dict[str, Any]] | None = None) -> None:
        module_abi = artifact(MODULE_NAME)["abi"]
        abi = [*artifact()["abi"], *module_abi] if abi is None else abi
        #: topic0 (hex) of the events the filings module emits: logs a reader must find at the module's address
        self.module_topics = frozenset(
            "0x" + keccak(f"{i['name']}({','.join(_abi_type(x) for x in i['inputs'])})".encode()).hex()
            for i in module_abi if i["type"] == "event"
        )
        self._addresses: dict[bytes, str] = {}
        builders: dict[str, Callable[[list[str], bytes, _Where], DecodedEntry]] = {
            "AgencyRegistered": self._agency_registered,
            "SignerAuthorized": self._signer_change,
            "SignerRevoked": self._signer_change,
            "CommitmentPublished": self._commitment_published,
            "CommitmentRetired": self._commitment_retired,
            "CaseOpened": self._case_opened,
            "CaseUpdated": self._case_updated,
            "CorrectionRecorded": self._correction,
            "HolidayCalendarPublished": self._calendar,
            "ReceiptIssued": self._receipt_issued,
            "CaseRated": self._case_rated,
            "BatchAnchored": self._batch_anchored,
            "CaseDisputed": self._case_disputed,
            "AuditorAuthorized": self._auditor_change,
            "AuditorRevoked": self._auditor_change,
            "AuditAttested": self._audit_attested,
            "FilingRecorded": self._filing_recorded,
            "FilingAnswered": self._filing_answered,
            "ReceiptClaimed": self._receipt_claimed,
        }
        #: topic0 (hex, lower case, as nodes send it) → (event name, builder, non-indexed ABI types)
        self.table: dict[str, tuple[str, Callable[..., DecodedEntry] | None, list[str]]] = {}
        for item in abi:
            if item["type"] != "event":
                continue
            signature = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
            topic0 = "0x" + keccak(signature.encode()).hex()
            # Strings are decoded as bytes (same encoding): the hash is over the exact bytes, valid UTF-8 or not.
            data_types = [_abi_type(i, strings_as_bytes=True) for i in item["inputs"] if not i["indexed"]]
            self.table[topic0] = (item["name"], builders.get(item["name"]), data_types)
        missing = set(builders) - {name for name, _, _ in self.table.values()}
        if missing:
            raise ValueError(f"the ABI lacks the ledger events {sorted(missing)}")
        self._types = {name: types for name, _, types in self.table.values()}

    # -- the hot path

    def decode(self, logs: Iterable[dict[str, Any]]) -> list[DecodedEntry]:
        """Entries of the given raw logs (in the order given); logs that are not entries are skipped."""
        out: list[DecodedEntry] = []
        table = self.table
        # Logs come grouped by block and transaction: convert those fields once per group.
        block_hex = tx_hex = ""
        block_time: int | None
        block_number = block_time = 0
        block_hash = tx_hash = b""
        for log in logs:
            topics = log["topics"]
            found = table.get(topics[0]) if topics else None
            if found is None or found[1] is None:
                continue
            if log["blockHash"] != block_hex:
                block_hex = log["blockHash"]
                block_hash = bytes.fromhex(block_hex[2:])
                block_number = int(log["blockNumber"], 16)
                timestamp = log.get("blockTimestamp")
                block_time = None if timestamp is None else int(timestamp, 16)
            if log["transactionHash"] != tx_hex:
                tx_hex = log["transactionHash"]
                tx_hash = bytes.fromhex(tx_hex[2:])
            where = (block_number, block_hash, block_time, tx_hash, int(log["logIndex"], 16))
            out.append(found[1](topics, bytes.fromhex(log["data"][2:]), where))
        return out

    def _address(self, word: bytes) -> str:
        found = self._addresses.get(word)
        if found is None:
            found = self._addresses[word] = to_checksum_address(word[12:])
        return found

    def _case_opened(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # data: commitmentId, occurredAt, district, channel, detailsHash, signer (one 32-byte word each)
        seq_word = bytes.fromhex(topics[1][2:])
        agency, case_id = bytes.fromhex(topics[2][2:]), bytes.fromhex(topics[3][2:])
        commitment, occurred, district, channel = data[0:32], data[32:64], data[64:96], data[96:128]
        details, signer = data[128:160], data[160:192]
        # CaseEvent(caseId, action, occurredAt, commitmentId, district, channel, detailsHash), word for word
        record_hash = keccak_256(
            _CASE_TYPEHASH + case_id + _OPENED_WORD + occurred + commitment + district + channel + details
        ).digest()
        entry = entry_hash_of_words(seq_word, _CASE_KIND_WORD, agency, signer, record_hash)
        record = {
            "case_id": case_id,
            "action": CaseAction.OPENED,
            "occurred_at": int.from_bytes(occurred, "big"),
            "commitment_id": commitment,
            "district": district,
            "channel": int.from_bytes(channel, "big"),
            "details_hash": details,
        }
        return DecodedEntry(
            int.from_bytes(seq_word, "big"), EntryKind.CASE_EVENT, agency, self._address(signer), record_hash, entry,
            *where, record,
        )

    def _case_updated(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # data: action, occurredAt, detailsHash, signer; the intake fields of a later event are zero
        seq_word = bytes.fromhex(topics[1][2:])
        agency, case_id = bytes.fromhex(topics[2][2:]), bytes.fromhex(topics[3][2:])
        action, occurred, details, signer = data[0:32], data[32:64], data[64:96], data[96:128]
        record_hash = keccak_256(_CASE_TYPEHASH + case_id + action + occurred + _ZERO96 + details).digest()
        entry = entry_hash_of_words(seq_word, _CASE_KIND_WORD, agency, signer, record_hash)
        record = {
            "case_id": case_id,
            "action": int.from_bytes(action, "big"),
            "occurred_at": int.from_bytes(occurred, "big"),
            "commitment_id": ZERO32,
            "district": ZERO32,
            "channel": 0,
            "details_hash": details,
        }
        return DecodedEntry(
            int.from_bytes(seq_word, "big"), EntryKind.CASE_EVENT, agency, self._address(signer), record_hash, entry,
            *where, record,
        )

    # -- the rarer kinds: clarity over speed

    def _entry(
        self, kind: EntryKind, topics: list[str], actor_word: bytes, record_type: type[Record], record: dict[str, Any],
        where: _Where, **extra: Any,
    ) -> DecodedEntry:
        seq_word = bytes.fromhex(topics[1][2:])
        agency = bytes.fromhex(topics[2][2:])
        record_hash = struct_hash_of(record_type, record)
        entry = entry_hash_of_words(seq_word, _KIND_WORDS[kind], agency, actor_word, record_hash)
        return DecodedEntry(
            int.from_bytes(seq_word, "big"), kind, agency, self._address(actor_word), record_hash, entry,
            *where, record, **extra,
        )

    def _agency_registered(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        jurisdiction, name_zh, name_en, actor = abi_decode(self._types["AgencyRegistered"], data)
        agency = bytes.fromhex(topics[2][2:])
        record = {"agency_id": agency, "jurisdiction": jurisdiction, "name_zh": name_zh, "name_en": name_en}
        return self._entry(EntryKind.AGENCY_REGISTERED, topics, _word(actor), AgencyRegistration, record, where,
                           jurisdiction=jurisdiction)

    def _signer_change(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # SignerAuthorized and SignerRevoked share a layout; topic0 tells which
        authorized = self.table[topics[0]][0] == "SignerAuthorized"
        kind = EntryKind.SIGNER_AUTHORIZED if authorized else EntryKind.SIGNER_REVOKED
        signer_word = bytes.fromhex(topics[3][2:])
        signer = self._address(signer_word)
        record = {"agency_id": bytes.fromhex(topics[2][2:]), "signer": signer}
        return self._entry(kind, topics, data[0:32], SignerChange, record, where, signer=signer)

    def _commitment_published(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        version, c, signer = abi_decode(self._types["CommitmentPublished"], data)
        record = dict(zip((attr for attr, _, _ in Commitment.FIELDS), c, strict=True))
        return self._entry(EntryKind.COMMITMENT_PUBLISHED, topics, _word(signer), Commitment, record, where,
                           version=version)

    def _commitment_retired(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        record = {
            "commitment_id": bytes.fromhex(topics[3][2:]),
            "reason_hash": data[0:32],
            "occurred_at": int.from_bytes(data[32:64], "big"),
        }
        return self._entry(EntryKind.COMMITMENT_RETIRED, topics, data[64:96], Retirement, record, where)

    def _correction(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        record = {
            "target_seq": int(topics[3], 16),
            "reason_hash": data[0:32],
            "occurred_at": int.from_bytes(data[32:64], "big"),
        }
        return self._entry(EntryKind.CORRECTION, topics, data[64:96], Correction, record, where)

    def _calendar(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        version, (year, holidays, workdays, occurred_at), signer = abi_decode(
            self._types["HolidayCalendarPublished"], data
        )
        record = {"year": year, "holidays": tuple(holidays), "workdays": tuple(workdays), "occurred_at": occurred_at}
        return self._entry(EntryKind.HOLIDAY_CALENDAR_PUBLISHED, topics, _word(signer), HolidayCalendar, record, where,
                           version=version, jurisdiction=bytes.fromhex(topics[3][2:]))


    def _receipt_issued(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # data: receipt, occurredAt, signer
        record = {
            "case_id": bytes.fromhex(topics[3][2:]),
            "receipt": self._address(data[0:32]),
            "occurred_at": int.from_bytes(data[32:64], "big"),
        }
        return self._entry(EntryKind.RECEIPT_ISSUED, topics, data[64:96], Receipt, record, where)

    def _batch_anchored(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # data: root, count, fileHash, signer. One entry here stands for the batch's `count` entries (seq to
        # seq + count - 1), whose records are in the batch file (ledger.batches); the running hash folds this one.
        record = {"root": data[0:32], "count": int.from_bytes(data[32:64], "big"), "file_hash": data[64:96]}
        return self._entry(EntryKind.BATCH_ANCHORED, topics, data[96:128], BatchAnchor, record, where)

    def _case_rated(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # data: score, commentHash, receipt; the receipt key is the entry's actor
        record = {
            "agency_id": bytes.fromhex(topics[2][2:]),
            "case_id": bytes.fromhex(topics[3][2:]),
            "score": int.from_bytes(data[0:32], "big"),
            "comment_hash": data[32:64],
        }
        return self._entry(EntryKind.CASE_RATED, topics, data[64:96], Rating, record, where)

    def _case_disputed(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # data: closure, reasonHash, receipt; the receipt key is the entry's actor
        record = {
            "agency_id": bytes.fromhex(topics[2][2:]),
            "case_id": bytes.fromhex(topics[3][2:]),
            "closure": int.from_bytes(data[0:32], "big"),
            "reason_hash": data[32:64],
        }
        return self._entry(EntryKind.CASE_DISPUTED, topics, data[64:96], Dispute, record, where)

    def _auditor_change(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # topics: seq, auditor; data: actor (governance). Not an agency's entry: its agency is zero.
        authorized = self.table[topics[0]][0] == "AuditorAuthorized"
        kind = EntryKind.AUDITOR_AUTHORIZED if authorized else EntryKind.AUDITOR_REVOKED
        auditor = self._address(bytes.fromhex(topics[2][2:]))
        return self._unscoped(kind, topics, data[0:32], AuditorChange, {"auditor": auditor}, where, signer=auditor)

    def _audit_attested(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # topics: seq, auditor, blockNumber; data: blockHash, entryCount, runningHash, reportHash, verdict, findings.
        # The auditor key is the entry's actor.
        record = {
            "block_number": int(topics[3], 16),
            "block_hash": data[0:32],
            "entry_count": int.from_bytes(data[32:64], "big"),
            "running_hash": data[64:88],
            "report_hash": data[96:128],
            "verdict": int.from_bytes(data[128:160], "big"),
            "findings": int.from_bytes(data[160:192], "big"),
        }
        return self._unscoped(EntryKind.AUDIT_ATTESTED, topics, bytes.fromhex(topics[2][2:]), Attestation, record,
                              where)

    def _filing_recorded(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # topics: seq, agencyId, receipt; data: commitmentId, district, channel, contentHash, relayer. The receipt
        # key is the entry's actor; the relayer is not signed (it shows who submitted the filing).
        receipt_word = bytes.fromhex(topics[3][2:])
        record = {
            "agency_id": bytes.fromhex(topics[2][2:]),
            "commitment_id": data[0:32],
            "district": data[32:64],
            "channel": int.from_bytes(data[64:96], "big"),
            "content_hash": data[96:128],
            "receipt": self._address(receipt_word),
            "relayer": self._address(data[128:160]),
        }
        return self._entry(EntryKind.FILING_RECORDED, topics, receipt_word, Filing, record, where)

    def _filing_answered(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # topics: seq, agencyId, filingSeq; data: decision, caseId, duplicateOf, reasonHash, signer. The case id
        # (of an acceptance) is derived from the filing, so it is not part of the record.
        record = {
            "filing_seq": int(topics[3], 16),
            "decision": int.from_bytes(data[0:32], "big"),
            "case_id": data[32:64],
            "duplicate_of": data[64:96],
            "reason_hash": data[96:128],
        }
        return self._entry(EntryKind.FILING_ANSWERED, topics, data[128:160], FilingAnswer, record, where)

    def _receipt_claimed(self, topics: list[str], data: bytes, where: _Where) -> DecodedEntry:
        # topics: seq, agencyId, caseId; data: previous (the issued key, which signed: the actor), receipt
        record = {
            "agency_id": bytes.fromhex(topics[2][2:]),
            "case_id": bytes.fromhex(topics[3][2:]),
            "receipt": self._address(data[32:64]),
            "previous": self._address(data[0:32]),
        }
        return self._entry(EntryKind.RECEIPT_CLAIMED, topics, data[0:32], ReceiptClaim, record, where)

    def _unscoped(
        self, kind: EntryKind, topics: list[str], actor_word: bytes, record_type: type[Record], record: dict[str, Any],
        where: _Where, **extra: Any,
    ) -> DecodedEntry:
        """An entry of no agency (the auditors'): its agency id is zero."""
        seq_word = bytes.fromhex(topics[1][2:])
        record_hash = struct_hash_of(record_type, record)
        entry = entry_hash_of_words(seq_word, _KIND_WORDS[kind], ZERO32, actor_word, record_hash)
        return DecodedEntry(
            int.from_bytes(seq_word, "big"), kind, ZERO32, self._address(actor_word), record_hash, entry,
            *where, record, **extra,
        )


def _word(address: str) -> bytes:
    """An address as its 32-byte ABI word."""
    return bytes.fromhex(address[2:]).rjust(32, b"\0")


def _abi_type(item: dict[str, Any], *, strings_as_bytes: bool = False) -> str:
    kind = item["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c, strings_as_bytes=strings_as_bytes) for c in item["components"])
        return f"({inner}){kind[5:]}"
    if strings_as_bytes and kind == "string":
        return "bytes"
    return kind
