"""Independent audits (``api.routes.audit``, built by ``api.attestations``): auditors' registrations, their signed
checkpoints of the ledger (attestations) and the summary the chain facts and the page show."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas._common import _ADDRESS, _BLOCK, _FINAL, _HEAD, HEX24_PATTERN, Address, Hex32, Model
from api.schemas.proofs import Proof

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
