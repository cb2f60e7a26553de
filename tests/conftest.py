"""Shared fixtures: the same tests run against the in-process chain (eth-tester) and a real node (anvil); the contract
tests (``tests/contracts/``) run on a second node implementation too, Hardhat's node (:data:`HARDHAT_TESTS`).

Helpers and worlds live in ``tests/support/`` (its asserts are rewritten by pytest like a test module's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.chain.contract import Chain
from ledger.dev.hardhat_node import HardhatNode
from ledger.dev.node import AnvilNode

# before anything imports tests.support, so that its asserts are rewritten (as they were in the conftest and test
# modules the helpers came from)
pytest.register_assert_rewrite("tests.support")

from tests.support.world import BACKENDS, World, build_world  # noqa: E402


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    """One anvil on a free loopback port for the whole session, stopped at the end."""
    node = AnvilNode().start()
    yield node
    node.stop()


#: the tests that run on Hardhat's node as well: the contract tests. The ledger's tests that use the ``world`` fixture
#: stay on eth-tester and anvil (the whole matrix would add a third of their time to a ~25 min suite); the ledger's
#: flow on Hardhat's node — deploy, register, authorise, write, index, audit — is ``tests/ledger/test_deploy.py``.
HARDHAT_TESTS = ("tests/contracts/",)


@pytest.fixture(scope="session")
def hardhat_node() -> Iterator[HardhatNode]:
    """One Hardhat node on a free loopback port for the whole session, stopped at the end."""
    node = HardhatNode().start()
    yield node
    node.stop()


@pytest.fixture(scope="session", params=[*BACKENDS, "hardhat"])
def chain(request: pytest.FixtureRequest) -> Chain:
    if request.param == "anvil":
        return Chain.connect(request.getfixturevalue("anvil_node").url)
    if request.param == "hardhat":
        return Chain.connect(request.getfixturevalue("hardhat_node").url)
    return Chain.embedded_chain()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the ``chain`` fixture's Hardhat parameter only for :data:`HARDHAT_TESTS` (deselected elsewhere, and counted
    as deselected in the summary)."""
    root = config.rootpath
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        where = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else str(item.path)
        if params.get("chain") == "hardhat" and not where.startswith(HARDHAT_TESTS):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def _world(chain: Chain) -> World:
    return build_world(chain)


@pytest.fixture
def world(_world: World) -> Iterator[World]:
    """The shared world, rolled back after each test so tests never see each other's entries."""
    snapshot = _world.chain.snapshot()
    yield _world
    _world.chain.revert(snapshot)
