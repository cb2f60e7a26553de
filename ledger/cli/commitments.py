"""An agency's service commitments and its jurisdiction's holiday calendars (the agency's key, through its outbox)."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Annotated, cast

import typer

from ledger.chain.keys import AgencyKey
from ledger.cli.common import AtOpt, KeyEnvOpt, KeyOpt, PasswordOpt, command, now_or, out, settings
from ledger.errors import InvalidRecord
from ledger.records import Commitment, DeadlineUnit, HolidayCalendar, Record, Retirement, short_code, text_hash
from ledger.writer.outbox import OutboxItem

commitment_app = typer.Typer(help="An agency's service commitments.", no_args_is_help=True)
calendar_app = typer.Typer(help="Holiday calendars for working-day deadlines.", no_args_is_help=True)


def _record_time(at: str | None) -> int:
    """:func:`now_or` for a record's time field: ISO 8601 text is passed on as it is, and the field's validator
    (``ledger.records.UnixTime``) turns it into Unix seconds; mypy, without pydantic's plugin, sees only the int."""
    return cast(int, now_or(at))


def _write(ctx: typer.Context, signer: AgencyKey, record: Record) -> OutboxItem:
    writer = settings(ctx).writer(signer)
    try:
        item = writer.write(record)
    finally:
        writer.close()
    out.print(f"recorded as entry {item.seq} (transaction {item.tx_hash})")
    return item


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
