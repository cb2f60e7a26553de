"""Governance by multisig, on anvil: the ledger deployed with Safe's own contracts (2 of 3 officers) holding the
governance role; ``civic-ledger agency register|authorize … --print-for-multisig`` prints each call (target, value,
calldata, decoded arguments, a Safe Transaction Builder batch file) without sending anything, and the Safe executes it
once two officers approved — one officer alone cannot. Also the batch file's format and checksum
(``ledger.chain.multisig``), and the printing refusing what the ledger would refuse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner
from web3.exceptions import ContractLogicError

from ledger.chain.contract import Chain, Ledger, artifact
from ledger.chain.multisig import (
    GOVERNANCE_FUNCTIONS,
    batch_checksum,
    governance_call,
    transaction_builder_batch,
)
from ledger.cli import app
from ledger.dev.node import AnvilNode
from ledger.records import EntryKind, short_code
from tests.support.safe import SafeWallet, deploy_safe
from tests.support.solidity import deploy, transact

runner = CliRunner()


@dataclass
class Governed:
    """A ledger whose governance is a 2-of-3 Safe (and a second Safe that holds no role)."""

    url: str
    data: Path
    chain: Chain
    ledger: Ledger
    safe: SafeWallet
    stranger_safe: SafeWallet
    officers: list[LocalAccount]
    #: sends the executions: any funded key may, the officers' approvals are what counts
    clerk: LocalAccount

    def cli(self, *args: str, code: int = 0):
        result = runner.invoke(app, ["--rpc-url", self.url, "--contract", self.ledger.address,
                                     "--data-dir", str(self.data), *args])
        assert result.exit_code == code, result.output
        return result

    def execute(self, transaction: dict, approvers: list[LocalAccount]) -> dict:
        """Officers in `approvers` approve the batch's transaction on chain; the clerk executes it."""
        data = bytes.fromhex(transaction["data"][2:])
        for officer in approvers:
            self.safe.approve(officer, transaction["to"], int(transaction["value"]), data)
        call = self.safe.execute_call(self.clerk, transaction["to"], int(transaction["value"]), data, approvers)
        return transact(self.chain, self.clerk, call)


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Governed]:
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        deployer, clerk = chain.new_account(), chain.new_account()
        officers = [chain.new_account() for _ in range(3)]
        safe = deploy_safe(chain, deployer, [o.address for o in officers], 2)
        stranger_safe = deploy_safe(chain, deployer, [o.address for o in officers], 2)
        # The ledger's constructor takes its first admin (and governor): the Safe, never the deploying key.
        address = deploy(chain, deployer, artifact(), 0, safe.address)
        ledger = Ledger(chain, address)
        yield Governed(node.url, tmp_path_factory.mktemp("multisig"), chain, ledger, safe, stranger_safe, officers,
                       clerk)


def printed_batch(governed: Governed, *args: str, safe: str | None = None) -> tuple[dict, str]:
    """The batch file a ``--print-for-multisig --out`` command wrote, and its summary."""
    out = governed.data / "batch.json"
    options = ["--print-for-multisig", "--out", str(out)] + (["--safe", safe] if safe else [])
    result = governed.cli(*args, *options)
    return json.loads(out.read_text(encoding="utf-8")), result.stdout


def test_registration_and_key_change_run_through_the_safe_with_two_of_three(governed: Governed):
    ledger, safe = governed.ledger, governed.safe
    start = ledger.entry_count()
    batch, summary = printed_batch(
        governed, "agency", "register", "SH-ROADS", "--jurisdiction", "CN-SH", "--name-zh", "路政局",
        "--name-en", "Roads [Office]", safe=safe.address,
    )
    assert ledger.entry_count() == start  # printing sends nothing
    assert batch["version"] == "1.0" and batch["chainId"] == str(governed.chain.chain_id)
    assert batch["meta"]["createdFromSafeAddress"] == safe.address
    assert batch["meta"]["checksum"] == batch_checksum(batch)
    (transaction,) = batch["transactions"]
    assert transaction["to"] == ledger.address and transaction["value"] == "0"
    assert transaction["contractMethod"]["name"] == "registerAgency"
    assert [i["name"] for i in transaction["contractMethod"]["inputs"]] == ["agencyId", "jurisdiction", "nameZh",
                                                                              "nameEn"]
    assert transaction["contractInputsValues"] == {
        "agencyId": "0x" + short_code("SH-ROADS").hex(), "jurisdiction": "0x" + short_code("CN-SH").hex(),
        "nameZh": "路政局", "nameEn": "Roads [Office]",
    }
    data = bytes.fromhex(transaction["data"][2:])
    # what an officer compares: the calldata, the decoded arguments, and the Safe's own hash of the transaction
    assert transaction["data"] in summary and "registerAgency(bytes32,bytes32,string,string)" in summary
    assert "(SH-ROADS)" in summary and "Roads [Office]" in summary and "2 of 3 owners" in summary
    assert "0x" + safe.transaction_hash(ledger.address, 0, data).hex() in summary

    governed.execute(transaction, governed.officers[:2])
    registered = ledger.entries(from_block=0)[-1]
    assert registered.kind is EntryKind.AGENCY_REGISTERED and registered.actor == safe.address
    assert registered.record.name_zh == "路政局"  # type: ignore[union-attr]

    signer = Account.create().address
    result = governed.cli("agency", "authorize", "SH-ROADS", signer, "--print-for-multisig")  # JSON on stdout
    batch = json.loads(result.stdout)
    assert "authorizeSigner(bytes32,address)" in result.stderr and batch["meta"]["createdFromSafeAddress"] == ""
    governed.execute(batch["transactions"][0], [governed.officers[2], governed.officers[0]])
    assert ledger.agency_of(signer) == short_code("SH-ROADS")
    authorised = ledger.entries(from_block=0)[-1]
    assert authorised.kind is EntryKind.SIGNER_AUTHORIZED and authorised.actor == safe.address

    batch, _ = printed_batch(governed, "agency", "revoke", signer.lower(), safe=safe.address)
    assert batch["transactions"][0]["contractInputsValues"] == {"signer": signer}
    governed.execute(batch["transactions"][0], governed.officers[1:])
    assert not any(ledger.agency_of(signer))


def test_one_officer_of_three_cannot_register_an_agency(governed: Governed):
    ledger, safe = governed.ledger, governed.safe
    batch, _ = printed_batch(governed, "agency", "register", "SH-LONE", "--jurisdiction", "CN-SH", "--name-zh", "独",
                             "--name-en", "Lone", safe=safe.address)
    transaction = batch["transactions"][0]
    data = bytes.fromhex(transaction["data"][2:])
    lone, unwilling = governed.officers[0], governed.officers[2]
    safe.approve(lone, transaction["to"], 0, data)
    count, nonce = ledger.entry_count(), safe.contract.functions.nonce().call()
    # one approval where two are needed (Safe: GS020, signatures too short) …
    with pytest.raises(ContractLogicError, match="GS020"):
        transact(governed.chain, governed.clerk, safe.execute_call(governed.clerk, ledger.address, 0, data, [lone]))
    # … and a second officer named who never approved (GS025): the lone officer cannot speak for another
    with pytest.raises(ContractLogicError, match="GS025"):
        call = safe.execute_call(governed.clerk, ledger.address, 0, data, [lone, unwilling])
        transact(governed.chain, governed.clerk, call)
    # and the officer cannot call the ledger directly: governance is the Safe, not any officer's key
    with pytest.raises(ContractLogicError):
        transact(governed.chain, lone, ledger.contract.functions.registerAgency(
            short_code("SH-LONE"), short_code("CN-SH"), "独", "Lone"))
    assert ledger.entry_count() == count and safe.contract.functions.nonce().call() == nonce
    assert not ledger.call_view("agency", short_code("SH-LONE"))[0]


def test_printing_refuses_what_the_ledger_would_refuse_from_the_safe(governed: Governed):
    ledger = governed.ledger
    count = ledger.entry_count()
    # a Safe that does not hold the governance role: the ledger would refuse the call, so nothing is printed
    out = governed.data / "refused.json"
    result = governed.cli("agency", "register", "SH-OTHER", "--jurisdiction", "CN-SH", "--name-zh", "他",
                          "--name-en", "Other", "--print-for-multisig", "--safe", governed.stranger_safe.address,
                          "--out", str(out), code=1)
    assert "AccessControlUnauthorizedAccount" in result.output and not out.exists()
    # an agency key for an agency that does not exist
    result = governed.cli("agency", "authorize", "SH-NONE", Account.create().address, "--print-for-multisig",
                          "--safe", governed.safe.address, code=1)
    assert "UnknownAgency" in result.output
    # an address that is no Safe at all
    result = governed.cli("auditor", "authorize", Account.create().address, "--print-for-multisig", "--safe",
                          governed.clerk.address, code=2)
    assert "not a Safe" in " ".join(result.output.split())
    # a contract that is no Safe (the ledger itself)
    result = governed.cli("auditor", "authorize", Account.create().address, "--print-for-multisig", "--safe",
                          ledger.address, code=2)
    assert "does not answer as a Safe" in " ".join(result.output.split())
    assert ledger.entry_count() == count


def test_safe_and_out_without_print_for_multisig_are_refused_not_sent(governed: Governed):
    count = governed.ledger.entry_count()
    result = governed.cli("auditor", "revoke", Account.create().address, "--safe", governed.safe.address, code=2)
    assert "--print-for-multisig" in result.output
    result = governed.cli("agency", "revoke", "0x1234", "--print-for-multisig", code=2)
    assert "is not an address" in result.output
    assert governed.ledger.entry_count() == count


def test_every_governance_function_is_printable_and_nothing_else(governed: Governed):
    auditor = Account.create().address
    for function, args in (("authorizeAuditor", (auditor,)), ("revokeAuditor", (auditor,))):
        call = governance_call(governed.ledger, function, *args)
        assert call.signature == f"{function}(address)" and call.arguments == {"auditor": auditor}
        assert call.calldata == bytes.fromhex(governed.ledger.contract.encode_abi(function, [auditor])[2:])
    assert {"registerAgency", "authorizeSigner", "revokeSigner"} < GOVERNANCE_FUNCTIONS
    with pytest.raises(ValueError, match="not a governance function"):
        governance_call(governed.ledger, "recordCaseEvent", ())


def test_batch_checksum_is_the_transaction_builders():
    # A batch file Safe{Wallet}'s Transaction Builder 1.16.3 exported (public: BalancerMaxis/multisig-ops,
    # BIPs/2024-W16/BIP-518-5.json), with the checksum the builder computed for it.
    exported = {
        "version": "1.0", "chainId": "1", "createdAt": 1703107040104,
        "meta": {"name": "Transactions Batch", "description": "", "txBuilderVersion": "1.16.3",
                 "createdFromSafeAddress": "0x10A19e7eE7d7F8a52822f6817de8ea18204F2e4f",
                 "createdFromOwnerAddress": "",
                 "checksum": "0x1f440bb1b31ed23dce797e5957ac2a5749add1074f8540f0ff0a158e4b248003"},
        "transactions": [{
            "to": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "value": "0", "data": None,
            "contractMethod": {"inputs": [{"name": "to", "type": "address", "internalType": "address"},
                                          {"name": "value", "type": "uint256", "internalType": "uint256"}],
                               "name": "transfer", "payable": False},
            "contractInputsValues": {"to": "0x811912c19eEF91b9Dc3cA52fc426590cFB84FC86", "value": "29000000000"},
        }],
    }
    assert batch_checksum(exported) == exported["meta"]["checksum"]
    renamed = {**exported, "meta": {**exported["meta"], "name": "Another name"}}
    assert batch_checksum(renamed) == exported["meta"]["checksum"]  # the builder leaves the name out
    changed = json.loads(json.dumps(exported))
    changed["transactions"][0]["contractInputsValues"]["value"] = "29000000001"
    assert batch_checksum(changed) != exported["meta"]["checksum"]


def test_a_batch_names_its_chain_and_safe_and_checks_out(governed: Governed):
    auditor = Account.create().address
    call = governance_call(governed.ledger, "authorizeAuditor", auditor)
    batch = transaction_builder_batch([call, call], 31337, safe=governed.safe.address.lower(), created_at_ms=5)
    assert batch["chainId"] == "31337" and batch["createdAt"] == 5
    assert batch["meta"]["createdFromSafeAddress"] == governed.safe.address  # checksummed
    assert len(batch["transactions"]) == 2 and batch["meta"]["checksum"] == batch_checksum(batch)
    assert batch["transactions"][0]["contractMethod"] == {
        "inputs": [{"internalType": "address", "name": "auditor", "type": "address"}],
        "name": "authorizeAuditor", "payable": False,
    }
