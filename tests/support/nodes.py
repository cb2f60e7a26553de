"""The node-specific development methods tests use, by node: anvil's ``anvil_*`` and Hardhat's node's ``hardhat_*``
(``ledger.dev.hardhat_node``) do the same things under different names; eth-tester has its own API."""

from __future__ import annotations

from typing import Any, cast

from web3.types import RPCEndpoint

from ledger.chain.contract import Chain


def is_hardhat(chain: Chain) -> bool:
    return not chain.embedded and "hardhat" in str(chain.w3.client_version).lower()


def node_method(chain: Chain, name: str) -> RPCEndpoint:
    """``anvil_<name>`` on anvil, ``hardhat_<name>`` on Hardhat's node (``mine``, ``setCode``, ``setBalance``…)."""
    return RPCEndpoint(f"{'hardhat' if is_hardhat(chain) else 'anvil'}_{name}")


def mine(chain: Chain, blocks: int = 1) -> None:
    """Mine `blocks` empty blocks."""
    if chain.embedded:
        cast(Any, chain.w3).testing.mine(blocks)  # web3's testing module, untyped
        return
    answer = chain.w3.provider.make_request(node_method(chain, "mine"), [hex(blocks)])
    if "error" in answer:
        raise RuntimeError(f"the node refused to mine: {answer['error']}")


def set_code(chain: Chain, address: str, code: bytes) -> None:
    """Put `code` at `address` (a node's development method; eth-tester has none)."""
    answer = chain.w3.provider.make_request(node_method(chain, "setCode"), [address, "0x" + code.hex()])
    if "error" in answer:
        raise RuntimeError(f"the node refused to set code: {answer['error']}")
