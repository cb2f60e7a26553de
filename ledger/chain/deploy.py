"""Deploy the shipped ledger to any EVM network, record where and from what (``deployment.json``), publish what anyone
needs to check its source (solc's standard JSON input and each contract's metadata, Sourcify-style), and verify a
deployment from what was published: recompile it and compare with the code the chain holds.

The bytecode deployed is always the package's (``ledger/artifacts``), never a fresh compile: the compile here only
produces the metadata to publish, and is refused unless it gives the shipped bytecode byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt

from ledger.chain.build import compiler_config, runtime_code_matches, solc_binary, standard_input
from ledger.chain.contract import CONTRACT_NAME, MODULE_NAME, Chain, Ledger, artifact
from ledger.config import DEPLOYMENT_FILE, Deployment
from ledger.encoding import module_address
from ledger.errors import BuildError, ChainMismatch, LedgerError

#: where the published sources go, under the output directory
SOURCE_DIR = "source"
STANDARD_INPUT_FILE = "standard-input.json"
#: what the verifier asks solc for (the output selection changes no bytecode, so any published input will do)
_VERIFY_OUTPUTS = ["metadata", "evm.bytecode.object", "evm.deployedBytecode.object",
                   "evm.deployedBytecode.immutableReferences"]


def metadata_file(name: str) -> str:
    return f"{name}.metadata.json"


def source_hash(sources: Mapping[str, str]) -> str:
    """sha256 of the sources' own sha256 hashes (hex) by source unit name, as canonical JSON (keys sorted, no spaces):
    the artifact's ``sources`` table, so the Hardhat task (``hardhat.config.js``) computes the same."""
    canonical = json.dumps(dict(sources), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def source_hashes(source_input: Mapping[str, Any]) -> dict[str, str]:
    """Each source unit's sha256 in a standard JSON input (the artifact's ``sources`` table for the same input)."""
    return {name: hashlib.sha256(str(unit["content"]).encode()).hexdigest()
            for name, unit in source_input["sources"].items()}


@dataclass(frozen=True)
class Publication:
    """What is published beside a deployment: the standard JSON input and each contract's metadata as solc emitted it
    (the bytes its IPFS hash, at the end of the runtime code, is taken over)."""

    standard_input: dict[str, Any]
    metadata: dict[str, str]
    compiler: str

    def write(self, directory: Path) -> list[Path]:
        """Write the files under ``directory/source/``; returns their paths."""
        target = Path(directory) / SOURCE_DIR
        target.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.standard_input, indent=1, sort_keys=True) + "\n"
        written = [_write(target / STANDARD_INPUT_FILE, text)]
        for name, text in sorted(self.metadata.items()):
            written.append(_write(target / metadata_file(name), text))
        return written

    @classmethod
    def read(cls, directory: Path) -> Publication:
        """The publication under ``directory/source/``; what is missing or unreadable is a :class:`LedgerError`."""
        target = Path(directory) / SOURCE_DIR
        try:
            source_input = json.loads((target / STANDARD_INPUT_FILE).read_text(encoding="utf-8"))
            metadata = {name: (target / metadata_file(name)).read_text(encoding="utf-8")
                        for name in (CONTRACT_NAME, MODULE_NAME)}
        except (OSError, ValueError) as exc:
            raise LedgerError(f"{target} does not hold a published source ({type(exc).__name__}: {exc})") from None
        if not isinstance(source_input, dict) or not isinstance(source_input.get("sources"), dict):
            raise LedgerError(f"{target / STANDARD_INPUT_FILE} is not a solc standard JSON input")
        return cls(source_input, metadata, compiler="")


def _write(path: Path, text: str) -> Path:
    """Write `text` exactly (a metadata file's hash is over its bytes), whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _compile(source_input: Mapping[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    """Compile a standard JSON input (with the outputs the verifier needs) with the pinned compiler: its long version
    and the compiled contracts by name."""
    selected = json.loads(json.dumps(source_input))
    selected.setdefault("settings", {})["outputSelection"] = {"*": {"*": _VERIFY_OUTPUTS}}
    return _compile_canonical(json.dumps(selected, sort_keys=True))


@cache  # a compile with viaIR takes about 20 s; the same input always gives the same output
def _compile_canonical(canonical: str) -> tuple[str, dict[str, dict[str, Any]]]:
    import solcx
    from solcx.exceptions import SolcError

    binary = solc_binary()
    pinned = compiler_config()["solcVersion"]
    try:
        version = solcx.wrapper.get_version_str_from_solc_binary(binary)
        output = solcx.compile_standard(json.loads(canonical), solc_binary=binary)
    except (OSError, SolcError) as exc:
        raise BuildError(f"cannot compile with the Solidity compiler at {binary}: {exc}") from exc
    if not version.startswith(pinned + "+"):
        raise BuildError(f"compiler at {binary} is {version}; contracts/compiler.json pins {pinned}")
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("compilation failed:\n" + "\n".join(e["formattedMessage"] for e in errors))
    compiled = {name: contract for contracts in output.get("contracts", {}).values()
                for name, contract in contracts.items()}
    return version, compiled


@cache
def publication() -> Publication:
    """The standard JSON input of the package's sources and the metadata solc emits for it, checked to give the
    shipped bytecode (else :class:`BuildError`: the artifacts are stale, and what would be published is not what
    is deployed)."""
    source_input = standard_input()
    source_input["settings"]["outputSelection"] = {"*": {"*": _VERIFY_OUTPUTS}}
    version, compiled = _compile(source_input)
    metadata = {}
    for name in (CONTRACT_NAME, MODULE_NAME):
        shipped, fresh = artifact(name), compiled.get(name)
        if fresh is None or "0x" + fresh["evm"]["bytecode"]["object"] != shipped["bytecode"]:
            raise BuildError(f"the sources do not compile to the shipped {name} bytecode: run "
                             "python -m ledger.chain.build (the published source would not be what is deployed)")
        metadata[name] = str(fresh["metadata"])
    return Publication(source_input, metadata, version)


def deployment_record(chain: Chain, receipt: TxReceipt, deployer: str, governance: str, admin_delay: int,
                      confirmations: int) -> Deployment:
    """The record of a mined deployment of the shipped artifact."""
    shipped = artifact()
    address = receipt["contractAddress"]
    assert address is not None  # a deployment's receipt names the new contract
    return Deployment(
        chain_id=chain.chain_id, address=to_checksum_address(address), block=int(receipt["blockNumber"]),
        governance=to_checksum_address(governance), tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        deployer=to_checksum_address(deployer), admin_delay=admin_delay, confirmations=confirmations,
        compiler=str(shipped["compiler"]), compiler_settings=compiler_config()["settings"],
        source_hash=source_hash(shipped["sources"]),
    )


def deploy(chain: Chain, deployer: LocalAccount, governance: str, *, admin_delay: int = 0, confirmations: int = 1,
           timeout: float = 600.0, poll_interval: float = 2.0) -> Deployment:
    """Deploy the shipped ledger from `deployer` (who pays) with `governance` as its admin and governor, wait until
    its block has `confirmations` blocks (itself included), check the code at the new address, and return the
    record (not yet saved)."""
    if confirmations < 1:
        raise ValueError("confirmations must be 1 or more (1: the block that includes the deployment)")
    governance = to_checksum_address(governance)
    receipt = Ledger.send_deployment(chain, deployer, admin_delay=admin_delay, governance=governance)
    receipt = wait_for_confirmations(chain, receipt, confirmations, timeout=timeout, poll_interval=poll_interval)
    record = deployment_record(chain, receipt, deployer.address, governance, admin_delay, confirmations)
    Ledger(chain, record.address)  # the code there is this package's, and the module the constructor made
    return record


def wait_for_confirmations(chain: Chain, receipt: TxReceipt, confirmations: int, *, timeout: float = 600.0,
                           poll_interval: float = 2.0) -> TxReceipt:
    """Wait until the transaction's block is `confirmations` deep (its own block counts as one) and return its
    receipt as it then stands: a reorganisation that moved it to another block restarts the count from there."""
    w3, tx_hash = chain.w3, receipt["transactionHash"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            current = w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            current = None  # dropped by a reorganisation: it may be mined again
        if current is not None and w3.eth.block_number - int(current["blockNumber"]) + 1 >= confirmations:
            # the block still holds it (not replaced between the two reads)
            block = w3.eth.get_block(int(current["blockNumber"]))
            if HexBytes(block["hash"]) == HexBytes(current["blockHash"]):
                return current
        if time.monotonic() >= deadline:
            raise LedgerError(
                f"transaction 0x{bytes(tx_hash).hex()} did not reach {confirmations} confirmations within {timeout:.0f}"
                " s; it may still be mined: look it up before deploying again")
        time.sleep(poll_interval)


@dataclass(frozen=True)
class Verified:
    """A deployment whose code on chain is what the published sources compile to."""

    record: Deployment
    compiler: str
    checked: dict[str, str]  # contract name -> address


def verify_deployment(chain: Chain, directory: Path) -> Verified:
    """Recompile the sources published in `directory` (``source/``) and check, against `chain`, that the ledger and its
    module at the recorded address (``deployment.json``) run exactly that code (the metadata hash at the end
    included; only the immutables the constructor writes are masked), that the published metadata is what solc
    emits for the input, and that the recorded transaction created that contract with the recorded governance and
    admin delay. Any difference raises (:class:`ChainMismatch`, :class:`LedgerError`)."""
    record = Deployment.load(Path(directory) / DEPLOYMENT_FILE)
    if record is None:
        raise LedgerError(f"no deployment record at {Path(directory) / DEPLOYMENT_FILE}")
    if chain.chain_id != record.chain_id:
        raise ChainMismatch(f"the deployment is on chain id {record.chain_id}, the node serves {chain.chain_id}")
    published = Publication.read(directory)
    if record.source_hash and source_hash(source_hashes(published.standard_input)) != record.source_hash:
        raise LedgerError("the published sources are not the ones the deployment record names (source hash differs)")
    version, compiled = _compile(published.standard_input)
    if record.compiler and version != record.compiler:
        raise LedgerError(f"the deployment was compiled with {record.compiler}; the compiler here is {version}")
    checked: dict[str, str] = {}
    for name, address in ((CONTRACT_NAME, record.address), (MODULE_NAME, module_address(record.address))):
        fresh = compiled.get(name)
        if fresh is None:
            raise LedgerError(f"the published sources do not define {name}")
        code = bytes(chain.w3.eth.get_code(to_checksum_address(address)))
        if not code:
            raise ChainMismatch(f"no contract at {address} on chain {chain.chain_id}")
        expected = {"deployedBytecode": "0x" + fresh["evm"]["deployedBytecode"]["object"],
                    "immutableReferences": fresh["evm"]["deployedBytecode"]["immutableReferences"]}
        if not runtime_code_matches(code, expected):
            raise ChainMismatch(f"the code at {address} is not what the published sources compile to ({name})")
        if published.metadata[name] != fresh["metadata"]:
            raise LedgerError(f"the published {metadata_file(name)} is not the metadata solc emits for the input")
        checked[name] = to_checksum_address(address)
    if record.tx_hash:
        _check_creation(chain, record, "0x" + compiled[CONTRACT_NAME]["evm"]["bytecode"]["object"])
    return Verified(record, version, checked)


def _check_creation(chain: Chain, record: Deployment, bytecode: str) -> None:
    """The recorded transaction created the recorded contract from `bytecode` with the recorded constructor
    arguments (the governance, which the runtime code does not show) and was sent by the recorded deployer."""
    try:
        tx = chain.w3.eth.get_transaction(HexStr(record.tx_hash))
        receipt = chain.w3.eth.get_transaction_receipt(HexStr(record.tx_hash))
    except TransactionNotFound:
        raise ChainMismatch(f"transaction {record.tx_hash} is not on chain {chain.chain_id}") from None
    arguments = abi_encode(["uint48", "address"], [record.admin_delay, record.governance])
    created = receipt["contractAddress"]
    if (created is None or to_checksum_address(created) != to_checksum_address(record.address)
            or HexBytes(tx["input"]) != HexBytes(bytecode) + arguments):
        raise ChainMismatch(f"transaction {record.tx_hash} did not create {record.address} from the published "
                            f"sources with governance {record.governance} and admin delay {record.admin_delay}")
    if record.deployer and to_checksum_address(tx["from"]) != to_checksum_address(record.deployer):
        raise ChainMismatch(f"transaction {record.tx_hash} was sent by {tx['from']}, not {record.deployer}")
