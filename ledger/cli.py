"""The operator command line: register agencies and keys, publish commitments, record cases (one by one, imported
from CSV / JSON Lines, or as Merkle-anchored batches), sync the index and show metrics. ``civic-ledger --help`` lists
everything.

Agencies write through the :class:`~ledger.writer.sender.Writer` and its durable outbox (``DATA_DIR/outbox/``), so a
command interrupted halfway can simply be run again: nothing is recorded twice. ``batch submit`` writes through
:mod:`ledger.batches` instead: a batch is recognised on chain by its file's hash, so running it again anchors nothing
twice either.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, cast

import typer
from eth_hash.auto import keccak
from eth_typing import HexStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from web3.exceptions import TimeExhausted

from ledger import batches
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import AgencyKey, load_key
from ledger.config import DEFAULT_DATA_DIR, DEPLOYMENT_FILE, Deployment
from ledger.encoding import code_text
from ledger.errors import ContractReverted, InvalidRecord, LedgerError
from ledger.importer import CaseIds, Row, read_rows, references
from ledger.receipts import (
    DEFAULT_PAGE_URL,
    ReceiptFiles,
    ReceiptSheet,
    file_stem,
    format_code,
    new_code,
    receipt_link,
    remove_receipt_files,
    write_receipt_files,
)
from ledger.receipts import address as receipt_address
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Commitment,
    DeadlineUnit,
    HolidayCalendar,
    Receipt,
    ReceiptCaseStatus,
    Record,
    Retirement,
    is_receipt_case,
    short_code,
    text_hash,
)
from ledger.writer.outbox import Outbox, OutboxItem, OutboxState
from ledger.writer.sender import Writer

app = typer.Typer(
    help="Civic Ledger operator commands: agencies and keys, commitments, cases (one by one, imported, or in "
    "Merkle-anchored batches), the index and its metrics. Agency writes go through a durable outbox: an interrupted "
    "command can be run again.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
agency_app = typer.Typer(help="Governance: agencies and their signer keys.", no_args_is_help=True)
commitment_app = typer.Typer(help="An agency's service commitments.", no_args_is_help=True)
case_app = typer.Typer(help="An agency's cases.", no_args_is_help=True)
calendar_app = typer.Typer(help="Holiday calendars for working-day deadlines.", no_args_is_help=True)
outbox_app = typer.Typer(help="What an agency key has waiting, sent or failed.", no_args_is_help=True)
auditor_app = typer.Typer(help="Governance: the auditors whose signed attestations the ledger records.",
                          no_args_is_help=True)
batch_app = typer.Typer(
    help="Merkle-anchored batches: many case events in one transaction (a few gas each), each provable on its own.",
    no_args_is_help=True,
)
app.add_typer(agency_app, name="agency")
app.add_typer(commitment_app, name="commitment")
app.add_typer(case_app, name="case")
app.add_typer(calendar_app, name="calendar")
app.add_typer(outbox_app, name="outbox")
app.add_typer(batch_app, name="batch")
app.add_typer(auditor_app, name="auditor")

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
            deployment = Deployment.of(self.data_dir) if address is None else None
            if deployment is not None:
                address, chain_id = deployment.address, chain_id or deployment.chain_id
            if address is None:
                fail(f"no contract address: pass --contract (or CIVIC_CONTRACT), or run `make run` to create "
                     f"{self.data_dir / DEPLOYMENT_FILE}")
            chain = Chain.connect(self.rpc_url, expected_chain_id=chain_id)
            self._ledger = Ledger(chain, address)
        return self._ledger

    def deploy_block(self) -> int:
        """The block the contract was deployed in, when DATA_DIR's deployment is the one in use (else 0)."""
        deployment = Deployment.of(self.data_dir) if self.contract is None else None
        return deployment.block if deployment is not None else 0

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
    return ctx.obj


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


def _record_time(at: str | None) -> int:
    """:func:`_now_or` for a record's time field: ISO 8601 text is passed on as it is, and the field's validator
    (``ledger.records.UnixTime``) turns it into Unix seconds; mypy, without pydantic's plugin, sees only the int."""
    return cast(int, _now_or(at))


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


@command(auditor_app, "authorize")
def auditor_authorize(
    ctx: typer.Context,
    auditor: Annotated[str, typer.Argument(help="address of the auditor's key (never an agency key)")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Register an auditor key (governance key): the ledger then records its signed attestations."""
    s = settings(ctx)
    receipt = s.ledger().authorize_auditor(s.key(key, key_env, password_file), auditor)
    out.print(f"registered auditor {auditor} in block {receipt['blockNumber']}")


@command(auditor_app, "revoke")
def auditor_revoke(
    ctx: typer.Context,
    auditor: Annotated[str, typer.Argument(help="address of the auditor key to revoke")],
    key: KeyOpt = "governance",
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Revoke an auditor key (governance key). Its attestations stay; it can record no more."""
    s = settings(ctx)
    receipt = s.ledger().revoke_auditor(s.key(key, key_env, password_file), auditor)
    out.print(f"revoked auditor {auditor} in block {receipt['blockNumber']}")


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
        target_bps=round(target * 100), valid_from=_record_time(valid_from), terms_hash=text_hash(terms),
        occurred_at=_record_time(at),
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
        commitment_id=short_code(commitment_id), reason_hash=text_hash(reason), occurred_at=_record_time(at)
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

    record = HolidayCalendar.from_dates(year, dates(holidays), dates(workdays), occurred_at=_record_time(at))
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


ReceiptOpt = Annotated[
    bool, typer.Option("--receipt/--no-receipt", help="give the citizen a receipt to follow, rate and dispute the case")
]
ReceiptDirOpt = Annotated[
    Path | None,
    typer.Option("--receipt-dir", help="where receipt-<REF>.html, .svg and .png go (default DATA_DIR/receipts)"),
]
PageUrlOpt = Annotated[
    str, typer.Option("--page-url", envvar="CIVIC_PAGE_URL", help="the public web page a receipt's QR code opens")
]


@command(case_app, "open")
def case_open(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="the agency's own case reference (never recorded)")],
    commitment: Annotated[str, typer.Option(help="commitment code the case falls under")],
    district: Annotated[str, typer.Option(help="district code (no finer location)")],
    channel: Annotated[str, typer.Option(help="counter, hotline, web, app, mail, proactive")],
    details: Annotated[str | None, typer.Option(help="free text; only its hash is recorded")] = None,
    at: AtOpt = None,
    receipt: ReceiptOpt = True,
    receipt_dir: ReceiptDirOpt = None,
    page_url: PageUrlOpt = DEFAULT_PAGE_URL,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Open a case and, unless --no-receipt, give the citizen a receipt: its code is printed once and written, with
    its QR code and a printable page, to --receipt-dir. The code is stored nowhere else: hand it over, then delete
    the files."""
    s = settings(ctx)
    if receipt:
        receipt_link(page_url, "0" * 20)  # a bad URL is refused before anything is recorded
    signer = s.key(key, key_env, password_file)
    agency = _agency_of(s, signer)
    directory = receipt_dir or s.data_dir / "receipts"
    with _open_writer(s, signer) as writer:
        ids = _case_ids(s, agency, writer.outbox)
        event = _case_event(ids, reference, "opened", at, details, receipt=receipt, commitment=commitment,
                            district=district, channel=channel)
        known = writer.outbox.receipt_case(event.case_id) if receipt else None
        on_chain = s.ledger().receipt_case(short_code(agency), event.case_id).status if receipt else None
        if (known is not None and known.has_receipt) or on_chain not in (None, ReceiptCaseStatus.NONE):
            _already_has_receipt(writer, reference, known.receipt_id if known else None, directory)
            return
        if known is not None and known.opened:
            # Opened through this outbox before, its receipt never issued (an interrupted run): not opened twice.
            opened_item = writer.outbox.get(known.opened_id) if known.opened_id is not None else None
            out.print(f"case {reference} was opened already; issuing its receipt")
            if opened_item is not None:
                event = opened_item.record  # type: ignore[assignment]
                writer.write(event)  # sent now if it was still waiting
        else:
            _report(writer.write(event))
        if receipt:
            _issue_receipt(s, writer, agency, reference, event, directory, page_url)


def _already_has_receipt(writer: Writer, reference: str, receipt_id: int | None, directory: Path) -> None:
    writer.flush()  # an interrupted run's receipt goes out now
    item = writer.outbox.get(receipt_id) if receipt_id is not None else None
    where = directory / f"{file_stem(reference)}.html"
    if item is None:
        state = "on the ledger"
    else:
        state = f"entry {item.seq}" if item.seq is not None else f"{item.state.value} in the outbox"
    files = f"; the receipt files written then are {where} (.svg, .png)" if where.exists() else ""
    fail(f"case {reference} was opened with a receipt already ({state}); a case gets one receipt, and its code is "
         f"stored nowhere, so it cannot be shown again{files}", code=1)


def _issue_receipt(s: Settings, writer: Writer, agency: str, reference: str, opened: CaseEvent, directory: Path,
                   page_url: str) -> None:
    """Make a code, write the citizen's files, then record the receipt's public key; the code is printed once."""
    code = new_code()
    link = receipt_link(page_url, code)
    record = Receipt(case_id=opened.case_id, receipt=receipt_address(code), occurred_at=opened.occurred_at)
    sheet = _sheet(s, agency, opened, code, link, reference)
    # The files go first: once the receipt is in the outbox it will reach the chain, and its code must not be lost.
    files = write_receipt_files(directory, reference, sheet)
    item = writer.submit(record)
    try:
        item = writer.write(record)
    except BaseException:
        now = writer.outbox.get(item.id)
        if now is None or now.state is OutboxState.FAILED:
            remove_receipt_files(files)
        else:
            err.print(f"the receipt waits in the outbox and goes out with the next write; the citizen's code is in "
                      f"{files.html}")
        raise
    out.print(f"receipt code: {format_code(code)}")
    out.print(f"receipt page: {link}")
    out.print(f"receipt recorded as entry {item.seq}; files for the citizen: {files.html}, {files.svg.name}, "
              f"{files.png.name}")
    out.print("the code is the only way to rate or dispute the case and is stored nowhere else: hand it over, then "
              "delete the files")


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


@command(case_app, "respond")
def case_respond(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="the agency's own case reference")],
    reopen: Annotated[bool, typer.Option("--reopen", help="reopen the case: the dispute is upheld")] = False,
    reject_dispute: Annotated[
        bool, typer.Option("--reject-dispute", help="stand by the fulfilment: the dispute is rejected (needs --reason)")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="why; only its hash is recorded (publish the text where citizens can see it)")
    ] = None,
    at: AtOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Answer a citizen's dispute of a fulfilled case, within 10 days: --reopen, or --reject-dispute --reason TEXT.
    (--reopen also reopens any closed case.)"""
    if reopen == reject_dispute:
        raise InvalidRecord("give exactly one of --reopen or --reject-dispute")
    if reject_dispute and not (reason and reason.strip()):
        raise InvalidRecord("--reject-dispute needs --reason: why the fulfilment stands (only its hash is recorded)")
    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    agency = _agency_of(s, signer)
    with _open_writer(s, signer) as writer:
        ids = _case_ids(s, agency, writer.outbox)
        case_id = ids.existing(reference)
        state = s.ledger().receipt_case(short_code(agency), case_id)
        if reject_dispute and state.status is ReceiptCaseStatus.NONE:
            fail(f"case {reference} has no receipt, so nobody can have disputed it", code=1)
        if reject_dispute and not state.disputed:
            fail(f"case {reference} has no dispute awaiting an answer", code=1)
        if reopen and state.status is ReceiptCaseStatus.OPEN:
            fail(f"case {reference} is open; only a closed case can be reopened", code=1)
        action = "reopened" if reopen else "dispute_rejected"
        event = _case_event(ids, reference, action, at, reason)
        _report(writer.write(event))
    if reason:
        out.print(f"reason hash {'0x' + text_hash(reason).hex()}: publish the reason's text, so anyone can check it")


def _case(ctx: typer.Context, reference: str, action: str, at: str | None, details: str | None, key: str | None,
          key_env: str | None, password_file: Path | None) -> None:
    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    agency = _agency_of(s, signer)
    with _open_writer(s, signer) as writer:
        event = _case_event(_case_ids(s, agency, writer.outbox), reference, action, at, details)
        _report(writer.write(event))


def _case_event(ids: CaseIds, reference: str, action: str, at: str | None, details: str | None, *,
                receipt: bool = False, **intake: str) -> CaseEvent:
    from ledger.importer import parse_row

    raw: dict[str, Any] = {"case": reference, "action": action, "occurred_at": _iso(_now_or(at)), **intake}
    if details:
        raw["details"] = details
    if action == "opened":
        raw["receipt"] = "yes" if receipt else "no"
    row = parse_row(1, raw, agency_id=ids.agency_id, salt=ids.salt, case_ids=ids, receipts=receipt)
    if row.record is None:
        raise InvalidRecord(row.error or "invalid case event")
    return row.record


def _case_ids(s: Settings, agency: str, outbox: Outbox) -> CaseIds:
    """References to case ids, remembering how each case was opened: this outbox first, then the ledger (a case
    opened with a receipt at another desk, with another key, is tracked there)."""
    ledger, agency_id = s.ledger(), short_code(agency)

    def opened_flagged(flagged: list[bytes]) -> set[bytes]:
        known = outbox.opened_flagged(flagged)
        return known | _receipt_cases_on_chain(ledger, agency_id, [c for c in flagged if c not in known])

    return CaseIds(s.salt(agency), agency, opened_flagged)


_RECEIPT_CASE_SELECTOR = keccak(b"receiptCase(bytes32,bytes32)")[:4]


def _receipt_cases_on_chain(ledger: Ledger, agency_id: bytes, case_ids: list[bytes]) -> set[bytes]:
    """Of these case ids, the ones the ledger tracks as issued a receipt: ``receiptCase`` read in JSON-RPC batches
    of 500 calls (an import may ask about thousands of references)."""
    found: set[bytes] = set()
    provider: Any = ledger.w3.provider
    for start in range(0, len(case_ids), 500):
        chunk = case_ids[start : start + 500]
        calls = [("eth_call", [{"to": ledger.address, "data": "0x" + (_RECEIPT_CASE_SELECTOR + agency_id + c).hex()},
                               "latest"]) for c in chunk]
        answers = provider.make_batch_request(calls) if len(calls) > 1 else [provider.make_request(*calls[0])]
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise LedgerError(f"the node answered a batch of {len(chunk)} calls with {answers!r:.200}")
        for case_id, answer in zip(chunk, answers, strict=True):
            if "error" in answer:
                raise LedgerError(f"could not read a case's receipt state from the ledger: {answer['error']}")
            result = bytes.fromhex(str(answer["result"])[2:])
            if int.from_bytes(result[32:64], "big") != 0:  # ReceiptCase.status (the second word) is not None
                found.add(case_id)
    return found


@contextmanager
def _open_writer(s: Settings, signer: AgencyKey) -> Iterator[Writer]:
    writer = s.writer(signer)
    try:
        yield writer
    finally:
        writer.close()


def _report(item: OutboxItem) -> None:
    out.print(f"recorded as entry {item.seq} (transaction {item.tx_hash})")


def _sheet(s: Settings, agency: str, opened: CaseEvent, code: str, link: str, reference: str) -> ReceiptSheet:
    """What the printed receipt shows, from the ledger's own entries: the agency's names, the commitment's latest
    version. Codes stand in for names the node cannot give (e.g. a node that limits log queries)."""
    ledger = s.ledger()
    agency_id = short_code(agency)
    names, commitment = (agency, agency), None
    start = s.deploy_block()
    try:
        for log in ledger.contract.events.AgencyRegistered.get_logs(
            argument_filters={"agencyId": agency_id}, from_block=start
        ):
            names = (log["args"]["nameZh"], log["args"]["nameEn"])
        for log in ledger.contract.events.CommitmentPublished.get_logs(
            argument_filters={"agencyId": agency_id, "commitmentId": opened.commitment_id}, from_block=start
        ):
            commitment = log["args"]["commitment"]
    except Exception as exc:  # noqa: BLE001 - the receipt is still valid without the names
        err.print(f"could not read the agency's and commitment's names from the ledger ({type(exc).__name__}); "
                  "the receipt shows their codes")
    code_id = code_text(opened.commitment_id)
    return ReceiptSheet(
        code=code, link=link, agency_id=agency, agency_name_zh=names[0], agency_name_en=names[1],
        commitment_id=code_id,
        commitment_name_zh=commitment["nameZh"] if commitment else code_id,
        commitment_name_en=commitment["nameEn"] if commitment else code_id,
        deadline=int(commitment["deadline"]) if commitment else 0,
        deadline_unit=DeadlineUnit(commitment["deadlineUnit"]) if commitment else DeadlineUnit.CALENDAR_HOURS,
        opened_at=opened.occurred_at, reference=reference,
    )


def _iso(value: int | str) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat() if isinstance(value, int) else value


@command(case_app, "import")
def case_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .csv, .jsonl or .ndjson file")],
    receipts_dir: Annotated[
        Path | None,
        typer.Option("--receipts", help="give opened rows receipts (a row's receipt column may say no): their files "
                     "and a CSV of reference,code,link for sending them go to this directory"),
    ] = None,
    page_url: PageUrlOpt = DEFAULT_PAGE_URL,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Import case events. Good rows are recorded, bad rows are listed with the reason; one never stops the rest.
    Running the same file again records nothing twice (with --receipts, the codes of the first run are reused from
    its CSV while that file is there)."""
    s = settings(ctx)
    if receipts_dir is not None:
        receipt_link(page_url, "0" * 20)
    signer = s.key(key, key_env, password_file)
    agency = _agency_of(s, signer)
    with _open_writer(s, signer) as writer:
        ids = _case_ids(s, agency, writer.outbox)
        ids.prefetch(references(path))  # how each later event's case was opened, asked all at once
        rows = list(read_rows(path, agency_id=agency, salt=s.salt(agency), case_ids=ids,
                              receipts=receipts_dir is not None))
        issued = _ImportReceipts(s, writer, agency, path, receipts_dir, page_url) if receipts_dir else None
        refused = [(r.line, r.error) for r in rows if r.error]
        good = [r for r in rows if r.record is not None]
        submissions: list[tuple[int, Record]] = []  # (line, record): each opened row's receipt right after it
        for row in good:
            assert row.record is not None
            submissions.append((row.line, row.record))
            if issued is not None and row.receipt:
                made = issued.receipt_for(row)
                if made is not None:
                    submissions.append((row.line, made))
        if issued is not None:
            issued.write_files()
        items: list[OutboxItem] = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("recording", total=len(submissions))
            for start in range(0, len(submissions), 1000):
                chunk = submissions[start : start + 1000]
                submitted = writer.submit_many([record for _, record in chunk])
                finished = {i.id: i for i in writer.flush()}
                items += [finished.get(i.id, i) for i in submitted]
                bar.update(task, completed=start + len(chunk))
            writer.flush()  # receipts held for their openings go now
        items = [writer.outbox.get(i.id) or i for i in items]
        if issued is not None:
            issued.settle(items, [record for _, record in submissions])
    failed = [(line, i.error) for (line, _), i in zip(submissions, items, strict=True) if i.state is OutboxState.FAILED]
    recorded = sum(1 for (_, r), i in zip(submissions, items, strict=True)
                   if i.state is OutboxState.RECORDED and isinstance(r, CaseEvent))
    summary = Table(title=f"import of {path.name}")
    summary.add_column("rows", justify="right")
    summary.add_column("recorded", justify="right")
    summary.add_column("refused before sending", justify="right")
    summary.add_column("refused by the ledger", justify="right")
    if issued is not None:
        summary.add_column("receipts", justify="right")
    failed_rows = len({line for line, _ in failed})
    cells = [str(len(rows)), str(recorded), str(len(refused)), str(failed_rows)]
    if issued is not None:
        cells.append(str(issued.recorded))
    summary.add_row(*cells)
    out.print(summary)
    if issued is not None:
        issued.report()
    problems = sorted(refused + [(line, e or "failed") for line, e in failed])
    if problems:
        _problems_table(problems)
        raise typer.Exit(1)


class _ImportReceipts:
    """The receipts of one import: a code per opened row that asks for one, the citizen's files, and
    ``<file>-receipts.csv`` (reference, code, link) for sending them by mail merge. That CSV holds secrets.

    Idempotent: a row whose case already has a receipt from an earlier run gets the same code again when the earlier
    CSV still lists it (so the same Receipt record, which the outbox records once); otherwise it gets none, and the
    report says so. Receipts the ledger refused (their case's opening was refused) lose their files and CSV line."""

    def __init__(self, s: Settings, writer: Writer, agency: str, source: Path, directory: Path, page_url: str) -> None:
        self.s, self.writer, self.agency, self.directory, self.page_url = s, writer, agency, directory, page_url
        self.csv_path = directory / f"{source.stem}-receipts.csv"
        self.earlier = self._read_earlier()
        self.codes: dict[str, tuple[str, CaseEvent]] = {}  # reference -> (code, its opened event)
        self.files: dict[str, ReceiptFiles] = {}
        self.skipped: list[str] = []
        self.recorded = 0
        self.refused = 0
        self._sheets: dict[bytes, Any] = {}

    def _read_earlier(self) -> dict[str, str]:
        if not self.csv_path.exists():
            return {}
        with self.csv_path.open(newline="", encoding="utf-8") as handle:
            return {row["reference"]: row["code"] for row in csv.DictReader(handle) if row.get("code")}

    def receipt_for(self, row: Any) -> Receipt | None:
        opened: CaseEvent = row.record
        reference: str = row.reference
        known = self.writer.outbox.receipt_case(opened.case_id)
        code = None
        if known is not None and known.has_receipt and known.receipt_id is not None:
            item = self.writer.outbox.get(known.receipt_id)
            earlier = self.earlier.get(reference)
            if item is not None and earlier and receipt_address(earlier) == getattr(item.record, "receipt", None):
                code = earlier
            else:
                self.skipped.append(reference)
                return None
        code = code or new_code()
        self.codes[reference] = (code, opened)
        return Receipt(case_id=opened.case_id, receipt=receipt_address(code), occurred_at=opened.occurred_at)

    def write_files(self) -> None:
        """Before anything is sent: a receipt that reaches the chain must have its code on disk."""
        for reference, (code, opened) in self.codes.items():
            link = receipt_link(self.page_url, code)
            self.files[reference] = write_receipt_files(
                self.directory, reference, _sheet_cached(self, opened, code, link, reference)
            )
        self._write_csv(self.codes)

    def _write_csv(self, codes: dict[str, tuple[str, CaseEvent]]) -> None:
        if not codes and not self.csv_path.exists():
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["reference", "code", "link"])
        for reference, (code, _) in codes.items():
            writer.writerow([reference, format_code(code), receipt_link(self.page_url, code)])
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.csv_path.with_suffix(".tmp")
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.csv_path)

    def settle(self, items: list[OutboxItem], records: list[Record]) -> None:
        """After sending: drop the files and CSV lines of receipts the ledger refused."""
        by_case = {r.case_id: i for r, i in zip(records, items, strict=True) if isinstance(r, Receipt)}
        kept = {}
        for reference, (code, opened) in self.codes.items():
            item = by_case.get(opened.case_id)
            if item is not None and item.state is OutboxState.FAILED:
                remove_receipt_files(self.files[reference])
                self.refused += 1
                continue
            if item is not None and item.state is OutboxState.RECORDED:
                self.recorded += 1
            kept[reference] = (code, opened)
        self.codes = kept
        self._write_csv(kept)

    def report(self) -> None:
        if self.codes:
            out.print(f"receipts: {len(self.codes)} in {self.directory} (receipt-<REF>.html, .svg, .png), and "
                      f"{self.csv_path} (reference, code, link) for sending them by link or mail merge")
            out.print(f"[bold]{self.csv_path.name} holds the receipt codes, which are secrets: the code is the only "
                      "way to rate or dispute a case and is stored nowhere else. Send each to its citizen, then delete "
                      "the file.[/]")
        pending = len(self.codes) - self.recorded
        if pending:
            out.print(f"{pending} receipt(s) wait in the outbox and go out with the next write")
        if self.skipped:
            out.print(f"{len(self.skipped)} case(s) had a receipt from an earlier run whose code is no longer in "
                      f"{self.csv_path.name}; none was issued again (a case gets one receipt)")
        if self.refused:
            out.print(f"{self.refused} receipt(s) not issued because their case's opening was refused")


def _sheet_cached(issued: _ImportReceipts, opened: CaseEvent, code: str, link: str, reference: str) -> ReceiptSheet:
    """One ledger lookup per commitment, not per row."""
    template = issued._sheets.get(opened.commitment_id)
    if template is None:
        template = issued._sheets[opened.commitment_id] = _sheet(issued.s, issued.agency, opened, code, link,
                                                                 reference)
    return dataclasses.replace(template, code=code, link=link, opened_at=opened.occurred_at, reference=reference)


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


# ------------------------------------------------------------------------------------------ Merkle batches

#: entries in one anchored batch, unless --max-entries says otherwise (a file of about 30 MB)
DEFAULT_BATCH_ENTRIES = 100_000
NO_BATCH_RECEIPTS = ("receipt requested, but batched cases get no receipts (the ledger tracks a receipt case's state "
                     "one event at a time): import this row with `case import --receipts`")
BATCH_RECEIPT_CASE = ("the case was opened with a receipt: the ledger tracks its state one event at a time, so its "
                      "events are recorded with `case import` or `case update`, not in a batch")
BatchDirOpt = Annotated[
    Path | None,
    typer.Option("--batches", help="batch directory: where files are published for the API and the indexer "
                 "(default DATA_DIR/batches)"),
]


def _batch_store(s: Settings, batch_dir: Path | None) -> batches.BatchStore:
    return batches.BatchStore(batch_dir or s.data_dir / "batches")


def _batchable(s: Settings, agency: str, rows: list[Row]) -> tuple[list[CaseEvent], list[tuple[int, str]]]:
    """The rows' events that may go in a batch, and why the others may not. The contract checks nothing of a
    batched event, so what it would refuse in a single one is refused here, before anything is published: a claimed
    time after the chain's clock, an opening under a commitment the agency has not published or has retired, and
    any event of a case with a receipt (their state is tracked on chain; a dispute answer needs one)."""
    ledger, agency_id = s.ledger(), short_code(agency)
    now = int(ledger.w3.eth.get_block("latest")["timestamp"])
    commitments: dict[bytes, str | None] = {}
    events: list[CaseEvent] = []
    refused = [(r.line, r.error or "invalid row") for r in rows if r.record is None]
    for row in rows:
        event = row.record
        if event is None:
            continue
        why = None
        if is_receipt_case(event.case_id):
            why = BATCH_RECEIPT_CASE
        elif event.action is CaseAction.DISPUTE_REJECTED:
            why = "dispute_rejected answers a citizen's dispute, which only a case with a receipt can have"
        elif event.occurred_at > now:
            why = (f"occurred_at is after the chain's latest block time "
                   f"({datetime.fromtimestamp(now, UTC).isoformat()}): the ledger refuses claimed times in "
                   "the future")
        elif event.action is CaseAction.OPENED:
            if event.commitment_id not in commitments:
                version, retired = ledger.commitment_state(agency_id, event.commitment_id)
                name = code_text(event.commitment_id)
                commitments[event.commitment_id] = (
                    f"UnknownCommitment: {agency} has not published commitment {name}" if version == 0
                    else f"CommitmentIsRetired: commitment {name} of {agency} is retired" if retired else None
                )
            why = commitments[event.commitment_id]
        if why is None:
            events.append(event)
        else:
            refused.append((row.line, why))
    return events, sorted(refused)


def _problems_table(problems: list[tuple[int, str]]) -> None:
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


@command(batch_app, "submit")
def batch_submit(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .csv, .jsonl or .ndjson file")],
    max_entries: Annotated[
        int, typer.Option("--max-entries", help="split larger inputs into batches of at most this many entries")
    ] = DEFAULT_BATCH_ENTRIES,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="anchor the good rows even when some are refused (submit the fixed "
                           "rows alone later: an edited file is a new batch, whose good rows would be recorded twice)")
    ] = False,
    batch_dir: BatchDirOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Record case events as Merkle-anchored batches: rows as for `case import`; each batch's file is published to
    the batch directory (which the API serves) and its root, count and file hash anchored in one transaction.
    Batched cases get no receipts, and cases with one are refused (record those with `case import`). Any refused
    row stops the whole file unless --skip-invalid. Running the command again anchors nothing twice: a batch is
    recognised on chain by its file's hash."""
    s = settings(ctx)
    if not 1 <= max_entries <= batches.MAX_ENTRIES:
        raise InvalidRecord(f"--max-entries must be from 1 to {batches.MAX_ENTRIES:,}")
    signer = s.key(key, key_env, password_file)
    agency = _agency_of(s, signer)
    s.ledger()  # the chain and the contract are checked before the input is read
    store = _batch_store(s, batch_dir)
    with _open_writer(s, signer) as writer:
        ids = _case_ids(s, agency, writer.outbox)
        with err.status(f"reading {path.name}…"):
            ids.prefetch(references(path))
            rows = list(read_rows(path, agency_id=agency, salt=s.salt(agency), case_ids=ids,
                                  no_receipts=NO_BATCH_RECEIPTS))
        # This key's outbox goes first: its transactions and the anchors share the key's nonces.
        waiting = writer.outbox.counts()[OutboxState.PENDING]
        sent = writer.flush()
        if waiting or sent:
            err.print(f"{len(sent) or waiting} entries waiting in the outbox of {signer.address} were sent first")
    events, refused = _batchable(s, agency, rows)
    summary = Table(title=f"batch submit of {path.name}")
    for column in ("rows", "to batch", "refused"):
        summary.add_column(column, justify="right")
    summary.add_row(str(len(rows)), str(len(events)), str(len(refused)))
    out.print(summary)
    if refused:
        _problems_table(refused)
        if not skip_invalid:
            out.print("nothing was anchored: fix or remove these rows and run the command again (or pass "
                      "--skip-invalid to anchor the others now)")
            raise typer.Exit(1)
    if not events:
        fail("no rows to batch", code=1)
    _anchor_all(s, signer, events, store, max_entries)
    out.print("receipts are not issued for batched cases; each entry's Merkle proof is served by the API once the "
              "index has synced (`civic-ledger batch verify SEQ INDEX` checks one here)")
    if refused:
        raise typer.Exit(1)


def _anchor_all(s: Settings, signer: AgencyKey, events: list[CaseEvent], store: batches.BatchStore,
                max_entries: int) -> None:
    ledger, w3 = s.ledger(), s.ledger().w3
    pending = w3.eth.get_transaction_count(signer.address, "pending") - w3.eth.get_transaction_count(signer.address)
    if pending > 0:
        # An earlier anchoring that timed out may still be in the node's pool: another now could anchor it twice.
        fail(f"{signer.address} has {pending} transaction(s) in the node's pool, not mined yet (an earlier run's "
             "anchoring?): run this again once they are mined, so that no batch is anchored twice")
    agency_id = ledger.agency_of(signer.address)
    start = s.deploy_block()
    count = -(-len(events) // max_entries)
    out.print(f"{len(events):,} entries in {count} batch(es) of at most {max_entries:,}")
    for number, start_index in enumerate(range(0, len(events), max_entries), start=1):
        chunk = events[start_index : start_index + max_entries]
        with err.status(f"building and anchoring batch {number} of {count} ({len(chunk):,} entries)…"):
            batch = batches.build_batch(chunk)
            path = store.put(batch)  # published first: a file nobody anchored is harmless
            found = batches.find_anchored(ledger, agency_id, batch.file_hash, start)
            try:
                anchored = found or batches.anchor(ledger, signer, batch, store, from_block=start)
            except BaseException as exc:
                err.print(f"the batch of the input's entries {start_index + 1}-{start_index + len(chunk)} was "
                          f"published to {path}, but its anchoring did not complete (or its answer was lost). The "
                          "file alone is harmless: nothing refers to it. Run the command again: it anchors what is "
                          "missing, and nothing twice")
                if isinstance(exc, TimeExhausted):
                    fail(f"the anchoring transaction was not mined in time ({exc})", code=1)
                raise
        gas = int(w3.eth.get_transaction_receipt(HexStr("0x" + anchored.tx_hash.hex()))["gasUsed"])
        out.print(f"batch at seq {anchored.seq}: entries {anchored.seq}-{anchored.seq + batch.count - 1} "
                  f"({batch.count:,}), {'anchored earlier' if found else 'anchored now'} in block "
                  f"{anchored.block_number}, gas {gas:,} ({gas / batch.count:.2f} per entry)")
        out.print(f"  root         0x{batch.root.hex()}", soft_wrap=True)
        out.print(f"  file hash    0x{batch.file_hash.hex()}", soft_wrap=True)
        out.print(f"  file         {path}", soft_wrap=True)
        out.print(f"  transaction  0x{anchored.tx_hash.hex()}", soft_wrap=True)


@command(batch_app, "verify")
def batch_verify(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="the batch's first seq (its anchor's)")],
    index: Annotated[int, typer.Argument(help="the entry's position in the batch: its seq minus the batch's")],
    batch_dir: BatchDirOpt = None,
) -> None:
    """Show a batched entry, its Merkle proof, and check it off chain and with the contract's verifyBatchEntry."""
    s = settings(ctx)
    ledger = s.ledger()
    found = _batch_anchor(ledger, seq, s.deploy_block())
    if found is None:
        fail(f"no batch is anchored at seq {seq} (give the batch's first seq, and the entry's index in it)", code=1)
    root, count, file_hash = bytes(found["root"]), int(found["count"]), bytes(found["fileHash"])
    if not 0 <= index < count:
        fail(f"the batch at seq {seq} holds {count} entries: index must be from 0 to {count - 1}", code=1)
    store = _batch_store(s, batch_dir)
    content = store.get(file_hash)
    if content is None:
        fail(f"the batch file 0x{file_hash.hex()} is not in {store.directory} (the API serves it at "
             f"/api/v1/batches/{seq}/file)", code=1)
    batch = batches.rebuild(content)
    if batch.root != root or batch.count != count:
        fail(f"the file {store.path(file_hash)} does not build the anchored root and count", code=1)
    event, record_hash, proof = batch.events[index], batch.record_hashes[index], batch.proof(index)
    off_chain = batches.verify_proof(root, index, record_hash, proof)
    on_chain = ledger.verify_batch_entry(seq, index, record_hash, proof)
    out.print(f"entry {seq + index}: index {index} of the batch at seq {seq} ({count:,} entries, agency "
              f"{code_text(bytes(found['agencyId']))}, signer {found['signer']})")
    out.print(f"  case 0x{event.case_id.hex()} {event.action.name.lower()} at "
              f"{datetime.fromtimestamp(event.occurred_at, UTC).isoformat()}"
              + (f", commitment {code_text(event.commitment_id)}, district {code_text(event.district)}, channel "
                 f"{event.channel}" if event.action is CaseAction.OPENED else ""))
    out.print(f"  record hash 0x{record_hash.hex()}", soft_wrap=True)
    out.print(f"  root        0x{root.hex()}", soft_wrap=True)
    out.print(f"  file hash   0x{file_hash.hex()}", soft_wrap=True)
    out.print(f"  Merkle proof ({len(proof)} hashes, {32 * len(proof)} bytes):")
    for sibling in proof:
        out.print(f"    0x{sibling.hex()}", soft_wrap=True)
    out.print(f"  off chain (ledger.batches.verify_proof): {'valid' if off_chain else 'INVALID'}")
    out.print(f"  on chain (verifyBatchEntry):             {'valid' if on_chain else 'INVALID'}")
    if not (off_chain and on_chain):
        raise typer.Exit(1)


def _batch_anchor(ledger: Ledger, seq: int, from_block: int) -> dict[str, Any] | None:
    """The BatchAnchored event whose first seq is `seq` (its first indexed topic), if any."""
    event = ledger.contract.events.BatchAnchored
    logs = ledger.w3.eth.get_logs({"address": ledger.address, "fromBlock": from_block, "toBlock": "latest",
                                   "topics": [event.topic, "0x" + seq.to_bytes(32, "big").hex()]})
    return dict(event().process_log(logs[0])["args"]) if logs else None


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
    batch_dir: Annotated[
        Path | None, typer.Option("--batches", help="where the batches' files are read (default DATA_DIR/batches)")
    ] = None,
) -> None:
    """Index the chain's entries into the SQL store (resumes where it stopped). A Merkle batch whose file is not in
    the batch directory, or does not match its anchor, is withheld (its events left out, shown against its agency)
    and indexing goes on; a withheld batch's events slot in once the right file is published."""
    import threading

    from ledger.index.sync import Indexer
    from ledger.store.db import open_store

    s = settings(ctx)
    ledger = s.ledger()
    deploy_block = s.deploy_block() or None
    opened = open_store(_store_url(s, store))
    try:
        indexer = Indexer(ledger.chain, ledger.address, opened, confirmations=confirmations,
                          deploy_block=deploy_block, batch_dir=batch_dir or s.data_dir / "batches",
                          alert=lambda message: err.print(f"[bold red]alert:[/] {message}"))
        with err.status("indexing…"):
            report = indexer.sync()
        out.print(f"indexed {report.entries} entries up to block {indexer.last_block()} "
                  f"(final up to block {indexer.finalized_block()}) at {report.entries_per_s:,.0f} entries/s")
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
               "rejected", "rating", "rated", "disputes")
    table.add_column(by)
    for column in columns:
        table.add_column(column, justify="right")
    for key, value in sorted(rows.items(), key=lambda kv: _label(kv[0])):
        d = value.to_dict()
        table.add_row(
            _label(key), str(d["cases_opened"]), str(d["cases_closed"]), _pct(d["on_time_rate"]),
            _pct(d["target_rate"]), _hours(d["median_fulfil_seconds"]), _hours(d["p90_fulfil_seconds"]),
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
