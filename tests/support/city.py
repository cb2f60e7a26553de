"""The demo city of the API tests: a small city on a real anvil, indexed into SQLite (built once a session by the
``indexed_city`` fixture of ``tests/api/conftest.py``), and counting rows of its store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from ledger.chain.contract import Chain, Ledger
from ledger.dev import demo
from ledger.dev.node import AnvilNode
from ledger.index.sync import Indexer
from ledger.store.db import open_store


@dataclass
class IndexedCity:
    node: AnvilNode
    chain: Chain
    ledger: Ledger
    governance: LocalAccount
    #: agency code -> its signer key
    signers: dict[str, LocalAccount]
    city: demo.DemoCity
    store_url: str
    data_dir: Path

    def sync(self) -> None:
        """Index whatever was written since (tests that write call this before reading)."""
        store = open_store(self.store_url)
        try:
            Indexer(self.chain, self.ledger.address, store, confirmations=0).sync()
        finally:
            store.close()


def count(store: Any, table: Any, *where: Any) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
