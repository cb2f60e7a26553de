"""Case events for the indexer's batch tests (``tests/ledger/test_indexer_batches.py`` and the tests of withheld
batches): cases living every path, at fixed claimed times (so that two ledgers given the same events fold the same
cases), anchored as Merkle batches, indexed with a batch directory, and the rows of a store's dump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger import batches
from ledger.batches import BatchStore, build_batch
from ledger.index.sync import Indexer
from ledger.records import RECEIPT_CASE_FLAG, CaseAction, CaseEvent, text_hash
from ledger.store.db import Store
from tests.support.world import World, case_id

DAY = 86_400
T0 = 1_790_000_000  # claimed times: fixed, so that two ledgers given the same events fold the same cases


def index(world: World, store: Store, batch_dir: Path | None, **kwargs: Any) -> Indexer:
    kwargs.setdefault("confirmations", 3)
    return Indexer(world.chain, world.ledger.address, store, batch_dir=batch_dir, **kwargs)


def plain_case_id(name: str) -> bytes:
    """A case id without ``RECEIPT_CASE_FLAG``, so that its batched events apply to it
    (``ledger.cases.batched_event_applies``)."""
    raw = case_id(name)
    return bytes([raw[0] & ~RECEIPT_CASE_FLAG & 0xFF]) + raw[1:]


def life(world: World, tag: str, n: int) -> list[CaseEvent]:
    """n cases: opened; then accepted, put on hold and resumed, or fulfilled, rejected... (every path once)."""
    out: list[CaseEvent] = []
    for i in range(n):
        name = f"{tag}{i}"
        out.append(world.opened(name, case_id=plain_case_id(name), occurred_at=T0 + i, channel=1 + i % 6))
    for i in range(n):
        name, at = f"{tag}{i}", T0 + 3600 + i
        step = i % 4
        if step == 0:
            out.append(world.update(name, CaseAction.ACCEPTED, occurred_at=at, case_id=plain_case_id(name)))
            out.append(world.update(name, CaseAction.FULFILLED, occurred_at=at + 60, details_hash=text_hash(name),
                                    case_id=plain_case_id(name)))
        elif step == 1:
            out.append(world.update(name, CaseAction.ON_HOLD, occurred_at=at, case_id=plain_case_id(name)))
            out.append(world.update(name, CaseAction.RESUMED, occurred_at=at + 7200, case_id=plain_case_id(name)))
        elif step == 2:
            out.append(world.update(name, CaseAction.REJECTED, occurred_at=at, case_id=plain_case_id(name)))
        else:
            out.append(world.update(name, CaseAction.ESCALATED, occurred_at=at, case_id=plain_case_id(name)))
    return out


def anchor(world: World, events: list[CaseEvent], directory: Path) -> tuple[batches.Batch, batches.Anchored]:
    batch = build_batch(events)
    return batch, batches.anchor(world.ledger, world.signer, batch, BatchStore(directory))


def table(dump: dict[str, list[tuple[Any, ...]]], name: str, store: Store) -> list[dict[str, Any]]:
    from ledger.store.schema import metadata

    columns = metadata.tables[name].columns.keys()
    return [dict(zip(columns, row, strict=True)) for row in dump[name]]
