"""Governance calls made by a multisig: the call (target, value, calldata, the function and its decoded arguments)
encoded from the shipped ABI, the multisig's view of it (a Safe's nonce and transaction hash), and the batch file
Safe{Wallet}'s Transaction Builder imports, so that an oversight body's officers approve each agency registration and
key change in their Safe instead of one keystore key sending it.

The batch file follows the Transaction Builder's own typings, ``BatchFile`` / ``BatchFileMeta`` /
``BatchTransaction`` / ``ContractMethod`` in ``apps/tx-builder/src/typings/models.ts`` of
``safe-global/safe-react-apps``: ``{version: "1.0", chainId (a decimal string), createdAt (ms), meta: {name,
description, createdFromSafeAddress, createdFromOwnerAddress, checksum}, transactions: [{to, value (decimal string),
data, contractMethod: {inputs, name, payable}, contractInputsValues: {name: string}}]}``. Its ``meta.checksum`` is
what the builder's ``lib/checksum.ts`` checks on import (:func:`batch_checksum`). These were read from the published
sources through the project's search tool, not run against Safe{Wallet} here (no network): the tests check the shape
and the checksum against those definitions, and execute the calldata through Safe's own contracts (npm
``@safe-global/safe-smart-account``, pinned) on a local chain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak
from eth_typing import ChecksumAddress
from eth_utils import is_hex_address, to_checksum_address
from web3.exceptions import BadFunctionCallOutput
from web3.types import TxParams

from ledger.chain.contract import NODE_ERRORS, REVERT_ERRORS, Ledger
from ledger.encoding import code_text
from ledger.errors import LedgerError, NodeUnavailable

#: the ledger's functions governance calls (``onlyRole(GOVERNOR_ROLE)`` in contracts/CivicLedger.sol)
GOVERNANCE_FUNCTIONS = frozenset(
    {"registerAgency", "authorizeSigner", "revokeSigner", "authorizeAuditor", "revokeAuditor"}
)
#: ``BatchFile.version`` the Transaction Builder writes and reads
BATCH_VERSION = "1.0"

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

# The few functions of a Safe (v1.3 and later: ``Safe.sol``, ``OwnerManager.sol``) read here: its next nonce, its
# owners and threshold, and the hash its owners approve for a transaction (Safe computes it, nothing here does).
_SAFE_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "nonce", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint256", "internalType": "uint256"}]},
    {"type": "function", "name": "getThreshold", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint256", "internalType": "uint256"}]},
    {"type": "function", "name": "getOwners", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "address[]", "internalType": "address[]"}]},
    {"type": "function", "name": "getTransactionHash", "stateMutability": "view",
     "inputs": [{"name": n, "type": t, "internalType": t} for n, t in (
         ("to", "address"), ("value", "uint256"), ("data", "bytes"), ("operation", "uint8"),
         ("safeTxGas", "uint256"), ("baseGas", "uint256"), ("gasPrice", "uint256"), ("gasToken", "address"),
         ("refundReceiver", "address"), ("_nonce", "uint256"))],
     "outputs": [{"name": "", "type": "bytes32", "internalType": "bytes32"}]},
]


@dataclass(frozen=True)
class MultisigCall:
    """One governance call for a multisig to make: what it sends, and what that means."""

    target: ChecksumAddress
    #: wei sent with the call (governance calls send none)
    value: int
    calldata: bytes
    #: the function's name and its canonical signature, e.g. ``authorizeSigner(bytes32,address)``
    function: str
    signature: str
    #: the function's ABI inputs (name, type, internalType), in order
    inputs: tuple[Mapping[str, Any], ...]
    #: the arguments decoded back from `calldata` (not the ones it was built from), by input name
    arguments: Mapping[str, Any]

    def argument_text(self) -> dict[str, str]:
        """Each argument as a string, as the Transaction Builder's ``contractInputsValues`` carries it: 0x-hex for
        bytes, checksummed addresses, decimal numbers, strings as they are."""
        return {str(item["name"]): _text(self.arguments[item["name"]]) for item in self.inputs}

    def readable_arguments(self) -> dict[str, str]:
        """:meth:`argument_text` with each bytes32 code also as its text (``0x5348…`` (``SH-ROADS``)), for people."""
        shown = self.argument_text()
        for item in self.inputs:
            value = self.arguments[item["name"]]
            if item["type"] == "bytes32" and not code_text(value).startswith("0x"):
                shown[item["name"]] += f" ({code_text(value)})"
        return shown


@dataclass(frozen=True)
class SafeTransaction:
    """How a Safe sees a call it is to make: its next nonce, its owners and threshold, and the hash its owners
    approve (``getTransactionHash`` of the call with no refund, at that nonce: what each officer's wallet shows)."""

    safe: ChecksumAddress
    nonce: int
    threshold: int
    owners: tuple[ChecksumAddress, ...]
    safe_tx_hash: bytes


def governance_call(ledger: Ledger, function: str, *args: Any) -> MultisigCall:
    """The call of governance function `function` with `args` on `ledger`, its calldata encoded by web3 from the
    shipped ABI (as :class:`~ledger.chain.contract.Ledger` encodes every call) and decoded back for display."""
    if function not in GOVERNANCE_FUNCTIONS:
        raise ValueError(f"{function} is not a governance function; one of {', '.join(sorted(GOVERNANCE_FUNCTIONS))}")
    calldata = bytes.fromhex(ledger.contract.encode_abi(function, list(args))[2:])
    decoded, arguments = ledger.contract.decode_function_input(calldata)
    abi = decoded.abi
    return MultisigCall(
        target=ledger.address,
        value=0,
        calldata=calldata,
        function=function,
        signature=decoded.signature,
        inputs=tuple(dict(item) for item in abi["inputs"]),
        arguments=dict(arguments),
    )


def check_call_from(ledger: Ledger, call: MultisigCall, sender: str) -> None:
    """Run `call` as `sender` would send it (``eth_call``, nothing sent); the ledger's refusal (the sender lacks the
    governance role, the agency is already registered, …) raises :class:`ContractReverted` naming its custom error."""
    request: TxParams = {"from": to_checksum_address(sender), "to": call.target, "data": call.calldata,
                         "value": call.value}  # type: ignore[typeddict-item]  # web3 takes raw bytes as data
    try:
        ledger.w3.eth.call(request)
    except REVERT_ERRORS as exc:
        raise ledger.decode_revert(exc) from exc
    except NODE_ERRORS as exc:
        raise NodeUnavailable(f"the node did not answer eth_call: {exc}") from exc


def safe_transaction(ledger: Ledger, safe: str, call: MultisigCall) -> SafeTransaction:
    """Ask the Safe at `safe` for its nonce, owners, threshold and the hash of `call` (a plain call, no refund)."""
    if not is_hex_address(safe):
        raise ValueError(f"{safe!r} is not an address")
    address = to_checksum_address(safe)
    contract = ledger.w3.eth.contract(address=address, abi=_SAFE_ABI)
    try:
        if not bytes(ledger.w3.eth.get_code(address)):
            raise LedgerError(f"no contract at {address} on chain {ledger.chain.chain_id}: not a Safe")
        functions = contract.functions
        nonce = int(functions.nonce().call())
        threshold = int(functions.getThreshold().call())
        owners = tuple(to_checksum_address(o) for o in functions.getOwners().call())
        safe_tx_hash = bytes(functions.getTransactionHash(
            call.target, call.value, call.calldata, 0, 0, 0, 0, ZERO_ADDRESS, ZERO_ADDRESS, nonce
        ).call())
    except BadFunctionCallOutput as exc:  # an empty or undecodable answer: no such function
        raise _not_a_safe(address, exc) from exc
    except REVERT_ERRORS as exc:
        raise _not_a_safe(address, exc) from exc
    except NODE_ERRORS as exc:
        raise NodeUnavailable(f"the node did not answer about the Safe at {address}: {exc}") from exc
    return SafeTransaction(address, nonce, threshold, owners, safe_tx_hash)


def _not_a_safe(address: str, exc: Exception) -> LedgerError:
    return LedgerError(f"the contract at {address} does not answer as a Safe (nonce, owners, getTransactionHash): "
                       f"{exc}")


def transaction_builder_batch(
    calls: Sequence[MultisigCall],
    chain_id: int,
    *,
    safe: str | None = None,
    name: str = "Civic Ledger governance",
    description: str = "",
    created_at_ms: int | None = None,
) -> dict[str, Any]:
    """The batch file Safe{Wallet}'s Transaction Builder imports (see the module's docstring for the format): one
    transaction per call, each with its raw calldata and its decoded method and arguments, and the checksum."""
    batch: dict[str, Any] = {
        "version": BATCH_VERSION,
        "chainId": str(chain_id),
        "createdAt": int(time.time() * 1000) if created_at_ms is None else created_at_ms,
        "meta": {
            "name": name,
            "description": description,
            "createdFromSafeAddress": to_checksum_address(safe) if safe else "",
            "createdFromOwnerAddress": "",
        },
        "transactions": [
            {
                "to": call.target,
                "value": str(call.value),
                "data": "0x" + call.calldata.hex(),
                "contractMethod": {
                    "inputs": [
                        {"internalType": str(i.get("internalType", i["type"])), "name": i["name"], "type": i["type"]}
                        for i in call.inputs
                    ],
                    "name": call.function,
                    "payable": False,
                },
                "contractInputsValues": call.argument_text(),
            }
            for call in calls
        ],
    }
    batch["meta"]["checksum"] = batch_checksum(batch)
    return batch


def batch_checksum(batch: Mapping[str, Any]) -> str:
    """``meta.checksum`` of a Transaction Builder batch file, as the builder's ``lib/checksum.ts`` computes it on
    import: keccak256 of the file without its checksum and with ``meta.name`` null (a batch may be renamed), serialised
    with an object as the JSON array of its sorted keys then each value followed by a comma, between braces; an
    array's items joined by commas; anything else as JSON (undefined as null)."""
    meta = {k: v for k, v in batch["meta"].items() if k != "checksum"}
    meta["name"] = None
    return "0x" + keccak(_checksum_text({**batch, "meta": meta}).encode("utf-8")).hex()


def _checksum_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(_checksum_text(item) for item in value) + "]"
    if isinstance(value, Mapping):
        keys = sorted(value)
        return "{" + _json(keys) + "".join(_checksum_text(value[k]) + "," for k in keys) + "}"
    return _json(value)


def _json(value: Any) -> str:
    """JSON as JavaScript's JSON.stringify writes it: compact, non-ASCII characters as they are."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps([_text(v) for v in value])
    return str(value)


__all__ = [
    "GOVERNANCE_FUNCTIONS",
    "MultisigCall",
    "SafeTransaction",
    "batch_checksum",
    "check_call_from",
    "governance_call",
    "safe_transaction",
    "transaction_builder_batch",
]
