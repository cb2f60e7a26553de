"""Tampering with the honest ledger as an operator could (``tests/support/honest.py``): SQL applied to a copy of its
index, that copy queried, and the chain's clock moved on."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from web3.types import RPCEndpoint

from ledger.dev import demo
from ledger.index.cells import rebuild
from tests.support.honest import HonestLedger


def tampered(
    h: HonestLedger, tmp_path: Path, *statements: tuple[str, tuple[Any, ...]], cells: bool = True
) -> Path:
    """A copy of the honest index with SQL applied (as an operator with database access could), and its figure cells
    made again from the altered rows (as that operator would, to keep them in step: ``ledger.index.cells.rebuild``)
    unless `cells` is False."""
    index = h.index_copy(tmp_path, "tampered.sqlite")
    db = sqlite3.connect(index)
    try:
        for sql, params in statements:
            assert db.execute(sql, params).rowcount >= 1, sql
        db.commit()
    finally:
        db.close()
    if cells:
        engine = create_engine(f"sqlite:///{index}")
        try:
            with engine.begin() as conn:
                rebuild(conn)
        finally:
            engine.dispose()
    return index


def query(index: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(index)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def mine_at(h: HonestLedger, at: int) -> None:
    """Move the chain's clock: mine an empty block at time `at` (the audit's "now" is the latest block's time)."""
    demo.set_next_block_time(h.chain, at)
    h.chain.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(1)])
