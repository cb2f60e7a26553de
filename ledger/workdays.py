"""Working days of a jurisdiction, from its published holiday calendars: the arithmetic behind working-day deadlines.

A day is a calendar day number (days since 1970-01-01, the unit on chain). A day is a working day when it is a
Monday to Friday that is not one of its year's ``holidays``, or a Saturday or Sunday that is one of its year's
``workdays`` (China's swapped working weekends). Only the latest published version of a year's calendar applies;
choosing it is the caller's job (see :mod:`ledger.cases` and the indexer).

Days are those of the jurisdiction's local time, which the contract does not record: see
:data:`LOCAL_UTC_OFFSET_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date

#: Offset of the jurisdiction's local time from UTC, in seconds. The contract has no time-zone field, and every
#: jurisdiction indexed so far is in mainland China (UTC+8 all year, no daylight saving), so deadlines count days
#: in UTC+8. When a jurisdiction elsewhere arrives this must become a per-jurisdiction setting, published so that
#: auditors can apply it too.
LOCAL_UTC_OFFSET_SECONDS = 8 * 3600

SECONDS_PER_DAY = 86_400

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: Day number of 10000-01-01: calendars stop at year 9999 (the contract refuses later years).
_END_OF_CALENDARS = date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1


@dataclass(frozen=True, slots=True)
class YearCalendar:
    """One year's published calendar: weekdays off (``holidays``) and weekend days on (``workdays``)."""

    year: int
    holidays: frozenset[int] = frozenset()
    workdays: frozenset[int] = frozenset()

    @classmethod
    def of(cls, year: int, holidays: Iterable[int] = (), workdays: Iterable[int] = ()) -> YearCalendar:
        return cls(year, frozenset(holidays), frozenset(workdays))

    def is_working_day(self, day: int) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        return not is_weekend(day)


def weekday(day: int) -> int:
    """Monday 0 … Sunday 6 (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


def is_weekend(day: int) -> bool:
    return weekday(day) >= 5


def day_of(value: date) -> int:
    """A date as a day number."""
    return value.toordinal() - _EPOCH_ORDINAL


def date_of(day: int) -> date:
    """A day number as a date."""
    return date.fromordinal(_EPOCH_ORDINAL + day)


def year_of(day: int) -> int:
    return date_of(day).year


def year_days(year: int) -> tuple[int, int]:
    """First day of `year` and first day of the next, as day numbers."""
    first = day_of(date(year, 1, 1))
    end = day_of(date(year + 1, 1, 1)) if year < 9999 else _END_OF_CALENDARS
    return first, end


def local_day(unix_time: int) -> int:
    """The jurisdiction-local calendar day a unix time falls on."""
    return (unix_time + LOCAL_UTC_OFFSET_SECONDS) // SECONDS_PER_DAY


def local_day_start(day: int) -> int:
    """Unix time of 00:00 local time on `day`."""
    return day * SECONDS_PER_DAY - LOCAL_UTC_OFFSET_SECONDS


def local_day_end(day: int) -> int:
    """Unix time of 24:00 local time on `day` (= 00:00 of the next day): the end of a deadline's last day."""
    return local_day_start(day + 1)


def _weekdays_between(first: int, end: int) -> int:
    """Number of Monday–Friday days in [first, end)."""
    if end <= first:
        return 0
    full_weeks, rest = divmod(end - first, 7)
    count = full_weeks * 5
    start = weekday(first)
    count += sum(1 for i in range(rest) if (start + i) % 7 < 5)
    return count


def working_days_between(calendar: YearCalendar, first: int, end: int) -> int:
    """Number of working days in [first, end), all of it within `calendar`'s year."""
    count = _weekdays_between(first, end)
    count -= sum(1 for day in calendar.holidays if first <= day < end and not is_weekend(day))
    count += sum(1 for day in calendar.workdays if first <= day < end and is_weekend(day))
    return count


def nth_working_day_after(day: int, n: int, calendars: Mapping[int, YearCalendar]) -> int | None:
    """The `n`-th working day after `day` (`day` itself never counts), or None when a year that has to be looked at
    has no calendar in `calendars` (year → calendar). ``n <= 0`` gives `day` itself."""
    if n <= 0:
        return day
    current = day + 1
    while current < _END_OF_CALENDARS:
        year = year_of(current)
        calendar = calendars.get(year)
        if calendar is None:
            return None
        _, end = year_days(year)
        available = working_days_between(calendar, current, end)
        if available < n:
            # Skip the rest of the year at once, so even a deadline of years costs one step per year.
            n -= available
            current = end
            continue
        while True:
            if calendar.is_working_day(current):
                n -= 1
                if n == 0:
                    return current
            current += 1
    return None


def working_days_due(opened_at: int, n: int, calendars: Mapping[int, YearCalendar]) -> int | None:
    """End (24:00 local) of the `n`-th working day after the local day of `opened_at`, as unix time; None when a
    year on the way has no published calendar. Hold time is not included (see :mod:`ledger.cases`)."""
    day = nth_working_day_after(local_day(opened_at), n, calendars)
    return None if day is None else local_day_end(day)


class _WeekdaysWhereUnpublished(Mapping[int, YearCalendar]):
    """The jurisdiction's published calendars, and a plain Monday-to-Friday one for any other year."""

    def __init__(self, published: Mapping[int, YearCalendar]) -> None:
        self._published = published

    def __getitem__(self, year: int) -> YearCalendar:
        found = self._published.get(year)
        return YearCalendar.of(year) if found is None else found

    def __iter__(self) -> Iterator[int]:
        return iter(self._published)

    def __len__(self) -> int:
        return len(self._published)


def working_days_due_always(at: int, n: int, calendars: Mapping[int, YearCalendar]) -> int:
    """:func:`working_days_due`, counting Monday to Friday in a year whose calendar is not published: a time limit
    that always has an end, so an agency cannot escape it by not publishing a calendar (a filing's answer, a case's
    response, a bad rating's rectification)."""
    due = working_days_due(at, n, _WeekdaysWhereUnpublished(calendars))
    assert due is not None  # every year has a calendar here
    return due
