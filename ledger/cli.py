"""The operator command line: register agencies and keys, publish commitments, record cases (one by one or
imported from CSV / JSON Lines), sync the index and show metrics. ``civic-ledger --help`` lists everything.

Agencies write through the :class:`~ledger.writer.Writer` and its durable outbox (``DATA_DIR/outbox/``), so a
command interrupted halfway can simply be run again: nothing is recorded twice.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger.chain import Chain, Ledger
from ledger.errors import ContractReverted, InvalidRecord, LedgerError
from ledger.importer import read_rows
from ledger.keys import AgencyKey, load_key
from ledger.outbox import Outbox, OutboxItem, OutboxState
from ledger.records import (
    AgencyRegistration,
    Commitment,
    DeadlineUnit,
    HolidayCalendar,
    Record,
    Retirement,
    code_text,
    short_code,
    text_hash,
)
from ledger.writer import Writer

DEFAULT_DATA_DIR = Path(os.environ.get("CIVIC_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))

app = typer.Typer(
    help="Civic Ledger operator commands: agencies and keys, commitments, cases (one by one or imported), the index "
    "and its metrics. Agency writes go through a durable outbox: an interrupted command can be run again.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
agency_app = typer.Typer(help="Governance: agencies and their signer keys.", no_args_is_help=True)
commitment_app = typer.Typer(help="An agency's service commitments.", no_args_is_help=True)
case_app = typer.Typer(help="An agency's cases.", no_args_is_help=True)
calendar_app = typer.Typer(help="Holiday calendars for working-day deadlines.", no_args_is_help=True)
outbox_app = typer.Typer(help="What an agency key has waiting, sent or failed.", no_args_is_help=True)
app.add_typer(agency_app, name="agency")
app.add_typer(commitment_app, name="commitment")
app.add_typer(case_app, name="case")
app.add_typer(calendar_app, name="calendar")
app.add_typer(outbox_app, name="outbox")

out = Console()
err = Console(stderr=True)


@dataclass
class Settings:
    rpc_url: str
    contract: str | None
    chain_id: int | None
    data_dir: Path
    _ledger: Ledger | None = field(default=None, repr=False)

    def ledger(self) -> Ledger:
        if self._ledger is None:
            address, chain_id = self.contract, self.chain_id
            deployment = self.data_dir / "deployment.json"
            if address is None and deployment.exists():
                recorded = json.loads(deployment.read_text())
                address, chain_id = recorded["address"], chain_id or recorded["chain_id"]
            if address is None:
                fail(f"no contract address: pass --contract (or CIVIC_CONTRACT), or run `make run` to create "
                     f"{deployment}")
            chain = Chain.connect(self.rpc_url, expected_chain_id=chain_id)
            self._ledger = Ledger(chain, address)
        return self._ledger

    def key(self, key: str | None, key_env: str | None, password_file: Path | None) -> AgencyKey:
        """A keystore path, or the name of one under DATA_DIR/keys (whose .password file then applies)."""
        if key_env:
            return load_key(env_var=key_env)
        if not key:
            fail("no key given: pass --key (a keystore file, or a key name under DATA_DIR/keys) or --key-env")
        path = Path(key)
        if not path.exists() and (self.data_dir / "keys" / f"{key}.json").exists():
            path = self.data_dir / "keys" / f"{key}.json"
            password_file = password_file or self.data_dir / "keys" / ".password"
        if password_file is None:
            password = os.environ.get("CIVIC_KEY_PASSWORD")
            if password is None:
                fail(f"keystore {path} needs --password-file or CIVIC_KEY_PASSWORD")
            return load_key(path, password=password)
        return load_key(path, password_file=password_file)

    def writer(self, signer: AgencyKey) -> Writer:
        outbox = Outbox(self.data_dir / "outbox" / f"{signer.address}.sqlite")
        return Writer(self.ledger(), signer, outbox)

    def salt(self, agency_id: str) -> bytes:
        """The agency's secret salt for case ids: CIVIC_CASE_SALT (hex), else DATA_DIR/keys/case-salt-AGENCY,
        created on first use. Losing it means case references can no longer be matched to case ids."""
        configured = os.environ.get("CIVIC_CASE_SALT")
        if configured:
            return bytes.fromhex(configured.removeprefix("0x"))
        path = self.data_dir / "keys" / f"case-salt-{agency_id}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
            err.print(f"created a new case-id salt for {agency_id} in {path}: back it up")
        return bytes.fromhex(path.read_text().strip())


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def settings(ctx: typer.Context) -> Settings:
    return ctx.obj  # type: ignore[no-any-return]


KeyOpt = Annotated[str | None, typer.Option("--key", help="keystore file, or a key name under DATA_DIR/keys")]
KeyEnvOpt = Annotated[str | None, typer.Option("--key-env", help="environment variable holding the private key")]
PasswordOpt = Annotated[Path | None, typer.Option("--password-file", help="file holding the keystore password")]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="when it happened, ISO 8601 with a zone (default: now)")
]


@app.callback()
def main(
    ctx: typer.Context,
    rpc_url: Annotated[str, typer.Option(envvar="CIVIC_RPC_URL", help="JSON-RPC URL of the chain")] = (
        "http://127.0.0.1:8545"
    ),
    contract: Annotated[
        str | None, typer.Option(envvar="CIVIC_CONTRACT", help="ledger contract address (default: DATA_DIR's)")
    ] = None,
    chain_id: Annotated[
        int | None, typer.Option(envvar="CIVIC_CHAIN_ID", help="refuse to work on any other chain id")
    ] = None,
    data_dir: Annotated[Path, typer.Option(envvar="CIVIC_DATA_DIR", help="keys, outboxes, index")] = DEFAULT_DATA_DIR,
) -> None:
    ctx.obj = Settings(rpc_url=rpc_url, contract=contract, chain_id=chain_id, data_dir=data_dir)


def _now_or(at: str | None) -> int | str:
    return int(time.time()) if at is None else at


def _write(ctx: typer.Context, signer: AgencyKey, record: Record) -> OutboxItem:
    writer = settings(ctx).writer(signer)
    try:
        item = writer.write(record)
    finally:
        writer.close()
    out.print(f"recorded as entry {item.seq} (transaction {item.tx_hash})")
    return item


def _guard(function: Any) -> Any:
    """Turn the project's errors into a clear message and exit code 2 (1 for a refused write)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ContractReverted as exc:
            fail(f"the ledger refused it: {exc.error_name} {exc.error_args}", code=1)
        except (LedgerError, ValueError) as exc:
            fail(str(exc))

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    wrapper.__wrapped__ = function  # type: ignore[attr-defined]
    return wrapper


def command(typer_app: typer.Typer, name: str | None = None) -> Any:
    def register(function: Any) -> Any:
        import functools

        guarded = functools.wraps(function)(_guard(function))
        return typer_app.command(name)(guarded)

    return register


# ----------------------------------------------------------------------------------------------- governance


@command(agency_app, "register")
def agency_register(
    ctx: typer.Context,
    agency_id: Annotated[str, typer.Argument(help="the agency's code, e.g. SH-ROADS")],
    jurisdiction: Annotated[str, typer.Option(help="jurisdiction code whose holiday calendars apply")],
    name_zh: Annotated[str, typer.Option("--name-zh")],
    name_en: Annotated[str, typer.Option("--name-en")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Register an agency (governance key)."""
    s = settings(ctx)
    governance = s.key(key, key_env, password_file)
    registration = AgencyRegistration(
        agency_id=short_code(agency_id), jurisdiction=short_code(jurisdiction), name_zh=name_zh, name_en=name_en
    )
    receipt = s.ledger().register_agency(governance, registration)
    out.print(f"registered {agency_id} in block {receipt['blockNumber']}")


@command(agency_app, "authorize")
def agency_authorize(
    ctx: typer.Context,
    agency_id: Annotated[str, typer.Argument()],
    signer: Annotated[str, typer.Argument(help="address of the agency's new signer key")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Authorise a signer key for an agency (governance key)."""
    s = settings(ctx)
    receipt = s.ledger().authorize_signer(s.key(key, key_env, password_file), short_code(agency_id), signer)
    out.print(f"authorised {signer} for {agency_id} in block {receipt['blockNumber']}")


@command(agency_app, "revoke")
def agency_revoke(
    ctx: typer.Context,
    signer: Annotated[str, typer.Argument(help="address of the key to revoke")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Revoke a signer key (governance key). Its entries stay; it can write no more."""
    s = settings(ctx)
    receipt = s.ledger().revoke_signer(s.key(key, key_env, password_file), signer)
    out.print(f"revoked {signer} in block {receipt['blockNumber']}")


# ---------------------------------------------------------------------------------------------- commitments


class Unit(str, Enum):
    hours = "hours"
    working_days = "working-days"


@command(commitment_app, "publish")
def commitment_publish(
    ctx: typer.Context,
    commitment_id: Annotated[str, typer.Argument(help="commitment code, e.g. STREETLIGHT-48H")],
    service_code: Annotated[str, typer.Option(help="Open311 service code")],
    name_zh: Annotated[str, typer.Option("--name-zh")],
    name_en: Annotated[str, typer.Option("--name-en")],
    deadline: Annotated[int, typer.Option(help="amount of --unit within which a case is fulfilled")],
    unit: Annotated[Unit, typer.Option(help="hours, or working days of the jurisdiction's calendar")],
    target: Annotated[float, typer.Option(help="target on-time rate in percent, e.g. 95")],
    terms: Annotated[str, typer.Option(help="the full published terms (only their hash goes on chain)")],
    valid_from: Annotated[str | None, typer.Option(help="ISO 8601 with a zone (default: now)")] = None,
    at: AtOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Publish a commitment, or a new version of one (the agency's key)."""
    if not 0 <= target <= 100:
        raise InvalidRecord(f"target must be a percentage from 0 to 100, got {target}")
    record = Commitment(
        commitment_id=short_code(commitment_id), service_code=short_code(service_code), name_zh=name_zh,
        name_en=name_en, deadline=deadline,
        deadline_unit=DeadlineUnit.CALENDAR_HOURS if unit is Unit.hours else DeadlineUnit.WORKING_DAYS,
        target_bps=round(target * 100), valid_from=_now_or(valid_from), terms_hash=text_hash(terms),
        occurred_at=_now_or(at),
    )
    _write(ctx, settings(ctx).key(key, key_env, password_file), record)


@command(commitment_app, "retire")
def commitment_retire(
    ctx: typer.Context,
    commitment_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="why (only its hash goes on chain)")],
    at: AtOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Retire a commitment: no case can be opened under it afterwards."""
    record = Retirement(
        commitment_id=short_code(commitment_id), reason_hash=text_hash(reason), occurred_at=_now_or(at)
    )
    _write(ctx, settings(ctx).key(key, key_env, password_file), record)


@command(calendar_app, "publish")
def calendar_publish(
    ctx: typer.Context,
    year: Annotated[int, typer.Argument()],
    holidays: Annotated[str, typer.Option(help="comma-separated weekdays off, e.g. 2026-10-01,2026-10-02")] = "",
    workdays: Annotated[str, typer.Option(help="comma-separated weekend working days")] = "",
    at: AtOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Publish the holiday calendar of the agency's jurisdiction for a year."""

    def dates(text: str) -> list[date]:
        try:
            return [date.fromisoformat(d.strip()) for d in text.split(",") if d.strip()]
        except ValueError as exc:
            raise InvalidRecord(f"dates must look like 2026-10-01: {exc}") from exc

    record = HolidayCalendar.from_dates(year, dates(holidays), dates(workdays), occurred_at=_now_or(at))
    _write(ctx, settings(ctx).key(key, key_env, password_file), record)


# ---------------------------------------------------------------------------------------------------- cases


class Action(str, Enum):
    accepted = "accepted"
    on_hold = "on_hold"
    resumed = "resumed"
    escalated = "escalated"
    fulfilled = "fulfilled"
    rejected = "rejected"
    withdrawn = "withdrawn"


def _agency_of(s: Settings, signer: AgencyKey) -> str:
    agency = s.ledger().agency_of(signer.address)
    if not any(agency):
        raise LedgerError(f"key {signer.address} is not authorised for any agency")
    return code_text(agency)


@command(case_app, "open")
def case_open(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="the agency's own case reference (never recorded)")],
    commitment: Annotated[str, typer.Option(help="commitment code the case falls under")],
    district: Annotated[str, typer.Option(help="district code (no finer location)")],
    channel: Annotated[str, typer.Option(help="counter, hotline, web, app, mail, proactive")],
    details: Annotated[str | None, typer.Option(help="free text; only its hash is recorded")] = None,
    at: AtOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Open a case."""
    _case(ctx, reference, "opened", at, details, key, key_env, password_file,
          commitment=commitment, district=district, channel=channel)


@command(case_app, "update")
def case_update(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="the agency's own case reference")],
    action: Annotated[Action, typer.Argument()],
    details: Annotated[str | None, typer.Option(help="free text; only its hash is recorded")] = None,
    at: AtOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Record a later event of a case: accepted, on_hold, resumed, escalated, fulfilled, rejected, withdrawn."""
    _case(ctx, reference, action.value, at, details, key, key_env, password_file)


class Closing(str, Enum):
    fulfilled = "fulfilled"
    rejected = "rejected"
    withdrawn = "withdrawn"


@command(case_app, "close")
def case_close(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="the agency's own case reference")],
    outcome: Annotated[Closing, typer.Argument()],
    details: Annotated[str | None, typer.Option(help="free text; only its hash is recorded")] = None,
    at: AtOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Close a case: fulfilled, rejected or withdrawn."""
    _case(ctx, reference, outcome.value, at, details, key, key_env, password_file)


def _case(ctx: typer.Context, reference: str, action: str, at: str | None, details: str | None, key: str | None,
          key_env: str | None, password_file: Path | None, **intake: str) -> None:
    from ledger.importer import parse_row

    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    agency = _agency_of(s, signer)
    raw: dict[str, Any] = {"case": reference, "action": action, "occurred_at": _iso(_now_or(at)), **intake}
    if details:
        raw["details"] = details
    row = parse_row(1, raw, agency_id=agency, salt=s.salt(agency))
    if row.record is None:
        raise InvalidRecord(row.error or "invalid case event")
    _write(ctx, signer, row.record)


def _iso(value: int | str) -> str:
    return datetime.fromtimestamp(value, timezone.utc).isoformat() if isinstance(value, int) else value


@command(case_app, "import")
def case_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .csv, .jsonl or .ndjson file")],
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Import case events. Good rows are recorded, bad rows are listed with the reason; one never stops the rest.
    Running the same file again records nothing twice."""
    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    agency = _agency_of(s, signer)
    rows = list(read_rows(path, agency_id=agency, salt=s.salt(agency)))
    refused = [(r.line, r.error) for r in rows if r.error]
    good = [r for r in rows if r.record is not None]
    writer = s.writer(signer)
    items: list[OutboxItem] = []
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("recording", total=len(good))
            for start in range(0, len(good), 1000):
                chunk = good[start : start + 1000]
                submitted = writer.submit_many([r.record for r in chunk if r.record is not None])
                finished = {i.id: i for i in writer.flush()}
                items += [finished.get(i.id, i) for i in submitted]
                bar.update(task, completed=start + len(chunk))
    finally:
        writer.close()
    lines = {id(r.record): r.line for r in good}
    failed = [(lines.get(id(r.record), 0), i.error) for r, i in zip(good, items, strict=True)
              if i.state is OutboxState.FAILED]
    recorded = sum(1 for i in items if i.state is OutboxState.RECORDED)
    summary = Table(title=f"import of {path.name}")
    summary.add_column("rows", justify="right")
    summary.add_column("recorded", justify="right")
    summary.add_column("refused before sending", justify="right")
    summary.add_column("refused by the ledger", justify="right")
    summary.add_row(str(len(rows)), str(recorded), str(len(refused)), str(len(failed)))
    out.print(summary)
    problems = sorted(refused + [(line, e or "failed") for line, e in failed])
    if problems:
        table = Table(title="rows not recorded")
        table.add_column("line", justify="right")
        table.add_column("why")
        for line, why in problems[:200]:
            table.add_row(str(line), why or "")
        out.print(table)
        if len(problems) > 200:
            out.print(f"… and {len(problems) - 200} more")
        reasons = Counter((why or "").split(":")[0] for _, why in problems)
        out.print("by reason: " + ", ".join(f"{k} ({v})" for k, v in reasons.most_common(5)))
    if problems:
        raise typer.Exit(1)


@command(outbox_app, "status")
def outbox_status(
    ctx: typer.Context,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Counts of a key's outbox by state, and the failed entries with their reasons."""
    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    outbox = Outbox(s.data_dir / "outbox" / f"{signer.address}.sqlite")
    try:
        counts = outbox.counts()
        table = Table(title=f"outbox of {signer.address}")
        for state in OutboxState:
            table.add_column(state.value, justify="right")
        table.add_row(*(str(counts[state]) for state in OutboxState))
        out.print(table)
        for item in outbox.items(OutboxState.FAILED, limit=50):
            out.print(f"  #{item.id}: {item.error}")
    finally:
        outbox.close()


# ------------------------------------------------------------------------------------------ index, metrics


def _store_url(s: Settings, store: str | None) -> str:
    from ledger.store.db import default_url

    return store or os.environ.get("CIVIC_STORE_URL") or default_url(s.data_dir)


StoreOpt = Annotated[
    str | None, typer.Option("--store", help="SQLAlchemy URL of the index (default: SQLite in DATA_DIR)")
]


@command(app, "sync")
def sync(
    ctx: typer.Context,
    store: StoreOpt = None,
    confirmations: Annotated[int, typer.Option(help="blocks before an entry is final")] = 12,
    follow: Annotated[bool, typer.Option(help="keep following new blocks until Ctrl-C")] = False,
) -> None:
    """Index the chain's entries into the SQL store (resumes where it stopped)."""
    import threading

    from ledger.indexer import Indexer
    from ledger.store.db import open_store

    s = settings(ctx)
    ledger = s.ledger()
    deployment = s.data_dir / "deployment.json"
    deploy_block = json.loads(deployment.read_text())["block"] if deployment.exists() and not s.contract else None
    opened = open_store(_store_url(s, store))
    try:
        indexer = Indexer(ledger.chain, ledger.address, opened, confirmations=confirmations,
                          deploy_block=deploy_block, alert=lambda message: err.print(f"[bold red]alert:[/] {message}"))
        with err.status("indexing…"):
            report = indexer.sync()
        out.print(f"indexed {report.entries} entries up to block {indexer.last_block()} "
                  f"(final up to block {indexer.finalized_block()}) at {report.entries_per_s:,.0f} entries/s")
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
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


@command(app, "metrics")
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
    """Scorecards from the index: opened, closed, on-time rate vs target, time to fulfil, overdue, latency."""
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
    columns = ("opened", "closed", "on time", "target", "median h", "p90 h", "open", "overdue", "late rec.",
               "rejected")
    table.add_column(by)
    for column in columns:
        table.add_column(column, justify="right")
    for key, value in sorted(rows.items(), key=lambda kv: _label(kv[0])):
        d = value.to_dict()
        table.add_row(
            _label(key), str(d["cases_opened"]), str(d["cases_closed"]), _pct(d["on_time_rate"]),
            _pct(d["target_rate"]), _hours(d["median_fulfil_seconds"]), _hours(d["p90_fulfil_seconds"]),
            str(d["open_cases"]), str(d["overdue_cases"]), str(d["late_recordings"]), _pct(d["rejection_rate"]),
        )
    out.print(table)


def _label(key: Any) -> str:
    return "/".join(key) if isinstance(key, tuple) else str(key)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value) * 100:.1f}%"


def _hours(value: Any) -> str:
    return "–" if value is None else f"{int(value) / 3600:.1f}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
