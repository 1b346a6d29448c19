"""What the store keeps of the publishers' APIs at release time: queries spent per source and day (BLS allows 500 a
day with a key, 25 without), and which source showed each first print first, and when."""

from __future__ import annotations

import datetime as dt

from .base import Db, date_text, from_utc_text, utc_text
from .outbox import Writer, fence

PrintKey = tuple[str, dt.date]        # (series, the release day: the print's realtime_start)
PrintSeen = tuple[str, dt.datetime]   # (source, seen_at)


def count_queries(db: Db, source: str, day: dt.date, n: int, writer: Writer | None = None) -> int:
    """Add `n` to the source's count for `day` in one statement (atomic on both backends); the new total."""
    with db.transaction() as tx:
        fence(tx, db, writer)
        rows = tx.query("INSERT INTO queries (source, day, n) VALUES (?, ?, ?) "
                        "ON CONFLICT (source, day) DO UPDATE SET n = queries.n + excluded.n RETURNING n",
                        (source, date_text(day), int(n)))
    return int(rows[0][0])


def queries(db: Db, source: str, day: dt.date) -> int:
    """The queries counted for the source on `day`, 0 when none."""
    rows = db.query("SELECT n FROM queries WHERE source = ? AND day = ?", (source, date_text(day)))
    return int(rows[0][0]) if rows else 0


def put_print_source(db: Db, series: str, day: dt.date, source: str, seen_at: dt.datetime,
                     writer: Writer | None = None) -> None:
    """Record the source that showed the print, unless one was recorded as seeing it at the same time or earlier."""
    with db.transaction() as tx:
        fence(tx, db, writer)
        tx.execute("INSERT INTO print_sources (series, day, source, seen_at) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (series, day) DO UPDATE SET source = excluded.source, seen_at = excluded.seen_at "
                   "WHERE excluded.seen_at < print_sources.seen_at",
                   (series, date_text(day), source, utc_text(seen_at)))


def print_sources(db: Db, series: str | None = None) -> dict[PrintKey, PrintSeen]:
    """{(series, day): (source, seen_at)} of one series, or of all, in (series, day) order."""
    where, params = ("WHERE series = ? ", (series,)) if series is not None else ("", ())
    rows = db.query(f"SELECT series, day, source, seen_at FROM print_sources {where}ORDER BY series, day", params)
    return {(s, dt.date.fromisoformat(d)): (source, from_utc_text(at)) for s, d, source, at in rows}
