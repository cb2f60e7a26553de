"""Test-only Solidity (``tests/contracts/fixtures/*.sol``), compiled in the tests with the project's pipeline: the
pinned compiler and settings of ``contracts/compiler.json`` through ``ledger.chain.build`` (py-solc-x driving
``scripts/solc-js``), the library sources it imports resolved as the build resolves them. Never written to
``ledger/artifacts``: nothing here is shipped. And the deployment of a compiled contract, signed by a local key."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress

from ledger.chain.build import collect_sources, compiler_config, solc_binary
from ledger.chain.contract import Chain
from ledger.errors import BuildError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "contracts" / "fixtures"
#: what a fixture imports: ``import {A, B} from "@openzeppelin/…";`` (fixtures import packages only, never each other)
_IMPORT = re.compile(r'^\s*import\s+\{[^}]*\}\s+from\s+"(@[^"]+)"\s*;', re.MULTILINE)


@cache
def compile_fixture(name: str) -> dict[str, Any]:
    """ABI and creation bytecode of contract `name` in ``tests/contracts/fixtures/<name>.sol`` (compiled once per
    test session)."""
    import solcx

    unit = f"tests/contracts/fixtures/{name}.sol"
    text = (ROOT / unit).read_text()
    sources = {unit: text, **collect_sources(_IMPORT.findall(text))}
    settings = dict(compiler_config()["settings"])
    settings["outputSelection"] = {unit: {name: ["abi", "evm.bytecode.object"]}}
    standard = {"language": "Solidity", "sources": {u: {"content": t} for u, t in sources.items()},
                "settings": settings}
    output = solcx.compile_standard(standard, solc_binary=solc_binary())
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("\n".join(e["formattedMessage"] for e in errors))
    compiled = output["contracts"][unit][name]
    return {"abi": compiled["abi"], "bytecode": "0x" + compiled["evm"]["bytecode"]["object"]}


def transact(chain: Chain, sender: LocalAccount, call: Any) -> Any:
    """Sign `call` (a web3 contract call or constructor) with `sender`, send it, and return its receipt; a revert
    raises web3's error from the gas estimate, before anything is sent."""
    w3 = chain.w3
    tx = call.build_transaction({"from": sender.address, "chainId": chain.chain_id,
                                 "nonce": w3.eth.get_transaction_count(sender.address, "pending")})
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    )
    assert receipt["status"] == 1, receipt
    return receipt


def deploy(chain: Chain, sender: LocalAccount, spec: dict[str, Any], *args: Any) -> ChecksumAddress:
    """Deploy a compiled contract (``abi`` and ``bytecode``) with constructor `args`; its address."""
    factory = chain.w3.eth.contract(abi=spec["abi"], bytecode=spec["bytecode"])
    address = transact(chain, sender, factory.constructor(*args))["contractAddress"]
    assert address is not None
    return address
