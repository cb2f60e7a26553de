"""Working-day arithmetic: weekdays, holidays, swapped weekend workdays, local days and year boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.workdays import (
    LOCAL_UTC_OFFSET_SECONDS,
    YearCalendar,
    date_of,
    day_of,
    is_weekend,
    local_day,
    local_day_end,
    nth_working_day_after,
    weekday,
    working_days_between,
    working_days_due,
    year_days,
)

CST = timezone(timedelta(seconds=LOCAL_UTC_OFFSET_SECONDS))

# China, National Day 2025: Wed 1 – Wed 8 October off; Sunday 28 September and Saturday 11 October are working days.
NATIONAL_DAY_2025 = YearCalendar.of(
    2025,
    holidays=[day_of(date(2025, 10, d)) for d in (1, 2, 3, 6, 7, 8)],
    workdays=[day_of(date(2025, 9, 28)), day_of(date(2025, 10, 11))],
)
CALENDARS = {2025: NATIONAL_DAY_2025, 2026: YearCalendar.of(2026)}


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> int:
    return int(datetime(y, m, d, hh, mm, tzinfo=CST).timestamp())


def test_weekdays() -> None:
    assert weekday(0) == 3  # 1970-01-01 was a Thursday
    assert weekday(day_of(date(2025, 10, 1))) == 2  # Wednesday
    assert is_weekend(day_of(date(2025, 9, 28))) and not is_weekend(day_of(date(2025, 9, 29)))
    assert date_of(day_of(date(2031, 2, 3))) == date(2031, 2, 3)


def test_swapped_weekend_and_holidays() -> None:
    cal = NATIONAL_DAY_2025
    assert cal.is_working_day(day_of(date(2025, 9, 28)))  # Sunday, swapped to a working day
    assert not cal.is_working_day(day_of(date(2025, 9, 27)))  # an ordinary Saturday
    assert not cal.is_working_day(day_of(date(2025, 10, 1)))
    assert not cal.is_working_day(day_of(date(2025, 10, 4)))  # Saturday inside the holiday week
    assert cal.is_working_day(day_of(date(2025, 10, 9)))
    assert cal.is_working_day(day_of(date(2025, 10, 11)))  # Saturday, swapped


def test_national_day_week_deadlines() -> None:
    # Opened Friday 26 September: Sunday 28 (swapped), Monday 29, Tuesday 30 are working days 1..3.
    assert nth_working_day_after(day_of(date(2025, 9, 26)), 3, CALENDARS) == day_of(date(2025, 9, 30))
    # Opened Tuesday 30 September, at any time of day: 1–8 October are off; Thursday 9 and Friday 10 count,
    # then Saturday 11 (swapped).
    opened = local(2025, 9, 30, 23, 59)
    assert working_days_due(opened, 2, CALENDARS) == local(2025, 10, 11)  # 24:00 on Friday 10 October
    assert working_days_due(opened, 3, CALENDARS) == local(2025, 10, 12)
    assert working_days_due(opened, 4, CALENDARS) == local(2025, 10, 14)  # Sunday 12 is not swapped: Monday 13
    # The opening day never counts, even when it is a working day.
    assert working_days_due(local(2025, 10, 9, 8), 1, CALENDARS) == local(2025, 10, 11)


def test_local_day_is_utc_plus_8() -> None:
    # 2025-09-30 17:00 UTC is already 1 October in Beijing.
    utc = int(datetime(2025, 9, 30, 17, 0, tzinfo=UTC).timestamp())
    assert date_of(local_day(utc)) == date(2025, 10, 1)
    assert local_day_end(local_day(utc)) == local(2025, 10, 2)


def test_missing_calendar_gives_none() -> None:
    assert working_days_due(local(2024, 12, 30), 1, CALENDARS) is None  # 31 Dec 2024 needs the 2024 calendar
    # Opened on 31 Dec 2024: only 2025 days are counted, so the 2024 calendar is not needed.
    # (This test calendar has no New Year holiday, so Wednesday 1 January 2025 is the first working day.)
    assert working_days_due(local(2024, 12, 31, 9), 1, CALENDARS) == local(2025, 1, 2)
    # Across the year end into a year without a calendar.
    assert working_days_due(local(2026, 12, 30), 3, {2026: YearCalendar.of(2026)}) is None


def test_long_deadlines_span_years() -> None:
    calendars = {y: YearCalendar.of(y) for y in range(2025, 2031)}
    start = day_of(date(2025, 1, 1))  # Wednesday
    end = nth_working_day_after(start, 5 * 261, calendars)
    assert end is not None and calendars[date_of(end).year].is_working_day(end)
    naive = sum(1 for d in range(start + 1, end + 1) if not is_weekend(d))
    assert naive == 5 * 261
    assert nth_working_day_after(start, 10**9, calendars) is None  # runs out of calendars quickly


def test_year_9999_is_the_last() -> None:
    first, end = year_days(9999)
    assert nth_working_day_after(end - 2, 5, {9999: YearCalendar.of(9999)}) is None


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(min_value=day_of(date(2024, 1, 1)), max_value=day_of(date(2026, 12, 31))),
    n=st.integers(min_value=1, max_value=700),
    holiday_picks=st.sets(st.integers(min_value=0, max_value=3 * 366), max_size=40),
    workday_picks=st.sets(st.integers(min_value=0, max_value=3 * 366), max_size=20),
)
def test_matches_day_by_day_count(start: int, n: int, holiday_picks: set[int], workday_picks: set[int]) -> None:
    """The year-skipping count equals walking one day at a time."""
    base = day_of(date(2024, 1, 1))
    calendars = {}
    for year in range(2024, 2030):
        first, end = year_days(year)
        hol = [base + p for p in holiday_picks if first <= base + p < end and not is_weekend(base + p)]
        wrk = [base + p for p in workday_picks if first <= base + p < end and is_weekend(base + p)]
        calendars[year] = YearCalendar.of(year, hol, wrk)
    expected, day, left = None, start, n
    while day < day_of(date(2030, 1, 1)) - 1:
        day += 1
        if calendars[date_of(day).year].is_working_day(day):
            left -= 1
            if left == 0:
                expected = day
                break
    assert nth_working_day_after(start, n, calendars) == expected
    first, end = year_days(2025)
    walked = sum(1 for d in range(first, end) if calendars[2025].is_working_day(d))
    assert working_days_between(calendars[2025], first, end) == walked
