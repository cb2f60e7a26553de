"""A second ledger for the read API tests, beside the demo city: every entry kind and every derived-state rule
(``tests.support.scenario.write_everything``: commitment versions, a retirement, a revoked key, corrections — one
voiding a case's opening —, an agency id that is not ASCII), on an anvil of its own, indexed with a confirmation
depth so that its newest entries are not final yet. Indexed into SQLite and into PostgreSQL, so the read API is
proven on both; and helpers to check a proof against the chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from psycopg import sql

from api.settings import ApiSettings
from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode
from ledger.encoding import ZERO32, entry_hash
from ledger.index.sync import Indexer
from ledger.records import EntryKind, short_code
from ledger.store.db import open_store
from tests.support.postgres import admin, schema_url
from tests.support.scenario import Scenario, write_everything
from tests.support.world import World, build_world

#: blocks below the head before an entry is final: the newest entries of the world stay unconfirmed
CONFIRMATIONS = 3


@dataclass
class EverythingChain:
    node: AnvilNode
    chain: Chain
    world: World
    scenario: Scenario


@contextmanager
def everything_chain() -> Iterator[EverythingChain]:
    node = AnvilNode().start()
    try:
        chain = Chain.connect(node.url)
        world = build_world(chain)
        scenario = write_everything(world)
        yield EverythingChain(node, chain, world, scenario)
    finally:
        node.stop()


@contextmanager
def store_url(kind: str, tmp_dir: Path) -> Iterator[str]:
    """A fresh, empty store: a SQLite file, or a throwaway PostgreSQL schema (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_dir / 'index.sqlite3'}"
        return
    name = f"civic_api_{uuid.uuid4().hex[:16]}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield schema_url(name)
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def sync(chain: Chain, address: str, url: str, confirmations: int = CONFIRMATIONS) -> None:
    store = open_store(url)
    try:
        Indexer(chain, address, store, confirmations=confirmations).sync()
    finally:
        store.close()


@dataclass
class Everything:
    """The ledger with every entry kind indexed into one store (the ``everything`` fixture of
    ``tests/api/conftest.py``), with a client of the API on it."""

    chain: EverythingChain
    client: TestClient
    store_url: str
    settings: ApiSettings

    def sync(self) -> None:
        sync(self.chain.chain, self.chain.world.ledger.address, self.store_url)


def settings_for(everything: EverythingChain, url: str, data_dir: Path, **changes: Any) -> ApiSettings:
    fields: dict[str, Any] = dict(
        store_url=url,
        rpc_url=everything.node.url,
        contract_address=everything.world.ledger.address,
        chain_id=everything.chain.chain_id,
        data_dir=data_dir,
    )
    fields.update(changes)
    return ApiSettings(**fields)


# --- proofs -----------------------------------------------------------------------------------------------------------


def code_bytes(code: str | None) -> bytes:
    """A code as the API shows it back to its bytes32 (``0x`` + 64 hex digits for one that is not ASCII; null, the
    agency of an entry of no agency, is the zero bytes32)."""
    if code is None:
        return ZERO32
    if code.startswith("0x") and len(code) == 66:
        return bytes.fromhex(code[2:])
    return short_code(code)


def assert_proof_on_chain(
    chain: Chain, contract: str | None, proof: dict[str, Any], agency_id: str | None = None
) -> None:
    """What anyone can do with a proof: fetch the receipt from a node and find the entry's event where it says."""
    w3 = chain.w3
    receipt = w3.eth.get_transaction_receipt(proof["tx_hash"])
    assert receipt["blockNumber"] == proof["block_number"]
    assert "0x" + bytes(receipt["blockHash"]).hex() == proof["block_hash"]
    assert w3.eth.get_block(proof["block_number"])["timestamp"] == proof["block_time"]
    [log] = [log for log in receipt["logs"] if log["logIndex"] == proof["log_index"]]
    assert log["address"] == contract
    # every entry event: topic 1 is the seq, topic 2 the agency id (both indexed); a batched record's log is its
    # batch's BatchAnchored, whose seq is the batch's first
    batch = proof.get("batch")
    assert int.from_bytes(bytes(log["topics"][1]), "big") == (batch["seq"] if batch else proof["seq"])
    if agency_id is not None:
        assert bytes(log["topics"][2]) == code_bytes(agency_id)


def recomputed_entry_hash(entry: dict[str, Any]) -> str:
    """The entry hash from the entry's own fields (docs/ledger-format.md)."""
    value = entry_hash(
        entry["seq"],
        EntryKind(entry["kind_code"]),
        code_bytes(entry["agency_id"]),
        entry["actor"],
        bytes.fromhex(entry["record_hash"][2:]),
    )
    return "0x" + value.hex()
