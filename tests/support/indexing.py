"""The indexer's tests on a world of their own anvil (the ``node_chain`` fixture of ``tests/ledger/conftest.py``): an
indexer of its ledger (three confirmations unless told), the chain's head, and blocks mined on demand."""

from __future__ import annotations

from typing import Any

from web3.types import RPCEndpoint

from ledger.index.sync import Indexer
from ledger.store.db import Store
from tests.support.world import World


def index(world: World, store: Store, **kwargs: Any) -> Indexer:
    kwargs.setdefault("confirmations", 3)
    return Indexer(world.chain, world.ledger.address, store, **kwargs)


def head(world: World) -> int:
    return int(world.chain.w3.eth.block_number)


def mine(world: World, blocks: int) -> None:
    world.chain.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(blocks)])
