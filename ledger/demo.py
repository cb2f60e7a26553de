"""A demo city for the run command: six agencies, fifteen commitments and about 20,000 cases over 90 days, with
realistic durations, holds, rejections, late cases and late recordings. Deterministic for a given seed.

Nothing here is real: names, cases and the holiday calendar are invented (the calendar follows the shape of a
Chinese National Day week with swapped weekend working days). Case ids are random 32-byte values; no person
appears anywhere.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from eth_account.signers.local import LocalAccount

from ledger.chain import Chain, Ledger
from ledger.errors import LedgerError
from ledger.records import (
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Channel,
    Commitment,
    DeadlineUnit,
    HolidayCalendar,
    Record,
    code_text,
    short_code,
    text_hash,
)

JURISDICTION = "DEMO-CITY"
DISTRICTS = ("EAST", "WEST", "NORTH", "SOUTH", "RIVERSIDE", "OLDTOWN", "HARBOUR", "HILLS")
HOUR = 3600
DAY = 86400
#: Demo calendars: weekday holidays and weekend working days, by year.
HOLIDAYS = {
    2025: ([date(2025, 10, d) for d in (1, 2, 3, 6, 7, 8)], [date(2025, 9, 28), date(2025, 10, 11)]),
    2026: (
        [date(2026, 1, 1), date(2026, 1, 2)]
        + [date(2026, 2, d) for d in (16, 17, 18, 19, 20)]
        + [date(2026, 4, 6), date(2026, 5, 1), date(2026, 5, 4), date(2026, 5, 5), date(2026, 6, 19)]
        + [date(2026, 9, 25)]
        + [date(2026, 10, d) for d in (1, 2, 5, 6, 7)],
        [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 27),
         date(2026, 10, 10)],
    ),
    2027: ([date(2027, 1, 1)], []),
}


@dataclass(frozen=True)
class ServiceSpec:
    code: str
    name_zh: str
    name_en: str
    deadline: int
    unit: DeadlineUnit
    target_bps: int
    #: typical duration as a fraction of the deadline, spread (lognormal sigma), and how often cases are
    #: put on hold, rejected, withdrawn, escalated
    typical: float
    spread: float
    hold_rate: float
    reject_rate: float
    withdraw_rate: float
    escalate_rate: float
    share: float  # share of the city's cases
    channels: tuple[Channel, ...]


@dataclass(frozen=True)
class AgencySpec:
    agency_id: str
    name_zh: str
    name_en: str
    #: share of events recorded more than a day late (possible backdating) — one agency is noticeably worse
    late_recording_rate: float
    services: tuple[ServiceSpec, ...]


W, H = DeadlineUnit.WORKING_DAYS, DeadlineUnit.CALENDAR_HOURS
C = Channel
AGENCIES: tuple[AgencySpec, ...] = (
    AgencySpec("DEMO-ROADS", "示范市道路管理所", "Demo City Roads Office", 0.004, (
        ServiceSpec("STREETLIGHT-48H", "路灯故障48小时内修复", "Dark streetlight repaired within 48 hours", 48, H,
                    9500, 0.45, 0.55, 0.02, 0.02, 0.01, 0.03, 0.10, (C.HOTLINE, C.APP, C.WEB, C.PROACTIVE)),
        ServiceSpec("POTHOLE-72H", "道路坑洞72小时内修补", "Pothole filled within 72 hours", 72, H,
                    9000, 0.55, 0.6, 0.03, 0.04, 0.01, 0.05, 0.07, (C.HOTLINE, C.APP, C.PROACTIVE)),
    )),
    AgencySpec("DEMO-WATER", "示范市供水公司", "Demo City Water Company", 0.006, (
        ServiceSpec("WATER-OUTAGE-24H", "停水24小时内恢复", "Water supply restored within 24 hours", 24, H,
                    9800, 0.35, 0.5, 0.0, 0.01, 0.005, 0.04, 0.06, (C.HOTLINE, C.APP)),
        ServiceSpec("METER-5WD", "水表更换5个工作日内完成", "Water meter replaced within 5 working days", 5, W,
                    9000, 0.6, 0.5, 0.08, 0.03, 0.02, 0.01, 0.05, (C.COUNTER, C.WEB, C.HOTLINE)),
    )),
    AgencySpec("DEMO-LICENSING", "示范市行政审批局", "Demo City Licensing Bureau", 0.003, (
        ServiceSpec("BIZ-LICENCE-3WD", "营业执照3个工作日内办结", "Business licence issued within 3 working days", 3, W,
                    9500, 0.5, 0.45, 0.18, 0.06, 0.02, 0.01, 0.08, (C.COUNTER, C.WEB, C.APP)),
        ServiceSpec("FOOD-PERMIT-10WD", "食品经营许可10个工作日内办结", "Food business permit within 10 working days", 10,
                    W, 9000, 0.6, 0.5, 0.22, 0.08, 0.02, 0.02, 0.04, (C.COUNTER, C.WEB)),
        ServiceSpec("RESIDENCE-7WD", "居住证7个工作日内办结", "Residence permit issued within 7 working days", 7, W,
                    9500, 0.5, 0.4, 0.12, 0.04, 0.01, 0.0, 0.06, (C.COUNTER, C.APP)),
    )),
    AgencySpec("DEMO-HOTLINE", "示范市12345热线", "Demo City 12345 Hotline", 0.002, (
        ServiceSpec("COMPLAINT-2WD", "投诉2个工作日内答复", "Complaint answered within 2 working days", 2, W,
                    9000, 0.55, 0.6, 0.05, 0.03, 0.03, 0.06, 0.12, (C.HOTLINE, C.WEB, C.APP)),
        ServiceSpec("INQUIRY-1WD", "咨询1个工作日内答复", "Inquiry answered within 1 working day", 1, W,
                    9500, 0.4, 0.5, 0.02, 0.01, 0.02, 0.01, 0.10, (C.HOTLINE, C.WEB)),
    )),
    AgencySpec("DEMO-HOUSING", "示范市住房保障局", "Demo City Housing Office", 0.025, (
        ServiceSpec("SUBSIDY-15WD", "住房补贴15个工作日内审核", "Housing subsidy decided within 15 working days", 15, W,
                    8500, 0.75, 0.45, 0.25, 0.10, 0.03, 0.04, 0.04, (C.COUNTER, C.WEB, C.MAIL)),
        ServiceSpec("RENTAL-REG-5WD", "租赁登记5个工作日内办结", "Rental registration within 5 working days", 5, W,
                    9000, 0.55, 0.5, 0.10, 0.04, 0.02, 0.01, 0.05, (C.COUNTER, C.WEB)),
        ServiceSpec("REPAIR-FUND-20WD", "维修资金20个工作日内拨付", "Repair fund paid within 20 working days", 20, W,
                    8500, 0.8, 0.5, 0.20, 0.07, 0.02, 0.05, 0.02, (C.COUNTER, C.MAIL)),
    )),
    AgencySpec("DEMO-SANITATION", "示范市环境卫生管理处", "Demo City Sanitation Service", 0.005, (
        ServiceSpec("DUMPING-24H", "违规倾倒24小时内清理", "Illegal dumping cleared within 24 hours", 24, H,
                    9500, 0.5, 0.6, 0.0, 0.02, 0.01, 0.03, 0.06, (C.HOTLINE, C.APP, C.PROACTIVE)),
        ServiceSpec("BIN-12H", "垃圾桶满溢12小时内清运", "Overflowing bin emptied within 12 hours", 12, H,
                    9500, 0.45, 0.5, 0.0, 0.01, 0.01, 0.02, 0.05, (C.HOTLINE, C.APP, C.PROACTIVE)),
        ServiceSpec("GRAFFITI-72H", "违规小广告72小时内清除", "Illegal posters removed within 72 hours", 72, H,
                    9000, 0.5, 0.7, 0.0, 0.03, 0.01, 0.02, 0.03, (C.HOTLINE, C.APP, C.PROACTIVE)),
    )),
)


@dataclass
class Batch:
    """Records one agency records together at `recorded_at` (unix seconds)."""

    recorded_at: int
    agency_id: str
    records: list[Record] = field(default_factory=list)


@dataclass
class DemoCity:
    start: int
    end: int
    agencies: list[AgencyRegistration]
    #: setup records per agency (commitments, calendars), recorded at `start`
    setup: dict[str, list[Record]]
    #: case records, grouped as they are recorded, in recording order
    batches: list[Batch]
    cases: int

    @property
    def case_events(self) -> int:
        return sum(len(b.records) for b in self.batches)


def _calendars(start: int, end: int, recorded_at: int) -> list[HolidayCalendar]:
    years = range(datetime.fromtimestamp(start, timezone.utc).year, datetime.fromtimestamp(end, timezone.utc).year + 2)
    return [HolidayCalendar.from_dates(y, *HOLIDAYS[y], occurred_at=recorded_at) for y in years if y in HOLIDAYS]


def _working_day_end(opened: int, days: int, holidays: set[date], workdays: set[date]) -> int:
    """End of the Nth working day after the opening day (local UTC+8), for generating plausible durations."""
    local = timezone(timedelta(hours=8))
    day = datetime.fromtimestamp(opened, local).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if (day.weekday() < 5 and day not in holidays) or day in workdays:
            counted += 1
    return int(datetime.combine(day + timedelta(days=1), datetime.min.time(), local).timestamp())


def generate_city(*, end: int, days: int = 90, cases: int = 20_000, seed: int = 12345) -> DemoCity:
    """The demo city's records over `days` days ending at `end` (unix seconds)."""
    rng = random.Random(seed)
    start = end - days * DAY
    setup_time = start - DAY
    all_holidays = {d for hs, _ in HOLIDAYS.values() for d in hs}
    all_workdays = {d for _, ws in HOLIDAYS.values() for d in ws}
    registrations, setup = [], {}
    services: list[tuple[AgencySpec, ServiceSpec]] = []
    for spec in AGENCIES:
        registrations.append(
            AgencyRegistration(
                agency_id=short_code(spec.agency_id), jurisdiction=short_code(JURISDICTION),
                name_zh=spec.name_zh, name_en=spec.name_en,
            )
        )
        records: list[Record] = []
        for service in spec.services:
            records.append(
                Commitment(
                    commitment_id=short_code(service.code), service_code=short_code(service.code.rsplit("-", 1)[0]),
                    name_zh=service.name_zh, name_en=service.name_en, deadline=service.deadline,
                    deadline_unit=service.unit, target_bps=service.target_bps, valid_from=setup_time,
                    terms_hash=text_hash(f"{service.name_en}. Demo terms."), occurred_at=setup_time,
                )
            )
            services.append((spec, service))
        setup[spec.agency_id] = records
    # Working-day calendars are the city's; the licensing bureau publishes them.
    setup["DEMO-LICENSING"] = _calendars(start, end, setup_time) + setup["DEMO-LICENSING"]

    pending: dict[tuple[str, int], list[CaseEvent]] = {}
    offsets = {spec.agency_id: 60 * (5 + 7 * i) for i, spec in enumerate(AGENCIES)}
    weights = [s.share for _, s in services]
    opened_count = 0
    for _ in range(cases):
        agency, service = rng.choices(services, weights)[0]
        # Cases arrive in office hours mostly, more on weekdays, uniformly over the period.
        day = rng.randrange(days)
        hour = rng.choices(range(24), [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 12, 10, 12, 14, 14, 12, 10, 8, 6, 4, 3, 2, 1])[0]
        opened = start + day * DAY + hour * HOUR + rng.randrange(HOUR)
        if opened >= end:
            continue
        case_id = rng.randbytes(32)
        commitment_id = short_code(service.code)
        if service.unit is DeadlineUnit.CALENDAR_HOURS:
            deadline_span = service.deadline * HOUR
        else:
            deadline_span = _working_day_end(opened, service.deadline, all_holidays, all_workdays) - opened
        events: list[tuple[int, CaseAction]] = [(opened, CaseAction.OPENED)]
        t = opened + rng.randrange(5 * 60, 4 * HOUR)
        events.append((t, CaseAction.ACCEPTED))
        hold = 0
        if rng.random() < service.hold_rate:
            put_on_hold = t + rng.randrange(HOUR, max(2 * HOUR, deadline_span // 3))
            hold = int(rng.lognormvariate(math.log(2 * DAY), 0.8))
            events += [(put_on_hold, CaseAction.ON_HOLD), (put_on_hold + hold, CaseAction.RESUMED)]
        if rng.random() < service.escalate_rate:
            events.append((events[-1][0] + rng.randrange(HOUR, 6 * HOUR), CaseAction.ESCALATED))
        roll = rng.random()
        duration = int(deadline_span * service.typical * rng.lognormvariate(0, service.spread)) + hold
        closed = max(events[-1][0] + 60, opened + duration)
        if roll < service.reject_rate:
            events.append((closed, CaseAction.REJECTED))
        elif roll < service.reject_rate + service.withdraw_rate:
            events.append((closed, CaseAction.WITHDRAWN))
        else:
            events.append((closed, CaseAction.FULFILLED))
        opened_count += 1
        last_recorded = 0
        for occurred, action in events:
            if occurred >= end:
                break  # still in progress at the end of the period
            # Agencies record in a batch twice a day (each at its own minute past); a few events much later.
            delay = rng.randrange(DAY, 6 * DAY) if rng.random() < agency.late_recording_rate else 0
            recorded = ((occurred + delay) // (12 * HOUR) + 1) * 12 * HOUR + offsets[agency.agency_id]
            # A late event holds back the case's later events too: an agency records a case's history in order
            # (otherwise the ledger would show e.g. a fulfilment before the acceptance, which the auditor flags).
            recorded = max(min(recorded, end), last_recorded)
            last_recorded = recorded
            if action is CaseAction.OPENED:
                record = CaseEvent(
                    case_id=case_id, action=action, occurred_at=occurred, commitment_id=commitment_id,
                    district=short_code(rng.choice(DISTRICTS)), channel=int(rng.choice(service.channels)),
                )
            else:
                record = CaseEvent(case_id=case_id, action=action, occurred_at=occurred)
            pending.setdefault((agency.agency_id, recorded), []).append(record)

    batches = [
        Batch(recorded_at=recorded, agency_id=agency_id, records=sorted(records, key=_event_order))
        for (agency_id, recorded), records in sorted(pending.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
    return DemoCity(start=setup_time, end=end, agencies=registrations, setup=setup, batches=batches,
                    cases=opened_count)


def _event_order(event: CaseEvent) -> tuple[int, int]:
    return (event.occurred_at, int(event.action))


def set_next_block_time(chain: Chain, timestamp: int) -> None:
    """Demo only: anvil lets the loader record 90 days of history with block times that move like real ones."""
    latest = int(chain.w3.eth.get_block("latest")["timestamp"])
    # A time already past is mined one second after the latest block, not at the node's wall-clock offset,
    # which on a slow machine could drift further from the history.
    timestamp = max(timestamp, latest + 1)
    answer = chain.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
    if "error" in answer:
        raise LedgerError(f"the node refused to move its clock: {answer['error']}")


class _BatchSender:
    """Sends demo batches quickly: calldata encoded once, gas given (estimation would run at the latest block's
    time, before the time the next block is set to), nonce tracked locally, and the receipt read at once, since
    anvil mines each transaction as it arrives."""

    def __init__(self, chain: Chain, ledger: Ledger) -> None:
        self.chain, self.ledger = chain, ledger
        self.nonces: dict[str, int] = {}

    def send(self, signer: LocalAccount, events: list[CaseEvent]) -> None:
        w3 = self.chain.w3
        nonce = self.nonces.get(signer.address)
        if nonce is None:
            nonce = w3.eth.get_transaction_count(signer.address, "pending")
        data = self.ledger.encode_batch(events)
        tx = {
            "to": self.ledger.address, "data": data, "nonce": nonce, "chainId": self.chain.chain_id,
            "gas": 100_000 + 20_000 * len(events), "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1,
        }
        tx_hash = w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction)
        self.nonces[signer.address] = nonce + 1
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.002)
        if receipt["status"] != 1:
            raise LedgerError(f"a demo batch reverted (transaction 0x{bytes(tx_hash).hex()})")


def setup_entries(city: DemoCity) -> int:
    """Entries the setup writes: per agency a registration and a key, then its commitments and calendars."""
    return 2 * len(city.agencies) + sum(len(r) for r in city.setup.values())


def load_city(
    chain: Chain,
    ledger: Ledger,
    governance: LocalAccount,
    signers: dict[str, LocalAccount],
    city: DemoCity,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the demo city, resuming after an interruption: the chain's entry count says how far it got, because
    every step is one transaction and the city is deterministic. Returns the number of entries written now."""
    base = ledger.entry_count()
    done = base
    setup_count = setup_entries(city)
    total = setup_count + city.case_events
    written = 0
    step = 0

    def due(size: int) -> bool:
        nonlocal step
        start, step = step, step + size
        return start >= done

    for registration in city.agencies:
        name = code_text(registration.agency_id)
        if due(1):
            set_next_block_time(chain, city.start)
            ledger.register_agency(governance, registration)
            written += 1
        if due(1):
            set_next_block_time(chain, city.start)
            ledger.authorize_signer(governance, registration.agency_id, signers[name].address)
            written += 1
    for agency_id, records in city.setup.items():
        for record in records:
            if due(1):
                set_next_block_time(chain, city.start)
                ledger.write(signers[agency_id], record)
                written += 1
    if progress:
        progress(min(done, step) + written, total)
    sender = _BatchSender(chain, ledger)
    for batch in city.batches:
        events = [r for r in batch.records if isinstance(r, CaseEvent)]
        if due(len(events)):
            set_next_block_time(chain, batch.recorded_at)
            sender.send(signers[batch.agency_id], events)
            written += len(events)
            if progress:
                progress(step, total)
    return written
