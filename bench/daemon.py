"""The daemon's close check by the history it holds: seconds per check with 1, 5 and 10 years in the store.

    python bench/daemon.py           # 1, 5 and 10 years, 60 checks each
    python bench/daemon.py --quick   # 1 and 5 years, 20 checks each
    python bench/daemon.py --years 1,30

The daemon runs in this process under a fake clock, with in-memory feeds: 5 instruments with a level and a rule
each, two monthly series (each release brings a new month and revises the two before it, as the payrolls do) on
their first Fridays, an inline consensus for one month. Its store (SQLite in a temporary directory) holds the
years of bars and vintages; after the start has caught up, the clock stands on an evening after the close and
the close check runs once a minute, as the Runner runs it: nothing is new, so each check is the steady cost
the daemon pays every minute. Last line: a JSON object {years: seconds per check (median)}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import statistics
import tempfile
import time
import zoneinfo
from pathlib import Path

from macrowatch.clock import FakeClock
from macrowatch.config.load import load_config
from macrowatch.model import Bar, Vintage
from macrowatch.runtime.daemon import Daemon
from macrowatch.sources import calendar
from macrowatch.sources.base import LatestFetch, PriceFetch, Quote
from macrowatch.store import open_store

NY = zoneinfo.ZoneInfo("America/New_York")
END = dt.datetime(2026, 6, 30, 18, 0, tzinfo=NY)  # a Tuesday evening, after the close
INSTRUMENTS = 5
SERIES = {"payrolls": ("PAYEMS", "change"), "cpi": ("CPIAUCSL", "yoy_pct")}


def config_text() -> str:
    instruments = "\n".join(f"  i{k}: {{symbol: S{k}}}" for k in range(INSTRUMENTS))
    levels = "\n".join(f"  l{k}: {{instrument: i{k}, kind: all_time_high}}" for k in range(INSTRUMENTS))
    rules = "\n".join(f"  - {{name: r{k}, when: {{level: l{k}, entered: breakout}}}}" for k in range(INSTRUMENTS))
    macro = "\n".join(f"  {m}: {{series: {s}, release: r{m}, measure: {how}, consensus: {{2020-01: 100}}}}"
                      for m, (s, how) in SERIES.items())
    releases = "\n".join(f"  r{m}: {{fred_release_id: {50 + i}, time: \"08:30\"}}" for i, m in enumerate(SERIES))
    return (f'sources: {{fred: {{api_key: "0123456789abcdef0123456789abcdef"}}}}\n'
            f"instruments:\n{instruments}\nlevels:\n{levels}\nreleases:\n{releases}\nmacro:\n{macro}\n"
            f"rules:\n{rules}\n  - {{name: jobs, when: {{release: payrolls, outcome: any}}}}\n")


def first_fridays(start: dt.date, end: dt.date) -> list[dt.date]:
    out = []
    for month in range(start.year * 12 + start.month - 1, end.year * 12 + end.month):
        day = dt.date(month // 12, month % 12 + 1, 1)
        day += dt.timedelta(days=(4 - day.weekday()) % 7)
        if start <= day <= end:
            out.append(day)
    return out


class Prices:
    """Each session's bar, a gentle climb with noise (breakouts now and then)."""

    def __init__(self, start: dt.date):
        closes = sorted(calendar.close_times("XNYS", start, END.date()).items())
        self.bars = [Bar(d, at, 100 + i * 0.01, 101 + i * 0.01, 99 + i * 0.01, 100 + i * 0.01 + (i % 13) * 0.1)
                     for i, (d, at) in enumerate(closes)]

    def daily(self, instruments, start, now, calendar_for):
        return PriceFetch({i: [b for b in self.bars if start <= b.session and b.at <= now] for i in instruments})

    def latest(self, instruments, now, calendar_for):
        last = [b for b in self.bars if b.at <= now][-1]
        return LatestFetch({i: Quote(last.close, last.at) for i in instruments})


class Macro:
    """Monthly series: each first Friday brings the month before and revises the two before that."""

    def __init__(self, start: dt.date):
        self.days = first_fridays(start, END.date())
        self.rows: list[Vintage] = []
        for i, day in enumerate(self.days):
            for back in (1, 2, 3):
                m = day.year * 12 + day.month - 1 - back
                self.rows.append(Vintage(dt.date(m // 12, m % 12 + 1, 1), day, 1000.0 + 10 * i + back))

    def vintages(self, series, since=None, *, today=None):
        return [v for v in self.rows if (since is None or v.date >= since) and (today is None or
                                                                                 v.realtime_start <= today)]

    def release_schedule(self, release, start, end):
        return [d for d in first_fridays(start, end + dt.timedelta(days=40)) if start <= d <= end]


def per_check(years: int, checks: int) -> float:
    """Median seconds of a close check with `years` of history in the store."""
    start = END.date().replace(year=END.year - years)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mw.yaml"
        path.write_text(config_text())
        config, _ = load_config(path)
        store = open_store(Path(tmp) / "mw.sqlite")
        prices, macro = Prices(start), Macro(start)
        for k in range(INSTRUMENTS):  # the years a daemon running that long has gathered
            store.put_bars(f"i{k}", prices.bars)
        clock = FakeClock(END)
        daemon = Daemon(config, store, clock, prices, macro)
        daemon.start(clock.now())
        times = []
        for minute in range(1, checks + 1):
            clock.set(END + dt.timedelta(minutes=minute))
            t = time.perf_counter()
            daemon.check_closes(clock.now())
            times.append(time.perf_counter() - t)
        store.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 5 years, 20 checks each")
    parser.add_argument("--years", help="the years of history to measure, comma-separated (default 1,5,10)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the start's warm-up notes
    years, checks = ((1, 5), 20) if args.quick else ((1, 5, 10), 60)
    if args.years:
        years = tuple(int(y) for y in args.years.split(","))
    out = {}
    for y in years:
        out[y] = per_check(y, checks)
        print(f"{y:>2} years of history: {out[y] * 1000:.1f} ms per close check (median of {checks})")
    print(json.dumps({str(y): round(s, 5) for y, s in out.items()}))


if __name__ == "__main__":
    main()
