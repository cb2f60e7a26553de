"""Safe's own contracts for the governance-by-multisig tests: the ``Safe`` singleton and a ``SafeProxy`` to it, from
the build npm ``@safe-global/safe-smart-account`` ships (pinned in package.json; used as published, not recompiled),
set up with M of N owner keys. Owners approve a transaction's hash on chain (``approveHash``, Safe's "approved hash"
signatures), and anyone executes it once enough have (``execTransaction``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from ledger.chain.contract import Chain
from ledger.chain.multisig import ZERO_ADDRESS
from tests.support.solidity import deploy, transact

ROOT = Path(__file__).resolve().parents[2]
SAFE_BUILD = ROOT / "node_modules" / "@safe-global" / "safe-smart-account" / "build" / "artifacts" / "contracts"
#: Safe's operation code for a plain call (``Enum.Operation.Call``; 1 is a delegatecall, never used here)
CALL = 0


@cache
def safe_artifact(path: str) -> dict[str, Any]:
    """ABI and creation bytecode of a Safe contract (`path` under the package's build, e.g. ``Safe.sol/Safe``)."""
    spec = json.loads((SAFE_BUILD / f"{path}.json").read_text())
    return {"abi": spec["abi"], "bytecode": spec["bytecode"]}


@dataclass
class SafeWallet:
    chain: Chain
    address: ChecksumAddress
    contract: Any

    def transaction_hash(self, to: str, value: int, data: bytes) -> bytes:
        """The hash the owners approve for a plain call with no refund, at the Safe's next nonce."""
        nonce = self.contract.functions.nonce().call()
        return bytes(self.contract.functions.getTransactionHash(
            to_checksum_address(to), value, data, CALL, 0, 0, 0, ZERO_ADDRESS, ZERO_ADDRESS, nonce
        ).call())

    def approve(self, owner: LocalAccount, to: str, value: int, data: bytes) -> None:
        """`owner` approves the call on chain (``approveHash``)."""
        transact(self.chain, owner, self.contract.functions.approveHash(self.transaction_hash(to, value, data)))

    def execute_call(self, executor: LocalAccount, to: str, value: int, data: bytes,
                     approvers: list[LocalAccount]) -> Any:
        """The ``execTransaction`` call carrying `approvers`' approved-hash signatures (r = the owner, s = 0, v = 1;
        in ascending order of owner, as Safe requires); `executor` sends it with :func:`transact`."""
        signatures = b"".join(
            bytes.fromhex(owner[2:]).rjust(32, b"\0") + b"\0" * 32 + b"\x01"
            for owner in sorted((a.address for a in approvers), key=lambda a: int(a, 16))
        )
        return self.contract.functions.execTransaction(
            to_checksum_address(to), value, data, CALL, 0, 0, 0, ZERO_ADDRESS, ZERO_ADDRESS, signatures
        )


def deploy_safe(chain: Chain, deployer: LocalAccount, owners: list[str], threshold: int) -> SafeWallet:
    """A Safe proxy to a fresh singleton, set up with `owners` and `threshold` (no modules, no fallback handler)."""
    singleton = deploy(chain, deployer, safe_artifact("Safe.sol/Safe"))
    proxy = deploy(chain, deployer, safe_artifact("proxies/SafeProxy.sol/SafeProxy"), singleton)
    contract = chain.w3.eth.contract(address=proxy, abi=safe_artifact("Safe.sol/Safe")["abi"])
    transact(chain, deployer, contract.functions.setup(
        owners, threshold, ZERO_ADDRESS, b"", ZERO_ADDRESS, ZERO_ADDRESS, 0, ZERO_ADDRESS
    ))
    return SafeWallet(chain, proxy, contract)
