"""Citizens' filings for the agency that must answer them: ``intake list``, ``intake show``, ``intake accept`` and
``intake reject`` (``docs/ledger-format.md``, "The filings module").

Reading needs no key: the filings and their answers are read from the index (``sync`` first), with when each answer
is due (``ledger.filings.answer_due``: one working day of the filing's block time, as the index computed it).
Answering needs one of the agency's keys and goes through the writer's durable outbox like every other agency write,
so an interrupted command can be run again and nothing is answered twice; the module's own state is asked first, so
that a filing of another agency, one answered already or no filing at all is refused with a clear message before
anything is sent. Only hashes go on chain: a rejection's reason text is hashed here, and must be published where the
citizen can read it.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ledger import receipts
from ledger.cli.common import (
    KeyEnvOpt,
    KeyOpt,
    PasswordOpt,
    Settings,
    agency_of,
    case_ids_of,
    command,
    fail,
    open_writer,
    out,
    settings,
)
from ledger.cli.index import StoreOpt, _store_url
from ledger.encoding import ZERO32
from ledger.errors import InvalidRecord
from ledger.filings import DECISION_NAMES, answer_refusal, late, overdue
from ledger.records import CHANNEL_NAMES, FilingAnswer, FilingDecision, filed_case_id, short_code, text_hash

intake_app = typer.Typer(help="Citizens' filings for your agency: list, show, accept, reject.", no_args_is_help=True)



class Reason(str, Enum):
    duplicate = "duplicate"
    out_of_scope = "out-of-scope"
    spam = "spam"


_DECISION = {Reason.duplicate: FilingDecision.DUPLICATE, Reason.out_of_scope: FilingDecision.OUT_OF_SCOPE,
             Reason.spam: FilingDecision.SPAM}
AgencyOpt = Annotated[str, typer.Option("--agency", help="the agency's code")]


def _rows(s: Settings, store: str | None, agency: str, *, seq: int | None = None,
          unanswered: bool = False) -> list[dict[str, Any]]:
    from sqlalchemy import select
    from sqlalchemy.exc import DBAPIError

    from ledger.store.db import open_store
    from ledger.store.schema import filings

    url = _store_url(s, store)
    opened = open_store(url, migrate=False)
    try:
        query = select(filings).where(filings.c.agency_id == agency).order_by(filings.c.seq)
        if seq is not None:
            query = query.where(filings.c.seq == seq)
        if unanswered:
            query = query.where(filings.c.answer_seq.is_(None))
        with opened.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
    except DBAPIError:
        fail(f"the index ({url}) has no filings to read: run `civic-ledger sync` first")
    finally:
        opened.close()


def _time(unix: int | None) -> str:
    return "–" if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _standing(row: dict[str, Any], now: int) -> str:
    due = row["answer_due"]
    if row["answer_seq"] is None:
        return "OVERDUE" if overdue(due, now, answered=False) else "awaiting"
    decision = DECISION_NAMES.get(row["decision"], "?").replace("_", " ")
    return f"{decision} at seq {row['answer_seq']}{' (late)' if late(due, row['answered_at']) else ''}"


def _channel(code: int) -> str:
    return CHANNEL_NAMES.get(code, str(code))


@command(intake_app, "list")
def intake_list(
    ctx: typer.Context,
    agency: AgencyOpt,
    store: StoreOpt = None,
    all_filings: Annotated[bool, typer.Option("--all", help="answered ones too")] = False,
) -> None:
    """The agency's filings awaiting an answer (all of them with --all), oldest first, with when each answer is due
    (one working day of the filing). From the index: run `sync` first."""
    s = settings(ctx)
    rows = _rows(s, store, agency, unanswered=not all_filings)
    now = int(time.time())
    table = Table(title=f"filings of {agency}" + ("" if all_filings else " awaiting an answer"))
    for column in ("seq", "filed", "commitment", "district", "channel", "answer due", "standing"):
        table.add_column(column)
    for row in rows:
        due = row["answer_due"]
        table.add_row(str(row["seq"]), _time(row["block_time"]), row["commitment_id"], row["district"],
                      _channel(row["channel"]), _time(due), _standing(row, now))
    out.print(table)
    if not rows:
        out.print("none" + ("" if all_filings else " awaiting an answer (--all shows the answered ones)"))


@command(intake_app, "show")
def intake_show(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="the filing's seq (its id on the ledger)")],
    agency: AgencyOpt,
    store: StoreOpt = None,
) -> None:
    """One filing: what the ledger holds of it (public codes and hashes), its answer window and its answer."""
    s = settings(ctx)
    rows = _rows(s, store, agency, seq=seq)
    if not rows:
        fail(f"no filing {seq} of {agency} in the index (run `sync`; or it is another agency's)", code=1)
    row = rows[0]
    due = row["answer_due"]
    lines = [
        ("filing", f"seq {row['seq']}, filed {_time(row['block_time'])} (the case's clock starts here)"),
        ("commitment", row["commitment_id"]),
        ("district", row["district"]),
        ("channel", _channel(row["channel"])),
        ("filer's key", row["receipt"]),
        ("relayed by", row["relayer"]),
        ("content hash", "0x" + bytes(row["content_hash"]).hex()),
        ("answer due", _time(due)),
        ("standing", _standing(row, int(time.time()))),
    ]
    if row["answer_seq"] is not None and row["case_id"] is not None:
        lines.append(("case", "0x" + bytes(row["case_id"]).hex()))
    if row["duplicate_of"] is not None and bytes(row["duplicate_of"]) != ZERO32:
        lines.append(("duplicate of", "0x" + bytes(row["duplicate_of"]).hex()))
    if row["reason_hash"] is not None and bytes(row["reason_hash"]) != ZERO32:
        lines.append(("reason hash", "0x" + bytes(row["reason_hash"]).hex()))
    lines += _private_lines(s, row)
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        out.print(f"{name:<{width}}  {value}", markup=False, highlight=False)
    out.print("The request's text, photos and contact details are not on the ledger: only their hash is. They are "
              "yours to read, not to publish.")


def _private_lines(s: Settings, row: dict[str, Any]) -> list[tuple[str, str]]:
    """What the filer wrote, from this service's private store (``ledger.relay.store.CitizenFiles``), checked
    against the filing's content hash; a line saying so when the store holds none (filed through another service)."""
    from ledger.relay.store import CitizenFiles

    stored = CitizenFiles(s.data_dir / "relay").filing(row["receipt"], bytes(row["content_hash"]))
    if stored is None:
        return [("request", "(not held by this service: filed through another relay, or its copy is damaged)")]
    content = stored.content
    lines = [("request", content.description)]
    if content.address:
        lines.append(("address", content.address))
    if content.lat:
        lines.append(("point", f"{content.lat}, {content.long}"))
    for code, values in content.attributes.items():
        lines.append((f"answer: {code}", "; ".join(values)))
    if content.media_url:
        lines.append(("link", content.media_url))
    for name, value in content.contact.items():
        lines.append((f"contact: {name}", value))
    for index, attachment in enumerate(content.attachments):
        lines.append((f"photo {index + 1}", f"{attachment.media_type}, {attachment.size} bytes, sha256 "
                                            f"{attachment.sha256} (`intake photo {row['seq']} {index + 1}`)"))
    return lines


@command(intake_app, "photo")
def intake_photo(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="the filing's seq")],
    number: Annotated[int, typer.Argument(help="which photo, from 1")],
    agency: AgencyOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write it")],
    store: StoreOpt = None,
) -> None:
    """Write one of a filing's photos (from this service's private store) to a file only you can read."""
    s = settings(ctx)
    rows = _rows(s, store, agency, seq=seq)
    if not rows:
        fail(f"no filing {seq} of {agency} in the index (run `sync`; or it is another agency's)", code=1)
    from ledger.relay.store import CitizenFiles

    stored = CitizenFiles(s.data_dir / "relay").filing(rows[0]["receipt"], bytes(rows[0]["content_hash"]))
    if stored is None or not 1 <= number <= len(stored.photos):
        count = 0 if stored is None else len(stored.photos)
        fail(f"filing {seq} has {count} photo{'s' if count != 1 else ''} held by this service", code=1)
    _, data = stored.photos[number - 1]
    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    out.print(f"wrote {len(data)} bytes to {output}")


def _answer(s: Settings, seq: int, decision: FilingDecision, key: str | None, key_env: str | None,
            password_file: Any, *, reason: str | None = None, duplicate_of: str | None = None) -> None:
    """Answer filing `seq` with the key given (loaded once), after the module's state says it would take the answer;
    `duplicate_of`: the case a duplicate duplicates, the agency's own reference or a 0x case id."""
    signer = s.key(key, key_env, password_file)
    agency = agency_of(s, signer)
    state = s.ledger().filing_state(seq)
    refusal = answer_refusal(state.status, state.agency_id, short_code(agency))
    if refusal is not None:
        fail(f"filing {seq}: {refusal}", code=1)
    with open_writer(s, signer) as writer:
        duplicate = ZERO32
        if duplicate_of is not None:
            duplicate = _case_id(duplicate_of) or case_ids_of(s, agency, writer.outbox).existing(duplicate_of)
        answer = FilingAnswer(filing_seq=seq, decision=decision, duplicate_of=duplicate,
                              reason_hash=text_hash(reason) if reason else ZERO32)
        item = writer.write(answer)
    out.print(f"recorded as entry {item.seq} (transaction {item.tx_hash})")
    if decision == FilingDecision.ACCEPTED:
        out.print(f"case 0x{filed_case_id(seq).hex()} is open, its clock started at the filing; record its later "
                  f"events as case filing:{seq} (`case update filing:{seq} …`, `case close filing:{seq} …`)")
    if reason:
        out.print(f"reason hash 0x{text_hash(reason).hex()}: publish the reason's text, so the citizen can read it")


def _case_id(given: str) -> bytes | None:
    """A case given as its 0x id (None: given as the agency's own reference)."""
    if not given.startswith("0x"):
        return None
    try:
        case_id = bytes.fromhex(given[2:])
    except ValueError:
        case_id = b""
    if len(case_id) != 32:
        raise InvalidRecord(f"--duplicate-of {given}: a case id is 32 bytes of hex (0x + 64 digits)")
    return case_id


@command(intake_app, "accept")
def intake_accept(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="the filing's seq")],
    note: Annotated[str | None, typer.Option(help="a note; only its hash is recorded")] = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Accept a filing: its case opens, bound to it (its id derived from the filing, the filer's key its receipt,
    its clock started at the filing's block time)."""
    _answer(settings(ctx), seq, FilingDecision.ACCEPTED, key, key_env, password_file, reason=note)


@command(intake_app, "reject")
def intake_reject(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="the filing's seq")],
    reason: Annotated[Reason, typer.Option("--reason", help="why: duplicate, out-of-scope or spam")],
    text: Annotated[str, typer.Option("--text", help="the reason in words; only its hash is recorded")],
    duplicate_of: Annotated[
        str | None, typer.Option(help="with --reason duplicate: the case it duplicates (your reference, or 0x id)")
    ] = None,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Reject a filing with a reason code and the reason's text (only its hash is recorded; publish the text)."""
    if not text.strip():
        raise InvalidRecord("--text must say why (only its hash is recorded)")
    if (reason is Reason.duplicate) != (duplicate_of is not None):
        raise InvalidRecord("--duplicate-of names the case a duplicate duplicates, and only a duplicate does")
    if duplicate_of is not None:
        _case_id(duplicate_of)  # a malformed 0x id is refused before the key is unlocked
    _answer(settings(ctx), seq, _DECISION[reason], key, key_env, password_file, reason=text,
            duplicate_of=duplicate_of)


__all__ = ["intake_app"]


@command(intake_app, "token")
def intake_token(
    ctx: typer.Context,
    hours: Annotated[float, typer.Option(help="how long it lives (at most 24)")] = 1.0,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """An access token for your agency's intake API (``/api/v1/intake``), signed by your key: give it to your case
    system as ``Authorization: Bearer <token>``. It reads your citizens' filings, contact details included, until it
    expires (or your key is revoked): keep it as a password."""
    from ledger.chain.access import MAX_LIFETIME, make_token

    lifetime = int(hours * 3600)
    if not 0 < lifetime <= MAX_LIFETIME:
        fail(f"--hours: a token lives more than 0 and at most {MAX_LIFETIME // 3600} hours")
    s = settings(ctx)
    signer = s.key(key, key_env, password_file)
    agency = agency_of(s, signer)
    ledger = s.ledger()
    token = make_token(signer, ledger.chain.chain_id, ledger.address, agency, lifetime=lifetime)
    print(token)  # alone on stdout, for scripts: `TOKEN=$(civic-ledger intake token --key roads)`


@command(intake_app, "pair")
def intake_pair(
    agency: AgencyOpt,
    commitment: Annotated[str, typer.Option(help="the commitment (service) the request falls under")],
    district: Annotated[str, typer.Option(help="the district code")],
    page_url: Annotated[
        str, typer.Option("--page-url", envvar="CIVIC_PAGE_URL", help="the public web page the QR code opens")
    ] = receipts.DEFAULT_PAGE_URL,
    svg: Annotated[Path | None, typer.Option(help="also write the QR code as an SVG file, for a screen")] = None,
) -> None:
    """A pairing QR code for the desk's screen: the citizen's phone scans it, opens the page's filing form with the
    service and district filled in, makes the receipt key itself and files the request (channel counter); the desk
    then accepts it with `intake accept`. The receipt is the citizen's own key from the start: the desk never sees a
    code, and prints none."""
    for value in (agency, commitment, district):
        short_code(value)  # a code the ledger can hold, or a clear error before anything is shown
    link = receipts.pairing_link(page_url, agency, commitment, district)
    out.print(receipts.qr_text(link), markup=False, highlight=False)
    out.print(link, markup=False, highlight=False, soft_wrap=True)
    out.print("The citizen scans this, writes the request and files it; then `civic-ledger intake list` shows it.")
    if svg is not None:
        svg.parent.mkdir(parents=True, exist_ok=True)
        svg.write_text(receipts.qr_svg(link))
        out.print(f"QR code written to {svg}")
