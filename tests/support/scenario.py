"""A chain scenario with every entry kind and every derived-state rule the index implements (:func:`write_everything`),
for the index tests (and the read API's ledger with every entry kind, ``tests/support/everything.py``); times are local
(UTC+8) wall-clock times (:func:`cst`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from ledger.encoding import keccak
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Correction,
    DeadlineUnit,
    HolidayCalendar,
    Retirement,
    short_code,
    text_hash,
)
from ledger.workdays import LOCAL_UTC_OFFSET_SECONDS
from tests.support.attestations import checkpoint as honest_checkpoint
from tests.support.world import World, case_id

CST = timezone(timedelta(seconds=LOCAL_UTC_OFFSET_SECONDS))
WORKING_DAYS_COMMITMENT = short_code("LICENCE-3WD")
NATIONAL_DAY_2025 = dict(
    holidays=[date(2025, 1, 1)] + [date(2025, 10, d) for d in (1, 2, 3, 6, 7, 8)],
    workdays=[date(2025, 9, 28), date(2025, 10, 11)],
)


def cst(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Unix time of a local (UTC+8) wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=CST).timestamp())


@dataclass
class Scenario:
    """What :func:`write_everything` wrote, for the tests to look up."""

    seqs: dict[str, int] = field(default_factory=dict)
    cases: dict[str, bytes] = field(default_factory=dict)


def last_seq(world: World) -> int:
    return world.ledger.entry_count() - 1


def write_everything(world: World, checkpoint: Callable[[str], None] = lambda stage: None) -> Scenario:
    """Every entry kind and every derived-state rule the index implements, written to `world`'s ledger:
    governance entries (registration with odd names and a non-ASCII id, authorisation, revocation), auditors (one
    registered with an honest attestation recorded, one registered and revoked), commitment
    versions and a retirement, calendar-hour and working-day cases (holds, escalation, invalid transitions, batches,
    relayed single and batch events), corrections (applied, refused: other agency, already voided; one voiding a
    correction; one aimed at an Opened, refused: no correction voids one), and a holiday calendar whose second
    version changes due dates. `checkpoint(stage)` is called between stages, e.g. to sync an index part way."""
    s = Scenario()
    ledger, signer, other = world.ledger, world.signer, world.other_signer
    gov = world.governance

    def case(name: str) -> bytes:
        s.cases[name] = case_id(name)
        return s.cases[name]

    def opened(name: str, at: int, commitment: bytes | None = None, **extra: object) -> CaseEvent:
        fields: dict[str, Any] = dict(case_id=case(name), action=CaseAction.OPENED, occurred_at=at,
                                      commitment_id=commitment or world.commitment_id,
                                      district=short_code("PUDONG"), channel=2)
        fields.update(extra)
        return CaseEvent(**fields)

    def later(name: str, action: CaseAction, at: int) -> CaseEvent:
        return CaseEvent(case_id=case(name), action=action, occurred_at=at, details_hash=text_hash(f"{name}{at}"))

    t0 = cst(2025, 9, 1, 9, 0)
    hour = 3600
    # Governance: an agency with an id that is not an ASCII code and names PostgreSQL could choke on.
    odd = keccak(b"odd agency")
    ledger.register_agency(
        gov, AgencyRegistration(agency_id=odd, jurisdiction=short_code("CN-BJ"), name_zh="零\0字节", name_en="Odd 🏛")
    )
    temp = world.chain.new_account()
    ledger.authorize_signer(gov, world.agency_id, temp.address)
    ledger.revoke_signer(gov, temp.address)
    s.seqs["revoked"] = last_seq(world)

    # Calendar-hour cases under version 1 (48 h).
    ledger.write(signer, opened("held", t0))
    ledger.write_batch(signer, [
        later("held", CaseAction.ACCEPTED, t0 + hour),
        later("held", CaseAction.ON_HOLD, t0 + 2 * hour),
        later("held", CaseAction.RESUMED, t0 + 12 * hour),
        opened("escalated", t0 + hour, district=keccak(b"not an ascii district")),
        later("escalated", CaseAction.ESCALATED, t0 + 3 * hour),
    ])
    checkpoint("first cases")
    # Version 2 (24 h): cases opened from now on use it.
    ledger.write(signer, world.commitment(deadline=24, occurred_at=t0 + 5 * hour, valid_from=t0 + 5 * hour))
    s.seqs["v2"] = last_seq(world)
    ledger.write_batch(signer, [
        later("held", CaseAction.FULFILLED, t0 + 55 * hour),  # 55 h open, 10 h held: 45 h <= 48 h, on time
        opened("v2case", t0 + 6 * hour),
        later("v2case", CaseAction.FULFILLED, t0 + 31 * hour),  # 25 h > 24 h: late
        later("escalated", CaseAction.REJECTED, t0 + 4 * hour),
        opened("messy", t0 + 7 * hour),
        opened("messy", t0 + 8 * hour),  # opened twice: invalid
        later("messy", CaseAction.ON_HOLD, t0 + 9 * hour),
        later("messy", CaseAction.FULFILLED, t0 + 10 * hour),  # fulfilled while on hold: invalid
        later("messy", CaseAction.WITHDRAWN, t0 + 11 * hour),  # withdrawn while on hold: 2 h held
        later("orphan", CaseAction.ACCEPTED, t0 + 9 * hour),  # no Opened yet: invalid, no row
    ])
    ledger.write(signer, opened("orphan", t0 + 10 * hour))  # now it is a case, with one invalid transition

    # Working days: a commitment, then a case opened the evening before China's National Day week.
    ledger.write(signer, world.commitment(WORKING_DAYS_COMMITMENT, deadline=3,
                                          deadline_unit=DeadlineUnit.WORKING_DAYS, occurred_at=t0, valid_from=t0))
    ledger.write(signer, HolidayCalendar(year=2025, occurred_at=t0))  # version 1: no holidays
    ledger.write_batch(signer, [
        opened("licence", cst(2025, 9, 30, 16, 0), WORKING_DAYS_COMMITMENT),
        later("licence", CaseAction.FULFILLED, cst(2025, 10, 9, 10, 0)),
        opened("licence-open", cst(2025, 9, 30, 17, 0), WORKING_DAYS_COMMITMENT),
    ])
    checkpoint("before the calendar changes")
    ledger.write(signer, HolidayCalendar.from_dates(2025, occurred_at=t0 + hour, **NATIONAL_DAY_2025))
    s.seqs["calendar v2"] = last_seq(world)

    # Corrections.
    ledger.write_batch(signer, [opened("undone", t0 + hour), later("undone", CaseAction.FULFILLED, t0 + 2 * hour)])
    s.seqs["undone fulfilled"] = last_seq(world)
    ledger.write(signer, opened("mistake", t0 + hour))
    s.seqs["mistake opened"] = last_seq(world)
    ledger.write(signer, Correction(target_seq=s.seqs["undone fulfilled"], reason_hash=text_hash("typo"),
                                    occurred_at=t0 + 3 * hour))
    s.seqs["c applied"] = last_seq(world)
    ledger.write(signer, Correction(target_seq=s.seqs["undone fulfilled"], reason_hash=text_hash("again"),
                                    occurred_at=t0 + 3 * hour))
    s.seqs["c already voided"] = last_seq(world)
    ledger.write(other, Correction(target_seq=s.seqs["mistake opened"], reason_hash=text_hash("not mine"),
                                   occurred_at=t0 + 3 * hour))
    s.seqs["c other agency"] = last_seq(world)
    ledger.write(signer, Correction(target_seq=s.seqs["mistake opened"], reason_hash=text_hash("no such case"),
                                    occurred_at=t0 + 3 * hour))
    s.seqs["c voids opened"] = last_seq(world)
    ledger.write(signer, Correction(target_seq=s.seqs["c applied"], reason_hash=text_hash("undo?"),
                                    occurred_at=t0 + 3 * hour))
    s.seqs["c voids correction"] = last_seq(world)
    checkpoint("after the corrections")

    # Auditors (entries of no agency): one registered, whose honest checkpoint is recorded by a relayer; another
    # registered and revoked.
    auditor = world.chain.new_account()
    ledger.authorize_auditor(gov, auditor.address)
    s.seqs["auditor"] = last_seq(world)
    attestation = honest_checkpoint(world)
    ledger.record_attestation(world.relayer, attestation, auditor.address,
                              ledger.sign_attestation(auditor.key, attestation))
    s.seqs["attested"] = last_seq(world)
    gone = world.chain.new_account()
    ledger.authorize_auditor(gov, gone.address)
    s.seqs["auditor gone"] = last_seq(world)
    ledger.revoke_auditor(gov, gone.address)
    s.seqs["auditor revoked"] = last_seq(world)

    # A retired commitment, relayed writes (the actor is the signer, not the relayer), the other agency's case.
    old = short_code("OLD-SERVICE")
    ledger.write(signer, world.commitment(old, occurred_at=t0))
    ledger.write(signer, Retirement(commitment_id=old, reason_hash=text_hash("merged"), occurred_at=t0))
    s.seqs["retired"] = last_seq(world)
    until = world.now() + 3600
    single = opened("relayed", t0 + hour)
    ledger.relay(world.relayer, single, signer.address, until, ledger.sign(signer, single, until))
    batch = [later("relayed", CaseAction.ACCEPTED, t0 + 2 * hour), opened("relayed-2", t0 + hour)]
    ledger.relay(world.relayer, batch, signer.address, until, ledger.sign(signer, batch, until))
    water = short_code("WATER-24H")
    ledger.write(other, world.commitment(water, deadline=24))
    ledger.write(other, opened("held", t0, water))  # same case id, other agency: another case
    # Volume: cases in one big batch.
    ledger.write_batch(signer, [opened(f"bulk-{i}", t0 + i, district=short_code(f"D{i % 7}"), channel=1 + i % 6)
                                for i in range(60)])
    ledger.write_batch(signer, [later(f"bulk-{i}", CaseAction.FULFILLED, t0 + 40 * hour + i) for i in range(0, 60, 2)])
    checkpoint("end")
    return s
