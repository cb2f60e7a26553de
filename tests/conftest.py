"""Shared fixtures: the same tests run against the in-process chain (eth-tester) and a real node (anvil).

Helpers and worlds live in ``tests/support/`` (its asserts are rewritten by pytest like a test module's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.chain.contract import Chain
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


@pytest.fixture(scope="session", params=BACKENDS)
def chain(request: pytest.FixtureRequest) -> Chain:
    if request.param == "anvil":
        return Chain.connect(request.getfixturevalue("anvil_node").url)
    return Chain.embedded_chain()


@pytest.fixture(scope="session")
def _world(chain: Chain) -> World:
    return build_world(chain)


@pytest.fixture
def world(_world: World) -> Iterator[World]:
    """The shared world, rolled back after each test so tests never see each other's entries."""
    snapshot = _world.chain.snapshot()
    yield _world
    _world.chain.revert(snapshot)
