"""Exchange sessions, holidays and early closes (the only module importing exchange_calendars)."""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from typing import Any

# The calendars are asked from here on (exchange_calendars' data for older years varies by calendar).
CALENDAR_START = dt.date(1990, 1, 1)


@functools.cache
def calendar_names() -> frozenset[str]:
    """Every calendar code exchange_calendars knows, aliases included (XNYS, CMES, NYSE, ...)."""
    import exchange_calendars

    return frozenset(exchange_calendars.get_calendar_names(include_aliases=True))


@functools.cache
def _calendar(code: str, start: str, end: str):
    import exchange_calendars

    return exchange_calendars.get_calendar(code, start=start, end=end)


def close_times(code: str, start: dt.date, end: dt.date) -> dict[dt.date, dt.datetime]:
    """Each session's close (UTC, early closes included) between two dates."""
    days, _opens, closes, span = _span(code, start, end)
    return {days[i]: closes[i] for i in span}


def session_times(code: str, start: dt.date, end: dt.date) -> dict[dt.date, tuple[dt.datetime, dt.datetime]]:
    """Each session's open and close (UTC, early closes included) between two dates."""
    days, opens, closes, span = _span(code, start, end)
    return {days[i]: (opens[i], closes[i]) for i in span}


Table = tuple[tuple[dt.date, ...], tuple[dt.datetime, ...], tuple[dt.datetime, ...]]


@functools.lru_cache(maxsize=64)
def _table(code: str, start: str, end: str) -> Table:
    """A calendar's sessions, opens and closes as Python objects, converted once: the daemon asks for the last two
    weeks every minute, and slicing pandas each time cost more than all else it did. Tuples, as every caller
    shares them; callers get dicts built fresh from them."""
    cal = _calendar(code, start, end)
    return (tuple(ts.date() for ts in cal.closes.index), tuple(o.to_pydatetime() for o in cal.opens),
            tuple(c.to_pydatetime() for c in cal.closes))


def _span(code: str, start: dt.date, end: dt.date
          ) -> tuple[tuple[dt.date, ...], tuple[dt.datetime, ...], tuple[dt.datetime, ...], range]:
    """The calendar covering two dates (the one these dates always got) and the indices of its sessions between
    them, inclusive: what `.loc[start:end]` selected."""
    first, years = _covering(start, end)
    days, opens, closes = _table(code, *years)
    return days, opens, closes, range(bisect.bisect_left(days, first), bisect.bisect_right(days, end))


def _covering(start: dt.date, end: dt.date) -> tuple[dt.date, tuple[str, str]]:
    """The first date asked (none before CALENDAR_START) and the span of the calendar read for two dates: whole
    years, one beyond the end, so that the caches see few distinct calendars."""
    first = max(start, CALENDAR_START)
    return first, (f"{first.year}-01-01", f"{max(end.year + 1, first.year + 1)}-12-31")


def _recent(code: str, now: dt.datetime) -> dict[dt.date, tuple[dt.datetime, dt.datetime]]:
    # Two weeks back covers the longest closures (2001-09-11: four sessions) plus a weekend.
    return session_times(code, now.date() - dt.timedelta(days=14), now.date() + dt.timedelta(days=1))


def last_closed_session(code: str, now: dt.datetime) -> dt.date | None:
    """The newest session whose close is at or before `now` (tz-aware)."""
    done = [day for day, (_, close) in _recent(code, now).items() if close <= now]
    return max(done) if done else None


def last_open(code: str, now: dt.datetime) -> dt.datetime | None:
    """The open of the newest session that has opened by `now` (tz-aware), closed since or not."""
    opened = [open_ for open_, _ in _recent(code, now).values() if open_ <= now]
    return max(opened) if opened else None


def is_open(code: str, now: dt.datetime) -> bool:
    """Whether a session of the calendar is trading at `now` (tz-aware)."""
    return any(open_ <= now < close for open_, close in _recent(code, now).values())


def close_columns(code: str, start: dt.date, end: dt.date) -> tuple[Any, Any]:
    """Sessions (datetime64[D]) and their closes (datetime64[ns], UTC) between two dates, as arrays."""
    sessions, _opens, closes = session_columns(code, start, end)
    return sessions, closes


@functools.lru_cache(maxsize=64)
def session_columns(code: str, start: dt.date, end: dt.date) -> tuple[Any, Any, Any]:
    """Sessions (datetime64[D]) with their opens and closes (datetime64[ns], UTC) between two dates, as arrays:
    where an alert between two sessions enters (replay --score)."""
    first, years = _covering(start, end)
    cal = _calendar(code, *years)
    opens, closes = cal.opens.loc[str(first):str(end)], cal.closes.loc[str(first):str(end)]

    def utc(times: Any) -> Any:
        return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")

    return opens.index.to_numpy().astype("datetime64[D]"), utc(opens), utc(closes)
