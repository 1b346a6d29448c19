"""The exchange calendar's sessions are converted once per calendar (sources/calendar.py `_table`): the daemon asks
for the last two weeks every minute. The times are those exchange_calendars gives, each caller gets its own dict,
and a second question about the same calendar no longer goes to pandas."""

from __future__ import annotations

import datetime as dt

import exchange_calendars
import pytest

from macrowatch.sources import calendar

D = dt.date


def from_exchange_calendars(code: str, start: dt.date, end: dt.date) -> dict[dt.date, tuple[dt.datetime, dt.datetime]]:
    first = max(start, calendar.CALENDAR_START)
    cal = exchange_calendars.get_calendar(code, start=f"{first.year}-01-01", end=f"{end.year + 1}-12-31")
    days = [s for s in cal.sessions if first <= s.date() <= end]
    return {s.date(): (cal.session_open(s).to_pydatetime(), cal.session_close(s).to_pydatetime()) for s in days}


@pytest.mark.parametrize("code, start, end", [
    ("XNYS", D(2024, 12, 20), D(2025, 1, 10)),   # across a year's end, the 2025-01-09 closure
    ("XNYS", D(2019, 7, 1), D(2019, 7, 8)),      # an early close, a holiday
    ("XNYS", D(1989, 12, 20), D(1990, 1, 5)),    # before the calendars are asked
    ("CMES", D(2019, 11, 25), D(2019, 12, 2)),   # futures on Thanksgiving
    ("XNYS", D(2020, 3, 1), D(2020, 2, 1)),      # an empty span
])
def test_the_times_are_exchange_calendars(code, start, end):
    want = from_exchange_calendars(code, start, end)
    assert calendar.session_times(code, start, end) == want
    assert calendar.close_times(code, start, end) == {d: c for d, (_o, c) in want.items()}
    assert list(calendar.session_times(code, start, end)) == sorted(want)


def test_each_caller_gets_its_own_dict():
    first = calendar.session_times("XNYS", D(2023, 6, 1), D(2023, 6, 30))
    first.clear()
    calendar.close_times("XNYS", D(2023, 6, 1), D(2023, 6, 30)).clear()
    assert len(calendar.session_times("XNYS", D(2023, 6, 1), D(2023, 6, 30))) == 21


def test_a_second_question_about_a_calendar_does_not_go_to_pandas(monkeypatch):
    now = dt.datetime(2022, 6, 15, 21, 0, tzinfo=dt.UTC)
    assert calendar.last_closed_session("XNYS", now) == D(2022, 6, 15)

    def refused(*args):
        raise AssertionError("the calendar was read again")

    monkeypatch.setattr(calendar, "_calendar", refused)
    for minutes in range(0, 3 * 24 * 60, 7):  # three days of the daemon's minute: the same calendar
        at = now + dt.timedelta(minutes=minutes)
        calendar.last_closed_session("XNYS", at)
        calendar.is_open("XNYS", at)
    assert calendar.last_closed_session("XNYS", now + dt.timedelta(days=3)) == D(2022, 6, 17)
