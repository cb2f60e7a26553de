"""A demo city for the run command: six agencies, fifteen commitments and about 20,000 cases over 90 days, with
realistic durations, holds, rejections, late cases and late recordings. Deterministic for a given seed.

Receipts, ratings and disputes: most cases opened at a counter, on the web or in the app get a receipt (fewer by
hotline or mail, none when the agency found the problem itself). The demo plays the citizens too: each receipt's
code derives from the seed and the case id (:func:`receipt_code`; never printed), and some holders rate their case
after it closes (1 to 5, mostly 4-5 when it was fulfilled on time, lower when late or rejected). A few dispute a
fulfilment; the agency answers each within days, by reopening the case and fulfilling it again, or by rejecting the
dispute with a reason (only its hash is recorded). Ratings and disputes are relayed, one transaction each.

Responses and rectifications (``ledger.cases``, "Response" and "Rectification of a bad rating"): agencies take a case
up (Accepted) within hours mostly, and some cases only after the working day the response is due (the housing office
most often). Most bad ratings (1 or 2) are answered with a Rectified event after the rating (its details hash stands
for the rectification report), most within the 15 working days, some later, some never.

Merkle-anchored batches: the 12345 hotline, the city's high-volume agency, writes the events of its cases without a
receipt as one batch a day (``ledger.batches``): the day's file published in the batch directory, its root, count and
file hash anchored in one transaction. Its receipt cases' events stay transactions, as every other agency's do (the
ledger tracks a receipt case's state one event at a time).

Nothing here is real: names, cases and the holiday calendar are invented (the calendar follows the shape of a
Chinese National Day week with swapped weekend working days). Case ids are random 32-byte values (the top bit set
for cases with a receipt); no person appears anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.types import RPCEndpoint

from ledger import batches, receipts
from ledger.cases import BAD_RATING_MAX, RECTIFICATION_WORKING_DAYS
from ledger.chain.contract import Chain, Ledger
from ledger.chain.rpc import JsonRpc, RetryPolicy, RpcError
from ledger.encoding import code_text
from ledger.errors import LedgerError
from ledger.filings import ANSWER_WINDOW_WORKING_DAYS, FilingContent
from ledger.records import (
    RECEIPT_CASE_FLAG,
    AgencyRegistration,
    CaseAction,
    CaseEvent,
    Channel,
    Commitment,
    DeadlineUnit,
    Dispute,
    Filing,
    FilingAnswer,
    FilingDecision,
    FilingStatus,
    HolidayCalendar,
    Rating,
    Receipt,
    ReceiptCaseStatus,
    Record,
    filed_case_id,
    short_code,
    text_hash,
)
from ledger.writer.planner import encode_receipts

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
_ALL_HOLIDAYS = frozenset(d for hs, _ in HOLIDAYS.values() for d in hs)
_ALL_WORKDAYS = frozenset(d for _, ws in HOLIDAYS.values() for d in ws)


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
    #: a high-volume agency: the events of its cases without a receipt go into one Merkle-anchored batch a day
    #: (``ledger.batches``) instead of transactions; its receipt cases' events stay transactions, because the ledger
    #: tracks those cases' state one event at a time
    batched: bool = False
    #: share of cases taken up (Accepted) only after the response was due, the end of the working day after the
    #: opening's; the others are taken up within hours
    late_response_rate: float = 0.03


#: Which citizens get a receipt, by intake channel: handed over at the counter, shown on the web and in the app, sent
#: by text message for some hotline calls and by post for some letters; none for problems the agency found itself.
RECEIPT_SHARE = {
    Channel.COUNTER: 0.9, Channel.WEB: 0.5, Channel.APP: 0.5, Channel.MAIL: 0.25, Channel.HOTLINE: 0.1,
    Channel.PROACTIVE: 0.0,
}
#: Share of receipt holders who rate their closed case (each rating is one relayed transaction).
RATING_SHARE = 0.05
#: Share of fulfilled receipt cases disputed (at least two in any city with candidates: one reopened, one rejected).
DISPUTE_SHARE = 0.002
#: How agencies answer a bad rating (1 or 2): the share rectified within the 15 working days, and the share rectified
#: later (the rest never are).
RECTIFIED_ON_TIME, RECTIFIED_LATE = 0.7, 0.15
#: The rectification report a demo Rectified event's details hash stands for (kept off chain, as any details).
RECTIFICATION_REPORT = "Rectified after the citizen's rating: the cause was found and put right (see the case file)."
#: Score weights (1..5) by how the case ended.
SCORES = {
    "on_time": (2, 3, 8, 32, 55),
    "late": (12, 22, 32, 22, 12),
    "rejected": (35, 25, 20, 12, 8),
    "withdrawn": (8, 12, 35, 27, 18),
    "dispute_rejected": (55, 30, 10, 4, 1),
    "reopened": (10, 25, 35, 22, 8),
}
#: Bumped when the city's recipe changes: a chain loaded with another version is not resumed with this one.
#: 3: the hotline's daily Merkle-anchored batches. 4: late responses, and rectifications of bad ratings. 5: at least
#: one bad rating rectified in time.
VERSION = 5

W, H = DeadlineUnit.WORKING_DAYS, DeadlineUnit.CALENDAR_HOURS
C = Channel
AGENCIES: tuple[AgencySpec, ...] = (
    AgencySpec("DEMO-ROADS", "示范市道路管理所", "Demo City Roads Office", 0.004, (
        ServiceSpec("STREETLIGHT-48H", "路灯故障48小时内修复", "Dark streetlight repaired within 48 hours", 48, H,
                    9500, 0.45, 0.55, 0.02, 0.02, 0.01, 0.03, 0.10, (C.HOTLINE, C.APP, C.WEB, C.PROACTIVE)),
        ServiceSpec("POTHOLE-72H", "道路坑洞72小时内修补", "Pothole filled within 72 hours", 72, H,
                    9000, 0.55, 0.6, 0.03, 0.04, 0.01, 0.05, 0.07, (C.HOTLINE, C.APP, C.PROACTIVE)),
    ), late_response_rate=0.04),
    AgencySpec("DEMO-WATER", "示范市供水公司", "Demo City Water Company", 0.006, (
        ServiceSpec("WATER-OUTAGE-24H", "停水24小时内恢复", "Water supply restored within 24 hours", 24, H,
                    9800, 0.35, 0.5, 0.0, 0.01, 0.005, 0.04, 0.06, (C.HOTLINE, C.APP)),
        ServiceSpec("METER-5WD", "水表更换5个工作日内完成", "Water meter replaced within 5 working days", 5, W,
                    9000, 0.6, 0.5, 0.08, 0.03, 0.02, 0.01, 0.05, (C.COUNTER, C.WEB, C.HOTLINE)),
    ), late_response_rate=0.02),
    AgencySpec("DEMO-LICENSING", "示范市行政审批局", "Demo City Licensing Bureau", 0.003, (
        ServiceSpec("BIZ-LICENCE-3WD", "营业执照3个工作日内办结", "Business licence issued within 3 working days", 3, W,
                    9500, 0.5, 0.45, 0.18, 0.06, 0.02, 0.01, 0.08, (C.COUNTER, C.WEB, C.APP)),
        ServiceSpec("FOOD-PERMIT-10WD", "食品经营许可10个工作日内办结", "Food business permit within 10 working days",
                    10, W, 9000, 0.6, 0.5, 0.22, 0.08, 0.02, 0.02, 0.04, (C.COUNTER, C.WEB)),
        ServiceSpec("RESIDENCE-7WD", "居住证7个工作日内办结", "Residence permit issued within 7 working days", 7, W,
                    9500, 0.5, 0.4, 0.12, 0.04, 0.01, 0.0, 0.06, (C.COUNTER, C.APP)),
    ), late_response_rate=0.03),
    AgencySpec("DEMO-HOTLINE", "示范市12345热线", "Demo City 12345 Hotline", 0.002, (
        ServiceSpec("COMPLAINT-2WD", "投诉2个工作日内答复", "Complaint answered within 2 working days", 2, W,
                    9000, 0.55, 0.6, 0.05, 0.03, 0.03, 0.06, 0.12, (C.HOTLINE, C.WEB, C.APP)),
        ServiceSpec("INQUIRY-1WD", "咨询1个工作日内答复", "Inquiry answered within 1 working day", 1, W,
                    9500, 0.4, 0.5, 0.02, 0.01, 0.02, 0.01, 0.10, (C.HOTLINE, C.WEB)),
    ), batched=True, late_response_rate=0.05),
    AgencySpec("DEMO-HOUSING", "示范市住房保障局", "Demo City Housing Office", 0.025, (
        ServiceSpec("SUBSIDY-15WD", "住房补贴15个工作日内审核", "Housing subsidy decided within 15 working days", 15, W,
                    8500, 0.75, 0.45, 0.25, 0.10, 0.03, 0.04, 0.04, (C.COUNTER, C.WEB, C.MAIL)),
        ServiceSpec("RENTAL-REG-5WD", "租赁登记5个工作日内办结", "Rental registration within 5 working days", 5, W,
                    9000, 0.55, 0.5, 0.10, 0.04, 0.02, 0.01, 0.05, (C.COUNTER, C.WEB)),
        ServiceSpec("REPAIR-FUND-20WD", "维修资金20个工作日内拨付", "Repair fund paid within 20 working days", 20, W,
                    8500, 0.8, 0.5, 0.20, 0.07, 0.02, 0.05, 0.02, (C.COUNTER, C.MAIL)),
    ), late_response_rate=0.15),
    AgencySpec("DEMO-SANITATION", "示范市环境卫生管理处", "Demo City Sanitation Service", 0.005, (
        ServiceSpec("DUMPING-24H", "违规倾倒24小时内清理", "Illegal dumping cleared within 24 hours", 24, H,
                    9500, 0.5, 0.6, 0.0, 0.02, 0.01, 0.03, 0.06, (C.HOTLINE, C.APP, C.PROACTIVE)),
        ServiceSpec("BIN-12H", "垃圾桶满溢12小时内清运", "Overflowing bin emptied within 12 hours", 12, H,
                    9500, 0.45, 0.5, 0.0, 0.01, 0.01, 0.02, 0.05, (C.HOTLINE, C.APP, C.PROACTIVE)),
        ServiceSpec("GRAFFITI-72H", "违规小广告72小时内清除", "Illegal posters removed within 72 hours", 72, H,
                    9000, 0.5, 0.7, 0.0, 0.03, 0.01, 0.02, 0.03, (C.HOTLINE, C.APP, C.PROACTIVE)),
    ), late_response_rate=0.06),
)


def receipt_code(seed: int, case_id: bytes) -> str:
    """The demo citizen's receipt code for a case: derived from the city's seed, so nothing needs storing (and it is
    never printed: tests and the demo's loader derive it again)."""
    digest = hmac.new(f"civic-ledger demo receipts {seed}".encode(), case_id, hashlib.sha256).digest()
    value = int.from_bytes(digest[:13], "big") >> 4  # 100 bits, 5 per character
    plain = "".join(receipts.ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(receipts.CODE_LENGTH)))
    return "-".join(plain[i : i + receipts.GROUP] for i in range(0, receipts.CODE_LENGTH, receipts.GROUP))


@dataclass(frozen=True)
class DemoReceipt:
    """A receipt the demo gives a citizen when their case opens. The Receipt record (the key's address) is derived
    from the code only when needed: that costs about a millisecond, and the city has thousands."""

    case_id: bytes
    occurred_at: int
    code: str = field(repr=False)

    @cached_property
    def key(self) -> bytes:
        return receipts.private_key(self.code)

    @cached_property
    def record(self) -> Receipt:
        return Receipt(case_id=self.case_id, receipt=receipts.address(self.code), occurred_at=self.occurred_at)


@dataclass(frozen=True)
class CitizenAction:
    """A receipt holder's rating or dispute, relayed at `at` (unix seconds)."""

    at: int
    agency_id: str
    record: Rating | Dispute
    receipt: DemoReceipt


@dataclass
class Batch:
    """Case events one agency records together at `recorded_at` (unix seconds), in one transaction; then, in a
    second, the receipts of the cases opened in it. Closings of those cases recorded at the same time follow in
    another batch with the same `recorded_at` (a case is closed only after its receipt is on chain).

    An `anchored` batch is a batched agency's day of case events without receipts: the loader publishes it as a
    Merkle batch file and anchors it (``ledger.batches``) when given a batch store, else records it as above."""

    recorded_at: int
    agency_id: str
    records: list[CaseEvent] = field(default_factory=list)
    receipts: list[DemoReceipt] = field(default_factory=list)
    anchored: bool = False


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
    #: ratings and disputes, in the order (and at the times) they are relayed
    citizen_actions: list[CitizenAction] = field(default_factory=list)
    seed: int = 0

    @property
    def case_events(self) -> int:
        return sum(len(b.records) for b in self.batches)

    @property
    def receipts(self) -> list[DemoReceipt]:
        return [r for b in self.batches for r in b.receipts]

    @property
    def entries(self) -> int:
        """Entries the city writes after the setup: case events, receipts, ratings and disputes."""
        return self.case_events + sum(len(b.receipts) for b in self.batches) + len(self.citizen_actions)

    @property
    def anchored(self) -> list[Batch]:
        """The Merkle-anchored batches (a batched agency's days), in recording order."""
        return [b for b in self.batches if b.anchored]

    def steps(self) -> list[Batch | CitizenAction]:
        """Everything after the setup in the order it is recorded: batches and citizens' actions by time (a batch
        before an action at the same second)."""
        timeline: list[tuple[int, int, int, Batch | CitizenAction]] = [
            (b.recorded_at, 0, i, b) for i, b in enumerate(self.batches)
        ]
        timeline += [(a.at, 1, i, a) for i, a in enumerate(self.citizen_actions)]
        return [step for *_, step in sorted(timeline, key=lambda t: t[:3])]


@dataclass
class _Closed:
    """A receipt case as it closed: what its citizen may do next."""

    agency_id: str
    receipt: DemoReceipt
    outcome: str  # on_time, late, rejected, withdrawn
    recorded: int  # when its closing was recorded


def _calendars(start: int, end: int, recorded_at: int) -> list[HolidayCalendar]:
    years = range(datetime.fromtimestamp(start, UTC).year, datetime.fromtimestamp(end, UTC).year + 2)
    return [HolidayCalendar.from_dates(y, *HOLIDAYS[y], occurred_at=recorded_at) for y in years if y in HOLIDAYS]


def _working_day_end(opened: int, days: int) -> int:
    """End of the Nth working day after the opening day (local UTC+8) by the demo's calendars, for generating
    plausible durations and answers on time or late."""
    local = timezone(timedelta(hours=8))
    day = datetime.fromtimestamp(opened, local).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if (day.weekday() < 5 and day not in _ALL_HOLIDAYS) or day in _ALL_WORKDAYS:
            counted += 1
    return int(datetime.combine(day + timedelta(days=1), datetime.min.time(), local).timestamp())


def generate_city(*, end: int, days: int = 90, cases: int = 20_000, seed: int = 12345) -> DemoCity:
    """The demo city's records over `days` days ending at `end` (unix seconds)."""
    rng = random.Random(seed)
    # How late agencies answer (responses, rectifications) is drawn from a stream of its own.
    timing = random.Random(f"{seed}:timing")
    start = end - days * DAY
    setup_time = start - DAY
    registrations, setup = [], {}
    services: list[tuple[AgencySpec, ServiceSpec]] = []
    for spec in AGENCIES:
        registrations.append(
            AgencyRegistration(
                agency_id=short_code(spec.agency_id), jurisdiction=short_code(JURISDICTION),
                name_zh=spec.name_zh, name_en=spec.name_en,
            )
        )
        setup_records: list[Record] = []
        for service in spec.services:
            setup_records.append(
                Commitment(
                    commitment_id=short_code(service.code), service_code=short_code(service.code.rsplit("-", 1)[0]),
                    name_zh=service.name_zh, name_en=service.name_en, deadline=service.deadline,
                    deadline_unit=service.unit, target_bps=service.target_bps, valid_from=setup_time,
                    terms_hash=text_hash(f"{service.name_en}. Demo terms."), occurred_at=setup_time,
                )
            )
            services.append((spec, service))
        setup[spec.agency_id] = setup_records
    # Working-day calendars are the city's; the licensing bureau publishes them.
    setup["DEMO-LICENSING"] = _calendars(start, end, setup_time) + setup["DEMO-LICENSING"]

    pending: dict[tuple[str, int], list[CaseEvent]] = {}
    anchored: dict[tuple[str, int], list[CaseEvent]] = {}  # a batched agency's days, by (agency, recorded)
    issued: dict[tuple[str, int], list[DemoReceipt]] = {}
    closed_cases: list[_Closed] = []
    offsets = {spec.agency_id: 60 * (5 + 7 * i) for i, spec in enumerate(AGENCIES)}
    weights = [s.share for _, s in services]
    opened_count = 0

    def recording_time(agency: AgencySpec, occurred: int, delay: int, after: int, daily: bool = False) -> int:
        # Agencies record in a batch twice a day (each at its own minute past); a few events much later. A daily
        # Merkle batch holds the 24 hours up to its own minute, so that nothing in it is more than a day old.
        offset = offsets[agency.agency_id]
        if daily:
            recorded = ((occurred + delay - offset) // DAY + 1) * DAY + offset
        else:
            recorded = ((occurred + delay) // (12 * HOUR) + 1) * 12 * HOUR + offset
        # A late event holds back the case's later events too: an agency records a case's history in order
        # (otherwise the ledger would show e.g. a fulfilment before the acceptance, which the auditor flags).
        return max(min(recorded, end), after)

    for _ in range(cases):
        agency, service = rng.choices(services, weights)[0]
        # Cases arrive in office hours mostly, more on weekdays, uniformly over the period.
        day = rng.randrange(days)
        hour = rng.choices(
            range(24), [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 12, 10, 12, 14, 14, 12, 10, 8, 6, 4, 3, 2, 1]
        )[0]
        opened = start + day * DAY + hour * HOUR + rng.randrange(HOUR)
        if opened >= end:
            continue
        case_id = rng.randbytes(32)
        district = short_code(rng.choice(DISTRICTS))
        channel = rng.choice(service.channels)
        receipt: DemoReceipt | None = None
        if rng.random() < RECEIPT_SHARE[channel]:
            case_id = bytes([case_id[0] | RECEIPT_CASE_FLAG]) + case_id[1:]
            receipt = DemoReceipt(case_id, opened, receipt_code(seed, case_id))
        else:
            case_id = bytes([case_id[0] & ~RECEIPT_CASE_FLAG & 0xFF]) + case_id[1:]
        commitment_id = short_code(service.code)
        if service.unit is DeadlineUnit.CALENDAR_HOURS:
            deadline_span = service.deadline * HOUR
        else:
            deadline_span = _working_day_end(opened, service.deadline) - opened
        events: list[tuple[int, CaseAction]] = [(opened, CaseAction.OPENED)]
        t = opened + rng.randrange(5 * 60, 4 * HOUR)
        if timing.random() < agency.late_response_rate:
            # taken up after the response was due (the end of the working day after the opening's)
            t = _working_day_end(opened, ANSWER_WINDOW_WORKING_DAYS) + timing.randrange(HOUR, 3 * DAY)
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
            outcome = "rejected"
        elif roll < service.reject_rate + service.withdraw_rate:
            events.append((closed, CaseAction.WITHDRAWN))
            outcome = "withdrawn"
        else:
            events.append((closed, CaseAction.FULFILLED))
            outcome = "on_time" if closed - hold <= opened + deadline_span else "late"
        opened_count += 1
        last_recorded = 0
        daily = agency.batched and receipt is None
        for occurred, action in events:
            if occurred >= end:
                break  # still in progress at the end of the period
            delay = rng.randrange(DAY, 6 * DAY) if rng.random() < agency.late_recording_rate else 0
            recorded = last_recorded = recording_time(agency, occurred, delay, last_recorded, daily)
            if action is CaseAction.OPENED:
                record = CaseEvent(
                    case_id=case_id, action=action, occurred_at=occurred, commitment_id=commitment_id,
                    district=district, channel=int(channel),
                )
                if receipt is not None:
                    issued.setdefault((agency.agency_id, recorded), []).append(receipt)
            else:
                record = CaseEvent(case_id=case_id, action=action, occurred_at=occurred)
            if daily:
                anchored.setdefault((agency.agency_id, recorded), []).append(record)
            else:
                pending.setdefault((agency.agency_id, recorded), []).append(record)
            if receipt is not None and occurred == closed:
                closed_cases.append(_Closed(agency.agency_id, receipt, outcome, recorded))

    actions = _citizens(rng, timing, closed_cases, pending, end, recording_time)

    batches: list[Batch] = []
    for (agency_id, recorded), records in sorted(pending.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        records.sort(key=_event_order)
        given = issued.get((agency_id, recorded), [])
        # Closings of cases whose receipt goes out in this batch wait for the receipts: the ledger tracks a receipt
        # case's state from its receipt on, and a closing before it would leave the case open there.
        waiting = {r.case_id for r in given}
        first = [e for e in records if e.case_id not in waiting or e.action not in _RECEIPT_STATE]
        later = [e for e in records if e.case_id in waiting and e.action in _RECEIPT_STATE]
        batches.append(Batch(recorded_at=recorded, agency_id=agency_id, records=first, receipts=given))
        if later:
            batches.append(Batch(recorded_at=recorded, agency_id=agency_id, records=later))
    for (agency_id, recorded), records in anchored.items():
        records.sort(key=_event_order)
        batches.append(Batch(recorded_at=recorded, agency_id=agency_id, records=records, anchored=True))
    # By time; at one time, the transactions before the anchored batch (stable: each keeps its order otherwise).
    batches.sort(key=lambda b: (b.recorded_at, b.agency_id, b.anchored))
    return DemoCity(start=setup_time, end=end, agencies=registrations, setup=setup, batches=batches,
                    cases=opened_count, citizen_actions=actions, seed=seed)


#: Actions that move a receipt case's state on chain (closings, reopening, answering a dispute).
_RECEIPT_STATE = frozenset({CaseAction.FULFILLED, CaseAction.REJECTED, CaseAction.WITHDRAWN, CaseAction.REOPENED,
                            CaseAction.DISPUTE_REJECTED})


def _event_order(event: CaseEvent) -> tuple[int, int]:
    return (event.occurred_at, int(event.action))


def _citizens(
    rng: random.Random,
    timing: random.Random,
    closed: list[_Closed],
    pending: dict[tuple[str, int], list[CaseEvent]],
    end: int,
    recording_time: Callable[[AgencySpec, int, int, int], int],
) -> list[CitizenAction]:
    """Ratings and disputes of receipt holders, and the agencies' answers to the disputes and to bad ratings (added
    to `pending`; how late the latter come is drawn from `timing`)."""
    specs = {spec.agency_id: spec for spec in AGENCIES}
    actions: list[CitizenAction] = []

    rated: set[bytes] = set()
    rectified_in_time: list[bytes] = []

    def rate(case: _Closed, after: int, outcome: str) -> None:
        at = after + 600 + int(rng.lognormvariate(math.log(DAY), 1.0))
        if at < end - 60:
            score = rng.choices(range(1, 6), SCORES[outcome])[0]
            give(case, at, score)
            if score <= BAD_RATING_MAX:
                rectify(case, at)

    def give(case: _Closed, at: int, score: int) -> None:
        rating = Rating(agency_id=short_code(case.agency_id), case_id=case.receipt.case_id, score=score)
        actions.append(CitizenAction(at, case.agency_id, rating, case.receipt))
        rated.add(case.receipt.case_id)

    def rectify(case: _Closed, rated_at: int) -> None:
        # The agency's answer to a bad rating relayed at `rated_at`: recorded after it (the contract takes a
        # Rectified event of a rated case only), within its working days mostly, some later, some never.
        roll = timing.random()
        if roll >= RECTIFIED_ON_TIME + RECTIFIED_LATE:
            return
        due = _working_day_end(rated_at, RECTIFICATION_WORKING_DAYS)
        if roll < RECTIFIED_ON_TIME:
            occurred = min(rated_at + HOUR + int(timing.lognormvariate(math.log(4 * DAY), 0.7)), due - HOUR)
        else:
            occurred = due + timing.randrange(HOUR, 10 * DAY)
        if occurred < end:  # else still being rectified at the end of the period
            rectified(case, occurred, due)

    def rectified(case: _Closed, occurred: int, due: int) -> None:
        event = CaseEvent(case_id=case.receipt.case_id, action=CaseAction.RECTIFIED, occurred_at=occurred,
                          details_hash=text_hash(RECTIFICATION_REPORT))
        pending.setdefault((case.agency_id, recording_time(specs[case.agency_id], occurred, 0, 0)), []).append(event)
        if occurred <= due:
            rectified_in_time.append(case.receipt.case_id)

    # A dispute, its answer (within days: the response window is 10) and a refulfilment must all fit before the end.
    room = 12 * DAY
    candidates = [c for c in closed if c.outcome in ("on_time", "late") and c.recorded + room < end]
    count = min(len(candidates), max(2, round(DISPUTE_SHARE * len(candidates))))
    disputed = rng.sample(candidates, count) if candidates else []
    disputed_ids = {c.receipt.case_id for c in disputed}
    for n, case in enumerate(disputed):
        agency = specs[case.agency_id]
        at = case.recorded + 2 * HOUR + rng.randrange(4 * DAY)
        dispute = Dispute(agency_id=short_code(case.agency_id), case_id=case.receipt.case_id, closure=1)
        actions.append(CitizenAction(at, case.agency_id, dispute, case.receipt))
        answered = at + HOUR + rng.randrange(2 * DAY)
        reopen = n % 2 == 0 if n < 2 else rng.random() < 0.5
        if reopen:
            refulfilled = answered + 4 * HOUR + rng.randrange(2 * DAY)
            answer = recording_time(agency, answered, 0, 0)
            events = [(answer, CaseEvent(case_id=case.receipt.case_id, action=CaseAction.REOPENED,
                                         occurred_at=answered, details_hash=text_hash("dispute upheld: reopened"))),
                      (recording_time(agency, refulfilled, 0, answer),
                       CaseEvent(case_id=case.receipt.case_id, action=CaseAction.FULFILLED, occurred_at=refulfilled))]
            outcome = "reopened"
        else:
            reason = "Inspected after the dispute: the work was done as recorded (photos in the case file)."
            answer = recording_time(agency, answered, 0, 0)
            events = [(answer, CaseEvent(case_id=case.receipt.case_id, action=CaseAction.DISPUTE_REJECTED,
                                         occurred_at=answered, details_hash=text_hash(reason)))]
            outcome = "dispute_rejected"
        for recorded, event in events:
            pending.setdefault((case.agency_id, recorded), []).append(event)
        if rng.random() < 0.5:
            rate(case, events[-1][0], outcome)
    for case in closed:
        if case.receipt.case_id not in disputed_ids and rng.random() < RATING_SHARE:
            rate(case, case.recorded, case.outcome)
    # at least one bad rating rectified in time in any city with a late case that has room for it (a small city drawn
    # around now may have none by chance): its citizens and the page then show the whole of 差评整改
    room = 3 * DAY
    late = [c for c in closed if c.outcome == "late" and c.receipt.case_id not in disputed_ids | rated
            and c.recorded + room < end]
    if not rectified_in_time and late:
        case = late[0]
        give(case, case.recorded + HOUR, 1)
        rectified(case, case.recorded + 3 * HOUR, _working_day_end(case.recorded + HOUR, RECTIFICATION_WORKING_DAYS))
    actions.sort(key=lambda a: a.at)
    return actions


#: the demo's citizens' filings at the roads office, each answered at once (so the demo's audit stays clean however
#: long the local chain runs): (name, the office's answer)
FILINGS = (("lamp", FilingDecision.ACCEPTED), ("again", FilingDecision.DUPLICATE), ("advert", FilingDecision.SPAM))
#: what each demo filer wrote (kept off chain, in the service's private store; the filing holds its hash)
FILING_TEXTS = {
    "lamp": ("东门外的路灯已经三个晚上不亮了。The street light outside the East Gate has been dark for three nights.",
             "East Gate, Harbour Road"),
    "again": ("东门路灯还是不亮。The East Gate light is still out.", "East Gate"),
    "advert": ("低价装修，请致电！Cheap renovations, call now!", ""),
}
#: sends a demo filing: (filing, the filer's signature, its content, the content's salt)
SendFiling = Callable[[Filing, bytes, FilingContent, bytes], None]


def filing_content(seed: int, name: str) -> tuple[FilingContent, bytes]:
    """The content of the demo filing `name` and the salt of its hash (made from the seed: a re-run files the same)."""
    text, address = FILING_TEXTS[name]
    salt = hashlib.sha256(b"demo filing salt:%d:" % seed + name.encode()).digest()
    return FilingContent(description=text, address=address), salt


def filer_code(seed: int, name: str) -> str:
    """The key code of the demo filing `name`: made from the city's seed, as a citizen's device makes one."""
    return receipt_code(seed, b"demo filing:" + name.encode())


def file_requests(
    ledger: Ledger, relayer: LocalAccount, roads: LocalAccount, seed: int, send_filing: SendFiling | None = None
) -> dict[str, int]:
    """Citizens file requests at the roads office with keys of their own (:data:`FILINGS`), relayed; the office
    accepts the first — its case opens bound to the filing, is fulfilled, and its filer rates it —, rejects the second
    as a duplicate of it and the third as spam. Resumes where an interrupted run stopped (each step is asked of the
    chain first); returns each filing's seq by name."""
    agency, seqs = short_code("DEMO-ROADS"), {}
    for name, decision in FILINGS:
        code = filer_code(seed, name)
        key, address = receipts.private_key(code), receipts.address(code)
        used = ledger.receipt_issuance(address)
        if used is None:
            content, salt = filing_content(seed, name)
            filing = Filing(agency_id=agency, commitment_id=short_code("STREETLIGHT-48H"), district=short_code("EAST"),
                            channel=Channel.WEB, content_hash=content.content_hash(salt), receipt=address)
            signature = ledger.sign_filing(key, filing)
            if send_filing is None:
                ledger.submit_filing(relayer, filing, signature)
            else:
                send_filing(filing, signature, content, salt)
            used = ledger.receipt_issuance(address)
            assert used is not None
        # the key's latest use is its filing, or (accepted) the answer that bound it: the filing is the one before
        seq = used[0] if ledger.filing_state(used[0]).status != FilingStatus.NONE else _filing_of(ledger, *used)
        seqs[name] = seq
        if ledger.filing_state(seq).status == FilingStatus.FILED:
            duplicate = filed_case_id(seqs["lamp"]) if decision == FilingDecision.DUPLICATE else bytes(32)
            reason = bytes(32) if decision == FilingDecision.ACCEPTED else text_hash(f"demo {name}: {decision.name}")
            ledger.answer_filing(roads, FilingAnswer(filing_seq=seq, decision=decision, duplicate_of=duplicate,
                                                     reason_hash=reason))
        if decision != FilingDecision.ACCEPTED:
            continue
        case_id = filed_case_id(seq)
        state = ledger.receipt_case(agency, case_id)
        now = int(ledger.w3.eth.get_block("latest")["timestamp"])
        if state.status == ReceiptCaseStatus.OPEN:
            ledger.write(roads, CaseEvent(case_id=case_id, action=CaseAction.FULFILLED, occurred_at=now,
                                          details_hash=text_hash("demo: lamp replaced")))
            state = ledger.receipt_case(agency, case_id)
        if not state.rated:
            rating = Rating(agency_id=agency, case_id=case_id, score=5, comment_hash=text_hash(f"demo {seed} thanks"))
            ledger.submit_citizen(relayer, rating, ledger.sign_citizen(key, rating))
    return seqs


def _filing_of(ledger: Ledger, answer_seq: int, block: int) -> int:
    """The filing the accepted answer at `answer_seq` (in `block`) answered: the key's latest use is then the
    answer."""
    for entry in ledger.entries(block, block):
        if entry.seq == answer_seq and isinstance(entry.record, FilingAnswer):
            return entry.record.filing_seq
    raise LedgerError(f"entry {answer_seq} is not an answer to a filing")


def set_next_block_time(chain: Chain, timestamp: int) -> None:
    """Demo only: anvil lets the loader record 90 days of history with block times that move like real ones."""
    latest = int(chain.w3.eth.get_block("latest")["timestamp"])
    # A time already past is mined one second after the latest block, not at the node's wall-clock offset,
    # which on a slow machine could drift further from the history.
    timestamp = max(timestamp, latest + 1)
    answer = chain.w3.provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [timestamp])
    if "error" in answer:
        raise LedgerError(f"the node refused to move its clock: {answer['error']}")


class _BatchSender:
    """Sends the demo's transactions quickly, one block per moment of the history: everything an agency records at
    one time (its case events, then its receipts, then closings that had to wait for them), or the ratings relayed at
    one time, is mined together in a block at that time. anvil's cost is mostly per block (its state root), so this
    is several times faster than a block per transaction. Calldata is encoded once, gas given (estimation would run
    at the latest block's time, not the block's to be), nonces and the chain's clock are tracked locally, and
    JSON-RPC is spoken directly over one kept-alive connection.

    Automining is off while it works (``begin``) and on again afterwards (``finish``); transactions of a block not yet
    mined when something fails are dropped, so the chain holds whole blocks only and a resumed load (which counts
    entries) starts from a block boundary."""

    def __init__(self, chain: Chain, ledger: Ledger) -> None:
        self.chain, self.ledger = chain, ledger
        self.nonces: dict[str, int] = {}
        self.url = str(getattr(chain.w3.provider, "endpoint_uri", ""))
        self.rpc = JsonRpc(self.url, timeout=120, policy=RetryPolicy(max_retries=0))
        self.rpc.session.trust_env = False  # no proxy lookups: the node is local
        self.clock = int(chain.w3.eth.get_block("latest")["timestamp"])
        self.block_time: int | None = None  # the time of the block being filled
        self.pending = 0  # transactions sent into it

    def _rpc(self, method: str, params: list[Any]) -> Any:
        try:
            return self.rpc.call(method, params)
        except RpcError as exc:
            raise LedgerError(f"the node refused {method}: {exc.code}: {exc.message}") from exc

    def begin(self) -> None:
        self._rpc("evm_setAutomine", [False])

    def finish(self, completed: bool) -> None:
        """Mine the last block (when all went well) or drop its transactions, and let the node automine again."""
        try:
            if completed:
                self.mine()
            elif self.pending:
                self._rpc("anvil_dropAllTransactions", [])
                self.pending = 0
        finally:
            self._rpc("evm_setAutomine", [True])

    def at(self, timestamp: int) -> None:
        """What is sent next goes into a block at `timestamp` (one second after the latest block, if that is later)."""
        if timestamp != self.block_time:
            self.mine()
            self.block_time = timestamp

    def mine(self) -> None:
        if not self.pending:
            return
        assert self.block_time is not None
        self.clock = max(self.block_time, self.clock + 1)
        self._rpc("evm_setNextBlockTimestamp", [self.clock])
        self._rpc("evm_mine", [])
        receipts = self._rpc("eth_getBlockReceipts", ["latest"])
        sent, self.pending = self.pending, 0
        if len(receipts) != sent:
            raise LedgerError(f"the demo block at {self.clock} holds {len(receipts)} transactions, not {sent}")
        for receipt in receipts:
            if int(receipt["status"], 16) != 1:
                raise LedgerError(f"a demo transaction reverted (transaction {receipt['transactionHash']})")

    def send(self, signer: LocalAccount, events: list[CaseEvent] | list[Receipt]) -> None:
        """One batch: case events (recordCaseEvents) or receipts (issueReceipts)."""
        if events and isinstance(events[0], Receipt):
            # bench/gas.py: about 54,000 a receipt in a batch (its case's state and its key's issuance, two new slots)
            self._send(signer, encode_receipts(events), 60_000 + 70_000 * len(events))
        else:
            self._send(signer, self.ledger.encode_batch(events), 100_000 + 20_000 * len(events))  # type: ignore[arg-type]

    def send_anchor(self, signer: LocalAccount, batch: batches.Batch) -> None:
        """A Merkle batch's anchor (anchorBatch: about 56,000 gas whatever its size)."""
        data = self.ledger.contract.encode_abi("anchorBatch", [batch.root, batch.count, batch.file_hash])
        self._send(signer, bytes.fromhex(data[2:]), 100_000)

    def send_citizen(self, relayer: LocalAccount, action: CitizenAction) -> None:
        """A receipt holder's rating or dispute, signed with the receipt key, relayed."""
        signature = self.ledger.sign_citizen(action.receipt.key, action.record)
        name = "rateCase" if isinstance(action.record, Rating) else "disputeCase"
        data = self.ledger.contract.encode_abi(name, [action.record.abi_values(), signature])
        self._send(relayer, bytes.fromhex(data[2:]), 200_000)

    def _send(self, signer: LocalAccount, data: bytes, gas: int) -> None:
        nonce = self.nonces.get(signer.address)
        if nonce is None:
            nonce = int(self._rpc("eth_getTransactionCount", [signer.address, "pending"]), 16)
        tx: dict[str, Any] = {
            "to": self.ledger.address, "data": data, "nonce": nonce, "chainId": self.chain.chain_id,
            "gas": gas, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1,
        }
        self._rpc("eth_sendRawTransaction", ["0x" + bytes(signer.sign_transaction(tx).raw_transaction).hex()])
        self.nonces[signer.address] = nonce + 1
        self.pending += 1


def setup_entries(city: DemoCity) -> int:
    """Entries the setup writes: per agency a registration and a key, then its commitments and calendars."""
    return 2 * len(city.agencies) + sum(len(r) for r in city.setup.values())


def _derive(city: DemoCity, skip: int) -> None:
    """Derive the receipt records of the steps after the first `skip` entries of the steps, in order."""
    seen = 0
    for item in city.steps():
        if isinstance(item, CitizenAction):
            seen += 1
            continue
        seen += len(item.records)
        for receipt in item.receipts:
            if seen >= skip:
                receipt.record  # noqa: B018 - computed and cached for the loader
        seen += len(item.receipts)


def build_batch(batch: Batch) -> batches.Batch:
    """The Merkle batch of an anchored demo batch (deterministic: the same file, hash and root every time)."""
    return batches.build_batch([r for r in batch.records if isinstance(r, CaseEvent)])


def publish_batches(city: DemoCity, store: batches.BatchStore) -> int:
    """Put every anchored batch's file in `store` (those there already are left as they are); returns how many were
    missing. Cheap — the city's batches build in well under a second — so a service can run it at every start,
    before its indexer looks for them."""
    missing = 0
    for batch in city.anchored:
        built = build_batch(batch)
        if not store.path(built.file_hash).exists():
            store.put(built)
            missing += 1
    return missing


def load_city(
    chain: Chain,
    ledger: Ledger,
    governance: LocalAccount,
    signers: dict[str, LocalAccount],
    city: DemoCity,
    progress: Callable[[int, int], None] | None = None,
    relayer: LocalAccount | None = None,
    batch_store: batches.BatchStore | None = None,
) -> int:
    """Write the demo city, resuming after an interruption: the chain's entry count says how far it got, because
    every step is one transaction and the city is deterministic. Returns the number of entries written now.
    Citizens' ratings and disputes are relayed by `relayer` (default: the governance account).

    With a `batch_store`, each anchored batch's file is published there, then the batch anchored (its entries count
    as any others, so resuming works the same); without one, its events are recorded as one transaction, as the
    other agencies' are."""
    base = ledger.entry_count()
    done = base
    setup_count = setup_entries(city)
    total = setup_count + city.entries
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
    # Deriving a receipt's key from its code takes about a millisecond (PBKDF2, which releases the GIL): a thread
    # does it ahead of the loader, which mostly waits for the node meanwhile.
    ahead = threading.Thread(target=_derive, args=(city, done - step), name="demo-receipts", daemon=True)
    ahead.start()
    sender.begin()
    completed = False
    try:
        for item in city.steps():
            before = written
            if isinstance(item, CitizenAction):
                if due(1):
                    sender.at(item.at)
                    sender.send_citizen(relayer or governance, item)
                    written += 1
            else:
                events = [r for r in item.records if isinstance(r, CaseEvent)]
                if events and due(len(events)):
                    sender.at(item.recorded_at)
                    if item.anchored and batch_store is not None:
                        merkle = build_batch(item)
                        batch_store.put(merkle)  # published before it is anchored: the indexer then finds it
                        sender.send_anchor(signers[item.agency_id], merkle)
                    else:
                        sender.send(signers[item.agency_id], events)
                    written += len(events)
                if item.receipts and due(len(item.receipts)):
                    sender.at(item.recorded_at)
                    sender.send(signers[item.agency_id], [r.record for r in item.receipts])
                    written += len(item.receipts)
            if progress and written != before:
                progress(step, total)
        completed = True
    finally:
        sender.finish(completed)
    return written
