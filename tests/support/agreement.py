"""The index and the auditor side by side, for the attacks on case openings: the auditor's model of a test world's
chain (``ledger.audit.rebuild``, from the logs as ``civic-audit`` reads them and the batch files of a directory) and
the rows a store holds — cases, voided entries, corrections applied — and the figures each computes, compared value
for value."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.audit.batchfiles import DirectorySource, anchors_of, load
from ledger.audit.chainread import ChainReader
from ledger.audit.rebuild import LedgerModel, rebuild
from ledger.audit.rpc import Rpc
from ledger.batches.read import BatchContent
from ledger.cases import CASE_STATE_FIELDS
from ledger.chain.logs import DecodedEntry
from ledger.metrics import MetricsFilter, compute_metrics, compute_metrics_from_rows
from ledger.records import EntryKind
from ledger.store.db import Store
from tests.support.world import World

_BOOLEANS = ("on_time", "escalated", "dispute_open")


def chain_log(world: World, batch_dir: Path | None = None, to_block: int | None = None
              ) -> tuple[list[DecodedEntry], dict[int, BatchContent]]:
    """The ledger's entries as the auditor decodes them, and the checked contents of the batch files `batch_dir`
    holds (the others withheld)."""
    rpc = Rpc(world.chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    try:
        entries = ChainReader(rpc, world.ledger.address, to_block=to_block).read().entries
    finally:
        rpc.close()
    if batch_dir is None or not anchors_of(entries):
        return entries, {}
    outcomes = load(anchors_of(entries), DirectorySource(batch_dir))
    return entries, {seq: o.content for seq, o in outcomes.items() if o.content is not None}


def audit_model(world: World, batch_dir: Path | None = None, to_block: int | None = None) -> LedgerModel:
    entries, contents = chain_log(world, batch_dir, to_block)
    return rebuild(entries, contents)


def _norm(row: dict[str, Any]) -> dict[str, Any]:
    out = {name: row[name] for name in CASE_STATE_FIELDS}
    for name in _BOOLEANS:
        if out[name] is not None:
            out[name] = bool(out[name])
    return out


def index_cases(store: Store) -> dict[tuple[str, bytes], dict[str, Any]]:
    with store.connect() as conn:
        return {(r["agency_id"], bytes(r["case_id"])): _norm(dict(r))
                for r in conn.exec_driver_sql("SELECT * FROM cases").mappings()}


def model_cases(model: LedgerModel) -> dict[tuple[str, bytes], dict[str, Any]]:
    return {(r.agency_id, r.case_id): _norm(r.__dict__) for r in model.case_rows}


def index_voided(store: Store) -> dict[int, int]:
    with store.connect() as conn:
        return {int(s): int(v) for s, v in conn.exec_driver_sql(
            "SELECT seq, voided_by FROM entries WHERE voided_by IS NOT NULL")}


def index_corrections(store: Store) -> dict[int, bool]:
    with store.connect() as conn:
        return {int(s): bool(a) for s, a in conn.exec_driver_sql("SELECT seq, applied FROM corrections")}


def model_corrections(model: LedgerModel) -> dict[int, bool]:
    applied = set(model.voided.values())
    return {e.seq: e.seq in applied for e in model.entries if e.kind == EntryKind.CORRECTION}


def model_figures(model: LedgerModel, flt: MetricsFilter) -> dict[str, Any]:
    return compute_metrics_from_rows(
        model.case_rows, model.event_rows, model.commitment_rows, flt, rating_rows=model.rating_rows,
        dispute_rows=model.dispute_rows, filing_rows=model.filing_rows,
    ).to_dict()


def assert_agree(store: Store, model: LedgerModel, flt: MetricsFilter | None = None) -> None:
    """The store's cases, voided entries and corrections are the auditor's; and so are the figures of `flt`."""
    assert index_cases(store) == model_cases(model)
    assert index_voided(store) == model.voided
    assert index_corrections(store) == model_corrections(model)
    if flt is not None:
        assert compute_metrics(store.engine, flt).to_dict() == model_figures(model, flt)


def deadline_figures(figures: dict[str, Any]) -> tuple[Any, ...]:
    """The figures a case left overdue moves: (cases opened, overdue, deadline cases, deadline rate)."""
    rate = figures["deadline_rate"]
    return (figures["cases_opened"], figures["overdue_cases"], figures["deadline_cases"],
            None if rate is None else Decimal(str(rate)))
