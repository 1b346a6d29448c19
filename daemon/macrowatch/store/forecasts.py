"""Consensus forecasts at rest, point in time: each value a feed showed for a release, with when it was first seen.

A release's consensus is the newest value seen strictly before its time; a value first seen later never counts
(the feed may show it after the print is out). A feed polled all week showing one number keeps one row: a row is
added only when the value changes.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from .base import Db, from_utc_text, utc_text
from .outbox import Writer, fence

_KEY = "feed = ? AND event = ? AND country = ? AND release_at = ?"
_COLUMNS = "feed, event, country, release_at, value, seen_at, note"


@dataclass(frozen=True)
class ForecastRow:
    """One forecast as a feed showed it: `value` None when the release was listed without one."""

    feed: str
    event: str
    country: str
    release_at: dt.datetime
    value: float | None
    seen_at: dt.datetime
    note: str = ""


def put_forecast(db: Db, row: ForecastRow, writer: Writer | None = None) -> bool:
    """Store the row unless the value seen last before it (or at the same time) is the same; True when stored.

    Compared with the row that precedes it in seen time rather than the newest overall, so that a sighting
    recorded late still lands where it belongs; a second value at the same instant replaces the first.
    """
    if row.value is not None and not math.isfinite(row.value):
        raise ValueError(f"forecast {row.feed} {row.event!r} {row.country} for {row.release_at.isoformat()}: "
                         f"value is {row.value}; the store keeps finite numbers only")
    key = (row.feed, row.event, row.country, utc_text(row.release_at))
    value = None if row.value is None else float(row.value)
    seen = utc_text(row.seen_at)
    with db.transaction() as tx:
        fence(tx, db, writer)
        last = tx.query(f"SELECT value FROM forecasts WHERE {_KEY} AND seen_at <= ? ORDER BY seen_at DESC LIMIT 1",
                        (*key, seen))
        if last and last[0][0] == value:
            return False
        tx.execute(f"INSERT INTO forecasts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (feed, event, country, release_at, seen_at) DO UPDATE SET value = excluded.value, "
                   "note = excluded.note", (*key, value, seen, row.note))
    return True


def forecast_before(db: Db, feed: str, event: str, country: str, release_at: dt.datetime,
                    before: dt.datetime) -> tuple[float | None, dt.datetime] | None:
    """The newest (value, seen_at) seen strictly before `before`; None when nothing was seen by then."""
    rows = db.query(f"SELECT value, seen_at FROM forecasts WHERE {_KEY} AND seen_at < ? "
                    "ORDER BY seen_at DESC LIMIT 1", (feed, event, country, utc_text(release_at), utc_text(before)))
    return (rows[0][0], from_utc_text(rows[0][1])) if rows else None


def forecasts(db: Db, since: dt.datetime | None = None) -> list[ForecastRow]:
    """Every stored row, or those of releases at or after `since`, oldest sighting first."""
    rows = db.query(f"SELECT {_COLUMNS} FROM forecasts WHERE release_at >= ? "
                    "ORDER BY seen_at, feed, event, country, release_at", (utc_text(since) if since else "",))
    return [ForecastRow(feed, event, country, from_utc_text(release_at), value, from_utc_text(seen_at), note)
            for feed, event, country, release_at, value, seen_at, note in rows]
