"""``ledger.chain.reader``: the node reads the indexer and the auditor share, against a real node (anvil), and the
range sizing both follow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.chain.contract import Chain
from ledger.chain.reader import FIRST_RANGE, LedgerReader, RangeSizer
from ledger.chain.rpc import JsonRpc, RpcError
from ledger.encoding import ZERO_HEAD
from tests.support.world import World, build_world


@pytest.fixture(scope="module")
def ledger_world(node_chain: Chain) -> World:
    return build_world(node_chain)


@pytest.fixture
def reader(ledger_world: World) -> Iterator[LedgerReader]:
    rpc = JsonRpc.for_chain(ledger_world.chain)
    yield LedgerReader(rpc, ledger_world.ledger.address)
    rpc.close()


def test_head_code_and_deploy_block(reader: LedgerReader, ledger_world: World) -> None:
    head = reader.head()
    assert head == ledger_world.chain.w3.eth.block_number
    deployed = reader.deploy_block(head)
    assert deployed > 0 and reader.has_code(deployed) and not reader.has_code(deployed - 1)


def test_the_contracts_own_count_and_running_hash(reader: LedgerReader, ledger_world: World) -> None:
    head = reader.head()
    header = reader.headers([head])[head]
    assert header is not None
    by_hash = reader.counted_head({"blockHash": header["hash"]})
    assert by_hash == reader.counted_head(hex(head))
    assert by_hash == (ledger_world.ledger.entry_count(), ledger_world.ledger.running_hash()[:24])
    deployed = reader.deploy_block(head)
    if deployed > 0:  # before the deployment: no code, the empty ledger
        assert reader.counted_head(hex(deployed - 1)) is None
        assert reader.head_or_zero(hex(deployed - 1)) == (0, ZERO_HEAD)
    with pytest.raises(RpcError):  # a block hash the node never saw
        reader.counted_head({"blockHash": "0x" + "ab" * 32})


def test_logs_and_headers(reader: LedgerReader, ledger_world: World) -> None:
    head = reader.head()
    logs = reader.logs(0, head)
    assert len(logs) >= ledger_world.ledger.entry_count()
    assert all(log["address"].lower() == ledger_world.ledger.address.lower() for log in logs)
    numbers = {int(log["blockNumber"], 16) for log in logs}
    headers = reader.headers([*numbers, head + 1000], chunk=2)  # chunked requests, and a block that is not there
    assert headers[head + 1000] is None
    assert all(headers[n] is not None and int(headers[n]["number"], 16) == n for n in numbers)  # type: ignore[index]


def test_the_range_grows_towards_the_target_and_at_most_twofold() -> None:
    sizer = RangeSizer(ceiling=1000, target_logs=100)
    assert sizer.span == FIRST_RANGE and sizer.end(50, 10_000) == 59 and sizer.end(50, 52) == 52
    sizer.served(50, 59, weight=0)  # empty: double
    assert sizer.span == 20
    sizer.served(60, 79, weight=1)  # sparse: double again, not 2,000 at once
    assert sizer.span == 40
    sizer.served(80, 119, weight=400)  # dense: aim at 100 entries
    assert sizer.span == 10
    for _ in range(20):
        sizer.served(0, sizer.span - 1, weight=0)
    assert sizer.span == 1000  # never past the caller's maximum


def test_a_refused_range_is_halved_and_never_asked_for_again() -> None:
    sizer = RangeSizer(ceiling=1000, target_logs=100)
    for _ in range(10):
        sizer.served(0, sizer.span - 1, weight=0)
    assert sizer.span == 1000
    assert sizer.refused(0, 999) == 500 and sizer.span == 500
    sizer.served(0, 499, weight=0)  # would double: the node said no to more than 500
    assert sizer.span == 500
    assert sizer.refused(0, 0) == 1 and sizer.span == 1


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        RangeSizer(ceiling=0, target_logs=10)
    with pytest.raises(ValueError, match=">= 1"):
        RangeSizer(ceiling=10, target_logs=0)
