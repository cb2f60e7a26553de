"""Publish an audit: the auditor signs (EIP-712) a checkpoint of what it re-derived — the block audited up to and its
hash, the entry count and running hash there, the hash of its JSON report, its verdict and findings count — records
it on the ledger (``CivicLedger.recordAttestation``; the auditor's key must be registered by governance, and is
never an agency key), and hands the report to the public API, which serves it by its hash.

The transaction is sent by the auditor's key itself (it pays the gas), or by another funded key given as the sender:
never through the operator's relayer, which could decline to relay a failing verdict. The report is uploaded after
the attestation is on chain; an API that refuses it is reported (the attestation stands either way, and the audit's
``attestations`` check finds a report the API does not serve).

The chain only vouches for a block's hash for 256 blocks, and a node runs a call (and estimates gas) in the context
of its latest block, where that block's own hash is not yet known: an attested audit therefore looks at the block
before the latest (:func:`attestable_block`) and is recorded at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from ledger.audit.apiread import PREFIX, USER_AGENT
from ledger.audit.errors import CannotAudit
from ledger.audit.model import AuditReport, cut
from ledger.audit.report import report_bytes
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import AgencyKey
from ledger.encoding import keccak
from ledger.errors import ContractReverted, LedgerError
from ledger.records import Attestation, AuditVerdict

#: how far back the EVM's BLOCKHASH sees: an attestation names one of these blocks
BLOCKHASH_WINDOW = 256


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did: the attestation, its transaction and entry, and the report's upload."""

    attestation: Attestation
    tx_hash: str
    block_number: int
    report_hash: str
    #: "stored" (the API now serves it), "not uploaded" (no API given), or why the API refused it
    report_upload: str


def attestable_block(rpc_url: str, chain_id: int | None = None) -> int:
    """The newest block an attestation can name now: the one before the node's latest."""
    chain = Chain.connect(rpc_url, expected_chain_id=chain_id)
    latest = int(chain.w3.eth.block_number)
    if latest < 1:
        raise CannotAudit("the chain has no block before its latest yet: nothing can be attested")
    return latest - 1


def checkpoint(report: AuditReport) -> Attestation:
    """The checkpoint of a finished audit. An audit that could not complete every check is not attested."""
    if report.exit_code == 2:
        raise CannotAudit("the audit did not complete every check (exit code 2): an incomplete audit is not attested; "
                          f"its errors: {'; '.join(report.errors) or 'none recorded'}")
    target = report.target
    findings = sum(c.finding_total() for c in report.checks)
    return Attestation(
        block_number=target["block_number"], block_hash=target["block_hash"], entry_count=target["entry_count"],
        running_hash=target["running_hash"], report_hash=keccak(report_bytes(report)),
        verdict=AuditVerdict.PASSED if findings == 0 else AuditVerdict.FAILED, findings=min(findings, 2**32 - 1),
    )


def publish(
    report: AuditReport, auditor: AgencyKey, *, rpc_url: str, contract: str, chain_id: int | None = None,
    sender: AgencyKey | None = None, api_url: str | None = None, timeout: float = 60.0,
) -> Published:
    """Sign `report`'s checkpoint with `auditor`, record it on the ledger (sent by `sender`, default the auditor),
    then upload the report to the API at `api_url`. Raises :class:`CannotAudit` when the ledger refuses it."""
    attestation = checkpoint(report)
    chain = Chain.connect(rpc_url, expected_chain_id=chain_id)
    ledger = Ledger(chain, contract)
    authorized, last = ledger.auditor_state(auditor.address)
    if not authorized:
        raise CannotAudit(f"{auditor.address} is not a registered auditor of the ledger at {ledger.address}: "
                          "governance registers auditors (civic-ledger auditor authorize)")
    latest = int(chain.w3.eth.block_number)
    if latest - attestation.block_number >= BLOCKHASH_WINDOW:
        raise CannotAudit(f"block {attestation.block_number} is {latest - attestation.block_number} blocks old: the "
                          f"chain vouches only for the last {BLOCKHASH_WINDOW}; audit again at a recent block")
    if attestation.block_number <= last:
        raise CannotAudit(f"this auditor already attested block {last}: an attestation must name a later block")
    signature = ledger.sign_attestation(auditor.key, attestation)
    try:
        receipt = ledger.record_attestation(sender or auditor, attestation, auditor.address, signature)
    except ContractReverted as exc:
        raise CannotAudit(f"the ledger refused the attestation: {exc.error_name} {exc.error_args}") from exc
    except LedgerError as exc:
        raise CannotAudit(f"the attestation could not be sent: {exc}") from exc
    report_hash = "0x" + attestation.report_hash.hex()
    upload = "not uploaded (no API given)"
    if api_url:
        upload = upload_report(api_url, report_hash, report_bytes(report), timeout=timeout)
    return Published(attestation, "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["blockNumber"]),
                     report_hash, upload)


#: how long the upload waits for the API's index to hold the new attestation (the API keeps only attested reports)
INDEX_WAIT_SECONDS = 60.0


def upload_report(api_url: str, report_hash: str, body: bytes, *, timeout: float = 60.0,
                  client: httpx.Client | None = None, index_wait: float = INDEX_WAIT_SECONDS) -> str:
    """PUT the report to ``/api/v1/audit-reports/{hash}``: "stored", or why not (redirects are not followed). While
    the API answers ``report_not_attested`` (its index has not reached the attestation yet), it is asked again, for
    at most `index_wait` seconds."""
    own = client is None
    http = client or httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout, follow_redirects=False)
    deadline = time.monotonic() + index_wait
    pause = 0.5
    try:
        while True:
            try:
                answer = http.put(f"{PREFIX}/audit-reports/{report_hash}", content=body,
                                  headers={"content-type": "application/json", "user-agent": USER_AGENT})
            except httpx.HTTPError as exc:
                return f"not stored: {type(exc).__name__}: {cut(str(exc), 200)}"
            if answer.status_code in (200, 201, 204):
                return "stored"
            if answer.status_code != 404 or "report_not_attested" not in answer.text or time.monotonic() > deadline:
                return f"not stored: HTTP {answer.status_code}: {cut(answer.text, 300)}"
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
    finally:
        if own:
            http.close()


def summary(published: Published) -> dict[str, Any]:
    a = published.attestation
    return {
        "block_number": a.block_number, "block_hash": "0x" + a.block_hash.hex(), "entry_count": a.entry_count,
        "running_hash": "0x" + a.running_hash.hex(), "report_hash": published.report_hash,
        "verdict": a.verdict.name.lower(), "findings": a.findings, "tx_hash": published.tx_hash,
        "recorded_in_block": published.block_number, "report_upload": published.report_upload,
    }


# -- the command line (``civic-audit --attest …``)


def add_arguments(parser: Any) -> None:
    """The options of an attested audit."""
    group = parser.add_argument_group("publishing the audit (an attestation recorded on the ledger)")
    key = group.add_mutually_exclusive_group()
    key.add_argument("--attest", default=None, metavar="KEYSTORE",
                     help="sign the audit's checkpoint with this registered auditor key (an encrypted keystore file) "
                     "and record it on the ledger; the audit then looks at the block before the latest unless "
                     "--to-block says otherwise, and the JSON report is uploaded to --api")
    key.add_argument("--attest-key-env", default=None, metavar="VAR",
                     help="like --attest, the auditor key read from this environment variable")
    group.add_argument("--password-file", default=None, metavar="PATH",
                       help="the keystore's password (first line); default: $CIVIC_KEY_PASSWORD")


def wants_attestation(args: Any) -> bool:
    return bool(args.attest or args.attest_key_env)


def load_auditor_key(args: Any) -> AgencyKey:
    """The auditor key the options name (errors name where it was looked for, never the key)."""
    import os

    from ledger.chain.keys import load_key

    if args.attest_key_env:
        return load_key(env_var=args.attest_key_env)
    if args.password_file:
        return load_key(args.attest, password_file=args.password_file)
    password = os.environ.get("CIVIC_KEY_PASSWORD")
    if password is None:
        raise CannotAudit(f"the keystore {args.attest} needs --password-file or CIVIC_KEY_PASSWORD")
    return load_key(args.attest, password=password)
