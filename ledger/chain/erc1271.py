"""Contract-wallet signers (ERC-1271): whether an address holds code, and whether the contract there accepts a
signature over a digest, asked of the node the way the ledger asks it on chain.

The ledger checks an agency key's signature with OpenZeppelin's ``SignatureChecker.isValidSignatureNow``: an address
without code must have signed with ECDSA; one with code is asked ``isValidSignature(digest, signature)`` and the
signature counts when the call succeeds and its first word is the magic value. :class:`ContractSigners` asks the same
question before a record is accepted for relaying, so the write API refuses what the contract would refuse. Every read
goes through the project's JSON-RPC client (:class:`~ledger.chain.rpc.JsonRpc`) with a short timeout and one retry; a
node that does not answer is :class:`~ledger.errors.NodeUnavailable`, never a refused signature.
"""

from __future__ import annotations

import re
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from ledger.chain.contract import Chain
from ledger.chain.rpc import JsonRpc, RetryPolicy, RpcError
from ledger.errors import NodeUnavailable

#: ERC-1271 §Specification: ``bytes4(keccak256("isValidSignature(bytes32,bytes)"))``, the selector of the call and
#: the value a wallet returns when it accepts the signature
MAGIC_VALUE = bytes.fromhex("1626ba7e")
#: seconds per JSON-RPC request of a check (one retry after a transient failure)
DEFAULT_TIMEOUT = 5.0
#: gas the check's ``eth_call`` may burn: ample for an M-of-N wallet checking a few ECDSA signatures (a few thousand gas
#: each), and a bound on what a wallet contract can make the node (and the relayer, once sent) spend on one signature
CHECK_GAS = 1_000_000
#: what a node says when the call itself failed (a revert, no gas left, a bad opcode): the wallet did not accept it.
#: Nodes word it differently: geth "out of gas", anvil "EVM error OutOfGas" (every halt of its EVM is an "EVM error")
_CALL_FAILED = re.compile(r"revert|out ?of ?gas|invalid ?opcode|stack ?(underflow|overflow)|invalid ?jump|evm error",
                          re.IGNORECASE)


class ContractSigners:
    """Asks the node `chain` is connected to about contract-wallet signers (it must be a JSON-RPC node over HTTP)."""

    def __init__(self, chain: Chain, *, timeout: float = DEFAULT_TIMEOUT, gas: int = CHECK_GAS) -> None:
        self._rpc = JsonRpc.for_chain(chain, timeout=timeout, policy=RetryPolicy(max_retries=1, backoff=0.1))
        self.gas = gas

    def is_contract(self, address: str) -> bool:
        """Whether `address` holds code now (``eth_getCode`` at the latest block is not empty)."""
        try:
            code = self._call("eth_getCode", [to_checksum_address(address), "latest"])
        except RpcError as exc:
            raise NodeUnavailable(f"the node could not say whether {address} holds code: {exc}") from exc
        return isinstance(code, str) and code not in ("0x", "0x0", "")

    def accepts(self, wallet: str, digest: bytes, signature: bytes) -> bool:
        """Whether the contract at `wallet` accepts `signature` over `digest`: ``isValidSignature`` succeeds within the
        gas bound and its first returned word is :data:`MAGIC_VALUE` (left-aligned), exactly OpenZeppelin's test. A
        call that reverts or fails is a refusal; a node that does not answer raises NodeUnavailable."""
        data = MAGIC_VALUE + abi_encode(["bytes32", "bytes"], [digest, signature])
        request = {"to": to_checksum_address(wallet), "data": "0x" + data.hex(), "gas": hex(self.gas)}
        try:
            result = self._call("eth_call", [request, "latest"])
        except RpcError as exc:
            if _CALL_FAILED.search(exc.message):
                return False
            raise NodeUnavailable(f"the node could not run isValidSignature on {wallet}: {exc}") from exc
        try:
            answer = bytes.fromhex(str(result).removeprefix("0x"))
        except ValueError as exc:
            raise NodeUnavailable(f"the node answered isValidSignature with {str(result)[:80]!r}, not hex") from exc
        return len(answer) >= 32 and answer[:32] == MAGIC_VALUE.ljust(32, b"\0")

    def _call(self, method: str, params: list[Any]) -> Any:
        rpc = self._rpc.clone()  # a session of its own: the API checks from many threads at once
        try:
            return rpc.call(method, params)
        finally:
            rpc.close()

    def close(self) -> None:
        self._rpc.close()


__all__ = ["CHECK_GAS", "DEFAULT_TIMEOUT", "MAGIC_VALUE", "ContractSigners"]
