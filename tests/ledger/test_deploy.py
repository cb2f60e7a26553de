"""Deploying to any node (``ledger.chain.deploy``, ``civic-ledger deploy`` / ``verify-deployment``, and the Hardhat task
``civic-deploy``) on anvil and on Hardhat's node, with a governance that is not the deployer; then the ledger's whole
flow (register, authorise, write, index, audit) on the deployed contract."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from ledger.audit import AuditConfig, run_audit
from ledger.chain.build import ROOT
from ledger.chain.contract import Chain, Ledger
from ledger.chain.deploy import SOURCE_DIR, STANDARD_INPUT_FILE, deploy, source_hash, source_hashes, verify_deployment
from ledger.cli import app
from ledger.config import DEPLOYMENT_FILE, Deployment
from ledger.dev.hardhat_node import HardhatNode
from ledger.dev.node import AnvilNode
from ledger.errors import ChainMismatch, LedgerError, NodeUnavailable
from ledger.index.sync import Indexer
from ledger.records import AgencyRegistration, CaseAction, short_code
from ledger.store.db import open_store
from tests.support import nodes
from tests.support.world import World

pytestmark = pytest.mark.slow  # a compile of the published sources takes about 20 s (once per input)

runner = CliRunner()
PASSWORD = "correct horse"


@pytest.fixture(scope="module", params=["anvil", "hardhat"])
def node_chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    node = AnvilNode() if request.param == "anvil" else HardhatNode()
    with node:
        yield Chain.connect(node.url)


def keystore(chain: Chain, directory: Path) -> tuple[LocalAccount, Path, Path]:
    """A funded deployer in an encrypted keystore file, with its password file."""
    account = chain.new_account()
    directory.mkdir(parents=True, exist_ok=True)
    path, password = directory / "deployer.json", directory / "password"
    path.write_text(json.dumps(Account.encrypt(account.key, PASSWORD, iterations=2)))
    password.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    password.chmod(0o600)
    return account, path, password


def cli_deploy(chain: Chain, tmp_path: Path, governance: str, *extra: str) -> tuple[int, str, LocalAccount]:
    deployer, key, password = keystore(chain, tmp_path / "keys")
    url = chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), "deploy", "--rpc-url", url, "--governance",
                                 governance, "--key", str(key), "--password-file", str(password),
                                 "--out", str(tmp_path / "out"), "--poll-interval", "0.05", *extra])
    return result.exit_code, result.output, deployer


def test_cli_deploys_with_a_governance_that_is_not_the_deployer(node_chain: Chain, tmp_path: Path) -> None:
    governance = Account.create()  # a key nobody here holds: it could be a multisig
    code, output, deployer = cli_deploy(node_chain, tmp_path, governance.address, "--admin-delay", "7")
    assert code == 0, output
    assert deployer.key.hex().removeprefix("0x") not in output
    record = Deployment.of(tmp_path / "out")
    assert record is not None
    ledger = Ledger(node_chain, record.address)  # this package's code, and its module
    receipt = node_chain.w3.eth.get_transaction_receipt(record.tx_hash)
    assert (record.chain_id, record.block) == (node_chain.chain_id, receipt["blockNumber"])
    assert (record.governance, record.deployer) == (governance.address, deployer.address)
    assert (record.admin_delay, record.confirmations) == (7, 1)
    assert record.compiler.startswith("0.8.30+") and record.compiler_settings["viaIR"] is True
    shipped = json.loads((ROOT / "ledger" / "artifacts" / "CivicLedger.json").read_text())
    assert record.source_hash == source_hash(shipped["sources"])
    functions = ledger.contract.functions
    admin_role, governor_role = functions.DEFAULT_ADMIN_ROLE().call(), functions.GOVERNOR_ROLE().call()
    assert functions.hasRole(admin_role, governance.address).call()
    assert functions.hasRole(governor_role, governance.address).call()
    assert not functions.hasRole(governor_role, deployer.address).call()
    assert functions.defaultAdminDelay().call() == 7
    published = json.loads((tmp_path / "out" / SOURCE_DIR / STANDARD_INPUT_FILE).read_text())
    assert source_hash(source_hashes(published)) == record.source_hash

    url = node_chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    verified = runner.invoke(app, ["verify-deployment", "--dir", str(tmp_path / "out"), "--rpc-url", url])
    assert verified.exit_code == 0, verified.output
    assert "verified" in verified.output and ledger.filings_address in verified.output


def test_a_wrong_chain_id_is_refused_before_anything_is_sent(node_chain: Chain, tmp_path: Path) -> None:
    code, output, deployer = cli_deploy(node_chain, tmp_path, Account.create().address, "--chain-id", "1")
    assert code == 2
    assert "expected 1" in output
    assert not (tmp_path / "out" / DEPLOYMENT_FILE).exists()
    assert node_chain.w3.eth.get_transaction_count(deployer.address) == 0


def test_an_existing_record_is_not_overwritten(node_chain: Chain, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / DEPLOYMENT_FILE).write_text("{}")
    code, output, _ = cli_deploy(node_chain, tmp_path, Account.create().address)
    assert code == 2 and "--replace" in output
    assert (tmp_path / "out" / DEPLOYMENT_FILE).read_text() == "{}"


def test_a_governance_that_is_not_an_address_is_refused(node_chain: Chain, tmp_path: Path) -> None:
    code, output, _ = cli_deploy(node_chain, tmp_path, "0x1234")
    assert code == 2 and "not an address" in output


def test_confirmations_are_waited_for(node_chain: Chain) -> None:
    deployer, governance = node_chain.new_account(), Account.create().address
    done: list[Deployment] = []
    worker = threading.Thread(target=lambda: done.append(
        deploy(node_chain, deployer, governance, confirmations=3, poll_interval=0.02, timeout=30)))
    worker.start()
    try:
        worker.join(1.0)
        assert not done  # mined in one block, and waiting for two more
        nodes.mine(node_chain)
        worker.join(0.5)
        assert not done
        nodes.mine(node_chain)
    finally:
        worker.join(30)
    (record,) = done
    assert record.confirmations == 3
    assert node_chain.w3.eth.block_number - record.block + 1 >= 3


def test_confirmations_that_never_come_are_an_error(node_chain: Chain) -> None:
    with pytest.raises(LedgerError, match="did not reach 5 confirmations"):
        deploy(node_chain, node_chain.new_account(), Account.create().address, confirmations=5, timeout=0.2,
               poll_interval=0.02)
    with pytest.raises(ValueError, match="1 or more"):
        deploy(node_chain, node_chain.new_account(), Account.create().address, confirmations=0)


def _published(chain: Chain, tmp_path: Path) -> Path:
    code, output, _ = cli_deploy(chain, tmp_path, Account.create().address)
    assert code == 0, output
    return tmp_path / "out"


def _edit_record(directory: Path, **changes: object) -> None:
    record = Deployment.of(directory)
    assert record is not None
    replace(record, **changes).save(directory / DEPLOYMENT_FILE)  # type: ignore[arg-type]


def test_verification_fails_on_another_contract(node_chain: Chain, tmp_path: Path) -> None:
    directory = _published(node_chain, tmp_path)
    record = Deployment.of(directory)
    assert record is not None
    module = Ledger(node_chain, record.address).filings_address
    _edit_record(directory, address=module)  # a contract, but not the ledger
    with pytest.raises(ChainMismatch, match="not what the published sources compile to"):
        verify_deployment(node_chain, directory)
    _edit_record(directory, address=Account.create().address)
    with pytest.raises(ChainMismatch, match="no contract at"):
        verify_deployment(node_chain, directory)
    url = node_chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    refused = runner.invoke(app, ["verify-deployment", "--dir", str(directory), "--rpc-url", url])
    assert refused.exit_code == 1 and "not verified" in refused.output


def test_verification_fails_when_the_record_lies_about_governance_or_deployer(node_chain: Chain,
                                                                               tmp_path: Path) -> None:
    directory = _published(node_chain, tmp_path)
    record = Deployment.of(directory)
    assert record is not None
    _edit_record(directory, governance=Account.create().address)
    with pytest.raises(ChainMismatch, match="with governance"):
        verify_deployment(node_chain, directory)
    _edit_record(directory, governance=record.governance, deployer=Account.create().address)
    with pytest.raises(ChainMismatch, match="was sent by"):
        verify_deployment(node_chain, directory)
    _edit_record(directory, deployer=record.deployer, chain_id=record.chain_id + 1)
    with pytest.raises(ChainMismatch, match="chain id"):
        verify_deployment(node_chain, directory)


def test_verification_fails_when_a_published_source_differs(tmp_path: Path) -> None:
    """A comment changes no opcode, but it changes the metadata hash the runtime code ends with: verification sees it
    (the record's source hash made to agree, so the bytecode comparison is what refuses). On anvil only: one node is
    enough for a second compile of 20 s."""
    with AnvilNode() as node:
        _source_differs(Chain.connect(node.url), tmp_path)


def _source_differs(node_chain: Chain, tmp_path: Path) -> None:
    directory = _published(node_chain, tmp_path)
    path = directory / SOURCE_DIR / STANDARD_INPUT_FILE
    published = json.loads(path.read_text())
    published["sources"]["contracts/CivicLedger.sol"]["content"] += "\n// a comment\n"
    path.write_text(json.dumps(published))
    with pytest.raises(LedgerError, match="source hash differs"):
        verify_deployment(node_chain, directory)
    _edit_record(directory, source_hash=source_hash(source_hashes(published)))
    with pytest.raises(ChainMismatch, match="not what the published sources compile to"):
        verify_deployment(node_chain, directory)


def test_a_record_without_the_deploy_fields_still_loads(tmp_path: Path) -> None:
    (tmp_path / DEPLOYMENT_FILE).write_text(json.dumps({"chain_id": 5, "address": "0x" + "ab" * 20, "block": 3}))
    assert Deployment.of(tmp_path) == Deployment(5, "0x" + "ab" * 20, 3, "")
    (tmp_path / DEPLOYMENT_FILE).write_text(json.dumps({"chain_id": 5, "address": "0x", "compiler_settings": []}))
    with pytest.raises(LedgerError, match="not a deployment record"):
        Deployment.of(tmp_path)


def test_the_hardhat_task_deploys_the_shipped_artifact_and_writes_the_same_record(tmp_path: Path) -> None:
    with HardhatNode() as node:
        chain = Chain.connect(node.url)
        deployer, governance = chain.new_account(), Account.create().address
        env = {**os.environ, "CIVIC_RPC_URL": node.url, "CIVIC_DEPLOYER_KEY": deployer.key.hex(),
               "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
        run = subprocess.run([str(ROOT / "node_modules" / ".bin" / "hardhat"), "civic-deploy", "--network", "civic",
                              "--governance", governance, "--admin-delay", "3", "--out", str(tmp_path),
                              "--expect-chain-id", str(chain.chain_id), "--poll-ms", "50"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert deployer.key.hex().removeprefix("0x") not in run.stdout + run.stderr
        written = json.loads((tmp_path / DEPLOYMENT_FILE).read_text())
        assert list(written) == [f.name for f in fields(Deployment)]
        record = Deployment.of(tmp_path)
        assert record is not None
        assert (record.governance, record.deployer, record.admin_delay) == (governance, deployer.address, 3)
        python_side = json.loads((ROOT / "ledger" / "artifacts" / "CivicLedger.json").read_text())
        assert record.source_hash == source_hash(python_side["sources"])
        assert record.compiler == python_side["compiler"]
        verified = verify_deployment(chain, tmp_path)  # Hardhat's standard JSON input, recompiled here
        assert verified.checked["CivicLedger"] == record.address

        again = subprocess.run([str(ROOT / "node_modules" / ".bin" / "hardhat"), "civic-deploy", "--network", "civic",
                                "--governance", governance, "--out", str(tmp_path), "--expect-chain-id", "1"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode != 0 and "exists" in again.stdout + again.stderr
        assert json.loads((tmp_path / DEPLOYMENT_FILE).read_text()) == asdict(record)


def test_register_authorise_write_index_and_audit_on_the_deployed_ledger(node_chain: Chain, tmp_path: Path) -> None:
    governance = node_chain.new_account()
    record = deploy(node_chain, node_chain.new_account(), governance.address, poll_interval=0.02)
    ledger = Ledger(node_chain, record.address)
    agency_id = short_code("SH-ROADS")
    ledger.register_agency(governance, AgencyRegistration(agency_id=agency_id, jurisdiction=short_code("CN-SH"),
                                                          name_zh="路政局", name_en="Roads"))
    signer = node_chain.new_account()
    ledger.authorize_signer(governance, agency_id, signer.address)
    world = World(chain=node_chain, ledger=ledger, governance=governance, relayer=node_chain.new_account(),
                  agency_id=agency_id, signer=signer, other_agency_id=short_code("NONE"),
                  other_signer=node_chain.new_account(), commitment_id=short_code("STREETLIGHT-48H"))
    ledger.write(signer, world.commitment())
    ledger.write_batch(signer, [world.opened("a"), world.opened("b")])
    ledger.write(signer, world.update("a", CaseAction.FULFILLED))

    store = open_store(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    try:
        indexer = Indexer(node_chain, ledger.address, store, confirmations=0, deploy_block=record.block)
        report = indexer.sync()
        assert report.entries == ledger.entry_count() == 6
    finally:
        store.close()
    url = node_chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    audit = run_audit(AuditConfig(rpc_url=url, contract=ledger.address, chain_id=record.chain_id, compile=False,
                                  batches=str(tmp_path / "batches")))
    assert audit.exit_code == 0, [c.name for c in audit.failed]


def test_hardhat_node_refuses_a_busy_port() -> None:
    with HardhatNode() as node:
        assert node.running and node.pid is not None
        with pytest.raises(NodeUnavailable, match="already in use"):
            HardhatNode(port=node.port).start()
    assert not node.running


def test_hardhat_node_serves_the_chain_id_asked() -> None:
    with HardhatNode(chain_id=4242) as node:
        assert Chain.connect(node.url, expected_chain_id=4242).chain_id == 4242


