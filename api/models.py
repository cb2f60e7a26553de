"""Response models of the public read API (Pydantic v2): what each field means, with examples, in the OpenAPI document.

Conventions: bytes are ``0x`` + lowercase hex; addresses are EIP-55 checksummed; times are unix seconds (UTC);
codes (agency, commitment, district, service, jurisdiction) are the ASCII text written on chain, or ``0x`` + 64 hex
digits for a bytes32 that is not printable ASCII; rates are exact decimal strings with 4 places (``"0.9500"``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# --- shared field types -----------------------------------------------------------------------------------------------

CODE_PATTERN = r"^[!-~]{1,66}$"
HEX32_PATTERN = r"^0x[0-9a-f]{64}$"
HEX24_PATTERN = r"^0x[0-9a-f]{48}$"
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
RATE_PATTERN = r"^[01]\.\d{4}$"

Hex32 = Annotated[str, Field(pattern=HEX32_PATTERN)]
Code = Annotated[str, Field(pattern=CODE_PATTERN)]
Address = Annotated[str, Field(pattern=ADDRESS_PATTERN)]
Rate = Annotated[str, Field(pattern=RATE_PATTERN)]

EntryKindName = Literal[
    "agency_registered",
    "signer_authorized",
    "signer_revoked",
    "commitment_published",
    "commitment_retired",
    "case_event",
    "correction",
    "holiday_calendar_published",
    "receipt_issued",
    "case_rated",
    "case_disputed",
    "batch_anchored",
    "auditor_authorized",
    "auditor_revoked",
    "audit_attested",
]
CaseActionName = Literal[
    "opened",
    "accepted",
    "on_hold",
    "resumed",
    "escalated",
    "fulfilled",
    "rejected",
    "withdrawn",
    "reopened",
    "dispute_rejected",
]
ChannelName = Literal["counter", "hotline", "web", "app", "mail", "proactive"]
CaseStatus = Literal["open", "on_hold", "fulfilled", "rejected", "withdrawn"]
DeadlineUnitName = Literal["calendar_hours", "working_days"]

_TX = "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"
_BLOCK = "0x9e4f1c0a0d0c8a1b4f0b7f2d3a7e6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b"
_ENTRY = "0x3f0e8b6c8b1f3e0f6f3e5d1f0c2a8b9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b"
_RECORD = "0x0b7d4c1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"
_HEAD = "0x8c2e7a1f3b5d9c4e6a8b0d2f4e6a8c0b2d4f6e8a0c2b4d6f"
_CASE = "0x4b1f8e2d6c9a3e7f0b5d8c2a6e9f3b7d1c5a8e2f6b9d3c7a0e4f8b2d6c9a3e7f"
_ADDRESS = "0x448742A18a57Bd81d51bB4b9B4ff47aBA6daaB65"


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


# --- errors -----------------------------------------------------------------------------------------------------------


class ValidationIssue(Model):
    loc: list[str | int] = Field(description="where: location then parameter name", examples=[["query", "limit"]])
    msg: str = Field(description="what is wrong", examples=["Input should be less than or equal to 1000"])
    type: str = Field(description="machine-readable kind of problem", examples=["less_than_equal"])


class ErrorInfo(Model):
    code: str = Field(
        description="machine-readable: not_found, invalid_request, rate_limited, method_not_allowed, internal_error…",
        examples=["not_found"],
    )
    message: str = Field(description="what went wrong, for a person", examples=["no agency 'DEMO-PARKS'"])
    detail: list[ValidationIssue] | None = Field(
        default=None, description="for invalid_request: each problem found in the request"
    )


class ErrorResponse(Model):
    """Every 4xx (and 5xx) answer of the API has this shape."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": {"code": "not_found", "message": "no agency 'DEMO-PARKS'"}}]}
    )
    error: ErrorInfo


# --- proofs -----------------------------------------------------------------------------------------------------------

_ROOT = "0x6c1f0e3d7b2a9c8e5f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
_FILE = "0x1d4e7a0b3c6f9e2d5a8b1c4f7e0d3a6b9c2f5e8d1a4b7c0f3e6d9a2b5c8f1e4d"
_SIBLING = "0x9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"


class BatchProof(Model):
    """Where a batched record is in its Merkle-anchored batch, and its inclusion proof.

    The batch's events are entries ``seq`` to ``seq + count - 1``; this record is entry ``seq + index``, line
    ``index + 2`` of the batch file. The tree is OpenZeppelin's standard Merkle tree over ``(uint256 index, bytes32
    recordHash)`` (``@openzeppelin/merkle-tree``): leaf = ``keccak256(keccak256(abi.encode(index, recordHash)))``,
    each step the keccak256 of the sorted pair. Check it off chain by hashing up from the leaf with ``merkle_proof``
    to ``root``, or on chain with the contract's view ``verifyBatchEntry(seq, index, recordHash, merkle_proof)``;
    ``root`` itself is on chain (``batchRoot(seq)``, and the ``BatchAnchored`` log the proof points to)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 1200,
                    "index": 57,
                    "root": _ROOT,
                    "count": 10000,
                    "file_hash": _FILE,
                    "file_url": "/api/v1/batches/1200/file",
                    "merkle_proof": [_SIBLING, _RECORD],
                    "proof_unavailable": None,
                }
            ]
        }
    )
    seq: int = Field(ge=0, description="the batch: seq of its first entry (GET /api/v1/batches/{seq})", examples=[1200])
    index: int = Field(
        ge=0, description="the record's position in the batch (its seq − the batch's seq)", examples=[57]
    )
    root: Hex32 = Field(description="Merkle root anchored on chain for the batch", examples=[_ROOT])
    count: int = Field(ge=1, description="entries in the batch", examples=[10000])
    file_hash: Hex32 = Field(description="keccak256 of the batch file's bytes, anchored on chain", examples=[_FILE])
    file_url: str = Field(
        description="where this service serves the batch file", examples=["/api/v1/batches/1200/file"]
    )
    merkle_proof: list[Hex32] | None = Field(
        description="sibling hashes from the record's leaf up to the root (null: not available, see "
        "proof_unavailable)",
        examples=[[_SIBLING, _RECORD]],
    )
    proof_unavailable: str | None = Field(
        default=None,
        description="why there is no merkle_proof now (e.g. the batch file is not available from this service yet); "
        "null when there is one",
        examples=[None],
    )


class Proof(Model):
    """Where an entry is on chain: enough to fetch it from any node (``eth_getTransactionReceipt(tx_hash)``, the log
    at ``log_index``, whose first indexed topic after the event signature is ``seq``) and check it yourself.

    A batched record (``batch`` set) has no log of its own: ``tx_hash``, ``block_*`` and ``log_index`` are those of
    its batch's ``BatchAnchored`` log (whose ``seq`` topic is the batch's first seq), ``entry_hash`` is the entry hash
    the record would have as a single entry (shown, not folded: the running hash folds the batch's entry hash once),
    and ``batch`` carries the Merkle proof that ties the record to the anchored root."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 42,
                    "tx_hash": _TX,
                    "block_number": 17,
                    "block_hash": _BLOCK,
                    "block_time": 1793491200,
                    "log_index": 3,
                    "entry_hash": _ENTRY,
                }
            ]
        }
    )
    seq: int = Field(ge=0, description="position of the entry in the ledger, from 0", examples=[42])
    tx_hash: Hex32 = Field(description="hash of the transaction that recorded the entry", examples=[_TX])
    block_number: int = Field(ge=0, description="block holding that transaction", examples=[17])
    block_hash: Hex32 = Field(description="hash of that block (changes if the block is reorganised)", examples=[_BLOCK])
    block_time: int = Field(description="timestamp of that block: when the entry was recorded", examples=[1793491200])
    log_index: int = Field(ge=0, description="index of the entry's event among the block's logs", examples=[3])
    entry_hash: Hex32 = Field(description="entry hash as docs/ledger-format.md defines it", examples=[_ENTRY])
    batch: BatchProof | None = Field(
        default=None, description="for a record written in a Merkle-anchored batch: the batch and the record's "
        "inclusion proof; null for an entry written on its own"
    )


_FINAL = "whether the entry's block is at or below the finalized block (see /api/v1/chain); only final data is final"
_NOT_APPLIED = (
    "null: applied as any entry. Set on a case event written in a Merkle-anchored batch for a case that has a "
    "receipt: it is on the ledger, but never applied to its case, and this says why"
)
_BATCHES_WITHHELD = (
    "the agency's Merkle-anchored batches whose entries are withheld: their file is missing or cannot match the anchor"
)
_ENTRIES_WITHHELD = "entries those withheld batches stand for: on the ledger, counted, but not indexed"


# --- chain ------------------------------------------------------------------------------------------------------------


class NodeStatus(Model):
    configured: bool = Field(description="whether the service is configured with a JSON-RPC node to ask")
    reachable: bool | None = Field(
        description="whether the node answered just now (null when none is configured)", examples=[True]
    )
    chain_id: int | None = Field(default=None, description="chain id the node reports", examples=[31337])
    head_block: int | None = Field(default=None, description="the node's latest block number", examples=[270])
    behind_blocks: int | None = Field(
        default=None, description="head_block minus last_indexed_block: how far the index lags", examples=[4]
    )
    error: str | None = Field(default=None, description="why the node could not be asked, when it could not")


# --- audits -----------------------------------------------------------------------------------------------------------

AuditVerdictName = Literal["passed", "failed"]
_REPORT = "0x1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8"


class Attestation(Model):
    """A registered auditor's signed checkpoint of the whole ledger, as recorded on it (an ``audit_attested`` entry):
    the ledger had ``entry_count`` entries and running hash ``running_hash`` after block ``block_number``, and the
    audit whose report hashes to ``report_hash`` ended with ``verdict`` and ``findings``. The contract checked the
    auditor's signature, that the block hash is that block's and that the count is not beyond the ledger's; it cannot
    check the running hash, so an auditor could sign any: ``matches_ledger`` says whether the checkpoint is the
    ledger's."""

    seq: int = Field(ge=0, description="the attestation's entry", examples=[1205])
    auditor: Address = Field(description="the auditor key that signed it (EIP-712)", examples=[_ADDRESS])
    block_number: int = Field(ge=0, description="the block the audit checked the ledger up to", examples=[260])
    block_hash: Hex32 = Field(description="that block's hash", examples=[_BLOCK])
    entry_count: int = Field(ge=0, description="entries in the ledger after that block, as the auditor counted them",
                             examples=[1200])
    running_hash: str = Field(pattern=HEX24_PATTERN, description="the running hash after those entries (bytes24), as "
                              "the auditor folded it", examples=[_HEAD])
    report_hash: Hex32 = Field(description="keccak256 of the audit's JSON report (served at report_url once "
                               "published)", examples=[_REPORT])
    verdict: AuditVerdictName = Field(description="passed exactly when the audit made no finding", examples=["passed"])
    findings: int = Field(ge=0, description="how many findings the audit made", examples=[0])
    matches_ledger: bool | None = Field(
        description="whether the checkpoint is the ledger's: the running hash the index folded after entry_count "
        "entries is running_hash, and entry_count is the ledger's count at block_number (null: not decided yet)",
        examples=[True],
    )
    report_url: str = Field(description="where the report is served by its hash", examples=[f"/api/v1/audit-reports/"
                                                                                          f"{_REPORT}"])
    report_available: bool = Field(description="whether this service has the report (anyone may publish it: "
                                   "PUT report_url)", examples=[True])
    final: bool = Field(description=_FINAL)
    proof: Proof


class AttestationPage(Model):
    items: list[Attestation] = Field(description="attestations in seq order")
    next: int | None = Field(description="pass as `after` for the next page; null at the end", examples=[1205])


class Auditor(Model):
    """One registration of an auditor key by governance (an ``auditor_authorized`` entry), and its revocation if it
    was revoked. A key revoked and registered again has one item per registration."""

    auditor: Address = Field(description="the auditor key (never an agency key: the contract refuses both roles)",
                             examples=[_ADDRESS])
    registered: bool = Field(description="whether this registration stands (not revoked)", examples=[True])
    registration: Proof = Field(description="the auditor_authorized entry")
    revocation: Proof | None = Field(description="the auditor_revoked entry that ended it, if any")
    attestations: int = Field(ge=0, description="attestations this key has recorded (all its registrations)",
                              examples=[3])
    latest_attestation: Attestation | None = Field(description="the key's most recent attestation, if any")
    final: bool = Field(description="whether the registration's entry is final")


class AuditorPage(Model):
    items: list[Auditor] = Field(description="registrations in seq order")
    next: int | None = Field(description="pass as `after` for the next page; null at the end", examples=[1190])


class AuditorLatest(Model):
    auditor: Address = Field(description="a currently registered auditor key", examples=[_ADDRESS])
    attestation: Attestation | None = Field(description="its most recent attestation (null: none yet)")


class AuditSummary(Model):
    """Who audits the ledger and how far: what the page shows as "independently audited up to block N by K auditors".

    Each currently registered auditor's latest attestation is taken if it matches the ledger; ``audited_to_block``
    (N) is the highest block among those, ``auditors`` (K) how many of them are at that block, ``verdict`` passed
    when all those K passed (else failed, with ``findings`` the most any of them made). ``not_matching`` counts the
    registered auditors whose latest attestation does not match the ledger (a warning: an auditor signed a
    checkpoint the ledger never had, or one the index disagrees with)."""

    registered_auditors: int = Field(ge=0, description="auditor keys registered now", examples=[2])
    audited_to_block: int | None = Field(description="N (null: no registered auditor has a matching attestation)",
                                         examples=[260])
    auditors: int = Field(ge=0, description="K: registered auditors whose latest attestation matches the ledger at "
                          "block N", examples=[1])
    verdict: AuditVerdictName | None = Field(description="passed when the K attestations at N all passed",
                                             examples=["passed"])
    findings: int | None = Field(description="the most findings among the K attestations at N", examples=[0])
    not_matching: int = Field(ge=0, description="registered auditors whose latest attestation does not match the "
                              "ledger", examples=[0])
    latest: list[AuditorLatest] = Field(description="each registered auditor and its latest attestation, in "
                                        "registration order")
    attestations_url: str = Field(default="/api/v1/attestations", description="every attestation, with proofs",
                                  examples=["/api/v1/attestations"])


class ChainFacts(Model):
    """Where the ledger lives and how far the index has read it."""

    chain_id: int | None = Field(description="EIP-155 chain id of the ledger's chain", examples=[31337])
    contract_address: Address | None = Field(description="address of the CivicLedger contract", examples=[_ADDRESS])
    deploy_block: int | None = Field(description="block the contract was deployed in", examples=[8])
    entry_count: int = Field(ge=0, description="entries indexed (the contract's entryCount() at that block)")
    running_hash: str = Field(
        pattern=HEX24_PATTERN,
        description="running hash over those entries (bytes24; the contract's runningHash())",
        examples=[_HEAD],
    )
    last_indexed_block: int = Field(ge=-1, description="highest block whose entries are all indexed (-1: none yet)")
    finalized_block: int = Field(
        ge=-1, description="highest block considered final: entries at or below it will not change"
    )
    halted_reason: str | None = Field(
        description="set when indexing stopped on purpose (a reorganisation deeper than the confirmation depth)"
    )
    batches_withheld: int = Field(
        default=0, ge=0, description="Merkle-anchored batches whose entries are not indexed because their file is "
        "missing or cannot match the anchor (listed at withheld_batches_url); indexing goes on past them",
        examples=[1],
    )
    entries_withheld: int = Field(
        default=0, ge=0, description="entries those batches stand for: counted in entry_count, but not shown",
        examples=[500],
    )
    withheld_batches_url: str = Field(
        default="/api/v1/batches?withheld=true", description="the list of the withheld batches, with why each is",
        examples=["/api/v1/batches?withheld=true"],
    )
    node: NodeStatus = Field(description="what the chain's node says right now (best effort, never an error)")
    audit: AuditSummary = Field(description="independent audits of the ledger: registered auditors and how far their "
                                "attestations vouch for it")


# --- entries ----------------------------------------------------------------------------------------------------------


class Entry(Model):
    """One ledger entry exactly as the chain has it (what later corrections did to it is shown where it matters:
    on cases and commitments)."""

    seq: int = Field(ge=0, description="position in the ledger, from 0", examples=[42])
    kind: EntryKindName = Field(description="what the entry is", examples=["case_event"])
    kind_code: int = Field(ge=0, le=255, description="the kind as the contract numbers it", examples=[5])
    agency_id: Code | None = Field(
        description="agency the entry belongs to; null for an entry of no agency (auditor_authorized, "
        "auditor_revoked, audit_attested: the entry hash binds the zero bytes32 there)",
        examples=["DEMO-ROADS"],
    )
    actor: Address = Field(
        description="key that authorised the entry (the governance account for kinds 0–2, 12 and 13; the auditor key "
        "for 14)",
        examples=[_ADDRESS],
    )
    record_hash: Hex32 = Field(description="EIP-712 hashStruct of the record", examples=[_RECORD])
    entry_hash: Hex32 = Field(description="entry hash (binds seq, kind, agency, actor, record hash)", examples=[_ENTRY])
    running_hash: str = Field(
        pattern=HEX24_PATTERN, description="running hash after this entry (bytes24)", examples=[_HEAD]
    )
    occurred_at: int | None = Field(
        description="time the agency says it happened (null for governance entries)", examples=[1793487600]
    )
    not_applied_reason: str | None = Field(
        default=None, description=_NOT_APPLIED, examples=[None]
    )
    final: bool = Field(description=_FINAL, examples=[True])
    proof: Proof


class EntryPage(Model):
    items: list[Entry] = Field(description="entries in seq order")
    next: int | None = Field(
        description="pass as `after` for the next page; null when this page reached the end of the log as it stands "
        "(to follow new entries, pass the last seq you have)",
        examples=[141],
    )


# --- batches ----------------------------------------------------------------------------------------------------------


class BatchInfo(Model):
    """A Merkle-anchored batch of case events: one ``BatchAnchored`` log on chain (root, count, file hash), the file
    published here, and its events as entries ``seq`` to ``last_seq`` (each with its Merkle proof) — unless the batch
    is ``withheld``: its file is missing or cannot match the anchor, so its entries are counted (the contract counts
    them) but not indexed, and have no proofs. A ``missing`` file may still be published (the entries then appear at
    their seqs); an ``impossible`` batch (the file with the anchored hash does not match the anchor) never can be."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 1200,
                    "last_seq": 11199,
                    "count": 10000,
                    "agency_id": "DEMO-HOTLINE",
                    "signer": _ADDRESS,
                    "root": _ROOT,
                    "file_hash": _FILE,
                    "record_hash": _RECORD,
                    "entry_hash": _ENTRY,
                    "running_hash": _HEAD,
                    "final": True,
                    "file_url": "/api/v1/batches/1200/file",
                    "file_available": True,
                    "withheld": None,
                    "withheld_reason": None,
                    "proof": {
                        "seq": 1200,
                        "tx_hash": _TX,
                        "block_number": 17,
                        "block_hash": _BLOCK,
                        "block_time": 1793491200,
                        "log_index": 0,
                        "entry_hash": _ENTRY,
                        "batch": None,
                    },
                }
            ]
        }
    )
    seq: int = Field(ge=0, description="seq of the batch's first entry (the BatchAnchored log's seq)", examples=[1200])
    last_seq: int = Field(ge=0, description="seq of its last entry: seq + count − 1", examples=[11199])
    count: int = Field(ge=1, description="entries in the batch (lines of its file after the header)", examples=[10000])
    agency_id: Code = Field(description="agency that anchored it", examples=["DEMO-HOTLINE"])
    signer: Address = Field(description="the agency key that sent the anchoring transaction", examples=[_ADDRESS])
    root: Hex32 = Field(description="Merkle root over (index, record hash) of its events (batchRoot(seq))",
                        examples=[_ROOT])
    file_hash: Hex32 = Field(description="keccak256 of the batch file's bytes", examples=[_FILE])
    record_hash: Hex32 = Field(
        description="keccak256(abi.encode(BATCH_TYPEHASH, root, count, fileHash)): the batch's record hash",
        examples=[_RECORD],
    )
    entry_hash: Hex32 = Field(
        description="the batch's entry hash (kind 11, batch_anchored), which the running hash folds once for the "
        "whole batch",
        examples=[_ENTRY],
    )
    running_hash: str = Field(pattern=HEX24_PATTERN, description="running hash after the batch", examples=[_HEAD])
    final: bool = Field(description=_FINAL)
    file_url: str = Field(description="where this service serves the file", examples=["/api/v1/batches/1200/file"])
    file_available: bool = Field(description="whether this service has the file now")
    withheld: Literal["missing", "impossible"] | None = Field(
        default=None,
        description="null: its entries are indexed. missing: no file with the anchored hash is published yet (its "
        "entries appear once it is); impossible: the file with the anchored hash does not match the anchor, so the "
        "batch can never be indexed",
        examples=[None],
    )
    withheld_reason: str | None = Field(
        default=None, description="what is wrong with the file, in the indexer's words (null when not withheld)",
        examples=[None],
    )
    proof: Proof = Field(description="the anchoring: transaction, block and log index of the BatchAnchored log")


class BatchPage(Model):
    items: list[BatchInfo] = Field(description="batches in seq order")
    next: int | None = Field(
        description="pass as `after` for the next page; null when this page reached the last batch", examples=[None]
    )


# --- agencies ---------------------------------------------------------------------------------------------------------


class SignerChange(Model):
    signer: Address = Field(description="the key", examples=[_ADDRESS])
    action: Literal["authorized", "revoked"] = Field(description="what governance did", examples=["authorized"])
    final: bool = Field(description=_FINAL)
    proof: Proof


class Agency(Model):
    agency_id: Code = Field(description="agency code", examples=["DEMO-ROADS"])
    jurisdiction: Code = Field(description="jurisdiction (whose holiday calendar applies)", examples=["DEMO-CITY"])
    name_zh: str = Field(description="name in Chinese", examples=["示范市道路管理所"])
    name_en: str = Field(description="name in English", examples=["Demo City Roads Office"])
    signers: list[Address] = Field(description="keys authorised to write for the agency now, in address order")
    batches_withheld: int = Field(
        default=0, ge=0, description=_BATCHES_WITHHELD + " (GET /api/v1/batches?agency_id=…&withheld=true)",
        examples=[0],
    )
    entries_withheld: int = Field(default=0, ge=0, description=_ENTRIES_WITHHELD, examples=[0])
    final: bool = Field(description=_FINAL + " (of the registration)")
    registration: Proof = Field(description="proof of the registration entry")


class AgencyDetail(Agency):
    key_history: list[SignerChange] = Field(description="every authorisation and revocation, in ledger order")


class AgencyPage(Model):
    items: list[Agency] = Field(description="agencies in agency id order")
    next: str | None = Field(description="pass as `after` for the next page; null on the last", examples=[None])


# --- commitments ------------------------------------------------------------------------------------------------------


class CommitmentVersion(Model):
    """One published version of a commitment: immutable once final."""

    agency_id: Code = Field(examples=["DEMO-ROADS"])
    commitment_id: Code = Field(examples=["STREETLIGHT-48H"])
    version: int = Field(ge=1, description="1 for the first publication, then +1 per amendment", examples=[1])
    service_code: Code = Field(description="service code", examples=["STREETLIGHT-48H"])
    name_zh: str = Field(examples=["路灯故障48小时内修复"])
    name_en: str = Field(examples=["Dark streetlight repaired within 48 hours"])
    deadline: int = Field(ge=0, description="the deadline, in deadline_unit", examples=[48])
    deadline_unit: DeadlineUnitName = Field(
        description="calendar_hours, or working_days (against the jurisdiction's holiday calendar)",
        examples=["calendar_hours"],
    )
    target_bps: int = Field(ge=0, description="target on-time rate in basis points", examples=[9500])
    target_rate: Rate = Field(description="target on-time rate, target_bps / 10000", examples=["0.9500"])
    valid_from: int = Field(description="from when the version applies", examples=[1791676800])
    terms_hash: Hex32 = Field(description="keccak256 of the full terms text (published elsewhere)", examples=[_RECORD])
    occurred_at: int = Field(description="when the agency says it published it", examples=[1791676800])
    final: bool = Field(description=_FINAL)
    proof: Proof


class CommitmentVersionState(CommitmentVersion):
    voided_by: int | None = Field(
        description="seq of the correction that voided this version (a voided version does not count), if any",
        examples=[None],
    )


class Retirement(Model):
    reason_hash: Hex32 = Field(description="keccak256 of the reason text", examples=[_RECORD])
    occurred_at: int = Field(description="when the agency says it retired the commitment", examples=[1793491200])
    final: bool = Field(description=_FINAL)
    proof: Proof


class CommitmentSummary(CommitmentVersionState):
    """The current version of a commitment (its latest version not voided, or the latest if all are)."""

    retired: bool = Field(description="whether the commitment is retired (no new cases)", examples=[False])
    retirement: Retirement | None = Field(description="the retirement entry, if retired")
    version_count: int = Field(ge=1, description="how many versions were published", examples=[1])


class CommitmentPage(Model):
    items: list[CommitmentSummary] = Field(description="commitments in (agency id, commitment id) order")
    next: str | None = Field(description="pass as `after` for the next page; null on the last", examples=[None])


class CommitmentHistory(Model):
    agency_id: Code = Field(examples=["DEMO-ROADS"])
    commitment_id: Code = Field(examples=["STREETLIGHT-48H"])
    current_version: int = Field(ge=1, description="the version in force: the latest not voided", examples=[1])
    retired: bool = Field(examples=[False])
    retirement: Retirement | None = Field(description="the retirement entry, if retired")
    versions: list[CommitmentVersionState] = Field(description="every version, oldest first")


# --- metrics ----------------------------------------------------------------------------------------------------------


class MetricsValues(Model):
    """The published figures (ledger/metrics.py defines each one exactly; an auditor's script recomputes them)."""

    cases_opened: int = Field(ge=0, description="cases whose opening is in the range", examples=[120])
    cases_closed: int = Field(ge=0, description="fulfilled + rejected + withdrawn", examples=[110])
    fulfilled: int = Field(ge=0, description="cases fulfilled in the range", examples=[100])
    rejected: int = Field(ge=0, description="cases rejected in the range", examples=[6])
    withdrawn: int = Field(ge=0, description="cases withdrawn in the range", examples=[4])
    on_time: int = Field(ge=0, description="of those fulfilled with a due time, fulfilled by it", examples=[95])
    on_time_eligible: int = Field(ge=0, description="fulfilled in the range with a due time", examples=[100])
    on_time_rate: Rate | None = Field(
        description="on_time / on_time_eligible (null: none eligible)", examples=["0.9500"]
    )
    target_rate: Rate | None = Field(
        description="the commitment's target (its latest version not voided); null unless one commitment is selected",
        examples=["0.9500"],
    )
    median_fulfil_seconds: int | None = Field(
        description="median time to fulfil, hold time excluded (nearest rank)", examples=[86400]
    )
    p90_fulfil_seconds: int | None = Field(description="90th percentile of the same (nearest rank)", examples=[160000])
    open_cases: int = Field(ge=0, description="cases open at as_of (the range does not apply)", examples=[12])
    overdue_cases: int = Field(
        ge=0, description="of those, past their due time at as_of (holds excluded)", examples=[2]
    )
    events_recorded: int = Field(
        ge=0, description="case events recorded (block time) in the range, voided ones left out"
    )
    latency_median_seconds: int | None = Field(description="median recording latency: block time − claimed time")
    latency_max_seconds: int | None = Field(description="largest recording latency")
    late_recordings: int = Field(ge=0, description="events recorded more than 24 h after their claimed time")
    rejection_rate: Rate | None = Field(description="rejected / (fulfilled + rejected) over cases closed in the range")
    ratings: int = Field(
        ge=0, description="ratings by receipt holders recorded (block time) in the range", examples=[40]
    )
    rating_average: str | None = Field(
        pattern=r"^[1-5]\.\d{4}$",
        description="mean score of those ratings, 1 to 5, as a 4-place decimal (null: no rating)",
        examples=["4.2500"],
    )
    rating_distribution: list[int] = Field(
        min_length=5, max_length=5, description="how many of those ratings scored 1, 2, 3, 4 and 5",
        examples=[[1, 2, 5, 12, 20]],
    )
    rating_response_rate: Rate | None = Field(
        description="of the cases closed in the range that have a receipt, the share rated by as_of",
        examples=["0.3600"],
    )
    disputes: int = Field(ge=0, description="disputes of a fulfilment recorded in the range", examples=[3])
    disputes_unanswered: int = Field(
        ge=0, description="disputes whose 10-day answer deadline passed before as_of without an answer (a snapshot)",
        examples=[1],
    )
    reopened: int = Field(ge=0, description="Reopened case events recorded in the range", examples=[2])


class MetricsFilterEcho(Model):
    """The selection the figures are for, as applied (times as unix seconds): repeat it to reproduce them."""

    agency_id: Code | None = Field(default=None, examples=["DEMO-ROADS"])
    commitment_id: Code | None = Field(default=None, examples=["STREETLIGHT-48H"])
    from_: int | None = Field(default=None, alias="from", description="start of the range (inclusive)")
    to: int | None = Field(default=None, description="end of the range (exclusive)")
    district: Code | None = Field(default=None, examples=["EAST"])
    channel: int | None = Field(default=None, description="intake channel code", examples=[2])
    as_of: int = Field(description="instant of the open and overdue counts", examples=[1793491200])


class MetricsResponse(Model):
    filter: MetricsFilterEcho
    metrics: MetricsValues


class Scorecard(Model):
    agency_id: Code = Field(examples=["DEMO-ROADS"])
    agency_name_zh: str | None = Field(examples=["示范市道路管理所"])
    agency_name_en: str | None = Field(examples=["Demo City Roads Office"])
    commitment_id: Code | None = Field(default=None, description="set when by=commitment", examples=["STREETLIGHT-48H"])
    commitment_name_zh: str | None = Field(default=None, examples=["路灯故障48小时内修复"])
    commitment_name_en: str | None = Field(default=None, examples=["Dark streetlight repaired within 48 hours"])
    target_rate: Rate | None = Field(
        default=None, description="the commitment's target on-time rate (by=commitment)", examples=["0.9500"]
    )
    retired: bool | None = Field(default=None, description="whether the commitment is retired (by=commitment)")
    batches_withheld: int | None = Field(
        default=None, ge=0, description=_BATCHES_WITHHELD + ", whatever the filter (by=agency; null by commitment: "
        "a withheld batch's events are not known)",
        examples=[0],
    )
    entries_withheld: int | None = Field(
        default=None, ge=0, description=_ENTRIES_WITHHELD + " (by=agency; null by commitment)", examples=[0]
    )
    metrics: MetricsValues


class ScorecardsResponse(Model):
    by: Literal["agency", "commitment"] = Field(description="one scorecard per agency or per commitment")
    filter: MetricsFilterEcho
    items: list[Scorecard] = Field(
        description="one per agency (commitment) having a case matching the filter, at any time, in id order"
    )


class TrendBucket(Model):
    start: int = Field(description="start of the bucket (inclusive)", examples=[1793404800])
    end: int = Field(description="end of the bucket (exclusive)", examples=[1793491200])
    on_time_rate: Rate | None = Field(description="metrics.on_time_rate, repeated for charts", examples=["0.9500"])
    metrics: MetricsValues = Field(description="every figure of the bucket (open and overdue at min(end, now))")


class TrendResponse(Model):
    agency_id: Code = Field(examples=["DEMO-ROADS"])
    commitment_id: Code = Field(examples=["STREETLIGHT-48H"])
    bucket: Literal["day", "week"] = Field(description="bucket length: a day or a week")
    from_: int = Field(alias="from", description="start of the first bucket")
    to: int = Field(description="end of the last bucket")
    target_rate: Rate | None = Field(description="the commitment's target on-time rate", examples=["0.9500"])
    buckets: list[TrendBucket]


# --- cases ------------------------------------------------------------------------------------------------------------


class CaseEventItem(Model):
    seq: int = Field(ge=0, examples=[57])
    action: CaseActionName = Field(examples=["opened"])
    action_code: int = Field(ge=0, le=255, examples=[1])
    occurred_at: int = Field(description="time the agency says it happened", examples=[1793487600])
    recorded_at: int = Field(description="block time: when it was recorded on chain", examples=[1793491200])
    recording_latency_seconds: int = Field(
        description="recorded_at − occurred_at (more than a day is a late recording)", examples=[3600]
    )
    details_hash: Hex32 = Field(description="keccak256 of the event's details (kept off chain)", examples=[_RECORD])
    commitment_id: Code | None = Field(description="on opened events: the commitment", examples=["STREETLIGHT-48H"])
    district: Code | None = Field(description="on opened events: the district", examples=["EAST"])
    channel: int | None = Field(description="on opened events: the intake channel code", examples=[2])
    voided_by: int | None = Field(description="seq of the correction that voided this event, if any", examples=[None])
    not_applied_reason: str | None = Field(default=None, description=_NOT_APPLIED, examples=[None])
    final: bool = Field(description=_FINAL)
    proof: Proof


class CaseView(Model):
    """A case: its state folded from its events that are not voided (ledger/cases.py), and every event with proof.

    A case whose opening was voided has no state: then only ``agency_id``, ``case_id`` and ``events`` are set."""

    agency_id: Code = Field(examples=["DEMO-ROADS"])
    case_id: Hex32 = Field(description="opaque case id (from the citizen's receipt)", examples=[_CASE])
    status: CaseStatus | None = Field(examples=["fulfilled"])
    commitment_id: Code | None = Field(examples=["STREETLIGHT-48H"])
    commitment_version: int | None = Field(description="version in force when the case opened", examples=[1])
    commitment_name_zh: str | None = Field(default=None, examples=["路灯故障48小时内修复"])
    commitment_name_en: str | None = Field(default=None, examples=["Dark streetlight repaired within 48 hours"])
    district: Code | None = Field(examples=["EAST"])
    channel: int | None = Field(description="intake channel code", examples=[2])
    channel_name: ChannelName | None = Field(
        description="the channel's name, when it is a known code", examples=["hotline"]
    )
    opened_at: int | None = Field(examples=[1793487600])
    closed_at: int | None = Field(description="when fulfilled, rejected or withdrawn", examples=[1793574000])
    due_at: int | None = Field(
        description="due time, extended by completed holds (null: cannot be computed, e.g. no holiday calendar)",
        examples=[1793660400],
    )
    hold_seconds: int | None = Field(description="total time on hold (does not count against the deadline)")
    on_hold_since: int | None = Field(description="start of the current hold, while on hold")
    fulfil_seconds: int | None = Field(description="opening to fulfilment, hold time excluded (fulfilled only)")
    on_time: bool | None = Field(description="fulfilled by due_at (fulfilled cases with a due time only)")
    overdue: bool | None = Field(description="open and past its due time now, holds excluded (metrics definition)")
    escalated: bool | None = Field(examples=[False])
    invalid_transitions: int | None = Field(description="events that broke the case state machine", examples=[0])
    has_receipt: bool | None = Field(
        description="whether the citizen was given a receipt (only its holder can rate or dispute the case)",
        examples=[True],
    )
    rating: int | None = Field(description="the receipt holder's rating, 1 to 5 (null: not rated)", examples=[4])
    rated_at: int | None = Field(description="block time of the rating", examples=[1793577600])
    disputes: int | None = Field(description="disputes of the case's fulfilment by the receipt holder", examples=[0])
    reopened: int | None = Field(description="times the agency reopened the case", examples=[0])
    dispute_open: bool | None = Field(description="a dispute awaits the agency's answer", examples=[False])
    events: list[CaseEventItem] = Field(
        description="every event of the case, in ledger order: voided ones included (voided_by), and batched events "
        "not applied to it (not_applied_reason)"
    )


# --- receipts: a case seen through its receipt, and the citizen's feedback -------------------------------------------

_RECEIPT = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"


class ReceiptInfo(Model):
    """The public side of the citizen's receipt: the address of the key derived from its code (never the code)."""

    address: Address = Field(description="address of the receipt key, as recorded on chain", examples=[_RECEIPT])
    issued_at: int = Field(description="when the agency says it issued the receipt", examples=[1793487600])
    final: bool = Field(description=_FINAL)
    proof: Proof = Field(description="proof of the ReceiptIssued entry")


class RatingItem(Model):
    """The receipt holder's rating of the case (at most one, ever)."""

    score: int = Field(ge=1, le=5, description="1 (worst) to 5 (best)", examples=[4])
    comment_hash: Hex32 = Field(
        description="keccak256(salt ‖ utf8(comment)) of the off-chain comment, or zero for none", examples=[_RECORD]
    )
    comment: str | None = Field(
        description="the comment, when the citizen agreed to publish it (it matches comment_hash with its salt)",
        examples=["Fixed the next morning, thank you."],
    )
    rated_at: int = Field(description="block time of the rating", examples=[1793577600])
    final: bool = Field(description=_FINAL)
    proof: Proof


class DisputeAnswer(Model):
    """The agency's answer to a dispute: it reopened the case, or stood by the fulfilment with a reason (hash)."""

    action: Literal["reopened", "dispute_rejected"] = Field(examples=["reopened"])
    seq: int = Field(ge=0, description="seq of the answering case event (in `events`)", examples=[120])
    answered_at: int = Field(description="block time of the answer", examples=[1793664000])


class DisputeItem(Model):
    """A dispute of a fulfilment by the receipt holder, and the agency's answer."""

    closure: int = Field(ge=1, description="which closure of the case was disputed (1 for the first)", examples=[1])
    reason_hash: Hex32 = Field(
        description="keccak256(salt ‖ utf8(reason)) of the off-chain reason, or zero for none", examples=[_RECORD]
    )
    reason: str | None = Field(
        description="the reason, when the citizen agreed to publish it", examples=["The streetlight is still dark."]
    )
    disputed_at: int = Field(description="block time of the dispute", examples=[1793577600])
    answer_due: int = Field(
        description="disputed_at + the response window: the agency must answer by then", examples=[1794441600]
    )
    answer: DisputeAnswer | None = Field(description="the agency's answer (null: none yet)")
    answer_overdue: bool = Field(description="no answer, and answer_due has passed (the auditor flags it)")
    final: bool = Field(description=_FINAL)
    proof: Proof


class FeedbackSubmission(Model):
    """A rating or dispute accepted by this service and not yet in the index (follow it by its id)."""

    id: str = Field(description="the submission's id (GET /api/v1/ratings/{id} or /api/v1/disputes/{id})")
    kind: Literal["rating", "dispute"] = Field(description="what was submitted", examples=["rating"])
    status: str = Field(description="pending | sent | recorded | failed", examples=["sent"])
    closure: int | None = Field(default=None, description="for a dispute: the closure it disputes")


class Feedback(Model):
    """What the receipt holder may do now, as the ledger tracks the case (every recorded closing, reopening and
    answer after the receipt, as the contract counts them), and what they did."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "fulfilled",
                    "closures": 1,
                    "closed_at": 1793574000,
                    "rated": False,
                    "rating": None,
                    "can_rate": True,
                    "rate_refusal": None,
                    "can_dispute": True,
                    "dispute_refusal": None,
                    "dispute_closure": 1,
                    "dispute_deadline": 1796166000,
                    "dispute_window_seconds": 2592000,
                    "response_window_seconds": 864000,
                    "disputes": [],
                    "submissions": [],
                }
            ]
        }
    )

    status: Literal["open", "fulfilled", "closed_unfulfilled"] = Field(
        description="the case as the contract tracks it: open (opened or reopened), fulfilled, or closed otherwise "
        "(rejected or withdrawn)",
        examples=["fulfilled"],
    )
    closures: int = Field(ge=0, description="how many times the case was closed", examples=[1])
    closed_at: int | None = Field(description="block time of the latest closing (null: never closed)")
    rated: bool = Field(description="whether the case has been rated (once ever)")
    rating: RatingItem | None = Field(description="the rating, if any")
    can_rate: bool = Field(description="whether a rating would be accepted now")
    rate_refusal: Literal["not_closed", "already_rated", "rating_pending"] | None = Field(
        description="why not, when it would not be"
    )
    can_dispute: bool = Field(description="whether a dispute of the latest fulfilment would be accepted now")
    dispute_refusal: (
        Literal[
            "not_closed", "not_fulfilled", "already_disputed", "closure_disputed", "dispute_window_closed",
            "dispute_pending",
        ]
        | None
    ) = Field(
        description="why not, when it would not be: not_closed, not_fulfilled (closed otherwise), already_disputed "
        "(a dispute awaits the agency's answer), closure_disputed (this closure was disputed and the agency stood by "
        "it: one dispute per closure), dispute_window_closed, dispute_pending (being recorded)"
    )
    dispute_closure: int | None = Field(
        description="the closure number a dispute must name (the latest closure of a fulfilled case)", examples=[1]
    )
    dispute_deadline: int | None = Field(
        description="until when the latest fulfilment may be disputed (block time; closed_at + the window)"
    )
    dispute_window_seconds: int = Field(description="how long after a fulfilment it may be disputed")
    response_window_seconds: int = Field(description="how long the agency has to answer a dispute")
    disputes: list[DisputeItem] = Field(description="every dispute of the case, oldest first")
    submissions: list[FeedbackSubmission] = Field(
        description="ratings and disputes accepted by this service that the index does not show yet"
    )
    source: Literal["index", "chain"] = Field(
        default="index",
        description="where the state above (status, closures, closed_at, rated, can_* and why not, the dispute "
        "deadline) was read: the index, or the contract's own receiptCase on the chain when the index lacks this "
        "receipt or is behind the case's latest change (then `rating`, `disputes` and the case's events are only "
        "what the index has)",
        examples=["index"],
    )
    source_reason: Literal["index_lacks_receipt", "index_behind"] | None = Field(
        default=None,
        description="why the chain was read: the index has no receipt with this key yet (index_lacks_receipt), or "
        "its state of the case is not the chain's (index_behind); null when read from the index",
    )


class ReceiptView(CaseView):
    """A case looked up by its receipt: the case as ``GET /cases/{agency_id}/{case_id}`` shows it (with every
    event and its proof), the receipt, and the feedback state."""

    receipt: ReceiptInfo
    feedback: Feedback
