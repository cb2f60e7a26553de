"""Fixtures of the ledger's tests: throwaway PostgreSQL schemas and SQLite files and stores on them, an anvil of their
own, the writer's outbox and writer, the relay's directory, and the pool anvil of the relay's fairness tests. The chain
scenario with every entry kind is ``tests/support/scenario.py`` (:func:`~tests.support.scenario.write_everything`).

PostgreSQL runs at 127.0.0.1:5432 (trust auth, user postgres, database test; ``CIVIC_TEST_PG`` overrides it:
``tests/support/postgres.py``). Each "database" made here is a uniquely named schema of that database (much faster to
create and drop than a database), reached through a URL whose ``search_path`` is that schema only; it is dropped
afterwards. There is no skip: without PostgreSQL these tests fail, because "works on PostgreSQL" is one of the things
they prove.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from psycopg import sql

from ledger.chain.contract import Chain
from ledger.dev.node import AnvilNode
from ledger.store.db import Store, open_store
from ledger.writer.outbox import Outbox
from ledger.writer.sender import Writer
from tests.support.pool import Pool
from tests.support.postgres import admin, schema_url
from tests.support.world import World, build_world


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """Make fresh, uniquely named PostgreSQL schemas; returns SQLAlchemy URLs that see only them. All dropped at
    teardown."""
    made: list[str] = []

    def make() -> str:
        name = f"civic_test_{uuid.uuid4().hex[:16]}"
        with admin() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        made.append(name)
        return schema_url(name)

    yield make
    with admin() as conn:
        for name in made:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_database: Callable[[], str]) -> str:
    return pg_database()


@pytest.fixture
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """Make fresh SQLite file URLs under a temporary directory."""

    def make() -> str:
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'index.sqlite3'}"

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """One fresh store URL of each kind."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")()
    return request.getfixturevalue("pg_database")()


@pytest.fixture(scope="module")
def own_anvil() -> Iterator[AnvilNode]:
    """An anvil for one test module alone: the indexer tests rewrite its history (reorgs), which must not disturb
    the shared node other tests snapshot and revert. Its development accounts hold a million ether each (anvil's
    default is 10,000): every world a test builds funds its accounts from the first one (``Chain.fund``, 100 ether
    each), and a module of many tests ran it dry."""
    node = AnvilNode(extra_args=["--balance", "1000000"]).start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def node_chain(own_anvil: AnvilNode) -> Chain:
    return Chain.connect(own_anvil.url)


@pytest.fixture
def two_agency_world(node_chain: Chain) -> World:
    """A fresh ledger on the module's own anvil whose other agency (SH-WATER) has a commitment too: one agency to
    misbehave, the other to show it is unharmed."""
    built = build_world(node_chain)
    built.ledger.write(built.other_signer, built.commitment())
    return built


@pytest.fixture
def stores(sqlite_url: Callable[[], str]) -> Iterator[Callable[..., Store]]:
    """Open stores (a fresh SQLite file each, or the URL given), all closed at teardown."""
    opened: list[Store] = []

    def make(url: str | None = None) -> Store:
        store = open_store(url or sqlite_url())
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# ------------------------------------------------------------------------------------------- the writer and relay


@pytest.fixture
def outbox(tmp_path: Path):
    """The writer's outbox in a temporary directory (``test_outbox.py`` has one of its own, in the default mode)."""
    with Outbox(tmp_path / "outbox.db", synchronous="NORMAL") as box:
        yield box


@pytest.fixture
def writer(world: World, outbox: Outbox):
    with Writer(world.ledger, world.signer, outbox, batch_size=5, retry_backoff=0.01) as w:
        yield w


@pytest.fixture
def relay_dir(tmp_path: Path) -> Path:
    return tmp_path / "relay"


@pytest.fixture(scope="module")
def _pool_world() -> Iterator[Pool]:
    node = AnvilNode().start()
    try:
        chain = Chain.connect(node.url)
        world = build_world(chain)
        yield Pool(world, chain.new_account())
    finally:
        node.stop()


@pytest.fixture
def pool(_pool_world: Pool) -> Iterator[Pool]:
    snapshot = _pool_world.chain.snapshot()
    try:
        yield _pool_world
    finally:
        w3 = _pool_world.chain.w3
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("evm_setBlockGasLimit", [hex(30_000_000)])
        _pool_world.chain.revert(snapshot)
