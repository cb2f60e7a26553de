"""The index and its figures: ``sync`` follows the chain into the SQL store, ``metrics`` prints the scorecards."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ledger.cli.common import Settings, command, err, out, settings
from ledger.config import Settings as Env
from ledger.errors import InvalidRecord

#: sync and metrics, top-level commands (``ledger.cli`` adds this app without a name)
index_app = typer.Typer()


def _store_url(s: Settings, store: str | None) -> str:
    from ledger.store.db import default_url

    return store or Env.from_env().store_url or default_url(s.data_dir)


StoreOpt = Annotated[
    str | None, typer.Option("--store", help="SQLAlchemy URL of the index (default: SQLite in DATA_DIR)")
]


@command(index_app, "sync")
def sync(
    ctx: typer.Context,
    store: StoreOpt = None,
    confirmations: Annotated[
        int | None,
        typer.Option(min=0, help="blocks before an entry is final (default: CIVIC_CONFIRMATIONS, else the chain's: "
                                 "2 on a local anvil or Hardhat node, 12 elsewhere)"),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(help="keep following new blocks until Ctrl-C; while another indexer leads the store, stand by "
                          "and take over when its lease ends"),
    ] = False,
    batch_dir: Annotated[
        Path | None, typer.Option("--batches", help="where the batches' files are read (default DATA_DIR/batches)")
    ] = None,
) -> None:
    """Index the chain's entries into the SQL store (resumes where it stopped). A Merkle batch whose file is not in
    the batch directory, or does not match its anchor, is withheld (its events left out, shown against its agency)
    and indexing goes on; a withheld batch's events slot in once the right file is published.

    One indexer writes a store at a time (a leader lease in the store, CIVIC_INDEX_LEASE_SECONDS): while another
    leads, a single sync exits at once saying which, and --follow stands by until that one's lease ends."""
    import threading

    from ledger.config import confirmations_for
    from ledger.index.leader import NotLeader
    from ledger.index.sync import Indexer
    from ledger.store.db import open_store

    s = settings(ctx)
    env = Env.from_env()
    ledger = s.ledger()
    deploy_block = s.deploy_block() or None
    depth = confirmations_for(ledger.chain.chain_id, confirmations if confirmations is not None else env.confirmations)
    opened = open_store(_store_url(s, store))
    try:
        indexer = Indexer(ledger.chain, ledger.address, opened, confirmations=depth,
                          lease_seconds=env.index_lease_seconds, deploy_block=deploy_block,
                          batch_dir=batch_dir or s.data_dir / "batches",
                          alert=lambda message: err.print(f"[bold red]alert:[/] {message}"))
        try:
            with err.status("indexing…"):
                report = indexer.sync(wait=0)
        except NotLeader as exc:
            if not follow:
                raise
            err.print(f"standing by: {exc}")
        else:
            out.print(f"indexed {report.entries} entries up to block {indexer.last_block()} "
                      f"(final up to block {indexer.finalized_block()}, {depth} confirmations) at "
                      f"{report.entries_per_s:,.0f} entries/s")
            if report.withheld_batches or report.released_batches:
                out.print(f"batches withheld this sync: {report.withheld_batches}; withheld earlier and now indexed: "
                          f"{report.released_batches}")
        if follow:
            stop = threading.Event()
            try:
                indexer.run(stop_event=stop)
            except KeyboardInterrupt:
                stop.set()
    finally:
        opened.close()


def _day(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRecord(f"--{name} must be a date (2026-11-01) or an ISO 8601 time with a zone") from exc
    if parsed.tzinfo is None:
        if len(text) > 10:
            raise InvalidRecord(f"--{name} {text} has no zone")
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


@command(index_app, "metrics")
def metrics(
    ctx: typer.Context,
    store: StoreOpt = None,
    agency: Annotated[str | None, typer.Option(help="agency code")] = None,
    commitment: Annotated[str | None, typer.Option(help="commitment code (with --agency)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="start of the range (date or time with zone)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="end of the range, exclusive (default: now)")] = None,
    district: Annotated[str | None, typer.Option(help="district code")] = None,
    channel: Annotated[int | None, typer.Option(help="channel code 1-6")] = None,
    by: Annotated[str, typer.Option(help="one row per: agency, commitment, or all")] = "agency",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Scorecards from the index: opened, closed, on-time rate (overdue open cases and late rejections counted) vs
    target, response, resolution, satisfaction and rectification rates, time to fulfil, overdue, latency."""
    from ledger import metrics as m
    from ledger.store.db import open_store

    s = settings(ctx)
    flt = m.MetricsFilter(agency_id=agency, commitment_id=commitment, start=_day(start, "from"),
                          end=_day(end, "to") or int(time.time()), district=district, channel=channel)
    opened = open_store(_store_url(s, store), migrate=False)
    try:
        if by == "agency":
            rows: dict[Any, m.Metrics] = m.agency_scorecards(opened.engine, flt)
        elif by == "commitment":
            rows = m.commitment_scorecards(opened.engine, flt)
        elif by == "all":
            rows = {"all": m.compute_metrics(opened.engine, flt)}
        else:
            raise InvalidRecord("--by must be agency, commitment or all")
    finally:
        opened.close()
    if as_json:
        out.print_json(json.dumps({_label(k): v.to_dict() for k, v in rows.items()}, default=str))
        return
    table = Table(title="Civic Ledger metrics")
    # "on time" is the rate a city publishes (deadline_rate: overdue open cases and late rejections count)
    columns = ("opened", "closed", "on time", "target", "response", "resolved", "satisfied", "rectified", "median h",
               "p90 h", "open", "overdue", "late rec.", "rejected", "rating", "rated", "disputes")
    table.add_column(by)
    for column in columns:
        table.add_column(column, justify="right")
    for key, value in sorted(rows.items(), key=lambda kv: _label(kv[0])):
        d = value.to_dict()
        table.add_row(
            _label(key), str(d["cases_opened"]), str(d["cases_closed"]), _pct(d["deadline_rate"]),
            _pct(d["target_rate"]), _pct(d["response_rate"]), _pct(d["resolution_rate"]),
            _pct(d["satisfaction_rate"]), _pct(d["rectification_rate"]),
            _hours(d["median_fulfil_seconds"]), _hours(d["p90_fulfil_seconds"]),
            str(d["open_cases"]), str(d["overdue_cases"]), str(d["late_recordings"]), _pct(d["rejection_rate"]),
            _rating(d.get("rating_average"), d.get("ratings")), _pct(d.get("rating_response_rate")),
            _disputes(d.get("disputes"), d.get("disputes_unanswered")),
        )
    out.print(table)


def _label(key: Any) -> str:
    return "/".join(key) if isinstance(key, tuple) else str(key)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value) * 100:.1f}%"


def _rating(average: Any, count: Any) -> str:
    """Average score of the ratings in range, and how many: "4.2 (31)"."""
    return "–" if average is None else f"{float(average):.1f} ({count})"


def _disputes(count: Any, unanswered: Any) -> str:
    """Disputes in range, with those left unanswered past the response window: "3 (1 late)"."""
    if count is None:
        return "–"
    return f"{count} ({unanswered} unanswered)" if unanswered else str(count)


def _hours(value: Any) -> str:
    return "–" if value is None else f"{int(value) / 3600:.1f}"
