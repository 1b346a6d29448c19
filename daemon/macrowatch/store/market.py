"""Market data at rest: daily bars per instrument and ALFRED vintages per series."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from ..model import Bar, Vintage
from .base import Db, date_text, from_utc_text, utc_text

Summary = tuple[str, str, int, str | None, str | None]

_UPSERT_BAR = (
    "INSERT INTO bars (instrument, session, at, open, high, low, close, volume) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (instrument, session) DO UPDATE SET at = excluded.at, open = excluded.open, "
    "high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume")
_INSERT_VINTAGE = (
    "INSERT INTO vintages (series, date, realtime_start, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (series, date, realtime_start) DO NOTHING")
_SUMMARY = (
    "SELECT 'instrument', instrument, COUNT(*), MIN(session), MAX(session) FROM bars GROUP BY instrument "
    "UNION ALL "
    "SELECT 'series', series, COUNT(*), MIN(date), MAX(date) FROM vintages GROUP BY series "
    "ORDER BY 1, 2")


def put_bars(db: Db, instrument: str, bars: Iterable[Bar]) -> int:
    """Upsert bars by (instrument, session); return the rows written."""
    rows = [_bar_row(instrument, b) for b in bars]
    with db.transaction() as tx:
        return sum(tx.execute(_UPSERT_BAR, row) for row in rows)


def bars(db: Db, instrument: str, since: dt.date | None = None) -> list[Bar]:
    """An instrument's bars from `since` on (all when None), in session order."""
    rows = db.query("SELECT session, at, open, high, low, close, volume FROM bars "
                    "WHERE instrument = ? AND session >= ? ORDER BY session",
                    (instrument, date_text(since) if since else ""))
    return [Bar(dt.date.fromisoformat(s), from_utc_text(at), o, h, lo, c, v) for s, at, o, h, lo, c, v in rows]


def put_vintages(db: Db, series: str, vintages: Iterable[Vintage]) -> int:
    """Insert vintages not yet known; return how many were new (a new observation or a revision)."""
    rows = [_vintage_row(series, v) for v in vintages]
    with db.transaction() as tx:
        return sum(tx.execute(_INSERT_VINTAGE, row) for row in rows)


def vintages(db: Db, series: str) -> list[Vintage]:
    """A series' vintages ordered by (date, realtime_start)."""
    rows = db.query("SELECT date, realtime_start, value FROM vintages WHERE series = ? "
                    "ORDER BY date, realtime_start", (series,))
    return [Vintage(dt.date.fromisoformat(d), dt.date.fromisoformat(rt), v) for d, rt, v in rows]


def summary(db: Db) -> list[Summary]:
    """(kind, id, rows, first, last) per instrument and per series; first and last are ISO dates."""
    return [(kind, ident, int(n), first, last) for kind, ident, n, first, last in db.query(_SUMMARY)]


def _bar_row(instrument: str, b: Bar) -> tuple[object, ...]:
    # Checked before the transaction: SQLite would store NaN as NULL and fail on NOT NULL with a vaguer message.
    _finite(f"bar {instrument} {b.session}", open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume)
    return (instrument, date_text(b.session), utc_text(b.at), float(b.open), float(b.high), float(b.low),
            float(b.close), float(b.volume))


def _vintage_row(series: str, v: Vintage) -> tuple[object, ...]:
    _finite(f"vintage {series} {v.date} as of {v.realtime_start}", value=v.value)
    return (series, date_text(v.date), date_text(v.realtime_start), float(v.value))


def _finite(what: str, **values: float) -> None:
    for field, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{what}: {field} is {value}; the store keeps finite numbers only")
