"""Exchange sessions, holidays and early closes (the only module importing exchange_calendars)."""

from __future__ import annotations

import datetime as dt
import functools


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
    first = max(start, dt.date(1990, 1, 1))
    cal = _calendar(code, f"{first.year}-01-01", f"{max(end.year + 1, first.year + 1)}-12-31")
    closes = cal.closes.loc[str(first):str(end)]
    return {ts.date(): c.to_pydatetime() for ts, c in closes.items()}
