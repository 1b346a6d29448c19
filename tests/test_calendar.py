"""Exchange sessions, holidays and early closes, from exchange_calendars (offline)."""

from __future__ import annotations

import datetime as dt

import pytest

from macrowatch.sources import calendar

UTC = dt.UTC


@pytest.mark.parametrize("day, close", [
    (dt.date(2019, 7, 3), dt.datetime(2019, 7, 3, 17, 0, tzinfo=UTC)),      # early close, 13:00 EDT
    (dt.date(2019, 11, 29), dt.datetime(2019, 11, 29, 18, 0, tzinfo=UTC)),  # day after Thanksgiving, 13:00 EST
    (dt.date(2019, 12, 2), dt.datetime(2019, 12, 2, 21, 0, tzinfo=UTC)),    # a regular 16:00 EST close
    (dt.date(2019, 7, 8), dt.datetime(2019, 7, 8, 20, 0, tzinfo=UTC)),      # a regular 16:00 EDT close
], ids=["early-close-july", "early-close-thanksgiving", "regular-winter", "regular-summer"])
def test_close_times(day, close):
    assert calendar.close_times("XNYS", day, day)[day] == close


@pytest.mark.parametrize("day", [dt.date(2019, 7, 4), dt.date(2019, 11, 28), dt.date(2018, 12, 5),
                                 dt.date(2025, 1, 9), dt.date(2019, 7, 6)],
                         ids=["independence-day", "thanksgiving", "bush-mourning", "carter-mourning", "saturday"])
def test_no_session(day):
    assert day not in calendar.close_times("XNYS", day - dt.timedelta(days=3), day + dt.timedelta(days=3))


def test_futures_trade_when_stocks_are_shut():
    thanksgiving = dt.date(2019, 11, 28)
    assert thanksgiving in calendar.close_times("CMES", thanksgiving, thanksgiving)


def test_last_closed_session_and_is_open():
    before_close = dt.datetime(2019, 12, 2, 20, 59, tzinfo=UTC)
    after_close = dt.datetime(2019, 12, 2, 21, 1, tzinfo=UTC)
    assert calendar.is_open("XNYS", before_close) and not calendar.is_open("XNYS", after_close)
    assert calendar.last_closed_session("XNYS", before_close) == dt.date(2019, 11, 29)
    assert calendar.last_closed_session("XNYS", after_close) == dt.date(2019, 12, 2)


def test_names_include_aliases():
    names = calendar.calendar_names()
    assert {"XNYS", "CMES", "NYSE"} <= names
