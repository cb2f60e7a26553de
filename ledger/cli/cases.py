"""An agency's cases, one by one or imported from a file, through the agency key's outbox: open (with the citizen's
receipt), update, close, respond to a dispute, rectify after a bad rating, import; and the receipt sheets handed to
citizens."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from web3.exceptions import Web3Exception

from ledger.cases import BAD_RATING_MAX
from ledger.cli.common import (
    AtOpt,
    KeyEnvOpt,
    KeyOpt,
    PasswordOpt,
    Settings,
    agency_of,
    case_ids_of,
    command,
    err,
    fail,
    now_or,
    open_writer,
    out,
    problems_table,
    settings,
)
from ledger.encoding import code_text
from ledger.errors import InvalidRecord
from ledger.importer import CaseIds, filed_seq, read_rows, references
from ledger.receipt_state import event_refusal
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
    CaseAction,
    CaseEvent,
    DeadlineUnit,
    FilingStatus,
    Receipt,
    ReceiptCaseStatus,
    Record,
    short_code,
    text_hash,
)
from ledger.writer.outbox import OutboxItem, OutboxState
from ledger.writer.sender import Writer

case_app = typer.Typer(help="An agency's cases.", no_args_is_help=True)


class Action(str, Enum):
    accepted = "accepted"
    on_hold = "on_hold"
    resumed = "resumed"
    escalated = "escalated"
    fulfilled = "fulfilled"
    rejected = "rejected"
    withdrawn = "withdrawn"


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
    agency = agency_of(s, signer)
    directory = receipt_dir or s.data_dir / "receipts"
    with open_writer(s, signer) as writer:
        ids = case_ids_of(s, agency, writer.outbox)
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
    agency = agency_of(s, signer)
    _filed_case_open(s, reference)
    with open_writer(s, signer) as writer:
        ids = case_ids_of(s, agency, writer.outbox)
        case_id = ids.existing(reference)
        state = s.ledger().receipt_case(short_code(agency), case_id)
        refusal = event_refusal(state, CaseAction.REOPENED if reopen else CaseAction.DISPUTE_REJECTED)
        if refusal == "CaseNotDisputed":
            fail(f"case {reference} has no receipt, so nobody can have disputed it"
                 if state.status is ReceiptCaseStatus.NONE else f"case {reference} has no dispute awaiting an answer",
                 code=1)
        if refusal is not None:
            fail(f"case {reference} is open; only a closed case can be reopened", code=1)
        action = "reopened" if reopen else "dispute_rejected"
        event = _case_event(ids, reference, action, at, reason)
        _report(writer.write(event))
    if reason:
        out.print(f"reason hash {'0x' + text_hash(reason).hex()}: publish the reason's text, so anyone can check it")


@command(case_app, "rectify")
def case_rectify(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="the agency's own case reference")],
    report: Annotated[
        str, typer.Option(help="the rectification report: what the agency changed; only its hash is recorded "
                          "(publish the text where citizens can see it)")
    ],
    at: AtOpt = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Answer a citizen's bad rating (1 or 2) with the agency's rectification (差评整改), due within 15 working days
    of the rating: --report TEXT."""
    if not report.strip():
        raise InvalidRecord("--report needs the rectification report's text (only its hash is recorded)")
    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    agency = agency_of(s, signer)
    _filed_case_open(s, reference)
    with open_writer(s, signer) as writer:
        ids = case_ids_of(s, agency, writer.outbox)
        case_id = ids.existing(reference)
        state = s.ledger().receipt_case(short_code(agency), case_id)
        if event_refusal(state, CaseAction.RECTIFIED) == "CaseNotRated":
            fail(f"case {reference} has no rating to rectify ("
                 + ("it has no receipt, so nobody can rate it)" if state.status is ReceiptCaseStatus.NONE
                    else "its citizen has not rated it)"), code=1)
        score = _score(s, short_code(agency), case_id)
        if score is not None and score > BAD_RATING_MAX:
            # The contract keeps no score and would take it; the ledger's fold would call it an invalid transition.
            fail(f"case {reference} was rated {score}: only a bad rating (1 to {BAD_RATING_MAX}) is rectified", code=1)
        event = _case_event(ids, reference, "rectified", at, report)
        _report(writer.write(event))
    out.print(f"report hash {'0x' + text_hash(report).hex()}: publish the report's text, so anyone can check it")


def _score(s: Settings, agency_id: bytes, case_id: bytes) -> int | None:
    """The score of the case's rating (its CaseRated entry; a case is rated once), or None when it cannot be read."""
    ledger = s.ledger()
    try:
        logs = ledger.contract.events.CaseRated.get_logs(
            argument_filters={"agencyId": agency_id, "caseId": case_id}, from_block=s.deploy_block()
        )
    except (Web3Exception, OSError) as exc:  # a node that limits log queries, or is gone: the score goes unchecked
        err.print(f"could not read the case's rating from the ledger ({type(exc).__name__}); not checked that it is "
                  "a bad one")
        return None
    return int(logs[0]["args"]["score"]) if logs else None


def _case(ctx: typer.Context, reference: str, action: str, at: str | None, details: str | None, key: str | None,
          key_env: str | None, password_file: Path | None) -> None:
    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    agency = agency_of(s, signer)
    _filed_case_open(s, reference)
    with open_writer(s, signer) as writer:
        event = _case_event(case_ids_of(s, agency, writer.outbox), reference, action, at, details)
        _report(writer.write(event))


def _filed_case_open(s: Settings, reference: str) -> None:
    """A ``filing:SEQ`` reference names a case only once its filing is accepted: refuse events of it before (the
    ledger would record them, and the auditor would report them as events of a case never opened)."""
    seq = filed_seq(reference)
    if seq is None:
        return
    status = s.ledger().filing_state(seq).status
    if status != FilingStatus.ACCEPTED:
        what = {FilingStatus.NONE: "no such filing", FilingStatus.FILED: "the filing is not answered yet",
                FilingStatus.REJECTED: "the filing was rejected"}[status]
        fail(f"case {reference}: {what}, so its case is not open (`intake accept` opens it)", code=1)


def _case_event(ids: CaseIds, reference: str, action: str, at: str | None, details: str | None, *,
                receipt: bool = False, **intake: str) -> CaseEvent:
    from ledger.importer import parse_row

    raw: dict[str, Any] = {"case": reference, "action": action, "occurred_at": _iso(now_or(at)), **intake}
    if details:
        raw["details"] = details
    if action == "opened":
        raw["receipt"] = "yes" if receipt else "no"
    row = parse_row(1, raw, agency_id=ids.agency_id, salt=ids.salt, case_ids=ids, receipts=receipt)
    if row.record is None:
        raise InvalidRecord(row.error or "invalid case event")
    return row.record


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
    agency = agency_of(s, signer)
    with open_writer(s, signer) as writer:
        ids = case_ids_of(s, agency, writer.outbox)
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
        problems_table(problems)
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
