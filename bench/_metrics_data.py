"""The data ``bench/metrics.py`` loads: a province's service cases over two years, generated as COPY text, streaming.

A case is generated as what the chain would hold of it — its entries (case events, receipt, claim, rating, dispute,
correction; a filing and its answer) — and its ``cases`` row is ``ledger.cases.fold_case`` of those, as the indexer
makes it: every column the fold gives and the table has is filled (new ones included), and the row always agrees
with the events. The fold is half the work: :func:`generate` can hand it to a process of its own. Nothing is kept
per case once its lines are written: memory stays bounded at any size. The same seed gives the same rows.

The model (a Shanghai-sized city; the shares are plausible, not published figures)
    * cases open on every day of :data:`START` to :data:`NOW` (two years), fewer on weekends and public holidays,
      slowly more each month, mostly in office hours (local time); in time order, so tables are in the order an
      index appended in time would have them (a case's entries have consecutive seqs, in the order of their block
      times: the chain interleaves cases, which no figure depends on);
    * district, channel, agency and commitment in realistic shares; each commitment has a pace of its own, so some
      meet their targets and some do not;
    * 10 % arrive as citizens' filings (web and app), of which some are rejected (duplicate, out of scope, spam),
      most are answered within the working day and a few late or never; the rest open by the agency, 85 % with a
      receipt, 8 % of those claimed by the citizen's own key;
    * about 3 case events per case: an acceptance (80 %), holds (12 %), escalations (3 %), then fulfilled, rejected
      (6 %), withdrawn (3 %) or forgotten (0.5 %: the overdue backlog); recorded mostly within minutes, some hours
      later, 1 % days later (late recordings); an agency records a case's events in order; 0.2 % of cases have an
      event recorded twice and the duplicate voided by a correction;
    * 40 % of receipt holders rate the closed case, about 10 % of them 1 or 2 (more for late or refused cases); 70 %
      of those bad ratings are rectified (most in time); 3 % of fulfilments with a receipt are disputed, most answered
      within the window (a third reopened and fulfilled again), some late, a few never; 0.3 % reopened by the agency.
"""

from __future__ import annotations

import bisect
import json
import multiprocessing
import queue
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import compress
from typing import TypeVar

from ledger.cases import (
    BAD_RATING_MAX,
    CASE_STATE_FIELDS,
    DISPUTE_RESPONSE_WINDOW,
    DISPUTE_WINDOW,
    CommitmentVersion,
    Event,
    Feedback,
    fold_case,
)
from ledger.filings import answer_due
from ledger.records import CaseAction, Channel, DeadlineUnit, EntryKind, FilingDecision
from ledger.store.schema import cases
from ledger.workdays import LOCAL_UTC_OFFSET_SECONDS, YearCalendar, day_of, is_weekend, local_day, year_of

MINUTE = 60
HOUR = 3_600
DAY = 86_400
#: the data covers two years of local (UTC+8) days: 2024-01-01 00:00 to 2026-01-01 00:00 Shanghai time; "now" (for
#: open, overdue and unanswered) is its end, and nothing is recorded at or after it
START = 1_704_067_200 - LOCAL_UTC_OFFSET_SECONDS
NOW = 1_767_225_600 - LOCAL_UTC_OFFSET_SECONDS
DAYS = (NOW - START) // DAY
SEED = 20261121

#: Shanghai's districts -> share of cases (roughly their populations, in ten-thousands)
DISTRICTS = {
    "PUDONG": 578, "MINHANG": 268, "BAOSHAN": 224, "SONGJIANG": 194, "JIADING": 184, "JINGAN": 98, "QINGPU": 127,
    "FENGXIAN": 115, "YANGPU": 123, "XUHUI": 111, "PUTUO": 124, "HUANGPU": 66, "HONGKOU": 76, "CHANGNING": 69,
    "JINSHAN": 82, "CHONGMING": 63,
}  # fmt: skip
#: channel -> share of the cases an agency opens (a hotline city: 12345 takes most); filings come by web or app
CHANNELS = {Channel.COUNTER: 10, Channel.HOTLINE: 45, Channel.WEB: 15, Channel.APP: 20, Channel.MAIL: 3,
            Channel.PROACTIVE: 7}  # fmt: skip
_H, _WD = DeadlineUnit.CALENDAR_HOURS, DeadlineUnit.WORKING_DAYS
#: agency -> (share of cases, [(commitment, deadline, unit, target bps)])
AGENCIES: dict[str, tuple[int, list[tuple[str, int, DeadlineUnit, int]]]] = {
    "SH-ROADS": (18, [("STREETLIGHT-48H", 48, _H, 9500), ("POTHOLE-72H", 72, _H, 9000), ("SIGNAGE-5WD", 5, _WD, 9000)]),
    "SH-WATER": (14, [("LEAK-24H", 24, _H, 9500), ("METER-3WD", 3, _WD, 9000), ("PRESSURE-48H", 48, _H, 9000)]),
    "SH-SANITATION": (16, [("WASTE-24H", 24, _H, 9800), ("BULKY-72H", 72, _H, 9500), ("TOILET-48H", 48, _H, 9000)]),
    "SH-HOUSING": (10, [("REPAIR-10WD", 10, _WD, 8500), ("PERMIT-15WD", 15, _WD, 9000)]),
    "SH-MARKET": (9, [("LICENCE-3WD", 3, _WD, 9500), ("COMPLAINT-7WD", 7, _WD, 9000), ("FOOD-48H", 48, _H, 9500)]),
    "SH-TRANSPORT": (8, [("BUS-72H", 72, _H, 9000), ("PARKING-5WD", 5, _WD, 8500)]),
    "SH-GREENING": (5, [("TREE-72H", 72, _H, 9000), ("PARK-5WD", 5, _WD, 9000)]),
    "SH-ECOENV": (6, [("NOISE-48H", 48, _H, 8500), ("AIR-5WD", 5, _WD, 9000)]),
    "SH-CIVIL": (4, [("MARRIAGE-1WD", 1, _WD, 9900), ("ASSIST-10WD", 10, _WD, 9500)]),
    "SH-HEALTH": (5, [("CLINIC-5WD", 5, _WD, 9000), ("VACCINE-48H", 48, _H, 9500)]),
    "SH-EDUCATION": (3, [("ENROL-10WD", 10, _WD, 9500)]),
    "SH-PLANNING": (2, [("ZONING-20WD", 20, _WD, 8000)]),
}  # fmt: skip
#: the jurisdiction of every agency here, and the agency that publishes its holiday calendars
JURISDICTION, CALENDAR_AGENCY = "CN-SH", "SH-CIVIL"

# The State Council's public holidays and swapped working weekends, (month, day) ranges: what a published calendar of
# the jurisdiction holds (ledger.workdays). The bench needs their shape, not every date exact.
_HOLIDAYS = {
    2024: ([(1, 1, 1), (2, 10, 17), (4, 4, 6), (5, 1, 5), (6, 10, 10), (9, 15, 17), (10, 1, 7)],
           [(2, 4), (2, 18), (4, 7), (4, 28), (5, 11), (9, 14), (9, 29), (10, 12)]),
    2025: ([(1, 1, 1), (1, 28, 31), (2, 1, 4), (4, 4, 6), (5, 1, 5), (5, 31, 31), (6, 1, 2), (10, 1, 8)],
           [(1, 26), (2, 8), (4, 27), (9, 28), (10, 11)]),
    2026: ([(1, 1, 3), (2, 15, 23), (4, 4, 6), (5, 1, 5), (6, 19, 21), (9, 25, 27), (10, 1, 7)],
           [(1, 4), (2, 14), (2, 28), (5, 9), (9, 20), (10, 10)]),
}  # fmt: skip


def _calendar(year: int) -> YearCalendar:
    """The year's calendar: its weekdays off, and its weekend days on."""
    holidays, workdays = _HOLIDAYS[year]
    days_off = (day_of(date(year, m, d)) for m, first, last in holidays for d in range(first, last + 1))
    return YearCalendar.of(year, (day for day in days_off if not is_weekend(day)),
                           (day_of(date(year, m, d)) for m, d in workdays))  # fmt: skip


#: year -> the jurisdiction's calendar, as the fold takes them (the years a due time may reach)
CALENDARS = {year: _calendar(year) for year in _HOLIDAYS}

# COPY text of constant values of real width: a 32-byte and a 24-byte hash, an address
_H32 = "\\\\x" + "ab" * 32
_H24 = "\\\\x" + "cd" * 24
_RELAYER = "0x" + "5e" * 20
_NULL = "\\N"
#: an entry's hash columns between actor and block_number, and between block_hash and block_time
_HASHES = f"\t{_H32}\t{_H32}\t{_H24}\t"
#: large odd multipliers: i -> i * K mod 2**bits is one-to-one, so ids and keys made of counters are unique
_ID_K, _KEY_K = 0x9E3779B97F4A7C15F39CC0605CEDC8341082276BF3A27251F86C6A11D0C18E95, 0xC2B2AE3D27D4EB4F165667B19E3779F9
_ID_MASK, _KEY_MASK, _FLAG = 2**256 - 1, 2**160 - 1, 2**255  # _FLAG: ledger.records.RECEIPT_CASE_FLAG, the top bit


def _case_id(number: int, receipt: bool) -> str:
    """A case id as COPY text: 32 bytes that look random, unique per number, the receipt-case bit set or not."""
    value = (number * _ID_K) & _ID_MASK
    return f"\\\\x{value | _FLAG if receipt else value & ~_FLAG:064x}"


def _address(number: int) -> str:
    """A receipt key's address, unique per number (lower-case hex: no figure reads its checksum)."""
    return f"0x{(number * _KEY_K) & _KEY_MASK:040x}"


#: the table COPY lines are written to, and their columns, in order (named: a column added to the schema later is
#: left NULL); ``cases`` takes every column of the fold's state that the table has
CASE_COLUMNS = ("agency_id", "case_id", *(name for name in CASE_STATE_FIELDS if name in cases.c))
_CASE_FIELDS_KEPT = [name in cases.c for name in CASE_STATE_FIELDS]
COLUMNS: dict[str, tuple[str, ...]] = {
    "entries": ("seq", "kind", "agency_id", "actor", "record_hash", "entry_hash", "running_hash", "block_number",
                "block_hash", "block_time", "tx_hash", "log_index", "occurred_at", "voided_by"),
    "commitments": ("agency_id", "commitment_id", "version", "service_code", "name_zh", "name_en", "deadline",
                    "deadline_unit", "target_bps", "valid_from", "terms_hash", "occurred_at", "seq", "retired_seq"),
    "holiday_calendars": ("jurisdiction", "year", "version", "agency_id", "holidays", "workdays", "occurred_at",
                          "seq"),
    "case_events": ("seq", "agency_id", "case_id", "action", "occurred_at", "block_time", "details_hash",
                    "commitment_id", "district", "channel"),
    "cases": CASE_COLUMNS,
    "receipts": ("seq", "agency_id", "case_id", "receipt", "occurred_at", "block_time"),
    "ratings": ("seq", "agency_id", "case_id", "score", "comment_hash", "receipt", "block_time"),
    "disputes": ("seq", "agency_id", "case_id", "closure", "reason_hash", "receipt", "block_time", "answer_seq",
                 "answer_action", "answered_at"),
    "filings": ("seq", "agency_id", "commitment_id", "district", "channel", "content_hash", "receipt", "relayer",
                "block_time", "answer_due", "answer_seq", "decision", "case_id", "duplicate_of", "reason_hash",
                "answered_at", "filed_case_id"),
    "corrections": ("seq", "agency_id", "target_seq", "reason_hash", "occurred_at", "applied"),
}  # fmt: skip


@dataclass
class Counts:
    """Rows written, per kind."""

    cases: int = 0
    events: int = 0
    entries: int = 0
    receipts: int = 0
    ratings: int = 0
    disputes: int = 0
    filings: int = 0
    corrections: int = 0


@dataclass(frozen=True)
class _Commitment:
    #: its place in :func:`commitments`
    index: int
    agency: str
    commitment: str
    signer: str
    versions: tuple[CommitmentVersion, ...]
    #: the deadline in seconds, roughly (working days as calendar days)
    nominal: int
    #: log of the median work time as a share of the deadline: each commitment's own pace
    pace: float


def _opt(value: int | None) -> str:
    return _NULL if value is None else str(value)


def _text(value: object) -> str:
    """A value of the fold's state as COPY text."""
    if value is None:
        return _NULL
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)


_T = TypeVar("_T")


def _table(weights: Mapping[_T, float], size: int = 4096) -> list[_T]:
    """A lookup table for weighted choice: ``table[int(random() * size)]``."""
    keys = list(weights)
    cumulative, total = [], 0.0
    for key in keys:
        total += weights[key]
        cumulative.append(total)
    return [keys[min(bisect.bisect(cumulative, (j + 0.5) * total / size), len(keys) - 1)] for j in range(size)]


#: local hour -> share of openings (a hotline's day: quiet at night, peaks mid-morning and mid-afternoon)
_HOURLY = (3, 2, 1.5, 1, 1, 2, 5, 12, 25, 35, 38, 35, 25, 28, 35, 36, 33, 26, 20, 18, 16, 13, 9, 5)


def _minutes_of_day() -> list[int]:
    """The k-th of m openings of a day opens at minute ``table[k * 1440 // m]`` after local midnight."""
    cumulative, total = [], 0.0
    for minute in range(1440):
        total += _HOURLY[minute // 60]
        cumulative.append(total)
    return [bisect.bisect(cumulative, (q + 0.5) * total / 1440) for q in range(1440)]


def _day_bounds(n_cases: int) -> list[int]:
    """The number of the first case of each local day (and n_cases at the end): weekends, holidays and a slow
    growth weigh the days."""
    weights = []
    for d in range(DAYS):
        day = local_day(START) + d
        calendar = CALENDARS[year_of(day)]
        weight = 1.0 if calendar.is_working_day(day) else 0.45 if day in calendar.holidays else 0.55
        weights.append(weight * (1 + 0.15 * d / DAYS))
    total, cumulative, bounds = sum(weights), 0.0, [0]
    for weight in weights:
        cumulative += weight
        bounds.append(round(n_cases * cumulative / total))
    return bounds


def commitments() -> list[_Commitment]:
    """Every commitment, version 1 published at seq 0, 1, … in AGENCIES order (then the calendars)."""
    rng = random.Random(SEED)
    out: list[_Commitment] = []
    for agency, (_share, offered) in AGENCIES.items():
        signer = "0x" + agency.encode().hex()[:40].ljust(40, "0")
        for commitment, deadline, unit, _target in offered:
            nominal = deadline * HOUR if unit == _H else deadline * DAY * 7 // 5
            version = CommitmentVersion(1, len(out), deadline, int(unit))
            out.append(_Commitment(len(out), agency, commitment, signer, (version,), nominal,
                                   rng.uniform(-1.3, -0.55)))  # fmt: skip
    return out


def _entry(seq: int, kind: int, agency: str, actor: str, block_time: int, occurred: str, voided: str = _NULL) -> str:
    return (
        f"{seq}\t{kind}\t{agency}\t{actor}{_HASHES}{(block_time - START) // 2}\t{_H32}\t{block_time}\t{_H32}\t"
        f"{seq % 100}\t{occurred}\t{voided}\n"
    )


def preamble() -> tuple[dict[str, list[str]], int]:
    """The lines of the entries, commitments and holiday calendars published before the first case; the next seq."""
    lines: dict[str, list[str]] = {"entries": [], "commitments": [], "holiday_calendars": []}
    published = START - 30 * DAY
    for c in commitments():
        version = c.versions[0]
        target = next(t for name, _d, _u, t in AGENCIES[c.agency][1] if name == c.commitment)
        lines["entries"].append(_entry(version.seq, EntryKind.COMMITMENT_PUBLISHED, c.agency, c.signer, published,
                                       str(published)))  # fmt: skip
        lines["commitments"].append("\t".join((
            c.agency, c.commitment, "1", c.commitment.split("-")[0], "服务", "Service", str(version.deadline),
            str(version.deadline_unit), str(target), str(published), _H32, str(published), str(version.seq), _NULL,
        )) + "\n")  # fmt: skip
    seq = len(lines["entries"])
    signer = "0x" + CALENDAR_AGENCY.encode().hex().ljust(40, "0")
    for year, calendar in CALENDARS.items():
        lines["entries"].append(_entry(seq, EntryKind.HOLIDAY_CALENDAR_PUBLISHED, CALENDAR_AGENCY, signer, published,
                                       str(published)))  # fmt: skip
        lines["holiday_calendars"].append("\t".join((
            JURISDICTION, str(year), "1", CALENDAR_AGENCY, json.dumps(sorted(calendar.holidays)),
            json.dumps(sorted(calendar.workdays)), str(published), str(seq),
        )) + "\n")  # fmt: skip
        seq += 1
    return lines, seq


# item kinds of a case, besides ledger.records.EntryKind values: an agency case event is EntryKind.CASE_EVENT
_ANSWER = int(EntryKind.FILING_ANSWERED)
_EVENT, _RECEIPT, _CLAIM = int(EntryKind.CASE_EVENT), int(EntryKind.RECEIPT_ISSUED), int(EntryKind.RECEIPT_CLAIMED)
_RATED, _DISPUTED, _CORRECTION = int(EntryKind.CASE_RATED), int(EntryKind.CASE_DISPUTED), int(EntryKind.CORRECTION)
_FILED = int(EntryKind.FILING_RECORDED)
# case actions as plain ints (compared many times a case)
_OPENED = int(CaseAction.OPENED)
_ACCEPTED = int(CaseAction.ACCEPTED)
_ON_HOLD = int(CaseAction.ON_HOLD)
_RESUMED = int(CaseAction.RESUMED)
_ESCALATED = int(CaseAction.ESCALATED)
_FULFILLED = int(CaseAction.FULFILLED)
_REJECTED = int(CaseAction.REJECTED)
_WITHDRAWN = int(CaseAction.WITHDRAWN)
_REOPENED = int(CaseAction.REOPENED)
_DISPUTE_REJECTED = int(CaseAction.DISPUTE_REJECTED)
_RECTIFIED = int(CaseAction.RECTIFIED)
_REFUSALS = [int(d) for d in (FilingDecision.DUPLICATE, FilingDecision.OUT_OF_SCOPE, FilingDecision.SPAM)]
#: score tables (1-5) for a rating of a case fulfilled in time, fulfilled late, and closed otherwise
_SCORES = (
    _table({1: 3, 2: 5, 3: 10, 4: 25, 5: 57}, 1000),
    _table({1: 10, 2: 12, 3: 18, 4: 25, 5: 35}, 1000),
    _table({1: 15, 2: 15, 3: 20, 4: 20, 5: 30}, 1000),
)
#: filings rejected: a share of all filings
_FILINGS_REJECTED = 0.12
_P_FILED = 0.10


def generate(n_cases: int, seed: int, emit: Callable[[str, str], None], *, flush_every: int = 2_000,
             fold_apart: bool = False) -> Counts:  # fmt: skip
    """Generate ``n_cases`` case slots (a few filings never become cases: rejected, or unanswered at the end) after the
    preamble's entries, calling ``emit(table, text)`` with COPY text of whole lines every ``flush_every`` cases. With
    ``fold_apart``, the cases are folded in a process of their own (half the work, on the other core); their lines
    come in the same calls, somewhat later."""
    out: dict[str, list[str]] = {table: [] for table in COLUMNS}
    counts = Counts()
    folding = _Folding(out["cases"], apart=fold_apart)
    try:
        _generate(n_cases, seed, emit, flush_every, out, counts, folding)
        folding.close(emit)
    finally:
        folding.stop()
    _flush(out, emit)
    return counts


def _generate(n_cases: int, seed: int, emit: Callable[[str, str], None], flush_every: int, out: dict[str, list[str]],
              counts: Counts, folding: _Folding) -> None:  # fmt: skip
    rng = random.Random(seed)
    rand, lognorm = rng.random, rng.lognormvariate
    offered = commitments()
    by_weight = _table({c: AGENCIES[c.agency][0] / len(AGENCIES[c.agency][1]) for c in offered})
    districts = _table({k: float(v) for k, v in DISTRICTS.items()})
    channels = _table({int(k): float(v) for k, v in CHANNELS.items()})
    minutes, bounds = _minutes_of_day(), _day_bounds(n_cases)
    pre, seq = preamble()
    for table, lines in pre.items():
        out[table].extend(lines)
    counts.entries += len(pre["entries"])
    filing_number = 0  # filings that open no case get ids after every case's

    def latency() -> int:
        """How long after the claimed time an agency's event reaches the chain."""
        r = rand()
        if r < 0.9:
            return 5 + int(rand() * 295)  # batched within minutes
        return 300 + int(rand() * 20 * HOUR) if r < 0.99 else DAY + int(rand() * 4 * DAY)  # days: late recordings

    number = 0
    for day in range(DAYS):
        first, end = bounds[day], bounds[day + 1]
        day_start = START + day * DAY
        for k in range(end - first):
            number += 1
            c = by_weight[int(rand() * 4096)]
            district = districts[int(rand() * 4096)]
            opened_at = day_start + minutes[k * 1440 // (end - first)] * MINUTE + int(rand() * MINUTE)
            filed = rand() < _P_FILED
            # items: (block time, order, kind, action or score, claimed time, key); sorted, they take seqs in turn
            items: list[tuple[int, int, int, int, int, str]] = []
            if filed:
                channel = int(Channel.APP) if rand() < 0.6 else int(Channel.WEB)
                filer = _address(number)
                while rand() < _FILINGS_REJECTED:  # rejected filings of the same kind, before this one
                    filing_number += 1
                    filed_at = max(START, opened_at - int(rand() * DAY))
                    seq = _refused_filing(seq, c, district, channel, filed_at, n_cases + filing_number, rand, out,
                                          counts)  # fmt: skip
                r = rand()
                delay = (600 + int(rand() * 5 * HOUR) if r < 0.8 else 5 * HOUR + int(rand() * 20 * HOUR) if r < 0.95
                         else DAY + int(rand() * 4 * DAY))  # fmt: skip
                answered_at = opened_at + delay if rand() > 0.003 else NOW  # a few forgotten
                items.append((opened_at, 0, _FILED, 0, opened_at, filer))
                items.append((answered_at, 1, _ANSWER, _OPENED, opened_at, filer))
                key, work_from, recorded_from = filer, answered_at, answered_at
            else:
                channel = channels[int(rand() * 4096)]
                opened_block = opened_at + latency()
                items.append((opened_block, 0, _EVENT, _OPENED, opened_at, ""))
                key, work_from, recorded_from = "", opened_at, opened_block
                if rand() < 0.85:
                    key = _address(number)
                    items.append((opened_block + int(rand() * 60), 1, _RECEIPT, 0, opened_at, key))
                    if rand() < 0.08:
                        claimed = _address(number + 2**80)
                        items.append((opened_block + 600 + int(rand() * 3 * DAY), 2, _CLAIM, 0, 0, claimed))
            receipted = key != ""
            case_id = _case_id(number, receipted)

            # the agency's events, by claimed time
            roll = rand()
            if roll < 0.005:
                outcome, work = 0, 10**9  # forgotten: never closed
            elif roll < 0.065:
                outcome, work = _REJECTED, HOUR + int(rand() * 2 * DAY)
            elif roll < 0.095:
                outcome, work = _WITHDRAWN, HOUR + int(rand() * 3 * DAY)
            else:
                outcome, work = _FULFILLED, max(600, int(c.nominal * lognorm(c.pace, 0.55)))
            agency_events: list[tuple[int, int]] = []
            accepted = work_from
            if rand() < 0.8:
                r = rand()
                delay = (60 + int(rand() * 4 * HOUR) if r < 0.7 else 4 * HOUR + int(rand() * 20 * HOUR) if r < 0.92
                         else DAY + int(rand() * 3 * DAY))  # fmt: skip
                accepted += min(delay, work // 2)
                agency_events.append((accepted, _ACCEPTED))
            hold = 0
            hold_start = work_from + work
            if rand() < 0.12:  # waiting for the citizen (missing documents, no one home), once taken up
                hold_start = accepted + int(rand() * (min(work, 2 * c.nominal) - (accepted - work_from)))
                hold = HOUR + int(rand() * 4 * DAY)
                agency_events.append((hold_start, _ON_HOLD))
                agency_events.append((hold_start + hold, _RESUMED))
            if rand() < 0.03:
                agency_events.append((work_from + int(rand() * (hold_start - work_from)), _ESCALATED))
            if outcome:
                agency_events.append((work_from + work + hold, outcome))
            agency_events.sort()
            close_block = _record(agency_events, items, recorded_from, latency)

            # the citizen's feedback on the closing, and the agency's answers to it
            answers: list[tuple[int, int]] = []
            if receipted and close_block < NOW:
                late = outcome == _FULFILLED and work > c.nominal
                if rand() < 0.4:
                    rated = close_block + int(HOUR * lognorm(1.8, 1.2))
                    score = _SCORES[0 if outcome == _FULFILLED and not late else 1 if late else 2][int(rand() * 1000)]
                    items.append((rated, 10, _RATED, score, 0, ""))
                    if score <= BAD_RATING_MAX and rand() < 0.7:
                        answers.append((rated + int(rand() * 18 * DAY) if rand() < 0.85
                                         else rated + 22 * DAY + int(rand() * 18 * DAY), _RECTIFIED))  # fmt: skip
                if outcome == _FULFILLED and rand() < 0.03:
                    disputed = close_block + HOUR + int(rand() * (DISPUTE_WINDOW - 2 * HOUR))
                    items.append((disputed, 11, _DISPUTED, 0, 0, ""))
                    r = rand()
                    if r < 0.96:
                        answer = disputed + (HOUR + int(rand() * (DISPUTE_RESPONSE_WINDOW - 2 * HOUR)) if r < 0.88
                                             else DISPUTE_RESPONSE_WINDOW + int(rand() * 10 * DAY))  # fmt: skip
                        if rand() < 0.35:
                            answers.append((answer, _REOPENED))
                            answers.append((answer + HOUR + int(rand() * 4 * DAY), _FULFILLED))
                        else:
                            answers.append((answer, _DISPUTE_REJECTED))
            if outcome and not answers and rand() < 0.003:  # reopened by the agency (the citizen called back)
                reopened = agency_events[-1][0] + DAY + int(rand() * 10 * DAY)
                answers += [(reopened, _REOPENED), (reopened + HOUR + int(rand() * 3 * DAY), outcome)]
            if answers:
                answers.sort()
                _record(answers, items, close_block, latency, first_order=20)
            if rand() < 0.002:  # an event recorded twice: the duplicate voided by a correction
                original = next((item for item in items if item[2] == _EVENT and item[3] != _OPENED), None)
                if original is not None:
                    twice = original[0] + 60 + int(rand() * 1800)
                    items.append((twice, 40, _EVENT, original[3], original[4], "void"))
                    items.append((twice + HOUR + int(rand() * 47 * HOUR), 41, _CORRECTION, 0, 0, ""))

            items.sort()
            seq = _write_case(seq, items, case_id, c, district, channel, out, counts, folding.add)
            if number % flush_every == 0:
                folding.flush(emit)
                _flush(out, emit)


def _record(timed: list[tuple[int, int]], items: list[tuple[int, int, int, int, int, str]], since: int,
            latency: Callable[[], int], first_order: int = 2) -> int:  # fmt: skip
    """Add an agency's events (claimed time, action; in order) to the items, recorded in order: each reaches the
    chain some latency after its claimed time, and not before the one before it. The last one's block time."""
    block = since
    for order, (at, action) in enumerate(timed, first_order):
        block = max(block, at + latency())
        items.append((block, order, _EVENT, action, at, ""))
    return block


def _refused_filing(seq: int, c: _Commitment, district: str, channel: int, filed_at: int, number: int,
                    rand: Callable[[], float], out: dict[str, list[str]], counts: Counts) -> int:  # fmt: skip
    """A filing the agency rejects (or has not answered by NOW): its entries and row. The next seq."""
    agency = c.agency
    filer = _address(number)
    out["entries"].append(_entry(seq, _FILED, agency, filer, filed_at, _NULL))
    due = answer_due(filed_at, CALENDARS)
    answered = filed_at + 600 + int(rand() * (3 * DAY if rand() < 0.9 else 6 * DAY))
    answer_fields = [_NULL] * 6
    if answered < NOW:
        out["entries"].append(_entry(seq + 1, _ANSWER, agency, c.signer, answered, _NULL))
        decision = _REFUSALS[int(rand() * 3)]
        duplicate = _case_id(number + 2**64, True) if decision == FilingDecision.DUPLICATE else _NULL
        answer_fields = [str(seq + 1), str(decision), _NULL, duplicate, _H32, str(answered)]
    out["filings"].append("\t".join((
        str(seq), agency, c.commitment, district, str(channel), _H32, filer, _RELAYER, str(filed_at), str(due),
        *answer_fields, _case_id(number, True),
    )) + "\n")  # fmt: skip
    written = 2 if answered < NOW else 1
    counts.entries += written
    counts.filings += 1
    return seq + written


def _write_case(seq: int, items: list[tuple[int, int, int, int, int, str]], case_id: str, c: _Commitment,
                district: str, channel: int, out: dict[str, list[str]], counts: Counts,
                fold: Callable[[_FoldRecord], None]) -> int:  # fmt: skip
    """The lines of one case's items recorded before NOW (in block-time order), and what its ``cases`` row is folded
    from, to ``fold``. The next seq."""
    agency, signer = c.agency, c.signer
    entries, events, receipts = out["entries"], out["case_events"], out["receipts"]
    kept = [item for item in items if item[0] < NOW]
    seqs = range(seq, seq + len(kept))
    voided_by = {}
    for s, item in zip(seqs, kept):
        if item[2] == _CORRECTION:  # voids the duplicate recorded before it
            target = next(t for t, other in zip(seqs, kept) if other[5] == "void")
            voided_by[target] = s
            out["corrections"].append(f"{s}\t{agency}\t{target}\t{_H32}\t{item[0]}\tt\n")
            counts.corrections += 1
    fold_events: list[tuple[int, int, int]] = []
    feedback: list[tuple[int, int, str, int, int]] = []
    key = ""
    open_disputes: list[tuple[int, int, str]] = []  # (seq, block time, key) of disputes awaiting an answer
    filing_line: list[str] | None = None
    for s, (block, _order, kind, action, at, item_key) in zip(seqs, kept):
        if kind == _EVENT:
            voided = voided_by.get(s)
            entries.append(_entry(s, _EVENT, agency, signer, block, str(at), _opt(voided)))
            intake = f"{c.commitment}\t{district}\t{channel}" if action == _OPENED else "\\N\t\\N\t\\N"
            events.append(f"{s}\t{agency}\t{case_id}\t{action}\t{at}\t{block}\t{_H32}\t{intake}\n")
            counts.events += 1
            if voided is None:
                fold_events.append((s, action, at))
                if (action == _REOPENED or action == _DISPUTE_REJECTED) and open_disputes:
                    _dispute_line(out, agency, case_id, *open_disputes.pop(), f"{s}\t{action}\t{block}")
        elif kind == _RECEIPT or kind == _CLAIM:
            entries.append(_entry(s, kind, agency, signer if kind == _RECEIPT else key, block,
                                  str(at) if kind == _RECEIPT else _NULL))  # fmt: skip
            key = item_key
            receipts.append(f"{s}\t{agency}\t{case_id}\t{key}\t{at if kind == _RECEIPT else block}\t{block}\n")
            feedback.append((s, _RECEIPT, key, block, 0))
            counts.receipts += 1
        elif kind == _FILED:
            entries.append(_entry(s, _FILED, agency, item_key, block, _NULL))
            filing_line = [str(s), agency, c.commitment, district, str(channel), _H32, item_key, _RELAYER,
                           str(block), str(answer_due(block, CALENDARS))]  # fmt: skip
            counts.filings += 1
        elif kind == _ANSWER:  # the acceptance opens the case: an Opened event and the filer's receipt, at its seq
            assert filing_line is not None
            entries.append(_entry(s, _ANSWER, agency, signer, block, _NULL))
            filing_line += [str(s), str(int(FilingDecision.ACCEPTED)), case_id, _NULL, _H32, str(block)]
            events.append(
                f"{s}\t{agency}\t{case_id}\t{_OPENED}\t{at}\t{block}\t{_H32}\t{c.commitment}\t{district}\t{channel}\n"
            )
            fold_events.append((s, _OPENED, at))
            key = item_key
            receipts.append(f"{s}\t{agency}\t{case_id}\t{key}\t{at}\t{block}\n")
            feedback.append((s, _RECEIPT, key, block, 0))
            counts.events += 1
            counts.receipts += 1
        elif kind == _RATED:
            entries.append(_entry(s, _RATED, agency, key, block, _NULL))
            out["ratings"].append(f"{s}\t{agency}\t{case_id}\t{action}\t{_H32}\t{key}\t{block}\n")
            feedback.append((s, _RATED, key, block, action))
            counts.ratings += 1
        elif kind == _DISPUTED:
            entries.append(_entry(s, _DISPUTED, agency, key, block, _NULL))
            feedback.append((s, _DISPUTED, key, block, 0))
            open_disputes.append((s, block, key))
            counts.disputes += 1
        elif kind == _CORRECTION:
            entries.append(_entry(s, _CORRECTION, agency, signer, block, str(block)))
    for dispute in open_disputes:  # unanswered by NOW
        _dispute_line(out, agency, case_id, *dispute, "\\N\t\\N\t\\N")
    if filing_line is not None:
        if len(filing_line) == 10:  # not answered by NOW: no case yet
            filing_line += [_NULL] * 6
        out["filings"].append("\t".join((*filing_line, case_id)) + "\n")
    counts.entries += len(kept)
    if fold_events:  # its Opened was recorded (the first of its events), so it is a case
        fold((c.index, case_id, district, channel, fold_events, feedback))
        counts.cases += 1
    return seq + len(kept)


#: what a case's row is folded from: its commitment's index, id, district, channel, non-voided events (seq, action,
#: claimed time) and feedback (``ledger.cases.Feedback``'s fields)
_FoldRecord = tuple[int, str, str, int, list[tuple[int, int, int]], list[tuple[int, int, str, int, int]]]


def case_line(offered: Sequence[_Commitment], record: _FoldRecord) -> str:
    """The ``cases`` COPY line of a case: ``ledger.cases.fold_case`` of its events and feedback."""
    index, case_id, district, channel, timed, feedback = record
    c = offered[index]
    events = [Event(s, action, at, c.commitment, district, channel) if action == _OPENED else Event(s, action, at)
              for s, action, at in timed]  # fmt: skip
    state = fold_case(events, c.versions, CALENDARS, [Feedback(*item) for item in feedback])
    assert state is not None  # it has its Opened
    return f"{c.agency}\t{case_id}\t" + "\t".join(map(_text, compress(state, _CASE_FIELDS_KEPT))) + "\n"


def fold_worker(requests: multiprocessing.Queue[list[_FoldRecord] | None], replies: multiprocessing.Queue[str | None],
                ) -> None:  # fmt: skip
    """A process folding batches of cases into their ``cases`` COPY text, until a None. It says "" when it starts."""
    offered = commitments()
    replies.put("")
    while (batch := requests.get()) is not None:
        replies.put("".join(case_line(offered, record) for record in batch))
    replies.put(None)


#: seconds a fold worker may take to start
_WORKER_START = 60


class _Folding:
    """Cases folded into ``cases`` lines: at once, or apart in a :func:`fold_worker` process."""

    def __init__(self, lines: list[str], *, apart: bool) -> None:
        self._lines = lines
        self._offered = commitments()
        self._batch: list[_FoldRecord] = []
        self._process: multiprocessing.process.BaseProcess | None = None
        if apart:
            context = multiprocessing.get_context("spawn")  # not fork: the parent holds connections and threads
            self._requests: multiprocessing.Queue[list[_FoldRecord] | None] = context.Queue(maxsize=4)
            self._replies: multiprocessing.Queue[str | None] = context.Queue()
            self._process = context.Process(target=fold_worker, args=(self._requests, self._replies), daemon=True)
            self._process.start()
            try:  # a spawned process imports the main module first: one that runs its work unguarded never starts
                self._replies.get(timeout=_WORKER_START)
            except queue.Empty:
                self.stop()
                raise RuntimeError(
                    "the fold worker did not start: is the main script's work under `if __name__ == '__main__'`?"
                ) from None

    def add(self, record: _FoldRecord) -> None:
        if self._process is None:
            self._lines.append(case_line(self._offered, record))
        else:
            self._batch.append(record)

    def flush(self, emit: Callable[[str, str], None]) -> None:
        """Send the batch to the worker; emit what it has folded so far."""
        if self._process is None:
            return
        if self._batch:
            self._wait(lambda: self._requests.put(self._batch, timeout=1))
            self._batch = []
        while True:
            try:
                text = self._replies.get_nowait()
            except queue.Empty:
                return
            assert text is not None
            emit("cases", text)

    def close(self, emit: Callable[[str, str], None]) -> None:
        """Emit every case still being folded, and end the worker."""
        if self._process is None:
            return
        self.flush(emit)
        self._wait(lambda: self._requests.put(None, timeout=1))
        while (text := self._wait(lambda: self._replies.get(timeout=1))) is not None:
            emit("cases", text)
        self._process.join()

    def stop(self) -> None:
        """End the worker if it still runs (after an error)."""
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join()

    def _wait(self, step: Callable[[], _T]) -> _T:
        """``step`` (which times out after a second), again until it is done, as long as the worker lives."""
        assert self._process is not None
        while True:
            try:
                return step()
            except (queue.Full, queue.Empty):
                if not self._process.is_alive():
                    raise RuntimeError(f"the fold worker ended ({self._process.exitcode})") from None


def _dispute_line(out: dict[str, list[str]], agency: str, case_id: str, seq: int, block: int, key: str,
                  answer: str) -> None:  # fmt: skip
    out["disputes"].append(f"{seq}\t{agency}\t{case_id}\t1\t{_H32}\t{key}\t{block}\t{answer}\n")


def _flush(out: dict[str, list[str]], emit: Callable[[str, str], None]) -> None:
    for table, lines in out.items():
        if lines:
            emit(table, "".join(lines))
            lines.clear()
