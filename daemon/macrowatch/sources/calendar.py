"""Exchange sessions, holidays and early closes (the only module importing exchange_calendars)."""

from __future__ import annotations

import functools


@functools.cache
def calendar_names() -> frozenset[str]:
    """Every calendar code exchange_calendars knows, aliases included (XNYS, CMES, NYSE, ...)."""
    import exchange_calendars

    return frozenset(exchange_calendars.get_calendar_names(include_aliases=True))
