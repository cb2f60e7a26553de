"""A small demo city on a real anvil, indexed into SQLite, shared by the API tests (session-scoped: built once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
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


@pytest.fixture(scope="session")
def indexed_city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexedCity]:
    data_dir = tmp_path_factory.mktemp("api-data")
    city = demo.generate_city(end=int(time.time()) - 120, days=21, cases=400, seed=4)
    node = AnvilNode(extra_args=["--timestamp", str(city.start - 3600)]).start()
    try:
        chain = Chain.connect(node.url)
        keys = KeyStore(data_dir / "keys")
        governance = keys.get_or_create("governance")
        chain.fund(governance.address)
        signers = {}
        for agency in demo.AGENCIES:
            signers[agency.agency_id] = keys.get_or_create(f"agency-{agency.agency_id}")
            chain.fund(signers[agency.agency_id].address)
        ledger = Ledger.deploy(chain, governance)
        demo.load_city(chain, ledger, governance, signers, city)
        store_url = f"sqlite:///{data_dir / 'index.sqlite'}"
        indexed = IndexedCity(node, chain, ledger, governance, signers, city, store_url, data_dir)
        indexed.sync()
        yield indexed
    finally:
        node.stop()


@pytest.fixture(scope="session")
def api_settings(indexed_city: IndexedCity) -> ApiSettings:
    return ApiSettings(
        store_url=indexed_city.store_url,
        rpc_url=indexed_city.node.url,
        contract_address=indexed_city.ledger.address,
        chain_id=indexed_city.chain.chain_id,
        data_dir=indexed_city.data_dir,
    )


@pytest.fixture
def client(api_settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client
