"""Published attestations, from the auditor's side: an audit's checkpoint is signed, recorded on the ledger and
re-checked by every later audit; a lying auditor's checkpoint (the contract cannot check a running hash) is a
finding; an unregistered key, an incomplete audit and a stale block are refused before anything is sent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ledger.audit import run_audit
from ledger.audit.attest import attestable_block, checkpoint, publish
from ledger.audit.errors import CannotAudit
from ledger.audit.report import report_bytes
from ledger.chain.keys import AgencyKey
from ledger.encoding import keccak
from ledger.records import AuditVerdict
from tests.support.honest import HonestLedger, chain_state, findings


def funded_auditor(h: HonestLedger) -> AgencyKey:
    key = AgencyKey.wrap(h.chain.new_account())
    h.ledger.authorize_auditor(h.governance, key.address)
    return key


def test_an_honest_audit_is_attested_and_every_later_audit_agrees(honest: HonestLedger) -> None:
    with chain_state(honest):
        auditor = funded_auditor(honest)
        report = run_audit(honest.config(to_block=attestable_block(honest.url)))
        assert report.exit_code == 0
        published = publish(report, auditor, rpc_url=honest.url, contract=honest.ledger.address)
        a = published.attestation
        assert a.verdict == AuditVerdict.PASSED and a.findings == 0
        assert a.report_hash == keccak(report_bytes(report))
        assert a.entry_count == report.target["entry_count"] and published.report_upload.startswith("not uploaded")
        assert honest.ledger.auditor_state(auditor.address) == (True, a.block_number)
        later = run_audit(honest.config())
        assert findings(later, "attestations") == []
        assert later.check("attestations").counts["attestations"] == 2  # the honest ledger's own, and this one
        assert later.exit_code == 0, [(c.name, c.findings[:2]) for c in later.failed]


def test_a_lying_auditors_checkpoint_is_a_finding_for_everyone(honest: HonestLedger) -> None:
    with chain_state(honest):
        liar = funded_auditor(honest)
        report = run_audit(honest.config(to_block=attestable_block(honest.url)))
        # it claims one entry fewer (a "clean" ledger before an embarrassing entry) at the same real block
        target = dict(report.target, entry_count=report.target["entry_count"] - 1)
        publish(replace(report, target=target), liar, rpc_url=honest.url, contract=honest.ledger.address)
        later = run_audit(honest.config())
        (finding,) = findings(later, "attestations")
        assert "attested block" in finding.message and finding.field == "running_hash"


def test_an_unregistered_key_a_stale_block_and_an_incomplete_audit_are_refused(honest: HonestLedger) -> None:
    with chain_state(honest):
        report = run_audit(honest.config(to_block=attestable_block(honest.url)))
        stranger = AgencyKey.wrap(honest.chain.new_account())
        with pytest.raises(CannotAudit, match="not a registered auditor"):
            publish(report, stranger, rpc_url=honest.url, contract=honest.ledger.address)
        auditor = funded_auditor(honest)
        honest.chain.w3.provider.make_request("anvil_mine", [hex(257)])
        with pytest.raises(CannotAudit, match="blocks old"):
            publish(report, auditor, rpc_url=honest.url, contract=honest.ledger.address)
        incomplete = replace(report, errors=["metrics: RuntimeError: broken"])
        with pytest.raises(CannotAudit, match="incomplete audit is not attested"):
            checkpoint(incomplete)
        assert honest.ledger.auditor_state(auditor.address) == (True, 0)


def test_an_agency_key_cannot_be_made_an_auditor(honest: HonestLedger) -> None:
    from ledger.errors import ContractReverted

    with chain_state(honest), pytest.raises(ContractReverted, match="KeyRoleConflict"):
        honest.ledger.authorize_auditor(honest.governance, honest.signers["DEMO-ROADS"].address)


def test_the_command_line_audits_the_block_before_the_latest_and_attests_it(
    honest: HonestLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ledger.audit.cli import main

    with chain_state(honest):
        auditor = funded_auditor(honest)
        monkeypatch.setenv("CIVIC_TEST_AUDITOR_KEY", auditor.key.hex())
        latest = honest.chain.w3.eth.block_number
        code = main(["--rpc-url", honest.url, "--contract", honest.ledger.address, "--batches",
                     str(honest.batch_dir), "--no-compile", "--quiet", "--attest-key-env", "CIVIC_TEST_AUDITOR_KEY"])
        out = " ".join(capsys.readouterr().out.split())
        assert code == 0, out
        assert f"attested block {latest - 1}: passed, 0 findings" in out and "not uploaded" in out
        assert honest.ledger.auditor_state(auditor.address) == (True, latest - 1)
        assert auditor.key.hex() not in out  # the key is never shown
        # a key that is not registered: refused after the audit, exit 2, nothing recorded
        monkeypatch.setenv("CIVIC_TEST_AUDITOR_KEY", "0x" + "11" * 32)
        code = main(["--rpc-url", honest.url, "--contract", honest.ledger.address, "--batches",
                     str(honest.batch_dir), "--no-compile", "--quiet", "--attest-key-env", "CIVIC_TEST_AUDITOR_KEY"])
        assert code == 2 and "not a registered auditor" in " ".join(capsys.readouterr().err.split())


def test_an_operator_vouching_for_a_lying_auditor_or_forging_a_report_is_caught(honest: HonestLedger) -> None:
    """The API marks the honest ledger's attestation as not matching (disowning an honest auditor), and serves
    other bytes under its report hash."""
    from fastapi import FastAPI, Request, Response

    from tests.support.lying import lying

    seq = honest.seqs["attested"]

    def disown(body: Any, request: Request) -> Any:
        for item in body["items"]:
            if item["seq"] == seq:
                item["matches_ledger"] = False
        return body

    def forged_report(app: FastAPI) -> None:
        lying("/api/v1/attestations", disown)(app)

        @app.middleware("http")
        async def forge(request: Request, call_next: Any) -> Response:
            if request.url.path.startswith("/api/v1/audit-reports/"):
                return Response(b'{"verdict": "passed"}', media_type="application/json")
            return await call_next(request)

    report = honest.audit(wrap=forged_report, case_sample=5)
    hits = findings(report, "attestations")
    assert any(f.seq == seq and f.field == "matches_ledger" and f.expected is True for f in hits)
    assert any(f.field == "body" and "not the report the auditor attested" in f.message for f in hits)


def test_the_report_is_uploaded_once_the_api_has_indexed_the_attestation(honest: HonestLedger, tmp_path: Path) -> None:
    """The API keeps only attested reports: the upload asks again while its index has not reached the attestation."""
    import threading

    from ledger.audit.attest import upload_report

    with chain_state(honest):
        auditor = funded_auditor(honest)
        index = honest.index_copy(tmp_path)
        report = run_audit(honest.config(to_block=attestable_block(honest.url)))
        published = publish(report, auditor, rpc_url=honest.url, contract=honest.ledger.address)
        body = report_bytes(report)
        with honest.api(index) as client:
            path = f"/api/v1/audit-reports/{published.report_hash}"
            assert client.put(path, content=body).status_code == 404  # not indexed yet
            outcome: list[str] = []
            uploader = threading.Thread(target=lambda: outcome.append(
                upload_report("", published.report_hash, body, client=client, index_wait=30)))
            uploader.start()
            honest.sync(index)
            uploader.join(60)
            assert outcome == ["stored"]
            assert client.get(path).content == body
